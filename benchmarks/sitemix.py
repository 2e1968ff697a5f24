"""The synthetic site: a deterministic capture of a camera site's mirror port, and its config.

What is in it (shares of packets at the default size, 1,000,000 packets over 60 s):

- ~68%: 60 cameras streaming H.264 to 4 NVRs. Half stream RTP over UDP after an RTSP
  setup on TCP 554; half interleave RTP in the RTSP TCP connection (RFC 2326 10.12), the NVR
  ACKing every fourth segment. Video segments carry 1,000-1,400 bytes of payload.
- ~2%: the cameras' own traffic: a DNS lookup of the vendor cloud, a TLS session to it
  (198.51.100.0/24, 203.0.113.0/24; countries in `siteconfig`) with keepalives, NTP to
  203.0.113.123, and for a few cameras a clip upload to the cloud (footage leaving the site).
- ~30%: office hosts making many short flows: DNS then HTTPS (a TLS ClientHello with SNI) or
  HTTP, a few response segments, FIN both ways; a quarter of them on 802.1Q VLAN 30 and one in
  twenty over IPv6 to 2001:db8::/32; ARP who-has now and then.
- 4 of the 60 cameras are behind an 802.1Q trunk (VLAN 21), so some video is tagged.

All randomness comes from one seeded `random.Random`, packets are laid out on a timeline and
written in time order, so the same arguments give the same bytes. Video is rendered only while
writing (never held in memory); short conversations are kept as small step tuples.
"""

from __future__ import annotations

import hashlib
import random
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from frames import (
    ACK,
    FIN,
    PROTO_TCP,
    PROTO_UDP,
    PSH,
    SYN,
    Leg,
    arp_request,
    dns_answer,
    dns_query,
    http_get,
    http_response,
    mac_bytes,
    ntp,
    rtp,
    rtsp_interleaved,
    rtsp_request,
    rtsp_response,
    tls_application_data,
    tls_client_hello,
)

GENERATOR_VERSION = 1
"""Bump when the traffic changes, so cached captures are rebuilt."""
T0 = 1768204800
"""2026-01-12T08:00:00Z: packet time of the first second."""
PCAP_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)
RECORD = struct.Struct("<IIII")
STREAM_BIT = 1 << 31
STREAM_INDEX_BITS = 20
UDP = -1
"""Step flags of a UDP datagram (TCP steps carry the TCP flags)."""
RAW = -2

GATEWAY_MAC = mac_bytes("00:00:5e:00:53:01")
"""The site router (RFC 7042 documentation MAC): next hop for everything leaving the site."""
CAMERA_OUIS = (("hikvision", "44:19:b6"), ("dahua", "3c:ef:8c"), ("axis", "00:40:8c"))
NVR_OUI = "c0:56:e3"
CLOUDS = {
    "hikvision": ("dev.hik-cloud.example", "203.0.113.20"),
    "dahua": ("p2p.dahua-cloud.example", "198.51.100.40"),
    "axis": ("dispatch.axis-cloud.example", "198.51.100.140"),
}
UPLOAD_DESTINATION = ("clips.storage.example", "198.51.100.80")
NTP_SERVER = "203.0.113.123"
OFFICE_SITES = (
    ("www.example.com", "192.0.2.10"),
    ("mail.example.net", "192.0.2.25"),
    ("cdn.example.org", "198.51.100.60"),
    ("api.example.com", "203.0.113.15"),
    ("docs.example.net", "198.51.100.200"),
    ("intranet-sync.example.org", "192.0.2.90"),
)
OFFICE_SITES_V6 = (("v6.example.com", "2001:db8:1::10"), ("v6.example.net", "2001:db8:2::20"))
DNS_RESOLVER = "10.20.0.1"
OFFICE_RESOLVER = "10.30.0.1"
OFFICE_RESOLVER_V6 = "fd00:30::1"


@dataclass(frozen=True, slots=True)
class SiteSpec:
    """What to generate; every field is part of the cache key."""

    packets: int = 1_000_000
    cameras: int = 60
    nvrs: int = 4
    seconds: int = 60
    office_hosts: int = 200
    seed: int = 7

    @property
    def stem(self) -> str:
        return (
            f"sitemix-v{GENERATOR_VERSION}-{self.packets}p-{self.cameras}c-{self.nvrs}n-{self.seconds}s-"
            f"{self.office_hosts}h-seed{self.seed}"
        )


