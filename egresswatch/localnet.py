"""Which addresses never leave the site (`networks.local`).

Asked once per flow endpoint with packed address bytes, so the answer is a few integer shifts
and set lookups per configured prefix length, and the last answers are kept in a bounded dict.
"""

from __future__ import annotations

from collections.abc import Iterable

from egresswatch.config import IPNetwork

_V4_MAPPED_PREFIX = bytes(10) + b"\xff\xff"


class LocalNetworks:
    """Membership test for a set of networks; IPv4-mapped IPv6 is judged as its IPv4 address."""

    def __init__(self, networks: Iterable[IPNetwork], cache_size: int = 65536) -> None:
        # {address bits: {prefix length: {network number >> host bits}}}
        self._tables: dict[int, dict[int, set[int]]] = {32: {}, 128: {}}
        for net in networks:
            bits = net.max_prefixlen
            self._tables[bits].setdefault(net.prefixlen, set()).add(
                int(net.network_address) >> (bits - net.prefixlen)
            )
        self._cache: dict[bytes, bool] = {}
        self._cache_size = cache_size

    def is_local(self, ip: bytes) -> bool:
        """True when the packed 4- or 16-byte address is inside one of the networks."""
        known = self._cache.get(ip)
        if known is not None:
            return known
        if len(ip) == 16 and ip[:12] == _V4_MAPPED_PREFIX:
            address, bits = ip[12:], 32
        elif len(ip) in (4, 16):
            address, bits = ip, len(ip) * 8
        else:
            raise ValueError(f"expected a packed IPv4 or IPv6 address, got {len(ip)} bytes")
        value = int.from_bytes(address, "big")
        local = any(value >> (bits - plen) in nets for plen, nets in self._tables[bits].items())
        if len(self._cache) >= self._cache_size:
            # evict the oldest entry (dicts keep insertion order): bounded and O(1)
            del self._cache[next(iter(self._cache))]
        self._cache[ip] = local
        return local
