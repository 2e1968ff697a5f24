"""Wires the stages: capture -> flows -> attribution -> enrichment -> classification -> policy -> sinks.

The only module that knows every stage (with `learning.py`, its half that learns the site).
Per packet nothing here runs except through the meter's slow-path hooks; attribution and
geolocation happen once per flow, classification and policy once per report (the active timeout,
and the end of the flow).

Payload budgets: a flow stays on the slow path while `flow.inspect` is non-zero. Two readers
share it: the inspector (applications and names of device flows) and the site learner
(discovery, neighbour discovery, RTSP answers: any flow, device or not, since announcements come
from hosts that are not devices yet). Each keeps its own count in the flow's context and
`flow.inspect` is the larger of the two.
"""

from __future__ import annotations

import dataclasses
import gc
import ipaddress
import socket
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path

from egresswatch.capture import Batch, CaptureSource
from egresswatch.capture.files import open_capture
from egresswatch.catalogue import Catalogue
from egresswatch.classify import APP_CATEGORIES, FlowFacts, classify
from egresswatch.config import Config
from egresswatch.decode.packet import Packet
from egresswatch.devices import DeviceDirectory
from egresswatch.flows import Flow, Meter
from egresswatch.geo import Geo
from egresswatch.inspection import Inspector
from egresswatch.learning import SiteLearning
from egresswatch.localnet import LocalNetworks
from egresswatch.model import Device, FlowReport, Place, Totals, Verdict
from egresswatch.policy import Policy
from egresswatch.sinks import Sink
from egresswatch.workers import address_share, replay_parallel

TRANSPORTS = {1: "icmp", 6: "tcp", 17: "udp", 58: "ipv6-icmp", 132: "sctp"}
ALERT_MEMORY = 65536
LOCAL_VERDICT = Verdict("local", None)
DNS_PORT = 53


class FlowContext:
    """What the pipeline remembers per flow between reports."""

    __slots__ = ("device", "device_is_a", "egress", "inspect", "listen", "place", "reported", "shadow")

    def __init__(self, device: Device | None, device_is_a: bool, egress: bool, place: Place | None) -> None:
        self.inspect = 0
        """The inspector's remaining payload budget."""
        self.listen = 0
        """The site learner's remaining payload budget."""
        self.shadow = False
        """A DNS flow another worker owns: learn names from it, report nothing (see workers.py)."""
        self.device = device
        self.device_is_a = device_is_a
        self.egress = egress
        self.place = place
        self.reported = (0, 0, 0, 0)
        """(source bytes, destination bytes, source packets, destination packets) at the last report."""


UNATTRIBUTED = FlowContext(None, True, False, None)
"""The context of every flow that has no device, nothing to learn from and no event to give."""


def _ip_text(packed: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET if len(packed) == 4 else socket.AF_INET6, packed)


def _mac_text(mac: bytes | None) -> str | None:
    return mac.hex(":") if mac else None


