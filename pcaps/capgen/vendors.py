"""services.pcap: the school's cameras talking to vendor clouds and streaming services (Ethernet).

One scenario per service and category of issue 4; pcaps/README.md lists what each must come out as.
Packets that start an application carry ``app`` (and ``service`` for catalogue signatures) in the
generator's record, which is all the ground truth knows about them.
"""

from __future__ import annotations

import random

import dpkt

from capgen import media, payloads
from capgen import site as s
from capgen.capture import Capture
from capgen.quic import client_initial
from capgen.sessions import Ports, Segment, dns_lookup, tcp_session, udp_send
from capgen.wire import UDP, Host, Wire, ethernet_wire

HIK_CONNECT = Host("198.51.100.160")  # DE: Hik-Connect's MQTT broker behind a CNAME chain
HIK_CONNECT_NAME = "api.hik-connect.com"
HIK_CONNECT_CHAIN = ("api-eu.hik-connect.com", "mqtt-fra.hikcloud-edge.example.net")
EZVIZ_RELAY = Host("198.51.100.170")  # DE: an EU-hosted relay of a CN-operated service
EZVIZ_RELAY_NAME = "relay-eu.ezvizlife.com"
EZVIZ_API = Host("192.0.2.90")  # IE, reached over QUIC
EZVIZ_API_NAME = "api.ezvizlife.com"
DAHUA_P2P = Host("198.51.100.180")  # DE
DAHUA_P2P_NAME = "www.easy4ipcloud.com"
REOLINK_P2P = Host("198.51.100.61")  # CN
REOLINK_P2P_NAME = "p2p3.reolink.com"
REOLINK_FIRMWARE = Host("198.51.100.63")  # CN
REOLINK_FIRMWARE_NAME = "download.reolink.com"
RTMP_SERVER = Host("203.0.113.70")  # US
RTMP_PORT = 8080  # not 1935: the handshake, not the port, has to say RTMP
HLS_INGEST = Host("203.0.113.80")  # US
HLS_INGEST_NAME = "ingest.streams.example.net"
DAHUA_P2P_PORT = 8800
REOLINK_P2P_PORT = 9999
SNAP = 96
"""Bulk frames (video, firmware) are kept to their first 96 bytes, as a span sensor's snaplen would
cut them: their IP lengths still count in full, and the captures stay small."""


def _mqtt_over_cname(wire: Wire, ports: Ports, rng: random.Random, t: float) -> None:
    """A CNAME chain names the broker; MQTT on 1883 carries heartbeats (telemetry, Hik-Connect)."""
    cport = ports.take()
    query = payloads.dns_query(cport, HIK_CONNECT_NAME, dpkt.dns.DNS_A)
    udp_send(wire, t, s.HIK_ENTRANCE, s.RESOLVER, cport, 53, query)
    answer = media.dns_cname_response(cport, HIK_CONNECT_NAME, HIK_CONNECT_CHAIN, bytes([198, 51, 100, 160]))
    wire.send(
        t + 0.004, s.RESOLVER, s.HIK_ENTRANCE, UDP, dpkt.udp.UDP(sport=53, dport=cport, data=answer),
        sport=53, dport=cport, dns_answers=((HIK_CONNECT_NAME, HIK_CONNECT.ip),),
    )  # fmt: skip
    segments = [Segment(0.01, True, media.mqtt_connect("cam-hik-entrance"), app="mqtt")]
    segments.append(Segment(0.03, False, b"\x20\x02\x00\x00"))  # CONNACK
    for i in range(5):
        segments.append(Segment(1.0, True, media.mqtt_publish("dev/heartbeat", b'{"seq":%d}' % i)))
    tcp_session(wire, s.HIK_ENTRANCE, HIK_CONNECT, ports.take(), 1883, t + 0.2, segments)


def _ezviz_relay(wire: Wire, ports: Ports, rng: random.Random, t: float) -> None:
    """TLS whose ClientHello is split over two segments, then 20 s of video up at 40 records/s
    (~380 kbit/s): footage by shape, to a DE server of a CN operator."""
    hello = payloads.tls_client_hello(EZVIZ_RELAY_NAME, rng)
    segments = [
        Segment(0.002, True, hello[:40], sni=EZVIZ_RELAY_NAME),
        Segment(0.003, True, hello[40:]),
        Segment(0.03, False, payloads.tls_opaque(1200, rng, payloads.TLS_HANDSHAKE)),
    ]
    segments += [Segment(0.025, True, payloads.tls_opaque(1150, rng), caplen=SNAP) for _ in range(20 * 40)]
    tcp_session(wire, s.HIK_GYM, EZVIZ_RELAY, ports.take(), 443, t, segments)


