"""Dahua discovery replies (issue 6): DHIP on UDP 37810 and the UDP 5050 protocol."""

from __future__ import annotations

import ipaddress
import json
import struct

from hypothesis import given
from hypothesis import strategies as st

from egresswatch.discovery.dahua import parse_dahua_5050, parse_dhip

MAC_TEXT = "3c:ef:8c:00:00:21"
MAC = bytes.fromhex("3cef8c000021")


def dhip(body: dict | bytes, trailer: bytes = b"\n") -> bytes:
    data = (body if isinstance(body, bytes) else json.dumps(body).encode()) + trailer
    return struct.pack("<I4sIIIIII", 0x20, b"DHIP", 0, 0, len(data), 0, len(data), 0) + data


NOTIFY = {
    "mac": MAC_TEXT,
    "method": "client.notifyDevInfo",
    "params": {
        "deviceInfo": {
            "DeviceType": "IPC-HFW2431S-S-S2",
            "DeviceClass": "IPC",
            "SerialNo": "6G0AB12PAZ00001",
            "Version": "2.800.0000000.25.R",
            "Vendor": "Dahua",
            "IPv4Address": {"IPAddress": "10.20.0.21", "DefaultGateway": "10.20.0.1"},
            "IPv6Address": {"IPAddress": "2001:db8::21/64"},
        }
    },
}


def test_dhip_notify_dev_info() -> None:
    info = parse_dhip(dhip(NOTIFY))
    assert info is not None and info.protocol == "dhip"
    assert info.mac == MAC
    assert info.ipv4 == ipaddress.ip_address("10.20.0.21").packed
    assert info.ipv6 == ipaddress.ip_address("2001:db8::21").packed
    assert (info.model, info.device_class, info.vendor) == ("IPC-HFW2431S-S-S2", "IPC", "Dahua")
    assert (info.serial, info.firmware) == ("6G0AB12PAZ00001", "2.800.0000000.25.R")


def test_dhip_search_and_odd_bodies_are_not_replies() -> None:
    search = {"method": "DHDiscover.search", "params": {"mac": "", "uni": 0}}
    assert parse_dhip(dhip(search)) is None
    assert parse_dhip(dhip(b"[1, 2, 3]")) is None
    assert parse_dhip(dhip({"method": "client.notifyDevInfo", "params": []})) is None
    assert parse_dhip(dhip(NOTIFY)[:40]) is None, "truncated JSON"
    assert parse_dhip(b"DHIX" + dhip(NOTIFY)[4:]) is None, "header size is not 32"
    assert parse_dhip(dhip(NOTIFY).replace(b"DHIP", b"DHIX", 1)) is None


def test_dhip_wrong_types_inside_are_dropped() -> None:
    odd = json.loads(json.dumps(NOTIFY))
    odd["params"]["deviceInfo"]["IPv4Address"] = "10.20.0.21"
    odd["params"]["deviceInfo"]["SerialNo"] = 12345
    info = parse_dhip(dhip(odd))
    assert (
        info is not None and info.ipv4 is None and info.serial is None and info.model == "IPC-HFW2431S-S-S2"
    )


def reply_5050(model: bytes = b"IPC-HDW1531S", extra_model: bytes = b"", lines: bytes = b"") -> bytes:
    section2 = MAC_TEXT.encode() + extra_model
    first = bytearray(0x78)
    first[0] = 0xB3
    first[2] = len(section2)
    first[4] = 0x58
    first[0x10] = 2
    first[0x14:0x16] = len(lines).to_bytes(2, "little")
    first[0x28 : 0x28 + len(model)] = model
    first[0x38:0x3C] = ipaddress.ip_address("10.20.0.22").packed
    return bytes(first) + section2 + lines


def test_5050_reply() -> None:
    info = parse_dahua_5050(
        reply_5050(lines=b"SerialNo:4J01234PAG00002\r\nIPv6Addr:2001:db8::22/64;fe80::1\r\n")
    )
    assert info is not None and info.protocol == "dahua-5050"
    assert info.mac == MAC and info.model == "IPC-HDW1531S"
    assert info.ipv4 == ipaddress.ip_address("10.20.0.22").packed
    assert info.ipv6 == ipaddress.ip_address("2001:db8::22").packed
    assert info.serial == "4J01234PAG00002"


def test_5050_model_in_second_section_wins() -> None:
    info = parse_dahua_5050(reply_5050(extra_model=b"NVR4104-P-4KS2"))
    assert info is not None and info.model == "NVR4104-P-4KS2"


def test_5050_search_and_bad_lengths() -> None:
    search = bytearray(reply_5050())
    search[0] = 0xA3
    assert parse_dahua_5050(bytes(search)) is None
    assert parse_dahua_5050(reply_5050() + b"x") is None, "sections do not add up"
    assert parse_dahua_5050(reply_5050()[:0x70]) is None


@given(st.binary(max_size=300))
def test_garbage_never_raises(data: bytes) -> None:
    parse_dhip(data)
    parse_dhip(dhip(data))
    parse_dahua_5050(data)
    parse_dahua_5050(reply_5050()[:0x78] + data)
