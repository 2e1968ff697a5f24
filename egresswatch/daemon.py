"""``egresswatch run``: the span-port daemon.

Process layout (one design for one worker or many):

- the **parent** loads and reloads the config, serves ``/metrics`` and ``/healthz``, writes the
  event file, handles signals and talks to systemd. It never touches packets.
- each **worker** (``capture.workers`` of them, forked) opens its own capture handle on every
  interface, all joined in one ``PACKET_FANOUT_HASH`` group per interface so both directions of a
  flow land on the same worker, and runs a whole ``Pipeline`` on its share.

Workers talk to the parent over a ``multiprocessing`` pipe: event lines, and once a second a
snapshot of their own metrics registry. The parent's ``WorkerMetrics`` collector sums the latest
snapshots at scrape time (gauges that are timestamps take the maximum, ``capture_up`` the minimum).
We chose this over prometheus-client's multiprocess mode because the pipeline's per-packet
counters are read by custom collectors at scrape time, which multiprocess mode cannot run.

Every wait is a ``select`` with a timeout on real file descriptors (capture handles, the pipes,
and the signal wake-up pipe), so signals are handled at once and nothing sleep-polls. The config
file's mtime is checked on every turn of the parent's loop (at least once a second).
"""

from __future__ import annotations

import argparse
import contextlib
import copyreg
import logging
import multiprocessing
import os
import select
import signal
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path
from types import MappingProxyType
from typing import Any

from prometheus_client import CollectorRegistry

from egresswatch.bpf import build_filter
from egresswatch.capture.files import open_capture
from egresswatch.capture.live import CaptureStats, LiveSource, PacedSource
from egresswatch.config import Config, ConfigError, load_config
from egresswatch.daemon_http import MetricsServer, WorkerMetrics, daemon_families, read_users, snapshot
from egresswatch.geo import Geo, GeoError
from egresswatch.pipeline import Pipeline
from egresswatch.privileges import drop_privileges
from egresswatch.sdnotify import Notifier
from egresswatch.sinks.events import EventSink
from egresswatch.sinks.metrics import MetricsSink, new_metric

log = logging.getLogger("egresswatch.daemon")

SNAPSHOT_SECONDS = 1.0
SHUTDOWN_GRACE = 4.0
"""How long the parent waits for workers to flush; systemd's default stop timeout is far longer,
the issue asks for exit within 5 s."""
STALE_SNAPSHOT = 10.0
"""A worker that has sent nothing for this long fails /healthz."""


def _mapping_proxy(items: dict[str, Any]) -> MappingProxyType[str, Any]:
    return MappingProxyType(items)


# Config.groups is a read-only mapping; let it cross the pipe to the workers on reload.
copyreg.pickle(MappingProxyType, lambda proxy: (_mapping_proxy, (dict(proxy),)))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``egresswatch run`` (cli.py registers the command)."""
    parser.add_argument("-c", "--config", required=True, metavar="CONFIG", help="YAML configuration file")
    parser.add_argument("--pcap", metavar="FILE",
                        help="replay FILE at its own pace through the live path instead of capturing")
    parser.add_argument("--speed", type=float, default=1.0, metavar="X",
                        help="with --pcap: play X times faster (default 1)")
    parser.add_argument("--events", default="-", metavar="PATH",
                        help="JSON-lines events file, rotated by size ('-' for stdout, the default)")
    parser.add_argument("--events-max-mb", type=int, default=100, metavar="MB",
                        help="rotate the events file at this size (default 100)")
    parser.add_argument("--events-backups", type=int, default=5, metavar="N",
                        help="rotated event files to keep (default 5)")
    parser.add_argument("--user", metavar="NAME",
                        help="drop root to this user once the capture handles are open")
    parser.add_argument("--tls-cert", metavar="PEM", help="serve /metrics over HTTPS with this certificate")
    parser.add_argument("--tls-key", metavar="PEM", help="private key for --tls-cert")
    parser.add_argument("--basic-auth-users", metavar="FILE",
                        help="require HTTP basic auth; FILE has user:sha256-hex-of-password lines")


def run_command(args: argparse.Namespace) -> int:
    """Run until SIGTERM/SIGINT; 0 on a clean stop, 2 on a config error at start, 1 if a worker died."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(processName)s %(message)s")
    config = load_config(args.config)
    if args.pcap and args.speed <= 0:
        raise ConfigError("--speed", "must be positive")
    return Daemon(args, config, build_filter(config)).run()


# ---------------------------------------------------------------------------------------- parent


