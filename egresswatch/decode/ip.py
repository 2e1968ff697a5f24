"""IPv4 (RFC 791), IPv6 (RFC 8200) with extension headers, TCP (RFC 9293) and UDP (RFC 768) ports.

IP-layer bytes come from the headers, not the captured length, so a snaplen-cut packet still
counts what it carried. The payload end is bounded by both the IP length and what was captured
(Ethernet pads short frames).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from egresswatch.decode.packet import Packet

if TYPE_CHECKING:
    from egresswatch.decode.registry import Decoder

PROTO_TCP = 6
PROTO_UDP = 17
PROTO_FRAGMENT = 44
PROTO_AH = 51
PROTO_NONE = 59
# Extension headers shaped as next-header(1) length-in-8-octets-minus-one(1) ...
IPV6_OPTION_HEADERS = frozenset((0, 43, 60, 135, 139, 140))


def decode_ipv4(d: Decoder, buf: bytes, off: int, end: int, pkt: Packet) -> str | None:
    if end - off < 20:
        return "truncated_ipv4"
    vihl = buf[off]
    ihl = (vihl & 0x0F) * 4
    total = buf[off + 2] << 8 | buf[off + 3]
    if vihl >> 4 != 4 or ihl < 20 or total < ihl:
        return "bad_ipv4_header"
    if end - off < ihl:
        return "truncated_ipv4"
    pkt.ip_version = 4
    pkt.ip_bytes = total
    pkt.src = buf[off + 12 : off + 16]
    pkt.dst = buf[off + 16 : off + 20]
    proto = buf[off + 9]
    pkt.proto = proto
    frag = (buf[off + 6] & 0x1F) << 8 | buf[off + 7]
    more = bool(buf[off + 6] & 0x20)
    end = min(end, off + total)
    pkt.payload_off = off + ihl
    pkt.payload_end = end
    if frag or more:
        pkt.frag_id = buf[off + 4] << 8 | buf[off + 5]
        pkt.frag_offset = frag * 8
        pkt.frag_more = more
        if frag:
            return None  # a non-first fragment has no transport header
    return d.ip_protocol(proto, buf, off + ihl, end, pkt)


def decode_ipv6(d: Decoder, buf: bytes, off: int, end: int, pkt: Packet) -> str | None:
    if end - off < 40:
        return "truncated_ipv6"
    if buf[off] >> 4 != 6:
        return "bad_ipv6_header"
    plen = buf[off + 4] << 8 | buf[off + 5]
    pkt.ip_version = 6
    pkt.ip_bytes = 40 + plen
    pkt.src = buf[off + 8 : off + 24]
    pkt.dst = buf[off + 24 : off + 40]
    end = min(end, off + 40 + plen)
    nxt = buf[off + 6]
    off += 40
    while True:
        if nxt in IPV6_OPTION_HEADERS:
            if end - off < 8:
                return "truncated_ipv6_extension"
            nxt, off = buf[off], off + (buf[off + 1] + 1) * 8
        elif nxt == PROTO_AH:
            if end - off < 8:
                return "truncated_ipv6_extension"
            nxt, off = buf[off], off + (buf[off + 1] + 2) * 4
        elif nxt == PROTO_FRAGMENT:
            if end - off < 8:
                return "truncated_ipv6_extension"
            frag = buf[off + 2] << 8 | buf[off + 3]
            pkt.frag_id = int.from_bytes(buf[off + 4 : off + 8], "big")
            pkt.frag_offset = frag & 0xFFF8
            pkt.frag_more = bool(frag & 1)
            nxt, off = buf[off], off + 8
            if pkt.frag_offset:
                pkt.proto = nxt
                pkt.payload_off = pkt.payload_end = end
                return None
        else:
            break
    if off > end:
        return "truncated_ipv6_extension"
    pkt.proto = nxt
    pkt.payload_off = off
    pkt.payload_end = end
    return None if nxt == PROTO_NONE else d.ip_protocol(nxt, buf, off, end, pkt)


def decode_tcp(d: Decoder, buf: bytes, off: int, end: int, pkt: Packet) -> str | None:
    if end - off < 14:
        return "truncated_tcp"
    pkt.sport = buf[off] << 8 | buf[off + 1]
    pkt.dport = buf[off + 2] << 8 | buf[off + 3]
    pkt.tcp_flags = buf[off + 13]
    data_offset = (buf[off + 12] >> 4) * 4
    if data_offset < 20:
        return "bad_tcp_header"
    pkt.payload_off = min(off + data_offset, end)
    return None


def decode_udp(d: Decoder, buf: bytes, off: int, end: int, pkt: Packet) -> str | None:
    if end - off < 8:
        return "truncated_udp"
    sport = buf[off] << 8 | buf[off + 1]
    dport = buf[off + 2] << 8 | buf[off + 3]
    pkt.sport = sport
    pkt.dport = dport
    pkt.payload_off = off + 8
    return d.udp_port(dport, buf, off + 8, end, pkt)
