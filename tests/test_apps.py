"""Application detectors: each one on a well-formed packet, on near misses, and on garbage."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from egresswatch.apps import (
    RTMP_C0C1,
    RtpShape,
    is_interleaved_rtp,
    is_mqtt_connect,
    is_rtcp,
    is_segment_upload,
    is_srt_handshake,
    is_stun,
    rtmp_handshake_start,
    rtp_header,
)

FUZZ = settings(database=None)


def rtp(seq: int, ts: int, ssrc: int = 0x1234, pt: int = 96, size: int = 200) -> bytes:
    return struct.pack("!BBHII", 0x80, pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc) + bytes(size)


def test_rtp_header_fields_and_refusals() -> None:
    assert rtp_header(rtp(7, 9000)) == (96, 7, 9000, 0x1234)
    assert rtp_header(b"\x40" + rtp(7, 9000)[1:]) is None  # version 1
    assert rtp_header(rtp(7, 9000, pt=72)) is None  # RTCP's range with the marker bit (RFC 5761)
    assert rtp_header(b"\x8f" + rtp(7, 9000)[1:16]) is None  # 15 CSRCs announced, 4 bytes present
    assert rtp_header(rtp(1, 1)[:11]) is None


def test_rtp_shape_needs_three_linked_packets() -> None:
    shape = RtpShape()
    assert [shape.feed(rtp(65534 + i, 3000 * i)) for i in range(4)] == [False, False, True, True]


@pytest.mark.parametrize(
    "packets",
    [
        [rtp(1, 0), rtp(2, 3000, ssrc=99), rtp(3, 6000)],  # the SSRC changes
        [rtp(1, 0), rtp(9, 3000), rtp(10, 6000)],  # sequence jumps by 8
        [rtp(1, 9000), rtp(2, 3000), rtp(3, 6000)],  # timestamp goes back
        [rtp(1, 0), rtp(2, 3000, pt=97), rtp(3, 6000)],  # payload type changes
        [rtp(1, 0), b"\x00" * 40, rtp(2, 3000)],  # a non-RTP packet breaks the run
    ],
)
def test_rtp_shape_rejects_unlinked_headers(packets: list[bytes]) -> None:
    shape = RtpShape()
    assert not any(shape.feed(p) for p in packets)


def test_rtcp_compound_must_start_with_a_report_and_tile_exactly() -> None:
    rr = struct.pack("!BBHI", 0x80, 201, 1, 0x1234)
    sdes = struct.pack("!BBH", 0x81, 202, 2) + bytes(8)
    assert is_rtcp(rr) and is_rtcp(rr + sdes)
    assert not is_rtcp(sdes + rr)  # SDES first
    assert not is_rtcp(rr + sdes[:-1])  # lengths do not tile
    assert not is_rtcp(rtp(1, 1))


def test_interleaved_rtp_needs_an_inner_rtp_header() -> None:
    inner = rtp(1, 0, size=100)
    assert is_interleaved_rtp(b"$\x00" + struct.pack("!H", len(inner)) + inner)
    assert not is_interleaved_rtp(b"$\x00\x00\x70" + bytes(112))


def stun_binding(attributes: bytes = b"") -> bytes:
    return struct.pack("!HHI", 0x0001, len(attributes), 0x2112A442) + bytes(12) + attributes


def test_stun_binding_request() -> None:
    assert is_stun(stun_binding()) and is_stun(stun_binding(bytes(8)))
    assert not is_stun(stun_binding(bytes(8))[:-4])  # length field disagrees
    assert not is_stun(b"\x00\x01\x00\x00" + b"\x21\x12\xa4\x43" + bytes(12))  # wrong cookie


def srt_induction(version: int = 4, mtu: int = 1500, kind: int = 1) -> bytes:
    header = struct.pack("!IIII", 0x80000000, 0, 0, 0)
    body = struct.pack("!IHHIIIIII", version, 0, 2, 12345, mtu, 8192, kind, 0x4D2, 0) + bytes(16)
    return header + body


def test_srt_handshake() -> None:
    assert is_srt_handshake(srt_induction())
    assert is_srt_handshake(srt_induction(version=5, kind=0xFFFFFFFF))
    assert not is_srt_handshake(srt_induction(version=3))
    assert not is_srt_handshake(srt_induction(mtu=100))
    assert not is_srt_handshake(srt_induction(kind=7))
    assert not is_srt_handshake(b"\x80\x02" + srt_induction()[2:])  # a different control type


@pytest.mark.parametrize(
    ("head", "upload"),
    [
        (b"PUT /live/cam1/seg00042.ts HTTP/1.1\r\nHost: ingest.example.org\r\n\r\n", True),
        (b"POST /dash/chunk-7.m4s?token=1 HTTP/1.1\r\nHost: a.example\r\n\r\n", True),
        (b"POST /upload HTTP/1.1\r\nContent-Type: video/mp2t\r\n\r\n", True),
        (b"POST /api/v1/heartbeat HTTP/1.1\r\nContent-Type: application/json\r\n\r\n", False),
        (b"GET /live/seg1.ts HTTP/1.1\r\nHost: a.example\r\n\r\n", False),  # a download, not an upload
    ],
)
def test_segment_upload(head: bytes, upload: bool) -> None:
    assert is_segment_upload(head) is upload


def mqtt_connect(name: bytes = b"MQTT", level: int = 4) -> bytes:
    body = struct.pack("!H", len(name)) + name + bytes((level, 0x02)) + struct.pack("!H", 60)
    body += struct.pack("!H", 6) + b"cam-01"
    return bytes((0x10, len(body))) + body


def test_mqtt_connect() -> None:
    assert is_mqtt_connect(mqtt_connect()) and is_mqtt_connect(mqtt_connect(level=5))
    assert is_mqtt_connect(mqtt_connect(b"MQIsdp", 3))
    assert not is_mqtt_connect(mqtt_connect(level=3))  # 3 belongs to MQIsdp
    assert not is_mqtt_connect(b"\x20" + mqtt_connect()[1:])  # CONNACK, not CONNECT


def test_rtmp_handshake_start() -> None:
    assert rtmp_handshake_start(b"\x03" + bytes(1536)) and rtmp_handshake_start(b"\x03" + bytes(1459))
    assert RTMP_C0C1 == 1537
    assert not rtmp_handshake_start(b"\x06" + bytes(1536))  # RTMPE
    assert not rtmp_handshake_start(b"\x03" + bytes(2000))


@FUZZ
@given(st.binary(max_size=120))
def test_detectors_survive_garbage(payload: bytes) -> None:
    shape = RtpShape()
    detectors = (is_rtcp, is_interleaved_rtp, is_stun, is_srt_handshake, is_segment_upload, is_mqtt_connect)
    for detector in detectors:
        assert detector(payload) in (True, False)  # no exception on any input
    assert shape.feed(payload) is False  # one packet is never a stream
