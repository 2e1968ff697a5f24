"""DHCPv4 and DHCPv6 parsing (issue 6): leases for bindings, hostname/vendor class/fingerprint."""

from __future__ import annotations

import ipaddress
import struct

import dpkt
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_bindings import l3_payload, real_frames, truth_rows

from egresswatch.discovery.dhcp import MESSAGE_TYPES, DhcpLease, parse_dhcp, parse_dhcpv6

CAMERA = bytes.fromhex("4419b6000011")


def ip4(text: str) -> bytes:
    return ipaddress.ip_address(text).packed


def udp_payloads(name: str, ports: frozenset[int]) -> list[bytes]:
    """UDP payloads of IPv4/IPv6 frames to or from `ports`, in capture order."""
    payloads = []
    for _ts, frame in real_frames(name):
        etype, data = l3_payload(frame)
        try:
            packet = dpkt.ip.IP(data) if etype == 0x0800 else dpkt.ip6.IP6(data) if etype == 0x86DD else None
        except dpkt.UnpackError:
            continue
        udp = getattr(packet, "data", None)
        if isinstance(udp, dpkt.udp.UDP) and {udp.sport, udp.dport} & ports:
            payloads.append(bytes(udp.data))
    return payloads


DHCP_CAPTURES = (
    "zeek_dhcp_hostname_vendorclass.pcap",
    "suri_dhcp_option60.pcap",
    "iotsentinel_dlinkcam_setup.pcap",
    "iotsentinel_dlinkdaycam_setup.pcap",
    "iotsentinel_edimaxcam_setup.pcap",
    "iotsentinel_ednetcam_setup.pcap",
)


@pytest.mark.parametrize("name", DHCP_CAPTURES)
def test_dhcp_fields_match_tshark_on_real_captures(name: str) -> None:
    """Message type, hostname (12), vendor class (60), requested IP (50), yiaddr, client MAC."""
    # tshark lists chaddr then any option 61 client identifier MAC in the last column: keep chaddr
    expected = [(*row[1:6], row[6].split(",")[0]) for row in truth_rows(name, "DHCP")]
    found = []
    for payload in udp_payloads(name, frozenset((67, 68))):
        info = parse_dhcp(payload)
        assert info is not None
        yiaddr = ipaddress.ip_address(payload[16:20])
        found.append(
            (
                str(MESSAGE_NUMBERS[info.message]),
                info.hostname or "",
                info.vendor_class or "",
                str(ipaddress.ip_address(info.requested_ip)) if info.requested_ip else "",
                str(yiaddr),
                info.mac.hex(":") if info.mac else "",
            )
        )
    assert expected, "the truth file lists DHCP frames"
    assert found == expected


MESSAGE_NUMBERS = {name: number for number, name in MESSAGE_TYPES.items()}


def dhcp4(kind: int, op: int = 1, ciaddr: str = "0.0.0.0", yiaddr: str = "0.0.0.0", opts=()) -> bytes:
    """A DHCPv4 message built by dpkt, an encoder independent of the parser under test."""
    message = dpkt.dhcp.DHCP(
        op=op,
        chaddr=CAMERA,
        ciaddr=int.from_bytes(ip4(ciaddr), "big"),
        yiaddr=int.from_bytes(ip4(yiaddr), "big"),
        opts=((dpkt.dhcp.DHCP_OPT_MSGTYPE, bytes([kind])), *opts),
    )
    return bytes(message)


def test_ack_binds_yiaddr_to_the_client() -> None:
    info = parse_dhcp(dhcp4(dpkt.dhcp.DHCPACK, op=2, yiaddr="10.20.0.11"))
    assert info is not None and info.message == "ack" and not info.from_client
    assert info.leases() == (DhcpLease(ip4("10.20.0.11"), CAMERA, released=False),)


def test_release_and_decline_give_the_address_back() -> None:
    release = parse_dhcp(dhcp4(dpkt.dhcp.DHCPRELEASE, ciaddr="10.20.0.11"))
    assert release is not None
    assert release.leases() == (DhcpLease(ip4("10.20.0.11"), CAMERA, released=True),)
    decline = parse_dhcp(dhcp4(dpkt.dhcp.DHCPDECLINE, opts=((dpkt.dhcp.DHCP_OPT_REQ_IP, ip4("10.20.0.12")),)))
    assert decline is not None
    assert decline.leases() == (DhcpLease(ip4("10.20.0.12"), CAMERA, released=True),)


