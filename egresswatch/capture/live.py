"""Live capture: an interface through libpcap (pcapy-ng), and a pcap paced as if it were live.

Both sources are driven by the daemon's worker loop, which waits in ``select`` on every source's
``fileno()`` (and the signal wake-up pipe) for at most ``idle_for(now)`` seconds, then asks each
source for ``next_batch``. Nothing here sleeps or polls: a live handle is non-blocking and only
read after the kernel said it has a block ready; a paced file says how long until its next packet
is due; an interface that is down says how long until the next reopen attempt.

Linux strips 802.1Q tags before an AF_PACKET socket sees the frame and hands them over as
auxiliary data; libpcap puts them back into the frame it returns, so batches carry tagged frames
exactly as they were on the wire (tests/test_live_netns.py checks it). A filter therefore sees the
frame untagged, and the daemon installs the untagged form of its filter alone (egresswatch/bpf.py).
"""

from __future__ import annotations

import logging
import select
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pcapy

from egresswatch.capture import META_STRUCT, Batch, CaptureSource

log = logging.getLogger(__name__)

BATCH_PACKETS = 4096
BLOCK_TIMEOUT_MS = 100
"""libpcap read timeout: how long the kernel holds a part-filled TPACKET_V3 block before handing
it over. It bounds the latency of a quiet interface, not the throughput of a busy one."""
BACKOFF_FIRST = 1.0
BACKOFF_MAX = 30.0
IDLE = 1.0
"""How long a healthy source lets the worker wait for its fd before the loop runs its timers."""


@dataclass(frozen=True, slots=True)
class CaptureStats:
    received: int
    """libpcap ps_recv: packets the kernel passed through the filter to this socket."""
    dropped: int
    """ps_drop + ps_ifdrop: packets lost because the ring was full or the interface dropped them."""


class LiveSource:
    """One capture handle on ``interface``, reopened with backoff when the interface goes away.

    ``open`` must run while the process still has CAP_NET_RAW; a later reopen (after the interface
    came back) needs it too, so the daemon keeps that capability when it drops root.
    """

    size_bytes: int | None = None
    truncated_at: str | None = None

    def __init__(self, interface: str, *, snaplen: int = 262144, buffer_bytes: int = 64 << 20,
                 promiscuous: bool = True, bpf: str = "") -> None:
        self.name = interface
        self.position_bytes = 0
        self.linktype = 1
        self.up = False
        self.error: str | None = None
        self._snaplen = snaplen
        self._buffer_bytes = buffer_bytes
        self._promiscuous = promiscuous
        self._bpf = bpf
        self._handle: pcapy.Reader | None = None
        self._closed_stats = CaptureStats(0, 0)
        self._backoff = BACKOFF_FIRST
        self._retry_at = 0.0

    def open(self, now: float) -> bool:
        """Open and activate the handle; on failure log once per state change and schedule a retry."""
        try:
            handle = pcapy.create(self.name)
            handle.set_snaplen(self._snaplen)
            handle.set_promisc(self._promiscuous)
            handle.set_buffer_size(self._buffer_bytes)
            handle.set_timeout(BLOCK_TIMEOUT_MS)
            handle.activate()
            if self._bpf:
                handle.setfilter(self._bpf)
            handle.setnonblock(True)
        except pcapy.PcapError as exc:
            self._went_down(now, str(exc))
            return False
        self._handle = handle
        self.linktype = handle.datalink()
        if not self.up:
            log.info("capture on %s is up (link type %d)", self.name, self.linktype)
        self.up = True
        self.error = None
        self._backoff = BACKOFF_FIRST
        return True

    def set_filter(self, bpf: str) -> None:
        """Replace the kernel filter (after a reload); kept for every later reopen too."""
        self._bpf = bpf
        if self._handle is not None:
            self._handle.setfilter(bpf)

    def fileno(self) -> int | None:
        return self._handle.getfd() if self._handle is not None else None

    def idle_for(self, now: float) -> float:
        """How long the worker may wait before calling ``next_batch`` again."""
        if self._handle is None:
            return max(0.0, self._retry_at - now)
        return IDLE

    def next_batch(self, now: float, max_packets: int = BATCH_PACKETS) -> Batch:
        """What the kernel has ready, without blocking; empty ``meta`` when nothing is.

        A down interface is reopened here once its backoff has passed.
        """
        if self._handle is None and (now < self._retry_at or not self.open(now)):
            return Batch(self.linktype, b"", b"")
        assert self._handle is not None
        try:
            data, meta = self._handle.next_batch(max_packets)
        except pcapy.PcapError as exc:
            self._went_down(now, str(exc))
            return Batch(self.linktype, b"", b"")
        self.position_bytes += len(data)
        return Batch(self.linktype, data, meta)

    def stats(self) -> CaptureStats:
        """Cumulative over every handle this source has had, so the counters never go backwards."""
        current = self._handle_stats()
        return CaptureStats(self._closed_stats.received + current.received,
                            self._closed_stats.dropped + current.dropped)

    def close(self) -> None:
        if self._handle is not None:
            self._closed_stats = self.stats()
            self._handle.close()
            self._handle = None

    def __iter__(self) -> Iterator[Batch]:
        """Blocking iteration for callers outside the daemon (benchmarks): batches as they come."""
        while True:
            fd = self.fileno()
            select.select([fd] if fd is not None else [], [], [], self.idle_for(time.time()))
            batch = self.next_batch(time.time())
            if batch.meta:
                yield batch

    def _handle_stats(self) -> CaptureStats:
        if self._handle is None:
            return CaptureStats(0, 0)
        try:
            received, dropped, ifdropped = self._handle.stats()
        except pcapy.PcapError:
            return CaptureStats(0, 0)
        return CaptureStats(received, dropped + ifdropped)

    def _went_down(self, now: float, reason: str) -> None:
        if self.up or self.error != reason:
            log.warning("capture on %s is down: %s (retrying every %.0f s at most)",
                        self.name, reason, BACKOFF_MAX)
        self.close()
        self.up = False
        self.error = reason
        self._retry_at = now + self._backoff
        self._backoff = min(self._backoff * 2, BACKOFF_MAX)


