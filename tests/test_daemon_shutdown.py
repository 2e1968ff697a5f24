"""SIGTERM while traffic is still flowing: every open flow is reported as flow_end, exit code 0."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

from tests.support.netns import daemon, veth_pair, write_config, write_site_pcap


def test_sigterm_mid_stream_flushes_every_open_flow(tmp_path: Path) -> None:
    truth = write_site_pcap(tmp_path / "site.pcap", scale=5)
    with veth_pair() as pair:
        config = write_config(tmp_path / "site.yaml", pair.capture_if)
        with daemon(pair, config, tmp_path) as running:
            # 200 frames a second: the replay is still going when the daemon is told to stop.
            sender = pair.popen(pair.sender_ns, ["tcpreplay", "-q", "--pps", "200", "-i", pair.sender_if,
                                                 str(truth.path)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
            try:
                running.wait_for(lambda: (running.metric("egresswatch_flows_active") or 0) >= 2,
                                 "flows open")
                seen = running.metric("egresswatch_packets_total") or 0
                running.process.send_signal(signal.SIGTERM)
                assert running.process.wait(timeout=5) == 0
            finally:
                sender.kill()
                sender.wait()
            records = running.event_records()
    assert 0 < seen < truth.kept, "the stop did not land mid-stream"
    ends = [r for r in records if r["event"]["action"] == "flow_end"]
    # Nothing had timed out yet (60 s idle timeout), so every flow_end is from the shutdown flush,
    # and the cameras' flows that were open are all there.
    flows = {(r["source"]["ip"], r["source"]["port"], r["destination"]["ip"], r["destination"]["port"])
             for r in ends}
    assert len(flows) == len(ends), "a flow was reported twice"
    cam1 = next(key for key in truth.flows if key[0] == "10.20.0.11")
    assert cam1 in flows
    cam1_end = next(r for r in ends if r["source"]["ip"] == "10.20.0.11")
    assert 0 < cam1_end["source"]["packets"] <= truth.flows[cam1][0]
    assert all(r["event"]["action"] != "flow_update" for r in records)
