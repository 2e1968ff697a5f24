"""The operator's path end to end, with the real Debian Prometheus and Alertmanager on loopback.

Both tests load the shipped rules (config/prometheus/egresswatch-rules.yml) and the shipped
Alertmanager routing (config/alertmanager/alertmanager.yml, webhooks pointed at a local receiver,
timers shortened), scrape every second, and stop every process and remove every file at the end.

- ``test_shipped_rules_and_routing_with_a_fixed_exposition`` scrapes a fixed exposition: it checks
  the rules, the routing and the harness without egresswatch.
- ``test_school_replay_pages_the_operator`` runs ``egresswatch run --pcap pcaps/school.pcap`` and
  checks what an operator gets: the footage page, no page for allowed traffic, data on every board.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import dpkt
import yaml
from support.contract import REPO
from support.dashboards import concrete, load_dashboards, panel_queries
from support.servers import (
    ServerStack,
    alertmanager_variant,
    free_port,
    http_get_json,
    prometheus_query,
    wait_until,
)

RULES = REPO / "config" / "prometheus" / "egresswatch-rules.yml"
ALERTMANAGER_CONFIG = REPO / "config" / "alertmanager" / "alertmanager.yml"
SCHOOL = REPO / "pcaps" / "school.pcap"
DEMO_CONFIG = REPO / "config" / "demo.yaml"
FOOTAGE_ALERT = "EgresswatchFootageToDisallowedCountry"
ONCALL_PATH = "/egresswatch/oncall"  # the shipped critical receiver's webhook path
REPLAY_SECONDS = 20.0
"""Wall-clock time the paced replay of the school capture should take."""
SETTLE_SECONDS = 5.0
"""After the last packet: a few 1 s evaluations plus Alertmanager's shortened group_wait, so an alert
that the end of the capture causes has reached the webhook before we look for absent alerts."""


def _start_alert_path(stack: ServerStack, targets: list[str]) -> tuple[str, str, Any]:
    """Webhook, Alertmanager with the shipped routing, Prometheus with the shipped rules."""
    hook = stack.webhook()
    alertmanager = stack.alertmanager(alertmanager_variant(ALERTMANAGER_CONFIG, hook.url))
    prometheus = stack.prometheus(RULES, alertmanager, targets)
    return prometheus, alertmanager, hook


def _firing(hook: Any, alertname: str) -> list[dict[str, Any]]:
    return [a for a in hook.alerts() if a["labels"]["alertname"] == alertname and a["status"] == "firing"]


def _all_alert_labels(hook: Any, alertmanager: str) -> list[dict[str, str]]:
    """Labels of every alert notified so far or active in Alertmanager now."""
    active = http_get_json(f"{alertmanager}/api/v2/alerts")
    return [alert["labels"] for alert in hook.alerts()] + [alert["labels"] for alert in active]


def test_shipped_rules_and_routing_with_a_fixed_exposition() -> None:
    exposition = """\
