"""Learned IP <-> MAC bindings with time (issue 6): the table, and the ARP and NDP parsers."""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterator
from pathlib import Path

import dpkt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from egresswatch.bindings import ARP_REPLY, ARP_REQUEST, BindingTable, arp_binding, ndp_binding

REALPCAPS = Path(__file__).resolve().parents[2] / "shared" / "realpcaps"
CAMERA = bytes.fromhex("4419b6000011")
LAPTOP = bytes.fromhex("0242ac110002")
IP = ipaddress.ip_address("10.20.0.11").packed


def ip4(text: str) -> bytes:
    return ipaddress.ip_address(text).packed


# ---------------------------------------------------------------------- real captures
def real_frames(name: str) -> Iterator[tuple[float, bytes]]:
    """(timestamp, Ethernet frame) of a capture in shared/realpcaps; Linux cooked frames get a fake
    Ethernet header so callers see one shape."""
    with (REALPCAPS / name).open("rb") as handle:
        reader = dpkt.pcap.UniversalReader(handle)
        linktype = reader.datalink()
        for ts, buf in reader:
            if linktype == dpkt.pcap.DLT_EN10MB:
                yield ts, buf
            elif linktype == dpkt.pcap.DLT_LINUX_SLL:
                yield ts, bytes(6) + buf[6:12] + buf[14:16] + buf[16:]
            else:
                raise AssertionError(f"{name}: link type {linktype} not handled by this test")


def l3_payload(frame: bytes) -> tuple[int, bytes]:
    """(ethertype, payload) under any number of 802.1Q/802.1ad tags."""
    off = 12
    etype = int.from_bytes(frame[off : off + 2], "big")
    while etype in (0x8100, 0x88A8, 0x9100):
        off += 4
        etype = int.from_bytes(frame[off : off + 2], "big")
    return etype, frame[off + 2 :]


def truth_rows(name: str, section: str) -> list[list[str]]:
    """Tab-separated rows of one "## <section>" block of a capture's tshark ground truth."""
    rows, inside = [], False
    for line in (REALPCAPS / name).with_suffix(".truth.txt").read_text().splitlines():
        if line.startswith("## "):
            inside = line.startswith(f"## {section}")
        elif inside and line.strip():
            rows.append(line.split("\t"))
    return rows


ARP_CAPTURES = (
    "suri_arp.pcap",
    "zeek_sll_arp.pcap",
    "tcpdump_8021ad_qinq_arp.pcap",
    "iotsentinel_dlinkcam_setup.pcap",
    "iotsentinel_ednetcam_setup.pcap",
)


@pytest.mark.parametrize("name", ARP_CAPTURES)
def test_arp_bindings_match_tshark_on_real_captures(name: str) -> None:
    expected = [
        (int(row[1]), bytes.fromhex(row[2].replace(":", "")), ip4(row[3]))
        for row in truth_rows(name, "ARP")
        if row[3] != "0.0.0.0"
    ]
    found = []
    for _ts, frame in real_frames(name):
        etype, payload = l3_payload(frame)
        if etype == 0x0806:
            binding = arp_binding(payload)
            if binding is not None:
                found.append((binding[2], binding[1], binding[0]))
    assert expected, "the truth file lists ARP frames"
    assert found == expected


# ---------------------------------------------------------------------- the table
def test_a_lease_moving_between_hosts_moves_attribution_at_that_moment() -> None:
    table = BindingTable(max_entries=16)
    table.learn(IP, CAMERA, 100.0, "dhcp")
    table.learn(IP, CAMERA, 140.0, "arp")
    table.learn(IP, LAPTOP, 200.0, "dhcp")
    assert table.mac_at(IP, 150.0) == CAMERA
    assert table.mac_at(IP, 199.9) == CAMERA
    assert table.mac_at(IP, 200.0) == LAPTOP
    assert table.mac_at(IP, 10_000.0) == LAPTOP
    assert table.mac_at(IP, 50.0) == CAMERA, "before the first binding, its holder is the best guess"
    assert [(h.since, h.mac, h.last_seen) for h in table.history(IP)] == [
        (100.0, CAMERA, 140.0),
        (200.0, LAPTOP, 200.0),
    ]


@given(
    st.lists(st.tuples(st.integers(0, 50), st.integers(1, 3)), min_size=1, max_size=12),
    st.integers(-5, 55),
)
def test_the_holder_at_any_moment_is_the_latest_holding_begun_by_then(
    learned: list[tuple[int, int]], ts: int
) -> None:
    table = BindingTable(history=4)
    for since, host in learned:  # in any order, a few hosts taking turns
        table.learn(IP, bytes([2, 0, 0, 0, 0, host]), float(since), "arp")
    history = table.history(IP)
    begun = [holding for holding in history if holding.since <= ts]
    assert table.mac_at(IP, float(ts)) == (begun[-1] if begun else history[0]).mac


def test_out_of_order_learning_keeps_history_in_time_order() -> None:
    table = BindingTable()
    table.learn(IP, LAPTOP, 200.0, "arp")
    table.learn(IP, CAMERA, 100.0, "arp")
    table.learn(IP, CAMERA, 150.0, "arp")
    assert [h.mac for h in table.history(IP)] == [CAMERA, LAPTOP]
    assert table.mac_at(IP, 160.0) == CAMERA
    table.learn(IP, LAPTOP, 180.0, "arp")
    assert table.history(IP)[1].since == 180.0, "the laptop's holding starts when it was first seen"


