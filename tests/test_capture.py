"""Capture readers: classic pcap (micro/nano), pcapng with mixed interfaces, damaged files."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from egresswatch.capture import META_STRUCT, CaptureError
from egresswatch.capture.files import open_capture

FRAME_ETH = bytes(12) + b"\x08\x00" + bytes(20)
FRAME_RAW = b"\x45" + bytes(19)


def records(source) -> list[tuple[int, int, int, bytes]]:
    out = []
    for batch in source:
        for sec, usec, off, caplen in META_STRUCT.iter_unpack(batch.meta):
            out.append((batch.linktype, sec, usec, batch.data[off : off + caplen]))
    return out


def write_pcap(path: Path, magic: int, frames: list[tuple[int, int, bytes]], linktype: int = 1) -> Path:
    with path.open("wb") as f:
        f.write(struct.pack("<IHHiIII", magic, 2, 4, 0, 0, 65535, linktype))
        for sec, frac, frame in frames:
            f.write(struct.pack("<IIII", sec, frac, len(frame), len(frame)) + frame)
    return path


def block(kind: int, body: bytes) -> bytes:
    body += bytes(-len(body) % 4)
    return struct.pack("<II", kind, len(body) + 12) + body + struct.pack("<I", len(body) + 12)


def option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + bytes(-len(value) % 4)


def idb(linktype: int, tsresol: int | None = None) -> bytes:
    opts = option(9, bytes([tsresol])) + option(0, b"") if tsresol is not None else b""
    return block(1, struct.pack("<HHI", linktype, 0, 65535) + opts)


def epb(interface: int, ticks: int, frame: bytes) -> bytes:
    head = struct.pack("<IIIII", interface, ticks >> 32, ticks & 0xFFFFFFFF, len(frame), len(frame))
    return block(6, head + frame)


SHB = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))


def test_microsecond_and_nanosecond_pcaps_give_microsecond_timestamps(tmp_path: Path) -> None:
    micro = write_pcap(tmp_path / "micro.pcap", 0xA1B2C3D4, [(100, 250_000, FRAME_ETH)])
    nano = write_pcap(tmp_path / "nano.pcap", 0xA1B23C4D, [(100, 250_000_999, FRAME_ETH)])
    assert records(open_capture(micro)) == [(1, 100, 250_000, FRAME_ETH)]
    assert records(open_capture(nano)) == [(1, 100, 250_000, FRAME_ETH)]


def test_pcapng_reads_each_packet_with_its_own_interface(tmp_path: Path) -> None:
    path = tmp_path / "mixed.pcapng"
    path.write_bytes(
        SHB
        + idb(1)  # Ethernet, default microseconds
        + idb(101, tsresol=9)  # raw IP, nanoseconds
        + idb(1, tsresol=0x80 | 10)  # Ethernet, 2^-10 s ticks
        + epb(0, 5_000_001, FRAME_ETH)
        + epb(1, 6_500_000_000, FRAME_RAW)
        + epb(1, 7_000_000_000, FRAME_RAW)
        + epb(2, 8 * 1024 + 512, FRAME_ETH)
    )
    got = records(open_capture(path))
    assert got == [
        (1, 5, 1, FRAME_ETH),
        (101, 6, 500_000, FRAME_RAW),
        (101, 7, 0, FRAME_RAW),
        (1, 8, 500_000, FRAME_ETH),
    ]


def test_truncated_pcap_keeps_every_complete_record_and_says_where_it_stopped(tmp_path: Path) -> None:
    frames = [(100 + n, 0, FRAME_ETH) for n in range(6000)]  # more than one batch
    path = write_pcap(tmp_path / "cut.pcap", 0xA1B2C3D4, frames)
    path.write_bytes(path.read_bytes()[:-10])
    source = open_capture(path)
    got = records(source)
    assert len(got) == 5999
    assert source.truncated_at is not None
    assert "packet 6000" in source.truncated_at
    assert f"byte offset {24 + 5999 * (16 + len(FRAME_ETH))}" in source.truncated_at


def test_truncated_pcapng_says_where_it_stopped(tmp_path: Path) -> None:
    path = tmp_path / "cut.pcapng"
    data = SHB + idb(1) + epb(0, 1, FRAME_ETH) + epb(0, 2, FRAME_ETH)
    path.write_bytes(data[:-8])
    source = open_capture(path)
    assert len(records(source)) == 1
    assert source.truncated_at is not None and "packet 2" in source.truncated_at


@pytest.mark.parametrize(
    ("content", "reason"),
    [(None, "No such file"), (b"hello, not a capture at all", "not a pcap or pcapng capture file")],
)
def test_unreadable_files_are_errors_naming_the_file(
    tmp_path: Path, content: bytes | None, reason: str
) -> None:
    path = tmp_path / "input.pcap"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(CaptureError) as error:
        open_capture(path)
    assert error.value.path == str(path)
    assert reason in error.value.reason


def test_unsupported_link_types_are_refused(tmp_path: Path) -> None:
    path = write_pcap(tmp_path / "wifi.pcap", 0xA1B2C3D4, [(1, 0, bytes(30))], linktype=105)
    with pytest.raises(CaptureError, match="unsupported link type 105"):
        open_capture(path)
    ng = tmp_path / "wifi.pcapng"
    ng.write_bytes(SHB + idb(105) + epb(0, 1, bytes(30)))
    with pytest.raises(CaptureError, match="unsupported link type 105"):
        records(open_capture(ng))