class Daemon:
    def __init__(self, args: argparse.Namespace, config: Config, bpf: str) -> None:
        self.args = args
        self.config = config
        self.bpf = bpf
        self.config_path = Path(args.config)
        self.config_mtime = _mtime(self.config_path)
        self.registry = CollectorRegistry()
        self.worker_metrics = WorkerMetrics()
        self.registry.register(self.worker_metrics)
        self.reload_failures = new_metric("egresswatch_config_reload_failures_total", self.registry)
        self.reload_success = new_metric("egresswatch_config_last_reload_success", self.registry)
        self.reload_success.set(1)
        self.events = EventWriter(args.events, args.events_max_mb << 20, args.events_backups)
        self.notifier = Notifier()
        self.workers: list[tuple[multiprocessing.Process, Connection]] = []
        self.ready: set[int] = set()
        self.done: set[int] = set()
        self.signals: list[int] = []

    def run(self) -> int:
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, lambda signum, _frame: self.signals.append(signum))
        workers = 1 if self.args.pcap else self.config.capture.workers
        if not self.args.pcap and not self.config.capture.interfaces:
            raise ConfigError("capture.interfaces", "no interface to capture on (or use --pcap)")
        fanout_base = os.getpid()
        context = multiprocessing.get_context("fork")
        for index in range(workers):
            parent_end, child_end = context.Pipe()
            process = context.Process(target=_worker_main, name=f"worker-{index}",
                                      args=(self.args, self.config, self.bpf, fanout_base, child_end))
            process.start()
            child_end.close()
            self.workers.append((process, parent_end))
        users = read_users(self.args.basic_auth_users) if self.args.basic_auth_users else None
        server = MetricsServer(self.config.metrics.listen_host, self.config.metrics.listen_port,
                               self.registry, self.health, tls_cert=self.args.tls_cert,
                               tls_key=self.args.tls_key, users=users)
        log.info("serving /metrics and /healthz on %s:%d", self.config.metrics.listen_host, server.port)
        if self.args.user:
            drop_privileges(self.args.user, keep=())
        try:
            code = self._loop(wake_r)
        finally:
            server.close()
            self.events.close()
        return code

    def _loop(self, wake_r: int) -> int:
        conns = {conn: index for index, (_, conn) in enumerate(self.workers)}
        while True:
            self.notifier.watchdog(time.monotonic())
            readable, _, _ = select.select([wake_r, *conns], [], [], SNAPSHOT_SECONDS)
            if wake_r in readable:
                os.read(wake_r, 512)
            for conn in readable:
                if conn is not wake_r and not self._receive(conn, conns[conn]):
                    log.error("worker-%d exited unexpectedly; stopping", conns[conn])
                    self._stop(conns)
                    return 1
            while self.signals:
                signum = self.signals.pop(0)
                if signum == signal.SIGHUP:
                    self.reload("SIGHUP")
                else:
                    log.info("%s: flushing open flows and stopping", signal.Signals(signum).name)
                    self.notifier.stopping()
                    self._stop(conns)
                    return 0
            mtime = _mtime(self.config_path)
            if mtime is not None and mtime != self.config_mtime:
                self.reload("config file changed")

    def _receive(self, conn: Connection, index: int) -> bool:
        """Handle every message waiting on ``conn``; False when the worker is gone."""
        try:
            while conn.poll():
                kind, payload = conn.recv()
                if kind == "events":
                    self.events.write(payload)
                elif kind == "metrics":
                    self.worker_metrics.update(index, payload)
                elif kind == "ready":
                    self.ready.add(index)
                    if len(self.ready) == len(self.workers):
                        log.info("all %d workers capturing", len(self.workers))
                        self.notifier.ready()
                elif kind == "done":
                    self.done.add(index)
        except (EOFError, OSError):
            return index in self.done
        return True

    def _stop(self, conns: dict[Connection, int]) -> None:
        """Ask every worker to flush and stop, and collect what they flush, within the grace time."""
        for process, conn in self.workers:
            if process.is_alive():
                with contextlib.suppress(OSError):  # it died meanwhile; join below reaps it
                    conn.send(("stop", None))
        deadline = time.monotonic() + SHUTDOWN_GRACE
        pending = {conn: index for conn, index in conns.items() if index not in self.done}
        while pending and time.monotonic() < deadline:
            for conn in multiprocessing.connection.wait(list(pending), deadline - time.monotonic()):
                index = pending[conn]
                if not self._receive(conn, index) or index in self.done:
                    pending.pop(conn)
        for process, _ in self.workers:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                log.error("%s did not stop in time; killing it", process.name)
                process.kill()

    def reload(self, why: str) -> None:
        """Load the config again; on any error keep the running one and count the failure."""
        self.config_mtime = _mtime(self.config_path)
        try:
            config = load_config(self.config_path)
            bpf = build_filter(config)
            if config.geoip != self.config.geoip:
                Geo(config.geoip).close()  # the workers will open it; fail here, not there
        except (ConfigError, GeoError) as exc:
            where = f"{exc.key}: {exc.reason}" if isinstance(exc, ConfigError) else f"geoip: {exc}"
            log.error("config reload (%s) rejected, keeping the running config: %s", why, where)
            self.reload_failures.inc()
            self.reload_success.set(0)
            return
        for key in ("interfaces", "workers", "snaplen", "buffer_mb", "promiscuous"):
            if getattr(config.capture, key) != getattr(self.config.capture, key):
                log.warning("capture.%s changed: takes effect at the next restart", key)
        if config.metrics != self.config.metrics:
            log.warning("metrics changed: takes effect at the next restart")
        for _, conn in self.workers:
            conn.send(("reload", (config, bpf)))
        self.config = config
        self.bpf = bpf
        self.reload_success.set(1)
        log.info("config reloaded (%s): %d devices", why, len(config.devices))

    def health(self) -> tuple[bool, str]:
        """Healthy while every worker is alive and reported metrics recently."""
        ages = self.worker_metrics.ages(time.monotonic())
        alive = [process.is_alive() for process, _ in self.workers]
        if not all(alive) or len(ages) < len(self.workers) or max(ages.values()) > STALE_SNAPSHOT:
            return False, f"unhealthy: {sum(alive)}/{len(self.workers)} workers alive and reporting"
        down = self.worker_metrics.down_interfaces()
        if down:
            return True, "degraded: capture down on " + ", ".join(sorted(down))
        return True, "ok"


