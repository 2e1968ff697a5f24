"""ONVIF WS-Discovery announcements (issue 6): types, name/hardware/MAC scopes, XAddrs."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from test_discovery_dhcp import udp_payloads

from egresswatch.discovery.wsd import parse_wsd

PROBE_MATCHES = b"""<?xml version="1.0" encoding="UTF-8"?>
<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope"
 xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/08/addressing"
 xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery"
 xmlns:dn="http://www.onvif.org/ver10/network/wsdl" xmlns:tds="http://www.onvif.org/ver10/device/wsdl">
<env:Header><wsa:Action>http://schemas.xmlsoap.org/ws/2005/04/discovery/ProbeMatches</wsa:Action></env:Header>
<env:Body><d:ProbeMatches><d:ProbeMatch>
<wsa:EndpointReference><wsa:Address>urn:uuid:11223344-5566-7788-99aa-4419b6000011</wsa:Address></wsa:EndpointReference>
<d:Types>dn:NetworkVideoTransmitter tds:Device</d:Types>
<d:Scopes>onvif://www.onvif.org/type/video_encoder onvif://www.onvif.org/Profile/Streaming
 onvif://www.onvif.org/MAC/44:19:b6:00:00:11 onvif://www.onvif.org/hardware/DS-2CD2143G2-I
 onvif://www.onvif.org/name/HIKVISION%20DS-2CD2143G2-I onvif://www.onvif.org/location/city/hangzhou</d:Scopes>
<d:XAddrs>http://10.20.0.11/onvif/device_service http://[2001:db8::11]/onvif/device_service</d:XAddrs>
<d:MetadataVersion>10</d:MetadataVersion>
</d:ProbeMatch></d:ProbeMatches></env:Body></env:Envelope>
"""


def test_probe_match() -> None:
    found = parse_wsd(PROBE_MATCHES)
    assert found is not None and found.kind == "ProbeMatch"
    assert found.types == ("NetworkVideoTransmitter", "Device") and found.is_onvif_video
    assert (found.name, found.hardware) == ("HIKVISION DS-2CD2143G2-I", "DS-2CD2143G2-I")
    assert found.mac == bytes.fromhex("4419b6000011")
    assert found.xaddrs == (
        "http://10.20.0.11/onvif/device_service",
        "http://[2001:db8::11]/onvif/device_service",
    )
    assert found.endpoint == "urn:uuid:11223344-5566-7788-99aa-4419b6000011"


def test_probes_are_not_announcements() -> None:
    probe = PROBE_MATCHES.split(b"<env:Body>")[0] + (
        b"<env:Body><d:Probe><d:Types>dn:NetworkVideoTransmitter</d:Types></d:Probe></env:Body></env:Envelope>"
    )
    assert parse_wsd(probe) is None
    assert parse_wsd(PROBE_MATCHES[:300]) is None


def test_real_windows_hello_messages_parse_without_onvif_scopes() -> None:
    """ndpi's capture: a Windows host's WSD Hello/Bye over IPv4 and IPv6 multicast."""
    parsed = [
        parse_wsd(payload) for payload in udp_payloads("ndpi_gnutella_wsdiscovery.pcap", frozenset((3702,)))
    ]
    hellos = [found for found in parsed if found is not None]
    assert hellos and all(found.kind == "Hello" for found in hellos)
    assert all(found.types == ("Device", "Computer") and not found.is_onvif_video for found in hellos)
    assert all(found.name is None and found.hardware is None for found in hellos)


@given(st.binary(max_size=300))
def test_garbage_never_raises(data: bytes) -> None:
    parse_wsd(data)
    parse_wsd(PROBE_MATCHES.replace(b"DS-2CD2143G2-I", data.hex().encode()))
