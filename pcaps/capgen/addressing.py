"""Captures about addressing and link types: ipv6, fragments, sll, sll2, multi (pcapng)."""

from __future__ import annotations

import random

import dpkt

from capgen import site as s
from capgen.capture import Capture
from capgen.frames import Cooked, Ethernet, RawIp, ip_bytes
from capgen.sessions import (
    Ports,
    dns_lookup,
    ntp_exchange,
    rtsp_push,
    tcp_session,
    tls_segments,
    udp_send,
    udp_telemetry,
)
from capgen.wire import ICMP6, ROUTER_MAC, Host, Wire, ethernet_wire

# cam-hik-gym on IPv6 (inventoried by MAC only, so both addresses are learned from its flows)
CAM6 = Host("fd00:20:1::12", s.HIK_GYM.mac)
CAM6_LINK_LOCAL = Host("fe80::4619:b6ff:fe20:112", s.HIK_GYM.mac)
ROUTER_LINK_LOCAL = Host("fe80::1", ROUTER_MAC)
SOLICITED_NODE = Host("ff02::1:ff00:1", "33:33:ff:00:00:01")  # for fe80::1
RESOLVER6 = Host("fd00:20::53", s.RESOLVER.mac)
CN6, DE6, UNKNOWN6 = Host("2001:db8:1::10"), Host("2001:db8:2::20"), Host("2001:db8:ff::1")
HIK_CLOUD6_NAME = "v6.hik-connect.com"
IPV6_UDP_PORT = 5000


def _neighbour_discovery(wire: Wire, t: float) -> None:
    """NS from the camera to fe80::1's solicited-node group, NA back: two port-less ICMPv6 flows."""
    target = ip_bytes(ROUTER_LINK_LOCAL.ip)
    solicit = dpkt.icmp6.ICMP6(
        type=135, data=b"\x00" * 4 + target + b"\x01\x01" + bytes.fromhex("4419b6200112")
    )
    wire.send(t, CAM6_LINK_LOCAL, SOLICITED_NODE, ICMP6, solicit)
    wire.mark_last(bindings=((CAM6_LINK_LOCAL.ip, s.HIK_GYM.mac),))
    advert = dpkt.icmp6.ICMP6(
        type=136, data=b"\x60" + b"\x00" * 3 + target + b"\x02\x01" + bytes.fromhex("001b54200001")
    )
    wire.send(t + 0.001, ROUTER_LINK_LOCAL, CAM6_LINK_LOCAL, ICMP6, advert)
    wire.mark_last(bindings=((ROUTER_LINK_LOCAL.ip, ROUTER_MAC),))


def ipv6(rng: random.Random) -> Capture:
    """IPv6 egress to CN, DE and an address no database knows (ZZ); Hop-by-Hop and a fragment header."""
    cap, ports = Capture("ipv6.pcap"), Ports(rng)
    wire = ethernet_wire(cap)
    _neighbour_discovery(wire, 0.2)
    dns_lookup(wire, CAM6, RESOLVER6, ports.take(), 0.5, HIK_CLOUD6_NAME, CN6.ip)
    # Every client packet of this flow carries a Hop-by-Hop header; the server's do not.
    tcp_session(
        wire,
        CAM6,
        CN6,
        ports.take(),
        443,
        1.0,
        tls_segments(HIK_CLOUD6_NAME, rng, 3),
        client_extras={"hop_by_hop_header": True},
    )
    sport = ports.take()
    for i in range(5):
        udp_send(wire, 1.5 + i, CAM6, DE6, sport, IPV6_UDP_PORT, bytes(300))
        udp_send(wire, 1.53 + i, DE6, CAM6, IPV6_UDP_PORT, sport, bytes(100))
    # One 2000-byte datagram in two fragments (first fragment first).
    wire.send_fragments([3.7, 3.701], [0, 1], CAM6, DE6, sport, IPV6_UDP_PORT, bytes(2000), 1232)
    tcp_session(wire, CAM6, UNKNOWN6, ports.take(), 554, 2.0, rtsp_push(rng, f"rtsp://[{UNKNOWN6.ip}]/gym"))
    return cap


