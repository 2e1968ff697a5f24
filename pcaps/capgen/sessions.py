"""Conversations on the wire: TCP sessions with a handshake and a FIN each way, DNS, NTP, ARP."""

from __future__ import annotations

import random
import socket
from dataclasses import dataclass
from typing import Any

import dpkt

from capgen import payloads
from capgen.frames import ETH_ARP, Ethernet, Link, ip_bytes, mac_bytes
from capgen.wire import TCP, UDP, Host, Wire

SYN, ACK, FIN, PSH = dpkt.tcp.TH_SYN, dpkt.tcp.TH_ACK, dpkt.tcp.TH_FIN, dpkt.tcp.TH_PUSH
DAHUA_TELEMETRY_PORT = 37777
ACK_EVERY = 4  # the receiver acknowledges every fourth data segment, as delayed ACK roughly does
HALF_RTT = 0.012


@dataclass(frozen=True, slots=True)
class Segment:
    """One data segment ``gap`` seconds after the previous event; ``up`` means client to server."""

    gap: float
    up: bool
    data: bytes
    sni: str | None = None
    app: str | None = None
    """What inspection must recognise from this segment on (see ``IpInfo.app``)."""
    dns_answers: tuple[tuple[str, str], ...] = ()
    caplen: int | None = None
    """Cut the frame to this many bytes, as a span port's snaplen would (the IP length still counts)."""


def tcp_session(
    wire: Wire,
    client: Host,
    server: Host,
    cport: int,
    sport: int,
    start: float,
    segments: list[Segment],
    *,
    up_link: Link | None = None,
    down_link: Link | None = None,
    client_extras: dict[str, Any] | None = None,
) -> float:
    """Handshake, the segments, then FIN from the client and FIN from the server; returns the end time.

    ``client_extras`` are extra ``Wire.send`` options for the client's packets (IPv6 extension
    headers, IPv4 options).
    """
    seq = {True: 1_000_000 + cport, False: 5_000_000 + sport}
    unacked = {True: 0, False: 0}

    def emit(t: float, up: bool, flags: int, data: bytes = b"", seg: Segment | None = None) -> None:
        src, dst = (client, server) if up else (server, client)
        sp, dp = (cport, sport) if up else (sport, cport)
        ack = seq[not up] if flags & ACK else 0
        segment = dpkt.tcp.TCP(sport=sp, dport=dp, seq=seq[up], ack=ack, flags=flags, win=64240, data=data)
        extras = (client_extras or {}) if up else {}
        wire.send(
            t,
            src,
            dst,
            TCP,
            segment,
            sport=sp,
            dport=dp,
            tcp_flags=flags,
            sni=seg.sni if seg else None,
            app=seg.app if seg else None,
            dns_answers=seg.dns_answers if seg else (),
            caplen=seg.caplen if seg else None,
            link=up_link if up else down_link,
            **extras,
        )
        seq[up] += len(data) + (1 if flags & (SYN | FIN) else 0)

    t = start
    emit(t, True, SYN)
    emit(t + HALF_RTT, False, SYN | ACK)
    t += 2 * HALF_RTT
    emit(t, True, ACK)
    for seg in segments:
        t += seg.gap
        emit(t, seg.up, PSH | ACK, seg.data, seg)
        unacked[seg.up] += 1
        if unacked[seg.up] == ACK_EVERY:
            emit(t + 0.001, not seg.up, ACK)
            unacked[seg.up] = 0
    t += 0.05
    emit(t, True, FIN | ACK)
    emit(t + HALF_RTT, False, FIN | ACK)
    t += 2 * HALF_RTT
    emit(t, True, ACK)
    return t


def tls_segments(
    sni: str,
    rng: random.Random,
    exchanges: int,
    *,
    upload: int = 300,
    download: int = 180,
    pause: float = 1.0,
) -> list[Segment]:
    """ClientHello, the server's flight, then request/response records ``pause`` seconds apart."""
    segments = [
        Segment(0.002, True, payloads.tls_client_hello(sni, rng), sni=sni),
        Segment(0.03, False, payloads.tls_opaque(1200, rng, payloads.TLS_HANDSHAKE)),
        Segment(0.03, True, payloads.tls_opaque(80, rng)),
    ]
    for _ in range(exchanges):
        segments.append(Segment(pause, True, payloads.tls_opaque(upload, rng)))
        segments.append(Segment(0.04, False, payloads.tls_opaque(download, rng)))
    return segments


