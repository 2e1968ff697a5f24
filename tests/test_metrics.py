from __future__ import annotations

import dataclasses
import platform
import re
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from support.flow_reports import CAMERA, CHINA, DISCOVERED, T0, local_report, report

from egresswatch import __version__
from egresswatch.model import Device, Service, Totals, Verdict
from egresswatch.sinks.metrics import METRICS, MetricsSink, render

ARCHITECTURE = Path(__file__).resolve().parent.parent / "docs" / "architecture.md"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(registry: CollectorRegistry) -> Samples:
    """Every sample of the text exposition, keyed by (sample name, labels)."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(render(registry).decode())
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def series(samples: Samples, name: str) -> list[dict[str, str]]:
    return [dict(labels) for sample_name, labels in samples if sample_name == name]


FOOTAGE_CN = {"device": "cam-entrance", "group": "cameras", "vendor": "hikvision", "country": "CN",
              "jurisdiction": "unknown", "category": "footage", "verdict": "violation"}
EZVIZ = Service("EZVIZ", "Hangzhou EZVIZ Network Co., Ltd.", "CN")


def test_device_bytes_add_the_deltas_of_each_report() -> None:
    registry = CollectorRegistry()
    sink = MetricsSink(registry, max_devices=10)
    sink.flow(report(action="flow_update", delta_src_bytes=3000, delta_dst_bytes=500))
    sink.flow(report(delta_src_bytes=2000, delta_dst_bytes=200))
    samples = scrape(registry)
    assert value(samples, "egresswatch_device_egress_bytes_total", **FOOTAGE_CN) == 5000
    assert value(samples, "egresswatch_device_ingress_bytes_total", **FOOTAGE_CN) == 700


def test_local_device_flows_use_country_local_and_non_device_flows_are_not_counted() -> None:
    registry = CollectorRegistry()
    sink = MetricsSink(registry, max_devices=10)
    sink.flow(local_report(delta_src_bytes=9000))
    sink.flow(report(device=None, verdict=None, egress=False))
    samples = scrape(registry)
    local = {**FOOTAGE_CN, "country": "local", "category": "unknown", "verdict": "local"}
    assert series(samples, "egresswatch_device_egress_bytes_total") == [local]
    assert value(samples, "egresswatch_device_egress_bytes_total", **local) == 9000


def test_alerts_count_violations_and_stamp_the_packet_time() -> None:
    registry = CollectorRegistry()
    sink = MetricsSink(registry, max_devices=10)
    sink.flow(report())  # a flow report alone is no alert
    assert series(scrape(registry), "egresswatch_policy_violations_total") == []
    sink.alert(report(end=T0 + 10))
    sink.alert(report(end=T0 + 1000))
    labels = {"device": "cam-entrance", "group": "cameras", "country": "CN", "jurisdiction": "unknown",
              "category": "footage", "severity": "critical"}
    samples = scrape(registry)
    assert value(samples, "egresswatch_policy_violations_total", **labels) == 2
    assert value(samples, "egresswatch_policy_violation_last_timestamp_seconds", **labels) == T0 + 1000


def test_last_seen_keeps_the_latest_end_whatever_the_report_order() -> None:
    registry = CollectorRegistry()
    sink = MetricsSink(registry, max_devices=10)
    sink.flow(report(end=T0 + 500))
    sink.flow(local_report(end=T0 + 100))  # a flow ending earlier, reported later
    labels = {"device": "cam-entrance", "group": "cameras", "vendor": "hikvision", "role": "camera"}
    assert value(scrape(registry), "egresswatch_device_last_seen_timestamp_seconds", **labels) == T0 + 500


def test_discovered_devices_are_counted_once_each() -> None:
    registry = CollectorRegistry()
    sink = MetricsSink(registry, max_devices=10)
    other = Device("dahua-3ce36b000043", "unassigned", "dahua", "camera", discovered=True)
    unknown_vendor = Device("cam-9", "unassigned", None, "camera", discovered=True)
    for device in (DISCOVERED, DISCOVERED, other, CAMERA, unknown_vendor):
        sink.flow(local_report(device=device))
    samples = scrape(registry)
    assert value(samples, "egresswatch_devices_discovered_total", vendor="dahua") == 2
    assert value(samples, "egresswatch_devices_discovered_total", vendor="unknown") == 1
    assert value(samples, "egresswatch_devices_discovered_total", vendor="hikvision") is None


def test_device_label_beyond_max_devices_is_other() -> None:
    registry = CollectorRegistry()
    sink = MetricsSink(registry, max_devices=2)
    for name in ("cam-a", "cam-b", "cam-c", "cam-d", "cam-a"):
        sink.flow(report(device=Device(name, "cameras", "hikvision", "camera"), delta_src_bytes=100))
    sink.alert(report(device=Device("cam-e", "cameras", "hikvision", "camera")))
    samples = scrape(registry)
    egress = {s["device"] for s in series(samples, "egresswatch_device_egress_bytes_total")}
    assert egress == {"cam-a", "cam-b", "other"}
    assert value(samples, "egresswatch_device_egress_bytes_total", **{**FOOTAGE_CN, "device": "cam-a"}) == 200
    assert value(samples, "egresswatch_device_egress_bytes_total", **{**FOOTAGE_CN, "device": "other"}) == 200
    assert {s["device"] for s in series(samples, "egresswatch_policy_violations_total")} == {"other"}


def test_run_totals_are_read_at_scrape_time() -> None:
    registry = CollectorRegistry()
    live = Totals()
    MetricsSink(registry, max_devices=10, totals=lambda: live)
    assert value(scrape(registry), "egresswatch_packets_total") == 0
    live.packets, live.ip_bytes, live.flows, live.active_flows, live.evictions = 120, 83000, 9, 4, 1
    live.decode_errors = {"ipv4_bad_ihl": 2, "ethernet_truncated": 1}
    samples = scrape(registry)
    assert value(samples, "egresswatch_packets_total") == 120
    assert value(samples, "egresswatch_ip_bytes_total") == 83000
    assert value(samples, "egresswatch_flows_total") == 9
    assert value(samples, "egresswatch_flows_active") == 4
    assert value(samples, "egresswatch_flow_evictions_total") == 1
    assert value(samples, "egresswatch_decode_errors_total", reason="ipv4_bad_ihl") == 2
    assert value(samples, "egresswatch_decode_errors_total", reason="ethernet_truncated") == 1


def test_without_a_totals_source_the_closing_totals_are_reported() -> None:
    registry = CollectorRegistry()
    sink = MetricsSink(registry, max_devices=10)
    assert value(scrape(registry), "egresswatch_flows_total") == 0
    sink.close(Totals(packets=7, flows=3))
    samples = scrape(registry)
    assert value(samples, "egresswatch_packets_total") == 7
    assert value(samples, "egresswatch_flows_total") == 3


def test_build_info() -> None:
    registry = CollectorRegistry()
    MetricsSink(registry, max_devices=10)
    assert value(scrape(registry), "egresswatch_build_info", version=__version__,
                 python=platform.python_version()) == 1


def contract() -> dict[str, tuple[str, tuple[str, ...]]]:
    """The metrics table of docs/architecture.md: name -> (type, labels)."""
    rows = re.findall(r"^\| `(egresswatch_\w+)` \| (\w+) \|([^|]*)\|", ARCHITECTURE.read_text(), re.MULTILINE)
    return {name: (kind, tuple(re.findall(r"\w+", labels.split("(")[0]))) for name, kind, labels in rows}


def test_metrics_table_is_the_architecture_contract() -> None:
    documented = contract()
    assert len(documented) >= 19
    assert {doc.name: (doc.type, doc.labels) for doc in METRICS} == documented
    assert all(doc.help and doc.source in ("report", "totals", "daemon") for doc in METRICS)


def test_sink_exposes_every_non_daemon_metric_with_its_type() -> None:
    registry = CollectorRegistry()
    MetricsSink(registry, max_devices=10)
    families = text_string_to_metric_families(render(registry).decode())
    exposed = {family.name: family.type for family in families}
    for doc in METRICS:
        base = doc.name.removesuffix("_total") if doc.type == "counter" else doc.name
        if doc.source == "daemon":
            assert base not in exposed
        else:
            assert exposed.get(base) == doc.type, doc.name


def test_no_label_can_hold_an_address_port_or_name() -> None:
    allowed = {"device", "group", "vendor", "role", "country", "jurisdiction", "category", "verdict",
               "severity", "reason", "database", "version", "python", "interface", "dimension"}
    assert {label for doc in METRICS for label in doc.labels} <= allowed


def test_severity_and_verdict_labels_take_the_report_values() -> None:
    registry = CollectorRegistry()
    sink = MetricsSink(registry, max_devices=10)
    sink.alert(report(category="telemetry", verdict=Verdict("violation", "warning")))
    (labels,) = series(scrape(registry), "egresswatch_policy_violations_total")
    assert labels["severity"] == "warning"
    assert labels["category"] == "telemetry"


def test_jurisdiction_label_is_the_operators_home_next_to_the_servers_country() -> None:
    registry = CollectorRegistry()
    sink = MetricsSink(registry, max_devices=10)
    relay_in_de = report(place=dataclasses.replace(CHINA, country="DE"), service=EZVIZ)
    sink.flow(relay_in_de)
    sink.alert(relay_in_de)
    samples = scrape(registry)
    egress = {**FOOTAGE_CN, "country": "DE", "jurisdiction": "CN"}
    assert value(samples, "egresswatch_device_egress_bytes_total", **egress) == 5000
    (labels,) = series(samples, "egresswatch_policy_violations_total")
    assert (labels["country"], labels["jurisdiction"]) == ("DE", "CN")