class Pipeline:
    def __init__(
        self,
        config: Config,
        sinks: Sequence[Sink],
        geo: Geo | None = None,
        share: tuple[int, int] | None = None,
    ) -> None:
        self.totals = Totals()
        self._shadows: set[Flow] = set()
        """Open flows another worker owns (`share`): counted by the meter, taken out when they end."""
        self._share = share
        self._sinks = tuple(sinks)
        self.learning = SiteLearning(config, self._is_local)
        self._alerted: OrderedDict[tuple[str, str, str], float] = OrderedDict(self.learning.alerts)
        self._clock: float | None = None
        """Packet time of the latest flow report."""
        self._apply(config, geo or Geo(config.geoip))
        self._inspector = Inspector(Catalogue.load(), self._app_changed)
        self._meter = Meter(config.flows, self, self.totals)

    def _apply(self, config: Config, geo: Geo) -> None:
        self.config = config
        self.geo = geo
        self._local = LocalNetworks(config.local_networks)
        self._devices = DeviceDirectory(
            config.devices,
            self._local,
            bindings=self.learning.bindings,
            evidence=self.learning.discovery,
        )
        self._policy = Policy(config.groups)

    def _is_local(self, ip: bytes) -> bool:
        """The site's local networks as currently configured: one cache for every stage, and a
        reload that changes `networks.local` reaches the learner too."""
        return self._local.is_local(ip)

    # ------------------------------------------------------------------ driving
    def feed(self, batch: Batch) -> None:
        self._meter.feed(batch)

    def advance(self, now: float) -> None:
        self._meter.advance(now)
        self.learning.tick(now)

    def reload(self, config: Config, geo: Geo | None = None) -> None:
        """Swap inventory, policy, timeouts and geolocation; open flows keep their attribution."""
        self._apply(config, geo or self.geo)
        self._meter.reconfigure(config.flows)

    def finish(self) -> Totals:
        self._meter.flush()
        self.learning.close(self._clock)
        self.totals.active_flows = 0
        for sink in self._sinks:
            sink.close(self.totals)
        return self.totals

    # ------------------------------------------------------------------ flow hooks
    def flow_started(self, flow: Flow, pkt: Packet) -> None:
        listen = self.learning.flow_started(flow, flow.first)
        lookup = self._devices.lookup
        device = lookup(flow.a_mac, flow.a_ip, flow.first)
        device_is_a = True
        if device is None:
            device = lookup(flow.b_mac, flow.b_ip, flow.first)
            device_is_a = device is None
        place = None
        egress = False
        if device is not None:
            remote = flow.b_ip if device_is_a else flow.a_ip
            egress = not self._local.is_local(remote)
            if egress:
                place = self.geo.locate(remote)
        shadow = False
        # Every frame of a tunnel reaches the worker of its outer pair: a DNS flow inside is that
        # worker's own, whatever its inner pair would hash to.
        if self._share is not None and DNS_PORT in (flow.a_port, flow.b_port) and not pkt.tunnel_depth:
            worker, workers = self._share
            shadow = address_share(flow.a_ip, flow.b_ip, workers) != worker
        if device is None and not listen and not shadow and self.config.events.flows != "all":
            # Nothing to inspect, learn or report: one shared context (memory per flow counts
            # when a site has a million of them).
            flow.ctx = UNATTRIBUTED
            return
        ctx = flow.ctx = FlowContext(device, device_is_a, egress, place)
        ctx.shadow = shadow
        if shadow:
            self._shadows.add(flow)
        if device is not None:
            self._inspector.flow_started(flow, device_is_a, pkt)
        ctx.inspect, ctx.listen = flow.inspect, listen
        flow.inspect = max(flow.inspect, listen)

    def payload(self, flow: Flow, from_a: bool, pkt: Packet, buf: bytes, ts: float) -> None:
        ctx: FlowContext = flow.ctx  # type: ignore[assignment]
        if ctx.listen:
            ctx.listen -= 1
            self.learning.payload(flow, from_a, pkt, buf[pkt.payload_off : pkt.payload_end], ts)
        if ctx.inspect:
            flow.inspect = ctx.inspect
            self._inspector.payload(flow, from_a, pkt, buf, ts)
            ctx.inspect = flow.inspect
        flow.inspect = max(ctx.inspect, ctx.listen)

    def non_ip(self, pkt: Packet, buf: bytes, off: int, end: int, ts: float) -> None:
        """ARP and other non-IP frames: counted as packets; ARP teaches bindings."""
        self.learning.non_ip(pkt, buf, ts)

    def flow_report(self, flow: Flow, action: str, held_back: tuple[bool, int] | None = None) -> None:
        """Report the flow to the sinks; ``held_back`` is (from a, IP bytes) of one packet already
        counted that this report must leave out (it belongs to the next report)."""
        ctx: FlowContext = flow.ctx  # type: ignore[assignment]
        if ctx.shadow:
            if action == "flow_end":
                self._inspector.flow_ended(flow)
                self._forget(flow)
            return
        if action == "flow_end" and ctx.device is not None:
            self._inspector.flow_ended(flow)  # only a device's flows are inspected
        if ctx.device is None and self.config.events.flows != "all":
            # No sink keeps flows without a device unless every flow is an event: learn, don't report.
            self._learn_from_unattributed(flow, ctx)
            return
        report = self._report(flow, ctx, action, held_back)
        self._learn_from(report, flow, ctx)
        for sink in self._sinks:
            sink.flow(report)
        verdict = report.verdict
        if verdict is not None and verdict.verdict == "violation" and self._should_alert(report):
            for sink in self._sinks:
                sink.alert(report)

    def _learn_from(self, report: FlowReport, flow: Flow, ctx: FlowContext) -> None:
        """Cloud evidence for the local end, the device's baseline, and a periodic state write."""
        if report.device is None:
            self._learn_from_unattributed(flow, ctx, report.domain)
            return
        self._tick_learning(report.end)
        if report.service is not None:
            src_mac = flow.a_mac if ctx.device_is_a else flow.b_mac
            src_ip = flow.a_ip if ctx.device_is_a else flow.b_ip
            self.learning.cloud(src_mac, src_ip, report.service, report.end)
        if report.egress and report.place is not None:
            report.new_destinations = self.learning.new_destinations(
                report.device.name, report.place, report.service, report.end
            )

    def _learn_from_unattributed(self, flow: Flow, ctx: FlowContext, domain: str | None = None) -> None:
        """An unlisted host talking to a vendor's cloud is evidence of a camera (by name: payload
        signatures are only read on device flows). Its reports carry no service."""
        end = flow.last
        self._tick_learning(end)
        if self._local.is_local(flow.b_ip):
            return
        domain = domain or flow.domain or self._inspector.name_for(flow.a_ip, flow.b_ip, flow.first)
        service = self._inspector.catalogue.match_domain(domain) if domain else None
        if service is not None:
            self.learning.cloud(flow.a_mac, flow.a_ip, service, end)

    def _tick_learning(self, now: float) -> None:
        self._clock = now if self._clock is None else max(self._clock, now)
        self.learning.tick(self._clock)

    def _app_changed(self, flow: Flow, app: str, from_a: bool, ip_bytes: int) -> None:
        """Inspection saw the app change mid-flow (signalling that turns into a relay): when that
        changes the category, report the flow now so the bytes so far keep the old category and the
        packet that showed the change, and everything after it, count under the new one."""
        ctx = flow.ctx
        if not isinstance(ctx, FlowContext) or ctx.device is None:
            return
        if APP_CATEGORIES.get(flow.app or "") != APP_CATEGORIES.get(app):
            self.flow_report(flow, "flow_update", (from_a, ip_bytes))

    def _forget(self, flow: Flow) -> None:
        """Take a shadow flow back out of the totals: its owner worker counts it."""
        self._shadows.discard(flow)
        self.totals.packets -= flow.a.packets + flow.b.packets
        self.totals.ip_bytes -= flow.a.bytes + flow.b.bytes
        self.totals.flows -= 1

    def counted_totals(self) -> Totals:
        """The totals without the open shadow flows as well: what a live counter may show, since
        it must never go down (a shadow flow's packets leave `totals` only when it ends)."""
        if not self._shadows:
            return self.totals
        open_shadows = [(flow.a, flow.b) for flow in self._shadows]
        return dataclasses.replace(
            self.totals,
            packets=self.totals.packets - sum(a.packets + b.packets for a, b in open_shadows),
            ip_bytes=self.totals.ip_bytes - sum(a.bytes + b.bytes for a, b in open_shadows),
            flows=self.totals.flows - len(open_shadows),
        )

    # ------------------------------------------------------------------ reports
    def _report(
        self, flow: Flow, ctx: FlowContext, action: str, held_back: tuple[bool, int] | None = None
    ) -> FlowReport:
        src_ip, dst_ip = (flow.a_ip, flow.b_ip) if ctx.device_is_a else (flow.b_ip, flow.a_ip)
        src_port, dst_port = (flow.a_port, flow.b_port) if ctx.device_is_a else (flow.b_port, flow.a_port)
        src_mac, dst_mac = (flow.a_mac, flow.b_mac) if ctx.device_is_a else (flow.b_mac, flow.a_mac)
        counts = [flow.a.bytes, flow.b.bytes, flow.a.packets, flow.b.packets]
        if held_back is not None:
            side = 0 if held_back[0] else 1
            counts[side] -= held_back[1]
            counts[side + 2] -= 1
        if not ctx.device_is_a:
            counts = [counts[1], counts[0], counts[3], counts[2]]
        src_bytes, dst_bytes, src_packets, dst_packets = counts
        before = ctx.reported
        ctx.reported = (src_bytes, dst_bytes, src_packets, dst_packets)
        start, end = flow.first, flow.last
        transport = TRANSPORTS.get(flow.proto, str(flow.proto))
        domain = flow.domain or self._inspector.name_for(src_ip, dst_ip, start)
        if domain and not flow.domain:
            flow.domain = domain
        report = FlowReport(
            action=action,
            start=start,
            end=end,
            transport=transport,
            ip_version=flow.ip_version,
            vlan=flow.vlan,
            src_ip=_ip_text(src_ip),
            src_port=src_port,
            src_mac=_mac_text(src_mac),
            src_bytes=src_bytes,
            src_packets=src_packets,
            dst_ip=_ip_text(dst_ip),
            dst_port=dst_port,
            dst_mac=_mac_text(dst_mac),
            dst_bytes=dst_bytes,
            dst_packets=dst_packets,
            tcp_flags=flow.tcp_flags,
            delta_src_bytes=src_bytes - before[0],
            delta_dst_bytes=dst_bytes - before[1],
            delta_src_packets=src_packets - before[2],
            delta_dst_packets=dst_packets - before[3],
            device=ctx.device,
            egress=ctx.egress,
            place=ctx.place,
            domain=domain,
            first_report=before == (0, 0, 0, 0),
        )
        if ctx.device is not None:
            self._judge(report, flow, domain)
        return report

    def _judge(self, report: FlowReport, flow: Flow, domain: str | None) -> None:
        """Service, category and verdict of a device's flow report."""
        ctx: FlowContext = flow.ctx  # type: ignore[assignment]
        assert ctx.device is not None
        report.service = service = self._inspector.service_for(flow, domain)
        facts = FlowFacts(
            transport=report.transport,
            src_port=report.src_port,
            dst_port=report.dst_port,
            up_bytes=report.src_bytes,
            up_packets=report.src_packets,
            down_bytes=report.dst_bytes,
            down_packets=report.dst_packets,
            duration=report.end - report.start,
            app=flow.app,
            service=service.name if service else None,
        )
        report.category, report.category_reason = classify(facts, self.config.classify)
        if ctx.egress and ctx.place is not None:
            report.verdict = self._policy.judge(
                ctx.device.group,
                report.category,
                ctx.place,
                ipaddress.ip_address(report.dst_ip),
                domain,
                service.jurisdiction if service else None,
            )
        else:
            report.verdict = LOCAL_VERDICT

    def _should_alert(self, report: FlowReport) -> bool:
        """One alert per (device, destination, category) per de-duplication window."""
        assert report.device is not None and report.category is not None
        key = (report.device.name, report.dst_ip, report.category)
        last = self._alerted.get(key)
        if last is not None and report.end - last < self.config.alerts.dedup_seconds:
            return False
        self._alerted[key] = report.end
        self._alerted.move_to_end(key)
        self.learning.alert_raised(key, report.end)
        if len(self._alerted) > ALERT_MEMORY:
            self._alerted.popitem(last=False)
        return True