class EventWriter:
    """JSON lines to stdout, or to a file rotated by size (``events.jsonl`` -> ``events.jsonl.1``...)."""

    def __init__(self, path: str, max_bytes: int, backups: int) -> None:
        self.path = None if path == "-" else Path(path)
        self.max_bytes = max_bytes
        self.backups = backups
        self.stream = sys.stdout if self.path is None else self.path.open("a", encoding="utf-8")

    def write(self, text: str) -> None:
        if self.path is not None and self.stream.tell() + len(text) > self.max_bytes and self.stream.tell():
            self._rotate()
        self.stream.write(text)
        self.stream.flush()

    def _rotate(self) -> None:
        assert self.path is not None
        self.stream.close()
        for n in range(self.backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{n}")
            if older.exists():
                older.replace(self.path.with_name(f"{self.path.name}.{n + 1}"))
        if self.backups:
            self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        else:
            self.path.unlink()
        self.stream = self.path.open("a", encoding="utf-8")

    def close(self) -> None:
        if self.path is not None:
            self.stream.close()
        else:
            self.stream.flush()


def _mtime(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None  # mid-replace by an editor: look again next turn


# ---------------------------------------------------------------------------------------- worker


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

    def __init__(self, args: argparse.Namespace, config: Config, bpf: str, fanout_base: int,
                 conn: Connection) -> None:
        self.conn = conn
        self.stop = False
        self.registry = CollectorRegistry()
        self.events = _PipeStream(conn)
        self.pipeline = Pipeline(config, [
            EventSink(self.events, flows=config.events.flows),  # type: ignore[arg-type]
            MetricsSink(self.registry, config.metrics.max_devices, totals=lambda: self.pipeline.totals),
        ])
        now = time.time()
        self.sources: list[LiveSource | PacedSource] = []
        if args.pcap:
            self.sources.append(PacedSource(open_capture(args.pcap, bpf), args.speed, now))
        fanout = config.capture.workers > 1
        for index, interface in enumerate(() if args.pcap else config.capture.interfaces):
            source = LiveSource(interface, snaplen=config.capture.snaplen,
                                buffer_bytes=config.capture.buffer_mb << 20,
                                promiscuous=config.capture.promiscuous, bpf=bpf,
                                fanout_group=(fanout_base + index * 0x1001) & 0xFFFF if fanout else None)
            source.open(now)
            self.sources.append(source)
        self.registry.register(_DaemonCollector(self.sources, self.pipeline))  # type: ignore[arg-type]

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
                        source.set_filter(bpf)

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


def _worker_main(args: argparse.Namespace, config: Config, bpf: str, fanout_base: int,
                 conn: Connection) -> None:
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    # The parent decides about reloads; a terminal hang-up must not kill a worker.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    worker = Worker(args, config, bpf, fanout_base, conn)

    def on_stop(_signum: int, _frame: object) -> None:
        worker.stop = True

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    if args.user:
        drop_privileges(args.user)
    worker.run(wake_r)

