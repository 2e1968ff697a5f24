"""``egresswatch run --pcap pcaps/school.pcap --speed 20`` on loopback: HTTPS and basic auth on
/metrics, sd_notify to a socket the test owns, and the school's device egress series.

The daemon runs as it would under systemd (NOTIFY_SOCKET, WATCHDOG_USEC) with a self-signed
certificate made here by ``cryptography`` and a users file in the PBKDF2 format. At 20x the
capture's 80 s take 4 s; idle timeouts of 5 s (no flow in the capture pauses for more than 1 s)
report every flow soon after, on the wall clock.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from egresswatch.passwords import hash_password
from tests.test_daemon_school import EXPECTED_EGRESS, egress_series

ROOT = Path(__file__).resolve().parent.parent
USER, PASSWORD = "prometheus", "correct horse battery staple"


def write_self_signed(cert: Path, key: Path) -> None:
    """A certificate for 127.0.0.1 (subjectAltName IP), valid for a day, and its EC key."""
    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(private.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .sign(private, hashes.SHA256())
    )
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Endpoint:
    process: subprocess.Popen
    port: int
    cafile: Path
    notify: socket.socket
    log: Path

    def get(self, path: str, user: str | None = USER, password: str = PASSWORD) -> tuple[int, str]:
        request = urllib.request.Request(f"https://127.0.0.1:{self.port}{path}")
        if user is not None:
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        context = ssl.create_default_context(cafile=str(self.cafile))
        try:
            with urllib.request.urlopen(request, timeout=5, context=context) as reply:
                return reply.status, reply.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, ""

    def messages(self, wait: float, until: str | None = None) -> list[str]:
        """The datagrams that reach the notify socket within ``wait`` seconds (up to the first one
        starting with ``until``, if given)."""
        out: list[str] = []
        end = time.monotonic() + wait
        while (left := end - time.monotonic()) > 0 and not (until and out and out[-1].startswith(until)):
            self.notify.settimeout(left)
            try:
                out.append(self.notify.recv(4096).decode())
            except TimeoutError:
                break
        return out


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoint]:
    tmp = tmp_path_factory.mktemp("endpoint")
    write_self_signed(tmp / "cert.pem", tmp / "key.pem")
    # Few iterations: the format and the check are what is tested here, not the cost.
    (tmp / "users").write_text(f"# scrapers\n{USER}:{hash_password(PASSWORD, iterations=1000)}\n")
    demo = ROOT / "config" / "demo.yaml"
    data = yaml.safe_load(demo.read_text(encoding="utf-8"))
    for key in ("country_db", "asn_db"):
        shutil.copyfile(demo.parent / data["geoip"][key], tmp / f"{key}.mmdb")
        data["geoip"][key] = f"{key}.mmdb"  # relative to the config file
    port = free_port()
    data["metrics"] = {"listen": f"127.0.0.1:{port}", "tls_cert": "cert.pem", "tls_key": "key.pem",
                       "basic_auth_users": "users"}
    data["events"] = {"path": "events.jsonl"}
    data["flows"] = {"idle_timeout": {"tcp": 5, "udp": 5, "other": 5}}
    (tmp / "site.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp / "notify.sock"))
    env = {**os.environ, "NOTIFY_SOCKET": str(tmp / "notify.sock"), "WATCHDOG_USEC": "400000"}
    log = tmp / "daemon.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "egresswatch", "run", "-c", str(tmp / "site.yaml"),
             "--pcap", str(ROOT / "pcaps" / "school.pcap"), "--speed", "20"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield Endpoint(process, port, tmp / "cert.pem", notify, log)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        notify.close()


def test_ready_then_watchdog_pings(endpoint: Endpoint) -> None:
    ready = endpoint.messages(wait=10, until="READY=1")
    assert ready and ready[-1] == f"READY=1\nMAINPID={endpoint.process.pid}", ready
    # WatchdogSec 0.4 s: a ping at least every turn of the main loop (<= 1 s).
    assert "WATCHDOG=1" in endpoint.messages(wait=2.5)


def test_https_with_basic_auth_serves_the_schools_device_series(endpoint: Endpoint) -> None:
    expected_per_device: dict[str, float] = {}
    for (device, *_), value in EXPECTED_EGRESS.items():
        expected_per_device[device] = expected_per_device.get(device, 0) + value
    series: dict = {}
    end = time.monotonic() + 30
    while time.monotonic() < end:
        status, body = endpoint.get("/metrics")
        series = egress_series(body) if status == 200 else {}
        if series == paced_truth():
            break
        time.sleep(0.5)
    assert series == paced_truth()
    per_device: dict[str, float] = {}
    for (device, *_), value in series.items():
        per_device[device] = per_device.get(device, 0) + value
    assert per_device == expected_per_device


def paced_truth() -> dict[tuple[str, str, str, str], float]:
    """The truth's rows, except the one timing-dependent fact: at 20x cam-dahua-yard's 14 s UDP
    stream lasts 0.7 s, too short to be footage by shape, so it is telemetry (still a violation)."""
    rows = dict(EXPECTED_EGRESS)
    rows[("cam-dahua-yard", "CN", "telemetry", "violation")] = rows.pop(
        ("cam-dahua-yard", "CN", "footage", "violation"))
    return rows


@pytest.mark.parametrize(("user", "password"), [(None, ""), (USER, "wrong"), ("nobody", PASSWORD)])
def test_scrapes_without_the_right_password_are_refused(endpoint: Endpoint, user: str | None,
                                                        password: str) -> None:
    assert endpoint.get("/metrics", user=user, password=password)[0] == 401
    assert endpoint.get("/healthz", user=user, password=password)[0] == 401


def test_plain_http_gets_no_metrics(endpoint: Endpoint) -> None:
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        urllib.request.urlopen(f"http://127.0.0.1:{endpoint.port}/metrics", timeout=5)


def test_sigterm_says_stopping_and_exits_0(endpoint: Endpoint) -> None:
    endpoint.messages(wait=0.1)  # drop the pings so far
    endpoint.process.send_signal(signal.SIGTERM)
    assert endpoint.process.wait(timeout=5) == 0
    assert "STOPPING=1" in endpoint.messages(wait=1)
    events = [json.loads(line) for line in (endpoint.log.parent / "events.jsonl").read_text().splitlines()]
    assert {r["egresswatch"]["device"]["name"] for r in events if r["event"]["kind"] == "alert"} == {
        "cam-hik-entrance", "cam-hik-gym", "cam-dahua-yard", "hikvision-4419b6200199"}
