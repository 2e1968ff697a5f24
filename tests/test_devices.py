"""Devices: OUI vendor slugs, inventory matching order, discovery of unlisted local cameras."""

from __future__ import annotations

import importlib.resources
import ipaddress

import dpkt
import pytest
import yaml
from test_discovery_dhcp import CAMERA as DHCP_CLIENT
from test_discovery_dhcp import dhcp4

from egresswatch.bindings import BindingTable
from egresswatch.config import DEFAULT_LOCAL_NETWORKS, DeviceSpec
from egresswatch.devices import DeviceDirectory
from egresswatch.discovery.evidence import Discovery
from egresswatch.localnet import LocalNetworks
from egresswatch.model import Device
from egresswatch.oui import CAMERA_VENDORS, ouis_for, vendor_of, vendor_slug

LOCAL = LocalNetworks([ipaddress.ip_network(n) for n in DEFAULT_LOCAL_NETWORKS])


def mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


def ip(text: str) -> bytes:
    return ipaddress.ip_address(text).packed


def spec(
    name: str,
    *,
    mac: str | None = None,
    ip: str | None = None,
    cidr: str | None = None,
    group: str = "cameras",
    vendor: str | None = None,
    role: str = "camera",
) -> DeviceSpec:
    return DeviceSpec(name=name, mac=mac, ip=ip, cidr=cidr, group=group, vendor=vendor, role=role)


def registry_names() -> set[str]:
    """Every company name in the OUI file pymanuf ships (the data our patterns must fit)."""
    text = importlib.resources.files("pymanuf").joinpath("manuf.txt").read_text("utf-8")
    return {line.split("\t")[-1] for line in text.splitlines() if line and not line.startswith("#")}


@pytest.mark.parametrize(
    ("address", "slug"),
    [
        ("44:19:b6:00:00:42", "hikvision"),  # Hangzhou Hikvision
        ("0c:a6:4c:12:34:56", "hikvision"),  # Hangzhou Ezviz
        ("24:b1:05:12:34:56", "hikvision"),  # Prama Hikvision India
        ("3c:ef:8c:00:00:01", "dahua"),  # Zhejiang Dahua
        ("00:0a:eb:00:00:01", "tplink"),
        ("00:15:6d:00:00:01", "ubiquiti"),
        ("00:00:0c:00:00:01", None),  # Cisco: known company, not in our table
        ("40:2c:76:10:00:01", None),  # MA-M block of "Shanghai Dahua Scale Factory", not Dahua
        ("02:00:00:00:00:01", None),  # locally administered, no OUI
    ],
)
def test_vendor_of(address: str, slug: str | None) -> None:
    assert vendor_of(mac(address)) == slug


def test_vendor_of_rejects_wrong_length() -> None:
    with pytest.raises(ValueError, match="6-byte"):
        vendor_of(b"\x44\x19\xb6")


def test_camera_vendors() -> None:
    assert {"hikvision", "dahua", "uniview", "hanwha", "axis", "reolink", "tplink"} <= CAMERA_VENDORS
    assert "ubiquiti" not in CAMERA_VENDORS


def test_every_name_pattern_matches_the_shipped_registry_and_nothing_else() -> None:
    table = yaml.safe_load(
        importlib.resources.files("egresswatch").joinpath("data/vendors.yaml").read_text("utf-8")
    )
    names = registry_names()
    matched: dict[str, set[str]] = {}
    for name in names:
        slug = vendor_slug(name)
        if slug is not None:
            matched.setdefault(slug, set()).add(name)
    assert set(matched) == set(table)  # every slug is reachable from real registry data
    assert "Shanghai Dahua Scale Factory" not in matched["dahua"]
    assert {"Jorex Lorex India Private Limited", "Axis Electronics", "AXIS Sp z o.o."}.isdisjoint(
        set().union(*matched.values())
    )
    assert {
        "Hangzhou Hikvision Digital Technology Co.,Ltd.",
        "Prama Hikvision India Private Limited",
        "Hangzhou Ezviz Software Co.,Ltd.",
    } <= matched["hikvision"]
    assert "Samsung Techwin Co.,Ltd" in matched["hanwha"]


def test_ouis_for_capture_filters() -> None:
    hikvision = ouis_for("hikvision")
    assert bytes.fromhex("4419b6") in hikvision and bytes.fromhex("0ca64c") in hikvision  # incl. Ezviz
    assert bytes.fromhex("3cef8c") in ouis_for("dahua")
    assert all(vendor_of(oui + b"\x00\x00\x01") == "hikvision" for oui in hikvision)
    assert bytes.fromhex("344663") in ouis_for("amcrest")  # parent of Amcrest's 28-bit block
    assert vendor_of(bytes.fromhex("344663200001")) == "amcrest"
    assert all(ouis_for(slug) for slug in CAMERA_VENDORS)
    assert ouis_for("no-such-vendor") == ()


