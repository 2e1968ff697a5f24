"""Which decoder follows which: link type -> ethertype -> IP protocol, as data.

Each decoder has the signature ``(decoder, buf, off, end, pkt) -> str | None``: it parses its header
from ``buf[off:end]``, fills ``pkt`` and forwards the rest to the next layer through the registry.
It returns None on success or the name of a decode anomaly. Adding a protocol is one module and
one registration line below.

The first packet of almost every flow is a frame of one shape (Ethernet, at most one 802.1Q tag,
IPv4 that is not a fragment or IPv6 without extension headers, TCP or UDP): when the C extension
is built, `Decoder.decode` fills such a frame's `Packet` in one call (`_fastpath.decode_ethernet`,
which declines every other frame and asks `UDP_PORT_DECODERS` for tunnels) instead of walking the
registry through five Python decoders. `Decoder.walk` is the registry alone, its reference
(tests/test_decode_fast.py).
"""

from __future__ import annotations

from collections.abc import Callable

from egresswatch.capture import LINKTYPE_ETHERNET
from egresswatch.decode import ip, link, tunnels
from egresswatch.decode.packet import Packet

LayerDecoder = Callable[["Decoder", bytes, int, int, Packet], "str | None"]

ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_ARP = 0x0806
ETHERTYPE_VLAN = 0x8100
ETHERTYPE_QINQ = 0x88A8
ETHERTYPE_QINQ_OLD = 0x9100
ETHERTYPE_IPV6 = 0x86DD
ETHERTYPE_TEB = 0x6558
ETHERTYPE_ERSPAN_2 = 0x88BE
ETHERTYPE_ERSPAN_3 = 0x22EB

LINK_DECODERS: dict[int, LayerDecoder] = {
    0: link.decode_null,
    1: link.decode_ethernet,
    12: link.decode_raw,
    14: link.decode_raw,
    101: link.decode_raw,
    108: link.decode_loop,
    113: link.decode_sll,
    228: link.decode_raw,
    229: link.decode_raw,
    276: link.decode_sll2,
}

ETHERTYPE_DECODERS: dict[int, LayerDecoder] = {
    ETHERTYPE_IPV4: ip.decode_ipv4,
    ETHERTYPE_IPV6: ip.decode_ipv6,
    ETHERTYPE_VLAN: link.decode_vlan,
    ETHERTYPE_QINQ: link.decode_vlan,
    ETHERTYPE_QINQ_OLD: link.decode_vlan,
    ETHERTYPE_TEB: link.decode_ethernet,
    ETHERTYPE_ERSPAN_2: tunnels.decode_erspan_2,
    ETHERTYPE_ERSPAN_3: tunnels.decode_erspan_3,
}

IP_PROTOCOL_DECODERS: dict[int, LayerDecoder] = {
    4: ip.decode_ipv4,  # IP in IP
    6: ip.decode_tcp,
    17: ip.decode_udp,
    41: ip.decode_ipv6,  # IPv6 in IP
    47: tunnels.decode_gre,
}

UDP_PORT_DECODERS: dict[int, LayerDecoder] = {
    4789: tunnels.decode_vxlan,
}

SUPPORTED_LINKTYPES = frozenset(LINK_DECODERS)
MAX_TUNNEL_DEPTH = 4

try:
    from egresswatch._fastpath import decode_ethernet as decode_common_ethernet
except ImportError:  # built without a C compiler: every frame walks the registry
    decode_common_ethernet = None


class Decoder:
    """Dispatch through the registry. One instance per pipeline; it holds no per-packet state."""

    __slots__ = ("_common_ethernet", "_ethertypes", "_links", "_protocols", "_udp_ports")

    def __init__(self) -> None:
        self._links = LINK_DECODERS
        self._ethertypes = ETHERTYPE_DECODERS
        self._protocols = IP_PROTOCOL_DECODERS
        self._udp_ports = UDP_PORT_DECODERS
        self._common_ethernet = decode_common_ethernet

    def decode(self, linktype: int, buf: bytes, off: int, end: int, pkt: Packet) -> str | None:
        """Fill a new `pkt` from the frame buf[off:end]; None, or the name of a decode anomaly."""
        common = self._common_ethernet
        if (
            linktype == LINKTYPE_ETHERNET
            and common is not None
            and common(buf, off, end, pkt, self._udp_ports)
        ):
            return None
        return self._links[linktype](self, buf, off, end, pkt)

    def walk(self, linktype: int, buf: bytes, off: int, end: int, pkt: Packet) -> str | None:
        """`decode` through the registry alone, for every frame."""
        return self._links[linktype](self, buf, off, end, pkt)

    def ethertype(self, etype: int, buf: bytes, off: int, end: int, pkt: Packet) -> str | None:
        pkt.l3_proto = etype
        layer = self._ethertypes.get(etype)
        if layer is None:
            # Not ours to decode (ARP, LLDP, ...): leave its bytes where the hooks can read them.
            pkt.payload_off = off
            pkt.payload_end = end
            return None
        return layer(self, buf, off, end, pkt)

    def knows_ethertype(self, etype: int) -> bool:
        return etype in self._ethertypes

    def ip_protocol(self, proto: int, buf: bytes, off: int, end: int, pkt: Packet) -> str | None:
        layer = self._protocols.get(proto)
        return None if layer is None else layer(self, buf, off, end, pkt)

    def udp_port(self, port: int, buf: bytes, off: int, end: int, pkt: Packet) -> str | None:
        """Forward a UDP payload to a tunnel decoder registered on its destination port, if any."""
        layer = self._udp_ports.get(port)
        return None if layer is None else layer(self, buf, off, end, pkt)

    def inner(self, etype: int, buf: bytes, off: int, end: int, pkt: Packet) -> str | None:
        """Decode a tunnelled packet in place of its carrier."""
        if pkt.tunnel_depth >= MAX_TUNNEL_DEPTH:
            return "tunnel_too_deep"
        pkt.reset_for_inner()
        return self.ethertype(etype, buf, off, end, pkt)