class PacedSource:
    """A capture file replayed at its own pace (times ``speed``), timestamps shifted to now.

    It goes through the same worker loop as a live interface, so ``egresswatch run --pcap`` shows
    in Prometheus what a live run would. ``now`` is wall-clock time (``time.time()``): packets are
    re-stamped with the wall time they are due at.
    """

    size_bytes: int | None = None
    truncated_at: str | None = None

    def __init__(self, capture: CaptureSource, speed: float, start: float) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.name = Path(capture.name).name
        self.position_bytes = 0
        self.up = True
        self.linktype = 1
        self._capture = capture
        self._batches = iter(capture)
        self._speed = speed
        self._start = start
        self._first: float | None = None
        self._data = b""
        self._records: list[tuple[int, int, int, int]] = []
        self._next = 0
        """Index of the first record of ``_records`` not handed out yet."""
        self._done = False

    def fileno(self) -> None:
        return None

    def idle_for(self, now: float) -> float:
        if not self._fill():
            return IDLE
        return min(IDLE, max(0.0, self._due(self._records[self._next]) - now))

    def next_batch(self, now: float, max_packets: int = BATCH_PACKETS) -> Batch:
        """Packets due by ``now`` (at most ``max_packets``, never across two file batches, whose data
        buffers differ), re-stamped with their due time."""
        out = bytearray()
        if self._fill():
            stop = min(len(self._records), self._next + max_packets)
            while self._next < stop:
                record = self._records[self._next]
                due = self._due(record)
                if due > now:
                    break
                self._next += 1
                sec = int(due)
                out += META_STRUCT.pack(sec, int((due - sec) * 1e6), record[2], record[3])
        return Batch(self.linktype, self._data, bytes(out))

    def stats(self) -> CaptureStats:
        return CaptureStats(0, 0)

    def close(self) -> None:
        self._records = []
        self._next = 0
        self._done = True

    def _fill(self) -> bool:
        """Make sure a record is pending unless the file is exhausted."""
        while self._next >= len(self._records) and not self._done:
            batch = next(self._batches, None)
            if batch is None:
                self._done = True
                self.up = False
                break
            self.linktype = batch.linktype
            self._data = batch.data
            self._records = list(struct.iter_unpack(META_STRUCT.format, batch.meta))
            self._next = 0
            self.position_bytes = self._capture.position_bytes
        return self._next < len(self._records)

    def _due(self, record: tuple[int, int, int, int]) -> float:
        stamp = record[0] + record[1] / 1e6
        if self._first is None:
            self._first = stamp
        return self._start + (stamp - self._first) / self._speed
