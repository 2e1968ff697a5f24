"""Real Prometheus, Alertmanager and a webhook receiver on loopback, for end-to-end tests.

Everything runs on 127.0.0.1 with free ports and lives in one temporary directory; ``ServerStack``
is a context manager that stops every process it started and removes the directory, also when the
test fails or a server does not come up.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


def http_get_json(url: str, timeout: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.load(response)


def wait_until(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.5) -> Any:
    """Poll ``check`` until it returns something truthy; its exceptions count as "not yet"."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
        except Exception as error:  # a server still starting refuses connections
            last_error = error
        else:
            if result:
                return result
        time.sleep(interval)
    raise TimeoutError(f"{what}: not within {timeout:.0f} s (last error: {last_error})")


class Process:
    """A child process with its output in a log file, stopped by ``stop``."""

    def __init__(self, name: str, argv: Sequence[str | Path], log: Path, cwd: Path | None = None) -> None:
        self.name = name
        self.log = log
        with log.open("wb") as sink:
            self.popen = subprocess.Popen(
                [str(arg) for arg in argv], stdout=sink, stderr=subprocess.STDOUT, cwd=cwd
            )

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def check_running(self) -> None:
        code = self.popen.poll()
        if code is not None:
            raise RuntimeError(f"{self.name} exited with {code}:\n{self.log_tail()}")

    def wait_ready(self, url: str, timeout: float = 30.0) -> None:
        """Wait for ``url`` to answer 200, failing early (with the log) if the process dies."""

        def ready() -> bool:
            self.check_running()
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.status == 200

        try:
            wait_until(ready, timeout, f"{self.name} ready at {url}", interval=0.2)
        except TimeoutError as error:
            raise TimeoutError(f"{error}\n{self.log_tail()}") from None

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


class _Handler(BaseHTTPRequestHandler):
    """Hands POST bodies to ``server.on_post`` and answers GET with ``server.body``."""

    server: _LoopbackServer

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.on_post(self.path, json.loads(body))
        self.send_response(200)
        self.end_headers()

    def do_GET(self) -> None:
        body = self.server.body
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
        pass


