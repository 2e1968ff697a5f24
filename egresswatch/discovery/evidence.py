"""Evidence about devices, per MAC, weighed into a vendor, a role and a confidence with reasons.

Every observation is a vote for a vendor slug from one source with a fixed weight (`WEIGHTS`):
how often that kind of evidence names the right maker. A repeated observation from the same
source does not vote twice; its weight is the highest seen.

Combining (documented, and what `DeviceEvidence.confidence` computes):

- support(v) = 1 - prod(1 - w) over the distinct sources voting for vendor v (a noisy-OR: two
  independent sources that each say "hikvision" make it likelier than either alone);
- vendor = the v with the highest support (ties: the alphabetically first, so it is stable);
- confidence = support(vendor) - support(runner-up) * (1 - support(vendor)): a competing vendor
  only costs what the winner leaves in doubt. An OEM camera whose OUI says "acme" (0.5) but whose
  SADP reply is Hikvision's (0.95) is hikvision at 0.95 - 0.5 * 0.05 = 0.925.

Role: "nvr" when a device type, class or model says NVR/DVR/XVR, or the model is a Hikvision
DS-7/DS-8/DS-9 (recorders); "camera" for DS-2 models, Dahua IPC-/SD models, ONVIF
NetworkVideoTransmitter, an RTSP server, and otherwise whenever a camera vendor is known.
"""

from __future__ import annotations

import re
import socket
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from egresswatch.discovery.dahua import DAHUA_5050_PORT, DHIP_PORT, DahuaInfo, parse_dahua_5050, parse_dhip
from egresswatch.discovery.dhcp import DHCP_PORTS, DHCPV6_PORTS, DhcpInfo, parse_dhcp, parse_dhcpv6
from egresswatch.discovery.sadp import SADP_PORT, SadpReply, parse_sadp
from egresswatch.discovery.ssdp import (
    SSDP_PORT,
    RtspServer,
    SsdpAnnouncement,
    parse_rtsp_response,
    parse_ssdp,
)
from egresswatch.discovery.wsd import WSD_PORT, WsdAnnouncement, parse_wsd

WEIGHTS = {
    "oui": 0.5,
    "sadp": 0.95,
    "dhip": 0.9,
    "dahua-5050": 0.9,
    "wsd": 0.8,
    "ssdp": 0.6,
    "dhcp-vendor-class": 0.7,
    "hostname": 0.5,
    "cloud": 0.8,
    "rtsp": 0.4,
}
SERVES_VIDEO = 0.3
"""Role weight of "it serves video" (RTSP, ONVIF NetworkVideoTransmitter): NVRs do too, so any
model or device type outweighs it."""
MAX_REASONS = 16
MAX_IPS = 8

# Maker names as devices spell them in free text (SSDP SERVER, ONVIF name scope, DHCP fields).
_TEXT_VENDORS = tuple(
    (re.compile(pattern, re.IGNORECASE), slug)
    for pattern, slug in (
        (r"hikvision|hik-?connect|ezviz", "hikvision"),
        (r"dahua|\bimou\b", "dahua"),
        (r"uniview", "uniview"),
        (r"hanwha|wisenet|samsung techwin", "hanwha"),
        (r"\baxis\b", "axis"),
        (r"reolink", "reolink"),
        (r"vivotek", "vivotek"),
        (r"mobotix", "mobotix"),
        (r"milesight", "milesight"),
        (r"amcrest", "amcrest"),
        (r"lorex", "lorex"),
        (r"\btapo\b", "tplink"),
    )
)
# Model numbers that name their maker: Hikvision "DS-2CD2143G2-I", "DS-7608NI-K2";
# Dahua "IPC-HFW2431S-S-S2", "DH-IPC-HDW1531SP", "DHI-NVR5216-4KS2", "SD49225XA-HNR".
_MODEL_VENDORS = (
    (re.compile(r"^DS-[0-9][A-Z0-9]", re.IGNORECASE), "hikvision"),
    (re.compile(r"^(DH[A-Z]?-)?(IPC-H[A-Z]+[0-9]|NVR[0-9]|XVR[0-9]|HCVR[0-9]|SD[0-9])", re.I), "dahua"),
)
_RECORDER = re.compile(r"\b(NVR|DVR|XVR|HVR|HCVR)|^(DH[A-Z]?-)?(NVR|XVR|HCVR)|^DS-[789]", re.IGNORECASE)
_CAMERA = re.compile(r"^DS-2|^(DH[A-Z]?-)?(IPC|SD)[-0-9]|\bIPC\b|\bIP ?CAM", re.IGNORECASE)


