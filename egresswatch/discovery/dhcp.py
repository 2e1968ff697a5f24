"""DHCPv4 (RFC 2131/2132) and DHCPv6 (RFC 8415) messages: leases for bindings, names for discovery.

A lease is learned from what the server confirms (DHCPACK, a DHCPv6 Reply with IA addresses of
non-zero valid lifetime) and forgotten on what the client gives back (DHCPRELEASE, DHCPDECLINE,
DHCPv6 Release and Decline). The client's hostname (option 12 / Client FQDN 39), vendor class
(60 / 16) and parameter request list (55 / Option Request 6, the usual passive fingerprint) are
what the device says about itself.

DHCPv6 names the client by DUID; only a link-layer DUID (DUID-LLT, DUID-LL; RFC 8415 11.2, 11.4)
of hardware type Ethernet gives a MAC, and for DUID-LLT that is the MAC the DUID was made from,
normally the interface's own.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from egresswatch.discovery import clean

DHCP_PORTS = frozenset((67, 68))
DHCPV6_PORTS = frozenset((546, 547))

MESSAGE_TYPES = {
    1: "discover", 2: "offer", 3: "request", 4: "decline", 5: "ack", 6: "nak", 7: "release", 8: "inform",
}  # fmt: skip
MESSAGE_TYPES_V6 = {
    1: "solicit", 2: "advertise", 3: "request", 4: "confirm", 5: "renew", 6: "rebind", 7: "reply",
    8: "release", 9: "decline", 10: "reconfigure", 11: "information-request",
}  # fmt: skip

_BOOTP = struct.Struct("!BBBB4sHH4s4s4s4s16s")
_BOOTP_SIZE = 236
_COOKIE = b"\x63\x82\x53\x63"
_HTYPE_ETHERNET = 1
_OPT_PAD, _OPT_END = 0, 255
_OPT_HOSTNAME, _OPT_REQUESTED_IP, _OPT_MESSAGE_TYPE, _OPT_PRL, _OPT_VENDOR_CLASS = 12, 50, 53, 55, 60
_V6_CLIENT_ID, _V6_IA_NA, _V6_IAADDR, _V6_ORO, _V6_VENDOR_CLASS, _V6_FQDN = 1, 3, 5, 6, 16, 39
_DUID_LLT, _DUID_LL = 1, 3
_ZERO_V4 = bytes(4)


@dataclass(frozen=True, slots=True)
class DhcpLease:
    """An address bound to (or given back by) a MAC."""

    ip: bytes
    mac: bytes
    released: bool


@dataclass(frozen=True, slots=True)
class DhcpInfo:
    """The parts of one DHCP message that matter for bindings and discovery."""

    version: int
    """4 or 6."""
    message: str | None
    """Message type name ("ack", "request", "reply", ...), None when absent or unknown."""
    mac: bytes | None
    """The client's MAC: chaddr (DHCPv4) or a link-layer DUID (DHCPv6)."""
    from_client: bool
    leased: tuple[bytes, ...]
    """Addresses the message binds (server confirmations) or gives back (client releases)."""
    hostname: str | None
    vendor_class: str | None
    fingerprint: str | None
    """Parameter request list (v4 option 55) / option request (v6 option 6) as "1,3,6,15"."""
    requested_ip: bytes | None = None

    def leases(self) -> tuple[DhcpLease, ...]:
        """Bindings this message makes or ends, for `BindingTable.learn` / `.release`."""
        if self.mac is None:
            return ()
        if self.message in ("ack", "reply"):
            released = False
        elif self.message in ("release", "decline"):
            released = True
        else:
            return ()
        return tuple(DhcpLease(ip, self.mac, released) for ip in self.leased)


def parse_dhcp(payload: bytes) -> DhcpInfo | None:
    """A DHCPv4 message (UDP 67/68), or None."""
    if len(payload) < _BOOTP_SIZE + len(_COOKIE) or payload[_BOOTP_SIZE : _BOOTP_SIZE + 4] != _COOKIE:
        return None
    op, htype, hlen, _hops, _xid, _secs, _flags, ciaddr, yiaddr, _s, _g, chaddr = _BOOTP.unpack_from(payload)
    if op not in (1, 2):
        return None
    options = _v4_options(payload[_BOOTP_SIZE + 4 :])
    kind = options.get(_OPT_MESSAGE_TYPE, b"")
    message = MESSAGE_TYPES.get(kind[0]) if len(kind) == 1 else None
    mac = chaddr[:6] if htype == _HTYPE_ETHERNET and hlen == 6 and chaddr[:6] != bytes(6) else None
    requested = options.get(_OPT_REQUESTED_IP)
    requested = requested if requested is not None and len(requested) == 4 else None
    if message == "ack":
        leased = (yiaddr,) if yiaddr != _ZERO_V4 else ()
    elif message == "release":
        leased = (ciaddr,) if ciaddr != _ZERO_V4 else ()
    elif message == "decline":
        leased = (requested,) if requested else ()
    else:
        leased = ()
    return DhcpInfo(
        version=4,
        message=message,
        mac=mac,
        from_client=op == 1,
        leased=leased,
        hostname=_text(options.get(_OPT_HOSTNAME)),
        vendor_class=_text(options.get(_OPT_VENDOR_CLASS)),
        fingerprint=",".join(map(str, options[_OPT_PRL])) if options.get(_OPT_PRL) else None,
        requested_ip=requested,
    )