QUICK = SiteSpec(packets=6000, cameras=6, nvrs=1, seconds=10, office_hosts=20)


@dataclass(frozen=True, slots=True)
class Camera:
    name: str
    vendor: str
    mac: str
    ip: str
    vlan: int | None
    nvr: int
    """Index into the NVR list."""


@dataclass(frozen=True, slots=True)
class Nvr:
    name: str
    mac: str
    ip: str


def site_devices(spec: SiteSpec) -> tuple[list[Camera], list[Nvr]]:
    """The inventory: NVRs at 10.20.0.2.., cameras at 10.20.0.11..; every 15th camera on VLAN 21."""
    nvrs = [
        Nvr(f"nvr-{i + 1:02d}", f"{NVR_OUI}:00:01:{i + 1:02x}", f"10.20.0.{2 + i}") for i in range(spec.nvrs)
    ]
    cameras = []
    for i in range(spec.cameras):
        vendor, oui = CAMERA_OUIS[i % len(CAMERA_OUIS)]
        cameras.append(
            Camera(
                name=f"cam-{i + 1:03d}",
                vendor=vendor,
                mac=f"{oui}:00:{i >> 8:02x}:{i & 0xFF:02x}",
                ip=f"10.20.{(11 + i) >> 8}.{(11 + i) & 0xFF}",
                vlan=21 if i % 15 == 14 else None,
                nvr=i % spec.nvrs,
            )
        )
    return cameras, nvrs


class Timeline:
    """Packets on a shared clock. Sort keys are ints: microsecond << 32 | what to render.

    The low 32 bits are either an index into `steps` (short conversations, rendered from a step
    tuple) or STREAM_BIT | stream << 20 | n (packet n of a long video stream, rendered on demand).
    """

    def __init__(self, spec: SiteSpec) -> None:
        self.end_us = spec.seconds * 1_000_000
        self.keys: list[int] = []
        self.steps: list[tuple[Leg | None, int, int, int, bytes]] = []
        self.streams: list[VideoStream] = []

    def packet(
        self, t_us: int, leg: Leg, payload: bytes, flags: int = UDP, seq: int = 0, ack: int = 0
    ) -> None:
        """A UDP datagram (flags UDP) or TCP segment at ``t_us``; dropped past the end of the capture."""
        if 0 <= t_us < self.end_us:
            self.keys.append(t_us << 32 | len(self.steps))
            self.steps.append((leg, flags, seq, ack, payload))

    def raw(self, t_us: int, frame: bytes) -> None:
        """A frame that is already whole (ARP)."""
        if 0 <= t_us < self.end_us:
            self.keys.append(t_us << 32 | len(self.steps))
            self.steps.append((None, RAW, 0, 0, frame))

    def render(self, low: int) -> bytes:
        if low & STREAM_BIT:
            stream = self.streams[(low ^ STREAM_BIT) >> STREAM_INDEX_BITS]
            return stream.frame(low & ((1 << STREAM_INDEX_BITS) - 1))
        leg, flags, seq, ack, payload = self.steps[low]
        if leg is None:
            return payload
        return leg.udp(payload) if flags == UDP else leg.tcp(seq, ack, flags, payload)