def vendor_in_text(text: str | None) -> str | None:
    """The vendor slug a free-text field names ("Linux UPnP/1.0 Hikvision/1.0" -> "hikvision")."""
    if not text:
        return None
    for pattern, slug in _TEXT_VENDORS:
        if pattern.search(text):
            return slug
    for pattern, slug in _MODEL_VENDORS:
        if pattern.search(text.strip()):
            return slug
    return None


def role_in_text(text: str | None) -> str | None:
    """ "nvr", "camera" or None from a model, device type or class."""
    if not text:
        return None
    text = text.strip()
    if _RECORDER.search(text):
        return "nvr"
    return "camera" if _CAMERA.search(text) else None


@dataclass(frozen=True, slots=True)
class DiscoveredDevice:
    """One device as `egresswatch devices` lists it."""

    mac: str
    name: str
    vendor: str | None
    role: str
    confidence: float
    model: str | None
    serial: str | None
    firmware: str | None
    hik_connect: bool | None
    ips: tuple[str, ...]
    hostname: str | None
    vendor_class: str | None
    dhcp_fingerprint: str | None
    first_seen: float
    last_seen: float
    reasons: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass(slots=True)
class DeviceEvidence:
    """Everything seen about one MAC."""

    mac: bytes
    first_seen: float
    last_seen: float
    votes: dict[str, dict[str, float]] = field(default_factory=dict)
    """vendor slug -> source -> weight."""
    roles: dict[str, float] = field(default_factory=dict)
    """role -> weight of the strongest evidence for it."""
    reasons: list[str] = field(default_factory=list)
    ips: list[bytes] = field(default_factory=list)
    model: str | None = None
    model_weight: float = 0.0
    serial: str | None = None
    firmware: str | None = None
    hik_connect: bool | None = None
    hostname: str | None = None
    vendor_class: str | None = None
    dhcp_fingerprint: str | None = None
    name: str | None = None
    """The name it was first attributed under (see `Discovery.get`); it never changes after."""
    revision: int = 0
    """Counts changes of `votes` and `roles`, what vendor and role are judged on (not saved)."""

    # ------------------------------------------------------------------ recording
    def vote(self, vendor: str | None, source: str, reason: str) -> None:
        """One source's word on the vendor (None: the source saw a device but named no maker)."""
        weight = WEIGHTS[source]
        if vendor is not None:
            sources = self.votes.setdefault(vendor, {})
            if source not in sources or weight > sources[source]:
                sources[source] = weight
                self.revision += 1
            reason = f"{reason} -> {vendor} ({weight:g})"
        if reason not in self.reasons:
            if len(self.reasons) >= MAX_REASONS:
                del self.reasons[0]
            self.reasons.append(reason)

    def suggest_role(self, role: str | None, weight: float) -> None:
        if role is not None and (role not in self.roles or weight > self.roles[role]):
            self.roles[role] = weight
            self.revision += 1

    def set_model(self, model: str | None, source: str) -> None:
        """The model from the most reliable source that named one."""
        if model and WEIGHTS[source] >= self.model_weight:
            self.model, self.model_weight = model, WEIGHTS[source]
            self.suggest_role(role_in_text(model), WEIGHTS[source])

    def add_ip(self, ip: bytes | None) -> None:
        if not ip or not any(ip) or ip in self.ips:
            return  # 0.0.0.0 and :: are the addresses of a host that has none yet
        if len(self.ips) >= MAX_IPS:
            del self.ips[0]
        self.ips.append(ip)

    # ------------------------------------------------------------------ judging
    def support(self, vendor: str) -> float:
        doubt = 1.0
        for weight in self.votes.get(vendor, {}).values():
            doubt *= 1.0 - weight
        return 1.0 - doubt

    @property
    def vendor(self) -> str | None:
        if not self.votes:
            return None
        return min(self.votes, key=lambda slug: (-self.support(slug), slug))

    @property
    def confidence(self) -> float:
        ranked = sorted((self.support(slug) for slug in self.votes), reverse=True)
        if not ranked:
            return 0.0
        best, second = ranked[0], ranked[1] if len(ranked) > 1 else 0.0
        return round(best - second * (1.0 - best), 4)

    @property
    def role(self) -> str:
        if self.roles:
            return min(self.roles, key=lambda role: (-self.roles[role], role))
        return "camera" if self.vendor is not None else "other"

    @property
    def identified(self) -> bool:
        """A device worth listing: a vendor, or evidence that it serves video."""
        return bool(self.votes or self.roles)

    def as_discovered(self) -> DiscoveredDevice:
        vendor = self.vendor
        return DiscoveredDevice(
            mac=self.mac.hex(":"),
            name=self.name or f"{vendor or 'unknown'}-{self.mac.hex()}",
            vendor=vendor,
            role=self.role,
            confidence=self.confidence,
            model=self.model,
            serial=self.serial,
            firmware=self.firmware,
            hik_connect=self.hik_connect,
            ips=tuple(_ip_text(ip) for ip in self.ips),
            hostname=self.hostname,
            vendor_class=self.vendor_class,
            dhcp_fingerprint=self.dhcp_fingerprint,
            first_seen=self.first_seen,
            last_seen=self.last_seen,
            reasons=tuple(self.reasons),
        )

    # ------------------------------------------------------------------ state
    def to_data(self) -> dict[str, Any]:
        """Plain JSON-able data for the state file."""
        data = {name: getattr(self, name) for name in self.__dataclass_fields__ if name != "revision"}
        data["mac"] = self.mac.hex()
        data["ips"] = [ip.hex() for ip in self.ips]
        return data

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> DeviceEvidence:
        values = dict(data)
        values["mac"] = bytes.fromhex(values["mac"])
        values["ips"] = [bytes.fromhex(ip) for ip in values.get("ips", ())]
        return cls(**{name: values[name] for name in cls.__dataclass_fields__ if name in values})