def test_release_ends_a_holding_only_for_its_holder() -> None:
    table = BindingTable()
    table.learn(IP, CAMERA, 100.0, "dhcp")
    table.release(IP, LAPTOP, 150.0)
    assert table.mac_at(IP, 160.0) == CAMERA, "a release by another MAC changes nothing"
    table.release(IP, CAMERA, 150.0)
    assert table.mac_at(IP, 149.0) == CAMERA
    assert table.mac_at(IP, 160.0) is None
    table.learn(IP, LAPTOP, 170.0, "dhcp")
    assert table.mac_at(IP, 171.0) == LAPTOP


def test_table_and_history_are_bounded() -> None:
    table = BindingTable(max_entries=2, history=3)
    for second in range(10):
        table.learn(IP, bytes([2, 0, 0, 0, 0, second]), float(second), "arp")
    assert len(table.history(IP)) == 3
    assert table.mac_at(IP, 9.0) == bytes([2, 0, 0, 0, 0, 9])
    table.learn(ip4("10.0.0.2"), CAMERA, 1.0, "arp")
    table.learn(ip4("10.0.0.3"), CAMERA, 1.0, "arp")
    assert len(table) == 2
    assert table.mac_at(IP, 9.0) is None, "the least recently learned IP was forgotten"


def test_unusable_macs_and_addresses_are_not_learned() -> None:
    table = BindingTable()
    table.learn(IP, bytes(6), 1.0, "arp")
    table.learn(IP, bytes.fromhex("01005e000001"), 1.0, "arp")
    table.learn(b"\x01\x02", CAMERA, 1.0, "arp")
    assert len(table) == 0


def test_changes_drain_once_and_restore_round_trips() -> None:
    table = BindingTable(max_entries=1)
    table.learn(IP, CAMERA, 100.0, "arp")
    table.learn(IP, LAPTOP, 200.0, "dhcp")
    changes = table.drain_changes()
    assert list(changes) == [IP]
    assert table.drain_changes() == {}
    table.learn(ip4("10.0.0.9"), CAMERA, 300.0, "arp")
    assert table.drain_changes() == {IP: (), ip4("10.0.0.9"): table.history(ip4("10.0.0.9"))}

    again = BindingTable()
    again.restore((ip, holding) for ip, holdings in changes.items() for holding in holdings)
    assert again.history(IP) == changes[IP]
    assert again.mac_at(IP, 150.0) == CAMERA
    assert again.drain_changes() == {}, "restored rows are already saved"


# ---------------------------------------------------------------------- ARP
def arp(op: int, sha: bytes, spa: bytes, tpa: bytes = IP) -> bytes:
    return struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, op, sha, spa, bytes(6), tpa)


def test_arp_request_and_reply_bind_the_sender() -> None:
    assert arp_binding(arp(ARP_REQUEST, CAMERA, IP)) == (IP, CAMERA, ARP_REQUEST)
    assert arp_binding(arp(ARP_REPLY, LAPTOP, ip4("10.20.0.1"))) == (ip4("10.20.0.1"), LAPTOP, ARP_REPLY)


def test_arp_probes_and_other_shapes_bind_nothing() -> None:
    assert arp_binding(arp(ARP_REQUEST, CAMERA, bytes(4))) is None, "RFC 5227 probe"
    assert arp_binding(arp(ARP_REQUEST, CAMERA, IP)[:27]) is None, "truncated"
    assert arp_binding(arp(3, CAMERA, IP)) is None, "RARP request"
    assert arp_binding(struct.pack("!HH", 6, 0x0800) + arp(1, CAMERA, IP)[4:]) is None, "not Ethernet"


# ---------------------------------------------------------------------- NDP
CAMERA_V6 = ipaddress.ip_address("2001:db8::11").packed
ROUTER_V6 = ipaddress.ip_address("fe80::1").packed


def ndp(kind: int, target: bytes, option: int | None, mac: bytes = CAMERA, option_units: int = 1) -> bytes:
    body = bytes([kind, 0, 0, 0]) + bytes(4) + target
    if option is not None:
        body += bytes([option, option_units]) + mac
    return body


def test_neighbour_solicitation_binds_its_source() -> None:
    assert ndp_binding(ndp(135, ROUTER_V6, 1), CAMERA_V6) == (CAMERA_V6, CAMERA)


def test_neighbour_advertisement_binds_its_target() -> None:
    assert ndp_binding(ndp(136, CAMERA_V6, 2), ROUTER_V6) == (CAMERA_V6, CAMERA)


def test_ndp_without_a_usable_link_layer_option_binds_nothing() -> None:
    assert ndp_binding(ndp(135, CAMERA_V6, 1), bytes(16)) is None, "duplicate address detection"
    assert ndp_binding(ndp(135, ROUTER_V6, None), CAMERA_V6) is None, "no option"
    assert ndp_binding(ndp(136, CAMERA_V6, 1), ROUTER_V6) is None, "source option in an advertisement"
    assert ndp_binding(ndp(135, ROUTER_V6, 1, option_units=0), CAMERA_V6) is None, "zero-length option"
    assert ndp_binding(ndp(128, ROUTER_V6, 1), CAMERA_V6) is None, "echo request"


@given(st.binary(max_size=96), st.binary(min_size=16, max_size=16))
def test_parsers_never_raise_on_garbage(data: bytes, src: bytes) -> None:
    found = arp_binding(data)
    assert found is None or (len(found[0]) == 4 and len(found[1]) == 6)
    neighbour = ndp_binding(data, src)
    assert neighbour is None or (len(neighbour[0]) == 16 and len(neighbour[1]) == 6)
