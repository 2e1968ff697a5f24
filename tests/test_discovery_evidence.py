"""Evidence per MAC weighed into vendor, role and confidence (issue 6)."""

from __future__ import annotations

import ipaddress
import json

import dpkt
import pytest
from test_discovery_dahua import NOTIFY, dhip
from test_discovery_dhcp import CAMERA, dhcp4
from test_discovery_sadp import REPLY
from test_discovery_ssdp import NOTIFY as SSDP_NOTIFY
from test_discovery_wsd import PROBE_MATCHES

from egresswatch.discovery.evidence import Discovery, role_in_text, vendor_in_text

OEM_MAC = bytes.fromhex("0090fb000011")  # not a Hikvision OUI
CAM_IP = ipaddress.ip_address("10.20.0.11").packed


def test_oem_camera_with_a_sadp_reply_is_hikvision() -> None:
    discovery = Discovery()
    discovery.observe_oui(OEM_MAC, "acme", 10.0, CAM_IP)
    oem_reply = REPLY.replace(b"44-19-b6-00-00-11", b"00-90-fb-00-00-11")
    found = discovery.observe_udp(OEM_MAC, CAM_IP, 37020, 37020, oem_reply, 12.0)
    assert found is not None
    device = discovery.get(OEM_MAC)
    assert device is not None
    assert device.vendor == "hikvision"
    assert device.confidence == pytest.approx(0.95 - 0.5 * 0.05)
    assert (device.model, device.role, device.hik_connect) == ("DS-2CD2143G2-I", "camera", True)
    assert device.firmware == "V5.7.3build 220112"
    assert "10.20.0.11" in device.ips and "2001:db8::11" in device.ips
    assert (device.first_seen, device.last_seen) == (10.0, 12.0)
    assert any(reason.startswith("SADP reply DS-2CD2143G2-I -> hikvision") for reason in device.reasons)
    assert any(reason.startswith("MAC OUI 00:90:fb -> acme") for reason in device.reasons)


def test_oem_camera_with_vendor_cloud_traffic_is_hikvision() -> None:
    discovery = Discovery()
    discovery.observe_oui(OEM_MAC, "acme", 1.0)
    discovery.observe_cloud(OEM_MAC, CAM_IP, "hikvision", "Hik-Connect", 2.0)
    device = discovery.get(OEM_MAC)
    assert device is not None and device.vendor == "hikvision"
    assert device.confidence == pytest.approx(0.8 - 0.5 * 0.2)


def test_independent_sources_add_up_and_repeats_do_not() -> None:
    discovery = Discovery()
    mac = bytes.fromhex("4419b6000011")
    discovery.observe_oui(mac, "hikvision", 1.0)
    discovery.observe_oui(mac, "hikvision", 2.0)
    assert discovery.get(mac).confidence == pytest.approx(0.5)  # type: ignore[union-attr]
    discovery.observe_udp(mac, CAM_IP, 50000, 1900, SSDP_NOTIFY, 3.0)
    assert discovery.get(mac).confidence == pytest.approx(1 - 0.5 * 0.4)  # type: ignore[union-attr]


def test_nvr_role_from_a_dhip_reply() -> None:
    discovery = Discovery()
    mac = bytes.fromhex("3cef8c000021")
    nvr = json.loads(json.dumps(NOTIFY))
    nvr["params"]["deviceInfo"].update(DeviceType="DHI-NVR5216-4KS2", DeviceClass="NVR")
    discovery.observe_udp(None, CAM_IP, 37810, 37810, dhip(nvr), 5.0)
    device = discovery.get(mac)
    assert device is not None
    assert (device.vendor, device.role, device.model) == ("dahua", "nvr", "DHI-NVR5216-4KS2")
    assert device.confidence == pytest.approx(0.9)


def test_onvif_name_scope_votes_for_its_maker() -> None:
    discovery = Discovery()
    mac = bytes.fromhex("4419b6000011")
    discovery.observe_udp(None, CAM_IP, 3702, 50000, PROBE_MATCHES, 1.0)
    device = discovery.get(mac)
    assert device is not None and (device.vendor, device.role) == ("hikvision", "camera")
    assert device.confidence == pytest.approx(0.8)