def fragments(rng: random.Random) -> Capture:
    """IPv4 fragments of 3000-byte UDP datagrams from a camera to CN; one datagram out of order."""
    cap, ports = Capture("fragments.pcap"), Ports(rng)
    wire = ethernet_wire(cap)
    sport, dport = ports.take(), 40000
    for i in range(7):
        t = 1.0 + i * 0.8
        # Datagram 3 arrives as fragments 1, 2 and then the first one: its bytes must still join the flow.
        order = [1, 2, 0] if i == 3 else [0, 1, 2]
        wire.send_fragments(
            [t, t + 0.001, t + 0.002],
            order,
            s.DAHUA_PARKING,
            s.CN_BULK,
            sport,
            dport,
            rng.randbytes(3000),
            1480,
        )
        udp_send(wire, t + 0.05, s.CN_BULK, s.DAHUA_PARKING, dport, sport, bytes(32))
    return cap


def _cooked(rng: random.Random, name: str, version: int) -> Capture:
    cap, ports = Capture(name), Ports(rng)
    wire = Wire(cap, Cooked(version))
    if version == 1:
        tcp_session(
            wire, s.HIK_ENTRANCE, s.HIK_CLOUD, ports.take(), 443, 1.0, tls_segments(s.HIK_CLOUD_NAME, rng, 3)
        )
        ntp_exchange(wire, s.HIK_ENTRANCE, s.NTP_SERVER, ports.take(), 1.2, rng)
        udp_telemetry(wire, s.DAHUA_YARD, s.DAHUA_CLOUD, ports.take(), 1.4)
    else:
        tcp_session(
            wire,
            s.DAHUA_PARKING,
            s.CN_FOOTAGE,
            ports.take(),
            554,
            1.0,
            rtsp_push(rng, f"rtsp://{s.CN_FOOTAGE.ip}/parking"),
        )
        dns_lookup(wire, s.HIK_ENTRANCE, s.RESOLVER, ports.take(), 1.2, s.HIK_CLOUD_NAME, s.HIK_CLOUD.ip)
        tcp_session(
            wire, s.HIK_ENTRANCE, s.HIK_CLOUD, ports.take(), 443, 1.3, tls_segments(s.HIK_CLOUD_NAME, rng, 2)
        )
        tcp_session(wire, s.PC, s.US_CLOUD, ports.take(), 443, 1.6, tls_segments("www.example.com", rng, 2))
    return cap


def sll(rng: random.Random) -> Capture:
    """Linux cooked v1 from a layer-3 interface: no MACs, devices found by IP."""
    return _cooked(rng, "sll.pcap", 1)


def sll2(rng: random.Random) -> Capture:
    """Linux cooked v2 (written as a nanosecond pcap): no MACs, devices found by IP."""
    return _cooked(rng, "sll2.pcap", 2)


def multi(rng: random.Random) -> Capture:
    """pcapng with Ethernet (if_tsresol 6), raw IP (if_tsresol 9) and SLL (default) interleaved."""
    cap, ports = Capture("multi.pcapng"), Ports(rng)
    span, tun, anyif = (
        Wire(cap, Ethernet(), iface=0),
        Wire(cap, RawIp(), iface=1),
        Wire(cap, Cooked(1), iface=2),
    )
    tcp_session(span, s.HIK_GYM, s.HIK_CLOUD, ports.take(), 443, 1.0, tls_segments(s.HIK_CLOUD_NAME, rng, 4))
    # The first data segment after the ClientHello goes into a Simple Packet Block (no timestamp).
    span_data = [r for r in cap.records if r.info and r.info.ip_bytes > 60]
    span_data[2].simple = True
    udp_telemetry(tun, s.DAHUA_PARKING, s.DAHUA_CLOUD_B, ports.take(), 1.1)
    ntp_exchange(anyif, s.HIK_ENTRANCE, s.NTP_SERVER, ports.take(), 1.3, rng)
    tcp_session(
        anyif, s.HIK_ENTRANCE, s.IE_SERVICE, ports.take(), 443, 1.6, tls_segments(s.IE_SERVICE_NAME, rng, 2)
    )
    return cap