def test_request_carries_names_and_fingerprint_but_binds_nothing() -> None:
    info = parse_dhcp(
        dhcp4(
            dpkt.dhcp.DHCPREQUEST,
            opts=(
                (dpkt.dhcp.DHCP_OPT_HOSTNAME, b"DS-2CD2143G2-I"),
                (dpkt.dhcp.DHCP_OPT_VENDOR_ID, b"Hikvision"),
                (dpkt.dhcp.DHCP_OPT_PARAM_REQ, bytes([1, 3, 6, 15, 28, 42])),
                (dpkt.dhcp.DHCP_OPT_REQ_IP, ip4("10.20.0.11")),
            ),
        )
    )
    assert info is not None and info.from_client
    assert (info.hostname, info.vendor_class, info.fingerprint) == (
        "DS-2CD2143G2-I",
        "Hikvision",
        "1,3,6,15,28,42",
    )
    assert info.requested_ip == ip4("10.20.0.11")
    assert info.leases() == ()


def test_not_dhcp_is_none() -> None:
    assert parse_dhcp(dhcp4(1)[:239]) is None, "no room for the magic cookie"
    assert parse_dhcp(dhcp4(1)[:236] + b"\x00\x00\x00\x00") is None, "wrong magic cookie"
    garbage_op = bytearray(dhcp4(1))
    garbage_op[0] = 9
    assert parse_dhcp(bytes(garbage_op)) is None


# ---------------------------------------------------------------------- DHCPv6
V6_ADDRESS = ipaddress.ip_address("2001:db8::11").packed


def option6(code: int, value: bytes) -> bytes:
    return struct.pack("!HH", code, len(value)) + value


def ia_na(address: bytes, valid: int) -> bytes:
    iaaddr = option6(5, address + struct.pack("!II", 3600, valid))
    return option6(3, struct.pack("!III", 1, 1800, 2880) + iaaddr)


DUID_LLT = option6(1, struct.pack("!HHI", 1, 1, 700_000_000) + CAMERA)
DUID_LL = option6(1, struct.pack("!HH", 3, 1) + CAMERA)


def test_dhcpv6_reply_binds_ia_na_addresses_to_the_duid_mac() -> None:
    info = parse_dhcpv6(bytes([7, 1, 2, 3]) + DUID_LLT + ia_na(V6_ADDRESS, 7200))
    assert info is not None and info.message == "reply" and info.mac == CAMERA
    assert info.leases() == (DhcpLease(V6_ADDRESS, CAMERA, released=False),)


def test_dhcpv6_reply_with_zero_lifetime_binds_nothing() -> None:
    info = parse_dhcpv6(bytes([7, 1, 2, 3]) + DUID_LL + ia_na(V6_ADDRESS, 0))
    assert info is not None and info.leases() == ()


def test_dhcpv6_release_and_client_names() -> None:
    fqdn = option6(39, b"\x00" + b"\x04cam1\x07example\x00")
    vendor = option6(16, struct.pack("!IH", 39165, 9) + b"Hikvision")
    oro = option6(6, struct.pack("!HHH", 23, 24, 39))
    info = parse_dhcpv6(bytes([8, 1, 2, 3]) + DUID_LL + ia_na(V6_ADDRESS, 0) + fqdn + vendor + oro)
    assert info is not None and info.from_client
    assert info.leases() == (DhcpLease(V6_ADDRESS, CAMERA, released=True),)
    assert (info.hostname, info.vendor_class, info.fingerprint) == ("cam1.example", "Hikvision", "23,24,39")


def test_dhcpv6_without_link_layer_duid_has_no_mac() -> None:
    duid_en = option6(1, struct.pack("!HI", 2, 9) + b"serial")
    info = parse_dhcpv6(bytes([7, 1, 2, 3]) + duid_en + ia_na(V6_ADDRESS, 60))
    assert info is not None and info.mac is None and info.leases() == ()
    assert parse_dhcpv6(bytes([12]) + bytes(40)) is None, "relay messages are not unwrapped"


@given(st.binary(max_size=400))
def test_parsers_never_raise_on_garbage(data: bytes) -> None:
    parse_dhcpv6(data)
    parse_dhcp(data)


@given(st.binary(max_size=300))
def test_options_garbage_after_a_valid_header_never_raises(tail: bytes) -> None:
    info = parse_dhcp(dhcp4(1)[:240] + tail)
    assert info is not None and info.mac == CAMERA
