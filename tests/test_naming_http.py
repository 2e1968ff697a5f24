"""HTTP Host and RTSP URL host from a flow's first segment; RTSP recognition; garbage."""

from __future__ import annotations

from pathlib import Path

import dpkt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from egresswatch.naming.http import http_host, looks_like_rtsp, rtsp_host

REALPCAPS = Path("/work/shared/realpcaps")
# No example database: tests write nowhere but temp dirs.
FUZZ = settings(database=None)


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (
            b"GET /fw/latest HTTP/1.1\r\nHost: Upgrade.Example.COM\r\nAccept: */*\r\n\r\n",
            "upgrade.example.com",
        ),
        (
            b"POST /api HTTP/1.1\r\nUser-Agent: cam\r\nhost:  api.example.net:8080 \r\n\r\n{}",
            "api.example.net",
        ),
        (b"GET http://proxy.example.org/x HTTP/1.0\r\nAccept: */*\r\n\r\n", "proxy.example.org"),
        (b"GET / HTTP/1.1\r\nHost: 198.51.100.7:80\r\n\r\n", None),  # an IP literal names nothing
        (b"GET / HTTP/1.1\r\nHost: [2001:db8::1]:80\r\n\r\n", None),
        (b"GET / HTTP/1.1\r\nHost: bad host\r\n\r\n", None),
        (b"GET / HTTP/2.0\r\nHost: h2.example.com\r\n\r\n", None),  # not HTTP/1.x
        (b"get / HTTP/1.1\r\nHost: lower.example.com\r\n\r\n", None),  # methods are upper case
        (b"GET / HTTP/1.1\r\n\r\n", None),
        (b"\x16\x03\x01\x02\x00\x01", None),
    ],
)
def test_http_host(payload: bytes, expected: str | None) -> None:
    assert http_host(payload) == expected


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b"DESCRIBE rtsp://relay.example.com:554/live/ch1 RTSP/1.0\r\nCSeq: 2\r\n\r\n", "relay.example.com"),
        (b"OPTIONS rtsp://Relay.Example.COM RTSP/1.0\r\nCSeq: 1\r\n\r\n", "relay.example.com"),
        (b"SETUP rtsps://cloud.example.net/s?x=1 RTSP/2.0\r\nCSeq: 3\r\n\r\n", "cloud.example.net"),
        (b"ANNOUNCE rtsp://203.0.113.9:8554/push RTSP/1.0\r\nCSeq: 1\r\n\r\n", None),
        (b"DESCRIBE http://relay.example.com/ RTSP/1.0\r\n\r\n", None),
        (b"GET rtsp://relay.example.com/ HTTP/1.1\r\n\r\n", None),
    ],
)
def test_rtsp_host(payload: bytes, expected: str | None) -> None:
    assert rtsp_host(payload) == expected


def test_rtsp_credentials_in_the_url_are_never_returned() -> None:
    payload = b"DESCRIBE rtsp://admin:s3cret@nvr.example.org:554/Streaming/Channels/101 RTSP/1.0\r\n\r\n"
    assert rtsp_host(payload) == "nvr.example.org"


def test_looks_like_rtsp() -> None:
    assert looks_like_rtsp(b"PLAY rtsp://192.0.2.4/a RTSP/1.0\r\nCSeq: 4\r\n\r\n")
    assert looks_like_rtsp(b"RTSP/1.0 200 OK\r\nCSeq: 4\r\n\r\n")
    assert not looks_like_rtsp(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert not looks_like_rtsp(b"$\x00\x05\xdc\x80\x60")  # interleaved RTP alone is no evidence
    assert not looks_like_rtsp(b"RTSP/1.0")


@FUZZ
@given(st.binary(max_size=300))
def test_garbage_never_raises(data: bytes) -> None:
    for payload in (data, b"GET / HTTP/1.1\r\nHost: " + data, b"PLAY rtsp://" + data + b" RTSP/1.0\r\n"):
        host = http_host(payload)
        assert host is None or (host and host == host.lower())
        assert rtsp_host(payload) is None or isinstance(rtsp_host(payload), str)
        assert looks_like_rtsp(payload) in (True, False)


def _tcp_payloads(path: Path, reader_type: type, link: type) -> list[bytes]:
    out = []
    with path.open("rb") as f:
        for _ts, frame in reader_type(f):
            tcp = getattr(link(frame).data, "data", None)
            out.append(bytes(tcp.data) if isinstance(tcp, dpkt.tcp.TCP) else b"")
    return out


needs_captures = pytest.mark.skipif(
    not REALPCAPS.is_dir(), reason="shared real captures (/work/shared/realpcaps) absent"
)


@needs_captures
@pytest.mark.parametrize(
    ("capture", "expected"),
    [
        # From "<capture>.truth.txt", "HTTP requests" host column (tshark 4.0.17).
        ("zeek_vlan_http.pcap", {"bro.org"}),  # 802.1Q-tagged
        ("arkime_http_get.pcap", {"xxxxxxxxxxxxx.xxx.com"}),
        ("iotsentinel_dlinkcam_setup.pcap", set()),  # every Host there is the camera's IP literal
    ],
)
def test_real_http_hosts(capture: str, expected: set[str]) -> None:
    payloads = _tcp_payloads(REALPCAPS / capture, dpkt.pcap.Reader, dpkt.ethernet.Ethernet)
    assert {h for h in map(http_host, payloads) if h} == expected


@needs_captures
def test_real_rtsp_requests_are_recognised() -> None:
    # ndpi_rtsp.truth.txt, "RTSP requests": the frame numbers tshark dissects as RTSP requests.
    truth = [1, 25, 37, 38, 39, 40, 57, 58, 59, 69, 70, 71, 72, 81, 82, 83, 84, 97, 121, 133, 134, 135, 136]
    payloads = _tcp_payloads(REALPCAPS / "ndpi_rtsp.pcap", dpkt.pcapng.Reader, dpkt.sll.SLL)
    assert all(looks_like_rtsp(payloads[frame - 1]) for frame in truth)
    # Every URL there names 10.2.2.2:8554, an IP literal.
    assert {rtsp_host(payloads[frame - 1]) for frame in truth} == {None}
    assert not any(
        looks_like_rtsp(p)
        for p in _tcp_payloads(REALPCAPS / "zeek_vlan_http.pcap", dpkt.pcap.Reader, dpkt.ethernet.Ethernet)
    )
