"""The daemon on a live interface: a veth pair between two test namespaces, tcpreplay on one end.

Checks the kernel filter (kept frames arrive, camera -> NVR bulk and non-device traffic do not),
that tagged frames survive live capture with their VLAN, the capture counters, and the flow
events, with one worker and with two (each taking in its share and every DNS frame).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.netns import CAM1, CAM2, daemon, veth_pair, write_config, write_site_pcap


@pytest.mark.parametrize("workers", [1, 2])
def test_live_capture_filters_and_reports(tmp_path: Path, workers: int) -> None:
    truth = write_site_pcap(tmp_path / "site.pcap")
    with veth_pair() as pair:
        # A worker counts its copy of another worker's DNS flow until the flow ends (then takes it
        # back out): a short UDP idle timeout lets the total settle on each frame counted once.
        config = write_config(tmp_path / "site.yaml", pair.capture_if, workers=workers,
                              extra="flows:\n  idle_timeout: {udp: 5}\n")
        with daemon(pair, config, tmp_path) as running:
            assert running.metric("egresswatch_capture_up", interface=pair.capture_if) == 1
            pair.replay(str(truth.path))
            running.wait_for(
                lambda: running.metric("egresswatch_packets_total") == truth.kept, "every kept frame counted")
            # Exactly the kept frames crossed into user space (DNS once per worker): the bulk never
            # left the kernel.
            received = running.metric("egresswatch_capture_received_packets_total", interface=pair.capture_if)
            assert received == truth.kept + (workers - 1) * truth.dns
            assert running.metric("egresswatch_capture_dropped_packets_total", interface=pair.capture_if) == 0
            assert running.stop() == 0
            records = running.event_records()
    ends = [r for r in records if r["event"]["action"] == "flow_end"]
    seen = {(r["source"]["ip"], r["source"]["port"], r["destination"]["ip"], r["destination"]["port"]): r
            for r in ends}
    for key, (src_packets, dst_packets) in truth.flows.items():
        assert key in seen, f"no flow_end for {key}"
        assert seen[key]["source"]["packets"] == src_packets
        assert seen[key]["destination"].get("packets", 0) == dst_packets
    tagged = seen[(CAM2[1], 40002, "198.51.100.7", 9000)]
    assert tagged["network"]["vlan"]["id"] == 20
    assert tagged["egresswatch"]["device"]["name"] == "cam2"
    assert seen[(CAM1[1], 40001, "203.0.113.5", 8000)]["egresswatch"]["device"]["name"] == "cam1"
    local = [r for r in records if r["destination"]["ip"] == "10.20.0.50"]
    assert local == [], "camera -> NVR bulk reached user space"


def test_interface_down_is_reported_and_retried(tmp_path: Path) -> None:
    truth = write_site_pcap(tmp_path / "site.pcap")
    with veth_pair() as pair:
        config = write_config(tmp_path / "site.yaml", pair.capture_if)
        with daemon(pair, config, tmp_path) as running:
            pair.set_capture_link(up=False)
            running.wait_for(lambda: running.metric("egresswatch_capture_up", interface=pair.capture_if) == 0,
                             "capture_up 0")
            code, body = running.get("/healthz")
            assert (code, body.startswith("degraded")) == (200, True)
            pair.set_capture_link(up=True)
            running.wait_for(lambda: running.metric("egresswatch_capture_up", interface=pair.capture_if) == 1,
                             "capture_up 1 again")
            pair.replay(str(truth.path))
            running.wait_for(lambda: running.metric("egresswatch_packets_total") == truth.kept,
                             "capture after the reopen")
            assert running.stop() == 0
