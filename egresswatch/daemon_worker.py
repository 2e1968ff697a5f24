"""One capture worker of ``egresswatch run`` (the parent side is daemon.py).

A worker is forked by the parent, opens its capture handles (every interface), drops root, and runs
a whole ``Pipeline`` on its share. With several workers each handle's kernel filter keeps only the
worker's share, exactly as ``replay --workers`` splits a file (workers.py): the frames whose address
words hash to the worker's index (modulo the worker count), plus every DNS frame, so each worker learns
every name; the Pipeline's ``share`` makes a DNS flow that another worker owns a shadow (names learned,
not counted or reported). The split is a pure function of the worker's index, so a worker restarted
after a crash, or a handle reopened after the interface went away, takes back exactly the share it
had. A PACKET_FANOUT group would not: the kernel numbers its members in the order they joined, and
renumbers them when one leaves, so a restart or an interface flap would move flows between workers.
Every worker's ``capture_received_packets_total`` counts the frames its handles took in, so the
daemon's sum counts each DNS frame once per worker.

It talks to the parent over one pipe: it sends ``ready``, event lines, a metrics snapshot once a
second and ``done`` after its final flush; it receives ``stop`` and ``reload``. Every wait is a
``select`` on the capture fds, the pipe and the signal wake-up pipe.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, Protocol

from prometheus_client import CollectorRegistry

from egresswatch.capture.files import open_capture
from egresswatch.capture.live import CaptureStats, LiveSource, PacedSource
from egresswatch.config import Config
from egresswatch.daemon_http import daemon_families, snapshot
from egresswatch.geo import Geo, GeoError
from egresswatch.pipeline import Pipeline, settle_heap
from egresswatch.privileges import drop_privileges
from egresswatch.sinks.events import EventSink
from egresswatch.sinks.metrics import MetricsSink
from egresswatch.workers import share_filter

log = logging.getLogger("egresswatch.daemon")

SNAPSHOT_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class Replay:
    """``run --pcap FILE --speed X``: pace a file through the live path instead of capturing."""

    path: str
    speed: float


class Closable(Protocol):
    def close(self) -> None: ...


def capture_filter(bpf: str, share: tuple[int, int] | None) -> str:
    """The kernel filter of one worker's handles: the daemon's filter, narrowed to the worker's share.

    The share test comes first: the other workers' frames are refused after ~20 instructions instead
    of running the whole inventory filter once per worker."""
    return bpf if share is None else f"({share_filter(*share, tags_in_frame=False)}) and ({bpf})"


class _PipeStream:
    """The text stream the worker's EventSink writes to; ``flush`` ships the lines to the parent."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._parts: list[str] = []

    def write(self, text: str) -> int:
        self._parts.append(text)
        return len(text)

    def flush(self) -> None:
        if self._parts:
            self._conn.send(("events", "".join(self._parts)))
            self._parts.clear()


class Worker:
    """One capture process: its sources, its pipeline, its metrics registry."""

    def __init__(self, config: Config, bpf: str, replay: Replay | None, share: tuple[int, int] | None,
                 conn: Connection) -> None:
        self.conn = conn
        self.share = share
        self.stop = False
        self.registry = CollectorRegistry()
        self.events = _PipeStream(conn)
        self.pipeline = Pipeline(config, [
            EventSink(self.events, flows=config.events.flows),  # type: ignore[arg-type]
            MetricsSink(self.registry, config.metrics.max_devices,
                        totals=lambda: self.pipeline.counted_totals()),
        ], share=share)
        now = time.time()
        self.sources: list[LiveSource | PacedSource] = []
        if replay is not None:
            self.sources.append(PacedSource(open_capture(replay.path, bpf), replay.speed, now))
        for interface in () if replay else config.capture.interfaces:
            source = LiveSource(interface, snaplen=config.capture.snaplen,
                                buffer_bytes=config.capture.buffer_mb << 20,
                                promiscuous=config.capture.promiscuous, bpf=capture_filter(bpf, share))
            source.open(now)
            self.sources.append(source)
        self.registry.register(_DaemonCollector(self.sources, self.pipeline))  # type: ignore[arg-type]
        settle_heap()

    def run(self, wake_r: int) -> None:
        self.conn.send(("ready", None))
        next_snapshot = 0.0
        while not self.stop:
            now = time.time()
            timeout = min([SNAPSHOT_SECONDS, *(source.idle_for(now) for source in self.sources)])
            fds = [fd for fd in (source.fileno() for source in self.sources) if fd is not None]
            readable, _, _ = select.select([wake_r, self.conn, *fds], [], [], timeout)
            if wake_r in readable:
                os.read(wake_r, 512)
            self._commands()
            now = time.time()
            for source in self.sources:
                batch = source.next_batch(now)
                if batch.meta:
                    self.pipeline.feed(batch)
            self.pipeline.advance(now)
            if now >= next_snapshot:
                next_snapshot = now + SNAPSHOT_SECONDS
                self._reopen_geo()
                self._report()
        self.pipeline.finish()
        for source in self.sources:
            source.close()
        self._report()
        self.conn.send(("done", None))

    def _commands(self) -> None:
        while self.conn.poll():
            kind, payload = self.conn.recv()
            if kind == "stop":
                self.stop = True
            elif kind == "reload":
                config, bpf = payload
                old = self.pipeline.config.geoip
                self.pipeline.reload(config, Geo(config.geoip) if config.geoip != old else None)
                for source in self.sources:
                    if isinstance(source, LiveSource):
                        source.set_filter(capture_filter(bpf, self.share))

    def _reopen_geo(self) -> None:
        """Pick up a GeoIP DB that geoipupdate replaced (written aside, then renamed over the old)."""
        try:
            if self.pipeline.geo.reopen_if_changed():
                log.info("GeoIP database reopened")
        except GeoError as exc:
            log.error("GeoIP database replaced by an unusable file, keeping the old one: %s", exc)

    def _report(self) -> None:
        self.events.flush()
        self.conn.send(("metrics", snapshot(self.registry)))


class _DaemonCollector:
    """This worker's capture counters (from libpcap) and GeoIP build times, at snapshot time."""

    def __init__(self, sources: list[LiveSource | PacedSource], pipeline: Pipeline) -> None:
        self._sources = sources
        self._pipeline = pipeline

    def collect(self) -> Any:
        stats: dict[str, tuple[bool, CaptureStats]] = {s.name: (s.up, s.stats()) for s in self._sources}
        return daemon_families(stats, self._pipeline.geo.build_timestamps())


def worker_main(config: Config, bpf: str, replay: Replay | None, share: tuple[int, int] | None,
                conn: Connection, inherited: Iterable[Closable]) -> None:
    """The forked worker's entry point; ``share`` is (this worker's index, workers), None for a lone
    worker. ``inherited`` are the parent's handles a fork copied (the
    other workers' pipe ends, the listening socket): closed first, so that a worker restarted later
    holds nothing that keeps another worker's pipe or the metrics port open."""
    for handle in inherited:
        handle.close()
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    # The parent decides about reloads; a terminal hang-up must not kill a worker.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    worker = Worker(config, bpf, replay, share, conn)

    def on_stop(_signum: int, _frame: object) -> None:
        worker.stop = True

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    if config.capture.user:
        drop_privileges(config.capture.user)
    worker.run(wake_r)
