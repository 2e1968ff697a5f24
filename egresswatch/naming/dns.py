"""Passive DNS: names for the addresses a client was told about (RFC 1035 wire format).

``parse_dns_answers`` reads one DNS response and maps every A/AAAA answer back, through the
CNAME chain, to the name that was asked; ``dns_messages_from_tcp`` splits a TCP stream into
messages (RFC 1035 §4.2.2 length prefix, used when a truncated UDP answer is retried over TCP);
``PassiveDns`` remembers the answers per client, bounded and TTL-aware.
"""

from __future__ import annotations

import struct
from collections import OrderedDict
from collections.abc import Iterable
from typing import NamedTuple

_HEADER = struct.Struct(">HHHHHH")
_RR_FIXED = struct.Struct(">HHIH")
_U16 = struct.Struct(">H")

_TYPE_A = 1
_TYPE_CNAME = 5
_TYPE_AAAA = 28
_CLASS_IN = 1
_QR = 0x8000
_OPCODE_MASK = 0x7800
# mDNS (RFC 6762 §10.2) sets the top bit of the class ("cache flush"); the class is the rest.
_CLASS_MASK = 0x7FFF
# A name is at most 255 octets (RFC 1035 §3.1); each compression jump must go backwards, so a
# message cannot hold more jumps than it has bytes, but capping them keeps garbage cheap.
_MAX_NAME = 255
_MAX_JUMPS = 32
# CNAME chains longer than this are a loop or an attack, not a CDN.
_MAX_CHAIN = 16
# RFC 2181 §8: a TTL with the top bit set is treated as zero.
_MAX_TTL = 0x7FFFFFFF


class DnsAnswer(NamedTuple):
    """One address the resolver handed a client, under the name the client asked for."""

    query_name: str
    """Lower case, no trailing dot: the question's name (the root of the CNAME chain)."""
    address: bytes
    """Packed IPv4 (4 bytes) or IPv6 (16 bytes)."""
    ttl: int
    """Seconds, as sent (the smallest TTL along the CNAME chain)."""


class _Malformed(Exception):
    """Internal: the message is not parseable DNS. Never leaves this module."""


def _read_name(msg: bytes, off: int) -> tuple[str, int]:
    """Decode a possibly compressed name at ``off``; return it and the offset after it."""
    labels: list[str] = []
    total = 0
    jumps = 0
    end = -1
    while True:
        if off >= len(msg):
            raise _Malformed
        length = msg[off]
        if length == 0:
            off += 1
            break
        if length & 0xC0 == 0xC0:
            if off + 1 >= len(msg) or jumps >= _MAX_JUMPS:
                raise _Malformed
            target = ((length & 0x3F) << 8) | msg[off + 1]
            if end < 0:
                end = off + 2
            if target >= off:
                raise _Malformed  # pointers must point backwards, else they can loop
            off = target
            jumps += 1
            continue
        if length & 0xC0:
            raise _Malformed  # 0x40/0x80 label types (RFC 6891 §5) are not names
        label = msg[off + 1 : off + 1 + length]
        if len(label) != length:
            raise _Malformed
        total += length + 1
        if total > _MAX_NAME:
            raise _Malformed
        labels.append(label.decode("ascii", "backslashreplace").lower())
        off += 1 + length
    return ".".join(labels), end if end >= 0 else off


def parse_dns_answers(message: bytes) -> list[DnsAnswer] | None:
    """The A/AAAA answers of one DNS response, each under the name originally asked.

    Returns [] for a well-formed message that teaches nothing (a query, an error response, a
    non-QUERY opcode, no address answers) and None for a malformed one (worth counting). Only
    the answer section is read: authority and additional records are not what the client asked.
    """
    try:
        return _parse(message)
    except (_Malformed, struct.error):
        return None


