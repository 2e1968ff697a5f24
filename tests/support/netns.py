"""Two throw-away network namespaces joined by a veth pair, and the daemon running in one of them.

Both ends of the pair live inside namespaces the test creates, so nothing a test sends can reach a
real network. The capture end has no IP address, like a span port; both namespaces get a loopback,
so the daemon's metrics endpoint is reachable with ``ip netns exec`` (a Python one-liner fetches it:
no curl needed). Names carry the pid and a
counter, so parallel test runs do not collide, and teardown runs even when the test fails.

``write_site_pcap`` builds a small capture whose every frame we know: it is the ground truth of
the live tests (which frames the kernel filter must pass or drop, which flows must be reported).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import dpkt
import pytest

_counter = itertools.count()


@dataclass(frozen=True)
class VethPair:
    capture_ns: str
    sender_ns: str
    capture_if: str
    sender_if: str

    def command(self, namespace: str, argv: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", namespace, *argv]

    def run(self, namespace: str, argv: Sequence[str], timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(self.command(namespace, argv), capture_output=True, text=True, timeout=timeout,
                              check=True)

    def popen(self, namespace: str, argv: Sequence[str], **kwargs: object) -> subprocess.Popen:
        return subprocess.Popen(self.command(namespace, argv), **kwargs)  # type: ignore[call-overload]

    def replay(self, pcap: str, *extra: str) -> subprocess.CompletedProcess:
        """tcpreplay ``pcap`` out of the sender end (so it arrives on the capture end)."""
        return self.run(self.sender_ns, ["tcpreplay", "-q", "-i", self.sender_if, *extra, pcap], timeout=300)

    def set_capture_link(self, up: bool) -> None:
        self.run(self.capture_ns, ["ip", "link", "set", self.capture_if, "up" if up else "down"])


def _ip(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *argv], capture_output=True, text=True)


@contextmanager
def veth_pair(mtu: int = 9000) -> Iterator[VethPair]:
    """Create the namespaces and the pair; skip (with the reason) only where namespaces are forbidden."""
    for tool in ("ip", "tcpreplay"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (.ci/run installs iproute2 and tcpreplay)")
    tag = f"{os.getpid() % 100000}{next(_counter)}"
    pair = VethPair(f"ewcap{tag}", f"ewsnd{tag}", f"ewc{tag}", f"ews{tag}")
    probe = _ip("netns", "add", pair.capture_ns)
    if probe.returncode != 0:
        pytest.skip(f"cannot create network namespaces here: {probe.stderr.strip()}")
    try:
        _check(_ip("netns", "add", pair.sender_ns))
        _check(_ip("link", "add", pair.capture_if, "netns", pair.capture_ns, "mtu", str(mtu),
                   "type", "veth", "peer", "name", pair.sender_if, "netns", pair.sender_ns, "mtu", str(mtu)))
        for namespace, interface in ((pair.capture_ns, pair.capture_if), (pair.sender_ns, pair.sender_if)):
            _check(_ip("-n", namespace, "link", "set", "lo", "up"))
            _check(_ip("-n", namespace, "link", "set", interface, "up"))
            # No router solicitations or DAD from the test's own stack into the capture.
            subprocess.run(["ip", "netns", "exec", namespace, "sysctl", "-qw",
                            f"net.ipv6.conf.{interface}.disable_ipv6=1"], capture_output=True)
        yield pair
    finally:
        # Deleting a namespace destroys the veth end inside it, and with it the peer.
        for namespace in (pair.sender_ns, pair.capture_ns):
            _ip("netns", "del", namespace)


def _check(result: subprocess.CompletedProcess) -> None:
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(result.args)}: {result.stderr.strip()}")


# --- the daemon under test ----------------------------------------------------------------------

CAM1 = ("44:19:b6:00:00:11", "10.20.0.11")
CAM2 = ("44:19:b6:00:00:12", "10.20.0.12")
NVR = ("00:11:aa:bb:cc:50", "10.20.0.50")
LAPTOP = ("02:aa:bb:cc:dd:01", "10.1.0.7")
GATEWAY_MAC = "00:00:5e:00:01:01"
METRICS_PORT = 9108


@dataclass
class SitePcap:
    path: Path
    kept: int = 0
    """Frames the generated filter must pass."""
    dropped: int = 0
    dns: int = 0
    """Kept frames to or from port 53: every worker of a daemon takes these in."""
    flows: dict[tuple[str, int, str, int], tuple[int, int]] = field(default_factory=dict)
    """(src ip, src port, dst ip, dst port) -> (packets from src, packets from dst), device flows."""


def _mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


def _udp(src: tuple[str, str], dst_mac: str, dst_ip: str, sport: int, dport: int, size: int,
         vlan: int | None = None) -> bytes:
    udp = dpkt.udp.UDP(sport=sport, dport=dport, data=b"\x00" * size)
    udp.ulen = len(bytes(udp))
    ip = dpkt.ip.IP(src=bytes(map(int, src[1].split("."))), dst=bytes(map(int, dst_ip.split("."))),
                    p=dpkt.ip.IP_PROTO_UDP, ttl=64, data=udp)
    ip.len = len(bytes(ip))
    tags = [dpkt.ethernet.VLANtag8021Q(id=vlan)] if vlan is not None else []
    return bytes(dpkt.ethernet.Ethernet(src=_mac(src[0]), dst=_mac(dst_mac), type=0x0800,
                                        vlan_tags=tags, data=ip))


def write_site_pcap(path: Path, scale: int = 1, sport_offset: int = 0) -> SitePcap:
    """Camera egress (one flow tagged VLAN 20), camera -> NVR bulk, a laptop, and DNS.

    ``sport_offset`` shifts the cameras' source ports, so a second replay makes new flows."""
    p1, p2 = 40001 + sport_offset, 40002 + sport_offset
    frames: list[tuple[bytes, bool]] = []
    truth = SitePcap(path)
    for i in range(20 * scale):  # cam1 -> 203.0.113.5 telemetry, and replies
        frames.append((_udp(CAM1, GATEWAY_MAC, "203.0.113.5", p1, 8000, 600), True))
        if i % 4 == 0:
            frames.append((_udp((GATEWAY_MAC, "203.0.113.5"), CAM1[0], CAM1[1], 8000, p1, 100), True))
    truth.flows[(CAM1[1], p1, "203.0.113.5", 8000)] = (20 * scale, 5 * scale)
    for _ in range(10 * scale):  # cam2 -> 198.51.100.7, tagged
        frames.append((_udp(CAM2, GATEWAY_MAC, "198.51.100.7", p2, 9000, 900, vlan=20), True))
    truth.flows[(CAM2[1], p2, "198.51.100.7", 9000)] = (10 * scale, 0)
    for _ in range(200 * scale):  # the bulk the kernel must drop, untagged and tagged
        frames.append((_udp(CAM1, NVR[0], NVR[1], 554, 50000, 1400), False))
        frames.append((_udp(CAM2, NVR[0], NVR[1], 554, 50002, 1400, vlan=20), False))
    for _ in range(30 * scale):  # a non-device host browsing
        frames.append((_udp(LAPTOP, GATEWAY_MAC, "203.0.113.80", 50000, 443, 1200), False))
    frames.append((_udp(LAPTOP, GATEWAY_MAC, "10.1.0.1", 5353, 53, 40), True))  # DNS: always kept
    truth.dns = 1
    with path.open("wb") as out:
        writer = dpkt.pcap.Writer(out, snaplen=65535)
        start = time.time() - 60
        for n, (frame, kept) in enumerate(frames):
            writer.writepkt(frame, ts=start + n * 0.001)
            truth.kept += kept
            truth.dropped += not kept
    return truth


