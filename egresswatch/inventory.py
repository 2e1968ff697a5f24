"""`egresswatch devices`: every device a capture shows, from the inventory and from discovery.

A replay of the files (no sinks but a collector) followed by what the site learner knows: for
each device its vendor, role, model, firmware, addresses, the evidence that named it and when it
was first and last seen. Inventory devices are listed even if never seen; discovered devices are
those attribution would count (a camera vendor, or announced as a camera or NVR), whether or not
they sent traffic yet. `--yaml` prints the discovered ones as a `devices:` block to paste into
the configuration (group "unassigned": move each into a group with rules).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table

from egresswatch.config import UNASSIGNED_GROUP, Config, load_config
from egresswatch.devices import ATTRIBUTABLE_ROLES
from egresswatch.discovery.evidence import DiscoveredDevice
from egresswatch.model import Device, FlowReport, Totals
from egresswatch.oui import CAMERA_VENDORS
from egresswatch.sinks import iso_utc


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pcaps", nargs="+", metavar="PCAP", help="pcap or pcapng files, read in order")
    parser.add_argument("-c", "--config", required=True, metavar="CONFIG", help="YAML configuration file")
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print the devices as JSON")
    output.add_argument("--yaml", action="store_true",
                        help="print the discovered devices as an inventory snippet for the config")


@dataclass(slots=True)
class _Seen:
    device: Device
    macs: set[str] = field(default_factory=set)
    ips: set[str] = field(default_factory=set)
    first: float = float("inf")
    last: float = float("-inf")


class DeviceCollector:
    """A sink that remembers, per device name, its latest `Device`, addresses and time span."""

    def __init__(self) -> None:
        self.seen: dict[str, _Seen] = {}

    def flow(self, report: FlowReport) -> None:
        if report.device is None:
            return
        entry = self.seen.get(report.device.name)
        if entry is None:
            entry = self.seen[report.device.name] = _Seen(report.device)
        entry.device = report.device
        if report.src_mac:
            entry.macs.add(report.src_mac)
        entry.ips.add(report.src_ip)
        entry.first = min(entry.first, report.start)
        entry.last = max(entry.last, report.end)

    def alert(self, report: FlowReport) -> None:
        pass

    def close(self, totals: Totals) -> None:
        pass


def device_list(
    config: Config, seen: dict[str, _Seen], found: list[DiscoveredDevice]
) -> list[dict[str, Any]]:
    """Inventory devices, then discovered ones, each merged with what discovery says about its MAC."""
    by_mac = {device.mac: device for device in found}
    rows = []
    inventory_macs = set()
    for spec in config.devices:
        entry = seen.get(spec.name)
        macs = sorted((entry.macs if entry else set()) | ({spec.mac} if spec.mac else set()))
        inventory_macs.update(macs)
        evidence = next((by_mac[mac] for mac in macs if mac in by_mac), None)
        vendor = spec.vendor or (entry.device.vendor if entry else None)
        vendor = vendor or (evidence.vendor if evidence else None)
        rows.append(_row(spec.name, True, spec.group, vendor, spec.role, macs, entry, evidence))
    for device in found:
        if device.mac in inventory_macs:
            continue
        if device.vendor not in CAMERA_VENDORS and device.role not in ATTRIBUTABLE_ROLES:
            continue
        entry = seen.get(device.name)
        group, macs = UNASSIGNED_GROUP, [device.mac]
        rows.append(_row(device.name, False, group, device.vendor, device.role, macs, entry, device))
    return rows


def _row(
    name: str,
    listed: bool,
    group: str,
    vendor: str | None,
    role: str,
    macs: list[str],
    seen: _Seen | None,
    evidence: DiscoveredDevice | None,
) -> dict[str, Any]:
    ips = set(seen.ips if seen else ()) | set(evidence.ips if evidence else ())
    firsts = [*([seen.first] if seen else []), *([evidence.first_seen] if evidence else [])]
    lasts = [*([seen.last] if seen else []), *([evidence.last_seen] if evidence else [])]
    return {
        "name": name,
        "source": "inventory" if listed else "discovered",
        "group": group,
        "vendor": vendor,
        "role": role,
        "confidence": evidence.confidence if evidence else None,
        "model": evidence.model if evidence else None,
        "serial": evidence.serial if evidence else None,
        "firmware": evidence.firmware if evidence else None,
        "hik_connect": evidence.hik_connect if evidence else None,
        "hostname": evidence.hostname if evidence else None,
        "vendor_class": evidence.vendor_class if evidence else None,
        "dhcp_fingerprint": evidence.dhcp_fingerprint if evidence else None,
        "macs": macs,
        "ips": sorted(ips),
        "first_seen": iso_utc(min(firsts)) if firsts else None,
        "last_seen": iso_utc(max(lasts)) if lasts else None,
        "evidence": list(evidence.reasons) if evidence else [],
    }


def inventory_snippet(rows: list[dict[str, Any]]) -> str:
    """The discovered rows as a `devices:` block for the configuration file."""
    entries = []
    for row in rows:
        if row["source"] != "discovered":
            continue
        entry = {"name": row["name"], "mac": row["macs"][0], "group": row["group"], "role": row["role"]}
        if row["vendor"]:
            entry["vendor"] = row["vendor"]
        entries.append(entry)
    return yaml.safe_dump({"devices": entries}, sort_keys=False)


def devices_command(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    from egresswatch.pipeline import Pipeline, feed_files, open_all

    collector = DeviceCollector()
    sources = open_all(args.pcaps)  # capture and GeoIP errors are the command line's to report
    pipeline = Pipeline(config, [collector])
    feed_files(pipeline, sources)
    pipeline.finish()
    rows = device_list(config, collector.seen, pipeline.learning.devices())
    if args.json:
        print(json.dumps(rows, indent=2))
    elif args.yaml:
        print(inventory_snippet(rows), end="")
    else:
        _table(rows, Console())
    return 0


def _table(rows: list[dict[str, Any]], console: Console) -> None:
    table = Table(title="Devices", title_justify="left")
    for column in ("name", "source", "vendor", "role", "model", "firmware", "ips", "first seen", "last seen",
                   "evidence"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["name"], row["source"], row["vendor"] or "-", row["role"], row["model"] or "-",
            row["firmware"] or "-", "\n".join(row["ips"]) or "-", (row["first_seen"] or "-")[:19],
            (row["last_seen"] or "-")[:19], "\n".join(row["evidence"]) or "-",
        )
    console.print(table)
