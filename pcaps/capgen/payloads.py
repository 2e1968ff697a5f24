"""Application payloads: just enough of each protocol for a dissector to recognise it."""

from __future__ import annotations

import random
import struct

import dpkt

TLS_HANDSHAKE, TLS_APPLICATION_DATA = 22, 23


def dns_query(ident: int, name: str, qtype: int) -> bytes:
    msg = dpkt.dns.DNS(id=ident, op=dpkt.dns.DNS_RD, qd=[dpkt.dns.DNS.Q(name=name, type=qtype)])
    return bytes(msg)


def dns_response(ident: int, name: str, qtype: int, address: bytes) -> bytes:
    """A response whose single answer record carries the queried name itself (no CNAME chain)."""
    answer = dpkt.dns.DNS.RR(
        name=name, type=qtype, cls=dpkt.dns.DNS_IN, ttl=300, rlen=len(address), rdata=address
    )
    if qtype == dpkt.dns.DNS_A:
        answer.ip = address
    else:
        answer.ip6 = address
    msg = dpkt.dns.DNS(
        id=ident,
        op=dpkt.dns.DNS_QR | dpkt.dns.DNS_RA | dpkt.dns.DNS_RD,
        qd=[dpkt.dns.DNS.Q(name=name, type=qtype)],
        an=[answer],
    )
    return bytes(msg)


def _tls_record(content_type: int, body: bytes) -> bytes:
    return (
        struct.pack("!BHH", content_type, 0x0301 if content_type == TLS_HANDSHAKE else 0x0303, len(body))
        + body
    )


def tls_client_hello(sni: str, rng: random.Random) -> bytes:
    """A TLS 1.3-style ClientHello (RFC 8446 4.1.2) with server_name (RFC 6066 3) and supported_versions."""
    host = sni.encode()
    server_name = struct.pack("!HBH", len(host) + 3, 0, len(host)) + host
    versions = struct.pack("!BH", 2, 0x0304)
    extensions = (
        struct.pack("!HH", 0, len(server_name))
        + server_name
        + struct.pack("!HH", 43, len(versions))
        + versions
    )
    suites = struct.pack("!HHH", 0x1301, 0x1302, 0xC02F)
    body = (
        struct.pack("!H", 0x0303)
        + rng.randbytes(32)
        + b"\x00"
        + struct.pack("!H", len(suites))
        + suites
        + b"\x01\x00"
        + struct.pack("!H", len(extensions))
        + extensions
    )
    handshake = struct.pack("!I", (1 << 24) | len(body)) + body
    return _tls_record(TLS_HANDSHAKE, handshake)


def tls_opaque(length: int, rng: random.Random, content_type: int = TLS_APPLICATION_DATA) -> bytes:
    """A record whose body is opaque (server hello flight or encrypted data): only its length matters."""
    return _tls_record(content_type, rng.randbytes(length))


def rtsp_request(method: str, url: str, cseq: int) -> bytes:
    return f"{method} {url} RTSP/1.0\r\nCSeq: {cseq}\r\nUser-Agent: egresswatch-fixture\r\n\r\n".encode()


def rtsp_reply(cseq: int) -> bytes:
    return f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\n\r\n".encode()


def rtp(seq: int, timestamp: int, ssrc: int, length: int, rng: random.Random) -> bytes:
    """RTP v2, dynamic payload type 96 (RFC 3550 5.1), ``length`` bytes of media after the header."""
    return struct.pack("!BBHII", 0x80, 96, seq & 0xFFFF, timestamp & 0xFFFFFFFF, ssrc) + rng.randbytes(length)


def rtp_interleaved(channel: int, packet: bytes) -> bytes:
    """RTP inside an RTSP TCP connection (RFC 2326 10.12)."""
    return struct.pack("!cBH", b"$", channel, len(packet)) + packet


def rtcp_receiver_report(ssrc: int) -> bytes:
    return struct.pack("!BBHI", 0x80, 201, 1, ssrc)


def ntp(mode: int, rng: random.Random) -> bytes:
    """NTPv4 (RFC 5905): mode 3 client, 4 server; the timestamps are opaque here."""
    return struct.pack("!BBbb", (4 << 3) | mode, 2 if mode == 4 else 0, 6, -20) + rng.randbytes(44)


def arp(op: int, sender_mac: bytes, sender_ip: bytes, target_mac: bytes, target_ip: bytes) -> bytes:
    return bytes(dpkt.arp.ARP(op=op, sha=sender_mac, spa=sender_ip, tha=target_mac, tpa=target_ip))
