"""Capture files: classic pcap mapped into memory or through libpcap (pcapy-ng), pcapng through
our own block reader.

A classic pcap is mapped (mmap) and indexed in C (`_fastpath.pcap_index`, which reads records
the way libpcap does): a batch is the mapping itself plus its records' offsets, so no packet byte
is copied, where libpcap copies every packet into each batch (0.15 s instead of 0.4 s for the
benchmark's 1M-packet, 918 MB file). A BPF filter is compiled by libpcap and run over the records
in place (`_fastpath.BpfProgram`, libpcap's interpreter's semantics). libpcap reads the file when
the extension is not built. It refuses pcapng files whose interfaces have different link types,
so pcapng is ours.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterator
from pathlib import Path

import pcapy

from egresswatch.capture import (
    BATCH_PACKETS,
    LINKTYPE_NULL,
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
RELEASE_BYTES = 16 << 20
"""How much of a mapped file is read before its pages are handed back (bounds the reader's RSS)."""

try:
    # MAXIMUM_SNAPLEN: libpcap's largest capture length for the link types we decode (a file's
    # header may say less, or 0)
    from egresswatch._fastpath import MAXIMUM_SNAPLEN, BpfProgram, pcap_index
except ImportError:  # built without a C compiler: libpcap reads every file
    pcap_index = None


class PcapSource:
    """A classic pcap file, mapped (or read by libpcap without the extension), in batches."""

    def __init__(self, path: Path, bpf: str | None) -> None:
        self.name = str(path)
        self.size_bytes: int | None = path.stat().st_size
        self.position_bytes = PCAP_FILE_HEADER
        self.truncated_at: str | None = None
        self._bpf = bpf
        self._handle = self._open(filtered=False)
        self.linktype = self._handle.datalink()
        if self.linktype not in SUPPORTED_LINKTYPES:
            raise CaptureError(self.name, f"unsupported link type {self.linktype}")
        # libpcap compiles a filter for a BSD loopback file (DLT_NULL) against the file itself (its
        # address families are the writer's, e.g. any BSD's AF_INET6), so that file stays libpcap's
        self._maps = pcap_index is not None and not (bpf and self.linktype == LINKTYPE_NULL)
        if self._maps:  # the record format, as pcap_index reads it
            with path.open("rb") as file:
                header = file.read(PCAP_FILE_HEADER)
            self._big_endian = header[:2] == b"\xa1\xb2"
            self._nanosecond = header[:4] in (b"\xa1\xb2\x3c\x4d", b"\x4d\x3c\xb2\xa1")
            self._snapshot = int.from_bytes(header[16:20], "big" if self._big_endian else "little")
            if not 0 < self._snapshot <= MAXIMUM_SNAPLEN:
                self._snapshot = MAXIMUM_SNAPLEN
        self._program = None
        if bpf:  # compiled once, here, so that a bad expression fails the open
            try:
                if self._maps:
                    compiled = pcapy.compile(self.linktype, self._snapshot, bpf, 1, 0)
                    self._program = BpfProgram(compiled.get_bpf())
                else:
                    self._handle.setfilter(bpf)
            except pcapy.PcapError as exc:
                raise CaptureError(self.name, str(exc)) from exc

    def _open(self, filtered: bool) -> pcapy.Reader:
        try:
            handle = pcapy.open_offline(self.name)
            if filtered and self._bpf:
                handle.setfilter(self._bpf)
        except pcapy.PcapError as exc:
            raise CaptureError(self.name, str(exc)) from exc
        return handle

    def __iter__(self) -> Iterator[Batch]:
        if self._maps:
            yield from self._mapped()
            return
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

    def _mapped(self) -> Iterator[Batch]:
        """Batches whose data is the whole mapped file. The mapping stays open as long as any batch
        refers to it (a consumer may keep the last one), and closes with the last reference."""
        with open(self.name, "rb") as file:
            data = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
        data.madvise(mmap.MADV_SEQUENTIAL)
        offset, delivered, released = PCAP_FILE_HEADER, 0, 0
        while True:
            if offset - released >= RELEASE_BYTES:
                # Read pages count in this process's RSS: hand back those behind us (a later look
                # at them, e.g. by a batch kept longer, maps them again from the page cache).
                done = offset - offset % mmap.PAGESIZE
                data.madvise(mmap.MADV_DONTNEED, released, done - released)
                released = done
            meta, offset, problem = pcap_index(
                data, offset, BATCH_PACKETS, self._big_endian, self._nanosecond, self._snapshot, self._program
            )
            self.position_bytes = offset
            if meta:
                delivered += len(meta) // META_RECORD_SIZE
                yield Batch(self.linktype, data, meta)  # type: ignore[arg-type]
            if problem is not None:
                self.truncated_at = f"stopped at packet {delivered + 1}, byte offset {offset} ({problem})"
                return
            if offset >= len(data):
                return

    def _salvage(self, skip: int, error: str) -> Iterator[Batch]:
        handle = self._open(filtered=True)
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