def _dahua_signalling_then_relay(wire: Wire, ports: Ports, rng: random.Random, t: float) -> None:
    """DHGET/DHPOST on UDP 8800, then PTCP video on the same flow: telemetry, then footage."""
    dns_lookup(wire, s.DAHUA_PARKING, s.RESOLVER, ports.take(), t, DAHUA_P2P_NAME, DAHUA_P2P.ip)
    cam, cport, signed = s.DAHUA_PARKING, ports.take(), "Dahua P2P (Easy4IP)"
    t += 0.3
    for cseq, (method, path) in enumerate((("DHGET", "/probe/p2psrv"), ("DHPOST", "/online/relay")), 1):
        request = media.dahua_request(method, path, cseq)
        udp_send(wire, t, cam, DAHUA_P2P, cport, DAHUA_P2P_PORT, request, app="dh-p2p", service=signed)
        udp_send(wire, t + 0.04, DAHUA_P2P, cam, DAHUA_P2P_PORT, cport, media.dahua_reply(cseq))
        t += 0.5
    for i in range(12 * 30):
        packet = media.ptcp(i, rng.randbytes(1000))
        app = "ptcp" if i == 0 else None
        udp_send(wire, t + i / 30, cam, DAHUA_P2P, cport, DAHUA_P2P_PORT, packet, app=app, caplen=SNAP)
        if i % 30 == 29:
            udp_send(wire, t + i / 30 + 0.01, DAHUA_P2P, cam, DAHUA_P2P_PORT, cport, media.ptcp(i, b""))


def _reolink_p2p(wire: Wire, ports: Ports, rng: random.Random, t: float) -> None:
    """DNS over TCP names the relay; Baichuan negotiation on UDP 9999 turns into relayed data."""
    cport = ports.take()
    query = media.tcp_dns(payloads.dns_query(cport, REOLINK_P2P_NAME, dpkt.dns.DNS_A))
    reply = payloads.dns_response(cport, REOLINK_P2P_NAME, dpkt.dns.DNS_A, bytes([198, 51, 100, 61]))
    answers = ((REOLINK_P2P_NAME, REOLINK_P2P.ip),)
    segments = [Segment(0.01, True, query), Segment(0.01, False, media.tcp_dns(reply), dns_answers=answers)]
    t = tcp_session(wire, s.DAHUA_YARD, s.RESOLVER, cport, 53, t, segments) + 0.2
    cam, cport, connection = s.DAHUA_YARD, ports.take(), rng.getrandbits(32)
    for magic in (media.BAICHUAN_NEGO, media.BAICHUAN_ACK):
        body = media.baichuan(magic, connection, rng.randbytes(120))
        udp_send(
            wire,
            t,
            cam,
            REOLINK_P2P,
            cport,
            REOLINK_P2P_PORT,
            body,
            app="baichuan-p2p",
            service="Reolink P2P",
        )
        udp_send(
            wire, t + 0.05, REOLINK_P2P, cam, REOLINK_P2P_PORT, cport, media.baichuan(magic, connection, b"")
        )
        t += 0.3
    for i in range(12 * 25):
        body = media.baichuan(media.BAICHUAN_DATA, connection, rng.randbytes(900))
        app = "baichuan-relay" if i == 0 else None
        udp_send(wire, t + i / 25, cam, REOLINK_P2P, cport, REOLINK_P2P_PORT, body, app=app, caplen=SNAP)


