"""Capture files: classic pcap through libpcap (pcapy-ng), pcapng through our own block reader.

libpcap reads classic pcap in C and hands us whole batches, and it can apply a BPF filter to a
file. It refuses pcapng files whose interfaces have different link types, so pcapng is ours.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pcapy

from egresswatch.capture import (
    BATCH_PACKETS,
    META_RECORD_SIZE,
    META_STRUCT,
    Batch,
    CaptureError,
    CaptureSource,
)
from egresswatch.capture.pcapng import PCAPNG_MAGIC, PcapngSource
from egresswatch.decode.registry import SUPPORTED_LINKTYPES

PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4",  # microsecond, either byte order
    b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d",  # nanosecond
}
PCAP_FILE_HEADER = 24


class PcapSource:
    """A classic pcap file read by libpcap in batches."""

    def __init__(self, path: Path, bpf: str | None) -> None:
        self.name = str(path)
        self.size_bytes: int | None = path.stat().st_size
        self.position_bytes = PCAP_FILE_HEADER
        self.truncated_at: str | None = None
        self._bpf = bpf
        self._handle = self._open()
        self.linktype = self._handle.datalink()
        if self.linktype not in SUPPORTED_LINKTYPES:
            raise CaptureError(self.name, f"unsupported link type {self.linktype}")

    def _open(self) -> pcapy.Reader:
        try:
            handle = pcapy.open_offline(self.name)
            if self._bpf:
                handle.setfilter(self._bpf)
        except pcapy.PcapError as exc:
            raise CaptureError(self.name, str(exc)) from exc
        return handle

    def __iter__(self) -> Iterator[Batch]:
        delivered = 0
        while True:
            try:
                data, meta = self._handle.next_batch(BATCH_PACKETS)
            except pcapy.PcapError as exc:
                # libpcap drops the whole batch it was filling when the file ends mid-record;
                # re-read that stretch one packet at a time so nothing before the cut is lost.
                yield from self._salvage(delivered, str(exc))
                return
            if not meta:
                return
            delivered += len(meta) // META_RECORD_SIZE
            self.position_bytes += len(data) + len(meta)
            yield Batch(self.linktype, data, meta)

    def _salvage(self, skip: int, error: str) -> Iterator[Batch]:
        handle = self._open()
        for _ in range(skip):
            handle.next()
        index = skip
        while True:
            try:
                header, data = handle.next()
            except pcapy.PcapError:
                break
            if header is None:
                break
            sec, usec = header.getts()
            caplen = header.getcaplen()
            meta = META_STRUCT.pack(sec, usec, 0, caplen)
            index += 1
            self.position_bytes += caplen + META_RECORD_SIZE
            yield Batch(self.linktype, data, meta)
        where = f"stopped at packet {index + 1}"
        if not self._bpf:
            where += f", byte offset {self.position_bytes}"
        self.truncated_at = f"{where} ({error})"


def open_capture(path: str | os.PathLike[str], bpf: str | None = None) -> CaptureSource:
    """Open a pcap or pcapng file; raise CaptureError naming the file when it cannot be read."""
    p = Path(path)
    try:
        with p.open("rb") as f:
            magic = f.read(4)
    except OSError as exc:
        raise CaptureError(str(p), exc.strerror or str(exc)) from exc
    if magic in PCAP_MAGICS:
        return PcapSource(p, bpf)
    if magic == PCAPNG_MAGIC:
        if bpf:
            raise CaptureError(str(p), "a BPF filter can only be applied to classic pcap files")
        return PcapngSource(p)
    raise CaptureError(str(p), "not a pcap or pcapng capture file")

