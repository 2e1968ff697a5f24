"""Payload inspection for device flows: which application, whose service, which name.

The pipeline asks for it once per flow: ``flow_started`` sets a budget of payload packets in
``flow.inspect``, and the meter keeps the flow on the slow path only while that budget lasts, so
a flow costs nothing here once it is on the fast path. Budgets: DNS flows 64 packets (answers
name later flows), TCP 6 (the first client flight: TLS ClientHello, an HTTP/RTSP request, an
MQTT CONNECT, RTMP's C0+C1), QUIC 3, other UDP 4 (three linked RTP headers, a STUN, SRT or RTCP
packet, or a catalogue signature). Two findings buy a one-off extension, because what they
announce comes a few packets later: STUN (WebRTC media follows) and vendor P2P signalling
(DHGET/DHPOST, Baichuan negotiation), which may turn into a relay of video on the same flow.

When a flow's app changes from one recognised app to another, ``app_changed(flow, new_app,
from_a, ip_bytes)`` runs *before* the new app is set, with the IP bytes of the packet that showed it: the
pipeline reports the flow's bytes up to that packet under the old app, and the packet itself and
everything after count under the new one.

The parsers live in ``egresswatch.naming`` (names) and ``egresswatch.apps`` (applications).
"""

from __future__ import annotations

from collections.abc import Callable

from egresswatch.apps import (
    RTMP_C0C1,
    RtpShape,
    is_interleaved_rtp,
    is_mqtt_connect,
    is_rtcp,
    is_segment_upload,
    is_srt_handshake,
    is_stun,
    rtmp_handshake_start,
)
from egresswatch.catalogue import Catalogue
from egresswatch.decode.packet import Packet
from egresswatch.flows import Flow
from egresswatch.model import Service
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
UDP_BUDGET = 4
STUN_BUDGET = 12
"""Payload packets still watched after a STUN message: ICE checks and DTLS come before the media."""
SIGNALLING_BUDGET = 32
"""Payload packets still watched after vendor P2P signalling, for the switch to a relay."""
SIGNALLING_APPS = frozenset(("dh-p2p", "baichuan-p2p"))
TCP_DNS_BUFFER = 65536
PASSIVE_DNS_ENTRIES = 65536

AppChanged = Callable[[Flow, str, bool, int], None]


class _State:
    """Per-flow inspection state, dropped when the flow's budget runs out."""

    __slots__ = ("client_bytes", "extended", "reader", "rtp", "server_port")

    def __init__(self, server_port: int | None) -> None:
        self.server_port = server_port
        """The non-device end's port: where a catalogue service listens."""
        self.reader: object = None
        self.rtp = (RtpShape(), RtpShape())
        self.client_bytes = 0
        """Client payload bytes so far while an RTMP handshake is possible."""
        self.extended = False


class _TcpDns:
    """Response bytes of DNS over TCP, in order, until whole messages can be cut out."""

    __slots__ = ("pending",)

    def __init__(self) -> None:
        self.pending = b""