def _parse(msg: bytes) -> list[DnsAnswer]:
    _id, flags, qdcount, ancount, _ns, _ar = _HEADER.unpack_from(msg, 0)
    off = _HEADER.size
    questions: list[str] = []
    for _ in range(qdcount):
        name, off = _read_name(msg, off)
        if off + 4 > len(msg):
            raise _Malformed
        off += 4
        questions.append(name)
    if not flags & _QR or flags & _OPCODE_MASK or flags & 0x000F:
        return []
    cname_of: dict[str, tuple[str, int]] = {}  # target -> (owner, ttl)
    addresses: list[tuple[str, bytes, int]] = []
    for _ in range(ancount):
        owner, off = _read_name(msg, off)
        rtype, rclass, ttl, rdlength = _RR_FIXED.unpack_from(msg, off)
        off += _RR_FIXED.size
        rdata_end = off + rdlength
        if rdata_end > len(msg):
            raise _Malformed
        ttl = 0 if ttl > _MAX_TTL else ttl
        if rclass & _CLASS_MASK == _CLASS_IN:
            if rtype in (_TYPE_A, _TYPE_AAAA):
                if rdlength != (4 if rtype == _TYPE_A else 16):
                    raise _Malformed
                addresses.append((owner, msg[off:rdata_end], ttl))
            elif rtype == _TYPE_CNAME:
                target, name_end = _read_name(msg, off)
                if name_end != rdata_end:
                    raise _Malformed
                cname_of.setdefault(target, (owner, ttl))
        off = rdata_end
    asked = set(questions)
    answers = []
    for owner, address, ttl in addresses:
        name = owner
        for _ in range(_MAX_CHAIN):
            if name in asked or name not in cname_of:
                break
            name, link_ttl = cname_of[name]
            ttl = min(ttl, link_ttl)
        answers.append(DnsAnswer(name, address, ttl))
    return answers


def dns_messages_from_tcp(stream_bytes: bytes) -> tuple[list[bytes], bytes]:
    """Split DNS-over-TCP bytes (2-byte big-endian length prefix each) into whole messages.

    Returns the complete messages and the unconsumed tail (a partial prefix or message), which
    the caller prepends to the next segment. The tail is never longer than 65,537 bytes.
    """
    messages = []
    off = 0
    while off + 2 <= len(stream_bytes):
        (length,) = _U16.unpack_from(stream_bytes, off)
        if off + 2 + length > len(stream_bytes):
            break
        messages.append(stream_bytes[off + 2 : off + 2 + length])
        off += 2 + length
    return messages, stream_bytes[off:]


class PassiveDns:
    """Remote address -> name, learned from answers seen on the wire.

    Kept per client first, because two devices asking different names can be told the same CDN
    address; ``name_for_any`` is the weaker client-independent fallback for flows whose own
    lookup was not seen. Each entry lives for its TTL clamped to [ttl_floor, ttl_cap]: the floor
    because devices connect after the TTL ran out (and TTL 0 answers are common), the cap so
    a stale mapping cannot outlive a day. Both tables hold at most ``max_entries``; beyond that
    the entry learned (or refreshed) longest ago goes. The latest answer for an address wins.
    """

    def __init__(self, max_entries: int, ttl_floor: float = 60.0, ttl_cap: float = 86400.0) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self.ttl_floor = ttl_floor
        self.ttl_cap = max(ttl_cap, ttl_floor)
        self._by_client: OrderedDict[tuple[bytes, bytes], tuple[str, float]] = OrderedDict()
        self._by_server: OrderedDict[bytes, tuple[str, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._by_client)

    def learn(self, client: bytes, answers: Iterable[DnsAnswer], now: float) -> None:
        """Remember what ``client`` (packed IP that received the response) was told at ``now``."""
        for answer in answers:
            expires = now + min(max(answer.ttl, self.ttl_floor), self.ttl_cap)
            entry = (answer.query_name, expires)
            _put(self._by_client, (client, answer.address), entry, self.max_entries)
            _put(self._by_server, answer.address, entry, self.max_entries)

    def name_for(self, client: bytes, server: bytes, now: float) -> str | None:
        """The name ``client`` looked up and got ``server`` for, if still fresh at ``now``."""
        return _get(self._by_client, (client, server), now)

    def name_for_any(self, server: bytes, now: float) -> str | None:
        """The latest fresh name any client was given ``server`` for."""
        return _get(self._by_server, server, now)


def _put(table: OrderedDict, key: object, entry: tuple[str, float], limit: int) -> None:
    table[key] = entry
    table.move_to_end(key)
    while len(table) > limit:
        table.popitem(last=False)


def _get(table: OrderedDict, key: object, now: float) -> str | None:
    entry = table.get(key)
    if entry is None:
        return None
    if entry[1] < now:
        del table[key]
        return None
    return entry[0]