def _ip_text(ip: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET if len(ip) == 4 else socket.AF_INET6, ip)


def record_sadp(evidence: DeviceEvidence, reply: SadpReply) -> None:
    """SADP is Hikvision's own protocol: whoever answers runs Hikvision firmware, whatever its OUI."""
    evidence.vote("hikvision", "sadp", f"SADP reply {reply.model or ''}".rstrip())
    evidence.set_model(reply.model, "sadp")
    evidence.suggest_role(role_in_text(reply.device_type), WEIGHTS["sadp"])
    evidence.serial = reply.serial or evidence.serial
    evidence.firmware = reply.firmware or evidence.firmware
    if reply.hik_connect is not None:
        evidence.hik_connect = reply.hik_connect
    evidence.add_ip(reply.ipv4)
    evidence.add_ip(reply.ipv6)


def record_dahua(evidence: DeviceEvidence, info: DahuaInfo) -> None:
    """Dahua's discovery protocols are Dahua firmware's; an OEM brand shows in DHIP's Vendor field."""
    brand = vendor_in_text(info.vendor)
    label = "DHIP reply" if info.protocol == "dhip" else "Dahua UDP 5050 reply"
    evidence.vote("dahua", info.protocol, f"{label} {info.model or ''}".rstrip())
    if brand is not None and brand != "dahua":
        evidence.vote(brand, info.protocol, f"{label} vendor field {info.vendor}")
    evidence.set_model(info.model, info.protocol)
    evidence.suggest_role(role_in_text(info.device_class), WEIGHTS[info.protocol])
    evidence.serial = info.serial or evidence.serial
    evidence.firmware = info.firmware or evidence.firmware
    evidence.add_ip(info.ipv4)
    evidence.add_ip(info.ipv6)


def record_wsd(evidence: DeviceEvidence, announcement: WsdAnnouncement) -> None:
    named = announcement.name or announcement.hardware
    vendor = vendor_in_text(announcement.name) or vendor_in_text(announcement.hardware)
    evidence.vote(vendor, "wsd", f"WS-Discovery {announcement.kind} {named or ''}".rstrip())
    evidence.set_model(announcement.hardware, "wsd")
    if announcement.is_onvif_video:
        evidence.suggest_role("camera", SERVES_VIDEO)


def record_ssdp(evidence: DeviceEvidence, announcement: SsdpAnnouncement) -> None:
    vendor = vendor_in_text(announcement.server) or vendor_in_text(announcement.usn)
    camera = any("camera" in (text or "").lower() for text in (announcement.target, announcement.usn))
    if vendor is not None or camera:
        evidence.vote(vendor, "ssdp", f"SSDP server {announcement.server or announcement.usn}")
    if camera:
        evidence.suggest_role("camera", SERVES_VIDEO)  # e.g. NT "hnap:NetworkCamera"


