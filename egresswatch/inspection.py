"""Payload inspection for device flows: which application, and which name the destination has.

The pipeline asks for it once per flow (`flow_started` sets a budget of payload packets in
`flow.inspect`); the meter keeps the flow on the slow path only while that budget lasts. The
parsers themselves live in `egresswatch.naming`; this module decides which one sees what.
"""

from __future__ import annotations

from egresswatch.decode.packet import Packet
from egresswatch.flows import Flow
from egresswatch.naming.dns import PassiveDns, dns_messages_from_tcp, parse_dns_answers
from egresswatch.naming.http import http_host, looks_like_rtsp, rtsp_host
from egresswatch.naming.quic import QuicInitialReader
from egresswatch.naming.tls import GIVE_UP, ClientHelloReader

PROTO_TCP = 6
PROTO_UDP = 17
DNS_PORTS = frozenset((53, 5353))
QUIC_PORTS = frozenset((443,))
PORT_APPS = {123: "ntp", 67: "dhcp", 68: "dhcp", 547: "dhcp", 546: "dhcp"}
DNS_BUDGET = 64
TCP_BUDGET = 6
QUIC_BUDGET = 3
TCP_DNS_BUFFER = 65536
PASSIVE_DNS_ENTRIES = 65536


class _TcpDns:
    """Response bytes of DNS over TCP, in order, until whole messages can be cut out."""

    __slots__ = ("pending",)

    def __init__(self) -> None:
        self.pending = b""


class Inspector:
    def __init__(self, dns_entries: int = PASSIVE_DNS_ENTRIES) -> None:
        self.dns = PassiveDns(dns_entries)
        self._readers: dict[int, object] = {}

    def flow_started(self, flow: Flow, device_is_a: bool, pkt: Packet) -> None:
        ports = (flow.a_port, flow.b_port)
        if flow.a_port is None:
            return
        if DNS_PORTS.intersection(ports):
            flow.app = "dns"
            flow.inspect = DNS_BUDGET
            if flow.proto == PROTO_TCP:
                self._readers[id(flow)] = _TcpDns()
        elif flow.proto == PROTO_TCP:
            flow.inspect = TCP_BUDGET
        elif flow.proto == PROTO_UDP and QUIC_PORTS.intersection(ports):
            flow.inspect = QUIC_BUDGET
            self._readers[id(flow)] = QuicInitialReader()
        else:
            flow.app = PORT_APPS.get(flow.b_port) or PORT_APPS.get(flow.a_port)  # type: ignore[arg-type]

    def payload(self, flow: Flow, from_a: bool, pkt: Packet, buf: bytes, ts: float) -> None:
        flow.inspect -= 1
        payload = buf[pkt.payload_off : pkt.payload_end]
        if flow.app == "dns":
            self._dns(flow, pkt, payload, ts)
        elif flow.proto == PROTO_TCP:
            if from_a:
                self._tcp_client(flow, payload)
        elif from_a:
            self._quic(flow, payload)
        if not flow.inspect:
            self._readers.pop(id(flow), None)

    def flow_ended(self, flow: Flow) -> None:
        self._readers.pop(id(flow), None)

    def name_for(self, client: bytes, server: bytes, now: float) -> str | None:
        return self.dns.name_for(client, server, now) or self.dns.name_for_any(server, now)

    def _dns(self, flow: Flow, pkt: Packet, payload: bytes, ts: float) -> None:
        if pkt.sport not in DNS_PORTS:
            return  # a query: the answers are what name addresses
        if flow.proto == PROTO_TCP:
            stream = self._readers.get(id(flow))
            if not isinstance(stream, _TcpDns):
                return
            messages, stream.pending = dns_messages_from_tcp(stream.pending + payload)
            if len(stream.pending) > TCP_DNS_BUFFER:
                stream.pending = b""
        else:
            messages = [payload]
        for message in messages:
            answers = parse_dns_answers(message)
            if answers:
                self.dns.learn(pkt.dst, answers, ts)

    def _tcp_client(self, flow: Flow, payload: bytes) -> None:
        reader = self._readers.get(id(flow))
        if reader is None:
            if payload[:1] == b"\x16":
                reader = self._readers[id(flow)] = ClientHelloReader()
            else:
                self._plaintext(flow, payload)
                return
        if not isinstance(reader, ClientHelloReader):
            return
        answer = reader.feed(payload)
        if reader.is_tls:
            flow.app = "tls"
        if answer is None:
            return
        if answer is not GIVE_UP:
            flow.domain = answer  # type: ignore[assignment]
        flow.inspect = 0

    def _plaintext(self, flow: Flow, payload: bytes) -> None:
        if looks_like_rtsp(payload):
            flow.app = "rtsp"
            flow.domain = flow.domain or rtsp_host(payload)
        else:
            host = http_host(payload)
            if host is not None:
                flow.app = "http"
                flow.domain = flow.domain or host
        flow.inspect = 0

    def _quic(self, flow: Flow, payload: bytes) -> None:
        reader = self._readers.get(id(flow))
        if not isinstance(reader, QuicInitialReader):
            return
        answer = reader.feed(payload)
        if answer is None:
            return
        if answer is not GIVE_UP and isinstance(answer, str):
            flow.app = "quic"
            flow.domain = answer
        flow.inspect = 0
