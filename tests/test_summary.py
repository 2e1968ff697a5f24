from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console
from rich.text import Text
from support.flow_reports import DISCOVERED, T0, local_report, report

from egresswatch.config import Config, parse_config
from egresswatch.model import Device, FlowReport, Place, Service, Totals, Verdict
from egresswatch.sinks.summary import SummarySink, human_bytes, render_table

YARD = Device("cam-yard", "cameras", "dahua", "camera")
US = Place("US", None, None, "GeoLite2-Country")
ALLOWED = Verdict("allowed", None, rule=0)
WARNING = Verdict("violation", "warning")


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return parse_config({
        "devices": [
            {"name": "cam-entrance", "mac": "44:19:b6:00:00:11", "group": "cameras", "vendor": "hikvision"},
            {"name": "cam-yard", "ip": "10.20.0.12", "group": "cameras"},
            {"name": "nvr-1", "ip": "10.20.0.2", "group": "nvr", "role": "nvr"},
        ],
        "groups": {"cameras": {"allow": [{"categories": ["infrastructure"]}]}, "nvr": {"allow": []}},
    }, tmp_path)


def summary_of(config: Config, calls: list[tuple[str, FlowReport]], totals: Totals | None = None) -> dict:
    sink = SummarySink(config)
    for method, item in calls:
        getattr(sink, method)(item)
    sink.close(totals or Totals())
    return sink.to_dict()


EZVIZ = Service("EZVIZ", "Hangzhou EZVIZ Network Co., Ltd.", "CN")


def test_full_summary(config: Config) -> None:
    dns = report(transport="udp", src_port=53001, dst_ip="192.0.2.53", dst_port=53, place=US, domain=None,
                 category="infrastructure", verdict=ALLOWED, delta_src_bytes=70, delta_dst_bytes=130,
                 delta_src_packets=1)
    second_flow = report(start=T0 + 5, src_port=40001, dst_ip="203.0.113.10", domain="relay.example.net",
                         delta_src_bytes=1000, delta_dst_bytes=50, delta_src_packets=2, service=EZVIZ)
    update = report(action="flow_update", delta_src_bytes=3000, delta_dst_bytes=500, delta_src_packets=6)
    calls = [
        ("flow", update),
        ("alert", update),
        ("flow", report(delta_src_bytes=2000, delta_dst_bytes=200, delta_src_packets=4)),
        ("flow", second_flow),
        ("flow", dns),
        ("flow", local_report(src_ip="10.20.0.11")),
        ("flow", local_report(device=DISCOVERED, src_ip="10.20.0.42", src_mac="3c:e3:6b:00:00:42")),
        ("flow", report(device=None, verdict=None, src_ip="10.20.0.50", dst_ip="198.51.100.7")),
    ]
    totals = Totals(packets=100, ip_bytes=12345, flows=6, decode_errors={"a": 2, "b": 1})
    assert summary_of(config, calls, totals) == {
        "totals": {"packets": 100, "ip_bytes": 12345, "flows": 6, "decode_errors": 3},
        "devices": [
            {"name": "cam-entrance", "group": "cameras", "vendor": "hikvision", "role": "camera",
             "macs": ["44:19:b6:00:00:11"], "ips": ["10.20.0.11"],
             "egress": [
                 {"country": "CN", "category": "footage", "verdict": "violation", "bytes_out": 6000,
                  "bytes_in": 750, "packets_out": 12, "flows": 2, "destinations": 2,
                  "domains": ["cloud.example.com", "relay.example.net"], "services": ["EZVIZ"],
                  "jurisdictions": ["CN"]},
                 {"country": "US", "category": "infrastructure", "verdict": "allowed", "bytes_out": 70,
                  "bytes_in": 130, "packets_out": 1, "flows": 1, "destinations": 1, "domains": [],
                  "services": [], "jurisdictions": []},
             ]},
            {"name": "cam-yard", "group": "cameras", "vendor": None, "role": "camera",
             "macs": [], "ips": [], "egress": []},
            {"name": "dahua-3ce36b000042", "group": "unassigned", "vendor": "dahua", "role": "camera",
             "macs": ["3c:e3:6b:00:00:42"], "ips": ["10.20.0.42"], "egress": []},
            {"name": "nvr-1", "group": "nvr", "vendor": None, "role": "nvr",
             "macs": [], "ips": [], "egress": []},
        ],
        "alerts": [
            {"device": "cam-entrance", "country": "CN", "category": "footage", "severity": "critical",
             "destination_ip": "203.0.113.9", "domain": "cloud.example.com", "service": None,
             "jurisdiction": None, "first_seen": "2026-01-12T08:00:01.250000Z", "bytes_out": 5000},
        ],
    }


