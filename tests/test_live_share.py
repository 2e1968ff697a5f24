"""How two daemon workers split a live interface: each address pair on exactly one worker, DNS on both.

Two capture handles with the workers' kernel filters (``daemon_worker.capture_filter``) take the
same replay in the capture namespace, opened in reverse order (worker 1 first) to show that the
split is the worker's index and not the order the handles came up in. Every frame is then judged by
what it is: an IP frame that is not DNS reaches exactly the worker ``address_share`` names for its
address pair (IPv4 and IPv6, untagged and VLAN-tagged, many ports per pair, both directions), a DNS
frame reaches both, a non-IP frame (ARP) only worker 0.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import dpkt

from egresswatch.bpf import build_filter
from egresswatch.config import load_config
from egresswatch.workers import address_share
from tests.support.frames import ethernet_frame
from tests.support.netns import CAM1, CAM2, GATEWAY_MAC, veth_pair, write_config

ROOT = Path(__file__).resolve().parent.parent
WORKERS = 2

_CAPTURE = """\
import json, select, sys
from egresswatch.capture.live import LiveSource
from egresswatch.daemon_worker import capture_filter

interface, bpf, workers = sys.argv[1], sys.argv[2], int(sys.argv[3])
sources = {}
for worker in reversed(range(workers)):
    sources[worker] = LiveSource(interface, buffer_bytes=4 << 20, bpf=capture_filter(bpf, (worker, workers)))
    assert sources[worker].open(0.0), sources[worker].error
seen = {worker: [] for worker in sources}
print("ready", flush=True)
# After stdin closes, drain until a wait longer than the block timeout brings nothing more.
waits = [sys.stdin]
while True:
    readable, _, _ = select.select([*waits, *(s.fileno() for s in sources.values())], [], [], 0.3)
    if sys.stdin in readable and not sys.stdin.read():
        waits = []
    got = 0
    for worker, source in sources.items():
        batch = source.next_batch(0.0)
        got += len(batch.meta)
        for record in range(0, len(batch.meta), 16):
            offset, caplen = memoryview(batch.meta)[record + 8 : record + 16].cast("I")
            seen[worker].append(batch.data[offset : offset + caplen].hex())
    if not waits and not readable:
        break
print(json.dumps(seen))
"""


def _ip4(text: str) -> bytes:
    return bytes(map(int, text.split(".")))


def _frame(src_mac: str, dst_mac: str, src: bytes, dst: bytes, sport: int, dport: int,
           vlan: int | None = None) -> bytes:
    return ethernet_frame(src, dst, sport, dport, vlan=vlan, payload=bytes(32),
                          src_mac=bytes.fromhex(src_mac.replace(":", "")),
                          dst_mac=bytes.fromhex(dst_mac.replace(":", "")))


def _site_frames() -> list[bytes]:
    """Camera egress to 12 IPv4 and 4 IPv6 destinations, 6 source ports each and a reply per flow
    (cam2's tagged VLAN 20), DNS to two resolvers (one tagged), and ARP."""
    frames = []
    v6_cam = bytes.fromhex("20010db8000000000000000000000011")
    for n in range(16):
        camera, vlan = (CAM1, None) if n // 2 % 2 else (CAM2, 20)
        cam_ip = _ip4(camera[1]) if n < 12 else v6_cam
        remote = _ip4(f"203.0.113.{n + 1}") if n < 12 else bytes.fromhex(f"20010db8ffff{n:020x}")
        for port in range(6):
            frames.append(_frame(camera[0], GATEWAY_MAC, cam_ip, remote, 40000 + 97 * port, 443 + n, vlan))
            frames.append(_frame(GATEWAY_MAC, camera[0], remote, cam_ip, 443 + n, 40000 + 97 * port, vlan))
    for resolver, vlan in (("10.1.0.1", None), ("10.1.0.2", 20)):
        for port in (5353, 5354, 5355):
            frames.append(_frame(CAM1[0], GATEWAY_MAC, _ip4(CAM1[1]), _ip4(resolver), port, 53, vlan))
            frames.append(_frame(GATEWAY_MAC, CAM1[0], _ip4(resolver), _ip4(CAM1[1]), 53, port, vlan))
    arp = dpkt.arp.ARP(sha=bytes.fromhex(CAM1[0].replace(":", "")), spa=_ip4(CAM1[1]), tpa=_ip4("10.20.0.1"))
    frames.append(bytes(dpkt.ethernet.Ethernet(src=bytes.fromhex(CAM1[0].replace(":", "")), dst=b"\xff" * 6,
                                               type=dpkt.ethernet.ETH_TYPE_ARP, data=arp)))
    return frames


def _expected_workers(frame: bytes) -> set[int]:
    eth = dpkt.ethernet.Ethernet(frame)
    if not isinstance(eth.data, dpkt.ip.IP | dpkt.ip6.IP6):
        return {0}
    if 53 in (eth.data.data.sport, eth.data.data.dport):
        return set(range(WORKERS))
    return {address_share(eth.data.src, eth.data.dst, WORKERS)}


def test_each_address_pair_lands_on_its_workers_share_and_dns_on_every_worker(tmp_path: Path) -> None:
    frames = _site_frames()
    pcap = tmp_path / "share.pcap"
    with pcap.open("wb") as out:
        writer = dpkt.pcap.Writer(out, snaplen=65535)
        for n, frame in enumerate(frames):
            writer.writepkt(frame, ts=1_700_000_000 + n * 0.001)
    expected = {worker: Counter(f.hex() for f in frames if worker in _expected_workers(f))
                for worker in range(WORKERS)}
    # Each worker owns tagged and untagged, IPv4 and IPv6 pairs, or the test would show little.
    owned = Counter(_expected_workers(f).pop() for f in frames if len(_expected_workers(f)) == 1)
    assert owned[0] > 24 and owned[1] > 24, owned
    with veth_pair() as pair:
        bpf = build_filter(load_config(write_config(tmp_path / "site.yaml", pair.capture_if)), live=True)
        argv = [sys.executable, "-c", _CAPTURE, pair.capture_if, bpf, str(WORKERS)]
        capture = pair.popen(pair.capture_ns, argv, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True)
        try:
            assert capture.stdout.readline().strip() == "ready"
            pair.replay(str(pcap))
            out, _ = capture.communicate("", timeout=30)
        finally:
            if capture.poll() is None:
                capture.kill()
                capture.wait()
    seen = {int(worker): Counter(hexes) for worker, hexes in json.loads(out).items()}
    assert seen == expected
