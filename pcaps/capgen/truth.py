"""Ground truth: what ``egresswatch replay --summary-json`` must print for a capture.

Computed from the generator's own record of every frame (``Record.info``) and config/demo.yaml,
following the semantics in pcaps/README.md. The generator refuses scenarios whose truth would
depend on a detail the contract leaves open (a flow idling out, a flow close to the video
thresholds, a name that could come from two places), so the truth never guesses.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from capgen.capture import IpInfo, Record

DEFAULT_LOCAL = (
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "169.254.0.0/16",
    "127.0.0.0/8",
    "224.0.0.0/4",
    "255.255.255.255/32",
    "fc00::/7",
    "fe80::/10",
    "::1/128",
    "ff00::/8",
)
CAMERA_OUIS = {"44:19:b6": "hikvision", "3c:ef:8c": "dahua"}
FOOTAGE_PORTS = frozenset({554, 8554, 1935})
TELEMETRY_PORTS = frozenset({1883, 8883})
INFRASTRUCTURE_PORTS = frozenset({53, 123, 67, 68})
APP_CATEGORIES = {
    **dict.fromkeys(
        ("rtsp", "rtp", "rtcp", "rtmp", "srt", "hls", "webrtc", "ptcp", "baichuan-relay"), "footage"
    ),
    **dict.fromkeys(("mqtt", "stun", "dh-p2p", "baichuan-p2p"), "telemetry"),
}
"""What each application the generator tags carries (pcaps/README.md, "Category")."""
FIRMWARE_MIN_DOWN = 1_000_000
FIRMWARE_MIN_RATIO = 10
TCP, UDP = 6, 17
IDLE_SECONDS = {TCP: 300, UDP: 60}
OTHER_IDLE_SECONDS = 60
TCP_CLOSED_SECONDS = 5
ACTIVE_TIMEOUT = 60
MARGIN = 5  # seconds kept clear of every timeout
FIN = 0x01


@dataclass
class Side:
    ip: str
    port: int | None
    macs: set[str] = field(default_factory=set)
    packets: int = 0
    bytes: int = 0


@dataclass
class Flow:
    a: Side
    b: Side
    proto: int
    first: int
    last: int
    sni: str | None = None
    dns_names: dict[str, str] = field(default_factory=dict)
    """Names that DNS answers gave each end's address before the flow started."""
    fins: set[str] = field(default_factory=set)
    closed_at: int | None = None
    app: str | None = None
    """The latest application the generator tagged in the flow."""
    service: str | None = None
    """The first catalogue service whose signature a packet of the flow carried."""
    splits: list[tuple[str, tuple[int, int, int, int]]] = field(default_factory=list)
    """(app before, (a packets, a bytes, b packets, b bytes) before the packet that changed it) for
    each change of app that changes the category: the bytes before count under the old app."""

    def side(self, ip: str, port: int | None) -> Side:
        return self.a if (self.a.ip, self.a.port) == (ip, port) else self.b