def test_vendor_comes_from_reports_when_the_inventory_has_none(config: Config) -> None:
    result = summary_of(config, [("flow", local_report(device=YARD, src_ip="10.20.0.12", src_mac=None))])
    (yard,) = [d for d in result["devices"] if d["name"] == "cam-yard"]
    assert yard["vendor"] == "dahua"
    assert yard["macs"] == []
    assert yard["ips"] == ["10.20.0.12"]


def test_unseen_inventory_devices_get_their_mac_vendor(tmp_path: Path) -> None:
    config = parse_config({"devices": [
        {"name": "cam-a", "mac": "44:19:b6:00:00:11"},
        {"name": "cam-b", "mac": "3c:ef:8c:00:00:12", "vendor": "uniview"},
        {"name": "cam-c", "ip": "10.20.0.13"},
    ]}, tmp_path)
    ouis = {"44:19:b6": "hikvision", "3c:ef:8c": "dahua"}
    sink = SummarySink(config, mac_vendor=lambda mac: ouis.get(mac[:8]))
    vendors = {d["name"]: d["vendor"] for d in sink.to_dict(Totals())["devices"]}
    assert vendors == {"cam-a": "hikvision", "cam-b": "uniview", "cam-c": None}


def alert_bytes(config: Config, calls: list[tuple[str, FlowReport]]) -> list[int]:
    return [a["bytes_out"] for a in summary_of(config, calls)["alerts"]]


@pytest.mark.parametrize("alert_first", [True, False])
def test_alert_bytes_count_every_violation_report_of_the_key_once(config: Config, alert_first: bool) -> None:
    first = report(action="flow_update", delta_src_bytes=3000)
    pair = [("alert", first), ("flow", first)] if alert_first else [("flow", first), ("alert", first)]
    calls = [
        *pair,
        ("flow", report(delta_src_bytes=2000)),  # same flow, final report
        ("flow", report(start=T0 + 30, src_port=40001, delta_src_bytes=400)),  # another flow, same key
        ("flow", report(category="telemetry", verdict=WARNING, delta_src_bytes=99)),
        ("flow", report(dst_ip="203.0.113.10", delta_src_bytes=77)),  # another destination
        ("flow", report(verdict=ALLOWED, delta_src_bytes=55)),  # not a violation
    ]
    assert alert_bytes(config, calls) == [5400]


@pytest.mark.parametrize("alert_first", [True, False])
def test_a_new_alert_for_the_key_starts_a_new_count(config: Config, alert_first: bool) -> None:
    def raised(r: FlowReport) -> list[tuple[str, FlowReport]]:
        return [("alert", r), ("flow", r)] if alert_first else [("flow", r), ("alert", r)]

    later = report(start=T0 + 1000, end=T0 + 1060, src_port=40002, delta_src_bytes=600)
    calls = [
        *raised(report(delta_src_bytes=100)),
        ("flow", report(start=T0 + 10, src_port=40001, delta_src_bytes=20)),
        *raised(later),
        ("flow", report(start=T0 + 1001, src_port=40003, delta_src_bytes=7)),
    ]
    result = summary_of(config, calls)
    assert [(a["first_seen"], a["bytes_out"]) for a in result["alerts"]] == [
        ("2026-01-12T08:00:01.250000Z", 120),
        ("2026-01-12T08:16:41.250000Z", 607),
    ]