class _LoopbackServer(ThreadingHTTPServer):
    """A threaded HTTP server on a free loopback port, serving until ``stop``."""

    def __init__(self, on_post: Callable[[str, dict[str, Any]], None], body: bytes = b"") -> None:
        super().__init__((LOOPBACK, 0), _Handler)
        self.on_post = on_post
        self.body = body
        self.url = f"http://{LOOPBACK}:{self.server_address[1]}"
        self._thread = threading.Thread(target=self.serve_forever, name="loopback-http", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join()


class Webhook:
    """An Alertmanager webhook receiver: records every notification's JSON body."""

    def __init__(self) -> None:
        self.notifications: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._server = _LoopbackServer(self._received)
        self.url = self._server.url

    def _received(self, path: str, payload: dict[str, Any]) -> None:
        with self._lock:
            self.notifications.append({"path": path, **payload})

    def alerts(self) -> list[dict[str, Any]]:
        """Every alert of every notification so far, with the receiver path it was posted to."""
        with self._lock:
            return [{"path": n["path"], **alert} for n in self.notifications for alert in n["alerts"]]

    def stop(self) -> None:
        self._server.stop()


def alertmanager_variant(shipped: Path, webhook_url: str, wait: str = "1s") -> dict[str, Any]:
    """The shipped Alertmanager config with every webhook sent to ``webhook_url`` (same path) and
    every route's timers shortened to ``wait``; routing, grouping and inhibitions stay as shipped."""
    config = yaml.safe_load(shipped.read_text())
    for receiver in config["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = webhook_url + urllib.parse.urlsplit(hook["url"]).path
    routes = [config["route"]]
    while routes:
        route = routes.pop()
        for timer in ("group_wait", "group_interval"):
            if timer in route:
                route[timer] = wait
        routes.extend(route.get("routes", []))
    return config


class ServerStack(contextlib.ExitStack):
    """Owns a temporary directory and every server started through it; closing stops them all."""

    def __enter__(self) -> ServerStack:
        super().__enter__()
        self.dir = Path(self.enter_context(tempfile.TemporaryDirectory(prefix="egresswatch-e2e-")))
        return self

    def process(self, name: str, argv: Sequence[str | Path], cwd: Path | None = None) -> Process:
        process = Process(name, argv, self.dir / f"{name}.log", cwd=cwd)
        self.callback(process.stop)
        return process

    def webhook(self) -> Webhook:
        hook = Webhook()
        self.callback(hook.stop)
        return hook

    def exposition(self, text: str) -> str:
        """Serve a fixed Prometheus text exposition on every GET path; its host:port."""

        def refuse(path: str, payload: dict[str, Any]) -> None:
            raise AssertionError(f"unexpected POST to the exposition server: {path}")

        server = _LoopbackServer(refuse, text.encode())
        self.callback(server.stop)
        return server.url.split("//", 1)[1]

    def alertmanager(self, config: dict[str, Any]) -> str:
        """Start Alertmanager (no clustering) with ``config``; its base URL."""
        home = self.dir / "alertmanager"
        home.mkdir()
        (home / "alertmanager.yml").write_text(yaml.safe_dump(config))
        port = free_port()
        binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
        assert binary, "Alertmanager is not installed (Debian package prometheus-alertmanager)"
        process = self.process(
            "alertmanager",
            [
                binary,
                f"--config.file={home / 'alertmanager.yml'}",
                f"--storage.path={home / 'data'}",
                f"--web.listen-address={LOOPBACK}:{port}",
                "--cluster.listen-address=",
            ],
        )
        url = f"http://{LOOPBACK}:{port}"
        process.wait_ready(f"{url}/-/ready")
        return url

    def prometheus(
        self, rules: Path, alertmanager_url: str, targets: Sequence[str], interval: str = "1s"
    ) -> str:
        """Start Prometheus scraping ``targets`` as job "egresswatch" with ``rules``; its base URL."""
        home = self.dir / "prometheus"
        home.mkdir()
        config = {
            "global": {"scrape_interval": interval, "evaluation_interval": interval},
            "rule_files": [str(rules)],
            "alerting": {
                "alertmanagers": [{"static_configs": [{"targets": [alertmanager_url.split("//", 1)[1]]}]}]
            },
            "scrape_configs": [{"job_name": "egresswatch", "static_configs": [{"targets": list(targets)}]}],
        }
        (home / "prometheus.yml").write_text(yaml.safe_dump(config))
        port = free_port()
        binary = shutil.which("prometheus")
        assert binary, "Prometheus is not installed (Debian package prometheus)"
        process = self.process(
            "prometheus",
            [
                binary,
                f"--config.file={home / 'prometheus.yml'}",
                f"--storage.tsdb.path={home / 'data'}",
                f"--web.listen-address={LOOPBACK}:{port}",
            ],
        )
        url = f"http://{LOOPBACK}:{port}"
        process.wait_ready(f"{url}/-/ready")
        return url


def prometheus_query(url: str, promql: str, at: float | None = None) -> list[dict[str, Any]]:
    """Instant query result vector (raises on a PromQL error, with Prometheus' message)."""
    params = {"query": promql, **({"time": f"{at:.3f}"} if at is not None else {})}
    try:
        body = http_get_json(f"{url}/api/v1/query?{urllib.parse.urlencode(params)}")
    except urllib.error.HTTPError as error:
        raise AssertionError(f"{promql}: {error.read().decode(errors='replace')}") from None
    assert body["status"] == "success", body
    result = body["data"]["result"]
    # Scalars (e.g. time()) come back as [t, "v"]; wrap them like a one-sample vector.
    return result if body["data"]["resultType"] in ("vector", "matrix") else [{"metric": {}, "value": result}]
