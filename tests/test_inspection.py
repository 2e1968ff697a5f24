"""Inspector: which app a device flow gets, within its payload budget, and when it reports a change."""

from __future__ import annotations

import struct

from egresswatch.catalogue import Catalogue
from egresswatch.decode.packet import Packet
from egresswatch.flows import Flow
from egresswatch.inspection import SIGNALLING_BUDGET, STUN_BUDGET, TCP_BUDGET, UDP_BUDGET, Inspector

CAM, CLOUD = bytes([10, 20, 1, 11]), bytes([198, 51, 100, 180])
CATALOGUE = Catalogue.load()


def packet(proto: int, up: bool, dport: int = 40000, size: int = 0) -> Packet:
    pkt = Packet()
    pkt.proto, pkt.vlan, pkt.src_mac, pkt.dst_mac = proto, None, None, None
    pkt.src, pkt.dst = (CAM, CLOUD) if up else (CLOUD, CAM)
    pkt.sport, pkt.dport = (50000, dport) if up else (dport, 50000)
    pkt.ip_bytes = size
    return pkt


class Run:
    """One device flow fed payloads through an Inspector, recording the app changes it reports."""

    def __init__(self, proto: int, dport: int) -> None:
        self.changes: list[tuple[str | None, str, bool, int]] = []
        self.inspector = Inspector(
            CATALOGUE, lambda f, app, up, size: self.changes.append((f.app, app, up, size))
        )
        self.proto, self.dport = proto, dport
        self.flow = Flow(packet(proto, True, dport), 0.0)
        self.inspector.flow_started(self.flow, True, packet(proto, True, dport))
        self.seen = 0

    def feed(self, payload: bytes, up: bool = True) -> None:
        """Send one payload packet the way the meter does: only while the flow still inspects."""
        if not self.flow.inspect:
            return
        pkt = packet(self.proto, up, self.dport, 28 + len(payload))
        pkt.payload_off, pkt.payload_end = 0, len(payload)
        self.seen += 1
        self.inspector.payload(self.flow, up, pkt, payload, 0.0)


def rtp(seq: int) -> bytes:
    return struct.pack("!BBHII", 0x80, 96, seq, seq * 3000, 0xCAFE) + bytes(300)


def stun() -> bytes:
    return struct.pack("!HHI", 1, 0, 0x2112A442) + bytes(12)


def test_udp_flow_with_linked_rtp_headers_is_rtp_and_then_leaves_the_slow_path() -> None:
    run = Run(17, 40000)
    assert run.flow.inspect == UDP_BUDGET
    for seq in range(10):
        run.feed(rtp(seq))
    assert (run.flow.app, run.seen, run.flow.inspect) == ("rtp", 3, 0)


def test_unrecognised_udp_stops_after_its_budget() -> None:
    run = Run(17, 40000)
    for _ in range(20):
        run.feed(b"\x17" + bytes(500))
    assert (run.flow.app, run.seen) == (None, UDP_BUDGET)


def test_stun_then_rtp_is_webrtc_within_the_stun_budget() -> None:
    run = Run(17, 3478)
    run.feed(stun())
    run.feed(stun(), up=False)
    for _ in range(3):
        run.feed(b"\x16\xfe\xfd" + bytes(60))  # DTLS handshake records
    for seq in range(3):
        run.feed(rtp(seq))
    assert run.flow.app == "webrtc"
    assert run.seen <= 1 + STUN_BUDGET
    assert run.changes == [("stun", "webrtc", True, 28 + 312)]  # telemetry -> footage is reported


def test_stun_alone_is_bounded() -> None:
    run = Run(17, 3478)
    for _ in range(100):
        run.feed(stun())
    assert (run.flow.app, run.seen) == ("stun", 1 + STUN_BUDGET)


def test_dahua_signalling_then_ptcp_reports_the_change_with_the_first_relay_packet() -> None:
    run = Run(17, 8800)
    run.feed(b"DHGET /probe/p2psrv HTTP/1.1\r\nCSeq: 1\r\n\r\n")
    run.feed(b"HTTP/1.1 200 OK\r\nCSeq: 1\r\n\r\n", up=False)
    assert run.flow.app == "dh-p2p" and run.flow.inspect == SIGNALLING_BUDGET - 1
    relay = b"PTCP" + bytes(1000)
    run.feed(relay)
    assert run.changes == [("dh-p2p", "ptcp", True, 28 + len(relay))]
    assert (run.flow.app, run.flow.inspect) == ("ptcp", 0)
    assert run.inspector.service_for(run.flow, None).name == "Dahua P2P (Easy4IP)"
    # the name, when known, decides the service before the signature does
    assert run.inspector.service_for(run.flow, "p2p.reolink.com").name == "Reolink P2P"


def test_signalling_that_never_turns_into_a_relay_is_bounded() -> None:
    run = Run(17, 8800)
    for cseq in range(100):
        run.feed(b"DHPOST /online/keepalive HTTP/1.1\r\nCSeq: %d\r\n\r\n" % cseq)
    assert (run.flow.app, run.seen) == ("dh-p2p", SIGNALLING_BUDGET + 1)
    assert run.changes == []


def test_srt_handshake() -> None:
    run = Run(17, 9000)
    header = struct.pack("!IIII", 0x80000000, 0, 0, 0)
    run.feed(header + struct.pack("!IHHIIIIII", 4, 0, 2, 1, 1500, 8192, 1, 7, 0) + bytes(16))
    assert (run.flow.app, run.flow.inspect) == ("srt", 0)


def test_rtmp_c0c1_split_over_two_segments() -> None:
    run = Run(6, 8080)
    c0c1 = b"\x03" + bytes(1536)
    run.feed(c0c1[:1400])
    assert run.flow.app is None and run.flow.inspect
    run.feed(c0c1[1400:])
    assert (run.flow.app, run.flow.inspect) == ("rtmp", 0)


def test_not_rtmp_when_the_server_speaks_before_c0c1_is_complete() -> None:
    run = Run(6, 8080)
    run.feed(b"\x03" + bytes(100))
    run.feed(b"220 ready\r\n", up=False)
    assert (run.flow.app, run.flow.inspect) == (None, 0)
    assert run.seen <= TCP_BUDGET


def test_first_tcp_payloads_name_the_app() -> None:
    cases = {
        b"PUT /live/seg1.ts HTTP/1.1\r\nHost: ingest.example.net\r\n\r\n": ("hls", "ingest.example.net"),
        b"GET /api HTTP/1.1\r\nHost: api.hik-connect.com\r\n\r\n": ("http", "api.hik-connect.com"),
        bytes((0x10, 12)) + b"\x00\x04MQTT\x04\x02\x00\x3c\x00\x00": ("mqtt", None),
        b"$\x00\x01\x2c" + rtp(1): ("rtsp", None),
    }
    for payload, (app, domain) in cases.items():
        run = Run(6, 80)
        run.feed(payload)
        assert (run.flow.app, run.flow.domain, run.flow.inspect) == (app, domain, 0), payload[:20]