def record_rtsp(evidence: DeviceEvidence, server: RtspServer) -> None:
    evidence.vote(vendor_in_text(server.server), "rtsp", f"RTSP server {server.server or ''}".rstrip())
    evidence.suggest_role("camera", SERVES_VIDEO)


def record_dhcp(evidence: DeviceEvidence, info: DhcpInfo) -> None:
    """The client's own DHCP fields: vendor class, hostname and its request-list fingerprint."""
    for address in info.leased:
        evidence.add_ip(address)
    if not info.from_client:
        return
    evidence.hostname = info.hostname or evidence.hostname
    evidence.vendor_class = info.vendor_class or evidence.vendor_class
    evidence.dhcp_fingerprint = info.fingerprint or evidence.dhcp_fingerprint
    if info.vendor_class:
        vendor = vendor_in_text(info.vendor_class)
        if vendor is not None:
            evidence.vote(vendor, "dhcp-vendor-class", f"DHCP vendor class {info.vendor_class}")
    if info.hostname:
        vendor = vendor_in_text(info.hostname)
        if vendor is not None:
            evidence.vote(vendor, "hostname", f"DHCP hostname {info.hostname}")
        evidence.suggest_role(role_in_text(info.hostname), WEIGHTS["hostname"])
        if vendor is not None:
            evidence.set_model(_model_in_hostname(info.hostname), "hostname")


def _model_in_hostname(hostname: str) -> str | None:
    """Hostnames like "DS-2CD2143G2-I" or "IPC-HFW2431S" are the model itself."""
    return hostname if any(pattern.search(hostname) for pattern, _ in _MODEL_VENDORS) else None


Announcement = SadpReply | DahuaInfo | WsdAnnouncement | SsdpAnnouncement | DhcpInfo
_UDP_PARSERS = (
    (frozenset((SADP_PORT,)), parse_sadp),
    (frozenset((DHIP_PORT,)), parse_dhip),
    (frozenset((DAHUA_5050_PORT,)), parse_dahua_5050),
    (frozenset((WSD_PORT,)), parse_wsd),
    (frozenset((SSDP_PORT,)), parse_ssdp),
    (DHCP_PORTS, parse_dhcp),
    (DHCPV6_PORTS, parse_dhcpv6),
)
_RECORDERS: dict[type, Callable[[DeviceEvidence, Any], None]] = {
    SadpReply: record_sadp,
    DahuaInfo: record_dahua,
    WsdAnnouncement: record_wsd,
    SsdpAnnouncement: record_ssdp,
}
DISCOVERY_UDP_PORTS = frozenset().union(*(ports for ports, _ in _UDP_PARSERS))
"""UDP ports whose payloads `Discovery.observe_udp` reads (either end of the datagram)."""
DEFAULT_MAX_DEVICES = 16384


