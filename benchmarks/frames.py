"""Frame building for the synthetic site capture: fast enough for a million packets in seconds.

A `Leg` is one direction of one conversation. It packs its Ethernet (+802.1Q) and IP headers once
and per packet only patches what changes (IP length and id, the TCP/UDP header) and computes the
checksums. The one's-complement sum of 16-bit words is the value of the bytes modulo 0xFFFF
(2**16 = 1 mod 0xFFFF), so a checksum over a 1400-byte payload is one `int.from_bytes` and one
modulo instead of a Python loop over words. Checksums are real, so every decoder (tshark
included) sees well-formed frames.

The payload builders (RTP, RTSP, DNS, TLS ClientHello, HTTP, NTP) produce just enough of each
protocol for the parsers that name and classify flows, following the RFCs' field layouts.
"""

from __future__ import annotations

import ipaddress
import struct

ETH_IPV4 = b"\x08\x00"
ETH_IPV6 = b"\x86\xdd"
ETH_VLAN = b"\x81\x00"
ETH_ARP = b"\x08\x06"
PROTO_TCP = 6
PROTO_UDP = 17

FIN = 0x01
SYN = 0x02
RST = 0x04
PSH = 0x08
ACK = 0x10

IPV4_HEAD = struct.Struct("!BBHHHBBH4s4s")
IPV6_HEAD = struct.Struct("!IHBB16s16s")
TCP_HEAD = struct.Struct("!HHIIBBHHH")
UDP_HEAD = struct.Struct("!HHHH")
RTP_HEAD = struct.Struct("!BBHII")


def _csum_value(data: bytes) -> int:
    """One's-complement sum of ``data`` as 16-bit words, modulo 0xFFFF (odd lengths padded)."""
    if len(data) & 1:
        data += b"\x00"
    return int.from_bytes(data, "big") % 0xFFFF


def fold(value: int) -> int:
    """The checksum field for a running sum: the complement of the one's-complement total."""
    value %= 0xFFFF
    return 0xFFFF - value if value else 0xFFFF


def mac_bytes(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


class Leg:
    """One direction of a conversation: ``src`` -> ``dst`` over ``proto`` with fixed ports."""

    __slots__ = ("_eth", "_ident", "_ip_sum", "_pseudo", "dport", "dst", "proto", "sport", "src", "v6")

    def __init__(
        self,
        src_mac: bytes,
        dst_mac: bytes,
        vlan: int | None,
        src: str,
        dst: str,
        proto: int,
        sport: int,
        dport: int,
    ) -> None:
        src_ip = ipaddress.ip_address(src)
        dst_ip = ipaddress.ip_address(dst)
        self.v6 = src_ip.version == 6
        self.src = src_ip.packed
        self.dst = dst_ip.packed
        self.proto = proto
        ethertype = ETH_IPV6 if self.v6 else ETH_IPV4
        tag = ETH_VLAN + struct.pack("!H", vlan) if vlan is not None else b""
        self._eth = dst_mac + src_mac + tag + ethertype
        self.sport = sport
        self.dport = dport
        # Pseudo-header sum without the length (RFC 768, RFC 793, RFC 8200 section 8.1).
        self._pseudo = _csum_value(self.src + self.dst) + proto
        # IPv4 header words that never change: version/IHL, TTL/protocol, addresses; DF set.
        self._ip_sum = 0x4500 + 0x4000 + (64 << 8 | proto) + _csum_value(self.src + self.dst)
        self._ident = sport * 7 & 0xFFFF

    def _ip(self, l4: bytes) -> bytes:
        if self.v6:
            return self._eth + IPV6_HEAD.pack(0x60000000, len(l4), self.proto, 64, self.src, self.dst) + l4
        total = 20 + len(l4)
        self._ident = ident = (self._ident + 1) & 0xFFFF
        check = fold(self._ip_sum + total + ident)
        head = IPV4_HEAD.pack(0x45, 0, total, ident, 0x4000, 64, self.proto, check, self.src, self.dst)
        return self._eth + head + l4

    def udp(self, payload: bytes) -> bytes:
        sport, dport = self.sport, self.dport
        length = 8 + len(payload)
        check = fold(self._pseudo + length + _csum_value(UDP_HEAD.pack(sport, dport, length, 0) + payload))
        return self._ip(UDP_HEAD.pack(sport, dport, length, check) + payload)

    def tcp(self, seq: int, ack: int, flags: int, payload: bytes = b"") -> bytes:
        sport, dport = self.sport, self.dport
        seq &= 0xFFFFFFFF
        ack &= 0xFFFFFFFF
        head = TCP_HEAD.pack(sport, dport, seq, ack, 0x50, flags, 64240, 0, 0)
        check = fold(self._pseudo + 20 + len(payload) + _csum_value(head + payload))
        return self._ip(TCP_HEAD.pack(sport, dport, seq, ack, 0x50, flags, 64240, check, 0) + payload)


def arp_request(src_mac: bytes, src_ip: str, target_ip: str) -> bytes:
    """A broadcast who-has (RFC 826), padded to the 60-byte Ethernet minimum."""
    body = struct.pack(
        "!HHBBH6s4s6s4s",
        1,
        0x0800,
        6,
        4,
        1,
        src_mac,
        ipaddress.ip_address(src_ip).packed,
        bytes(6),
        ipaddress.ip_address(target_ip).packed,
    )
    frame = b"\xff" * 6 + src_mac + ETH_ARP + body
    return frame + bytes(60 - len(frame))


# ---------------------------------------------------------------------- payloads
def rtp(seq: int, timestamp: int, ssrc: int, body: bytes, marker: bool = False) -> bytes:
    """RTP version 2, dynamic payload type 96 (H.264 as cameras announce it), RFC 3550 section 5.1."""
    return (
        RTP_HEAD.pack(0x80, 96 | (0x80 if marker else 0), seq & 0xFFFF, timestamp & 0xFFFFFFFF, ssrc) + body
    )


def rtsp_interleaved(channel: int, packet: bytes) -> bytes:
    """RTP over the RTSP TCP connection: '$', channel, 16-bit length (RFC 2326 section 10.12)."""
    return b"$" + struct.pack("!BH", channel, len(packet)) + packet


def rtsp_request(method: str, url: str, cseq: int, extra: str = "") -> bytes:
    return f"{method} {url} RTSP/1.0\r\nCSeq: {cseq}\r\nUser-Agent: NVR\r\n{extra}\r\n".encode()


def rtsp_response(cseq: int, extra: str = "") -> bytes:
    return f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\n{extra}\r\n".encode()


def _dns_name(name: str) -> bytes:
    return b"".join(bytes([len(label)]) + label.encode() for label in name.split(".")) + b"\x00"


def dns_query(ident: int, name: str, qtype: int = 1) -> bytes:
    """A recursive query for one name (RFC 1035 section 4.1)."""
    return struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0) + _dns_name(name) + struct.pack("!HH", qtype, 1)


