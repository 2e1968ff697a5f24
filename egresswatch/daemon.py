"""``egresswatch run``: the span-port daemon.

Process layout (one design for one worker or many):

- the **parent** loads and reloads the config, serves ``/metrics`` and ``/healthz``, writes the
  event file, handles signals and talks to systemd. It never touches packets.
- each **worker** (``capture.workers`` of them, forked) opens its own capture handle on every
  interface, whose kernel filter keeps the worker's share (daemon_worker.py): every flow of one
  address pair, both directions, lands on one worker whatever its ports, so per-worker alert
  de-duplication is exact; every worker also sees all DNS, so each knows every name.

Workers (daemon_worker.py) talk to the parent over a ``multiprocessing`` pipe: event lines, and
once a second a snapshot of their own metrics registry. A worker that dies is restarted with
backoff (its counters stay in the sum, so none goes backwards); a crash loop, or the death of a
``--pcap`` replay's worker, stops the daemon with exit code 1, never a daemon half running.

The parent's ``WorkerMetrics`` collector sums the latest snapshots at scrape time (gauges that are
timestamps take the maximum, ``capture_up`` the minimum).
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
import dataclasses
import logging
import multiprocessing
import os
import pwd
import select
import signal
import sys
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from types import MappingProxyType
from typing import Any

from prometheus_client import CollectorRegistry

from egresswatch.bpf import build_filter
from egresswatch.config import Config, ConfigError, load_config
from egresswatch.daemon_http import MetricsServer, WorkerMetrics
from egresswatch.daemon_worker import Replay, worker_main
from egresswatch.geo import Geo, GeoError
from egresswatch.passwords import UsersFileError, Verifier, read_users
from egresswatch.privileges import CAP_NET_RAW, drop_privileges
from egresswatch.sdnotify import Notifier
from egresswatch.sinks.metrics import new_metric

log = logging.getLogger("egresswatch.daemon")

SNAPSHOT_SECONDS = 1.0
SHUTDOWN_GRACE = 4.0
"""How long the parent waits for workers to flush; systemd's default stop timeout is far longer,
the issue asks for exit within 5 s."""
STALE_SNAPSHOT = 10.0
"""A worker that has sent nothing for this long fails /healthz."""
RESTART_FIRST = 1.0
RESTART_MAX = 30.0
"""A dead worker is restarted after 1 s, doubling with every recent death up to 30 s."""
RESTART_WINDOW = 600.0
MAX_RESTARTS = 3
"""More deaths than this within RESTART_WINDOW is a crash loop: the daemon exits 1 so that systemd
(or whoever runs it) sees the failure, instead of a daemon that keeps half its capture down."""


def _mapping_proxy(items: dict[str, Any]) -> MappingProxyType[str, Any]:
    return MappingProxyType(items)


# Config.groups is a read-only mapping; let it cross the pipe to the workers on reload.
copyreg.pickle(MappingProxyType, lambda proxy: (_mapping_proxy, (dict(proxy),)))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``egresswatch run`` (cli.py registers the command). Everything else is config."""
    parser.add_argument("-c", "--config", required=True, metavar="CONFIG", help="YAML configuration file")
    parser.add_argument("--pcap", metavar="FILE",
                        help="replay FILE at its own pace through the live path instead of capturing")
    parser.add_argument("--speed", type=float, default=1.0, metavar="X",
                        help="with --pcap: play X times faster (default 1)")
    parser.add_argument("--events", metavar="PATH",
                        help="overrides events.path: JSON-lines events file ('-' for stdout)")
    parser.add_argument("--user", metavar="NAME", help="overrides capture.user: drop root to this user")


def run_command(args: argparse.Namespace) -> int:
    """Run until SIGTERM/SIGINT; 0 on a clean stop, 2 on a config error at start, 1 if workers
    keep dying (or the one worker of a --pcap replay died)."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(processName)s %(message)s")
    if args.pcap and args.speed <= 0:
        raise ConfigError("--speed", "must be positive")
    config = load_with_overrides(args)
    replay = Replay(args.pcap, args.speed) if args.pcap else None
    return Daemon(Path(args.config), args, config, build_filter(config, live=replay is None), replay).run()


def load_with_overrides(args: argparse.Namespace) -> Config:
    """The config file with the command line's ``--events``/``--user`` applied (at start and reload)."""
    config = load_config(args.config)
    if args.events is not None:
        path = args.events if args.events == "-" else str(Path(args.events).resolve())
        config = dataclasses.replace(config, events=dataclasses.replace(config.events, path=path))
    if args.user is not None:
        try:
            pwd.getpwnam(args.user)
        except KeyError:
            raise ConfigError("--user", f"no such user {args.user!r} on this machine") from None
        config = dataclasses.replace(config, capture=dataclasses.replace(config.capture, user=args.user))
    return config


