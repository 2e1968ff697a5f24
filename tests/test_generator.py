"""The generated captures: reproducible, self-consistent truth, readable by tshark, fixture DBs.

The truth files are the reference the pipeline is checked against (tests/test_replay_truth.py);
these tests check the reference itself, independently of egresswatch.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import maxminddb
import pymanuf
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
PCAPS = ROOT / "pcaps"
CONFIG = yaml.safe_load((ROOT / "config" / "demo.yaml").read_text())
CAPTURES = sorted(p.name for p in PCAPS.iterdir() if p.suffix in (".pcap", ".pcapng"))
ISO_OR_UNKNOWN = re.compile(r"^[A-Z]{2}$")
DISCOVERED_NAME = re.compile(r"^(hikvision|dahua)-([0-9a-f]{12})$")
ROUTER_MAC = "00:1b:54:20:00:01"  # the gateway in pcaps/capgen/wire.py


def truth_of(capture: str) -> dict[str, Any]:
    return json.loads((PCAPS / (capture.rsplit(".", 1)[0] + ".truth.json")).read_text())


def test_every_documented_capture_is_there() -> None:
    expected = {
        "school.pcap",
        "vlan_qinq.pcap",
        "erspan.pcap",
        "vxlan.pcap",
        "ipv6.pcap",
        "fragments.pcap",
        "sll.pcap",
        "sll2.pcap",
        "multi.pcapng",
        "malformed.pcap",
        "truncated.pcap",
        "services.pcap",
        "learning.pcap",
    }
    assert set(CAPTURES) == expected
    readme = (PCAPS / "README.md").read_text()
    for capture in expected:
        assert f"`{capture}`" in readme, f"{capture} is not described in pcaps/README.md"
    assert sum((PCAPS / c).stat().st_size for c in CAPTURES) < 2_000_000
    assert (PCAPS / "school.pcap").stat().st_size < 1_500_000


def _generate_check(script: Path) -> subprocess.CompletedProcess[str]:
    # No bytecode caches: the check must leave the source tree as it found it.
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(
        [sys.executable, str(script), "--check"], capture_output=True, text=True, timeout=300, env=env
    )


def test_regenerating_gives_byte_identical_files() -> None:
    result = _generate_check(PCAPS / "generate.py")
    assert result.returncode == 0, result.stderr


def test_check_notices_a_stale_file(tmp_path: Path) -> None:
    """--check must fail when a committed file differs: run it against a copy with one byte changed."""
    copy = tmp_path / "repo"
    shutil.copytree(PCAPS, copy / "pcaps", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "config", copy / "config")
    shutil.copytree(ROOT / "egresswatch" / "data", copy / "egresswatch" / "data")  # the catalogue
    truth = copy / "pcaps" / "vxlan.truth.json"
    truth.write_text(truth.read_text().replace('"packets"', '"packets" ', 1))
    result = _generate_check(copy / "pcaps" / "generate.py")
    assert result.returncode == 1
    assert "vxlan.truth.json" in result.stderr


@pytest.mark.parametrize("capture", CAPTURES)
def test_truth_is_self_consistent(capture: str) -> None:
    truth = truth_of(capture)
    totals, devices, alerts = truth["totals"], truth["devices"], truth["alerts"]
    names = [d["name"] for d in devices]
    assert names == sorted(names)
    inventory = {d["name"]: d for d in CONFIG["devices"]}
    assert set(inventory) <= set(names), "every inventory device is listed, seen or not"
    rows_by_key: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for device in devices:
        if device["name"] in inventory:
            assert device["group"] == inventory[device["name"]].get("group", "default")
        else:
            match = DISCOVERED_NAME.match(device["name"])
            assert match, device["name"]
            assert device["group"] == "unassigned" and device["vendor"] == match.group(1)
            macs = [m.replace(":", "") for m in device["macs"]]
            # its own MAC, and the router's for flows of a host known by a learned binding (routed)
            assert macs and set(macs) <= {match.group(2), ROUTER_MAC.replace(":", "")}, device["name"]
        assert device["macs"] == sorted(device["macs"]) and device["ips"] == sorted(device["ips"])
        keys = [(r["country"], r["category"], r["verdict"]) for r in device["egress"]]
        assert keys == sorted(keys) and len(set(keys)) == len(keys)
        if device["egress"]:
            assert device["ips"], "egress without a source address"
        for row in device["egress"]:
            assert ISO_OR_UNKNOWN.match(row["country"])
            assert row["verdict"] in ("allowed", "violation")
            assert row["category"] in ("footage", "telemetry", "firmware", "infrastructure")
            assert 1 <= row["destinations"] <= row["flows"] <= row["packets_out"]
            assert row["bytes_out"] >= 20 * row["packets_out"]
            assert row["domains"] == sorted(set(row["domains"]))
            assert row["services"] == sorted(set(row["services"]))
            assert len(row["jurisdictions"]) <= len(row["services"])
            rows_by_key[(device["name"], row["country"], row["category"], row["verdict"])] = row
    egress_bytes = sum(r["bytes_out"] + r["bytes_in"] for r in rows_by_key.values())
    assert egress_bytes <= totals["ip_bytes"]
    assert sum(r["packets_out"] for r in rows_by_key.values()) <= totals["packets"]
    assert sum(r["flows"] for r in rows_by_key.values()) <= totals["flows"]

    order = [(a["first_seen"], a["device"], a["destination_ip"], a["category"]) for a in alerts]
    assert order == sorted(order)
    alerted: dict[tuple[str, str, str], int] = defaultdict(int)
    for alert in alerts:
        assert alert["severity"] == ("critical" if alert["category"] == "footage" else "warning")
        assert re.fullmatch(r"2026-01-12T08:0\d:\d\d\.\d{6}Z", alert["first_seen"])
        row = rows_by_key[(alert["device"], alert["country"], alert["category"], "violation")]
        assert alert["domain"] is None or alert["domain"] in row["domains"]
        assert alert["service"] is None or alert["service"] in row["services"]
        assert (alert["service"] is None) == (alert["jurisdiction"] is None)
        alerted[(alert["device"], alert["country"], alert["category"])] += alert["bytes_out"]
    violations = {k[:3]: r["bytes_out"] for k, r in rows_by_key.items() if k[3] == "violation"}
    assert alerted == violations, "every violating byte belongs to exactly one alert"


def test_school_truth_tells_the_demo_story() -> None:
    truth = truth_of("school.pcap")
    devices = {d["name"]: d for d in truth["devices"]}
    critical_cn = {
        (a["device"], a["category"])
        for a in truth["alerts"]
        if a["severity"] == "critical" and a["country"] == "CN"
    }
    assert ("cam-hik-entrance", "footage") in critical_cn
    assert ("cam-dahua-yard", "footage") in critical_cn  # by volume, not by port
    assert not any(a["device"] == "nvr-main" for a in truth["alerts"])
    backup = devices["nvr-main"]["egress"]
    assert [(r["country"], r["category"], r["verdict"]) for r in backup] == [("GB", "footage", "allowed")]
    assert devices["hikvision-4419b6200199"]["group"] == "unassigned"
    pc = "10.20.2.15"
    assert all(pc not in d["ips"] for d in truth["devices"])


@pytest.mark.parametrize(
    ("address", "country", "asn", "org"),
    [
        ("198.51.100.1", "CN", 64501, "Example CN Cloud"),
        ("198.51.100.127", "CN", 64501, "Example CN Cloud"),
        ("198.51.100.128", "DE", 64502, "Example EU Hosting"),
        ("203.0.113.10", "US", 64503, "Example US Cloud"),
        ("203.0.113.200", "GB", 64504, "Example UK Backup"),
        ("192.0.2.123", "IE", 64505, "Example IE Services"),
        ("2001:db8:1::10", "CN", 64501, "Example CN Cloud"),
        ("2001:db8:2::20", "DE", 64502, "Example EU Hosting"),
        ("2001:db8:3::1", "US", 64503, "Example US Cloud"),
    ],
)
def test_fixture_databases_answer_the_documented_geography(
    address: str, country: str, asn: int, org: str
) -> None:
    with maxminddb.open_database(str(PCAPS / "geoip" / "country.mmdb")) as reader:
        assert reader.get(address)["country"]["iso_code"] == country
    with maxminddb.open_database(str(PCAPS / "geoip" / "asn.mmdb")) as reader:
        assert reader.get(address) == {"autonomous_system_number": asn, "autonomous_system_organization": org}


@pytest.mark.parametrize("address", ["2001:db8:ff::1", "10.20.1.11", "fd00:20:1::12", "203.0.114.1"])
def test_fixture_databases_do_not_know_other_addresses(address: str) -> None:
    for name in ("country.mmdb", "asn.mmdb"):
        with maxminddb.open_database(str(PCAPS / "geoip" / name)) as reader:
            assert reader.get(address) is None


def test_fixture_databases_have_a_fixed_build_time() -> None:
    for name, kind in (("country.mmdb", "GeoIP2-Country"), ("asn.mmdb", "GeoLite2-ASN")):
        with maxminddb.open_database(str(PCAPS / "geoip" / name)) as reader:
            assert reader.metadata().build_epoch == 1_767_225_600
            assert reader.metadata().database_type == kind


@pytest.mark.parametrize(
    ("prefix", "camera"),
    [
        ("44:19:b6", "hikvision"),
        ("3c:ef:8c", "dahua"),
        ("00:14:22", None),
        ("00:1b:54", None),
    ],
)
def test_fixture_macs_have_the_vendors_the_truth_assumes(prefix: str, camera: str | None) -> None:
    """Cameras use Hikvision/Dahua OUIs; the PC, resolver and gateway use Dell/Cisco ones."""
    vendor = (pymanuf.lookup(prefix + ":00:00:01") or "").lower()
    if camera:
        assert camera in vendor
    else:
        assert not any(v in vendor for v in ("hikvision", "dahua", "ezviz", "imou"))
        assert vendor


TSHARK = shutil.which("tshark")


@pytest.mark.skipif(TSHARK is None, reason="tshark is not installed (CI installs it in .ci/run)")
@pytest.mark.parametrize("capture", CAPTURES)
def test_tshark_reads_every_packet(capture: str) -> None:
    assert TSHARK is not None
    result = subprocess.run(
        [TSHARK, "-n", "-r", str(PCAPS / capture), "-T", "fields", "-e", "frame.number"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if capture != "truncated.pcap":
        assert result.returncode == 0, result.stderr
    else:
        assert "cut short in the middle of a packet" in result.stderr
    assert len(result.stdout.split()) == truth_of(capture)["totals"]["packets"]