# TYPE egresswatch_policy_violations_total counter
egresswatch_policy_violations_total{device="cam-hik-entrance",group="cameras",country="CN",category="footage",severity="critical"} 1
# TYPE egresswatch_device_egress_bytes_total counter
egresswatch_device_egress_bytes_total{device="nvr-main",group="nvr",vendor="hikvision",country="GB",category="footage",verdict="allowed"} 123456
# TYPE egresswatch_device_last_seen_timestamp_seconds gauge
egresswatch_device_last_seen_timestamp_seconds{device="nvr-main",group="nvr",vendor="hikvision",role="nvr"} 1.7e+09
"""  # noqa: E501 - exposition lines are what they are
    with ServerStack() as stack:
        target = stack.exposition(exposition)
        prometheus, alertmanager, hook = _start_alert_path(stack, [target])

        (alert,) = wait_until(lambda: _firing(hook, FOOTAGE_ALERT), 60, "footage alert at the webhook")
        assert alert["path"] == ONCALL_PATH
        assert alert["labels"] == {
            "alertname": FOOTAGE_ALERT,
            "category": "footage",
            "country": "CN",
            "device": "cam-hik-entrance",
            "group": "cameras",
            "instance": target,
            "job": "egresswatch",
            "severity": "critical",
        }
        assert alert["annotations"]["runbook"] == "docs/runbook.md#egresswatchfootagetodisallowedcountry"
        # Only the footage alert: the allowed NVR upload raises nothing.
        assert {labels["alertname"] for labels in _all_alert_labels(hook, alertmanager)} == {FOOTAGE_ALERT}
        assert prometheus_query(prometheus, 'up{job="egresswatch"}')[0]["value"][1] == "1"


def _replay_plan(pcap: Path) -> tuple[float, float]:
    """(speed that replays ``pcap`` in about REPLAY_SECONDS, wall-clock seconds the replay takes)."""
    with pcap.open("rb") as handle:
        times = [timestamp for timestamp, _ in dpkt.pcap.UniversalReader(handle)]
    assert times, f"{pcap} has no packets"
    speed = max(1.0, (times[-1] - times[0]) / REPLAY_SECONDS)
    return speed, (times[-1] - times[0]) / speed


def _demo_config_copy(directory: Path, metrics_port: int) -> tuple[Path, dict[str, Any]]:
    """config/demo.yaml with metrics on ``metrics_port`` and its relative paths made absolute."""
    config = yaml.safe_load(DEMO_CONFIG.read_text())
    geoip = config.get("geoip", {})
    for key in ("country_db", "asn_db"):
        if key in geoip:
            geoip[key] = str((DEMO_CONFIG.parent / geoip[key]).resolve())
    config["metrics"] = {**config.get("metrics", {}), "listen": f"127.0.0.1:{metrics_port}"}
    copy = directory / "demo.yaml"
    copy.write_text(yaml.safe_dump(config))
    return copy, config


def test_school_replay_pages_the_operator() -> None:
    assert SCHOOL.exists(), "pcaps/school.pcap is missing: generate it with pcaps/generate.py"
    speed, replay_seconds = _replay_plan(SCHOOL)
    with ServerStack() as stack:
        metrics_port = free_port()
        config_path, config = _demo_config_copy(stack.dir, metrics_port)
        prometheus, alertmanager, hook = _start_alert_path(stack, [f"127.0.0.1:{metrics_port}"])
        daemon = stack.process(
            "egresswatch",
            [sys.executable, "-m", "egresswatch", "run", "-c", config_path, "--pcap", SCHOOL,
             "--speed", f"{speed:.3f}", "--events", stack.dir / "events.json"],
            cwd=stack.dir,
        )  # fmt: skip
        daemon.wait_ready(f"http://127.0.0.1:{metrics_port}/metrics")
        replay_end = time.monotonic() + replay_seconds

        def footage_firing() -> list[dict[str, Any]]:
            daemon.check_running()
            return _firing(hook, FOOTAGE_ALERT)

        try:
            footage = wait_until(footage_firing, replay_seconds + 60, "footage alert at the webhook")
        except TimeoutError as error:
            raise AssertionError(f"{error}\negresswatch log:\n{daemon.log_tail()}") from None
        # Let the capture play out (the daemon's BPF filter hides how many packets it will count),
        # then give late alerts time to arrive before checking which ones did not.
        time.sleep(max(0.0, replay_end - time.monotonic()) + SETTLE_SECONDS)
        daemon.check_running()

        # The footage page: a Hikvision camera of group "cameras" sending to CN, sent to on-call.
        devices = {
            series["metric"]["device"]: series["metric"]
            for series in prometheus_query(prometheus, "egresswatch_device_last_seen_timestamp_seconds")
        }
        footage_cn = [a for a in footage if a["labels"]["country"] == "CN"]
        assert footage_cn, f"no footage alert for CN: {[a['labels'] for a in footage]}"
        for alert in footage_cn:
            labels = alert["labels"]
            assert alert["path"] == ONCALL_PATH
            assert labels["severity"] == "critical" and labels["group"] == "cameras"
            assert devices[labels["device"]]["vendor"] == "hikvision", labels
            assert devices[labels["device"]]["role"] == "camera", labels

        # No page for the NVR's allowed backup upload, nor for the office PC (not a device: any
        # alert of its would carry device "unknown" or a non-camera vendor).
        inventory = {device["name"]: device for device in config["devices"]}
        nvrs = {name for name, device in inventory.items() if device.get("role") == "nvr"}
        camera_vendors = {device.get("vendor") for device in inventory.values()} - {None}
        for labels in _all_alert_labels(hook, alertmanager):
            device = labels.get("device")
            if device is None:
                continue
            assert device not in nvrs, labels
            assert device != "unknown", labels
            if device not in inventory:
                assert labels["group"] == "unassigned", labels
                assert devices[device]["vendor"] in camera_vendors, labels

        # Every dashboard query parses and returns data from this Prometheus.
        values = {"datasource": "", "instance": ".*", "device": footage_cn[0]["labels"]["device"]}
        empty = [
            f"{name}: {title}/{ref}: {expr}"
            for name, board in load_dashboards().items()
            for title, ref, expr in panel_queries(board)
            if not prometheus_query(prometheus, concrete(expr, values))
        ]
        assert not empty, "dashboard queries without data:\n" + "\n".join(empty)