def write_config(path: Path, interface: str, workers: int = 1, extra: str = "",
                 port: int = METRICS_PORT) -> Path:
    path.write_text(f"""\
devices:
  - {{name: cam1, mac: "{CAM1[0]}", ip: {CAM1[1]}, vendor: hikvision, group: cameras}}
  - {{name: cam2, mac: "{CAM2[0]}", ip: {CAM2[1]}, vendor: hikvision, group: cameras}}
  - {{name: nvr, mac: "{NVR[0]}", ip: {NVR[1]}, role: nvr, group: cameras}}
groups:
  cameras:
    allow:
      - categories: [infrastructure]
events:
  flows: devices
metrics:
  listen: 127.0.0.1:{port}
capture:
  interfaces: [{interface}]
  workers: {workers}
  buffer_mb: 8
{extra}""", encoding="utf-8")
    return path


_FETCH = """\
import sys, urllib.error, urllib.request
try:
    reply = urllib.request.urlopen(sys.argv[1], timeout=5)
except urllib.error.HTTPError as exc:
    reply = exc
except OSError:
    sys.exit(0)
sys.stdout.write(f"{reply.status}\\n" + reply.read().decode())
"""


@dataclass
class RunningDaemon:
    pair: VethPair
    process: subprocess.Popen
    events: Path
    port: int = METRICS_PORT
    log: Path | None = None

    def get(self, path: str) -> tuple[int, str]:
        """(status, body) of a GET inside the capture namespace; (0, "") while nothing listens."""
        url = f"http://127.0.0.1:{self.port}{path}"
        argv = self.pair.command(self.pair.capture_ns, [sys.executable, "-I", "-c", _FETCH, url])
        result = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        code, _, body = result.stdout.partition("\n")
        return int(code or 0), body

    def metric(self, name: str, **labels: str) -> float | None:
        _, body = self.get("/metrics")
        return metric_value(body, name, **labels)

    def wait_for(self, predicate: Callable[[], bool], what: str, deadline: float = 30.0) -> None:
        """Wait for an outcome that takes real time (a scrape to show packets); fail after ``deadline``."""
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            if self.process.poll() is not None:
                raise AssertionError(f"daemon exited ({self.process.returncode}) waiting for {what}")
            if predicate():
                return
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}")

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=10)

    def event_records(self) -> list[dict]:
        return [json.loads(line) for line in self.events.read_text(encoding="utf-8").splitlines() if line]


