"""Value types that travel between stages. Nothing here does work."""

from __future__ import annotations

from dataclasses import dataclass

ROLES = ("camera", "nvr", "other")
CATEGORIES = ("footage", "telemetry", "firmware", "infrastructure")
VERDICTS = ("allowed", "violation", "local")
SEVERITIES = ("critical", "warning")
UNKNOWN_COUNTRY = "ZZ"


@dataclass(frozen=True, slots=True)
class Device:
    """A camera, NVR or other host we attribute traffic to."""

    name: str
    group: str
    vendor: str | None
    """Vendor slug, e.g. "hikvision", "dahua" (None when unknown)."""
    role: str
    """One of ROLES."""
    discovered: bool = False
    """True when found by passive discovery (MAC vendor, announcements), not listed in the inventory."""


@dataclass(frozen=True, slots=True)
class Place:
    """Where a remote address is, and who routes it."""

    country: str
    """ISO 3166 alpha-2, or "ZZ" when no source knows."""
    asn: int | None
    as_org: str | None
    source: str
    """Which database answered, e.g. "GeoLite2-Country" or "iptocc"."""


@dataclass(frozen=True, slots=True)
class Service:
    """A vendor cloud service (from the catalogue, egresswatch/data/services.yaml)."""

    name: str
    operator: str
    """The company that runs the service."""
    jurisdiction: str
    """ISO 3166 alpha-2 code of the operator's home jurisdiction."""
    vendor: str | None = None
    """Slug of the camera vendor whose devices use the service (discovery evidence), if one."""


@dataclass(frozen=True, slots=True)
class Verdict:
    verdict: str
    """One of VERDICTS."""
    severity: str | None
    """"critical" or "warning" for violations, else None."""
    rule: int | None = None
    """Index of the allow rule that matched, if any."""


@dataclass(slots=True)
class FlowReport:
    """One flow as the sinks see it at a report: oriented, attributed, judged.

    Counts are cumulative for the flow; ``delta_*`` are since the previous report of the same flow
    (for a flow's first report they equal the cumulative counts).
    """

    action: str
    """"flow_update" (interim) or "flow_end"."""
    start: float
    end: float
    transport: str
    """"tcp", "udp", "icmp", "ipv6-icmp", or the IP protocol number as a string."""
    ip_version: int
    vlan: int | None
    src_ip: str
    src_port: int | None
    src_mac: str | None
    src_bytes: int
    src_packets: int
    dst_ip: str
    dst_port: int | None
    dst_mac: str | None
    dst_bytes: int
    dst_packets: int
    tcp_flags: int
    delta_src_bytes: int
    delta_dst_bytes: int
    delta_src_packets: int
    delta_dst_packets: int
    device: Device | None = None
    egress: bool = False
    """True when source is a device and destination is not local."""
    place: Place | None = None
    """Destination's place, for egress flows."""
    domain: str | None = None
    category: str | None = None
    category_reason: str | None = None
    verdict: Verdict | None = None
    first_report: bool = True
    service: Service | None = None
    """Whose service the destination is, for device flows the catalogue recognises."""
    new_destinations: tuple[str, ...] = ()
    """Baseline dimensions ("country", "asn", "service") this egress report is the first to use
    since the device finished learning: each raises a ``new_destination`` event."""


@dataclass(slots=True)
class Totals:
    """Run-wide counts, read by the summary and the metrics collector."""

    packets: int = 0
    """Every frame read, decodable or not."""
    ip_bytes: int = 0
    """IP-layer bytes of the innermost IP header of every decoded packet."""
    flows: int = 0
    """Flows created."""
    evictions: int = 0
    active_flows: int = 0
    decode_errors: dict[str, int] | None = None
    """Anomaly name -> count; None until the first one."""
    truncated_files: list[str] | None = None
    """One line per capture file that ended mid-record: "<path>: stopped at packet N, byte offset B"."""

    def decode_error_count(self) -> int:
        return sum(self.decode_errors.values()) if self.decode_errors else 0
