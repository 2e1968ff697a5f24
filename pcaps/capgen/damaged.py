"""Captures with damage: malformed frames among good ones, and a file cut mid-record."""

from __future__ import annotations

import random
import struct

import dpkt

from capgen import site as s
from capgen.capture import Capture
from capgen.frames import (
    ETH_IPV4,
    ETH_IPV6,
    MIRROR_COLLECTOR,
    MIRROR_SOURCE,
    VXLAN_PORT,
    ipv4_header,
    mac_bytes,
)
from capgen.sessions import DAHUA_TELEMETRY_PORT, Ports, tcp_session, tls_segments, udp_send
from capgen.wire import ROUTER_MAC, TCP, UDP, Wire, ethernet_wire, transport_bytes

BAD_HOST = ("10.20.2.66", "00:14:22:66:66:66")  # a Dell MAC, so no damaged frame could make a device
IPV4_OPTIONS = b"\x01\x01\x01\x00"  # NOP NOP NOP EOL: IHL 6
SNAP = 14 + 20 + 8 + 16  # snaplen-style cut inside the UDP payload: headers intact, IP bytes from the header


def _eth(src_mac: str, dst_mac: str, ethertype: int, payload: bytes) -> bytes:
    """Unpadded Ethernet: padding would complete the cut headers below."""
    return mac_bytes(dst_mac) + mac_bytes(src_mac) + struct.pack("!H", ethertype) + payload


def _malformed(wire: Wire, start: float) -> None:
    """One frame per kind of damage, 0.5 s apart. Each counts as a packet and a decode error only."""
    ip, mac = BAD_HOST
    udp = transport_bytes(ip, s.HIK_CLOUD.ip, UDP, dpkt.udp.UDP(sport=40001, dport=9999, data=bytes(32)))
    good = ipv4_header(ip, s.HIK_CLOUD.ip, UDP, len(udp)) + udp
    short_ihl = bytes([0x43]) + good[1:]
    short_total = good[:2] + struct.pack("!H", 16) + good[4:]
    tcp = transport_bytes(
        ip, s.HIK_CLOUD.ip, TCP, dpkt.tcp.TCP(sport=40002, dport=443, flags=0x18, data=bytes(100))
    )
    tcp_frame = _eth(mac, ROUTER_MAC, ETH_IPV4, ipv4_header(ip, s.HIK_CLOUD.ip, TCP, len(tcp)) + tcp)
    ipv6_cut = _eth(mac, ROUTER_MAC, ETH_IPV6, bytes.fromhex("6000000000201140") + bytes(16))
    gre = struct.pack("!HH", 0x0005, 0x88BE) + bytes(40)  # GRE version 5: neither GRE (0) nor PPTP (1)
    vxlan_payload = struct.pack("!BBHI", 0x08, 0, 0, 5001 << 8) + bytes(8)  # inner Ethernet cut at 8 bytes
    vxlan = struct.pack("!HHHH", 50000, VXLAN_PORT, 8 + len(vxlan_payload), 0) + vxlan_payload
    (src_ip, src_mac), (dst_ip, dst_mac) = MIRROR_SOURCE, MIRROR_COLLECTOR
    damage = [
        ("ethernet frame shorter than 14 bytes", _eth(mac, ROUTER_MAC, ETH_IPV4, b"")[:10], None),
        ("IPv4 IHL 3", _eth(mac, ROUTER_MAC, ETH_IPV4, short_ihl), None),
        ("IPv4 total length 16 < IHL*4", _eth(mac, ROUTER_MAC, ETH_IPV4, short_total), None),
        ("TCP header cut by caplen", tcp_frame, 14 + 20 + 10),
        ("IPv6 header cut at 24 bytes", ipv6_cut[: 14 + 24], None),
        (
            "GRE version 5",
            _eth(src_mac, dst_mac, ETH_IPV4, ipv4_header(src_ip, dst_ip, 47, len(gre)) + gre),
            None,
        ),
        (
            "VXLAN with an 8-byte inner Ethernet frame",
            _eth(src_mac, dst_mac, ETH_IPV4, ipv4_header(src_ip, dst_ip, UDP, len(vxlan)) + vxlan),
            None,
        ),
    ]
    for i, (why, frame, caplen) in enumerate(damage):
        wire.raw(start + i * 0.5, frame, error=why, caplen=caplen)


def malformed(rng: random.Random) -> Capture:
    """Good traffic (IPv4 options, snaplen-cut packets) interleaved with seven malformed frames."""
    cap, ports = Capture("malformed.pcap"), Ports(rng)
    wire = ethernet_wire(cap)
    tcp_session(
        wire, s.HIK_ENTRANCE, s.HIK_CLOUD, ports.take(), 443, 1.0, tls_segments(s.HIK_CLOUD_NAME, rng, 4)
    )
    sport = ports.take()
    for i in range(8):
        t = 1.2 + i * 0.5
        wire.send(
            t,
            s.DAHUA_PARKING,
            s.DAHUA_CLOUD,
            UDP,
            dpkt.udp.UDP(sport=sport, dport=DAHUA_TELEMETRY_PORT, data=bytes(300)),
            sport=sport,
            dport=DAHUA_TELEMETRY_PORT,
            ipv4_options=IPV4_OPTIONS if i % 2 else b"",
        )
        wire.send(
            t + 0.02,
            s.DAHUA_CLOUD,
            s.DAHUA_PARKING,
            UDP,
            dpkt.udp.UDP(sport=DAHUA_TELEMETRY_PORT, dport=sport, data=bytes(900)),
            sport=DAHUA_TELEMETRY_PORT,
            dport=sport,
            caplen=SNAP if i % 2 else None,
        )
    _malformed(wire, 1.1)
    return cap


def truncated(rng: random.Random) -> Capture:
    """A good capture whose final record (a 1000-byte datagram) the file cuts off mid-data."""
    cap, ports = Capture("truncated.pcap"), Ports(rng)
    wire = ethernet_wire(cap)
    end = tcp_session(
        wire, s.DAHUA_PARKING, s.DAHUA_CLOUD, ports.take(), 443, 1.0, tls_segments(s.DAHUA_CLOUD_NAME, rng, 4)
    )
    udp_send(wire, end + 0.5, s.DAHUA_PARKING, s.DAHUA_CLOUD, ports.take(), DAHUA_TELEMETRY_PORT, bytes(1000))
    return cap