def dns_answer(ident: int, name: str, address: str, ttl: int = 300) -> bytes:
    """The response to `dns_query`: one A or AAAA record pointing back at the question's name."""
    packed = ipaddress.ip_address(address).packed
    qtype = 1 if len(packed) == 4 else 28
    question = _dns_name(name) + struct.pack("!HH", qtype, 1)
    record = b"\xc0\x0c" + struct.pack("!HHIH", qtype, 1, ttl, len(packed)) + packed
    return struct.pack("!HHHHHH", ident, 0x8180, 1, 1, 0, 0) + question + record


def tls_client_hello(server_name: str, random: bytes) -> bytes:
    """A TLS 1.2 record carrying a ClientHello with server_name and supported_versions (RFC 8446 4.1.2)."""
    name = server_name.encode()
    sni = struct.pack("!HBH", len(name) + 3, 0, len(name)) + name
    extensions = (
        struct.pack("!HH", 0, len(sni))
        + sni
        + struct.pack("!HHB", 43, 5, 4)
        + b"\x03\x04\x03\x03"  # supported_versions: TLS 1.3, 1.2
        + struct.pack("!HHH", 10, 4, 2)
        + b"\x00\x1d"  # supported_groups: x25519
    )
    ciphers = b"\x13\x01\x13\x02\xc0\x2f\xc0\x30"
    body = (
        b"\x03\x03"
        + random[:32]
        + b"\x20"
        + random[32:64]
        + struct.pack("!H", len(ciphers))
        + ciphers
        + b"\x01\x00"
        + struct.pack("!H", len(extensions))
        + extensions
    )
    handshake = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + struct.pack("!H", len(handshake)) + handshake


def tls_application_data(body: bytes) -> bytes:
    return b"\x17\x03\x03" + struct.pack("!H", len(body)) + body


def http_get(host: str, path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n".encode()


def http_response(body: bytes) -> bytes:
    head = f"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    return head + body


def ntp(mode: int, seconds: int) -> bytes:
    """A 48-byte NTPv4 packet (RFC 5905 section 7.3): mode 3 client, 4 server."""
    return struct.pack(
        "!BBBb11I", 0x20 | mode, 2 if mode == 4 else 0, 6, -20, *([0] * 7), seconds, 0, seconds, 0
    )