def test_alerts_are_sorted_by_first_seen_device_destination_category(config: Config) -> None:
    calls = [
        ("alert", report(start=T0 + 5)),
        ("alert", report(device=YARD, dst_ip="203.0.113.1")),
        ("alert", report(dst_ip="203.0.113.1", category="telemetry", verdict=WARNING)),
        ("alert", report(dst_ip="203.0.113.1")),
    ]
    result = summary_of(config, calls)
    assert [(a["device"], a["destination_ip"], a["category"]) for a in result["alerts"]] == [
        ("cam-entrance", "203.0.113.1", "footage"),
        ("cam-entrance", "203.0.113.1", "telemetry"),
        ("cam-yard", "203.0.113.1", "footage"),
        ("cam-entrance", "203.0.113.9", "footage"),
    ]
    assert {a["device"] for a in result["alerts"]} <= {d["name"] for d in result["devices"]}


def test_summary_needs_totals(config: Config) -> None:
    sink = SummarySink(config)
    with pytest.raises(RuntimeError, match="no totals"):
        sink.to_dict()
    assert sink.to_dict(Totals(packets=3))["totals"]["packets"] == 3


@pytest.mark.parametrize(("count", "text"), [
    (0, "0 B"), (1023, "1023 B"), (1536, "1.5 KiB"), (5 * 1024**2, "5.0 MiB"), (3 * 1024**3, "3.0 GiB"),
    (2 * 1024**4, "2.0 TiB"),
])
def test_human_bytes(count: int, text: str) -> None:
    assert human_bytes(count) == text


def test_table_shows_devices_rows_and_alerts_with_colour(config: Config) -> None:
    result = summary_of(config, [
        ("alert", report(delta_src_bytes=1536)),
        ("flow", report(delta_src_bytes=1536)),
        ("alert", report(category="telemetry", verdict=WARNING, place=US)),
        ("flow", report(category="telemetry", verdict=WARNING, place=US)),
    ])
    out = io.StringIO()
    render_table(result, Console(file=out, width=200, force_terminal=True, color_system="standard"))
    text = out.getvalue()
    plain = Text.from_ansi(text).plain
    needles = ("cam-entrance", "cam-yard", "nvr-1", "no egress", "1.5 KiB", "203.0.113.9",
               "Policy violations")
    for needle in needles:
        assert needle in plain
    assert "\x1b[1;31mviolation (critical)" in text
    assert "\x1b[33mviolation (warning)" in text


def test_into_a_pipe_the_table_is_plain_aligned_columns(config: Config) -> None:
    result = summary_of(config, [
        ("alert", report(delta_src_bytes=1536)),
        ("flow", report(delta_src_bytes=1536)),
    ])
    out = io.StringIO()
    render_table(result, Console(file=out, width=80))
    lines = out.getvalue().splitlines()
    assert "\x1b" not in out.getvalue() and "│" not in out.getvalue()
    header = lines.index("Egress by device") + 1
    assert lines[header].split() == ["device", "group", "vendor", "country", "category", "verdict",
                                     "bytes", "out", "bytes", "in", "flows"]
    egress = next(line for line in lines[header:] if "violation (critical)" in line)
    # right-aligned numbers end where their header ends, whatever the terminal width said
    assert egress.endswith("1") and len(egress) == len(lines[header]) > 80
    assert egress.index("1.5 KiB") + len("1.5 KiB") == lines[header].index("bytes out") + len("bytes out")
    idle = next(line for line in lines[header:] if line.startswith("cam-yard "))
    assert idle.split()[-1] == "egress" and idle.index("no egress") == lines[header].index("verdict")
    assert "Policy violations" in lines


def test_the_table_shows_the_first_alerts_and_counts_the_rest() -> None:
    alert = {"device": "cam", "country": "CN", "category": "telemetry", "severity": "warning",
             "destination_ip": "198.51.100.1", "domain": None, "first_seen": "2026-01-12T08:00:00.000000Z",
             "bytes_out": 1}
    summary = {"totals": {"packets": 0, "ip_bytes": 0, "flows": 0, "decode_errors": 0}, "devices": [],
               "alerts": [dict(alert, destination_ip=f"198.51.100.{n}") for n in range(60)]}
    out = io.StringIO()
    render_table(summary, Console(file=out, width=200))
    text = out.getvalue()
    assert "198.51.100.49" in text and "198.51.100.50 " not in text
    assert "and 10 more alerts" in text