def test_inventory_by_mac_wins_over_ip() -> None:
    directory = DeviceDirectory(
        [spec("by-mac", mac="44:19:b6:00:00:11"), spec("by-ip", ip="10.20.0.11", vendor="axis", role="nvr")],
        LOCAL,
    )
    assert directory.lookup(mac("44:19:b6:00:00:11"), ip("10.20.0.11")).name == "by-mac"
    by_ip = directory.lookup(mac("00:00:0c:00:00:01"), ip("10.20.0.11"))
    assert by_ip == Device(name="by-ip", group="cameras", vendor="axis", role="nvr", discovered=False)
    assert directory.lookup(None, ip("10.20.0.11")).name == "by-ip"


def test_inventory_mac_matches_from_any_address() -> None:
    directory = DeviceDirectory([spec("cam", mac="3c:ef:8c:00:00:01")], LOCAL)
    assert directory.lookup(mac("3c:ef:8c:00:00:01"), ip("198.51.100.9")).name == "cam"


def test_inventory_vendor_comes_from_the_oui_unless_configured() -> None:
    directory = DeviceDirectory(
        [
            spec("hik", mac="44:19:b6:00:00:11"),
            spec("told", mac="44:19:b6:00:00:12", vendor="acme"),
            spec("cisco", mac="00:00:0c:00:00:01"),
            spec("ip-only", ip="10.0.0.9"),
        ],
        LOCAL,
    )
    macs = ("44:19:b6:00:00:11", "44:19:b6:00:00:12", "00:00:0c:00:00:01")
    vendors = [directory.lookup(mac(m), ip("10.0.0.1")).vendor for m in macs]
    assert vendors == ["hikvision", "acme", None]
    assert directory.lookup(None, ip("10.0.0.9")).vendor is None


def test_cidr_longest_prefix_wins_and_exact_ip_beats_cidr() -> None:
    directory = DeviceDirectory(
        [
            spec("wide", cidr="10.20.0.0/16"),
            spec("narrow", cidr="10.20.0.0/28"),
            spec("middle", cidr="10.20.0.0/24"),
            spec("exact", ip="10.20.0.5"),
            spec("v6", cidr="2001:db8:10::/48"),
        ],
        LOCAL,
    )
    names = {
        a: getattr(directory.lookup(None, ip(a)), "name", None)
        for a in (
            "10.20.0.5",
            "10.20.0.6",
            "10.20.0.200",
            "10.20.9.1",
            "10.21.0.1",
            "2001:db8:10::7",
            "2001:db8:11::7",
            "::ffff:10.20.0.6",
            "::a14:6",
        )
    }
    assert names == {
        "10.20.0.5": "exact",
        "10.20.0.6": "narrow",
        "10.20.0.200": "middle",
        "10.20.9.1": "wide",
        "10.21.0.1": None,
        "2001:db8:10::7": "v6",
        "2001:db8:11::7": None,
        "::ffff:10.20.0.6": "narrow",  # IPv4-mapped is its IPv4 address
        "::a14:6": None,  # same low bits as 10.20.0.6, but an IPv6 address
    }


def test_unlisted_local_camera_is_discovered_once() -> None:
    directory = DeviceDirectory([], LOCAL)
    first = directory.lookup(mac("44:19:b6:00:00:42"), ip("10.20.0.42"))
    assert first == Device(
        name="hikvision-4419b6000042", group="unassigned", vendor="hikvision", role="camera", discovered=True
    )
    assert directory.lookup(mac("44:19:b6:00:00:42"), ip("10.20.0.43")) is first
    dahua = directory.lookup(mac("3c:ef:8c:00:00:07"), ip("fe80::1"))
    assert dahua.name == "dahua-3cef8c000007"


@pytest.mark.parametrize(
    ("address", "addr", "why"),
    [
        ("44:19:b6:00:00:42", "198.51.100.7", "remote address behind a camera-vendor MAC"),
        ("00:15:6d:00:00:01", "10.0.0.7", "known vendor, not a camera vendor"),
        ("00:00:0c:00:00:01", "10.0.0.7", "not in the vendor table"),
        ("01:00:5e:00:00:fb", "10.0.0.7", "multicast MAC"),
        ("ff:ff:ff:ff:ff:ff", "10.0.0.7", "broadcast MAC"),
    ],
)
def test_not_discovered(address: str, addr: str, why: str) -> None:
    assert DeviceDirectory([], LOCAL).lookup(mac(address), ip(addr)) is None, why


def test_no_mac_no_inventory_is_nothing() -> None:
    assert DeviceDirectory([], LOCAL).lookup(None, ip("10.0.0.7")) is None


def test_multicast_mac_is_ignored_but_ip_still_matches() -> None:
    directory = DeviceDirectory([spec("cam", ip="10.0.0.7")], LOCAL)
    assert directory.lookup(mac("ff:ff:ff:ff:ff:ff"), ip("10.0.0.7")).name == "cam"


