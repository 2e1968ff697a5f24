"""Assemble the ``--summary-json`` document from the truth model."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from capgen.capture import Record
from capgen.geoip import locate
from capgen.truth import Flow, Truth, iso


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
    flows = truth.flows(records)
    devices: dict[str, dict[str, Any]] = {}
    for entry in truth.inventory:
        device = truth.inventory_device(entry)
        devices[device["name"]] = {**device, "macs": set(), "ips": set(), "egress": defaultdict(list)}
    alerts: dict[tuple[str, str, str], dict[str, Any]] = {}
    named: dict[str, set[str | None]] = defaultdict(set)
    for flow in flows:
        a_dev, b_dev = truth.device(flow.a), truth.device(flow.b)
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
        entry["macs"] |= src.macs
        entry["ips"].add(src.ip)
        if truth.is_local(dst.ip):
            continue
        country, asn = locate(dst.ip)
        category = truth.category(flow, src, dst)
        domain = domain_of(flow, dst.ip)
        verdict = truth.verdict(device["group"], category, dst.ip, country, asn, domain)
        entry["egress"][(country, category, verdict)].append((flow, src, dst, domain))
        if verdict == "violation":
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
                    "first_seen": iso(flow.first),
                    "bytes_out": (alert or {}).get("bytes_out", 0),
                    "_first": flow.first,
                }
            alerts[key]["bytes_out"] += src.bytes
    _check_names(named)
    return {
        "totals": {
            "packets": len(records),
            "ip_bytes": sum(r.info.ip_bytes for r in records if r.info),
            "flows": len(flows),
            "decode_errors": sum(1 for r in records if r.error),
        },
        "devices": [_device_json(devices[name]) for name in sorted(devices)],
        "alerts": sorted(
            ({k: v for k, v in a.items() if k != "_first"} for a in alerts.values()),
            key=lambda a: (a["first_seen"], a["device"], a["destination_ip"], a["category"]),
        ),
    }


def _device_json(entry: dict[str, Any]) -> dict[str, Any]:
    rows = []
    for (country, category, verdict), members in sorted(entry["egress"].items()):
        rows.append(
            {
                "country": country,
                "category": category,
                "verdict": verdict,
                "bytes_out": sum(src.bytes for _f, src, _d, _n in members),
                "bytes_in": sum(dst.bytes for _f, _s, dst, _n in members),
                "packets_out": sum(src.packets for _f, src, _d, _n in members),
                "flows": len(members),
                "destinations": len({dst.ip for _f, _s, dst, _n in members}),
                "domains": sorted({name for *_rest, name in members if name}),
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
