"""The run summary: per device, what went to which country in which category, and the alerts.

``to_dict`` builds the ``--summary-json`` document that the generated ground truth
(``pcaps/*.truth.json``) is compared against, so its shape and orderings are a contract:

- devices: every inventory device (even if never seen) plus every discovered device that appeared
  in a report, sorted by name. vendor: the configured one, else the MAC's OUI vendor, else what the
  reports' ``Device`` says. A discovered device's vendor and role are those it was attributed with
  on its latest-starting flow (discovery evidence can change them; its name stays).
  ``macs``/``ips`` are the source side of the reports attributed to the device (the pipeline
  orients every device flow so the device is the source).
- egress rows: reports with ``egress=True``, summed by (country, category, verdict) over their
  deltas; ``flows`` counts distinct flows, a flow being (start, src ip/port, dst ip/port, transport,
  vlan); ``destinations`` counts distinct destination IPs; ``domains`` are the distinct names;
  ``services`` the distinct vendor service names and ``jurisdictions`` the distinct home
  jurisdictions of their operators (both sorted; a row is still keyed by the *server's* country, so
  Hik-Connect hosted in DE sits in a DE row whose ``jurisdictions`` say CN).
- alerts: one per ``alert`` call. ``bytes_out`` is the bytes the device sent to that destination in
  that category with a violation verdict from that alert until the next alert for the same
  (device, destination ip, category). ``service`` and ``jurisdiction`` are those of the report
  that raised the alert (null when no catalogued service is known).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from egresswatch.config import Config, DeviceSpec
from egresswatch.model import UNKNOWN_COUNTRY, FlowReport, Totals
from egresswatch.sinks import iso_utc

if TYPE_CHECKING:
    # rich is imported where a table goes to a terminal: 30 ms of every replay into a pipe otherwise
    from rich.console import Console
    from rich.table import Table

FlowId = tuple[float, str, int | None, str, int | None, str, int | None]
AlertKey = tuple[str, str, str | None]
"""(device name, destination ip, category): what the pipeline de-duplicates alerts on."""


@dataclass(slots=True)
class _EgressRow:
    bytes_out: int = 0
    bytes_in: int = 0
    packets_out: int = 0
    flows: set[FlowId] = field(default_factory=set)
    destinations: set[str] = field(default_factory=set)
    domains: set[str] = field(default_factory=set)
    services: set[str] = field(default_factory=set)
    jurisdictions: set[str] = field(default_factory=set)


@dataclass(slots=True)
class _DeviceEntry:
    group: str
    vendor: str | None
    role: str
    macs: set[str] = field(default_factory=set)
    ips: set[str] = field(default_factory=set)
    as_of: float = float("-inf")
    """Start of the latest flow whose attribution gave a discovered device its vendor and role."""
    egress: dict[tuple[str, str | None, str | None], _EgressRow] = field(default_factory=dict)


class SummarySink:
    """Accumulates the summary from reports and alerts; ``to_dict`` renders it."""

    def __init__(self, config: Config, mac_vendor: Callable[[str], str | None] | None = None) -> None:
        """``mac_vendor`` names the vendor of a MAC ("44:19:b6:00:00:11" -> "hikvision"): it gives an
        inventory device without a configured vendor its OUI vendor even if it never shows up, the
        same answer the pipeline's attribution gives once it does."""

        def vendor(spec: DeviceSpec) -> str | None:
            if spec.vendor or not spec.mac or mac_vendor is None:
                return spec.vendor
            return mac_vendor(spec.mac)

        self._devices = {
            spec.name: _DeviceEntry(spec.group, vendor(spec), spec.role) for spec in config.devices
        }
        self._alerts: list[dict[str, Any]] = []
        self._open_alerts: dict[AlertKey, dict[str, Any]] = {}
        """The latest alert entry per key: later violation bytes for the key add to it."""
        self._pending: dict[AlertKey, int] = {}
        """Violation bytes seen before any alert for their key; the next alert for the key takes them."""
        self._last_counted: tuple[FlowReport, dict[str, Any] | None] | None = None
        """The last violation report ``flow`` counted, and the alert entry it went to (None: pending)."""
        self._last_alerted: FlowReport | None = None
        self._totals: Totals | None = None

    def _device(self, report: FlowReport) -> _DeviceEntry | None:
        device = report.device
        if device is None:
            return None
        entry = self._devices.get(device.name)
        if entry is None:
            entry = self._devices[device.name] = _DeviceEntry(device.group, device.vendor, device.role)
        if device.discovered:
            if report.start >= entry.as_of:
                entry.vendor, entry.role, entry.as_of = device.vendor, device.role, report.start
        elif device.vendor is not None:
            entry.vendor = device.vendor
        return entry

    def flow(self, report: FlowReport) -> None:
        entry = self._device(report)
        if entry is None:
            return
        if report.src_mac is not None:
            entry.macs.add(report.src_mac)
        entry.ips.add(report.src_ip)
        if report.egress:
            self._count_egress(entry, report)
        if report.verdict is not None and report.verdict.verdict == "violation":
            self._count_violation(report)

    @staticmethod
    def _count_egress(entry: _DeviceEntry, report: FlowReport) -> None:
        country = report.place.country if report.place else UNKNOWN_COUNTRY
        verdict = report.verdict.verdict if report.verdict else None
        row = entry.egress.setdefault((country, report.category, verdict), _EgressRow())
        row.bytes_out += report.delta_src_bytes
        row.bytes_in += report.delta_dst_bytes
        row.packets_out += report.delta_src_packets
        row.flows.add((report.start, report.src_ip, report.src_port, report.dst_ip, report.dst_port,
                       report.transport, report.vlan))
        row.destinations.add(report.dst_ip)
        if report.domain is not None:
            row.domains.add(report.domain)
        if report.service is not None:
            row.services.add(report.service.name)
            row.jurisdictions.add(report.service.jurisdiction)

    @staticmethod
    def _alert_key(report: FlowReport) -> AlertKey:
        assert report.device is not None
        return (report.device.name, report.dst_ip, report.category)

    def _count_violation(self, report: FlowReport) -> None:
        # The pipeline may hand a report to alert() before or after flow(); either way its bytes
        # must land in the alert it raised, counted once.
        if report == self._last_alerted:
            return
        key = self._alert_key(report)
        current = self._open_alerts.get(key)
        if current is None:
            self._pending[key] = self._pending.get(key, 0) + report.delta_src_bytes
        else:
            current["bytes_out"] += report.delta_src_bytes
        self._last_counted = (report, current)

    def alert(self, report: FlowReport) -> None:
        self._device(report)
        key = self._alert_key(report)
        bytes_out = self._pending.pop(key, 0)
        if self._last_counted is not None and self._last_counted[0] == report:
            counted_in = self._last_counted[1]
            if counted_in is not None:
                # flow() came first and credited the previous alert of this key: move the bytes.
                counted_in["bytes_out"] -= report.delta_src_bytes
                bytes_out += report.delta_src_bytes
        else:
            bytes_out += report.delta_src_bytes
            self._last_alerted = report
        entry = {
            "device": key[0],
            "country": report.place.country if report.place else UNKNOWN_COUNTRY,
            "category": report.category,
            "severity": report.verdict.severity if report.verdict else None,
            "destination_ip": report.dst_ip,
            "domain": report.domain,
            "service": report.service.name if report.service else None,
            "jurisdiction": report.service.jurisdiction if report.service else None,
            "first_seen": iso_utc(report.start),
            "bytes_out": bytes_out,
        }
        self._alerts.append(entry)
        self._open_alerts[key] = entry

    def close(self, totals: Totals) -> None:
        self._totals = totals

    def to_dict(self, totals: Totals | None = None) -> dict[str, Any]:
        """The summary document; ``totals`` defaults to the ones given to ``close``."""
        totals = totals or self._totals
        if totals is None:
            raise RuntimeError("summary has no totals: pass them or close the sink first")
        devices = []
        for name in sorted(self._devices):
            entry = self._devices[name]
            egress = [
                {
                    "country": country,
                    "category": category,
                    "verdict": verdict,
                    "bytes_out": row.bytes_out,
                    "bytes_in": row.bytes_in,
                    "packets_out": row.packets_out,
                    "flows": len(row.flows),
                    "destinations": len(row.destinations),
                    "domains": sorted(row.domains),
                    "services": sorted(row.services),
                    "jurisdictions": sorted(row.jurisdictions),
                }
                for (country, category, verdict), row in sorted(
                    entry.egress.items(), key=lambda item: tuple(part or "" for part in item[0])
                )
            ]
            devices.append({
                "name": name,
                "group": entry.group,
                "vendor": entry.vendor,
                "role": entry.role,
                "macs": sorted(entry.macs),
                "ips": sorted(entry.ips),
                "egress": egress,
            })
        alerts = sorted(
            (dict(alert) for alert in self._alerts),
            key=lambda a: (a["first_seen"], a["device"], a["destination_ip"], a["category"] or ""),
        )
        return {
            "totals": {
                "packets": totals.packets,
                "ip_bytes": totals.ip_bytes,
                "flows": totals.flows,
                "decode_errors": totals.decode_error_count(),
            },
            "devices": devices,
            "alerts": alerts,
        }


