"""egresswatch: passive egress monitoring for IP cameras on a span port."""

__version__ = "0.1.0"