def dns_lookup(
    wire: Wire, client: Host, resolver: Host, cport: int, t: float, name: str, address: str
) -> None:
    """A query and its answer; the answer is what names later flows to ``address``."""
    qtype = dpkt.dns.DNS_AAAA if ":" in address else dpkt.dns.DNS_A
    ident = cport ^ 0x5A5A
    query = payloads.dns_query(ident, name, qtype)
    wire.send(
        t, client, resolver, UDP, dpkt.udp.UDP(sport=cport, dport=53, data=query), sport=cport, dport=53
    )
    answer = payloads.dns_response(ident, name, qtype, ip_bytes(address))
    wire.send(
        t + 0.004,
        resolver,
        client,
        UDP,
        dpkt.udp.UDP(sport=53, dport=cport, data=answer),
        sport=53,
        dport=cport,
        dns_answers=((name, address),),
    )


def ntp_exchange(wire: Wire, client: Host, server: Host, cport: int, t: float, rng: random.Random) -> None:
    request = dpkt.udp.UDP(sport=cport, dport=123, data=payloads.ntp(3, rng))
    wire.send(t, client, server, UDP, request, sport=cport, dport=123)
    reply = dpkt.udp.UDP(sport=123, dport=cport, data=payloads.ntp(4, rng))
    wire.send(t + 0.03, server, client, UDP, reply, sport=123, dport=cport)


def udp_send(
    wire: Wire,
    t: float,
    src: Host,
    dst: Host,
    sport: int,
    dport: int,
    data: bytes,
    *,
    app: str | None = None,
    service: str | None = None,
    caplen: int | None = None,
) -> None:
    segment = dpkt.udp.UDP(sport=sport, dport=dport, data=data)
    wire.send(t, src, dst, UDP, segment, sport=sport, dport=dport, app=app, service=service, caplen=caplen)


def arp_exchange(
    wire: Wire, t: float, asker: Host, target: Host, target_mac: str, tags: tuple[tuple[int, int], ...] = ()
) -> None:
    """Who-has from ``asker`` (broadcast) and the reply: packets in the totals, never a flow."""
    link = Ethernet(tags)
    request = payloads.arp(
        dpkt.arp.ARP_OP_REQUEST,
        mac_bytes(asker.mac or ""),
        socket.inet_aton(asker.ip),
        b"\x00" * 6,
        socket.inet_aton(target.ip),
    )
    wire.raw(
        t,
        link.frame(request, ETH_ARP, asker.mac or "", "ff:ff:ff:ff:ff:ff", True),
        bindings=((asker.ip, asker.mac),),
    )
    reply = payloads.arp(
        dpkt.arp.ARP_OP_REPLY,
        mac_bytes(target_mac),
        socket.inet_aton(target.ip),
        mac_bytes(asker.mac or ""),
        socket.inet_aton(asker.ip),
    )
    wire.raw(
        t + 0.0005,
        link.frame(reply, ETH_ARP, target_mac, asker.mac or "", False),
        bindings=((target.ip, target_mac),),
    )


class Ports:
    """Ephemeral ports drawn from the capture's seeded generator, never the same one twice."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._used: set[int] = set()

    def take(self) -> int:
        while True:
            port = self._rng.randrange(49152, 65535)
            if port not in self._used:
                self._used.add(port)
                return port


def rtsp_segments(
    url: str, rng: random.Random, *, record: bool, packets: int, interval: float, size: int
) -> list[Segment]:
    """RTSP control exchange, then ``packets`` interleaved RTP packets of ``size`` media bytes.

    ``record`` is a push (ANNOUNCE/RECORD, media client to server); otherwise a pull
    (DESCRIBE/SETUP/PLAY, media server to client).
    """
    methods = ("ANNOUNCE", "SETUP", "RECORD") if record else ("DESCRIBE", "SETUP", "PLAY")
    segments = []
    for cseq, method in enumerate(methods, start=1):
        segments.append(Segment(0.01, True, payloads.rtsp_request(method, url, cseq)))
        segments.append(Segment(0.02, False, payloads.rtsp_reply(cseq)))
    ssrc = rng.getrandbits(32)
    for i in range(packets):
        packet = payloads.rtp(i, i * 3000, ssrc, size, rng)
        segments.append(Segment(interval, record, payloads.rtp_interleaved(0, packet)))
    segments.append(Segment(0.01, True, payloads.rtsp_request("TEARDOWN", url, len(methods) + 1)))
    segments.append(Segment(0.02, False, payloads.rtsp_reply(len(methods) + 1)))
    return segments


def udp_telemetry(wire: Wire, cam: Host, cloud: Host, sport: int, start: float, count: int = 5) -> None:
    """Small request/response datagrams, one pair a second."""
    for i in range(count):
        udp_send(wire, start + i, cam, cloud, sport, DAHUA_TELEMETRY_PORT, bytes(200 + i))
        udp_send(wire, start + i + 0.03, cloud, cam, DAHUA_TELEMETRY_PORT, sport, bytes(120))


def rtsp_push(rng: random.Random, url: str, packets: int = 20) -> list[Segment]:
    """A short RTSP RECORD session: 20 packets of 1000 media bytes, 4 a second."""
    return rtsp_segments(url, rng, record=True, packets=packets, interval=0.25, size=1000)
