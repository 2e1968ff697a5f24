"""Captures where the camera traffic is tagged or tunnelled: vlan_qinq, erspan, vxlan."""

from __future__ import annotations

import random

from capgen import site as s
from capgen.capture import Capture
from capgen.frames import TPID_8021AD, TPID_8021Q, Ethernet, Mirror
from capgen.sessions import (
    Ports,
    arp_exchange,
    ntp_exchange,
    rtsp_push,
    tcp_session,
    tls_segments,
    udp_telemetry,
)
from capgen.wire import ROUTER_MAC, Host, Wire


def vlan_qinq(rng: random.Random) -> Capture:
    """802.1Q, 802.1ad+802.1Q and a double 0x8100 stack; the innermost tag is the flow's VLAN."""
    cap, ports = Capture("vlan_qinq.pcap"), Ports(rng)
    dot1q = Ethernet(((TPID_8021Q, 20),))

    def qinq(inner: int) -> Ethernet:
        return Ethernet(((TPID_8021AD, 100), (TPID_8021Q, inner)))

    wire = Wire(cap, dot1q)
    arp_exchange(wire, 0.1, s.HIK_ENTRANCE, Host(s.GATEWAY_IP), ROUTER_MAC, tags=dot1q.tags)
    tcp_session(
        wire, s.HIK_ENTRANCE, s.HIK_CLOUD, ports.take(), 443, 1.0, tls_segments(s.HIK_CLOUD_NAME, rng, 3)
    )
    # The same 5-tuple on inner VLANs 21 and 31 (outer 100): two flows, one destination.
    sport = ports.take()
    udp_telemetry(Wire(cap, qinq(21)), s.DAHUA_PARKING, s.DAHUA_CLOUD_B, sport, 2.0)
    udp_telemetry(Wire(cap, qinq(31)), s.DAHUA_PARKING, s.DAHUA_CLOUD_B, sport, 2.5)
    double = Wire(cap, Ethernet(((TPID_8021Q, 200), (TPID_8021Q, 22))))
    tcp_session(
        double,
        s.HIK_GYM,
        s.UK_FOOTAGE,
        ports.take(),
        554,
        3.0,
        rtsp_push(rng, f"rtsp://{s.UK_FOOTAGE.ip}/gym"),
    )
    # One flow whose two directions carry different stacks with the same innermost VLAN 20.
    tcp_session(
        wire,
        s.HIK_ENTRANCE,
        s.IE_SERVICE,
        ports.take(),
        443,
        4.0,
        tls_segments(s.IE_SERVICE_NAME, rng, 2),
        up_link=qinq(20),
        down_link=dot1q,
    )
    return cap


def erspan(rng: random.Random) -> Capture:
    """Mirrored via GRE: ERSPAN type II (0x88be) and III (0x22eb) from 10.99.0.1 to 10.99.0.2."""
    cap, ports = Capture("erspan.pcap"), Ports(rng)
    type2, type3 = Mirror("erspan2", Ethernet()), Mirror("erspan3", Ethernet())
    wire2, wire3 = Wire(cap, type2), Wire(cap, type3)
    tcp_session(
        wire2, s.HIK_ENTRANCE, s.HIK_CLOUD, ports.take(), 443, 1.0, tls_segments(s.HIK_CLOUD_NAME, rng, 3)
    )
    udp_telemetry(wire3, s.DAHUA_PARKING, s.DAHUA_CLOUD, ports.take(), 1.5)
    # One flow whose upstream arrives through type II and downstream through type III.
    tcp_session(
        wire2,
        s.HIK_GYM,
        s.US_FOOTAGE,
        ports.take(),
        554,
        2.0,
        rtsp_push(rng, f"rtsp://{s.US_FOOTAGE.ip}/gym"),
        up_link=type2,
        down_link=type3,
    )
    tcp_session(
        wire3, s.DAHUA_STRAY, s.US_TELEMETRY, ports.take(), 443, 3.0, tls_segments(s.IMOU_NAME, rng, 2)
    )
    return cap


def vxlan(rng: random.Random) -> Capture:
    """Mirrored via VXLAN (UDP 4789, VNI 5001) from 10.99.0.1 to 10.99.0.2."""
    cap, ports = Capture("vxlan.pcap"), Ports(rng)
    wire = Wire(cap, Mirror("vxlan", Ethernet()))
    tcp_session(
        wire, s.DAHUA_PARKING, s.DAHUA_CLOUD, ports.take(), 443, 1.0, tls_segments(s.DAHUA_CLOUD_NAME, rng, 3)
    )
    ntp_exchange(wire, s.HIK_ENTRANCE, s.NTP_SERVER, ports.take(), 1.5, rng)
    tcp_session(
        wire,
        s.HIK_ENTRANCE,
        s.CN_FOOTAGE,
        ports.take(),
        554,
        2.0,
        rtsp_push(rng, f"rtsp://{s.CN_FOOTAGE.ip}/entrance"),
    )
    return cap
