"""The C BPF interpreter (`_fastpath.BpfProgram`) against libpcap's, and the filtered mapped read.

A filtered read of a classic pcap maps the file and runs the libpcap-compiled program over each
record in place. It must keep exactly what libpcap's own interpreter keeps: frame by frame
(pcapy's `BPFProgram.filter` is libpcap's `bpf_filter`) over every capture and damaged frames,
and record by record against libpcap's filtered read of the file, snaplen-cut captures included.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

import pcapy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.tshark import REALPCAPS

from egresswatch import _fastpath as fastpath
from egresswatch.bpf import build_filter
from egresswatch.capture import META_STRUCT, CaptureError
from egresswatch.capture.files import PCAP_MAGICS, open_capture
from egresswatch.config import load_config
from egresswatch.workers import share_filter

ROOT = Path(__file__).resolve().parent.parent
CLASSIC = sorted(p for p in [*(ROOT / "pcaps").iterdir(), *REALPCAPS.iterdir()]
                 if p.suffix == ".pcap" and p.read_bytes()[:4] in PCAP_MAGICS)
ANY_LINK = ["tcp", "udp port 53", "len > 100", "greater 200", "ip6", "ip[6:2] & 0x1fff = 0", "icmp or arp"]
DEMO = load_config(ROOT / "config" / "demo.yaml")
ETHERNET = [*ANY_LINK, "vlan and udp", "ether[0] & 1 != 0", build_filter(DEMO),
            share_filter(0, 2), share_filter(1, 2), f"({share_filter(1, 2)}) and ({build_filter(DEMO)})"]


def _linktype(path: Path) -> int:
    return pcapy.open_offline(str(path)).datalink()


def _expressions(path: Path) -> list[str]:
    return ETHERNET if _linktype(path) == 1 else ANY_LINK


def _compiled(linktype: int, expression: str) -> tuple[pcapy.BPFProgram, fastpath.BpfProgram]:
    libpcap = pcapy.compile(linktype, 262144, expression, 1, 0)
    return libpcap, fastpath.BpfProgram(libpcap.get_bpf())


def _libpcap_read(path: Path, expression: str) -> Iterator[tuple[tuple[int, int], int, bytes]]:
    handle = pcapy.open_offline(str(path))
    handle.setfilter(expression)
    while True:
        try:
            header, data = handle.next()
        except pcapy.PcapError:  # a file cut mid-record: everything before the cut
            return
        if header is None:
            return
        yield header.getts(), header.getcaplen(), bytes(data)


def _mapped_read(path: Path, expression: str) -> Iterator[tuple[tuple[int, int], int, bytes]]:
    for _linktype, data, meta in open_capture(path, bpf=expression):
        for sec, usec, off, caplen in META_STRUCT.iter_unpack(meta):
            yield (sec, usec), caplen, bytes(data[off : off + caplen])


@pytest.mark.parametrize("capture", CLASSIC, ids=lambda p: p.name)
def test_every_frame_is_kept_as_libpcaps_interpreter_keeps_it(capture: Path) -> None:
    frames = [frame for _, _, frame in _mapped_read(capture, "")]
    assert frames
    for expression in _expressions(capture):
        libpcap, ours = _compiled(_linktype(capture), expression)
        for frame in frames:
            assert ours.matches(frame) == bool(libpcap.filter(frame)), (expression, frame.hex())


@pytest.mark.parametrize("capture", CLASSIC, ids=lambda p: p.name)
def test_a_filtered_read_delivers_what_libpcaps_filtered_read_does(capture: Path) -> None:
    kept = 0
    for expression in _expressions(capture):
        ours = list(_mapped_read(capture, expression))
        assert ours == list(_libpcap_read(capture, expression)), expression
        kept += len(ours)
    assert kept > 0


def test_the_filter_sees_the_wire_length_of_a_snaplen_cut_capture() -> None:
    capture = REALPCAPS / "shf_iot_wan_snaplen150.pcap"
    assert all(caplen <= 150 for _, caplen, _ in _mapped_read(capture, ""))
    long_on_the_wire = list(_mapped_read(capture, "len > 1000"))
    assert long_on_the_wire and long_on_the_wire == list(_libpcap_read(capture, "len > 1000"))


PLAIN = [frame for _, _, frame in _mapped_read(ROOT / "pcaps" / "school.pcap", "")][:300]
SHARE = _compiled(1, ETHERNET[-1])


@settings(max_examples=1500, deadline=None)
@given(frame=st.sampled_from(PLAIN), changes=st.lists(st.tuples(st.integers(0, 1499), st.integers(0, 255)),
                                                      max_size=4), cut=st.integers(0, 1500))
def test_damaged_frames_are_kept_as_libpcap_keeps_them(frame: bytes, changes: list[tuple[int, int]],
                                                       cut: int) -> None:
    damaged = bytearray(frame)
    for at, value in changes:
        damaged[at % len(damaged)] = value
    damaged = damaged[:cut]
    for libpcap, ours in (SHARE, _compiled(1, "udp port 53 or (vlan and tcp)")):
        assert ours.matches(bytes(damaged)) == bool(libpcap.filter(bytes(damaged)))


@pytest.mark.parametrize("program", [
    [],                                      # empty
    [(0x06, 0, 0, 0), (0x15, 0, 0, 1)],      # does not end in a return
    [(0x05, 0, 0, 5), (0x06, 0, 0, 0)],      # jumps past the end
    [(0x15, 3, 0, 1), (0x06, 0, 0, 0)],      # a conditional jump past the end
    [(0x60, 0, 0, 16), (0x06, 0, 0, 0)],     # scratch memory out of range
    [(0x34, 0, 0, 0), (0x06, 0, 0, 0)],      # division by the constant 0
    [(0x64, 0, 0, 32), (0x06, 0, 0, 0)],     # a shift by 32
    [(0xff, 0, 0, 0), (0x06, 0, 0, 0)],      # no such instruction
])
def test_invalid_programs_are_refused(program: list[tuple[int, int, int, int]]) -> None:
    with pytest.raises(ValueError):
        fastpath.BpfProgram(program)


def test_a_filter_keeping_nothing_reads_a_bounded_stretch_per_call() -> None:
    """The mapped reader hands pages back between calls: a call that kept scanning for records a
    filter keeps would hold the whole file in memory."""
    record = struct.pack("=IIII", 1, 0, 1000, 1000) + b"\0" * 1000
    data = struct.pack("=IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1) + record * 20_000  # ~20 MB
    reject = fastpath.BpfProgram([(0x06, 0, 0, 0)])
    offset, calls = 24, 0
    while offset < len(data):
        meta, next_offset, problem = fastpath.pcap_index(data, offset, 256, False, False, 65535, reject)
        assert meta == b"" and problem is None
        assert next_offset - offset <= (16 << 20) + len(record)
        offset, calls = next_offset, calls + 1
    assert offset == len(data) and calls == 2
    keep = fastpath.BpfProgram([(0x06, 0, 0, 262144)])
    assert len(fastpath.pcap_index(data, 24, 256, False, False, 65535, keep)[0]) == 256 * 16


@pytest.mark.parametrize("capture", [ROOT / "pcaps" / "school.pcap",
                                     REALPCAPS / "tcpdump_quic_truncated_loopback.pcap"],
                         ids=["mapped", "libpcap (DLT_NULL)"])
def test_a_bad_filter_expression_fails_the_open_naming_the_file(capture: Path) -> None:
    with pytest.raises(CaptureError) as raised:
        open_capture(capture, bpf="tcp and (")
    assert str(capture) in str(raised.value) and "filter" in str(raised.value)
