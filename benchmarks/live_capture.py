"""Sustained packets per second through live capture with zero kernel drops, 1 and 2 workers.

    sudo python benchmarks/live_capture.py [--packets 200000]

Runs the daemon in a test namespace on one end of a veth pair (tests/support/netns.py), replays
the live tests' site capture (camera egress, tagged frames, camera -> NVR bulk, a laptop; the
kernel filter passes ~8% of its frames) with ``tcpreplay --pps`` at rising rates and finally
``--topspeed``, and reads the drop counter from /metrics after each step. Rates are wire rates
(every frame reaching the interface). Reports, per worker count, the highest rate with no kernel
drops. Needs root (namespaces); the sender in the same machine caps the highest rate it can show.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from tests.support.netns import RunningDaemon, daemon, veth_pair, write_config, write_site_pcap

RATES = ("20000", "50000", "100000", "200000", "400000", "topspeed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=500, help="size of the replayed capture")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        capture = write_site_pcap(tmp / "site.pcap", scale=args.scale)
        for workers in (1, 2):
            best = None
            with veth_pair() as pair:
                config = write_config(tmp / "site.yaml", pair.capture_if, workers=workers)
                with daemon(pair, config, tmp) as running:
                    dropped_before = 0.0
                    for rate in RATES:
                        extra = ["--topspeed"] if rate == "topspeed" else [f"--pps={rate}"]
                        stats = pair.replay(str(capture.path), *extra).stdout
                        running.wait_for(lambda: _settled(running, pair.capture_if), "counters settle", 60)
                        dropped = running.metric("egresswatch_capture_dropped_packets_total",
                                                 interface=pair.capture_if) or 0.0
                        achieved = _achieved_pps(stats)
                        print(f"workers={workers} rate={rate:>8} sent {achieved:>10.0f} pps, "
                              f"kernel drops {dropped - dropped_before:.0f}")
                        if dropped == dropped_before:
                            best = max(best or 0.0, achieved)
                        dropped_before = dropped
                    running.stop()
            print(f"workers={workers}: highest rate with 0 drops: {best or 0:.0f} packets/s")


def _settled(running: RunningDaemon, interface: str) -> bool:
    """The parent's view lags the workers by a snapshot (1 s); settled when two scrapes 1.5 s apart agree."""
    first = running.metric("egresswatch_capture_received_packets_total", interface=interface)
    time.sleep(1.5)
    second = running.metric("egresswatch_capture_received_packets_total", interface=interface)
    return first is not None and first == second


def _achieved_pps(tcpreplay_output: str) -> float:
    match = re.search(r"Rated: [\d.]+ Bps, [\d.]+ Mbps, ([\d.]+) pps", tcpreplay_output)
    return float(match.group(1)) if match else 0.0


if __name__ == "__main__":
    main()
