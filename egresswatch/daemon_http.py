"""The daemon's HTTP endpoint (``/metrics``, ``/healthz``, optional TLS and basic auth) and the
collector that merges the metrics snapshots the worker processes send.

It runs in one server thread of the parent process and only reads: the registry collects at
scrape time, ``/healthz`` asks a callable. Basic-auth passwords are PBKDF2 hashes
(egresswatch/passwords.py), never clear text.
"""

from __future__ import annotations

import base64
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from egresswatch.passwords import Verifier
from egresswatch.sinks.metrics import metric_doc

Health = Callable[[], tuple[bool, str]]
"""Returns (healthy, one line of text for the body)."""


class MetricsServer:
    """Serves until ``close``; ``port`` is the bound port (useful when listening on port 0)."""

    def __init__(self, host: str, port: int, registry: CollectorRegistry, health: Health, *,
                 tls_cert: Path | None = None, tls_key: Path | None = None,
                 users: Verifier | None = None) -> None:
        handler = _handler(registry, health, users or Verifier({}))
        family_host = host.strip("[]")
        server_class = type("Server", (ThreadingHTTPServer,), {"address_family": _family(family_host)})
        self._server = server_class((family_host, port), handler)
        self._server.daemon_threads = True
        if tls_cert:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(tls_cert, tls_key)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics-http", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def listener(self) -> socket.socket:
        """The listening socket; a forked worker closes its inherited copy (it serves nothing)."""
        return self._server.socket


def _family(host: str) -> int:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _handler(registry: CollectorRegistry, health: Health, users: Verifier) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if users and not self._authorised():
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="egresswatch"')
                self.end_headers()
                return
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._reply(200, CONTENT_TYPE_LATEST, generate_latest(registry))
            elif path == "/healthz":
                ok, text = health()
                self._reply(200 if ok else 503, "text/plain; charset=utf-8", text.encode() + b"\n")
            else:
                self._reply(404, "text/plain; charset=utf-8", b"not found: try /metrics or /healthz\n")

        def _authorised(self) -> bool:
            header = self.headers.get("Authorization", "")
            scheme, _, encoded = header.partition(" ")
            if scheme.lower() != "basic":
                return False
            try:
                user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return False
            return users.check(user, password)

        def _reply(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            """Scrapes every few seconds are not worth a log line each."""

    return Handler


# --- metrics from worker processes ---------------------------------------------------------------

Snapshot = list[tuple[str, str, str, list[tuple[str, dict[str, str], float]]]]
"""(family name, type, help, [(sample name, labels, value)]) per family: picklable, no objects."""

_MAX_GAUGE_SUFFIXES = ("_timestamp_seconds", "_info")
"""Gauges that say "when" or "what version": the newest/the one value, never a sum."""
_MIN_GAUGES = ("egresswatch_capture_up",)
"""Up only if up in every worker: one worker's dead handle is a capture hole."""


def snapshot(registry: CollectorRegistry) -> Snapshot:
    """What a worker sends the parent once a second. ``_created`` samples are left out: creation
    times of per-worker children do not add up to anything."""
    return [
        (family.name, family.type, family.documentation,
         [(s.name, dict(s.labels), s.value) for s in family.samples if not s.name.endswith("_created")])
        for family in registry.collect()
    ]


class WorkerMetrics(Collector):
    """The sum of the latest snapshot of every worker, at scrape time. Exposition, two workers
    having received 600 and 400 packets on eth1::

        egresswatch_capture_received_packets_total{interface="eth1"} 1000.0
        egresswatch_capture_up{interface="eth1"} 1.0
    """

    def __init__(self) -> None:
        self._latest: dict[int, tuple[float, Snapshot]] = {}
        self._retired: Snapshot = []
        """Counters of workers that died: kept in the sum so no counter ever goes backwards."""

    def update(self, worker: int, data: Snapshot) -> None:
        self._latest[worker] = (time.monotonic(), data)

    def retire(self, worker: int) -> None:
        """A worker died: keep its counters' last values, forget its gauges and its age."""
        _, data = self._latest.pop(worker, (0.0, []))
        self._retired += [family for family in data if family[1] == "counter"]

    def ages(self, now: float) -> dict[int, float]:
        return {worker: now - at for worker, (at, _) in list(self._latest.items())}

    def down_interfaces(self) -> set[str]:
        down = set()
        for family in self.collect():
            if family.name == "egresswatch_capture_up":
                down |= {s.labels["interface"] for s in family.samples if not s.value}
        return down

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        values: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
        for data in [self._retired, *(data for _, data in list(self._latest.values()))]:
            for name, kind, help_text, samples in data:
                if name not in families:
                    families[name] = Metric(name, help_text, kind)
                    values[name] = {}
                merged = values[name]
                for sample_name, labels, value in samples:
                    key = (sample_name, tuple(sorted(labels.items())))
                    merged[key] = _combine(name, kind, merged.get(key), value)
        for name, family in families.items():
            for (sample_name, labels), value in values[name].items():
                family.add_sample(sample_name, dict(labels), value)
            yield family


def _combine(name: str, kind: str, old: float | None, new: float) -> float:
    if old is None:
        return new
    if kind == "gauge" and name.endswith(_MAX_GAUGE_SUFFIXES):
        return max(old, new)
    if name in _MIN_GAUGES:
        return min(old, new)
    return old + new


def daemon_families(stats: Mapping[str, tuple[bool, Any]], geo_builds: Mapping[str, int]) -> list[Metric]:
    """``capture_up``/``received``/``dropped`` for {interface: (up, CaptureStats)}, and the GeoIP
    build time per database type."""
    up = GaugeMetricFamily("egresswatch_capture_up", metric_doc("egresswatch_capture_up").help,
                           labels=("interface",))
    received = CounterMetricFamily("egresswatch_capture_received_packets",
                                   metric_doc("egresswatch_capture_received_packets_total").help,
                                   labels=("interface",))
    dropped = CounterMetricFamily("egresswatch_capture_dropped_packets",
                                  metric_doc("egresswatch_capture_dropped_packets_total").help,
                                  labels=("interface",))
    for interface, (is_up, counts) in sorted(stats.items()):
        up.add_metric([interface], 1 if is_up else 0)
        received.add_metric([interface], counts.received)
        dropped.add_metric([interface], counts.dropped)
    name = "egresswatch_geoip_database_build_timestamp_seconds"
    builds = GaugeMetricFamily(name, metric_doc(name).help, labels=("database",))
    for database, epoch in sorted(geo_builds.items()):
        builds.add_metric([database], epoch)
    return [up, received, dropped, builds]
