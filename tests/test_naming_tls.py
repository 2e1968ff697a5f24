"""TLS ClientHello SNI: whole, split over segments and records, TLS 1.2/1.3, ECH, garbage."""

from __future__ import annotations

import ssl
import struct
from pathlib import Path

import dpkt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from egresswatch.naming.tls import GIVE_UP, ClientHelloReader, sni_from_client_hello

REALPCAPS = Path("/work/shared/realpcaps")
# No example database: tests write nowhere but temp dirs.
FUZZ = settings(database=None)


def _client_hello_records(server_name: str | None, version: ssl.TLSVersion) -> bytes:
    """A real ClientHello flight from the ssl module, written into memory: nothing is sent."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.minimum_version = context.maximum_version = version
    outgoing = ssl.MemoryBIO()
    tls = context.wrap_bio(ssl.MemoryBIO(), outgoing, server_hostname=server_name)
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def _handshake(records: bytes) -> bytes:
    """The handshake bytes carried by a run of TLS records."""
    out = b""
    while records:
        (length,) = struct.unpack_from(">H", records, 3)
        out += records[5 : 5 + length]
        records = records[5 + length :]
    return out


def _rerecord(records: bytes, size: int) -> bytes:
    """The same handshake re-framed into records of at most ``size`` bytes (RFC 8446 §5.1 allows it)."""
    handshake = _handshake(records)
    out = b""
    for at in range(0, len(handshake), size):
        chunk = handshake[at : at + size]
        out += b"\x16\x03\x01" + struct.pack(">H", len(chunk)) + chunk
    return out


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_sni_of_a_whole_client_hello(version: ssl.TLSVersion) -> None:
    records = _client_hello_records("Cam.Example.COM", version)
    assert sni_from_client_hello(_handshake(records)) == "cam.example.com"
    reader = ClientHelloReader()
    assert reader.feed(records) == "cam.example.com"
    assert reader.is_tls


@pytest.mark.parametrize("segment_size", [1, 7, 100, 517])
@pytest.mark.parametrize("record_size", [40, 300, 16384])
def test_client_hello_split_over_segments_and_records(segment_size: int, record_size: int) -> None:
    stream = _rerecord(_client_hello_records("relay.example.net", ssl.TLSVersion.TLSv1_3), record_size)
    reader = ClientHelloReader()
    results = [reader.feed(stream[at : at + segment_size]) for at in range(0, len(stream), segment_size)]
    assert results[-1] == "relay.example.net"
    assert all(result is None for result in results[:-1])
    assert reader.feed(b"application data after the handshake") == "relay.example.net"


def test_client_hello_without_server_name_gives_up_but_is_tls() -> None:
    reader = ClientHelloReader()
    assert reader.feed(_client_hello_records(None, ssl.TLSVersion.TLSv1_3)) is GIVE_UP
    assert reader.is_tls


def test_not_tls_gives_up_at_once() -> None:
    for payload in (
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"\x17\x03\x03\x00\x10" + b"\x00" * 16,
        b"\x16\x03\x01\x00\x05\x02\x00\x00\x01\x00",
    ):
        reader = ClientHelloReader()
        assert reader.feed(payload) is GIVE_UP
        assert not reader.is_tls


def test_buffer_is_bounded_and_a_long_hello_is_read_from_its_start() -> None:
    handshake = _handshake(_client_hello_records("big.example.org", ssl.TLSVersion.TLSv1_3))
    # Claim a 1 MB ClientHello: the reader must stop at its cap and still find the early SNI.
    claimed = handshake[:1] + (1 << 20).to_bytes(3, "big") + handshake[4:]
    stream = _rerecord(b"\x16\x03\x01" + struct.pack(">H", len(claimed)) + claimed, 16000)
    stream += b"\x16\x03\x01\x3e\x80" + b"\x00" * 16000
    reader = ClientHelloReader(max_bytes=4096)
    assert reader.feed(stream) == "big.example.org"
    tiny = ClientHelloReader(max_bytes=64)
    assert tiny.feed(stream) is GIVE_UP


@FUZZ
@given(st.binary(max_size=400))
def test_sni_parser_survives_garbage(data: bytes) -> None:
    result = sni_from_client_hello(b"\x01" + data)
    assert result is None or isinstance(result, str)


@FUZZ
@given(st.lists(st.binary(max_size=300), max_size=8))
def test_reader_survives_garbage_segments(segments: list[bytes]) -> None:
    reader = ClientHelloReader(max_bytes=1024)
    for segment in segments:
        result = reader.feed(b"\x16\x03\x01" + segment)
        assert result is None or result is GIVE_UP or isinstance(result, str)


@FUZZ
@given(st.integers(min_value=0, max_value=2000), st.binary(min_size=1, max_size=8))
def test_corrupted_real_hello_never_raises(at: int, noise: bytes) -> None:
    handshake = _handshake(_client_hello_records("cam.example.com", ssl.TLSVersion.TLSv1_2))
    at %= len(handshake)
    result = sni_from_client_hello(handshake[:at] + noise + handshake[at + len(noise) :])
    assert result is None or isinstance(result, str)


def _snis_in_capture(path: Path) -> set[str]:
    """SNIs of every TCP flow whose SYN is in an Ethernet pcap, read by one reader per flow."""
    readers: dict[tuple, ClientHelloReader] = {}
    seen: set[tuple] = set()
    names = set()
    with path.open("rb") as f:
        for _ts, frame in dpkt.pcap.Reader(f):
            ip = dpkt.ethernet.Ethernet(frame).data
            tcp = getattr(ip, "data", None)
            if not isinstance(tcp, dpkt.tcp.TCP):
                continue
            key = (bytes(ip.src), tcp.sport, bytes(ip.dst), tcp.dport)
            if tcp.flags & dpkt.tcp.TH_SYN and not tcp.flags & dpkt.tcp.TH_ACK:
                readers[key] = ClientHelloReader()
            elif key in readers and tcp.data and (key, tcp.seq) not in seen:
                seen.add((key, tcp.seq))  # skip retransmissions
                result = readers[key].feed(bytes(tcp.data))
                if isinstance(result, str):
                    names.add(result)
    return names


@pytest.mark.skipif(not REALPCAPS.is_dir(), reason="shared real captures (/work/shared/realpcaps) absent")
@pytest.mark.parametrize(
    ("capture", "expected"),
    [
        # Each from "<capture>.truth.txt", "TLS/QUIC SNI unique" (tshark 4.0.17).
        ("zeek_tls12_sni_chrome.pcap", {"google.de"}),
        ("arkime_tls13_sni_curl.pcap", {"enabled.tls13.com"}),
        ("zeek_tls13_ech.pcap", {"cloudflare-ech.com"}),  # ECH: the outer (public) name
        ("ndpi_android10_dns_tls.pcap", {"dns.google"}),
        ("shf_dlink_cam_wlan.pcap", {"mp-eu-dcdda.auto.mydlink.com", "mp-eu-fwd.auto.mydlink.com"}),
    ],
)
def test_real_captures_match_tshark(capture: str, expected: set[str]) -> None:
    assert _snis_in_capture(REALPCAPS / capture) == expected
