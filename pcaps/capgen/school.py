"""school.pcap: the demo, a school's camera VLAN seen on a span port (Ethernet)."""

from __future__ import annotations

import random

import dpkt

from capgen import announce, payloads
from capgen import site as s
from capgen.capture import Capture
from capgen.sessions import (
    Ports,
    arp_exchange,
    dns_lookup,
    ntp_exchange,
    rtsp_segments,
    tcp_session,
    tls_segments,
    udp_send,
)
from capgen.wire import ICMP, ROUTER_MAC, Host, Wire, ethernet_wire


def _rtp_to_nvr(wire: Wire, cam: Host, ports: Ports, rng: random.Random, start: float, seconds: int) -> None:
    """Camera pushes RTP/UDP to the NVR at 4 packets/s (local: verdict "local", no egress row)."""
    sport, dport, ssrc = ports.take(), ports.take(), rng.getrandbits(32)
    for i in range(seconds * 4):
        udp_send(wire, start + i * 0.25, cam, s.NVR, sport, dport, payloads.rtp(i, i * 22500, ssrc, 700, rng))


def _video_upstream(wire: Wire, cam: Host, dst: Host, ports: Ports, rng: random.Random, start: float) -> None:
    """Unidentified UDP from a Dahua camera to CN: 14 s at 30 packets/s of 1400 IP bytes (~336 kbit/s),
    one 80-byte packet back per second. Footage only by its shape."""
    sport, dport = ports.take(), ports.take()
    for i in range(14 * 30):
        udp_send(wire, start + i / 30, cam, dst, sport, dport, b"\x17" + rng.randbytes(1400 - 28 - 1))
        if i % 30 == 15:
            udp_send(
                wire, start + i / 30 + 0.005, dst, cam, dport, sport, b"\x18" + rng.randbytes(80 - 28 - 1)
            )


def _ping(wire: Wire, src: Host, dst: Host, start: float) -> None:
    for seq in range(3):
        echo = dpkt.icmp.ICMP(type=8, data=dpkt.icmp.ICMP.Echo(id=0x4242, seq=seq, data=b"egresswatch" * 4))
        wire.send(start + seq, src, dst, ICMP, echo)
        reply = dpkt.icmp.ICMP(type=0, data=dpkt.icmp.ICMP.Echo(id=0x4242, seq=seq, data=b"egresswatch" * 4))
        wire.send(start + seq + 0.02, dst, src, ICMP, reply)


