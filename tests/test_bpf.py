"""The generated kernel filter: compiled by libpcap and run on real frames with BPFProgram.filter."""

from __future__ import annotations

import argparse
from pathlib import Path

import dpkt
import pcapy
import pytest

from egresswatch.bpf import BPF_BUDGET, bpf_command, build_filter
from egresswatch.config import Config, ConfigError, parse_config

CAMERA_MAC = bytes.fromhex("4419b6000011")  # Hikvision OUI, in the inventory
NVR_MAC = bytes.fromhex("0011aabbcc50")
OTHER_CAMERA_MAC = bytes.fromhex("4419b6000099")  # same OUI, not in the inventory
GATEWAY_MAC = bytes.fromhex("00005e000101")
LAPTOP_MAC = bytes.fromhex("02aabbccdd01")
SWITCH_MAC = bytes.fromhex("02aabbccdd02")

WAN = "203.0.113.5"
SSDP_MAC = bytes.fromhex("01005e7ffffa")
LINK_LOCAL = bytes.fromhex("fe80" + "00" * 13 + "07")
ALL_NODES = bytes.fromhex("ff02" + "00" * 13 + "01")

INVENTORY = {
    "devices": [
        {"name": "cam-entrance", "mac": "44:19:b6:00:00:11", "ip": "10.20.0.11", "vendor": "hikvision"},
        {"name": "nvr", "mac": "00:11:aa:bb:cc:50", "ip": "10.20.0.50", "role": "nvr"},
        {"name": "cam-v6", "ip": "2001:db8:20::11"},
        {"name": "cam-pool", "cidr": "10.30.0.0/28"},
        {"name": "cam-dhcp", "mac": "02:11:22:33:44:55"},
    ],
}


def config(extra: dict | None = None) -> Config:
    return parse_config({**INVENTORY, **(extra or {})}, Path("."))


def program(cfg: Config) -> pcapy.BPFProgram:
    return pcapy.compile(pcapy.DLT_EN10MB, 65535, build_filter(cfg), 1, 0)


def ip4(src: str, dst: str, l4: dpkt.Packet, proto: int) -> dpkt.ip.IP:
    packet = dpkt.ip.IP(src=bytes(map(int, src.split("."))), dst=bytes(map(int, dst.split("."))), p=proto,
                        data=l4)
    packet.len = len(bytes(packet))
    return packet


def udp(src: str, dst: str, sport: int, dport: int) -> dpkt.ip.IP:
    return ip4(src, dst, dpkt.udp.UDP(sport=sport, dport=dport, data=b"payload"), dpkt.ip.IP_PROTO_UDP)


def tcp(src: str, dst: str, sport: int, dport: int) -> dpkt.ip.IP:
    return ip4(src, dst, dpkt.tcp.TCP(sport=sport, dport=dport, data=b"payload"), dpkt.ip.IP_PROTO_TCP)


def frame(src: bytes, dst: bytes, payload: dpkt.Packet, ethertype: int = 0x0800,
          vlan: int | None = None) -> bytes:
    tags = [dpkt.ethernet.VLANtag8021Q(id=vlan)] if vlan is not None else []
    return bytes(dpkt.ethernet.Ethernet(src=src, dst=dst, type=ethertype, vlan_tags=tags, data=payload))


def kept(prog: pcapy.BPFProgram, packet: bytes) -> bool:
    return prog.filter(packet) != 0


CAM_EGRESS = tcp("10.20.0.11", WAN, 40000, 443)
CAM_TO_NVR = tcp("10.20.0.11", "10.20.0.50", 554, 40000)
LAPTOP_WEB = tcp("10.1.0.7", "203.0.113.80", 50000, 443)

KEPT = {
    "inventory camera to the internet": frame(CAMERA_MAC, GATEWAY_MAC, CAM_EGRESS),
    "internet reply to inventory camera": frame(GATEWAY_MAC, CAMERA_MAC, tcp(WAN, "10.20.0.11", 443, 40000)),
    "inventory IP behind a router MAC": frame(GATEWAY_MAC, SWITCH_MAC, tcp("10.30.0.5", WAN, 5000, 80)),
    "uninventoried camera by OUI": frame(OTHER_CAMERA_MAC, GATEWAY_MAC, udp("10.20.0.99", WAN, 5000, 123)),
    "MAC-only device to the internet": frame(bytes.fromhex("021122334455"), GATEWAY_MAC,
                                             udp("10.1.0.44", "192.0.2.44", 5000, 8000)),
    "NVR to the internet": frame(NVR_MAC, GATEWAY_MAC, tcp("10.20.0.50", "198.51.100.9", 40001, 443)),
    "non-device DNS query": frame(LAPTOP_MAC, GATEWAY_MAC, udp("10.1.0.7", "10.1.0.1", 5353, 53)),
    "DHCP discover": frame(LAPTOP_MAC, b"\xff" * 6, udp("0.0.0.0", "255.255.255.255", 68, 67)),
    "ARP": frame(LAPTOP_MAC, b"\xff" * 6, dpkt.arp.ARP(), ethertype=0x0806),
    "SSDP": frame(LAPTOP_MAC, SSDP_MAC, udp("10.1.0.7", "239.255.255.250", 1900, 1900)),
    "ONVIF WS-Discovery": frame(LAPTOP_MAC, SSDP_MAC, udp("10.1.0.7", "239.255.255.250", 3702, 3702)),
    "SADP": frame(LAPTOP_MAC, b"\xff" * 6, udp("10.1.0.7", "239.255.255.250", 37020, 37020)),
    "ERSPAN over GRE": frame(LAPTOP_MAC, SWITCH_MAC, ip4("10.9.0.1", "10.9.0.2", dpkt.gre.GRE(), 47)),
    "VXLAN": frame(LAPTOP_MAC, SWITCH_MAC, udp("10.9.0.1", "10.9.0.2", 40000, 4789)),
    "tagged camera egress": frame(CAMERA_MAC, GATEWAY_MAC, CAM_EGRESS, vlan=20),
    "tagged DNS": frame(LAPTOP_MAC, GATEWAY_MAC, udp("10.1.0.7", "10.1.0.1", 5353, 53), vlan=20),
}
DROPPED = {
    "camera to NVR bulk": frame(CAMERA_MAC, NVR_MAC, CAM_TO_NVR),
    "NVR pulling the camera stream": frame(NVR_MAC, CAMERA_MAC, tcp("10.20.0.50", "10.20.0.11", 40000, 554)),
    "laptop web browsing": frame(LAPTOP_MAC, GATEWAY_MAC, LAPTOP_WEB),
    "tagged camera to NVR bulk": frame(CAMERA_MAC, NVR_MAC, CAM_TO_NVR, vlan=20),
    "tagged laptop traffic": frame(LAPTOP_MAC, GATEWAY_MAC, LAPTOP_WEB, vlan=20),
}


