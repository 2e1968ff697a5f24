"""Hikvision SADP (Search Active Devices Protocol) v2 replies: XML over UDP 37020.

The SADP tool multicasts `<Probe><Uuid>..</Uuid><Types>inquiry</Types></Probe>` to
239.255.255.250:37020; every Hikvision device (and every OEM device running Hikvision firmware)
answers with a `<ProbeMatch>` naming itself, e.g.::

    <ProbeMatch><Uuid>..</Uuid><Types>inquiry</Types><DeviceType>44322</DeviceType>
    <DeviceDescription>DS-7804HQH-K1</DeviceDescription><DeviceSN>DS-7804HQH-K1042019..</DeviceSN>
    <MAC>68-6d-bc-ee-f8-f0</MAC><IPv4Address>192.168.1.227</IPv4Address>
    <SoftwareVersion>V3.5.38build 191215</SoftwareVersion><Activated>true</Activated>
    <SupportHCPlatform>true</SupportHCPlatform><HCPlatformEnable>false</HCPlatformEnable>..

`DeviceDescription` is the model; `HCPlatformEnable` says whether Hik-Connect (the vendor cloud
P2P service, EZVIZ's sibling) is switched on, `SupportHCPlatform` only that it could be.
Devices also multicast unsolicited `<Hello>` messages of the same shape on boot or change.
"""

from __future__ import annotations

from dataclasses import dataclass

from egresswatch.discovery import clean, find_text, local_name, parse_address, parse_mac, safe_xml

SADP_PORT = 37020
_ANSWERS = ("ProbeMatch", "Hello")


@dataclass(frozen=True, slots=True)
class SadpReply:
    """What a Hikvision device says about itself in an SADP reply."""

    mac: bytes | None
    """From `<MAC>`: the device's own MAC (it can differ from the frame's source behind a bridge)."""
    ipv4: bytes | None
    ipv6: bytes | None
    model: str | None
    """`<DeviceDescription>`, e.g. "DS-2CD2143G2-I"."""
    device_type: str | None
    """`<DeviceType>`: a numeric class code on most firmware, a name ("NVR") on some."""
    serial: str | None
    firmware: str | None
    """`<SoftwareVersion>`, e.g. "V5.7.3build 220112"."""
    hik_connect: bool | None
    """`<HCPlatformEnable>`: Hik-Connect switched on (None when the reply does not say)."""
    activated: bool | None
    oem: str | None
    """`<OEMInfo>` when it names an OEM brand ("N/A" on Hikvision's own)."""


def parse_sadp(payload: bytes) -> SadpReply | None:
    """An SADP ProbeMatch/Hello as a `SadpReply`, or None for probes and anything else."""
    if b"<" not in payload[:64]:
        return None
    root = safe_xml(payload)
    if root is None or local_name(root.tag) not in _ANSWERS:
        return None
    reply = SadpReply(
        mac=parse_mac(find_text(root, "MAC")),
        ipv4=parse_address(find_text(root, "IPv4Address"), 4),
        ipv6=parse_address(find_text(root, "IPv6Address"), 6),
        model=clean(find_text(root, "DeviceDescription")),
        device_type=clean(find_text(root, "DeviceType")),
        serial=clean(find_text(root, "DeviceSN")),
        firmware=clean(find_text(root, "SoftwareVersion")),
        hik_connect=_flag(find_text(root, "HCPlatformEnable")),
        activated=_flag(find_text(root, "Activated")),
        oem=_oem(clean(find_text(root, "OEMInfo"))),
    )
    if reply.mac is None and reply.serial is None and reply.model is None:
        return None  # an empty shell says nothing about a device
    return reply


def _flag(text: str | None) -> bool | None:
    if text is None:
        return None
    lowered = text.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    return None


def _oem(text: str | None) -> str | None:
    return None if text is None or text.upper() in ("N/A", "NA", "NONE") else text