class Truth:
    """Replays the recorded frames through the contract's flow, device and policy rules."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        nets = (config.get("networks") or {}).get("local") or DEFAULT_LOCAL
        self.local = [ipaddress.ip_network(n) for n in nets]
        self.inventory = config.get("devices") or []
        self.groups = config.get("groups") or {}
        self.holders: dict[str, list[tuple[int, str | None]]] = {}
        """ip -> (since, mac or None when released) in time order: ARP, NDP and DHCP bindings."""
        self.announced: dict[str, tuple[int, str, str]] = {}
        """mac -> (first announcement, vendor, role): what discovery announcements made it."""
        self.names: dict[str, str] = {}
        """mac -> the name a discovered device got when it was first attributed."""

    # -- flows ---------------------------------------------------------------------------------
    def flows(self, records: list[Record]) -> list[Flow]:
        table: dict[tuple[Any, ...], Flow] = {}
        dns: dict[str, str] = {}
        for rec in records:
            self._learn(rec)
            info = rec.info
            if info is None:
                continue
            key = (info.vlan, info.proto, frozenset({(info.src, info.sport), (info.dst, info.dport)}))
            flow = table.get(key)
            if flow is None:
                flow = Flow(
                    Side(info.src, info.sport),
                    Side(info.dst, info.dport),
                    info.proto,
                    rec.ts_us,
                    rec.ts_us,
                    dns_names={ip: dns[ip] for ip in (info.src, info.dst) if ip in dns},
                )
                table[key] = flow
            else:
                self._check_alive(flow, rec.ts_us, info)
            self._count(flow, rec.ts_us, info)
            for name, address in info.dns_answers:
                dns[str(ipaddress.ip_address(address))] = name
        return list(table.values())

    def _learn(self, rec: Record) -> None:
        for ip, mac in rec.bindings:
            holders = self.holders.setdefault(str(ipaddress.ip_address(ip)), [])
            if not holders or holders[-1][1] != mac:
                holders.append((rec.ts_us, mac))
        if rec.announce is not None:
            mac, vendor, role = rec.announce
            self.announced.setdefault(mac, (rec.ts_us, vendor, role))

    def mac_at(self, ip: str, at: int) -> str | None:
        """The holder of ``ip`` at ``at``; before the first binding, the first holder."""
        holders = self.holders.get(ip)
        if not holders:
            return None
        current = holders[0][1]
        for since, mac in holders:
            if since <= at:
                current = mac
        return current

    @staticmethod
    def _check_alive(flow: Flow, ts: int, info: IpInfo) -> None:
        idle = IDLE_SECONDS.get(flow.proto, OTHER_IDLE_SECONDS)
        if ts - flow.last > (idle - MARGIN) * 1_000_000:
            raise ValueError(f"flow {info.src}->{info.dst} would idle out before {ts}")
        if flow.closed_at is not None and ts - flow.closed_at > (TCP_CLOSED_SECONDS - MARGIN / 2) * 1_000_000:
            raise ValueError(f"TCP flow {info.src}->{info.dst} gets a packet after it closed")

    @staticmethod
    def _count(flow: Flow, ts: int, info: IpInfo) -> None:
        if info.app is not None:
            if flow.app is not None and APP_CATEGORIES.get(flow.app) != APP_CATEGORIES.get(info.app):
                counts = (flow.a.packets, flow.a.bytes, flow.b.packets, flow.b.bytes)
                flow.splits.append((flow.app, counts))
            flow.app = info.app
        if info.service is not None and flow.service is None:
            flow.service = info.service
        sender = flow.side(info.src, info.sport)
        receiver = flow.b if sender is flow.a else flow.a
        sender.packets += 1
        sender.bytes += info.ip_bytes
        if info.src_mac:
            sender.macs.add(info.src_mac)
        if info.dst_mac:
            receiver.macs.add(info.dst_mac)
        flow.last = ts
        if info.sni:
            if flow.sni not in (None, info.sni):
                raise ValueError("two SNIs in one flow")
            flow.sni = info.sni
        if info.tcp_flags & FIN:
            flow.fins.add(info.src)
            if len(flow.fins) == 2:
                flow.closed_at = ts

    # -- devices -------------------------------------------------------------------------------
    def is_local(self, ip: str) -> bool:
        address = ipaddress.ip_address(ip)
        return any(address in net for net in self.local)

    def device(self, side: Side, at: int) -> dict[str, Any] | None:
        """Inventory by MAC (the frame's, else the learned holder's), then by IP/CIDR unless a
        learned binding says a MAC other than the entry's holds the IP, then discovery."""
        if len(side.macs) > 1:
            raise ValueError(f"{side.ip} shows two MACs on one side of a flow: {sorted(side.macs)}")
        mac = next(iter(side.macs), None)
        learned = self.mac_at(side.ip, at)
        address = ipaddress.ip_address(side.ip)
        by_mac = [d for d in self.inventory if mac and d.get("mac", "").lower() == mac]
        if not by_mac and learned is not None:
            by_mac = [d for d in self.inventory if d.get("mac", "").lower() == learned]
        by_ip = [
            d
            for d in self.inventory
            if (("ip" in d and ipaddress.ip_address(d["ip"]) == address)
                or ("cidr" in d and address in ipaddress.ip_network(d["cidr"])))
            and (learned is None or "mac" not in d or d["mac"].lower() == learned)
        ]  # fmt: skip
        if by_mac or by_ip:
            return self.inventory_device((by_mac or by_ip)[0])
        for candidate in (mac, learned):
            found = self.discovered(candidate, side.ip, at) if candidate else None
            if found is not None:
                return found
        return None

    def discovered(self, mac: str, ip: str, at: int) -> dict[str, Any] | None:
        """A local host announced (before ``at``) as a camera or NVR, or with a camera vendor's OUI."""
        if not self.is_local(ip):
            return None
        announced = self.announced.get(mac)
        if announced is not None and announced[0] < at:
            vendor, role = announced[1], announced[2]
        elif mac[:8] in CAMERA_OUIS:
            vendor, role = CAMERA_OUIS[mac[:8]], "camera"
        else:
            return None
        name = self.names.setdefault(mac, f"{vendor}-{mac.replace(':', '')}")
        return {"name": name, "group": "unassigned", "vendor": vendor, "role": role}

    @staticmethod
    def inventory_device(entry: dict[str, Any]) -> dict[str, Any]:
        vendor = entry.get("vendor") or CAMERA_OUIS.get(entry.get("mac", "").lower()[:8])
        return {
            "name": entry["name"],
            "group": entry.get("group", "default"),
            "vendor": vendor,
            "role": entry.get("role", "camera"),
        }

    # -- classification and policy -------------------------------------------------------------
    @staticmethod
    def category(flow: Flow, src: Side, dst: Side, app: str | None, service: str | None) -> str:
        """The category of a flow (or of the part of it before a change of app) from ``src``/``dst``
        counts: the app's, else the port's, else a firmware download, else by shape."""
        if app in APP_CATEGORIES:
            return APP_CATEGORIES[app]
        ported = flow.proto in (TCP, UDP)
        if ported and src.port in FOOTAGE_PORTS | INFRASTRUCTURE_PORTS | TELEMETRY_PORTS:
            raise ValueError(f"device port {src.port} would make the category depend on direction")
        if ported and dst.port in FOOTAGE_PORTS:
            return "footage"
        if ported and dst.port in TELEMETRY_PORTS:
            return "telemetry"
        if service is not None and firmware_download(src, dst):
            return "firmware"
        video = video_shaped(flow, src, dst)
        if ported and dst.port in INFRASTRUCTURE_PORTS:
            if video:
                raise ValueError("an infrastructure port carrying video-shaped traffic is ambiguous")
            return "infrastructure"
        return "footage" if video else "telemetry"

    def verdict(
        self,
        group: str,
        category: str,
        ip: str,
        country: str,
        asn: int | None,
        domain: str | None,
        jurisdiction: str | None,
    ) -> str:
        for rule in (self.groups.get(group) or {}).get("allow") or []:
            if rule_matches(rule, category, ip, country, asn, domain, jurisdiction):
                return "allowed"
        return "violation"