class TcpSession:
    """A client/server TCP conversation: handshake, request/response segments with ACKs, FIN both ways."""

    def __init__(
        self, timeline: Timeline, client: Leg, server: Leg, t_us: int, rtt_us: int, rng: random.Random
    ):
        self.timeline = timeline
        self.client = client
        self.server = server
        self.t = t_us
        self.rtt = rtt_us
        self.cseq = rng.getrandbits(32)
        self.sseq = rng.getrandbits(32)
        timeline.packet(self.t, client, b"", SYN, self.cseq)
        timeline.packet(self.t + rtt_us // 2, server, b"", SYN | ACK, self.sseq, self.cseq + 1)
        self.t += rtt_us
        self.cseq += 1
        self.sseq += 1
        timeline.packet(self.t, client, b"", ACK, self.cseq, self.sseq)

    def send(self, from_client: bool, payload: bytes, gap_us: int = 200) -> None:
        self.t += gap_us
        if from_client:
            self.timeline.packet(self.t, self.client, payload, PSH | ACK, self.cseq, self.sseq)
            self.cseq += len(payload)
        else:
            self.timeline.packet(self.t, self.server, payload, PSH | ACK, self.sseq, self.cseq)
            self.sseq += len(payload)

    def ack(self, from_client: bool) -> None:
        self.t += 50
        leg, seq, ack = (
            (self.client, self.cseq, self.sseq) if from_client else (self.server, self.sseq, self.cseq)
        )
        self.timeline.packet(self.t, leg, b"", ACK, seq, ack)

    def close(self) -> None:
        self.t += 1000
        self.timeline.packet(self.t, self.client, b"", FIN | ACK, self.cseq, self.sseq)
        self.timeline.packet(self.t + self.rtt // 2, self.server, b"", FIN | ACK, self.sseq, self.cseq + 1)
        self.timeline.packet(self.t + self.rtt, self.client, b"", ACK, self.cseq + 1, self.sseq + 1)


class VideoStream:
    """Camera -> NVR video, ``count`` packets evenly spaced with jitter, rendered on demand.

    Over UDP every packet is RTP; interleaved in TCP, every fifth packet is the NVR's ACK.
    """

    def __init__(
        self,
        camera_to_nvr: Leg,
        nvr_to_camera: Leg,
        tcp: TcpSession | None,
        start_us: int,
        end_us: int,
        count: int,
        rng: random.Random,
    ) -> None:
        self.up = camera_to_nvr
        self.down = nvr_to_camera
        self.tcp = tcp
        self.ssrc = rng.getrandbits(32)
        self.bodies = [rng.randbytes(rng.randrange(1000, 1400)) for _ in range(8)]
        self.seq = tcp.sseq if tcp else 0
        self.ack = tcp.cseq if tcp else 0
        step = (end_us - start_us) / max(count, 1)
        self.times = [start_us + int(i * step + rng.random() * step * 0.5) for i in range(count)]

    def frame(self, n: int) -> bytes:
        if self.tcp is None:
            return self.up.udp(rtp(n, n * 3000, self.ssrc, self.bodies[n & 7], marker=n % 30 == 29))
        if n % 5 == 4:
            return self.down.tcp(self.ack, self.seq, ACK)
        segment = rtsp_interleaved(0, rtp(n, n * 3000, self.ssrc, self.bodies[n & 7]))
        self.seq += len(segment)  # frames are rendered in order, so the byte stream stays consistent
        return self.up.tcp(self.seq - len(segment), self.ack, PSH | ACK, segment)


def _camera_control(tl: Timeline, cam: Camera, nvr: Nvr, interleaved: bool, rng: random.Random) -> TcpSession:
    """The NVR's RTSP session to the camera: OPTIONS, DESCRIBE, SETUP, PLAY (RFC 2326 section 10)."""
    nvr_leg = Leg(
        mac_bytes(nvr.mac),
        mac_bytes(cam.mac),
        cam.vlan,
        nvr.ip,
        cam.ip,
        PROTO_TCP,
        50000 + rng.randrange(9000),
        554,
    )
    cam_leg = Leg(
        mac_bytes(cam.mac), mac_bytes(nvr.mac), cam.vlan, cam.ip, nvr.ip, PROTO_TCP, 554, nvr_leg.sport
    )
    session = TcpSession(tl, nvr_leg, cam_leg, rng.randrange(0, 200_000), 300, rng)
    url = f"rtsp://{cam.ip}:554/Streaming/Channels/101"
    transport = (
        "RTP/AVP/TCP;unicast;interleaved=0-1" if interleaved else "RTP/AVP;unicast;client_port=9000-9001"
    )
    for cseq, (method, extra) in enumerate(
        (
            ("OPTIONS", ""),
            ("DESCRIBE", "Accept: application/sdp\r\n"),
            ("SETUP", f"Transport: {transport}\r\n"),
            ("PLAY", "Range: npt=0-\r\n"),
        ),
        start=1,
    ):
        session.send(True, rtsp_request(method, url, cseq, extra))
        session.send(False, rtsp_response(cseq, f"Session: {cam.name}\r\n"), gap_us=2000)
    return session


def _camera_cloud(tl: Timeline, cam: Camera, upload: bool, rng: random.Random) -> None:
    """DNS for the vendor cloud, then a TLS session with keepalives; NTP; maybe a clip upload."""
    mac = mac_bytes(cam.mac)
    name, address = CLOUDS[cam.vendor]
    sport = 30000 + rng.randrange(20000)
    t = rng.randrange(100_000, 2_000_000)
    query = Leg(mac, GATEWAY_MAC, cam.vlan, cam.ip, DNS_RESOLVER, PROTO_UDP, sport, 53)
    reply = Leg(GATEWAY_MAC, mac, cam.vlan, DNS_RESOLVER, cam.ip, PROTO_UDP, 53, sport)
    ident = rng.getrandbits(16)
    tl.packet(t, query, dns_query(ident, name))
    tl.packet(t + 3000, reply, dns_answer(ident, name, address))
    _tls_session(tl, mac, cam.vlan, cam.ip, name, address, t + 5000, keepalive_us=15_000_000, rng=rng)
    ntp_port = 40000 + rng.randrange(20000)
    up = Leg(mac, GATEWAY_MAC, cam.vlan, cam.ip, NTP_SERVER, PROTO_UDP, ntp_port, 123)
    down = Leg(GATEWAY_MAC, mac, cam.vlan, NTP_SERVER, cam.ip, PROTO_UDP, 123, ntp_port)
    for t_ntp in range(rng.randrange(0, 5_000_000), tl.end_us, 64_000_000):
        tl.packet(t_ntp, up, ntp(3, T0 + t_ntp // 1_000_000))
        tl.packet(t_ntp + 20_000, down, ntp(4, T0 + t_ntp // 1_000_000))
    if upload:
        _clip_upload(tl, mac, cam, rng)


def _tls_session(
    tl: Timeline,
    mac: bytes,
    vlan: int | None,
    ip: str,
    name: str,
    address: str,
    t: int,
    keepalive_us: int,
    rng: random.Random,
) -> TcpSession:
    sport = 30000 + rng.randrange(30000)
    client = Leg(mac, GATEWAY_MAC, vlan, ip, address, PROTO_TCP, sport, 443)
    server = Leg(GATEWAY_MAC, mac, vlan, address, ip, PROTO_TCP, 443, sport)
    session = TcpSession(tl, client, server, t, 30_000, rng)
    session.send(True, tls_client_hello(name, rng.randbytes(64)))
    session.send(False, tls_application_data(rng.randbytes(1300)), gap_us=30_000)
    session.ack(True)
    session.send(True, tls_application_data(rng.randbytes(300)))
    session.send(False, tls_application_data(rng.randbytes(120)), gap_us=30_000)
    while session.t + keepalive_us < tl.end_us:
        session.send(True, tls_application_data(rng.randbytes(90)), gap_us=keepalive_us)
        session.send(False, tls_application_data(rng.randbytes(60)), gap_us=30_000)
        session.ack(True)
    return session


def _clip_upload(tl: Timeline, mac: bytes, cam: Camera, rng: random.Random) -> None:
    """Motion clips pushed to cloud storage: ~30 segments/s of 1,200 bytes for a third of the capture."""
    name, address = UPLOAD_DESTINATION
    start = tl.end_us // 3
    session = _tls_session(tl, mac, cam.vlan, cam.ip, name, address, start, keepalive_us=tl.end_us, rng=rng)
    body = tls_application_data(rng.randbytes(1200))
    for i in range(tl.end_us // 3 // 33_000):
        session.send(True, body, gap_us=33_000)
        if i % 4 == 3:
            session.ack(False)


def _office(tl: Timeline, spec: SiteSpec, budget: int, rng: random.Random) -> None:
    """Short office flows until ``budget`` packets: DNS, then HTTPS or HTTP; a quarter on VLAN 30."""
    hosts = [(mac_bytes(f"02:00:00:30:{i >> 8:02x}:{i & 0xFF:02x}"), i) for i in range(spec.office_hosts)]
    start = len(tl.keys)
    while len(tl.keys) - start < budget:
        mac, i = hosts[rng.randrange(len(hosts))]
        vlan = 30 if i % 4 == 0 else None
        v6 = rng.random() < 0.05
        ip = f"fd00:30::{i + 10:x}" if v6 else f"10.30.{i >> 8}.{(i & 0xFF) + 10}"
        resolver = OFFICE_RESOLVER_V6 if v6 else OFFICE_RESOLVER
        name, address = rng.choice(OFFICE_SITES_V6 if v6 else OFFICE_SITES)
        t = rng.randrange(0, tl.end_us - 2_000_000)
        sport = 1024 + rng.randrange(64000)
        ident = rng.getrandbits(16)
        tl.packet(
            t,
            Leg(mac, GATEWAY_MAC, vlan, ip, resolver, PROTO_UDP, sport, 53),
            dns_query(ident, name, 28 if v6 else 1),
        )
        tl.packet(
            t + 2000,
            Leg(GATEWAY_MAC, mac, vlan, resolver, ip, PROTO_UDP, 53, sport),
            dns_answer(ident, name, address),
        )
        https = rng.random() < 0.8
        port = 443 if https else 80
        client = Leg(mac, GATEWAY_MAC, vlan, ip, address, PROTO_TCP, sport + 1, port)
        server = Leg(GATEWAY_MAC, mac, vlan, address, ip, PROTO_TCP, port, sport + 1)
        session = TcpSession(tl, client, server, t + 4000, rng.randrange(5_000, 60_000), rng)
        session.send(
            True, tls_client_hello(name, rng.randbytes(64)) if https else http_get(name, "/index.html")
        )
        segments = rng.randrange(3, 13)
        for k in range(segments):
            body = rng.randbytes(rng.choice((200, 600, 1400)))
            session.send(False, tls_application_data(body) if https else http_response(body), gap_us=300)
            if k % 2:
                session.ack(True)
        session.close()
        if not v6 and rng.random() < 0.02:
            tl.raw(t, arp_request(mac, ip, OFFICE_RESOLVER))


def build_timeline(spec: SiteSpec) -> Timeline:
    """Lay out every packet; video fills what the other traffic leaves of ``spec.packets``."""
    rng = random.Random(spec.seed)
    tl = Timeline(spec)
    cameras, nvrs = site_devices(spec)
    sessions: list[TcpSession | None] = []
    for i, cam in enumerate(cameras):
        interleaved = i % 2 == 1
        session = _camera_control(tl, cam, nvrs[cam.nvr], interleaved, rng)
        sessions.append(session if interleaved else None)
        _camera_cloud(tl, cam, upload=i % 12 == 5, rng=rng)
    _office(tl, spec, int(spec.packets * 0.30), rng)
    if len(tl.keys) >= spec.packets:
        raise ValueError(f"{spec}: other traffic alone needs {len(tl.keys)} packets")
    video = spec.packets - len(tl.keys)
    for i, (cam, session) in enumerate(zip(cameras, sessions, strict=True)):
        nvr = nvrs[cam.nvr]
        count = video // len(cameras) + (1 if i < video % len(cameras) else 0)
        if count >= 1 << STREAM_INDEX_BITS:
            raise ValueError(f"{spec}: {count} packets in one stream is more than the key holds")
        if session is None:
            up = Leg(mac_bytes(cam.mac), mac_bytes(nvr.mac), cam.vlan, cam.ip, nvr.ip, PROTO_UDP, 8000, 9000)
            down = up
        else:
            up, down = session.server, session.client
        stream = VideoStream(up, down, session, 300_000, tl.end_us, count, rng)
        index = STREAM_BIT | len(tl.streams) << STREAM_INDEX_BITS
        tl.keys.extend(t << 32 | index | n for n, t in enumerate(stream.times))
        tl.streams.append(stream)
    tl.keys.sort()
    return tl


def frames(spec: SiteSpec) -> Iterator[tuple[int, bytes]]:
    """(microseconds since T0, frame) in capture order."""
    tl = build_timeline(spec)
    for key in tl.keys:
        yield key >> 32, tl.render(key & 0xFFFFFFFF)


def write_pcap(spec: SiteSpec, path: Path) -> None:
    write_records(frames(spec), path)


def write_records(records: Iterable[tuple[int, bytes]], path: Path) -> None:
    """Write (microseconds since T0, frame) records as a pcap to ``path``, through a temporary
    name so a cache never holds half a file."""
    tmp = path.with_suffix(".tmp")
    pack = RECORD.pack
    with tmp.open("wb") as out:
        out.write(PCAP_HEADER)
        chunk: list[bytes] = []
        for t_us, frame in records:
            sec, usec = divmod(t_us, 1_000_000)
            chunk.append(pack(T0 + sec, usec, len(frame), len(frame)))
            chunk.append(frame)
            if len(chunk) >= 8192:
                out.write(b"".join(chunk))
                chunk.clear()
        out.write(b"".join(chunk))
    tmp.replace(path)


def ensure_capture(spec: SiteSpec, cache: Path) -> Path:
    """The cached capture for ``spec``, generated on first use."""
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"{spec.stem}.pcap"
    if not path.exists():
        write_pcap(spec, path)
    return path


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()
