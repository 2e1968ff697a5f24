"""What the pipeline learns about the site as it runs, and keeps across restarts (issue 6).

The pipeline's other half: it holds the learned IP <-> MAC bindings (`bindings`), the discovery
evidence per MAC (`discovery`), the destination baselines (`baseline`) and the state file
(`state`), and is fed from the pipeline's flow hooks. Like the pipeline, it is the one place that
knows these modules; none of them knows another.

Cost: nothing per packet on established flows. A flow pays here only when it starts (the OUI
vote of its local ends) and for a few payload packets of the flows that can carry what we learn
from: `listen_budget` payload packets of UDP flows on a discovery port (SADP, DHIP, Dahua 5050,
WS-Discovery, SSDP, DHCP), of ICMPv6 flows (neighbour discovery) and of TCP flows to a local
RTSP port (the server's answer). ARP frames come through the meter's non-IP hook.

State: what changed is staged and written in one transaction every `state.flush_seconds` of
packet time (at a flow report or the daemon's tick) and at the end, never per packet.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from egresswatch.baseline import Baseline
from egresswatch.bindings import BindingTable, arp_binding, ndp_binding
from egresswatch.config import Config
from egresswatch.decode.packet import Packet
from egresswatch.discovery.dhcp import DhcpInfo
from egresswatch.discovery.evidence import DISCOVERY_UDP_PORTS, DiscoveredDevice, Discovery
from egresswatch.flows import Flow
from egresswatch.model import Place, Service
from egresswatch.oui import CAMERA_VENDORS, vendor_of

if TYPE_CHECKING:
    from egresswatch.state import AlertKey, StateStore

ETHERTYPE_ARP = 0x0806
PROTO_TCP, PROTO_UDP, PROTO_ICMPV6 = 6, 17, 58
RTSP_PORTS = frozenset((554, 8554))
DISCOVERY_BUDGET = 16
"""Payload packets read per discovery-port flow: a probe and the replies of a few devices."""
NDP_BUDGET = 8
RTSP_BUDGET = 4
"""The client's request and the server's answer, with room for a second exchange."""


class SiteLearning:
    """Bindings, discovery, baselines and alert de-duplication, restored from and saved to state."""

    def __init__(self, config: Config, is_local: Callable[[bytes], bool]) -> None:
        self._is_local = is_local
        self.bindings = BindingTable(config.discovery.max_bindings)
        self.discovery = Discovery(config.discovery.max_devices)
        self.baseline = Baseline(config.baseline.learn_for, config.baseline.max_values)
        self.alerts: dict[AlertKey, float] = {}
        """(device, destination ip, category) -> last alert time, as saved before a restart."""
        self._dedup = config.alerts.dedup_seconds
        self._flush_every = config.state.flush_seconds
        self._next_flush: float | None = None
        self._store: StateStore | None = None
        if config.state.path is not None:
            from egresswatch.state import StateStore  # sqlite3, imported only for a state file

            self._store = StateStore(config.state.path)
        if self._store is not None:
            saved = self._store.load()
            self.bindings.restore(saved.bindings)  # type: ignore[arg-type]
            self.discovery.restore(saved.devices)
            self.baseline.import_state(saved.baselines)
            self.alerts = dict(sorted(saved.alerts.items(), key=lambda item: item[1]))

    # ------------------------------------------------------------------ frames and flows
    def non_ip(self, pkt: Packet, buf: bytes, ts: float) -> None:
        if pkt.l3_proto == ETHERTYPE_ARP:
            found = arp_binding(buf[pkt.payload_off : pkt.payload_end])
            if found is not None:
                self.bindings.learn(found[0], found[1], ts, "arp")

    def flow_started(self, flow: Flow, ts: float) -> int:
        """Vote for the local ends' OUI vendors; the flow's listen budget (0: nothing to learn)."""
        for mac, ip in ((flow.a_mac, flow.a_ip), (flow.b_mac, flow.b_ip)):
            # the vendor first: a cached answer that rules out most hosts before the address test
            if mac is not None and not mac[0] & 1:
                vendor = vendor_of(mac)
                if vendor in CAMERA_VENDORS and self._is_local(ip):
                    self.discovery.observe_oui(mac, vendor, ts, ip)
        if flow.proto == PROTO_ICMPV6:
            return NDP_BUDGET
        ports = (flow.a_port, flow.b_port)
        if flow.proto == PROTO_UDP and not DISCOVERY_UDP_PORTS.isdisjoint(ports):
            return DISCOVERY_BUDGET
        if flow.proto == PROTO_TCP and flow.b_port in RTSP_PORTS and self._is_local(flow.b_ip):
            return RTSP_BUDGET
        return 0

    def payload(self, flow: Flow, from_a: bool, pkt: Packet, payload: bytes, ts: float) -> None:
        """One payload packet of a listened flow."""
        if flow.proto == PROTO_ICMPV6:
            found = ndp_binding(payload, pkt.src)
            if found is not None:
                self.bindings.learn(found[0], found[1], ts, "ndp")
        elif flow.proto == PROTO_TCP:
            if not from_a:
                self.discovery.observe_rtsp(pkt.src_mac, pkt.src, payload, ts)
        elif (
            pkt.sport is not None and pkt.dport is not None and (self._is_local(pkt.src) or not any(pkt.src))
        ):
            # a local sender, or a DHCP client that has no address yet
            found = self.discovery.observe_udp(pkt.src_mac, pkt.src, pkt.sport, pkt.dport, payload, ts)
            if isinstance(found, DhcpInfo):
                for lease in found.leases():
                    if lease.released:
                        self.bindings.release(lease.ip, lease.mac, ts)
                    else:
                        self.bindings.learn(lease.ip, lease.mac, ts, "dhcp")

    def cloud(self, mac: bytes | None, ip: bytes, service: Service | None, ts: float) -> None:
        """A local host talks to a vendor's cloud service: evidence for that vendor."""
        if service is not None and service.vendor is not None and mac is not None and self._is_local(ip):
            self.discovery.observe_cloud(mac, ip, service.vendor, service.name, ts)

    def new_destinations(
        self, device: str, place: Place, service: Service | None, ts: float
    ) -> tuple[str, ...]:
        """The baseline dimensions this egress destination is new in for `device` (empty while learning)."""
        name = service.name if service else None
        return tuple(self.baseline.observe(device, place.country, place.asn, name, ts))

    def alert_raised(self, key: AlertKey, ts: float) -> None:
        if self._store is not None:
            self._store.stage_alert(*key, ts)

    def devices(self) -> list[DiscoveredDevice]:
        return self.discovery.devices()

    # ------------------------------------------------------------------ state
    def tick(self, ts: float) -> None:
        """Write what changed once `state.flush_seconds` have passed since the last write."""
        if self._store is None:
            return
        if self._next_flush is None:
            self._next_flush = ts + self._flush_every
        elif ts >= self._next_flush:
            self._next_flush = ts + self._flush_every
            self._flush(ts)

    def close(self, ts: float | None) -> None:
        """Write everything and close the state file (end of a replay, daemon shutdown)."""
        if self._store is not None:
            self._flush(ts)
            self._store.close()
            self._store = None

    def _flush(self, ts: float | None) -> None:
        store = self._store
        assert store is not None
        store.stage_bindings(self.bindings.drain_changes())
        store.stage_devices(self.discovery.drain_changes())
        store.stage_baselines(*self.baseline.drain_changes())
        if ts is not None:
            store.forget_alerts_before(ts - self._dedup)
        store.flush()
