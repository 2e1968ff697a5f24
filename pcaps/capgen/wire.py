"""Hosts and the wire: turn "A sends this transport payload to B at t" into a recorded frame.

IP headers are assembled here (options, IPv6 extension headers and fragments need exact control);
transport headers and their checksums come from dpkt.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

import dpkt

from capgen.capture import Capture, IpInfo, Record
from capgen.frames import ETH_IPV4, ETH_IPV6, Ethernet, Link, ip_bytes, ipv4_header, ipv6_header

T0_US = 1_768_204_800 * 1_000_000  # 2026-01-12T08:00:00Z, the start of every capture
ROUTER_MAC = "00:1b:54:20:00:01"  # Cisco: the site's gateway, which every remote address sits behind
TCP, UDP, ICMP, ICMP6 = 6, 17, 1, 58
IPV6_HOP_BY_HOP, IPV6_FRAGMENT = 0, 44


@dataclass(frozen=True, slots=True)
class Host:
    """An address on the wire; ``mac`` None means a remote host reached through the gateway."""

    ip: str
    mac: str | None = None

    @property
    def version(self) -> int:
        return 6 if ":" in self.ip else 4

    @property
    def local(self) -> bool:
        return self.mac is not None


def transport_bytes(src: str, dst: str, proto: int, segment: dpkt.Packet) -> bytes:
    """The transport header and payload with the checksum dpkt computes over the pseudo-header."""
    if ":" in src:
        packet = dpkt.ip6.IP6(src=ip_bytes(src), dst=ip_bytes(dst), nxt=proto, hlim=64, data=segment)
        return bytes(packet)[40:]
    packet = dpkt.ip.IP(src=ip_bytes(src), dst=ip_bytes(dst), p=proto, data=segment)
    return bytes(packet)[20:]


def hop_by_hop(next_header: int) -> bytes:
    """An 8-byte Hop-by-Hop Options header holding only a PadN option (RFC 8200 4.3)."""
    return struct.pack("!BBBB4x", next_header, 0, 1, 4)


class Wire:
    """Builds frames on one link of one capture and records what each frame means."""

    def __init__(self, capture: Capture, link: Link, *, iface: int = 0) -> None:
        self.capture = capture
        self.link = link
        self.iface = iface
        self._ident = 0x1000

    def _stamp(self, t: float) -> int:
        return self.capture.free_moment(T0_US + round(t * 1_000_000))

    def next_ident(self) -> int:
        self._ident += 1
        return self._ident

    def send(
        self,
        t: float,
        src: Host,
        dst: Host,
        proto: int,
        segment: dpkt.Packet | bytes,
        *,
        sport: int | None = None,
        dport: int | None = None,
        tcp_flags: int = 0,
        sni: str | None = None,
        dns_answers: tuple[tuple[str, str], ...] = (),
        app: str | None = None,
        service: str | None = None,
        link: Link | None = None,
        ipv4_options: bytes = b"",
        hop_by_hop_header: bool = False,
        caplen: int | None = None,
    ) -> None:
        """One unfragmented IP packet from ``src`` to ``dst``; ``caplen`` cuts it like a snaplen would."""
        payload = segment if isinstance(segment, bytes) else transport_bytes(src.ip, dst.ip, proto, segment)
        if src.version == 6:
            ext = hop_by_hop(proto) if hop_by_hop_header else b""
            l3 = ipv6_header(src.ip, dst.ip, IPV6_HOP_BY_HOP if ext else proto, len(ext) + len(payload))
            l3 += ext + payload
        else:
            l3 = ipv4_header(
                src.ip, dst.ip, proto, len(payload), ident=self.next_ident(), options=ipv4_options
            )
            l3 += payload
        self._emit(
            t, src, dst, proto, l3, sport=sport, dport=dport, tcp_flags=tcp_flags, sni=sni,
            dns_answers=dns_answers, app=app, service=service, link=link, caplen=caplen,
        )  # fmt: skip

    def send_fragments(
        self,
        times: list[float],
        order: list[int],
        src: Host,
        dst: Host,
        sport: int,
        dport: int,
        payload: bytes,
        chunk: int,
    ) -> None:
        """One UDP datagram split into IP fragments of ``chunk`` payload bytes (a multiple of 8).

        ``order`` lists fragment indexes in the order they go on the wire, at ``times``.
        """
        datagram = transport_bytes(src.ip, dst.ip, UDP, dpkt.udp.UDP(sport=sport, dport=dport, data=payload))
        pieces = [datagram[i : i + chunk] for i in range(0, len(datagram), chunk)]
        ident = self.next_ident()
        for t, index in zip(times, order, strict=True):
            offset, more = index * chunk, index < len(pieces) - 1
            piece = pieces[index]
            if src.version == 6:
                frag = struct.pack("!BBHI", UDP, 0, offset | more, ident)
                l3 = ipv6_header(src.ip, dst.ip, IPV6_FRAGMENT, len(frag) + len(piece)) + frag + piece
            else:
                word = (0x2000 if more else 0) | offset // 8
                l3 = ipv4_header(src.ip, dst.ip, UDP, len(piece), ident=ident, frag=word) + piece
            self._emit(t, src, dst, UDP, l3, sport=sport, dport=dport)

    def _emit(
        self,
        t: float,
        src: Host,
        dst: Host,
        proto: int,
        l3: bytes,
        *,
        sport: int | None,
        dport: int | None,
        tcp_flags: int = 0,
        sni: str | None = None,
        dns_answers: tuple[tuple[str, str], ...] = (),
        app: str | None = None,
        service: str | None = None,
        link: Link | None = None,
        caplen: int | None = None,
    ) -> None:
        link = link or self.link
        src_mac, dst_mac = src.mac or ROUTER_MAC, dst.mac or ROUTER_MAC
        ethertype = ETH_IPV6 if src.version == 6 else ETH_IPV4
        frame = link.frame(l3, ethertype, src_mac, dst_mac, outbound=src.local)
        version = src.version
        size = 40 + struct.unpack_from("!H", l3, 4)[0] if version == 6 else struct.unpack_from("!H", l3, 2)[0]
        info = IpInfo(
            version=version,
            proto=proto,
            src=str(ipaddress.ip_address(src.ip)),
            dst=str(ipaddress.ip_address(dst.ip)),
            sport=sport,
            dport=dport,
            ip_bytes=size,
            src_mac=src_mac if link.macs else None,
            dst_mac=dst_mac if link.macs else None,
            vlan=link.vlan,
            tcp_flags=tcp_flags,
            sni=sni,
            dns_answers=dns_answers,
            app=app,
            service=service,
        )
        data = frame[:caplen] if caplen is not None else frame
        self.capture.add(Record(self._stamp(t), data, len(frame), self.iface, info))

    def raw(
        self,
        t: float,
        frame: bytes,
        *,
        error: str | None = None,
        caplen: int | None = None,
        bindings: tuple[tuple[str, str | None], ...] = (),
    ) -> None:
        """A frame that is not a decodable IP packet: ARP, or a malformed frame (``error`` says how)."""
        data = frame[:caplen] if caplen is not None else frame
        self.capture.add(
            Record(self._stamp(t), data, len(frame), self.iface, None, error=error, bindings=bindings)
        )

    def mark_last(self, **meaning: object) -> None:
        """Add what the frame just sent means for bindings or discovery (``Record`` fields)."""
        record = self.capture.records[-1]
        for name, value in meaning.items():
            setattr(record, name, value)


def ethernet_wire(capture: Capture, tags: tuple[tuple[int, int], ...] = ()) -> Wire:
    return Wire(capture, Ethernet(tags))
