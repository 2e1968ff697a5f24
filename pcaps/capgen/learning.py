"""learning.pcap: what egresswatch learns about the site on its own (issue 6), Ethernet, ~50 s.

- cam-hik-entrance gets 10.20.1.11 by DHCP and phones Hik-Connect; it then releases the lease and
  a laptop (Dell MAC) gets the same address and browses abroad: the laptop's flow is not the
  camera's, although the inventory lists the camera by that IP.
- A Hikvision camera on another subnet is seen only through the router (frames carry the
  router's MAC); its ARP reply binds its address, so its flow is attributed to it. The same for
  a Dahua camera's IPv6 address, bound by its neighbour advertisement.
- Announcements: an OEM camera (locally administered MAC, no camera OUI) sends an SADP Hello
  and later calls Hik-Connect (Hikvision, camera); a Dahua NVR's DHIP notify (role nvr); an
  ONVIF ProbeMatch from an AXIS camera with a non-Axis MAC; an SSDP NOTIFY from a Hikvision OUI.
- cam-hik-gym calls Hik-Connect (CN) early, then a service in IE at 40 s (a new country and ASN
  for a baseline shorter than 40 s), then Hik-Connect again at 45 s (the same alert key as at
  2 s: no second alert, even across a restart).
Nothing is in flight between 30 s and 38 s: the restart test splits the capture there.
"""

from __future__ import annotations

import random

import dpkt

from capgen import announce
from capgen import site as s
from capgen.capture import Capture
from capgen.frames import ip_bytes, mac_bytes
from capgen.sessions import Ports, arp_exchange, tcp_session, tls_segments, udp_send
from capgen.wire import ICMP6, ROUTER_MAC, Host, ethernet_wire

LAPTOP = Host(s.HIK_ENTRANCE.ip, "00:14:22:20:02:77")
ROUTED_CAM = Host("10.20.5.7", "44:19:b6:20:05:07")
ROUTED_CAM_VIA_ROUTER = Host(ROUTED_CAM.ip, ROUTER_MAC)
V6_CAM = Host("fd00:20:5::9", "3c:ef:8c:20:05:09")
V6_CAM_VIA_ROUTER = Host(V6_CAM.ip, ROUTER_MAC)
ROUTER_LINK_LOCAL = Host("fe80::1", ROUTER_MAC)
DE6 = Host("2001:db8:2::20")
OEM_CAM = Host("10.20.6.1", "02:1a:11:20:06:01")
DAHUA_NVR = Host("10.20.6.2", "3c:ef:8c:20:06:02")
ONVIF_CAM = Host("10.20.6.3", "02:1a:11:20:06:03")
SSDP_CAM = Host("10.20.6.4", "44:19:b6:20:06:04")
SPLIT_AT = 34.0
"""Seconds from the start: a quiet moment (no flow open) for the restart test."""


def build(rng: random.Random) -> Capture:
    cap = Capture("learning.pcap")
    wire = ethernet_wire(cap)
    ports = Ports(rng)
    gateway = Host(s.GATEWAY_IP)

    announce.dhcp_ack(wire, 0.2, s.HIK_ENTRANCE, "cam-entrance")
    announce.sadp_hello(wire, 0.3, OEM_CAM, "DS-2CD2143G2-I", "camera", "V5.7.3build 220112")
    announce.dhip_notify(wire, 0.4, DAHUA_NVR, "DHI-NVR5216-4KS2", "NVR", "nvr")
    announce.wsd_probe_match(wire, 0.5, ONVIF_CAM, s.PC, "AXIS%20M3106", "axis")
    announce.ssdp_notify(wire, 0.6, SSDP_CAM, "Linux UPnP/1.0 Hikvision/1.0", "hikvision")

    tcp_session(
        wire, s.HIK_ENTRANCE, s.HIK_CLOUD, ports.take(), 443, 1.0, tls_segments(s.HIK_CLOUD_NAME, rng, 3)
    )
    tcp_session(wire, s.HIK_GYM, s.HIK_CLOUD, ports.take(), 443, 2.0, tls_segments(s.HIK_CLOUD_NAME, rng, 3))

    # The lease moves from the camera to a laptop.
    announce.dhcp_release(wire, 8.0, s.HIK_ENTRANCE)
    announce.dhcp_ack(wire, 9.0, LAPTOP, "laptop-77")
    tcp_session(wire, LAPTOP, s.US_CLOUD, ports.take(), 443, 10.0, tls_segments("www.example.com", rng, 3))

    # Routed hosts, known only by what ARP and neighbour discovery bound.
    arp_exchange(wire, 14.0, ROUTED_CAM, gateway, ROUTER_MAC)
    tcp_session(
        wire,
        ROUTED_CAM_VIA_ROUTER,
        s.EZVIZ_CLOUD,
        ports.take(),
        443,
        15.0,
        tls_segments(s.EZVIZ_NAME, rng, 3),
    )
    # An unsolicited advertisement (override flag) for its own address (RFC 4861 7.2.6).
    option = b"\x02\x01" + mac_bytes(V6_CAM.mac or "")
    advert = dpkt.icmp6.ICMP6(type=136, data=b"\x20" + b"\x00" * 3 + ip_bytes(V6_CAM.ip) + option)
    wire.send(17.0, V6_CAM, ROUTER_LINK_LOCAL, ICMP6, advert)
    wire.mark_last(bindings=((V6_CAM.ip, V6_CAM.mac),))
    sport = ports.take()
    for i in range(3):
        udp_send(wire, 18.0 + i, V6_CAM_VIA_ROUTER, DE6, sport, 5000, bytes(160))
        udp_send(wire, 18.05 + i, DE6, V6_CAM_VIA_ROUTER, 5000, sport, bytes(90))

    # Announced devices phone home.
    tcp_session(wire, OEM_CAM, s.HIK_CLOUD, ports.take(), 443, 22.0, tls_segments(s.HIK_CLOUD_NAME, rng, 2))
    tcp_session(
        wire, DAHUA_NVR, s.DAHUA_CLOUD, ports.take(), 443, 24.0, tls_segments(s.DAHUA_CLOUD_NAME, rng, 2)
    )

    # After the split: a new country for cam-hik-gym, then its first destination again.
    tcp_session(
        wire, s.HIK_GYM, s.IE_SERVICE, ports.take(), 443, 40.0, tls_segments(s.IE_SERVICE_NAME, rng, 2)
    )
    tcp_session(wire, s.HIK_GYM, s.HIK_CLOUD, ports.take(), 443, 45.0, tls_segments(s.HIK_CLOUD_NAME, rng, 2))
    return cap