class Discovery:
    """Evidence per MAC for every local host that said something, at most `max_devices` of them.

    The least recently seen MAC is forgotten first, so a flood of spoofed announcements cannot
    grow memory. `devices()` lists those identified as cameras, NVRs or a known vendor's devices.
    """

    def __init__(self, max_devices: int = DEFAULT_MAX_DEVICES) -> None:
        if max_devices < 1:
            raise ValueError("max_devices must be at least 1")
        self._max = max_devices
        self._by_mac: OrderedDict[bytes, DeviceEvidence] = OrderedDict()
        self._dirty: set[bytes] = set()
        self.revision = 0
        """Changes whenever the name, vendor or role `get` gives for some MAC may change: what
        attribution (devices.DeviceDirectory) caches its answers on."""

    def __len__(self) -> int:
        return len(self._by_mac)

    # ------------------------------------------------------------------ observing
    def observe_udp(
        self, mac: bytes | None, ip: bytes, sport: int, dport: int, payload: bytes, ts: float
    ) -> Announcement | None:
        """Parse a local UDP payload on a discovery port and record it; returns what was parsed.

        `mac`/`ip` are the frame's source. The pipeline applies a returned `DhcpInfo`'s leases
        to its binding table.
        """
        for ports, parse in _UDP_PARSERS:
            if sport in ports or dport in ports:
                found = parse(payload)
                if found is not None:
                    self._record(found, mac, ip, ts)
                return found
        return None

    def observe_rtsp(self, mac: bytes | None, ip: bytes, payload: bytes, ts: float) -> RtspServer | None:
        """A TCP payload the host sent from its RTSP port: an `RTSP/1.0` response makes it a video server."""
        server = parse_rtsp_response(payload)
        if server is not None and mac is not None:
            self._observe(mac, ts, ip, record_rtsp, server)
        return server

    def observe_oui(self, mac: bytes, vendor: str | None, ts: float, ip: bytes | None = None) -> None:
        """The vendor the MAC's OUI belongs to (oui.vendor_of), when it is one we know."""
        if vendor is not None:
            self._observe(mac, ts, ip, DeviceEvidence.vote, vendor, "oui", f"MAC OUI {mac[:3].hex(':')}")

    def observe_cloud(self, mac: bytes, ip: bytes | None, vendor: str, service: str, ts: float) -> None:
        """The host talks to a vendor's cloud service (catalogue match)."""
        self._observe(mac, ts, ip, DeviceEvidence.vote, vendor, "cloud", f"cloud service {service}")

    def _record(self, found: Announcement, mac: bytes | None, ip: bytes, ts: float) -> None:
        if isinstance(found, DhcpInfo):
            if found.mac is not None:
                self._observe(found.mac, ts, None, record_dhcp, found)
            return
        own_mac = found.mac if isinstance(found, SadpReply | DahuaInfo | WsdAnnouncement) else None
        device_mac = own_mac or mac
        if device_mac is None:
            return
        self._observe(device_mac, ts, ip, _RECORDERS[type(found)], found)

    def _observe(
        self, mac: bytes, ts: float, ip: bytes | None, record: Callable[..., None], *details: Any
    ) -> None:
        """`record(evidence, *details)` on the MAC's evidence; a vote or role it changes is a new revision."""
        evidence = self._evidence(mac, ts, ip)
        before = evidence.revision
        record(evidence, *details)
        if evidence.revision != before:
            self.revision += 1

    def _evidence(self, mac: bytes, ts: float, ip: bytes | None) -> DeviceEvidence:
        evidence = self._by_mac.get(mac)
        if evidence is None:
            if len(self._by_mac) >= self._max:
                self._dirty.add(self._by_mac.popitem(last=False)[0])
                self.revision += 1  # a forgotten MAC is no longer identified
            evidence = self._by_mac[mac] = DeviceEvidence(mac, ts, ts)
        else:
            self._by_mac.move_to_end(mac)
            evidence.first_seen = min(evidence.first_seen, ts)
            evidence.last_seen = max(evidence.last_seen, ts)
        evidence.add_ip(ip)
        self._dirty.add(mac)
        return evidence

    # ------------------------------------------------------------------ answers
    def get(self, mac: bytes) -> DiscoveredDevice | None:
        """What is known about a MAC, if it is identified (for attribution of unlisted hosts).

        The first answer pins the device's name ("<vendor then>-<mac>"): flows, alerts, metrics
        and baselines keep one name even when later evidence changes the vendor (a camera first
        named by its OUI whose SADP reply arrives later stays under its first name, with the
        new vendor).
        """
        evidence = self._by_mac.get(mac)
        if evidence is None or not evidence.identified:
            return None
        if evidence.name is None:
            evidence.name = f"{evidence.vendor or 'unknown'}-{mac.hex()}"
            self._dirty.add(mac)
        return evidence.as_discovered()

    def devices(self) -> list[DiscoveredDevice]:
        """Identified devices, first seen first."""
        found = [evidence.as_discovered() for evidence in self._by_mac.values() if evidence.identified]
        return sorted(found, key=lambda device: (device.first_seen, device.mac))

    # ------------------------------------------------------------------ state
    def drain_changes(self) -> dict[bytes, dict[str, Any] | None]:
        """MACs changed since the last call -> their evidence as plain data (None: forgotten)."""
        changes = {}
        for mac in self._dirty:
            evidence = self._by_mac.get(mac)
            changes[mac] = evidence.to_data() if evidence is not None else None
        self._dirty.clear()
        return changes

    def restore(self, rows: list[dict[str, Any]]) -> None:
        """Load evidence saved earlier (`DeviceEvidence.to_data` dicts); it counts as saved."""
        for data in sorted(rows, key=lambda row: row.get("last_seen", 0.0)):
            evidence = DeviceEvidence.from_data(data)
            if len(self._by_mac) >= self._max:
                self._by_mac.popitem(last=False)
            self._by_mac[evidence.mac] = evidence
        self.revision += 1