def firmware_download(src: Side, dst: Side) -> bool:
    """The contract's firmware test (>= 1 MB down, >= 10x up), refusing flows near it."""
    clearly = dst.bytes >= 1.2 * FIRMWARE_MIN_DOWN and dst.bytes >= 1.2 * FIRMWARE_MIN_RATIO * src.bytes
    clearly_not = dst.bytes < 0.8 * FIRMWARE_MIN_DOWN or dst.bytes < 0.8 * FIRMWARE_MIN_RATIO * src.bytes
    if clearly == clearly_not:
        raise ValueError(f"flow {src.ip}->{dst.ip} is too close to the firmware thresholds")
    return clearly


def video_shaped(flow: Flow, src: Side, dst: Side) -> bool:
    """The contract's footage-by-volume test, refusing flows near any threshold."""
    duration = (flow.last - flow.first) / 1_000_000
    kbps = src.bytes * 8 / duration / 1000 if duration else 0.0
    mean = src.bytes / src.packets if src.packets else 0.0
    clearly = duration >= 12 and kbps >= 300 and src.bytes >= 5 * dst.bytes and mean >= 600
    clearly_not = duration < 8 or kbps < 200 or src.bytes < 3 * dst.bytes or mean < 400
    if clearly == clearly_not:
        raise ValueError(f"flow {src.ip}->{dst.ip} is too close to the video thresholds")
    if duration > ACTIVE_TIMEOUT - MARGIN:
        # An interim report would judge a prefix of the flow; keep shape-classified flows short.
        raise ValueError(f"flow {src.ip}->{dst.ip} is classified by shape but outlives the active timeout")
    return clearly


def rule_matches(
    rule: dict[str, Any],
    category: str,
    ip: str,
    country: str,
    asn: int | None,
    domain: str | None,
    jurisdiction: str | None,
) -> bool:
    """A rule ANDs the matchers it has; domains match as dot-bounded suffixes; an unknown operator
    jurisdiction never matches ``operator_jurisdictions``."""
    if "operator_jurisdictions" in rule and jurisdiction not in rule["operator_jurisdictions"]:
        return False
    if "categories" in rule and category not in rule["categories"]:
        return False
    if "countries" in rule and country not in rule["countries"]:
        return False
    if "asns" in rule and asn not in rule["asns"]:
        return False
    address = ipaddress.ip_address(ip)
    if "networks" in rule and not any(address in ipaddress.ip_network(n) for n in rule["networks"]):
        return False
    return "domains" not in rule or (
        domain is not None and any(domain == d or domain.endswith("." + d) for d in rule["domains"])
    )


def iso(ts_us: int) -> str:
    sec, usec = divmod(ts_us, 1_000_000)
    return datetime.fromtimestamp(sec, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{usec:06d}Z"