def human_bytes(count: int) -> str:
    """1536 -> "1.5 KiB": binary units, one decimal above bytes."""
    if count < 1024:
        return f"{count} B"
    value = count / 1024
    for unit in ("KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


_STYLES = {
    "critical": "bold red", "warning": "yellow", "violation": "red", "allowed": "green", "local": "dim",
}


TABLE_ALERTS = 50
"""Alerts a terminal table shows; the JSON summary and the events keep every one."""


Cell = tuple[str, str]
"""(text, rich style): a table cell; the style is dropped where the output is not a terminal."""


@dataclass(frozen=True, slots=True)
class TextTable:
    title: str
    columns: tuple[str, ...]
    right: frozenset[str]
    """Columns aligned right (numbers)."""
    rows: list[tuple[Cell, ...]]


def summary_tables(summary: dict[str, Any]) -> list[TextTable]:
    """The per-device egress table and, when there are any, the alerts table."""
    severities = {(a["device"], a["country"], a["category"]): a["severity"] for a in summary["alerts"]}
    egress: list[tuple[Cell, ...]] = []
    for device in summary["devices"]:
        ident = ((device["name"], ""), (device["group"], ""), (device["vendor"] or "-", ""))
        if not device["egress"]:
            egress.append((*ident, ("-", ""), ("-", ""), ("no egress", "dim"), ("", ""), ("", ""), ("", "")))
        for row in device["egress"]:
            severity = None
            if row["verdict"] == "violation":
                severity = severities.get((device["name"], row["country"], row["category"]))
            verdict = row["verdict"] + (f" ({severity})" if severity else "")
            egress.append((*ident, (row["country"], ""), (row["category"] or "-", ""),
                           (verdict, _STYLES.get(severity or row["verdict"] or "", "")),
                           (human_bytes(row["bytes_out"]), ""), (human_bytes(row["bytes_in"]), ""),
                           (str(row["flows"]), "")))
    tables = [TextTable("Egress by device",
                        ("device", "group", "vendor", "country", "category", "verdict", "bytes out",
                         "bytes in", "flows"), frozenset({"bytes out", "bytes in", "flows"}), egress)]
    if summary["alerts"]:
        alerts = [((alert["first_seen"][:19].replace("T", " "), ""),  # to the second reads better
                   (alert["device"], ""), (alert["country"], ""), (alert["category"], ""),
                   (alert["severity"] or "-", _STYLES.get(alert["severity"] or "", "")),
                   (alert["destination_ip"], ""), (alert["domain"] or "-", ""),
                   (human_bytes(alert["bytes_out"]), ""))
                  for alert in summary["alerts"][:TABLE_ALERTS]]
        tables.append(TextTable("Policy violations",
                                ("first seen (UTC)", "device", "country", "category", "severity",
                                 "destination", "domain", "bytes out"), frozenset({"bytes out"}), alerts))
    return tables


def render_table(summary: dict[str, Any], console: Console) -> None:
    """Print the summary: the egress table, the alerts, the totals. Boxed and coloured by rich on
    a terminal; plain aligned columns (`plain_summary`) into a pipe or file, which scripts read
    and which costs milliseconds, where rich's layout of a large site's table takes seconds."""
    if not console.is_terminal:
        console.file.write(plain_summary(summary))
        return
    for table in summary_tables(summary):
        console.print(_rich_table(table))
    for line in _closing_lines(summary):
        console.print(line)


def plain_summary(summary: dict[str, Any]) -> str:
    """The summary as plain text: what `render_table` prints where the output is not a terminal."""
    tables = "".join(_plain_table(table) for table in summary_tables(summary))
    return tables + "".join(line + "\n" for line in _closing_lines(summary))


def _closing_lines(summary: dict[str, Any]) -> list[str]:
    lines = [] if summary["alerts"] else ["No policy violations."]
    hidden = len(summary["alerts"]) - TABLE_ALERTS
    if hidden > 0:
        lines.append(f"... and {hidden} more alerts: see --summary-json or --events")
    totals = summary["totals"]
    lines.append(f"{totals['packets']} packets, {human_bytes(totals['ip_bytes'])} IP, "
                 f"{totals['flows']} flows, {totals['decode_errors']} decode errors")
    return lines


def _rich_table(table: TextTable) -> Table:
    from rich.table import Table
    from rich.text import Text

    out = Table(title=table.title, title_justify="left")
    for column in table.columns:
        out.add_column(column, justify="right" if column in table.right else "left",
                       no_wrap=column == "first seen (UTC)")
    for row in table.rows:
        out.add_row(*(Text(text, style=style) for text, style in row))
    return out


def _plain_table(table: TextTable) -> str:
    widths = [max([len(column), *(len(row[i][0]) for row in table.rows)])
              for i, column in enumerate(table.columns)]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(cell.rjust(width) if column in table.right else cell.ljust(width)
                         for cell, width, column in zip(cells, widths, table.columns, strict=True)).rstrip()

    body = [line(tuple(text for text, _ in row)) for row in table.rows]
    return "\n".join([table.title, line(table.columns), *body]) + "\n"