class Inspector:
    def __init__(
        self,
        catalogue: Catalogue,
        app_changed: AppChanged | None = None,
        dns_entries: int = PASSIVE_DNS_ENTRIES,
    ) -> None:
        self.dns = PassiveDns(dns_entries)
        self.catalogue = catalogue
        self._app_changed = app_changed
        self._states: dict[int, _State] = {}
        self._services: dict[int, Service] = {}
        """Services found by payload signature, kept until the flow ends."""

    def flow_started(self, flow: Flow, device_is_a: bool, pkt: Packet) -> None:
        ports = (flow.a_port, flow.b_port)
        if flow.a_port is None:
            return
        state = self._states[id(flow)] = _State(flow.b_port if device_is_a else flow.a_port)
        if DNS_PORTS.intersection(ports):
            flow.app = "dns"
            flow.inspect = DNS_BUDGET
            if flow.proto == PROTO_TCP:
                state.reader = _TcpDns()
        elif flow.proto == PROTO_TCP:
            flow.inspect = TCP_BUDGET
        elif flow.proto == PROTO_UDP and QUIC_PORTS.intersection(ports):
            flow.inspect = QUIC_BUDGET
            state.reader = QuicInitialReader()
        elif PORT_APPS.get(flow.b_port) or PORT_APPS.get(flow.a_port):  # type: ignore[arg-type]
            flow.app = PORT_APPS.get(flow.b_port) or PORT_APPS.get(flow.a_port)  # type: ignore[arg-type]
        elif flow.proto == PROTO_UDP:
            flow.inspect = UDP_BUDGET
        if not flow.inspect:
            del self._states[id(flow)]

    def payload(self, flow: Flow, from_a: bool, pkt: Packet, buf: bytes, ts: float) -> None:
        flow.inspect -= 1
        state = self._states.get(id(flow))
        if state is None:
            flow.inspect = 0
            return
        payload = buf[pkt.payload_off : pkt.payload_end]
        if flow.app == "dns":
            self._dns(state, pkt, payload, ts)
        elif flow.proto == PROTO_TCP:
            self._tcp(flow, state, from_a, pkt, payload)
        elif isinstance(state.reader, QuicInitialReader):
            if from_a:
                self._quic(flow, state.reader, payload)
        else:
            self._udp(flow, state, from_a, pkt, payload)
        if flow.inspect <= 0:
            flow.inspect = 0
            self._states.pop(id(flow), None)

    def flow_ended(self, flow: Flow) -> None:
        self._states.pop(id(flow), None)
        self._services.pop(id(flow), None)

    def name_for(self, client: bytes, server: bytes, now: float) -> str | None:
        return self.dns.name_for(client, server, now) or self.dns.name_for_any(server, now)

    def service_for(self, flow: Flow, domain: str | None) -> Service | None:
        """The flow's vendor service: by its destination's name first, then by payload signature."""
        by_name = self.catalogue.match_domain(domain) if domain else None
        return by_name or self._services.get(id(flow))

    # ------------------------------------------------------------------ apps
    def _set_app(self, flow: Flow, app: str, from_a: bool, pkt: Packet) -> None:
        if flow.app is not None and flow.app != app and self._app_changed is not None:
            self._app_changed(flow, app, from_a, pkt.ip_bytes)
        flow.app = app

    def _signature(self, flow: Flow, state: _State, from_a: bool, pkt: Packet, payload: bytes) -> bool:
        """A catalogue signature: sets service and app; signalling extends the budget once."""
        transport = "tcp" if flow.proto == PROTO_TCP else "udp"
        match = self.catalogue.match_payload(transport, state.server_port, payload)
        if match is None:
            return False
        self._services.setdefault(id(flow), match.service)
        self._set_app(flow, match.app, from_a, pkt)
        if match.app not in SIGNALLING_APPS:
            flow.inspect = 0
        elif not state.extended:
            state.extended = True
            flow.inspect = SIGNALLING_BUDGET
        return True

    def _udp(self, flow: Flow, state: _State, from_a: bool, pkt: Packet, payload: bytes) -> None:
        if self._signature(flow, state, from_a, pkt, payload) or flow.app in SIGNALLING_APPS:
            return
        if state.rtp[0 if from_a else 1].feed(payload):
            self._set_app(flow, "webrtc" if flow.app == "stun" else "rtp", from_a, pkt)
            flow.inspect = 0
        elif is_stun(payload):
            if flow.app is None:
                flow.app = "stun"
                flow.inspect = STUN_BUDGET
        elif flow.app is None and (is_srt_handshake(payload) or is_rtcp(payload)):
            flow.app = "srt" if is_srt_handshake(payload) else "rtcp"
            flow.inspect = 0

    def _tcp(self, flow: Flow, state: _State, from_a: bool, pkt: Packet, payload: bytes) -> None:
        if not from_a:
            if state.client_bytes:
                flow.inspect = 0  # the server spoke before RTMP's C0+C1 were complete: not RTMP
            return
        reader = state.reader
        if state.client_bytes:
            self._rtmp(flow, state, len(payload))
        elif reader is None and payload[:1] == b"\x16":
            reader = state.reader = ClientHelloReader()
        elif reader is None:
            self._plaintext(flow, state, pkt, payload)
            return
        if isinstance(reader, ClientHelloReader):
            self._tls(flow, reader, payload)

    def _rtmp(self, flow: Flow, state: _State, length: int) -> None:
        state.client_bytes += length
        if state.client_bytes == RTMP_C0C1:
            flow.app = "rtmp"
        if state.client_bytes >= RTMP_C0C1:
            flow.inspect = 0

    def _tls(self, flow: Flow, reader: ClientHelloReader, payload: bytes) -> None:
        answer = reader.feed(payload)
        if reader.is_tls:
            flow.app = "tls"
        if answer is None:
            return
        if answer is not GIVE_UP:
            flow.domain = answer  # type: ignore[assignment]
        flow.inspect = 0

    def _plaintext(self, flow: Flow, state: _State, pkt: Packet, payload: bytes) -> None:
        flow.inspect = 0
        if looks_like_rtsp(payload) or is_interleaved_rtp(payload):
            flow.app = "rtsp"
            flow.domain = flow.domain or rtsp_host(payload)
        elif is_mqtt_connect(payload):
            flow.app = "mqtt"
        elif rtmp_handshake_start(payload):
            flow.inspect = TCP_BUDGET
            self._rtmp(flow, state, len(payload))
        elif not self._signature(flow, state, True, pkt, payload):
            host = http_host(payload)
            if is_segment_upload(payload):
                flow.app = "hls"
            elif host is not None:
                flow.app = "http"
            flow.domain = flow.domain or host

    def _quic(self, flow: Flow, reader: QuicInitialReader, payload: bytes) -> None:
        answer = reader.feed(payload)
        if answer is None:
            return
        if answer is not GIVE_UP and isinstance(answer, str):
            flow.app = "quic"
            flow.domain = answer
        flow.inspect = 0

    def _dns(self, state: _State, pkt: Packet, payload: bytes, ts: float) -> None:
        if pkt.sport not in DNS_PORTS:
            return  # a query: the answers are what name addresses
        if pkt.proto == PROTO_TCP:
            stream = state.reader
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