def test_dhcp_hostname_and_vendor_class_patterns() -> None:
    request = dhcp4(
        dpkt.dhcp.DHCPREQUEST,
        opts=((dpkt.dhcp.DHCP_OPT_HOSTNAME, b"DS-7608NI-K2"), (dpkt.dhcp.DHCP_OPT_VENDOR_ID, b"Hikvision")),
    )
    discovery = Discovery()
    found = discovery.observe_udp(CAMERA, bytes(4), 68, 67, request, 1.0)
    assert found is not None
    device = discovery.get(CAMERA)
    assert device is not None
    assert (device.vendor, device.role, device.model, device.hostname) == (
        "hikvision", "nvr", "DS-7608NI-K2", "DS-7608NI-K2",
    )  # fmt: skip
    assert device.confidence == pytest.approx(1 - 0.3 * 0.5)


def test_a_laptop_saying_nothing_about_cameras_is_not_listed() -> None:
    laptop = bytes.fromhex("0242ac110002")
    discovery = Discovery()
    request = dhcp4(dpkt.dhcp.DHCPREQUEST, opts=((dpkt.dhcp.DHCP_OPT_HOSTNAME, b"alices-laptop"),))
    discovery.observe_udp(
        laptop, bytes(4), 68, 67, request.replace(bytes.fromhex("4419b6000011"), laptop), 1.0
    )
    assert len(discovery) == 1
    assert discovery.get(laptop) is None and discovery.devices() == []


def test_rtsp_server_without_vendor_is_an_unknown_camera() -> None:
    discovery = Discovery()
    mac = bytes.fromhex("0242ac110003")
    assert discovery.observe_rtsp(mac, CAM_IP, b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n", 1.0) is not None
    device = discovery.get(mac)
    assert device is not None and (device.vendor, device.role, device.confidence) == (None, "camera", 0.0)
    assert device.name == "unknown-0242ac110003"


def test_bounded_least_recently_seen_first() -> None:
    discovery = Discovery(max_devices=2)
    macs = [bytes([2, 0, 0, 0, 0, n]) for n in range(3)]
    for n, mac in enumerate(macs):
        discovery.observe_oui(mac, "hikvision", float(n))
    assert len(discovery) == 2 and discovery.get(macs[0]) is None
    assert [device.mac for device in discovery.devices()] == [mac.hex(":") for mac in macs[1:]]
    assert discovery.drain_changes()[macs[0]] is None, "the forgotten MAC is deleted from the state"


def test_changes_restore_into_the_same_answers() -> None:
    discovery = Discovery()
    discovery.observe_oui(OEM_MAC, "acme", 10.0, CAM_IP)
    discovery.observe_udp(OEM_MAC, CAM_IP, 37020, 37020, REPLY, 12.0)
    saved = [data for data in discovery.drain_changes().values() if data is not None]
    restored = Discovery()
    restored.restore(json.loads(json.dumps(saved)))
    assert restored.devices() == discovery.devices()
    assert restored.drain_changes() == {}


def test_a_discovered_device_is_plain_data() -> None:
    # (its `devices --yaml` inventory entry is built and tested in egresswatch.inventory)
    discovery = Discovery()
    discovery.observe_udp(None, CAM_IP, 37020, 37020, REPLY, 1.0)
    (device,) = discovery.devices()
    assert (device.name, device.mac, device.role, device.vendor) == (
        "hikvision-4419b6000011", "44:19:b6:00:00:11", "camera", "hikvision",
    )  # fmt: skip
    assert json.loads(json.dumps(device.to_dict()))["model"] == "DS-2CD2143G2-I"


@pytest.mark.parametrize(
    ("text", "vendor", "role"),
    [
        ("HIKVISION", "hikvision", None),
        ("DS-2CD2143G2-I", "hikvision", "camera"),
        ("DS-9632NI-I8", "hikvision", "nvr"),
        ("IPC-HFW2431S-S-S2", "dahua", "camera"),
        ("DH-IPC-HDW1531SP", "dahua", "camera"),
        ("NVR4104-P-4KS2", "dahua", "nvr"),
        ("Linux/3.0 UPnP/1.0 Dahua/1.0", "dahua", None),
        ("EZVIZ C6N", "hikvision", None),
        ("IPC", None, "camera"),
        ("android-5f2d", None, None),
    ],
)
def test_text_patterns(text: str, vendor: str | None, role: str | None) -> None:
    assert (vendor_in_text(text), role_in_text(text)) == (vendor, role)


def test_unspecified_source_addresses_are_not_device_addresses() -> None:
    discovery = Discovery()
    discovery.observe_rtsp(CAMERA, bytes(4), b"RTSP/1.0 200 OK\r\n\r\n", 1.0)
    device = discovery.get(CAMERA)
    assert device is not None and device.ips == ()
