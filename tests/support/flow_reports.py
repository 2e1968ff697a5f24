"""Hand-built FlowReports for the sink tests: one realistic camera egress report to vary per test."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

from egresswatch.model import Device, FlowReport, Place, Verdict

T0 = datetime(2026, 1, 12, 8, 0, 1, 250000, tzinfo=UTC).timestamp()
"""2026-01-12T08:00:01.250000Z"""

CAMERA = Device("cam-entrance", "cameras", "hikvision", "camera")
DISCOVERED = Device("dahua-3ce36b000042", "unassigned", "dahua", "camera", discovered=True)
CHINA = Place("CN", 64500, "Example Transit", "GeoLite2-Country")
CRITICAL = Verdict("violation", "critical")


def report(**changes: Any) -> FlowReport:
    """A camera's RTSP flow to 203.0.113.9 in CN, judged a critical violation; ``changes`` override fields."""
    base = FlowReport(
        action="flow_end", start=T0, end=T0 + 60.5, transport="tcp", ip_version=4, vlan=20,
        src_ip="10.20.0.11", src_port=40000, src_mac="44:19:b6:00:00:11", src_bytes=5000, src_packets=10,
        dst_ip="203.0.113.9", dst_port=554, dst_mac="00:00:5e:00:53:01", dst_bytes=700, dst_packets=6,
        tcp_flags=0x1B, delta_src_bytes=5000, delta_dst_bytes=700, delta_src_packets=10, delta_dst_packets=6,
        device=CAMERA, egress=True, place=CHINA, domain="cloud.example.com", category="footage",
        category_reason="rtsp port 554", verdict=CRITICAL,
    )
    return dataclasses.replace(base, **changes)


def local_report(**changes: Any) -> FlowReport:
    """The same camera streaming to the NVR on the site: not egress, verdict local."""
    return report(**{
        "dst_ip": "10.20.0.2", "dst_mac": "00:00:5e:00:53:02", "egress": False, "place": None, "domain": None,
        "category": None, "category_reason": None, "verdict": Verdict("local", None), **changes,
    })