def build(rng: random.Random) -> Capture:
    cap = Capture("school.pcap")
    wire = ethernet_wire(cap)
    ports = Ports(rng)
    gateway = Host(s.GATEWAY_IP)
    # What each camera and the NVR announce at boot: enough to find them with an empty inventory.
    announce.sadp_hello(wire, 0.01, s.HIK_ENTRANCE, "DS-2CD2143G2-I", "camera", "V5.7.3build 220112")
    announce.sadp_hello(wire, 0.02, s.HIK_GYM, "DS-2CD2387G2-LU", "camera", "V5.7.3build 220112")
    announce.sadp_hello(wire, 0.03, s.NVR, "DS-7608NI-K2", "nvr", "V4.30.085build 220316")
    announce.dhip_notify(wire, 0.04, s.DAHUA_YARD, "IPC-HFW2431S-S-S2", "IPC", "camera")
    announce.dhip_notify(wire, 0.05, s.DAHUA_PARKING, "IPC-HDW1531SP", "IPC", "camera")
    for i, cam in enumerate((s.HIK_ENTRANCE, s.HIK_GYM, s.DAHUA_YARD, s.DAHUA_PARKING, s.NVR)):
        arp_exchange(wire, 0.1 + i * 0.05, cam, gateway, ROUTER_MAC)

    # The NVR pulls two cameras over RTSP (NVR initiates: both ends are devices, the NVR is source).
    for i, cam in enumerate((s.HIK_ENTRANCE, s.DAHUA_PARKING)):
        url = f"rtsp://{cam.ip}/Streaming/Channels/101"
        segs = rtsp_segments(url, rng, record=False, packets=80, interval=0.5, size=900)
        tcp_session(wire, s.NVR, cam, ports.take(), 554, 0.5 + i * 0.3, segs)
    for i, cam in enumerate((s.HIK_GYM, s.DAHUA_YARD)):
        _rtp_to_nvr(wire, cam, ports, rng, 1.0 + i * 0.1, 30)

    # Cloud telemetry: DNS through the site resolver, then TLS with the same name as SNI.
    dns_lookup(wire, s.HIK_ENTRANCE, s.RESOLVER, ports.take(), 2.0, s.HIK_CLOUD_NAME, s.HIK_CLOUD.ip)
    tcp_session(
        wire, s.HIK_ENTRANCE, s.HIK_CLOUD, ports.take(), 443, 2.2, tls_segments(s.HIK_CLOUD_NAME, rng, 5)
    )
    dns_lookup(wire, s.HIK_GYM, s.RESOLVER, ports.take(), 2.5, s.HIK_CLOUD_NAME, s.HIK_CLOUD.ip)
    tcp_session(wire, s.HIK_GYM, s.HIK_CLOUD, ports.take(), 443, 2.7, tls_segments(s.HIK_CLOUD_NAME, rng, 4))
    for i, cam in enumerate((s.DAHUA_YARD, s.DAHUA_PARKING)):
        dns_lookup(wire, cam, s.RESOLVER, ports.take(), 3.0 + i * 0.4, s.DAHUA_CLOUD_NAME, s.DAHUA_CLOUD.ip)
        tcp_session(
            wire,
            cam,
            s.DAHUA_CLOUD,
            ports.take(),
            443,
            3.2 + i * 0.4,
            tls_segments(s.DAHUA_CLOUD_NAME, rng, 3),
        )
    for i, cam in enumerate((s.HIK_ENTRANCE, s.DAHUA_PARKING)):
        dns_lookup(wire, cam, s.RESOLVER, ports.take(), 3.9 + i * 0.5, s.NTP_NAME, s.NTP_SERVER.ip)
        ntp_exchange(wire, cam, s.NTP_SERVER, ports.take(), 4.0 + i * 0.5, rng)

    # A Hikvision camera streams footage to a Hik-Connect relay in CN for 75 s (interim report at 60 s).
    dns_lookup(wire, s.HIK_ENTRANCE, s.RESOLVER, ports.take(), 4.8, s.HIK_RELAY_NAME, s.CN_FOOTAGE.ip)
    segs = rtsp_segments(
        f"rtsp://{s.HIK_RELAY_NAME}/live/entrance", rng, record=True, packets=150, interval=0.5, size=1100
    )
    tcp_session(wire, s.HIK_ENTRANCE, s.CN_FOOTAGE, ports.take(), 554, 5.0, segs)

    # A Dahua camera sends unidentified video-shaped UDP to a Dahua relay in CN.
    dns_lookup(wire, s.DAHUA_YARD, s.RESOLVER, ports.take(), 9.8, s.DAHUA_RELAY_NAME, s.CN_VIDEO_SINK.ip)
    _video_upstream(wire, s.DAHUA_YARD, s.CN_VIDEO_SINK, ports, rng, 10.0)

    # The NVR backs footage up to the allowed offsite store (RTSP RECORD to 8554, named by DNS).
    dns_lookup(wire, s.NVR, s.RESOLVER, ports.take(), 20.0, s.BACKUP_NAME, s.BACKUP.ip)
    segs = rtsp_segments(
        f"rtsp://{s.BACKUP_NAME}:8554/school", rng, record=True, packets=60, interval=0.5, size=1100
    )
    tcp_session(wire, s.NVR, s.BACKUP, ports.take(), 8554, 20.3, segs)

    # The office PC browses abroad and pings: counted in the totals, never a device, never an alert.
    dns_lookup(wire, s.PC, s.RESOLVER, ports.take(), 30.0, "www.example.com", s.US_CLOUD.ip)
    tcp_session(wire, s.PC, s.US_CLOUD, ports.take(), 443, 30.2, tls_segments("www.example.com", rng, 3))
    tcp_session(wire, s.PC, s.PC_CN, ports.take(), 443, 31.0, tls_segments("portal.example.net", rng, 2))
    _ping(wire, s.PC, s.IE_PING, 32.0)

    # A Hikvision camera missing from the inventory phones home (SNI only, no DNS).
    arp_exchange(wire, 39.5, s.HIK_STRAY, gateway, ROUTER_MAC)
    tcp_session(wire, s.HIK_STRAY, s.EZVIZ_CLOUD, ports.take(), 443, 40.0, tls_segments(s.EZVIZ_NAME, rng, 4))

    # A second connection to the same cloud address: same alert, two flows in one egress row.
    tcp_session(
        wire, s.HIK_ENTRANCE, s.HIK_CLOUD, ports.take(), 443, 60.0, tls_segments(s.HIK_CLOUD_NAME, rng, 3)
    )
    return cap
