"""Worker supervision and privilege drop, on a live veth pair.

A worker that dies (here: SIGKILL, as a SIGBUS from a GeoIP file rewritten under its mmap would) is
restarted with backoff, captures again, and no counter goes backwards; one that keeps dying stops
the daemon with exit 1. The daemon runs with ``capture.user: nobody``: parent and workers are that
user with CAP_NET_RAW only, and a restarted worker (forked by the unprivileged parent) still opens
its capture handle. With ``--pcap`` a dead worker cannot resume mid-file: exit 1 at once.
"""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.support.netns import RunningDaemon, daemon, veth_pair, write_config, write_site_pcap
from tests.test_daemon_endpoint import free_port

ROOT = Path(__file__).resolve().parent.parent
CAP_NET_RAW = 1 << 13


def _children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {key: value.strip() for key, _, value in (line.partition(":") for line in lines)}


def _worker(running: RunningDaemon) -> int:
    """The one worker's pid, once it exists."""
    running.wait_for(lambda: len(_children(running.process.pid)) == 1, "a worker process")
    return _children(running.process.pid)[0]


def test_dead_worker_is_restarted_unprivileged_and_a_crash_loop_exits_1(tmp_path: Path) -> None:
    truth = write_site_pcap(tmp_path / "site.pcap")
    nobody = pwd.getpwnam("nobody").pw_uid
    with veth_pair() as pair:
        config = write_config(tmp_path / "site.yaml", pair.capture_if, extra="  user: nobody\n")
        with daemon(pair, config, tmp_path) as running:
            first = _worker(running)
            for pid in (running.process.pid, first):
                status = _status(pid)
                assert status["Uid"].split() == [str(nobody)] * 4, status["Uid"]
                assert int(status["CapEff"], 16) == CAP_NET_RAW
                assert int(status["CapPrm"], 16) == CAP_NET_RAW
            pair.replay(str(truth.path))
            running.wait_for(lambda: running.metric("egresswatch_packets_total") == truth.kept, "replay")

            os.kill(first, signal.SIGKILL)
            running.wait_for(lambda: _children(running.process.pid) not in ([], [first]), "a new worker")
            second = _worker(running)
            running.wait_for(lambda: running.get("/healthz")[0] == 200, "healthy after the restart")
            # The dead worker's counters stay in the sum: nothing went backwards.
            assert running.metric("egresswatch_packets_total") == truth.kept
            assert int(_status(second)["CapEff"], 16) == CAP_NET_RAW
            pair.replay(str(truth.path))
            running.wait_for(lambda: running.metric("egresswatch_packets_total") == 2 * truth.kept,
                             "the restarted worker captures")
            assert running.metric("egresswatch_capture_received_packets_total",
                                  interface=pair.capture_if) == 2 * truth.kept

            # Three more deaths within the window: a crash loop, the daemon gives up with exit 1.
            for death in range(3):
                victim = _worker(running)
                os.kill(victim, signal.SIGKILL)
                if death < 2:  # after the last one the daemon itself exits: nothing to wait for
                    running.wait_for(
                        lambda v=victim: v not in _children(running.process.pid), "the worker gone"
                    )
            assert running.process.wait(timeout=30) == 1
    log = (tmp_path / "daemon.log").read_text(encoding="utf-8")
    assert log.count("exited unexpectedly") == 4
    assert "restarting worker-0 in 1 s" in log and "restarting worker-0 in 4 s" in log
    assert "died 4 times" in log


def test_pcap_replay_whose_worker_dies_exits_1(tmp_path: Path) -> None:
    config = tmp_path / "site.yaml"
    config.write_text(f"metrics:\n  listen: 127.0.0.1:{free_port()}\nflows:\n  idle_timeout: {{udp: 5}}\n")
    process = subprocess.Popen(
        [sys.executable, "-m", "egresswatch", "run", "-c", str(config), "--pcap",
         str(ROOT / "pcaps" / "school.pcap"), "--events", str(tmp_path / "events.jsonl")],
        cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while not _children(process.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        os.kill(_children(process.pid)[0], signal.SIGKILL)
        assert process.wait(timeout=10) == 1
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert "a --pcap replay cannot resume mid-file" in process.stderr.read()
