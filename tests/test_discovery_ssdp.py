"""SSDP announcements and RTSP server responses (issue 6): headers only, passively."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from test_discovery_dhcp import udp_payloads

from egresswatch.discovery.ssdp import parse_rtsp_response, parse_ssdp

NOTIFY = (
    b"NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nCACHE-CONTROL: max-age=1800\r\n"
    b"LOCATION: http://10.20.0.11:49152/description.xml\r\nNT: upnp:rootdevice\r\nNTS: ssdp:alive\r\n"
    b"SERVER: Linux/3.0.8, UPnP/1.0, Hikvision/1.0\r\n"
    b"USN: uuid:11223344-5566-7788-99aa-4419b6000011::upnp:rootdevice\r\n\r\n"
)


def test_notify() -> None:
    found = parse_ssdp(NOTIFY)
    assert found is not None and found.kind == "notify"
    assert found.server == "Linux/3.0.8, UPnP/1.0, Hikvision/1.0"
    assert found.target == "upnp:rootdevice"
    assert found.location == "http://10.20.0.11:49152/description.xml"
    assert found.usn == "uuid:11223344-5566-7788-99aa-4419b6000011::upnp:rootdevice"


def test_search_response_with_bare_line_feeds() -> None:
    lines = (
        "HTTP/1.1 200 OK",
        "ST: urn:schemas-upnp-org:device:Basic:1",
        "Server: Dahua Rtsp Server/2.0",
        "USN: x",
    )
    response = ("\n".join(lines) + "\n\n").encode()
    found = parse_ssdp(response)
    assert found is not None and found.kind == "response"
    assert (found.target, found.server) == ("urn:schemas-upnp-org:device:Basic:1", "Dahua Rtsp Server/2.0")


def test_searches_byebyes_and_plain_http_are_not_announcements() -> None:
    assert (
        parse_ssdp(b'M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: "ssdp:discover"\r\n\r\n')
        is None
    )
    assert parse_ssdp(NOTIFY.replace(b"ssdp:alive", b"ssdp:byebye")) is None
    assert parse_ssdp(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n<html>") is None


def test_real_dlink_camera_notifies() -> None:
    """IoT Sentinel's D-Link DCS-935L setup capture: every alive NOTIFY names the camera model."""
    parsed = [parse_ssdp(p) for p in udp_payloads("iotsentinel_dlinkcam_setup.pcap", frozenset((1900,)))]
    alive = [found for found in parsed if found is not None]
    assert alive and all(found.kind == "notify" for found in alive)
    assert {found.server for found in alive} == {"Linux,    UPnP/1.0 DCS-935L/1.0"}
    assert "hnap:NetworkCamera" in {found.target for found in alive}


def test_rtsp_response() -> None:
    found = parse_rtsp_response(
        b"RTSP/1.0 200 OK\r\nCSeq: 1\r\nServer: Rtsp Server/3.0\r\nPublic: OPTIONS\r\n\r\n"
    )
    assert found is not None and (found.status, found.server) == (200, "Rtsp Server/3.0")
    unauthorized = parse_rtsp_response(b"RTSP/1.0 401 Unauthorized\r\nCSeq: 2\r\n\r\n")
    assert unauthorized is not None and (unauthorized.status, unauthorized.server) == (401, None)
    assert parse_rtsp_response(b"OPTIONS rtsp://10.20.0.11/ RTSP/1.0\r\nCSeq: 1\r\n\r\n") is None, "a request"
    assert parse_rtsp_response(b"RTSP/1.0 OK\r\n\r\n") is None


@given(st.binary(max_size=300))
def test_garbage_never_raises(data: bytes) -> None:
    parse_ssdp(data)
    parse_ssdp(b"NOTIFY * HTTP/1.1\r\n" + data)
    parse_rtsp_response(b"RTSP/1.0 " + data)