def parse_dhcpv6(payload: bytes) -> DhcpInfo | None:
    """A DHCPv6 client/server message (UDP 546/547; relay messages are not unwrapped), or None."""
    if len(payload) < 4 or payload[0] not in MESSAGE_TYPES_V6:
        return None
    message = MESSAGE_TYPES_V6[payload[0]]
    mac = hostname = vendor_class = fingerprint = None
    leased: list[bytes] = []
    for code, value in _v6_options(payload[4:]):
        if code == _V6_CLIENT_ID:
            mac = _duid_mac(value)
        elif code == _V6_IA_NA and len(value) >= 12:
            leased.extend(_ia_addresses(value[12:], need_lifetime=message == "reply"))
        elif code == _V6_ORO and value and len(value) % 2 == 0:
            codes = struct.unpack(f"!{len(value) // 2}H", value)
            fingerprint = ",".join(map(str, codes))
        elif code == _V6_FQDN and len(value) > 1:
            hostname = _dns_name(value[1:])
        elif code == _V6_VENDOR_CLASS and len(value) > 6:
            vendor_class = _text(value[6 : 6 + int.from_bytes(value[4:6], "big")])
    return DhcpInfo(
        version=6,
        message=message,
        mac=mac,
        from_client=message not in ("advertise", "reply", "reconfigure"),
        leased=tuple(leased),
        hostname=hostname,
        vendor_class=vendor_class,
        fingerprint=fingerprint,
    )


def _v4_options(data: bytes) -> dict[int, bytes]:
    """Option code -> value (RFC 2132 2.); the first occurrence wins, a truncated option ends the list."""
    options: dict[int, bytes] = {}
    off = 0
    while off < len(data):
        code = data[off]
        if code == _OPT_END:
            break
        if code == _OPT_PAD:
            off += 1
            continue
        if off + 2 > len(data):
            break
        length = data[off + 1]
        value = data[off + 2 : off + 2 + length]
        if len(value) < length:
            break
        options.setdefault(code, value)
        off += 2 + length
    return options


def _v6_options(data: bytes) -> list[tuple[int, bytes]]:
    """(code, value) pairs (RFC 8415 21.1); a truncated option ends the list."""
    options = []
    off = 0
    while off + 4 <= len(data):
        code = int.from_bytes(data[off : off + 2], "big")
        length = int.from_bytes(data[off + 2 : off + 4], "big")
        value = data[off + 4 : off + 4 + length]
        if len(value) < length:
            break
        options.append((code, value))
        off += 4 + length
    return options


def _ia_addresses(data: bytes, need_lifetime: bool) -> list[bytes]:
    """IA Address options inside an IA_NA (RFC 8415 21.6); in a Reply, only those still valid."""
    addresses = []
    for code, value in _v6_options(data):
        if code != _V6_IAADDR or len(value) < 24:
            continue
        valid = int.from_bytes(value[20:24], "big")
        if need_lifetime and valid == 0:
            continue  # a Reply with lifetime 0 withdraws the address
        addresses.append(value[:16])
    return addresses


def _duid_mac(duid: bytes) -> bytes | None:
    if len(duid) < 4 or int.from_bytes(duid[2:4], "big") != _HTYPE_ETHERNET:
        return None
    kind = int.from_bytes(duid[:2], "big")
    if kind == _DUID_LLT and len(duid) == 14:
        return duid[8:14]
    if kind == _DUID_LL and len(duid) == 10:
        return duid[4:10]
    return None


def _dns_name(data: bytes) -> str | None:
    """An uncompressed DNS wire-format name (as in the Client FQDN option) -> "cam-1.example"."""
    labels = []
    off = 0
    while off < len(data) and data[off]:
        length = data[off]
        labels.append(data[off + 1 : off + 1 + length].decode("ascii", "replace"))
        off += 1 + length
    return clean(".".join(labels))


def _text(value: bytes | None) -> str | None:
    if not value:
        return None
    return clean(value.rstrip(b"\0").decode("utf-8", "replace"))