def test_discovered_devices_are_bounded() -> None:
    directory = DeviceDirectory([], LOCAL, max_discovered=4)
    devices = [directory.lookup(mac(f"44:19:b6:00:01:{i:02x}"), ip("10.0.0.1")) for i in range(10)]
    assert [d.name for d in devices] == [f"hikvision-4419b60001{i:02x}" for i in range(10)]
    assert len(directory._discovered) == 4  # whitebox: the bound is the point of this test
    again = directory.lookup(mac("44:19:b6:00:01:00"), ip("10.0.0.1"))
    assert again == devices[0]  # forgotten, so rebuilt: equal, though not the same object


def test_a_lease_learned_later_moves_attribution_of_the_same_endpoint() -> None:
    bindings = BindingTable()
    inventory = [spec("cam", mac="44:19:b6:00:00:11", ip="10.0.0.7")]
    directory = DeviceDirectory(inventory, LOCAL, bindings=bindings)
    address = ip("10.0.0.7")
    bindings.learn(address, mac("44:19:b6:00:00:11"), 100.0, "arp")
    assert directory.lookup(None, address, 250.0).name == "cam"
    bindings.learn(address, mac("00:00:0c:00:00:01"), 200.0, "dhcp")  # the lease moved to a laptop
    for _ in range(2):  # asked again, the answers are the same
        assert directory.lookup(None, address, 250.0) is None
        assert directory.lookup(None, address, 150.0).name == "cam"


def test_new_evidence_changes_the_answer_for_an_endpoint_already_looked_up() -> None:
    discovery = Discovery()
    directory = DeviceDirectory([], LOCAL, evidence=discovery)
    host, address = mac("00:00:0c:00:00:01"), ip("10.0.0.7")
    assert directory.lookup(host, address, 100.0) is None
    discovery.observe_cloud(host, address, "hikvision", "hik-connect", 110.0)
    named = "hikvision-00000c000001"
    assert directory.lookup(host, address, 120.0) == Device(
        name=named, group="unassigned", vendor="hikvision", role="camera", discovered=True
    )
    discovery.observe_cloud(host, address, "dahua", "dahua-p2p", 130.0)  # a tie: "dahua" sorts first
    assert directory.lookup(host, address, 140.0) == Device(
        name=named, group="unassigned", vendor="dahua", role="camera", discovered=True
    )


def test_forgotten_evidence_no_longer_attributes() -> None:
    discovery = Discovery(max_devices=1)
    directory = DeviceDirectory([], LOCAL, evidence=discovery)
    host, address = mac("00:00:0c:00:00:01"), ip("10.0.0.7")
    discovery.observe_cloud(host, address, "hikvision", "hik-connect", 110.0)
    assert directory.lookup(host, address, 120.0) is not None
    # a laptop's DHCP request, which names no vendor, takes the only evidence slot
    laptop = mac("02:42:ac:11:00:02")
    request = dhcp4(dpkt.dhcp.DHCPREQUEST, opts=((dpkt.dhcp.DHCP_OPT_HOSTNAME, b"alices-laptop"),))
    discovery.observe_udp(laptop, bytes(4), 68, 67, request.replace(DHCP_CLIENT, laptop), 130.0)
    assert directory.lookup(host, address, 140.0) is None


def test_restored_evidence_attributes_an_endpoint_already_looked_up() -> None:
    host, address = mac("00:00:0c:00:00:01"), ip("10.0.0.7")
    before_restart = Discovery()
    before_restart.observe_cloud(host, address, "hikvision", "hik-connect", 110.0)
    discovery = Discovery()
    directory = DeviceDirectory([], LOCAL, evidence=discovery)
    assert directory.lookup(host, address, 120.0) is None
    discovery.restore([row for row in before_restart.drain_changes().values() if row is not None])
    assert directory.lookup(host, address, 130.0).vendor == "hikvision"


def test_a_forgotten_discovered_device_is_rebuilt_as_a_fresh_directory_would() -> None:
    discovery = Discovery()
    directory = DeviceDirectory([], LOCAL, max_discovered=1, evidence=discovery)
    camera, address = mac("44:19:b6:00:00:42"), ip("10.0.0.7")
    assert directory.lookup(camera, address).name == "hikvision-4419b6000042"  # by its OUI
    discovery.observe_cloud(camera, address, "dahua", "dahua-p2p", 110.0)  # an OEM of Dahua's
    assert directory.lookup(camera, address) == Device(
        name="hikvision-4419b6000042", group="unassigned", vendor="dahua", role="camera", discovered=True
    )
    directory.lookup(mac("44:19:b6:00:00:43"), ip("10.0.0.8"))  # the bound forgets the first camera
    fresh = DeviceDirectory([], LOCAL, evidence=discovery).lookup(camera, address)
    assert fresh.name == "dahua-4419b6000042"
    assert directory.lookup(camera, address) == fresh
