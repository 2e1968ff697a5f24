"""The daemon's HTTP endpoint: ``/metrics`` and ``/healthz``, optional TLS and basic auth.

It runs in one server thread of the parent process and only reads: the registry collects at
scrape time, ``/healthz`` asks a callable. Basic-auth passwords are stored as SHA-256 hex digests
(``user:digest`` lines, e.g. from ``printf %s 'secret' | sha256sum``), never in clear text.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import socket
import ssl
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

Health = Callable[[], tuple[bool, str]]
"""Returns (healthy, one line of text for the body)."""


def read_users(path: str | Path) -> dict[str, str]:
    """``user:sha256-hex`` lines; blank lines and ``#`` comments are skipped."""
    users = {}
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, digest = line.partition(":")
        if not sep or len(digest) != 64:
            raise ValueError(f"{path}:{number}: expected user:sha256-hex-digest")
        users[user] = digest.lower()
    return users


class MetricsServer:
    """Serves until ``close``; ``port`` is the bound port (useful when listening on port 0)."""

    def __init__(self, host: str, port: int, registry: CollectorRegistry, health: Health, *,
                 tls_cert: str | None = None, tls_key: str | None = None,
                 users: Mapping[str, str] | None = None) -> None:
        handler = _handler(registry, health, dict(users or {}))
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


def _family(host: str) -> int:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _handler(registry: CollectorRegistry, health: Health,
             users: dict[str, str]) -> type[BaseHTTPRequestHandler]:
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
            digest = hashlib.sha256(password.encode()).hexdigest()
            return hmac.compare_digest(digest, users.get(user, "0" * 64)) and user in users

        def _reply(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            """Scrapes every few seconds are not worth a log line each."""

    return Handler
