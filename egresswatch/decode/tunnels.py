"""Encapsulated mirrors: GRE (RFC 2784/2890), ERSPAN type II and III, VXLAN (RFC 7348).

A mirror that arrives through a tunnel is decapsulated and only the inner packet counts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from egresswatch.decode.packet import Packet

if TYPE_CHECKING:
    from egresswatch.decode.registry import Decoder

GRE_CHECKSUM = 0x80
GRE_KEY = 0x20
GRE_SEQUENCE = 0x10
GRE_ENHANCED = 1  # RFC 2637
ETHERTYPE_TEB = 0x6558
ERSPAN_2_HEADER = 8
ERSPAN_3_HEADER = 12
ERSPAN_3_PLATFORM_SUBHEADER = 8
VXLAN_HEADER = 8
VXLAN_VALID_VNI = 0x08


def decode_gre(d: Decoder, buf: bytes, off: int, end: int, pkt: Packet) -> str | None:
    """GRE: flags+version(2) protocol(2) [checksum+reserved(4)] [key(4)] [sequence(4)]."""
    if end - off < 4:
        return "truncated_gre"
    flags = buf[off]
    version = buf[off + 1] & 0x07
    if version == GRE_ENHANCED:
        return None  # enhanced GRE (PPTP) carries PPP, not a mirror: count the GRE flow itself
    if version != 0:
        return "bad_gre_header"
    header = 4 + 4 * (bool(flags & GRE_CHECKSUM) + bool(flags & GRE_KEY) + bool(flags & GRE_SEQUENCE))
    if end - off < header:
        return "truncated_gre"
    proto = buf[off + 2] << 8 | buf[off + 3]
    if proto == 0x88BE and not flags & GRE_SEQUENCE:
        # ERSPAN type I: the same protocol number without a sequence number and without a header.
        return d.inner(ETHERTYPE_TEB, buf, off + header, end, pkt)
    if not d.knows_ethertype(proto):
        return None  # GRE carrying something we do not decode: count the GRE flow itself
    return d.inner(proto, buf, off + header, end, pkt)


def decode_erspan_2(d: Decoder, buf: bytes, off: int, end: int, pkt: Packet) -> str | None:
    """ERSPAN type II header (8 bytes), then the mirrored Ethernet frame."""
    if end - off < ERSPAN_2_HEADER:
        return "truncated_erspan"
    return d.ethertype(ETHERTYPE_TEB, buf, off + ERSPAN_2_HEADER, end, pkt)


def decode_erspan_3(d: Decoder, buf: bytes, off: int, end: int, pkt: Packet) -> str | None:
    """ERSPAN type III header (12 bytes, +8 when the O flag announces a platform sub-header)."""
    if end - off < ERSPAN_3_HEADER:
        return "truncated_erspan"
    header = ERSPAN_3_HEADER + (ERSPAN_3_PLATFORM_SUBHEADER if buf[off + 11] & 0x01 else 0)
    if end - off < header:
        return "truncated_erspan"
    return d.ethertype(ETHERTYPE_TEB, buf, off + header, end, pkt)


def decode_vxlan(d: Decoder, buf: bytes, off: int, end: int, pkt: Packet) -> str | None:
    """VXLAN on UDP 4789: flags(1) reserved(3) VNI(3) reserved(1), then Ethernet."""
    if end - off < VXLAN_HEADER or not buf[off] & VXLAN_VALID_VNI:
        return None  # not VXLAN after all: an ordinary UDP packet to port 4789
    return d.inner(ETHERTYPE_TEB, buf, off + VXLAN_HEADER, end, pkt)