def _rtmp_push(wire: Wire, ports: Ports, rng: random.Random, t: float) -> None:
    """RTMP on a non-standard port: C0+C1 over two segments, S0+S1+S2, C2, then 40 video chunks."""
    c0c1 = media.rtmp_c0c1(rng)
    segments = [Segment(0.002, True, c0c1[:1400]), Segment(0.001, True, c0c1[1400:], app="rtmp")]
    s0s1s2 = b"\x03" + rng.randbytes(2 * media.RTMP_C1_BYTES)
    segments += [Segment(0.02, False, s0s1s2[i : i + 1460]) for i in range(0, len(s0s1s2), 1460)]
    c2 = rng.randbytes(media.RTMP_C1_BYTES)
    segments += [Segment(0.02, True, c2[:1400]), Segment(0.001, True, c2[1400:])]
    segments += [Segment(0.1, True, rng.randbytes(1200), caplen=SNAP) for _ in range(40)]
    tcp_session(wire, s.HIK_ENTRANCE, RTMP_SERVER, ports.take(), RTMP_PORT, t, segments)


def _hls_upload(wire: Wire, ports: Ports, rng: random.Random, t: float) -> None:
    """Three HTTP PUTs of MPEG-TS segments (named by the Host header)."""
    segments = []
    for n in range(3):
        body = rng.randbytes(4 * 1316)
        request = media.http_put(f"/live/parking/seg{n:05d}.ts", HLS_INGEST_NAME, "video/mp2t", body)
        first = n == 0
        chunks = [request[i : i + 1400] for i in range(0, len(request), 1400)]
        segments.append(
            Segment(
                0.5, True, chunks[0], sni=HLS_INGEST_NAME if first else None, app="hls" if first else None
            )
        )
        segments += [Segment(0.002, True, chunk) for chunk in chunks[1:]]
        segments.append(Segment(0.05, False, b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"))
    tcp_session(wire, s.DAHUA_PARKING, HLS_INGEST, ports.take(), 80, t, segments)


def _quic_api(wire: Wire, ports: Ports, rng: random.Random, t: float) -> None:
    """A QUIC Initial whose ClientHello names the EZVIZ API, then a few short datagrams each way."""
    cport = ports.take()
    hello = payloads.tls_client_hello(EZVIZ_API_NAME, rng)[5:]  # QUIC carries no TLS record layer
    wire.send(
        t, s.HIK_GYM, EZVIZ_API, UDP, dpkt.udp.UDP(sport=cport, dport=443, data=client_initial(hello, rng)),
        sport=cport, dport=443, sni=EZVIZ_API_NAME,
    )  # fmt: skip
    udp_send(wire, t + 0.03, EZVIZ_API, s.HIK_GYM, 443, cport, b"\xc1" + rng.randbytes(1199))
    for i in range(5):
        udp_send(wire, t + 0.5 + i, s.HIK_GYM, EZVIZ_API, cport, 443, b"\x41" + rng.randbytes(120))
        udp_send(wire, t + 0.53 + i, EZVIZ_API, s.HIK_GYM, 443, cport, b"\x41" + rng.randbytes(240))


def _firmware(wire: Wire, ports: Ports, rng: random.Random, t: float) -> None:
    """An HTTP GET of a firmware image: 1.5 MB down from the vendor's download host."""
    dns_lookup(wire, s.DAHUA_YARD, s.RESOLVER, ports.take(), t, REOLINK_FIRMWARE_NAME, REOLINK_FIRMWARE.ip)
    request = media.http_get("/firmware/IPC_523SD8.pak", REOLINK_FIRMWARE_NAME)
    segments = [Segment(0.01, True, request, sni=REOLINK_FIRMWARE_NAME)]
    segments += [Segment(0.008, False, rng.randbytes(1400), caplen=SNAP) for _ in range(1100)]
    tcp_session(wire, s.DAHUA_YARD, REOLINK_FIRMWARE, ports.take(), 80, t + 0.2, segments)


def build(rng: random.Random) -> Capture:
    cap = Capture("services.pcap")
    wire = ethernet_wire(cap)
    ports = Ports(rng)
    _mqtt_over_cname(wire, ports, rng, 1.0)
    _ezviz_relay(wire, ports, rng, 3.0)
    _dahua_signalling_then_relay(wire, ports, rng, 5.0)
    _reolink_p2p(wire, ports, rng, 7.0)
    _rtmp_push(wire, ports, rng, 9.0)
    _hls_upload(wire, ports, rng, 11.0)
    _quic_api(wire, ports, rng, 13.0)
    _firmware(wire, ports, rng, 15.0)
    return cap
