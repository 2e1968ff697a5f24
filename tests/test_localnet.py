"""LocalNetworks: membership by packed address, IPv4-mapped handling, bounded cache."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from egresswatch.config import DEFAULT_LOCAL_NETWORKS
from egresswatch.localnet import LocalNetworks

DEFAULT = [ipaddress.ip_network(n) for n in DEFAULT_LOCAL_NETWORKS]


def packed(text: str) -> bytes:
    return ipaddress.ip_address(text).packed


@pytest.mark.parametrize(
    ("address", "local"),
    [
        ("10.20.0.11", True),
        ("172.31.255.255", True),
        ("172.32.0.1", False),
        ("192.168.1.1", True),
        ("100.64.0.1", True),
        ("169.254.10.1", True),
        ("127.0.0.1", True),
        ("239.255.255.250", True),
        ("255.255.255.255", True),
        ("255.255.255.254", False),
        ("198.51.100.7", False),
        ("203.0.113.9", False),
        ("192.0.2.1", False),
        ("fd12::1", True),
        ("fe80::1", True),
        ("::1", True),
        ("ff02::fb", True),
        ("2001:db8::1", False),
        ("::ffff:10.0.0.1", True),
        ("::ffff:198.51.100.7", False),
    ],
)
def test_default_networks(address: str, local: bool) -> None:
    assert LocalNetworks(DEFAULT).is_local(packed(address)) is local


def test_ipv4_networks_do_not_match_ipv6_addresses_with_the_same_bits() -> None:
    nets = LocalNetworks([ipaddress.ip_network("10.0.0.0/8")])
    assert nets.is_local(packed("10.1.2.3"))
    assert not nets.is_local(packed("a00::1"))  # 0x0a00... starts with the same byte as 10/8


def test_no_networks_means_nothing_is_local() -> None:
    assert not LocalNetworks([]).is_local(packed("10.0.0.1"))
    assert not LocalNetworks([]).is_local(packed("fe80::1"))


def test_bad_length_is_rejected() -> None:
    with pytest.raises(ValueError, match="5 bytes"):
        LocalNetworks(DEFAULT).is_local(b"\x01\x02\x03\x04\x05")


def test_cache_stays_bounded_and_answers_stay_right() -> None:
    nets = LocalNetworks([ipaddress.ip_network("10.0.0.0/24")], cache_size=8)
    for i in range(100):
        assert nets.is_local(bytes([10, 0, 0, i])) is True
        assert nets.is_local(bytes([10, 0, 1, i])) is False
    assert len(nets._cache) == 8  # whitebox: the bound is the point of this test
    assert nets.is_local(bytes([10, 0, 0, 1])) is True  # evicted long ago, recomputed


NETWORKS = st.one_of(
    st.tuples(st.ip_addresses(v=4), st.integers(0, 32)),
    st.tuples(st.ip_addresses(v=6), st.integers(0, 128)),
).map(lambda pair: ipaddress.ip_network(f"{pair[0]}/{pair[1]}", strict=False))


@given(st.ip_addresses(), st.lists(NETWORKS, max_size=6))
def test_agrees_with_ipaddress(address: ipaddress._BaseAddress, networks: list) -> None:
    """Property: same answer as the standard library, with IPv4-mapped judged as IPv4."""
    judged = getattr(address, "ipv4_mapped", None) or address
    expected = any(judged in net for net in networks if net.version == judged.version)
    assert LocalNetworks(networks).is_local(address.packed) is expected
