"""IP <-> MAC bindings learned from ARP, IPv6 neighbour discovery and DHCP, with time.

Attribution by MAC breaks behind a router and attribution by IP breaks when a lease moves, so
the pipeline asks "which MAC held this IP at that moment?". Each IP keeps a short, time-ordered
history of holders; a DHCP lease that moves from a camera to a laptop leaves the camera's flows
before the move with the camera and gives the laptop the flows after it.

Parsers here take the bytes the decoder leaves (the ARP header, the ICMPv6 header); DHCP is
parsed in `egresswatch.discovery.dhcp` because it also carries discovery evidence.
"""

from __future__ import annotations

import bisect
import struct
from collections import OrderedDict
from collections.abc import Iterable
from typing import NamedTuple

SOURCES = ("arp", "ndp", "dhcp", "state")
"""Where a binding came from; "state" is a binding loaded back from the state file."""
HISTORY_PER_IP = 8
"""Holders remembered per IP: enough for a lease that moves a few times during a flow's lifetime."""
DEFAULT_MAX_ENTRIES = 65536

_ARP = struct.Struct("!HHBBH6s4s6s4s")
ARP_REQUEST = 1
ARP_REPLY = 2
_ARP_HTYPE_ETHERNET = 1
_ARP_PTYPE_IPV4 = 0x0800
_ZERO_V4 = bytes(4)
_ZERO_V6 = bytes(16)
_NDP_SOLICITATION = 135
_NDP_ADVERTISEMENT = 136
_NDP_OPTION_SOURCE_LL = 1
_NDP_OPTION_TARGET_LL = 2
_NDP_HEADER = 24  # type, code, checksum (4) + reserved/flags (4) + target address (16)


class Holding(NamedTuple):
    """One holder of an IP from `since` on; `mac` is None after a DHCP release or decline.

    A plain tuple, so the state file stores it without knowing this module.
    """

    since: float
    mac: bytes | None
    source: str
    last_seen: float


def _usable_mac(mac: bytes) -> bool:
    """A unicast, non-zero 6-byte MAC: multicast and all-zero addresses name no host."""
    return len(mac) == 6 and not mac[0] & 1 and mac != bytes(6)


class BindingTable:
    """Time-ordered holders per IP, at most `max_entries` IPs (the least recently learned go first)."""

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES, history: int = HISTORY_PER_IP) -> None:
        if max_entries < 1 or history < 1:
            raise ValueError("max_entries and history must be at least 1")
        self._max = max_entries
        self._history = history
        self._by_ip: OrderedDict[bytes, list[Holding]] = OrderedDict()
        self._dirty: set[bytes] = set()

    def __len__(self) -> int:
        return len(self._by_ip)

    def learn(self, ip: bytes, mac: bytes, ts: float, source: str) -> None:
        """Record that `mac` held `ip` at `ts` (source: one of SOURCES)."""
        if not _usable_mac(mac) or len(ip) not in (4, 16):
            return
        self._record(ip, Holding(ts, mac, source, ts))

    def release(self, ip: bytes, mac: bytes, ts: float) -> None:
        """A DHCP release or decline: from `ts` on nobody holds `ip`, if `mac` was its holder then."""
        if self.mac_at(ip, ts) == mac:
            self._record(ip, Holding(ts, None, "dhcp", ts))

    def mac_at(self, ip: bytes, ts: float) -> bytes | None:
        """The MAC that held `ip` at `ts`, or None (never learned, or released by then).

        Before the first holding we know of, the first holder is the best guess: a camera's flow
        often starts before the capture shows its ARP reply.
        """
        holdings = self._by_ip.get(ip)
        if not holdings:
            return None
        latest = holdings[-1]
        if ts >= latest.since or len(holdings) == 1:
            return latest.mac  # the usual answer, without a search
        at = bisect.bisect_right(holdings, ts, key=_since) - 1
        return holdings[max(at, 0)].mac

    def history(self, ip: bytes) -> tuple[Holding, ...]:
        """The remembered holders of `ip`, oldest first."""
        return tuple(self._by_ip.get(ip, ()))

    def drain_changes(self) -> dict[bytes, tuple[Holding, ...]]:
        """IPs whose history changed since the last call, with their whole history (empty: forgotten).

        The state writer calls this off the hot path and replaces each IP's rows.
        """
        changes = {ip: tuple(self._by_ip.get(ip, ())) for ip in self._dirty}
        self._dirty.clear()
        return changes

    def restore(self, rows: Iterable[tuple[bytes, Holding]]) -> None:
        """Load (ip, holding) rows saved earlier; they count as already saved."""
        for ip, holding in rows:
            self._record(ip, Holding(*holding))
        self._dirty.clear()

    def _record(self, ip: bytes, holding: Holding) -> None:
        holdings = self._by_ip.get(ip)
        if holdings is None:
            if len(self._by_ip) >= self._max:
                self._dirty.add(self._by_ip.popitem(last=False)[0])
            holdings = self._by_ip[ip] = []
        else:
            self._by_ip.move_to_end(ip)
        at = bisect.bisect_right(holdings, holding.since, key=_since)
        previous = holdings[at - 1] if at else None
        if previous is not None and previous.mac == holding.mac:
            # The same holder again: only how recently it was seen changes.
            if holding.last_seen > previous.last_seen:
                holdings[at - 1] = previous._replace(last_seen=holding.last_seen)
                self._dirty.add(ip)
            return
        following = holdings[at] if at < len(holdings) else None
        if following is not None and following.mac == holding.mac:
            # Seen earlier than we knew (out-of-order input): the holding starts earlier.
            holdings[at] = holding._replace(last_seen=max(holding.last_seen, following.last_seen))
        else:
            holdings.insert(at, holding)
            if len(holdings) > self._history:
                del holdings[0]
        self._dirty.add(ip)