@pytest.mark.parametrize("name", sorted(KEPT))
def test_keeps_what_attribution_needs(name: str) -> None:
    assert kept(program(config()), KEPT[name]), name


@pytest.mark.parametrize("name", sorted(DROPPED))
def test_drops_local_bulk_and_non_device_traffic(name: str) -> None:
    assert not kept(program(config()), DROPPED[name]), name


def test_ipv6_device_and_neighbour_discovery() -> None:
    prog = program(config())
    src = bytes.fromhex("20010db8002000000000000000000011")
    dst = bytes.fromhex("20010db8ffff00000000000000000001")
    egress = dpkt.ip6.IP6(src=src, dst=dst, nxt=dpkt.ip.IP_PROTO_TCP, hlim=64,
                          data=dpkt.tcp.TCP(sport=40000, dport=443))
    egress.plen = len(bytes(egress.data))
    assert kept(prog, frame(GATEWAY_MAC, SWITCH_MAC, egress, ethertype=0x86DD))
    for icmp_type, expected in ((135, True), (136, True), (128, False)):
        icmp = dpkt.icmp6.ICMP6(type=icmp_type, code=0, data=b"\x00" * 20)
        packet = dpkt.ip6.IP6(src=LINK_LOCAL, dst=ALL_NODES,
                              nxt=dpkt.ip.IP_PROTO_ICMP6, hlim=255, data=icmp)
        packet.plen = len(bytes(icmp))
        solicited = frame(LAPTOP_MAC, bytes.fromhex("333300000001"), packet, ethertype=0x86DD)
        assert kept(prog, solicited) is expected


def test_bpf_extra_adds_traffic_to_keep() -> None:
    laptop = DROPPED["laptop web browsing"]
    assert not kept(program(config()), laptop)
    assert kept(program(config({"capture": {"bpf_extra": "host 203.0.113.80"}})), laptop)


def test_local_networks_come_from_config() -> None:
    # With 10.20.0.0/24 no longer local, camera <-> NVR traffic is no longer "both ends local".
    cfg = config({"networks": {"local": ["192.168.0.0/16"]}})
    assert kept(program(cfg), DROPPED["camera to NVR bulk"])


def test_bad_extra_is_a_config_error_naming_the_key() -> None:
    with pytest.raises(ConfigError) as error:
        build_filter(config({"capture": {"bpf_extra": "host and and"}}))
    assert error.value.key == "capture.bpf_extra"


def test_large_inventory_fits_the_kernel_limit() -> None:
    devices = [{"name": f"cam{i}", "mac": f"02:00:00:00:{i >> 8:02x}:{i & 0xFF:02x}",
                "ip": f"10.40.{i >> 8}.{i & 0xFF}"} for i in range(300)]
    cfg = parse_config({"devices": devices}, Path("."))
    size = len(pcapy.compile(pcapy.DLT_EN10MB, 65535, build_filter(cfg), 1, 0).get_bpf())
    assert size <= BPF_BUDGET
    # The 300 addresses collapse into a few networks, so the last camera is still kept.
    last = frame(bytes.fromhex("020000000200"), GATEWAY_MAC, tcp("10.40.1.43", "203.0.113.5", 1, 2))
    assert kept(program(cfg), last)


def test_too_many_address_less_devices_is_a_config_error() -> None:
    devices = [{"name": f"cam{i}", "mac": f"02:00:00:00:{i >> 8:02x}:{i & 0xFF:02x}"} for i in range(300)]
    with pytest.raises(ConfigError) as error:
        build_filter(parse_config({"devices": devices}, Path(".")))
    assert error.value.key == "devices"
    assert "BPF instructions" in error.value.reason


def test_bpf_command_prints_the_filter(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "site.yaml"
    path.write_text("devices:\n  - {name: cam, ip: 10.20.0.11}\n", encoding="utf-8")
    assert bpf_command(argparse.Namespace(config=str(path), file=False)) == 0
    printed = capsys.readouterr().out.strip()
    assert "host 10.20.0.11" in printed
    pcapy.compile(pcapy.DLT_EN10MB, 65535, printed, 1, 0)