def settle_heap() -> None:
    """Call once a process has loaded what it keeps for life (config, OUI registry, GeoIP
    readers, the pipeline): the cyclic collector then leaves those objects out of its full
    passes, which otherwise walk every one of them again as the flow table grows."""
    gc.collect()
    gc.freeze()


def open_all(paths: Sequence[str | Path]) -> list[CaptureSource]:
    """Open every capture before reading any, so a bad path fails the run before it starts."""
    return [open_capture(path) for path in paths]


def replay(
    paths: Sequence[str | Path],
    config: Config,
    sinks: Sequence[Sink],
    progress: Callable[[int, int], None] | None = None,
    workers: int = 1,
) -> Totals:
    """Process capture files as fast as they can be read; returns the run's totals."""
    if workers > 1:
        return replay_parallel(paths, config, sinks, workers)
    sources = open_all(paths)
    pipeline = Pipeline(config, sinks)
    settle_heap()
    feed_files(pipeline, sources, progress)
    return pipeline.finish()


def feed_files(
    pipeline: Pipeline, sources: Sequence[CaptureSource], progress: Callable[[int, int], None] | None = None
) -> None:
    """Feed every batch of every source, in order, noting files that end mid-record."""
    total = sum(source.size_bytes or 0 for source in sources)
    done = 0
    for source in sources:
        for batch in source:
            pipeline.feed(batch)
            if progress is not None:
                progress(done + source.position_bytes, total)
        if source.truncated_at:
            truncated = pipeline.totals.truncated_files
            if truncated is None:
                truncated = pipeline.totals.truncated_files = []
            truncated.append(f"{source.name}: {source.truncated_at}")
        done += source.size_bytes or 0
