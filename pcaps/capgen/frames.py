"""Link layers: how one IP packet becomes a frame on each kind of capture link.

Every link answers two questions for the ground truth: which MAC addresses a decoder sees
(none on cooked and raw links) and which VLAN id names the flow (the innermost tag).
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass, field
from typing import Protocol

import dpkt

ETH_IPV4 = 0x0800
ETH_IPV6 = 0x86DD
ETH_ARP = 0x0806
TPID_8021Q = 0x8100
TPID_8021AD = 0x88A8
ETH_MIN_FRAME = 60  # without FCS: a span port delivers short frames padded to this
ARPHRD_NONE = 0xFFFE  # a layer-3 tunnel interface: the cooked header carries no link address
SLL_HOST, SLL_OUTGOING = 0, 4
GRE_SEQUENCE_PRESENT = 0x1000
GRE_ERSPAN_2 = 0x88BE
GRE_ERSPAN_3 = 0x22EB
VXLAN_PORT = 4789


def mac_bytes(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


def ip_bytes(address: str) -> bytes:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    return socket.inet_pton(family, address)


def ipv4_header(
    src: str,
    dst: str,
    proto: int,
    payload_len: int,
    *,
    ident: int = 0,
    frag: int = 0,
    options: bytes = b"",
    ttl: int = 64,
) -> bytes:
    """RFC 791 header with a correct checksum; ``frag`` is the flags+offset word."""
    ihl = 5 + len(options) // 4
    head = (
        struct.pack(
            "!BBHHHBBH4s4s",
            0x40 | ihl,
            0,
            ihl * 4 + payload_len,
            ident,
            frag,
            ttl,
            proto,
            0,
            ip_bytes(src),
            ip_bytes(dst),
        )
        + options
    )
    return head[:10] + struct.pack("!H", dpkt.in_cksum(head)) + head[12:]


def ipv6_header(src: str, dst: str, next_header: int, payload_len: int, hop_limit: int = 64) -> bytes:
    """RFC 8200 fixed header."""
    return struct.pack(
        "!IHBB16s16s", 0x60000000, payload_len, next_header, hop_limit, ip_bytes(src), ip_bytes(dst)
    )


class Link(Protocol):
    """How a capture link frames an IP packet, and what a decoder learns from the frame."""

    macs: bool
    """Whether the frame carries source and destination MAC addresses."""

    @property
    def vlan(self) -> int | None: ...

    def frame(self, l3: bytes, ethertype: int, src_mac: str, dst_mac: str, outbound: bool) -> bytes: ...


@dataclass
class Ethernet:
    """Ethernet II with an optional stack of tags, outermost first: ((tpid, vid), ...)."""

    tags: tuple[tuple[int, int], ...] = ()
    macs = True

    @property
    def vlan(self) -> int | None:
        return self.tags[-1][1] if self.tags else None

    def frame(self, l3: bytes, ethertype: int, src_mac: str, dst_mac: str, outbound: bool) -> bytes:
        tags = b"".join(struct.pack("!HH", tpid, vid) for tpid, vid in self.tags)
        frame = mac_bytes(dst_mac) + mac_bytes(src_mac) + tags + struct.pack("!H", ethertype) + l3
        return frame + b"\x00" * (ETH_MIN_FRAME - len(frame))


@dataclass
class Cooked:
    """Linux cooked capture v1 (linktype 113) or v2 (276) from a layer-3 tunnel interface."""

    version: int
    macs = False
    vlan = None

    def frame(self, l3: bytes, ethertype: int, src_mac: str, dst_mac: str, outbound: bool) -> bytes:
        pkttype = SLL_OUTGOING if outbound else SLL_HOST
        if self.version == 1:
            return struct.pack("!HHH8sH", pkttype, ARPHRD_NONE, 0, b"", ethertype) + l3
        return struct.pack("!HHIHBB8s", ethertype, 0, 3, ARPHRD_NONE, pkttype, 0, b"") + l3


@dataclass
class RawIp:
    """Linktype 101: the frame is the IP packet."""

    macs = False
    vlan = None

    def frame(self, l3: bytes, ethertype: int, src_mac: str, dst_mac: str, outbound: bool) -> bytes:
        return l3


# The mirror session's own addresses: a switch sending to a collector. Never part of a flow.
MIRROR_SOURCE = ("10.99.0.1", "00:1b:54:99:00:01")
MIRROR_COLLECTOR = ("10.99.0.2", "00:14:22:99:00:02")


@dataclass
class Mirror:
    """An Ethernet frame carried to a collector by ERSPAN II/III (GRE) or VXLAN (UDP 4789).

    Only the inner frame counts, so ``macs``/``vlan`` are the inner link's.
    """

    kind: str
    """"erspan2", "erspan3" or "vxlan"."""
    inner: Ethernet
    session: int = 7
    vni: int = 5001
    _sequence: int = field(default=0, init=False)
    macs = True

    @property
    def vlan(self) -> int | None:
        return self.inner.vlan

    def frame(self, l3: bytes, ethertype: int, src_mac: str, dst_mac: str, outbound: bool) -> bytes:
        inner = self.inner.frame(l3, ethertype, src_mac, dst_mac, outbound)
        self._sequence += 1
        if self.kind == "vxlan":
            # The VTEP picks the source port from a hash of the inner flow; any stable value will do.
            sport = 49152 + (sum(inner[26:38]) % 16384)
            tunnel = struct.pack("!BBHI", 0x08, 0, 0, self.vni << 8) + inner
            transport = struct.pack("!HHHH", sport, VXLAN_PORT, 8 + len(tunnel), 0) + tunnel
            proto = 17
        else:
            if self.kind == "erspan2":
                # ver=1, vlan=0, cos=0, en=0, t=0, session; then reserved(12) index(20)
                header = struct.pack("!HHI", 0x1000, self.session, 0)
                gre_proto = GRE_ERSPAN_2
            else:
                # ver=2, vlan=0, cos/bso/t=0, session; timestamp; sgt, p/ft/hw/d/gra/o all zero
                header = struct.pack("!HHIHH", 0x2000, self.session, self._sequence * 100, 0, 0)
                gre_proto = GRE_ERSPAN_3
            transport = struct.pack("!HHI", GRE_SEQUENCE_PRESENT, gre_proto, self._sequence) + header + inner
            proto = 47
        (src_ip, src_mac_outer), (dst_ip, dst_mac_outer) = MIRROR_SOURCE, MIRROR_COLLECTOR
        outer_ip = ipv4_header(src_ip, dst_ip, proto, len(transport), ident=self._sequence) + transport
        return Ethernet().frame(outer_ip, ETH_IPV4, src_mac_outer, dst_mac_outer, True)
