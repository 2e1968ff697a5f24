"""Hikvision SADP replies (issue 6): model, serial, firmware, Hik-Connect, addresses."""

from __future__ import annotations

import ipaddress

from hypothesis import given
from hypothesis import strategies as st

from egresswatch.discovery.sadp import parse_sadp

# Shape of a real SADP v2 reply (field set as SADP answers from an NVR), values made up.
REPLY = b"""<?xml version="1.0" encoding="UTF-8" ?>
<ProbeMatch>
<Uuid>8282F1DB-2FA6-4709-B261-3C6B6A48CA17</Uuid>
<Types>inquiry</Types>
<DeviceType>139265</DeviceType>
<DeviceDescription>DS-2CD2143G2-I</DeviceDescription>
<DeviceSN>DS-2CD2143G2-I20220101AAWRJ00000001</DeviceSN>
<CommandPort>8000</CommandPort>
<HttpPort>80</HttpPort>
<MAC>44-19-b6-00-00-11</MAC>
<IPv4Address>10.20.0.11</IPv4Address>
<IPv4SubnetMask>255.255.255.0</IPv4SubnetMask>
<IPv6Address>2001:db8::11</IPv6Address>
<DHCP>true</DHCP>
<SoftwareVersion>V5.7.3build 220112</SoftwareVersion>
<DSPVersion>V7.3, build 220112</DSPVersion>
<OEMInfo>N/A</OEMInfo>
<Activated>true</Activated>
<SupportHCPlatform>true</SupportHCPlatform>
<HCPlatformEnable>true</HCPlatformEnable>
</ProbeMatch>
"""


def test_reply_fields() -> None:
    reply = parse_sadp(REPLY)
    assert reply is not None
    assert reply.mac == bytes.fromhex("4419b6000011")
    assert reply.ipv4 == ipaddress.ip_address("10.20.0.11").packed
    assert reply.ipv6 == ipaddress.ip_address("2001:db8::11").packed
    assert (reply.model, reply.device_type) == ("DS-2CD2143G2-I", "139265")
    assert reply.serial == "DS-2CD2143G2-I20220101AAWRJ00000001"
    assert reply.firmware == "V5.7.3build 220112"
    assert (reply.hik_connect, reply.activated, reply.oem) == (True, True, None)


def test_hik_connect_off_and_unknown() -> None:
    off = parse_sadp(REPLY.replace(b"<HCPlatformEnable>true", b"<HCPlatformEnable>false"))
    assert off is not None and off.hik_connect is False
    unknown = parse_sadp(REPLY.replace(b"<HCPlatformEnable>true</HCPlatformEnable>", b""))
    assert unknown is not None and unknown.hik_connect is None, "SupportHCPlatform alone is no answer"


def test_oem_brand_is_kept() -> None:
    reply = parse_sadp(REPLY.replace(b"<OEMInfo>N/A", b"<OEMInfo>ACME Vision"))
    assert reply is not None and reply.oem == "ACME Vision"


def test_probes_and_other_xml_are_not_replies() -> None:
    probe = b'<?xml version="1.0" encoding="utf-8"?><Probe><Uuid>1</Uuid><Types>inquiry</Types></Probe>'
    assert parse_sadp(probe) is None
    assert parse_sadp(b"<ProbeMatch><Uuid>1</Uuid></ProbeMatch>") is None, "names no device"
    assert parse_sadp(REPLY[:200]) is None, "truncated XML"


def test_entity_declarations_are_refused() -> None:
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE p [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]>'
        + REPLY.split(b"?>", 1)[1]
    )
    assert parse_sadp(bomb) is None
    assert parse_sadp(bomb.decode().encode("utf-16")) is None, "UTF-16 does not hide the DOCTYPE"


def test_bad_addresses_are_dropped_not_fatal() -> None:
    reply = parse_sadp(REPLY.replace(b"10.20.0.11", b"10.20.0.999").replace(b"44-19-b6", b"zz-19-b6"))
    assert reply is not None and reply.ipv4 is None and reply.mac is None and reply.model == "DS-2CD2143G2-I"


@given(st.binary(max_size=300))
def test_garbage_never_raises(data: bytes) -> None:
    parse_sadp(data)
    parse_sadp(b"<ProbeMatch>" + data + b"</ProbeMatch>")