def _since(holding: Holding) -> float:
    return holding.since


def arp_binding(frame_payload: bytes) -> tuple[bytes, bytes, int] | None:
    """(sender IPv4, sender MAC, op) of an Ethernet/IPv4 ARP request or reply (RFC 826), else None.

    `frame_payload` starts at the ARP header. Probes (sender 0.0.0.0, RFC 5227) bind nothing.
    """
    if len(frame_payload) < _ARP.size:
        return None
    htype, ptype, hlen, plen, op, sha, spa, _tha, _tpa = _ARP.unpack_from(frame_payload)
    if htype != _ARP_HTYPE_ETHERNET or ptype != _ARP_PTYPE_IPV4 or hlen != 6 or plen != 4:
        return None
    if op not in (ARP_REQUEST, ARP_REPLY) or spa == _ZERO_V4 or not _usable_mac(sha):
        return None
    return spa, sha, op


def ndp_binding(icmpv6: bytes, src_ip: bytes) -> tuple[bytes, bytes] | None:
    """(IPv6 address, MAC) from a neighbour solicitation or advertisement (RFC 4861 4.3, 4.4).

    A solicitation's source link-layer option binds the sender (`src_ip`; not during duplicate
    address detection, whose source is ::); an advertisement's target link-layer option binds
    the target address. `icmpv6` starts at the ICMPv6 header.
    """
    if len(icmpv6) < _NDP_HEADER or len(src_ip) != 16:
        return None
    kind = icmpv6[0]
    if kind == _NDP_SOLICITATION:
        if src_ip == _ZERO_V6:
            return None
        ip, wanted = src_ip, _NDP_OPTION_SOURCE_LL
    elif kind == _NDP_ADVERTISEMENT:
        ip, wanted = icmpv6[8:24], _NDP_OPTION_TARGET_LL
    else:
        return None
    if ip[0] == 0xFF:
        return None  # a multicast address is held by nobody
    off = _NDP_HEADER
    while off + 2 <= len(icmpv6):
        option, units = icmpv6[off], icmpv6[off + 1]
        if units == 0:
            return None  # RFC 4861 4.6: a zero length is invalid, and would loop forever
        if option == wanted and units == 1 and off + 8 <= len(icmpv6):
            mac = icmpv6[off + 2 : off + 8]
            return (ip, mac) if _usable_mac(mac) else None
        off += units * 8
    return None
