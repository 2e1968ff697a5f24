"""Dahua device discovery replies: DHIP on UDP 37810 and the older binary protocol on UDP 5050.

DHIP (the ConfigTool / SmartPSS search, multicast 239.255.255.251:37810): a 32-byte header, then
JSON. Header: little-endian uint32 header size (0x20), the magic "DHIP", two reserved words, the
body length as a little-endian uint32 at offset 16 and again at 24. A device answers the search
``{"method":"DHDiscover.search",..}`` with ``{"method":"client.notifyDevInfo","mac":..,"params":
{"deviceInfo":{"DeviceType":"IPC-HFW2431S-S-S2","DeviceClass":"IPC","SerialNo":..,"Version":..,
"Vendor":..,"IPv4Address":{"IPAddress":..},"IPv6Address":{"IPAddress":..}}}}``.

UDP 5050 (older firmware): a fixed 0x78-byte first section starting with 0xB3 (0xA3 is the
search), the length of a second section at byte 2, the length of a third at 0x14 (LE uint16), a
16-byte NUL-padded device type at 0x28 and the IPv4 address at 0x38 in network order. The second
section is the MAC as 17 characters, optionally followed by the model; the third holds
"Key:Value" lines (SerialNo, IPv6Addr, Version).
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any

from egresswatch.discovery import clean, parse_address, parse_mac

DHIP_PORT = 37810
DAHUA_5050_PORT = 5050
_DHIP_HEADER = struct.Struct("<I4sIIIIII")
_DHIP_MAGIC = b"DHIP"
_MAX_BODY = 65536
_ANSWER_MAGIC = 0xB3
_SECTION1 = 0x78
_MAC_TEXT = 17


@dataclass(frozen=True, slots=True)
class DahuaInfo:
    """What a Dahua (or Dahua-OEM) device says about itself in a discovery reply."""

    protocol: str
    """"dhip" or "dahua-5050"."""
    mac: bytes | None
    ipv4: bytes | None
    ipv6: bytes | None
    model: str | None
    """DeviceType, e.g. "IPC-HDW2431T-AS-S2" or "DHI-NVR5216-4KS2"."""
    device_class: str | None
    """DeviceClass ("IPC", "NVR", "DVR", "VTO"...), DHIP only."""
    serial: str | None
    firmware: str | None
    vendor: str | None
    """DHIP "Vendor": the brand the firmware was built for ("Dahua", or an OEM's name)."""


def parse_dhip(payload: bytes) -> DahuaInfo | None:
    """A DHIP client.notifyDevInfo reply, or None (searches, other methods, garbage)."""
    if len(payload) < _DHIP_HEADER.size:
        return None
    size, magic, _r1, _r2, length, _r3, _length2, _r4 = _DHIP_HEADER.unpack_from(payload)
    if size != _DHIP_HEADER.size or magic != _DHIP_MAGIC or length > _MAX_BODY:
        return None
    body = payload[_DHIP_HEADER.size : _DHIP_HEADER.size + length].rstrip(b"\0\r\n ")
    try:
        message = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(message, dict) or message.get("method") != "client.notifyDevInfo":
        return None
    params = message.get("params")
    info = params.get("deviceInfo") if isinstance(params, dict) else None
    if not isinstance(info, dict):
        return None
    return DahuaInfo(
        protocol="dhip",
        mac=parse_mac(_text(message.get("mac"))),
        ipv4=parse_address(_text(_field(info.get("IPv4Address"), "IPAddress")), 4),
        ipv6=parse_address(_text(_field(info.get("IPv6Address"), "IPAddress")), 6),
        model=clean(_text(info.get("DeviceType"))),
        device_class=clean(_text(info.get("DeviceClass"))),
        serial=clean(_text(info.get("SerialNo"))),
        firmware=clean(_text(info.get("Version"))),
        vendor=clean(_text(info.get("Vendor"))),
    )


def parse_dahua_5050(payload: bytes) -> DahuaInfo | None:
    """A reply of the UDP 5050 protocol, or None."""
    if len(payload) < _SECTION1 or payload[0] != _ANSWER_MAGIC:
        return None
    section2 = payload[2]
    section3 = int.from_bytes(payload[0x14:0x16], "little")
    if _SECTION1 + section2 + section3 != len(payload):
        return None
    model = _ascii(payload[0x28:0x38])
    ipv4 = payload[0x38:0x3C]
    second = payload[_SECTION1 : _SECTION1 + section2]
    mac = parse_mac(_ascii(second[:_MAC_TEXT]))
    if len(second) > _MAC_TEXT:
        model = _ascii(second[_MAC_TEXT:]) or model
    values = _key_values(payload[_SECTION1 + section2 :])
    ipv6 = values.get("IPv6Addr", "").split(";", 1)[0]
    return DahuaInfo(
        protocol="dahua-5050",
        mac=mac,
        ipv4=None if ipv4 == bytes(4) else ipv4,
        ipv6=parse_address(ipv6 or None, 6),
        model=clean(model),
        device_class=None,
        serial=clean(values.get("SerialNo")),
        firmware=clean(values.get("Version")),
        vendor=None,
    )


def _field(value: Any, key: str) -> Any:
    return value.get(key) if isinstance(value, dict) else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _ascii(raw: bytes) -> str | None:
    text = raw.split(b"\0", 1)[0].decode("ascii", "replace").strip()
    return text or None


def _key_values(raw: bytes) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in raw.decode("utf-8", "replace").splitlines():
        key, sep, value = line.partition(":")
        if sep:
            values[key.strip()] = value.strip()
    return values
