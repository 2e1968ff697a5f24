"""The benchmark harness works: the site generator is deterministic and well-formed, and ``run.py
--quick`` writes a result file of the documented shape. Speed is measured by the benchmark itself,
never asserted here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import dpkt
import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
TINY = {"packets": 3000, "cameras": 4, "nvrs": 1, "seconds": 5, "office_hosts": 12}


@pytest.fixture
def sitemix(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import sitemix

    return sitemix


def _frames(path: Path) -> list[tuple[float, bytes]]:
    with path.open("rb") as f:
        return list(dpkt.pcap.Reader(f))


def test_generator_is_deterministic_and_exact(sitemix, tmp_path: Path) -> None:
    spec = sitemix.SiteSpec(**TINY)
    first = sitemix.ensure_capture(spec, tmp_path / "a")
    second = sitemix.ensure_capture(spec, tmp_path / "b")
    assert first.read_bytes() == second.read_bytes()
    assert len(_frames(first)) == spec.packets
    other_seed = sitemix.ensure_capture(sitemix.SiteSpec(**TINY, seed=8), tmp_path / "c")
    assert other_seed.read_bytes() != first.read_bytes()


def test_generated_site_has_the_promised_mix(sitemix, tmp_path: Path) -> None:
    spec = sitemix.SiteSpec(**{**TINY, "cameras": 15})  # camera 15 is the first behind the VLAN 21 trunk
    kinds: Counter[str] = Counter()
    names = set()
    last = 0.0
    for ts, buf in _frames(sitemix.ensure_capture(spec, tmp_path)):
        assert ts >= last
        last = ts
        eth = dpkt.ethernet.Ethernet(buf)
        if getattr(eth, "vlan_tags", None):  # dpkt sets it only on tagged frames
            kinds[f"vlan{eth.vlan_tags[0].id}"] += 1
        ip = eth.data
        if isinstance(ip, dpkt.ip.IP):
            assert dpkt.in_cksum(bytes(ip)[: ip.hl * 4]) == 0, "IPv4 header checksum"
        if isinstance(ip, dpkt.ip6.IP6):
            kinds["ipv6"] += 1
        if not isinstance(ip, dpkt.ip.IP | dpkt.ip6.IP6):
            continue
        l4 = ip.data
        if isinstance(l4, dpkt.udp.UDP) and l4.sport == 8000:
            kinds["rtp"] += 1
        elif isinstance(l4, dpkt.tcp.TCP) and l4.data[:1] == b"$":
            kinds["rtsp-interleaved"] += 1
        elif isinstance(l4, dpkt.tcp.TCP) and l4.data[:1] == b"\x16":
            records, _ = dpkt.ssl.tls_multi_factory(l4.data)
            hello = records[0].data
            names.add(dpkt.ssl.TLSHandshake(hello).data.extensions[0][1][5:].decode())
        elif isinstance(l4, dpkt.udp.UDP) and 53 in (l4.sport, l4.dport):
            kinds["dns"] += 1
    video = kinds["rtp"] + kinds["rtsp-interleaved"]
    assert video > spec.packets // 2
    assert kinds["rtp"] and kinds["rtsp-interleaved"] and kinds["dns"]
    assert kinds["vlan21"] and kinds["vlan30"] and kinds["ipv6"]
    assert {"dev.hik-cloud.example", "p2p.dahua-cloud.example", "clips.storage.example"} <= names


def test_quick_run_writes_result_json(tmp_path: Path) -> None:
    results = tmp_path / "results"
    command = [sys.executable, str(BENCHMARKS / "run.py"), "--quick", "--repeat", "1",
               "--cache", str(tmp_path / "cache"), "--results", str(results)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    (path,) = results.glob("site-quick-*.json")
    result = json.loads(path.read_text())
    assert {"mode", "date", "repeat", "machine", "code", "capture", "runs", "targets"} <= result.keys()
    assert result["capture"]["packets"] > 0
    runs = result["runs"]
    assert {"floor", "egresswatch", "egresswatch-prefilter", "egresswatch-workers2", "nfstream",
            "tshark", "softflowd", "nfpcapd"} <= runs.keys()
    for name in ("floor", "egresswatch", "egresswatch-prefilter"):
        assert runs[name]["available"], runs[name]["error"]
        assert runs[name]["packets_per_second"] > 0
        assert runs[name]["peak_rss_mib"] > 0
    assert runs["floor"]["ratio_to_floor"] == 1.0
    assert runs["egresswatch-prefilter"]["passed_filter"] < result["capture"]["packets"]
    for entry in runs.values():
        assert entry["available"] == (entry["error"] is None)
        assert entry["available"] == (entry["packets_per_second"] is not None)
    full = result["targets"]["full pipeline packets/s"]
    assert full["measured"] == runs["egresswatch"]["packets_per_second"]
    assert full["met"] == (full["measured"] >= full["target"])


def test_instruction_counts_repeat_for_the_same_code(tmp_path: Path) -> None:
    """instructions.py in a fresh clone, whose work tree is its baseline: the same code, built
    twice and counted under callgrind at once, gives the same count (what makes it a measure)."""
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(BENCHMARKS.parent), str(clone)], check=True)
    command = [sys.executable, str(clone / "benchmarks" / "instructions.py"), "--quick",
               "--cache", str(tmp_path / "cache"), "--results", str(tmp_path / "results")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    (path,) = (tmp_path / "results").glob("instructions-quick-*.json")
    result = json.loads(path.read_text())
    baseline, work = result["instructions"].values()
    assert baseline > 100_000_000  # a whole replay: interpreter, imports, every packet
    assert abs(result["ratio_to_baseline"] - 1) < 1e-3 and work == pytest.approx(baseline, rel=1e-3)
