"""services.pcap end to end: every egress flow event of a camera carries the name, service, operator
jurisdiction and category its ground truth (pcaps/services.truth.json, written by the generator)
says, and the EU-hosted relay of a CN operator is a critical violation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from egresswatch.cli import main

ROOT = Path(__file__).resolve().parent.parent
CAPTURE = ROOT / "pcaps" / "services.pcap"
TRUTH = json.loads((ROOT / "pcaps" / "services.truth.json").read_text())
CONFIG = str(ROOT / "config" / "demo.yaml")


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    out = tmp_path_factory.mktemp("services")
    events, summary = out / "events.jsonl", out / "summary.json"
    assert (
        main(
            [
                "replay",
                str(CAPTURE),
                "-c",
                CONFIG,
                "--events",
                str(events),
                "--summary-json",
                str(summary),
                "--no-progress",
            ]
        )
        == 0
    )
    records = [json.loads(line) for line in events.read_text().splitlines()]
    return records, json.loads(summary.read_text())


def _egress_flows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if r["event"]["kind"] == "event" and r["egresswatch"].get("egress")]


def test_every_egress_flow_event_agrees_with_its_truth_row(replayed: tuple[list, dict]) -> None:
    records, _ = replayed
    rows = {
        (device["name"], row["country"], row["category"], row["verdict"]): row
        for device in TRUTH["devices"]
        for row in device["egress"]
    }
    seen = set()
    for record in _egress_flows(records):
        ew = record["egresswatch"]
        key = (
            ew["device"]["name"],
            record["destination"]["geo"]["country_iso_code"],
            ew["category"],
            ew["verdict"],
        )
        row = rows[key]  # a KeyError is an event the truth has no row for
        seen.add(key)
        service = ew.get("service")
        domain = record["destination"].get("domain")
        assert ([domain] if domain else []) == row["domains"], key
        assert ([service["name"]] if service else []) == row["services"], key
        assert ([service["jurisdiction"]] if service else []) == row["jurisdictions"], key
        assert not service or service["operator"], key
        assert ew["category_reason"], key
    assert seen == set(rows), "every truth row shows up in the events"


def test_relay_hosted_in_de_by_a_cn_operator_is_critical(replayed: tuple[list, dict]) -> None:
    records, summary = replayed
    alerts = [
        r for r in records if r["event"]["kind"] == "alert" and r["destination"]["ip"] == "198.51.100.170"
    ]
    (alert,) = alerts
    assert alert["destination"]["geo"]["country_iso_code"] == "DE"
    assert alert["egresswatch"]["service"]["name"] == "EZVIZ"
    assert alert["egresswatch"]["service"]["jurisdiction"] == "CN"
    assert alert["egresswatch"]["severity"] == "critical"
    assert alert["egresswatch"]["category_reason"].startswith("upstream ")
    (entry,) = [a for a in summary["alerts"] if a["destination_ip"] == "198.51.100.170"]
    assert (entry["service"], entry["jurisdiction"], entry["country"]) == ("EZVIZ", "CN", "DE")


@pytest.mark.parametrize(
    ("dst", "before", "after"),
    [
        ("198.51.100.180", "app=dh-p2p", "app=ptcp"),
        ("198.51.100.61", "app=baichuan-p2p", "app=baichuan-relay"),
    ],
)
def test_signalling_that_turns_into_a_relay_is_reclassified_at_the_first_relay_packet(
    replayed: tuple[list, dict], dst: str, before: str, after: str
) -> None:
    records, _ = replayed
    reports = [r for r in _egress_flows(records) if r["destination"]["ip"] == dst]
    assert [(r["event"]["action"], r["egresswatch"]["category_reason"]) for r in reports] == [
        ("flow_update", before),
        ("flow_end", after),
    ]
    device = reports[0]["egresswatch"]["device"]["name"]
    (truth_device,) = [d for d in TRUTH["devices"] if d["name"] == device]
    signalling = [
        row for row in truth_device["egress"] if row["category"] == "telemetry" and dst_named(row, reports[0])
    ]
    # the interim report holds exactly the signalling bytes the truth puts under telemetry
    assert reports[0]["source"]["bytes"] == signalling[0]["bytes_out"]


def dst_named(row: dict[str, Any], record: dict[str, Any]) -> bool:
    return record["destination"].get("domain") in row["domains"]
