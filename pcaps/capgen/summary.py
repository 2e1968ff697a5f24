"""Assemble the ``--summary-json`` document from the truth model."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from capgen.capture import Record
from capgen.catalogue import Catalogue
from capgen.geoip import locate
from capgen.truth import Flow, Side, Truth, iso


@dataclass(frozen=True)
class Part:
    """A flow, or the part of it between two changes of category, as one egress row counts it."""

    flow: Flow
    dst_ip: str
    domain: str | None
    service: str | None
    bytes_out: int
    bytes_in: int
    packets_out: int


def parts(truth: Truth, flow: Flow, src: Side, dst: Side, service: str | None) -> list[tuple[str, Part]]:
    """(category, part) for each stretch of the flow between changes of category (one for most)."""
    src_is_a = src is flow.a
    out = []
    before = (0, 0, 0, 0)
    final = (flow.a.packets, flow.a.bytes, flow.b.packets, flow.b.bytes)
    domain = domain_of(flow, dst.ip)
    for app, counts in [*flow.splits, (flow.app, final)]:
        a_packets, a_bytes, b_packets, b_bytes = counts
        up = Side(
            src.ip,
            src.port,
            packets=a_packets if src_is_a else b_packets,
            bytes=a_bytes if src_is_a else b_bytes,
        )
        down = Side(
            dst.ip,
            dst.port,
            packets=b_packets if src_is_a else a_packets,
            bytes=b_bytes if src_is_a else a_bytes,
        )
        category = truth.category(flow, up, down, app, service)
        o_packets, o_bytes, i_bytes = (
            (before[0], before[1], before[3]) if src_is_a else (before[2], before[3], before[1])
        )
        out.append(
            (
                category,
                Part(
                    flow,
                    dst.ip,
                    domain,
                    service,
                    up.bytes - o_bytes,
                    down.bytes - i_bytes,
                    up.packets - o_packets,
                ),
            )
        )
        before = counts
    return out


def domain_of(flow: Flow, dst_ip: str) -> str | None:
    """The flow's SNI or the DNS name its destination had when the flow began (they must agree)."""
    by_dns = flow.dns_names.get(dst_ip)
    if flow.sni and by_dns and flow.sni != by_dns:
        raise ValueError(f"SNI {flow.sni} and DNS name {by_dns} disagree for {dst_ip}")
    return flow.sni or by_dns


def _check_names(named: dict[str, set[str | None]]) -> None:
    # A pipeline may name by flow, by device or by address; only a destination that every flow
    # names the same way gives one answer under all three.
    for ip, names in named.items():
        if len(names) > 1:
            raise ValueError(f"flows to {ip} are named differently: {names}")


def summarize(records: list[Record], config: dict[str, Any]) -> dict[str, Any]:
    truth = Truth(config)
    catalogue = Catalogue()
    flows = truth.flows(records)
    devices: dict[str, dict[str, Any]] = {}
    for entry in truth.inventory:
        device = truth.inventory_device(entry)
        devices[device["name"]] = {**device, "macs": set(), "ips": set(), "egress": defaultdict(list)}
    alerts: dict[tuple[str, str, str], dict[str, Any]] = {}
    named: dict[str, set[str | None]] = defaultdict(set)
    for flow in flows:
        a_dev, b_dev = truth.device(flow.a, flow.first), truth.device(flow.b, flow.first)
        for other in (flow.a, flow.b):
            if not truth.is_local(other.ip):
                named[other.ip].add(domain_of(flow, other.ip))
        if a_dev is None and b_dev is None:
            continue
        device, src, dst = (a_dev, flow.a, flow.b) if a_dev else (b_dev, flow.b, flow.a)
        assert device is not None
        entry = devices.setdefault(
            device["name"], {**device, "macs": set(), "ips": set(), "egress": defaultdict(list)}
        )
        if device["group"] == "unassigned":
            entry.update(vendor=device["vendor"], role=device["role"])  # discovered: the latest flow's
        entry["macs"] |= src.macs
        entry["ips"].add(src.ip)
        if truth.is_local(dst.ip):
            continue
        country, asn = locate(dst.ip)
        domain = domain_of(flow, dst.ip)
        service = catalogue.service_of(domain) or flow.service
        jurisdiction = catalogue.jurisdiction[service] if service else None
        for category, part in parts(truth, flow, src, dst, service):
            verdict = truth.verdict(device["group"], category, dst.ip, country, asn, domain, jurisdiction)
            entry["egress"][(country, category, verdict)].append(part)
            if verdict != "violation":
                continue
            key = (device["name"], dst.ip, category)
            alert = alerts.get(key)
            if alert is None or flow.first < alert["_first"]:
                alerts[key] = {
                    "device": device["name"],
                    "country": country,
                    "category": category,
                    "severity": "critical" if category == "footage" else "warning",
                    "destination_ip": dst.ip,
                    "domain": domain,
                    "service": service,
                    "jurisdiction": jurisdiction,
                    "first_seen": iso(flow.first),
                    "bytes_out": (alert or {}).get("bytes_out", 0),
                    "_first": flow.first,
                }
            alerts[key]["bytes_out"] += part.bytes_out
    _check_names(named)
    return {
        "totals": {
            "packets": len(records),
            "ip_bytes": sum(r.info.ip_bytes for r in records if r.info),
            "flows": len(flows),
            "decode_errors": sum(1 for r in records if r.error),
        },
        "devices": [_device_json(devices[name], catalogue) for name in sorted(devices)],
        "alerts": sorted(
            ({k: v for k, v in a.items() if k != "_first"} for a in alerts.values()),
            key=lambda a: (a["first_seen"], a["device"], a["destination_ip"], a["category"]),
        ),
    }


def _device_json(entry: dict[str, Any], catalogue: Catalogue) -> dict[str, Any]:
    rows = []
    for (country, category, verdict), members in sorted(entry["egress"].items()):
        services = {part.service for part in members if part.service}
        rows.append(
            {
                "country": country,
                "category": category,
                "verdict": verdict,
                "bytes_out": sum(part.bytes_out for part in members),
                "bytes_in": sum(part.bytes_in for part in members),
                "packets_out": sum(part.packets_out for part in members),
                "flows": len({id(part.flow) for part in members}),
                "destinations": len({part.dst_ip for part in members}),
                "domains": sorted({part.domain for part in members if part.domain}),
                "services": sorted(services),
                "jurisdictions": sorted({catalogue.jurisdiction[name] for name in services}),
            }
        )
    return {
        "name": entry["name"],
        "group": entry["group"],
        "vendor": entry["vendor"],
        "role": entry["role"],
        "macs": sorted(entry["macs"]),
        "ips": sorted(entry["ips"]),
        "egress": rows,
    }
