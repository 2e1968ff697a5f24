"""Ethernet frames for tests that feed hand-made packets to the scan, the filters or a replay."""

from __future__ import annotations

import struct

import dpkt


def ethernet_frame(src: bytes, dst: bytes, sport: int, dport: int, *, tcp_flags: int | None = None,
                   vlan: int | None = None, payload: bytes = b"x" * 8,
                   src_mac: bytes = b"\x02" * 6, dst_mac: bytes = b"\x04" * 6) -> bytes:
    """UDP (or TCP with ``tcp_flags``) between packed IPv4 or IPv6 addresses, with one 802.1Q tag
    when ``vlan`` is given; lengths filled in."""
    if tcp_flags is None:
        l4: dpkt.Packet = dpkt.udp.UDP(sport=sport, dport=dport, data=payload)
        l4.ulen = len(l4)
    else:
        l4 = dpkt.tcp.TCP(sport=sport, dport=dport, flags=tcp_flags, data=payload)
    proto = 17 if tcp_flags is None else 6
    if len(src) == 16:
        ip: dpkt.Packet = dpkt.ip6.IP6(src=src, dst=dst, nxt=proto, hlim=64, data=l4)
        ip.plen = len(l4)
        etype = 0x86DD
    else:
        ip = dpkt.ip.IP(src=src, dst=dst, p=proto, data=l4)
        ip.len = len(ip)
        etype = 0x0800
    raw = bytes(dpkt.ethernet.Ethernet(src=src_mac, dst=dst_mac, type=etype, data=ip))
    return raw if vlan is None else raw[:12] + struct.pack("!HH", 0x8100, vlan) + raw[12:]
