from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from support.flow_reports import CAMERA, T0, local_report, report

from egresswatch.model import Place, Service, Totals, Verdict
from egresswatch.sinks.events import EventSink


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def has_null(value: Any) -> bool:
    if isinstance(value, dict):
        return any(v is None or has_null(v) for v in value.values())
    return False


def test_flow_record_has_nested_ecs_fields() -> None:
    out = io.StringIO()
    EventSink(out, flows="all").flow(report(action="flow_update"))
    (record,) = lines(out)
    assert record == {
        "@timestamp": "2026-01-12T08:01:01.750000Z",
        "event": {
            "kind": "event", "action": "flow_update", "category": ["network"], "type": ["connection"],
            "start": "2026-01-12T08:00:01.250000Z", "end": "2026-01-12T08:01:01.750000Z",
        },
        "source": {
            "ip": "10.20.0.11", "mac": "44:19:b6:00:00:11", "port": 40000, "bytes": 5000, "packets": 10,
        },
        "destination": {
            "ip": "203.0.113.9", "mac": "00:00:5e:00:53:01", "port": 554, "bytes": 700, "packets": 6,
            "domain": "cloud.example.com", "geo": {"country_iso_code": "CN"},
            "as": {"number": 64500, "organization": {"name": "Example Transit"}},
        },
        "network": {"transport": "tcp", "type": "ipv4", "vlan": {"id": 20}, "bytes": 5700, "packets": 16},
        "egresswatch": {
            "device": {"name": "cam-entrance", "group": "cameras", "vendor": "hikvision", "role": "camera"},
            "category": "footage", "category_reason": "rtsp port 554", "verdict": "violation",
            "severity": "critical", "egress": True, "geo_source": "GeoLite2-Country",
        },
    }


def test_unknown_values_are_left_out_not_null() -> None:
    out = io.StringIO()
    EventSink(out, flows="all").flow(report(
        device=None, egress=False, place=None, domain=None, category=None, category_reason=None, verdict=None,
        vlan=None, src_port=None, dst_port=None, src_mac=None, dst_mac=None, transport="ipv6-icmp",
        ip_version=6, src_ip="2001:db8::1", dst_ip="2001:db8::2",
    ))
    (record,) = lines(out)
    assert not has_null(record)
    assert record["source"] == {"ip": "2001:db8::1", "bytes": 5000, "packets": 10}
    assert record["destination"] == {"ip": "2001:db8::2", "bytes": 700, "packets": 6}
    assert record["network"] == {"transport": "ipv6-icmp", "type": "ipv6", "bytes": 5700, "packets": 16}
    assert record["egresswatch"] == {"egress": False}


def test_place_without_asn_keeps_country_only() -> None:
    out = io.StringIO()
    EventSink(out).flow(report(place=Place("DE", None, None, "iptocc")))
    (record,) = lines(out)
    assert record["destination"]["geo"] == {"country_iso_code": "DE"}
    assert "as" not in record["destination"]
    assert record["egresswatch"]["geo_source"] == "iptocc"


@pytest.mark.parametrize(("flows", "expected"), [
    ("all", ["pc", "nvr", "egress"]),
    ("devices", ["nvr", "egress"]),
    ("egress", ["egress"]),
])
def test_flow_filter(flows: str, expected: list[str]) -> None:
    out = io.StringIO()
    sink = EventSink(out, flows=flows)
    sink.flow(report(device=None, verdict=None, category=None, src_ip="10.20.0.50", dst_ip="198.51.100.7"))
    sink.flow(local_report())
    sink.flow(report())
    names = {"198.51.100.7": "pc", "10.20.0.2": "nvr", "203.0.113.9": "egress"}
    assert [names[r["destination"]["ip"]] for r in lines(out)] == expected


def test_alerts_are_written_whatever_the_flow_filter() -> None:
    out = io.StringIO()
    sink = EventSink(out, flows="egress")
    sink.alert(report(action="flow_update"))
    sink.alert(report(category="telemetry", verdict=Verdict("violation", "warning"), place=Place(
        "US", None, None, "GeoLite2-Country")))
    critical, warning = lines(out)
    assert critical["event"]["kind"] == "alert"
    assert critical["event"]["action"] == "policy_violation"
    assert critical["event"]["severity"] == 2
    assert critical["rule"] == {"name": "footage to CN not allowed for group cameras"}
    assert critical["egresswatch"]["device"]["name"] == CAMERA.name
    assert critical["destination"]["ip"] == "203.0.113.9"
    assert critical["event"]["start"] == "2026-01-12T08:00:01.250000Z"
    assert warning["event"]["severity"] == 4
    assert warning["egresswatch"]["severity"] == "warning"
    assert warning["rule"]["name"] == "telemetry to US not allowed for group cameras"


def test_flow_records_carry_no_alert_fields() -> None:
    out = io.StringIO()
    EventSink(out).flow(report())
    (record,) = lines(out)
    assert "rule" not in record
    assert "severity" not in record["event"]


def test_one_line_per_record_and_close_flushes(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    with open(path, "w", encoding="utf-8", buffering=1 << 20) as stream:
        sink = EventSink(stream)
        for i in range(3):
            sink.flow(report(start=T0 + i))
        sink.alert(report())
        sink.close(Totals())
        written = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["event"]["kind"] for line in written] == ["event"] * 3 + ["alert"]


def test_rejects_unknown_flow_filter() -> None:
    with pytest.raises(ValueError, match="flows must be one of"):
        EventSink(io.StringIO(), flows="cameras")


def test_service_and_operator_jurisdiction_sit_next_to_the_servers_country() -> None:
    out = io.StringIO()
    sink = EventSink(out)
    ezviz = Service("EZVIZ", "Hangzhou EZVIZ Network Co., Ltd.", "CN")
    relay = report(service=ezviz, place=Place("DE", 64502, "Example EU Hosting", "GeoLite2-Country"))
    sink.flow(relay)
    sink.alert(relay)
    flow, alert = lines(out)
    for record in (flow, alert):
        assert record["egresswatch"]["service"] == {
            "name": "EZVIZ", "operator": "Hangzhou EZVIZ Network Co., Ltd.", "jurisdiction": "CN",
        }
        assert record["destination"]["geo"]["country_iso_code"] == "DE"
    expected = "footage to DE (service EZVIZ, operator in CN) not allowed for group cameras"
    assert alert["rule"]["name"] == expected
