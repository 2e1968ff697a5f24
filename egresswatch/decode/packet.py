"""The decoded view of one packet that took the slow path, and the named decode anomalies."""

from __future__ import annotations

# Named anomalies, as Zeek names its weirds: a fixed set, so they can be a metric label.
ANOMALIES = (
    "truncated_link",
    "truncated_vlan",
    "truncated_ipv4",
    "bad_ipv4_header",
    "truncated_ipv6",
    "bad_ipv6_header",
    "truncated_ipv6_extension",
    "truncated_tcp",
    "bad_tcp_header",
    "truncated_udp",
    "truncated_gre",
    "bad_gre_header",
    "truncated_erspan",
    "truncated_vxlan",
    "tunnel_too_deep",
    "unknown_ip_version",
)


FIELDS = (
    "dport", "dst", "dst_mac", "frag_id", "frag_more", "frag_offset", "ip_bytes", "ip_version", "l3_proto",
    "payload_end", "payload_off", "proto", "sport", "src", "src_mac", "tcp_flags", "tunnel_depth", "vlan",
)  # fmt: skip
"""A packet's header fields (the C base's members, or the slots below)."""

try:
    # The fields and their defaults in C: a new packet is one allocation, no __init__ to run.
    from egresswatch._fastpath import PacketBase
except ImportError:  # built without a C compiler
    PacketBase = object


class Packet(PacketBase):  # type: ignore[misc,valid-type]
    """Header fields of one packet; payload stays in the capture buffer (`payload_off`..`payload_end`)."""

    __slots__ = () if PacketBase is not object else FIELDS

    if PacketBase is object:  # the C base sets the same defaults

        def __init__(self) -> None:
            self.src_mac: bytes | None = None
            self.dst_mac: bytes | None = None
            self.vlan: int | None = None
            self.l3_proto = 0
            """Ethertype of the network layer (0x0800, 0x86dd, 0x0806 ...); 0 when unknown."""
            self.ip_version = 0
            self.src = b""
            self.dst = b""
            self.proto = -1
            self.ip_bytes = 0
            self.sport: int | None = None
            self.dport: int | None = None
            self.tcp_flags = 0
            self.frag_id: int | None = None
            """IP identification when the packet is a fragment, else None."""
            self.frag_offset = 0
            self.frag_more = False
            self.payload_off = 0
            self.payload_end = 0
            self.tunnel_depth = 0

    def reset_for_inner(self) -> None:
        """Forget the outer headers: with a tunnel, only the inner packet counts."""
        self.src_mac = self.dst_mac = None
        self.vlan = None
        self.l3_proto = 0
        self.ip_version = 0
        self.sport = self.dport = None
        self.tcp_flags = 0
        self.frag_id = None
        self.frag_offset = 0
        self.frag_more = False
        self.tunnel_depth += 1
