"""Payloads of the vendor-cloud and streaming protocols in services.pcap: enough of each for a
dissector (and egresswatch) to recognise it, from the published layouts cited per function."""

from __future__ import annotations

import random
import struct

import dpkt

RTMP_C1_BYTES = 1536
BAICHUAN_NEGO = bytes.fromhex("3acf872a")  # neolink MAGIC_HEADER_UDP_NEGO, little-endian 0x2a87cf3a
BAICHUAN_ACK = bytes.fromhex("20cf872a")
BAICHUAN_DATA = bytes.fromhex("10cf872a")


def dns_cname_response(ident: int, name: str, chain: tuple[str, ...], address: bytes) -> bytes:
    """An A answer reached through CNAMEs: ``name`` -> chain[0] -> ... -> chain[-1] A ``address``."""
    answers = []
    for owner, target in zip((name, *chain[:-1]), chain, strict=True):
        rr = dpkt.dns.DNS.RR(name=owner, type=dpkt.dns.DNS_CNAME, cls=dpkt.dns.DNS_IN, ttl=300)
        rr.cname = target
        answers.append(rr)
    last = dpkt.dns.DNS.RR(name=chain[-1], type=dpkt.dns.DNS_A, cls=dpkt.dns.DNS_IN, ttl=60, rdata=address)
    last.ip = address
    answers.append(last)
    msg = dpkt.dns.DNS(
        id=ident,
        op=dpkt.dns.DNS_QR | dpkt.dns.DNS_RA | dpkt.dns.DNS_RD,
        qd=[dpkt.dns.DNS.Q(name=name, type=dpkt.dns.DNS_A)],
        an=answers,
    )
    return bytes(msg)


def tcp_dns(message: bytes) -> bytes:
    """DNS over TCP: a two-byte length, then the message (RFC 1035 4.2.2)."""
    return struct.pack("!H", len(message)) + message


def mqtt_connect(client_id: str) -> bytes:
    """MQTT 3.1.1 CONNECT (section 3.1): clean session, keep-alive 60 s."""
    ident = client_id.encode()
    body = b"\x00\x04MQTT\x04\x02\x00\x3c" + struct.pack("!H", len(ident)) + ident
    return bytes((0x10, len(body))) + body


def mqtt_publish(topic: str, message: bytes) -> bytes:
    """MQTT 3.1.1 PUBLISH at QoS 0 (section 3.3); ``message`` under 100 bytes."""
    name = topic.encode()
    body = struct.pack("!H", len(name)) + name + message
    return bytes((0x30, len(body))) + body


def dahua_request(method: str, path: str, cseq: int) -> bytes:
    """Dahua P2P signalling over UDP 8800: an HTTP-like DHGET/DHPOST (khoanguyen-3fc/dh-p2p)."""
    return f"{method} {path} HTTP/1.1\r\nCSeq: {cseq}\r\nX-Version: 2\r\n\r\n".encode()


def dahua_reply(cseq: int) -> bytes:
    return f"HTTP/1.1 200 OK\r\nCSeq: {cseq}\r\nContent-Length: 0\r\n\r\n".encode()


def ptcp(seq: int, data: bytes) -> bytes:
    """A PTCP ("phony TCP") datagram: the 4-byte magic, sequence/ack words, then the tunnelled bytes."""
    return b"PTCP" + struct.pack("!IIII", seq, 0, 0x10000, len(data)) + data


def baichuan(magic: bytes, connection: int, body: bytes) -> bytes:
    """Reolink Baichuan over UDP (neolink bcudp): magic, connection id, reserved, body length."""
    return magic + struct.pack("<III", connection, 0, len(body)) + body


def rtmp_c0c1(rng: random.Random) -> bytes:
    """C0 (version 3) and C1: time, four zero bytes, 1528 random bytes (RTMP 1.0 5.2.2-5.2.3)."""
    return b"\x03" + struct.pack("!II", 0, 0) + rng.randbytes(RTMP_C1_BYTES - 8)


def http_put(path: str, host: str, content_type: str, body: bytes) -> bytes:
    head = f"PUT {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\n"
    return (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def http_get(path: str, host: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: egresswatch-fixture\r\n\r\n".encode()
