"""JSON-lines events with ECS field names, as nested objects (not dotted keys).

One line per flow report that passes the ``flows`` filter, and one per policy alert (alerts are
always written). ``egresswatch.service.{name,operator,jurisdiction}`` name the destination's vendor
service from the catalogue and its operator's home jurisdiction, next to the server's
``destination.geo.country_iso_code``. Keys whose value is unknown are left out rather than written
as null, so a consumer can tell "not known" from a real value by presence alone.

A device's egress report that uses a destination country, ASN or vendor service the device did
not use while its baseline was learning also gets a ``new_destination`` event (always written,
like alerts): ``event.kind`` "alert", ``event.action`` and ``egresswatch.verdict``
"new_destination", ``egresswatch.new_destination.dimensions`` the new ones (e.g. ["country",
"asn"]). The flow's policy verdict stays on its flow event.

Alert severity: ``event.severity`` uses the RFC 5424 (syslog) severity codes, the numbering ECS
itself uses for ``log.syslog.severity.code``: ``critical`` = 2, ``warning`` = 4 (lower is more
severe). The word is also in ``egresswatch.severity``.
"""

from __future__ import annotations

import json
from typing import Any, TextIO

from egresswatch.model import FlowReport, Totals
from egresswatch.sinks import iso_utc

FLOW_FILTERS = ("all", "devices", "egress")
SEVERITY_CODES = {"critical": 2, "warning": 4}
"""RFC 5424 severity code of each verdict severity, written as ``event.severity`` on alerts."""


def _pruned(value: Any) -> Any:
    """Drop None values and the objects left empty by that, recursively."""
    if not isinstance(value, dict):
        return value
    out = {}
    for key, item in value.items():
        item = _pruned(item)
        if item is not None and item != {}:
            out[key] = item
    return out


NEW_DESTINATION = "new_destination"


def build_record(report: FlowReport, alert: bool = False) -> dict[str, Any]:
    """The ECS document for a flow report, or for the alert it raised when ``alert`` is true."""
    device = report.device
    place = report.place
    verdict = report.verdict
    service = report.service
    severity = verdict.severity if verdict else None
    event: dict[str, Any] = {
        "kind": "alert" if alert else "event",
        "action": "policy_violation" if alert else report.action,
        "category": ["network"],
        "type": ["connection"],
        "start": iso_utc(report.start),
        "end": iso_utc(report.end),
    }
    record: dict[str, Any] = {
        "@timestamp": iso_utc(report.end),
        "event": event,
        "source": {
            "ip": report.src_ip,
            "mac": report.src_mac,
            "port": report.src_port,
            "bytes": report.src_bytes,
            "packets": report.src_packets,
        },
        "destination": {
            "ip": report.dst_ip,
            "mac": report.dst_mac,
            "port": report.dst_port,
            "bytes": report.dst_bytes,
            "packets": report.dst_packets,
            "domain": report.domain,
            "geo": {"country_iso_code": place.country if place else None},
            "as": {
                "number": place.asn if place else None,
                "organization": {"name": place.as_org if place else None},
            },
        },
        "network": {
            "transport": report.transport,
            "type": f"ipv{report.ip_version}",
            "vlan": {"id": report.vlan},
            "bytes": report.src_bytes + report.dst_bytes,
            "packets": report.src_packets + report.dst_packets,
        },
        "egresswatch": {
            "device": {
                "name": device.name if device else None,
                "group": device.group if device else None,
                "vendor": device.vendor if device else None,
                "role": device.role if device else None,
            },
            "service": {
                "name": service.name if service else None,
                "operator": service.operator if service else None,
                "jurisdiction": service.jurisdiction if service else None,
            },
            "category": report.category,
            "category_reason": report.category_reason,
            "verdict": verdict.verdict if verdict else None,
            "severity": severity,
            "egress": report.egress,
            "geo_source": place.source if place else None,
        },
    }
    if alert:
        event["severity"] = SEVERITY_CODES.get(severity) if severity else None
        country = place.country if place else "an unknown country"
        group = device.group if device else "none"
        operated = f" (service {service.name}, operator in {service.jurisdiction})" if service else ""
        record["rule"] = {"name": f"{report.category} to {country}{operated} not allowed for group {group}"}
    return _pruned(record)


def build_new_destination(report: FlowReport) -> dict[str, Any]:
    """The ``new_destination`` event of an egress report that left its device's baseline."""
    record = build_record(report)
    record["event"].update(kind="alert", action=NEW_DESTINATION)
    ours = record["egresswatch"]
    ours["verdict"] = NEW_DESTINATION
    ours.pop("severity", None)
    ours["new_destination"] = {"dimensions": list(report.new_destinations)}
    return record


class EventSink:
    """Writes one JSON document per line to ``stream``; the caller owns (and closes) the stream.

    ``flows`` picks which flow reports become events: "all", "devices" (flows attributed to a
    device) or "egress" (a device's flows to non-local destinations). Alerts are always written.
    """

    def __init__(self, stream: TextIO, flows: str = "devices") -> None:
        if flows not in FLOW_FILTERS:
            raise ValueError(f"flows must be one of {', '.join(FLOW_FILTERS)}, not {flows!r}")
        self._stream = stream
        self._flows = flows

    def _wanted(self, report: FlowReport) -> bool:
        if self._flows == "all":
            return True
        if self._flows == "devices":
            return report.device is not None
        return report.device is not None and report.egress

    def _write(self, record: dict[str, Any]) -> None:
        self._stream.write(json.dumps(record, separators=(",", ":")) + "\n")

    def flow(self, report: FlowReport) -> None:
        if self._wanted(report):
            self._write(build_record(report))
        if report.new_destinations:
            self._write(build_new_destination(report))

    def alert(self, report: FlowReport) -> None:
        self._write(build_record(report, alert=True))

    def close(self, totals: Totals) -> None:
        self._stream.flush()