# ---------------------------------------------------------------------------------------- parent


@dataclass
class _Slot:
    """One worker position: the process running in it now, and its recent deaths."""

    index: int
    process: multiprocessing.Process | None = None
    conn: Connection | None = None
    deaths: list[float] = field(default_factory=list)
    restart_at: float | None = None
    done: bool = False


class Daemon:
    def __init__(self, config_path: Path, args: argparse.Namespace, config: Config, bpf: str,
                 replay: Replay | None) -> None:
        self.args = args
        self.config = config
        self.bpf = bpf
        self.replay = replay
        self.config_path = config_path
        self.config_mtime = _mtime(self.config_path)
        self.registry = CollectorRegistry()
        self.worker_metrics = WorkerMetrics()
        self.registry.register(self.worker_metrics)
        self.reload_failures = new_metric("egresswatch_config_reload_failures_total", self.registry)
        self.reload_success = new_metric("egresswatch_config_last_reload_success", self.registry)
        self.reload_success.set(1)
        events = config.events
        self.events = EventWriter(events.path, events.max_mb << 20, events.backups)
        self.notifier = Notifier()
        self.context = multiprocessing.get_context("fork")
        count = 1 if replay else config.capture.workers
        self.slots = [_Slot(index) for index in range(count)]
        self.server: MetricsServer | None = None
        self.ready: set[int] = set()
        self.signals: list[int] = []

    def run(self) -> int:
        if not self.replay and not self.config.capture.interfaces:
            raise ConfigError("capture.interfaces", "no interface to capture on (or use --pcap)")
        metrics = self.config.metrics
        try:
            users = Verifier(read_users(metrics.basic_auth_users)) if metrics.basic_auth_users else None
        except (OSError, UsersFileError) as exc:
            raise ConfigError("metrics.basic_auth_users", str(exc)) from exc
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, lambda signum, _frame: self.signals.append(signum))
        for slot in self.slots:
            self._start(slot)
        self.server = MetricsServer(metrics.listen_host, metrics.listen_port, self.registry, self.health,
                                    tls_cert=metrics.tls_cert, tls_key=metrics.tls_key, users=users)
        log.info("serving /metrics and /healthz on %s:%d%s", metrics.listen_host, self.server.port,
                 " (HTTPS)" if metrics.tls_cert else "")
        if self.config.capture.user:
            # CAP_NET_RAW stays: a worker restarted later must open its capture handles again.
            drop_privileges(self.config.capture.user, keep=(CAP_NET_RAW,))
        try:
            return self._loop(wake_r)
        finally:
            self.server.close()
            self.events.close()

    def _start(self, slot: _Slot) -> None:
        """Fork a worker into ``slot`` with the running config."""
        parent_end, child_end = self.context.Pipe()
        inherited: list[Any] = [other.conn for other in self.slots if other.conn is not None]
        if self.server is not None:
            inherited.append(self.server.listener)
        slot.process = self.context.Process(
            target=worker_main, name=f"worker-{slot.index}",
            args=(self.config, self.bpf, self.replay, self._share(slot), child_end, inherited))
        slot.process.start()
        child_end.close()
        slot.conn = parent_end
        slot.restart_at = None
        slot.done = False

    def _share(self, slot: _Slot) -> tuple[int, int] | None:
        """(index, workers) of the share the worker in ``slot`` captures; None when it is alone."""
        return (slot.index, len(self.slots)) if len(self.slots) > 1 else None

    def _loop(self, wake_r: int) -> int:
        while True:
            now = time.monotonic()
            self.notifier.watchdog(now)
            due = [slot.restart_at - now for slot in self.slots if slot.restart_at is not None]
            conns = {slot.conn: slot for slot in self.slots if slot.conn is not None}
            readable, _, _ = select.select([wake_r, *conns], [], [], max(0.0, min([SNAPSHOT_SECONDS, *due])))
            if wake_r in readable:
                os.read(wake_r, 512)
            for conn in readable:
                if conn is not wake_r and not self._receive(conns[conn]) and not self._died(conns[conn]):
                    self._stop()
                    return 1
            for slot in self.slots:
                if slot.restart_at is not None and time.monotonic() >= slot.restart_at:
                    log.info("restarting worker-%d", slot.index)
                    self._start(slot)
            while self.signals:
                signum = self.signals.pop(0)
                if signum == signal.SIGHUP:
                    self.reload("SIGHUP")
                else:
                    log.info("%s: flushing open flows and stopping", signal.Signals(signum).name)
                    self.notifier.stopping()
                    self._stop()
                    return 0
            mtime = _mtime(self.config_path)
            if mtime is not None and mtime != self.config_mtime:
                self.reload("config file changed")

    def _receive(self, slot: _Slot) -> bool:
        """Handle every message waiting from ``slot``'s worker; False when the worker is gone."""
        assert slot.conn is not None
        try:
            while slot.conn.poll():
                kind, payload = slot.conn.recv()
                if kind == "events":
                    self.events.write(payload)
                elif kind == "metrics":
                    self.worker_metrics.update(slot.index, payload)
                elif kind == "ready":
                    self.ready.add(slot.index)
                    if len(self.ready) == len(self.slots):
                        log.info("all %d workers capturing", len(self.slots))
                        self.notifier.ready()
                elif kind == "done":
                    slot.done = True
        except (EOFError, OSError):
            return slot.done
        return True

    def _died(self, slot: _Slot) -> bool:
        """A worker exited without being asked: schedule its restart; False when the daemon must stop
        instead (a --pcap replay cannot resume mid-file, or the worker is in a crash loop)."""
        assert slot.process is not None and slot.conn is not None
        slot.process.join(1.0)
        log.error("worker-%d exited unexpectedly (exit code %s)", slot.index, slot.process.exitcode)
        slot.conn.close()
        slot.conn = None
        self.worker_metrics.retire(slot.index)
        now = time.monotonic()
        slot.deaths = [t for t in slot.deaths if now - t < RESTART_WINDOW] + [now]
        if self.replay is not None:
            log.error("a --pcap replay cannot resume mid-file; stopping")
            return False
        if len(slot.deaths) > MAX_RESTARTS:
            log.error("worker-%d died %d times in %.0f s; stopping (exit 1)", slot.index, len(slot.deaths),
                      RESTART_WINDOW)
            return False
        delay = min(RESTART_FIRST * 2 ** (len(slot.deaths) - 1), RESTART_MAX)
        log.warning("restarting worker-%d in %.0f s", slot.index, delay)
        slot.restart_at = now + delay
        return True

    def _stop(self) -> None:
        """Ask every worker to flush and stop, and collect what they flush, within the grace time."""
        running = [slot for slot in self.slots if slot.conn is not None and slot.process is not None]
        for slot in running:
            if slot.process.is_alive():  # type: ignore[union-attr]
                with contextlib.suppress(OSError):  # it died meanwhile; join below reaps it
                    slot.conn.send(("stop", None))  # type: ignore[union-attr]
        deadline = time.monotonic() + SHUTDOWN_GRACE
        pending = {slot.conn: slot for slot in running if not slot.done}
        while pending and time.monotonic() < deadline:
            for conn in multiprocessing.connection.wait(list(pending), deadline - time.monotonic()):
                slot = pending[conn]  # type: ignore[index]
                if not self._receive(slot) or slot.done:
                    pending.pop(conn)  # type: ignore[arg-type]
        for slot in running:
            assert slot.process is not None
            slot.process.join(max(0.0, deadline - time.monotonic()))
            if slot.process.is_alive():
                log.error("%s did not stop in time; killing it", slot.process.name)
                slot.process.kill()
                slot.process.join()

    def reload(self, why: str) -> None:
        """Load the config again; on any error keep the running one and count the failure."""
        self.config_mtime = _mtime(self.config_path)
        try:
            config = load_with_overrides(self.args)
            bpf = build_filter(config, live=self.replay is None)
            if config.geoip != self.config.geoip:
                Geo(config.geoip).close()  # the workers will open it; fail here, not there
        except (ConfigError, GeoError) as exc:
            where = f"{exc.key}: {exc.reason}" if isinstance(exc, ConfigError) else f"geoip: {exc}"
            log.error("config reload (%s) rejected, keeping the running config: %s", why, where)
            self.reload_failures.inc()
            self.reload_success.set(0)
            return
        for key in ("interfaces", "workers", "snaplen", "buffer_mb", "promiscuous", "user"):
            if getattr(config.capture, key) != getattr(self.config.capture, key):
                log.warning("capture.%s changed: takes effect at the next restart", key)
        if config.metrics != self.config.metrics:
            log.warning("metrics changed: takes effect at the next restart")
        if config.events.path != self.config.events.path:
            log.warning("events.path changed: takes effect at the next restart")
        for slot in self.slots:
            if slot.conn is not None:
                with contextlib.suppress(OSError):  # a worker that just died restarts with the new one
                    slot.conn.send(("reload", (config, bpf)))
        self.config = config
        self.bpf = bpf
        self.reload_success.set(1)
        log.info("config reloaded (%s): %d devices", why, len(config.devices))

    def health(self) -> tuple[bool, str]:
        """Healthy while every worker is alive and reported metrics recently."""
        ages = self.worker_metrics.ages(time.monotonic())
        alive = [slot.process is not None and slot.process.is_alive() and slot.conn is not None
                 for slot in self.slots]
        if not all(alive) or len(ages) < len(self.slots) or max(ages.values()) > STALE_SNAPSHOT:
            return False, f"unhealthy: {sum(alive)}/{len(self.slots)} workers alive and reporting"
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
