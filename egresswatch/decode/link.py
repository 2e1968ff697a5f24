"""Link layers: Ethernet and its VLAN tags, Linux cooked capture v1/v2, raw IP, BSD loopback."""

from __future__ import annotations

from typing import TYPE_CHECKING

from egresswatch.decode.packet import Packet

if TYPE_CHECKING:
    from egresswatch.decode.registry import Decoder

ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_IPV6 = 0x86DD
MIN_ETHERTYPE = 0x0600  # below: an 802.3 length field, LLC follows (never IP for us)
ARPHRD_ETHER = 1
# BSD loopback address families: AF_INET is 2 everywhere, AF_INET6 differs by OS.
AF_INET = 2
AF_INET6 = (10, 24, 28, 30)


def decode_ethernet(d: Decoder, buf: bytes, off: int, end: int, pkt: Packet) -> str | None:
    """IEEE 802.3 Ethernet II: dst(6) src(6) ethertype(2)."""
    if end - off < 14:
        return "truncated_link"
    pkt.dst_mac = buf[off : off + 6]
    pkt.src_mac = buf[off + 6 : off + 12]
    etype = buf[off + 12] << 8 | buf[off + 13]
    if etype < MIN_ETHERTYPE:
        return None
    return d.ethertype(etype, buf, off + 14, end, pkt)


def decode_vlan(d: Decoder, buf: bytes, off: int, end: int, pkt: Packet) -> str | None:
    """802.1Q / 802.1ad tag: TCI(2) ethertype(2). The innermost tag's VLAN id names the flow."""
    if end - off < 4:
        return "truncated_vlan"
    pkt.vlan = (buf[off] & 0x0F) << 8 | buf[off + 1]
    return d.ethertype(buf[off + 2] << 8 | buf[off + 3], buf, off + 4, end, pkt)


def _cooked_address(pkt: Packet, arphrd: int, addr_len: int, address: bytes) -> None:
    # The cooked header carries only the sender's link address.
    if arphrd == ARPHRD_ETHER and addr_len == 6:
        pkt.src_mac = address[:6]


def decode_sll(d: Decoder, buf: bytes, off: int, end: int, pkt: Packet) -> str | None:
    """Linux cooked v1: type(2) arphrd(2) addr_len(2) addr(8) protocol(2)."""
    if end - off < 16:
        return "truncated_link"
    arphrd = buf[off + 2] << 8 | buf[off + 3]
    _cooked_address(pkt, arphrd, buf[off + 4] << 8 | buf[off + 5], buf[off + 6 : off + 14])
    return d.ethertype(buf[off + 14] << 8 | buf[off + 15], buf, off + 16, end, pkt)


def decode_sll2(d: Decoder, buf: bytes, off: int, end: int, pkt: Packet) -> str | None:
    """Linux cooked v2: protocol(2) reserved(2) ifindex(4) arphrd(2) type(1) addr_len(1) addr(8)."""
    if end - off < 20:
        return "truncated_link"
    arphrd = buf[off + 8] << 8 | buf[off + 9]
    _cooked_address(pkt, arphrd, buf[off + 11], buf[off + 12 : off + 20])
    return d.ethertype(buf[off] << 8 | buf[off + 1], buf, off + 20, end, pkt)


def decode_raw(d: Decoder, buf: bytes, off: int, end: int, pkt: Packet) -> str | None:
    """Raw IP: the version nibble says which."""
    if end - off < 1:
        return "truncated_link"
    version = buf[off] >> 4
    if version == 4:
        return d.ethertype(ETHERTYPE_IPV4, buf, off, end, pkt)
    if version == 6:
        return d.ethertype(ETHERTYPE_IPV6, buf, off, end, pkt)
    return "unknown_ip_version"


def _family(d: Decoder, family: int, buf: bytes, off: int, end: int, pkt: Packet) -> str | None:
    if family == AF_INET:
        return d.ethertype(ETHERTYPE_IPV4, buf, off, end, pkt)
    if family in AF_INET6:
        return d.ethertype(ETHERTYPE_IPV6, buf, off, end, pkt)
    return None


def decode_null(d: Decoder, buf: bytes, off: int, end: int, pkt: Packet) -> str | None:
    """BSD loopback: a 4-byte address family in the capturing host's byte order."""
    if end - off < 4:
        return "truncated_link"
    family = int.from_bytes(buf[off : off + 4], "little")
    if family > 0xFFFF:
        family = int.from_bytes(buf[off : off + 4], "big")
    return _family(d, family, buf, off + 4, end, pkt)


def decode_loop(d: Decoder, buf: bytes, off: int, end: int, pkt: Packet) -> str | None:
    """OpenBSD loopback: the family in network byte order."""
    if end - off < 4:
        return "truncated_link"
    return _family(d, int.from_bytes(buf[off : off + 4], "big"), buf, off + 4, end, pkt)
