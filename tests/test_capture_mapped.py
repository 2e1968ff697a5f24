"""The mapped pcap reader (mmap + `_fastpath.pcap_index`) reads every file as libpcap does."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from egresswatch.capture import META_STRUCT
from egresswatch.capture.files import PCAP_MAGICS, PcapSource

ROOT = Path(__file__).resolve().parent.parent
REAL = ROOT.parent / "shared" / "realpcaps"


def _classic(paths: Iterator[Path]) -> list[Path]:
    return sorted(path for path in paths if path.is_file() and path.read_bytes()[:4] in PCAP_MAGICS)


CAPTURES = _classic(ROOT.glob("pcaps/*.pcap")) + _classic(REAL.glob("*"))


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_mapped_records_equal_libpcaps(path: Path) -> None:
    libpcap = PcapSource(path, None)
    libpcap._bpf = "ip or not ip"  # the libpcap path (a filter), keeping every frame
    expected = list(libpcap)
    expected_records = [(sec, usec, bytes(b.data[off : off + caplen]))
                        for b in expected for sec, usec, off, caplen in META_STRUCT.iter_unpack(b.meta)]
    mapped = PcapSource(path, None)
    got = [(sec, usec, bytes(b.data[off : off + caplen]))
           for b in mapped for sec, usec, off, caplen in META_STRUCT.iter_unpack(b.meta)]
    assert len(got) == len(expected_records)
    assert got == expected_records
    assert (mapped.truncated_at is None) == (libpcap.truncated_at is None)
    if mapped.truncated_at is not None:
        # the same packet number; the mapped reader also knows the byte offset
        assert mapped.truncated_at.split(",")[0] == libpcap.truncated_at.split(" (")[0].split(",")[0]


def _pcap(tmp_path: Path, snaplen: int, records: list[tuple[int, bytes]]) -> Path:
    path = tmp_path / "odd.pcap"
    blob = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, snaplen, 1)
    for caplen, frame in records:
        blob += struct.pack("<IIII", 1_700_000_000, 5, caplen, max(caplen, len(frame))) + frame
    path.write_bytes(blob)
    return path


def test_a_record_longer_than_the_snaplen_gives_the_snaplen_then_the_next_record(tmp_path: Path) -> None:
    frame = bytes(range(100))
    path = _pcap(tmp_path, 64, [(100, frame), (100, frame)])
    got = [bytes(b.data[off : off + caplen]) for b in PcapSource(path, None)
           for _, _, off, caplen in META_STRUCT.iter_unpack(b.meta)]
    assert got == [frame[:64], frame[:64]]


def test_an_impossible_capture_length_stops_the_file_where_it_is(tmp_path: Path) -> None:
    frame = bytes(60)
    path = _pcap(tmp_path, 65535, [(60, frame), (300_000, frame)])
    source = PcapSource(path, None)
    assert sum(len(b.meta) // 16 for b in source) == 1
    assert source.truncated_at is not None
    assert source.truncated_at.startswith(f"stopped at packet 2, byte offset {24 + 16 + 60} (invalid packet")