def metric_value(body: str, name: str, **labels: str) -> float | None:
    """The value of one sample in a text exposition (labels must match exactly those given)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in body.splitlines():
        match = re.fullmatch(r"([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)", line)
        if match and match.group(1) == name:
            have = ",".join(sorted((match.group(2) or "").split(","))) if match.group(2) else ""
            if have == wanted:
                return float(match.group(3))
    return None


@contextmanager
def daemon(pair: VethPair, config: Path, tmp: Path, *extra: str, port: int = METRICS_PORT,
           name: str = "daemon") -> Iterator[RunningDaemon]:
    """Run ``egresswatch run`` in the capture namespace; events to ``tmp/<name>.jsonl`` (``events.jsonl``
    for the default name), its log to ``tmp/<name>.log``; killed on the way out if still running."""
    events = tmp / ("events.jsonl" if name == "daemon" else f"{name}.jsonl")
    log_path = tmp / f"{name}.log"
    log = log_path.open("w")
    argv = [sys.executable, "-m", "egresswatch", "run", "-c", str(config), "--events", str(events), *extra]
    process = pair.popen(pair.capture_ns, argv, stdout=log, stderr=subprocess.STDOUT,
                         cwd=Path(__file__).resolve().parents[2])
    running = RunningDaemon(pair, process, events, port, log_path)
    try:
        running.wait_for(lambda: running.get("/healthz")[0] == 200, "/healthz")
        yield running
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        log.close()
