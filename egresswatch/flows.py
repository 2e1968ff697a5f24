"""The flow meter: the per-packet hot loop, the bounded flow table and its timers.

Per packet the common case is an established TCP/UDP flow (Ethernet, untagged or one 802.1Q tag;
IPv4 without options or fragmentation, or IPv6 without extension headers) that needs no more
payload inspection. It lives in a "fast" table (`FastTable`) keyed by the raw bytes src address,
dst address, src port, dst port (contiguous in both IP versions), with both directions' keys
inserted, each mapping to that direction's `FlowSide`. A scan counts such packets straight into
their side, folds SYN/FIN/RST into the flow's TCP state (`tcp_update`), and stops at the first
packet that needs Python: the C extension `_fastpath` when it is built, else `scan_batch` here,
its reference (same contract, tests/test_fastpath.py). Every other packet is decoded in full
(`egresswatch.decode`) on the slow path.

Nothing here knows about devices, countries or policy: the pipeline's `FlowHooks` do.
Time is packet time; `advance(now)` runs the timers.
"""

from __future__ import annotations

import struct
from typing import Protocol

from egresswatch.capture import LINKTYPE_ETHERNET, META_STRUCT, Batch
from egresswatch.config import FlowConfig
from egresswatch.decode.packet import Packet
from egresswatch.decode.registry import Decoder
from egresswatch.model import Totals

PROTO_TCP = 6
PROTO_UDP = 17
TCP_FIN = 0x01
TCP_SYN = 0x02
TCP_RST = 0x04
TCP_STATE_FLAGS = TCP_FIN | TCP_SYN | TCP_RST
FIN_A = 1
FIN_B = 2
CLOSED = 4
FRAGMENT_OWNERS_MAX = 8192
FRAGMENT_PENDING_MAX = 4096
FRAGMENT_PENDING_SECONDS = 30
EVICTION_BATCH_DIVISOR = 256  # evict flows.max / 256 flows at a time
EVICTION_BATCH_MIN = 16
EVICTION_SAMPLE = 4  # from a sample of 4x that many, due soonest
MAC_INTERN_MAX = 65536
TIMER_WORK_PER_SECOND = 100_000
PORTS = struct.Struct("!HH")
ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_IPV6 = 0x86DD
ETHERTYPE_VLAN = 0x8100
# Header fields the fast path reads, from the start of an Ethernet frame, in one unpack each:
# ethertype, IPv4 version+IHL, total length, flags+fragment offset, protocol, the flow key
# (src, dst, src port, dst port: 12 bytes) and the TCP flags byte.
IPV4_LAYOUT = struct.Struct("!12xHBxH2xHxB2x12s8xxB")
# the same behind one 802.1Q tag (the TPID is the ethertype read above): TCI first
TAGGED_IPV4_LAYOUT = struct.Struct("!14xHHBxH2xHxB2x12s8xxB")
# IPv6: version+traffic class, payload length, next header, key (16+16+2+2 bytes), TCP flags
IPV6_LAYOUT = struct.Struct("!14xB3xHBx36s8xxB")
TAGGED_IPV6_LAYOUT = struct.Struct("!14xH2xB3xHBx36s8xxB")
IPV4_MIN, TAGGED_IPV4_MIN = IPV4_LAYOUT.size, TAGGED_IPV4_LAYOUT.size
IPV6_MIN, TAGGED_IPV6_MIN = IPV6_LAYOUT.size, TAGGED_IPV6_LAYOUT.size
ITER_META = META_STRUCT.iter_unpack
# Why `scan` stopped at a record: the batch is done; the record's second is past the meter's
# clock (run the timers first); the record needs the slow path; the record was counted and its
# FIN or RST left the returned side's flow closed (set its close timer).
SCAN_END, SCAN_TICK, SCAN_SLOW, SCAN_CLOSED = range(4)

FastTables = tuple["FastTable", "FastTable"]
"""A (TCP, UDP) pair of fast tables: flow key bytes -> FlowSide."""
ScanResult = tuple[int, int, int, "FlowSide | None", int]


def tcp_update(flow: Flow, from_a: bool, flags: int) -> bool:
    """Fold a packet's TCP flags into its flow's state; whether a FIN or RST left the flow closed
    (its close timer is then due, which the meter sets). The reference for _fastpath.c's."""
    flow.tcp_flags |= flags
    if not flags & (TCP_FIN | TCP_RST):
        return False
    if flags & TCP_RST:
        flow.state |= CLOSED
    else:
        flow.state |= FIN_A if from_a else FIN_B
        if flow.state & (FIN_A | FIN_B) == FIN_A | FIN_B:
            flow.state |= CLOSED
    return bool(flow.state & CLOSED)


def scan_batch(
    buf: bytes, meta: bytes, start: int, clock: int, untagged: FastTables, vlans: dict[int, FastTables]
) -> ScanResult:
    """Count the fast-path packets of an Ethernet batch from record `start` on, until one needs
    Python: (reason, record index, IP bytes counted, side, TCP flags). A SYN, FIN or RST updates
    its flow's TCP state on the way. The reference for the C scan in _fastpath.c, and the scan
    when that is not built.

    One unpack per packet reads every header field the fast path needs, the flow key included.
    """
    vlans_get = vlans.get
    ipv4 = IPV4_LAYOUT.unpack_from
    tagged_ipv4 = TAGGED_IPV4_LAYOUT.unpack_from
    ipv6 = IPV6_LAYOUT.unpack_from
    tagged_ipv6 = TAGGED_IPV6_LAYOUT.unpack_from
    ip_bytes = 0
    for index, (sec, usec, off, caplen) in enumerate(ITER_META(memoryview(meta)[start * 16 :]), start):
        if sec > clock:
            return SCAN_TICK, index, ip_bytes, None, 0
        if caplen >= IPV4_MIN:
            etype, vihl, length, frag, proto, key, flags = ipv4(buf, off)
            tables = None
            if etype == ETHERTYPE_IPV4:
                if vihl == 0x45 and not frag & 0x3FFF:
                    tables = untagged
            elif etype == ETHERTYPE_VLAN:
                if caplen >= TAGGED_IPV4_MIN:
                    tci, etype, vihl, length, frag, proto, key, flags = tagged_ipv4(buf, off)
                    if etype == ETHERTYPE_IPV4 and vihl == 0x45 and not frag & 0x3FFF:
                        tables = vlans_get(tci & 0x0FFF)
                    elif etype == ETHERTYPE_IPV6 and caplen >= TAGGED_IPV6_MIN:
                        tci, version, length, proto, key, flags = tagged_ipv6(buf, off)
                        if version >> 4 == 6:
                            tables = vlans_get(tci & 0x0FFF)
                            length += 40
            elif etype == ETHERTYPE_IPV6 and caplen >= IPV6_MIN:
                version, length, proto, key, flags = ipv6(buf, off)
                if version >> 4 == 6:
                    tables = untagged
                    length += 40
            if tables is not None:
                if proto == PROTO_TCP:
                    side = tables[0].get(key)
                elif proto == PROTO_UDP:
                    side = tables[1].get(key)
                    flags = 0
                else:
                    side = None
                if side is not None:
                    side.packets += 1
                    side.bytes += length
                    side.sec = sec
                    side.usec = usec
                    ip_bytes += length
                    if flags & TCP_STATE_FLAGS and tcp_update(side.flow, side.is_a, flags):
                        return SCAN_CLOSED, index, ip_bytes, side, flags
                    continue
        return SCAN_SLOW, index, ip_bytes, None, 0
    return SCAN_END, len(meta) // META_STRUCT.size, ip_bytes, None, 0


try:
    # FastTable: bytes -> FlowSide, which the C scan looks a frame's key up in where it lies
    from egresswatch._fastpath import FastTable
    from egresswatch._fastpath import FlowState as FlowBase
    from egresswatch._fastpath import Side as SideBase
    from egresswatch._fastpath import scan as SCAN
except ImportError:  # built without a C compiler: the same scan, in Python, over dicts
    FastTable = dict
    FlowBase = SideBase = object
    SCAN = scan_batch


class FlowSide(SideBase):  # type: ignore[misc,valid-type]
    """One direction of a flow: what the hot loop updates."""

    # With the C scan the fields live in its Side type; without it they are slots here.
    __slots__ = () if SideBase is not object else ("bytes", "flow", "is_a", "packets", "sec", "usec")

    def __init__(self, flow: Flow, is_a: bool, ts: float) -> None:
        self.flow: Flow | None = flow
        """None once the flow has ended."""
        self.is_a = is_a
        self.packets = 0
        self.bytes = 0
        # Time of the latest packet as sec + usec: the scan stores the two integers the capture
        # gives it rather than building a float per packet; the slow path stores a float packet
        # time in `sec` and 0 in `usec`.
        self.sec: float = ts
        self.usec = 0

    if SideBase is object:  # the C type has `last` as a getter (asked at every report and timer)

        @property
        def last(self) -> float:
            return self.sec + self.usec * 1e-6


class Flow(FlowBase):  # type: ignore[misc,valid-type]
    """A bidirectional flow; `a` is the side that sent the first packet we saw."""

    # With the C scan `tcp_flags` and `state` live in its FlowState type, which it updates.
    __slots__ = (
        "a", "a_ip", "a_mac", "a_port", "app", "b", "b_ip", "b_mac", "b_port", "ctx", "deadline", "domain",
        "first", "inspect", "key_a", "key_b", "next_report", "proto", "vlan",
        *(() if FlowBase is not object else ("state", "tcp_flags")),
    )  # fmt: skip

    def __init__(self, pkt: Packet, ts: float) -> None:
        self.vlan = pkt.vlan
        self.proto = pkt.proto
        self.a_ip = pkt.src
        self.b_ip = pkt.dst
        self.a_port = pkt.sport
        self.b_port = pkt.dport
        self.a_mac = pkt.src_mac
        self.b_mac = pkt.dst_mac
        self.a = FlowSide(self, True, ts)
        self.b = FlowSide(self, False, ts)
        self.first = ts
        self.tcp_flags = 0
        """OR of the TCP flags of every slow-path packet and every SYN, FIN and RST (the scan's too)."""
        self.state = 0
        self.inspect = 0
        """Payload packets the hooks still want to see; 0 lets the flow onto the fast path."""
        self.app: str | None = None
        self.domain: str | None = None
        self.ctx: object = None
        self.deadline = 0
        self.next_report = 0.0
        # The flow's two table keys, a->b and b->a: bytes in a fast table, tuples in the slow
        # table; None once the flow has ended.
        self.key_a: bytes | tuple | None = None
        self.key_b: bytes | tuple | None = None

    @property
    def last(self) -> float:
        return max(self.a.last, self.b.last)

    @property
    def ip_version(self) -> int:
        return 4 if len(self.a_ip) == 4 else 6


def _last_packet(flow: Flow) -> float:
    return flow.last


class FlowHooks(Protocol):
    def flow_started(self, flow: Flow, pkt: Packet) -> None: ...

    def payload(self, flow: Flow, from_a: bool, pkt: Packet, buf: bytes, ts: float) -> None: ...

    def non_ip(self, pkt: Packet, buf: bytes, off: int, end: int, ts: float) -> None: ...

    def flow_report(self, flow: Flow, action: str) -> None: ...


class Meter:
    def __init__(self, cfg: FlowConfig, hooks: FlowHooks, totals: Totals) -> None:
        self._cfg = cfg
        self._hooks = hooks
        self.totals = totals
        self._decoder = Decoder()
        self._scan = SCAN
        # Fast tables, (TCP, UDP), for untagged flows and per 802.1Q VLAN id.
        self._untagged: FastTables = (FastTable(), FastTable())
        self._vlans: dict[int, FastTables] = {}
        self._slow: dict[tuple, FlowSide] = {}
        self._active = 0
        self._wheel: dict[int, list[Flow]] = {}
        self._clock = -1
        self._now = 0.0
        self._macs: dict[bytes, bytes] = {}
        self._fragment_owner: dict[tuple, FlowSide] = {}
        self._fragment_pending: dict[tuple, list[tuple[float, int, Packet]]] = {}

    def reconfigure(self, cfg: FlowConfig) -> None:
        """New limits and timeouts; they apply as flows are next checked."""
        self._cfg = cfg

    # ------------------------------------------------------------------ hot loop
    def feed(self, batch: Batch) -> None:
        linktype, buf, meta = batch
        if linktype == LINKTYPE_ETHERNET:
            self._feed_ethernet(buf, meta)
        else:
            for sec, usec, off, caplen in ITER_META(meta):
                if sec > self._clock:
                    self._tick(sec)
                self._slow_path(linktype, buf, off, off + caplen, sec + usec * 1e-6)
        self.totals.packets += len(meta) // META_STRUCT.size
        self.totals.active_flows = self._active

    def _feed_ethernet(self, buf: bytes, meta: bytes) -> None:
        """The scan counts what it can; each record it stops at is handled here, then it resumes."""
        scan = self._scan
        untagged, vlans = self._untagged, self._vlans
        totals = self.totals
        index = 0
        while True:
            reason, index, ip_bytes, side, _ = scan(buf, meta, index, self._clock, untagged, vlans)
            totals.ip_bytes += ip_bytes
            if reason == SCAN_CLOSED:
                self._close_timer(side.flow)  # type: ignore[union-attr]
                index += 1
            elif reason == SCAN_END:
                return
            else:
                sec, usec, off, caplen = META_STRUCT.unpack_from(meta, index * META_STRUCT.size)
                if reason == SCAN_TICK:
                    self._tick(sec)
                else:
                    self._slow_path(LINKTYPE_ETHERNET, buf, off, off + caplen, sec + usec * 1e-6)
                    index += 1

    def _tick(self, sec: int) -> None:
        self.advance(sec)
        self._clock = sec

    # ------------------------------------------------------------------ slow path
    def _slow_path(self, linktype: int, buf: bytes, off: int, end: int, ts: float) -> None:
        pkt = Packet()
        anomaly = self._decoder.decode(linktype, buf, off, end, pkt)
        if anomaly is not None:
            errors = self.totals.decode_errors
            if errors is None:
                errors = self.totals.decode_errors = {}
            errors[anomaly] = errors.get(anomaly, 0) + 1
            return
        if not pkt.ip_version:
            self._hooks.non_ip(pkt, buf, off, end, ts)
            return
        self.totals.ip_bytes += pkt.ip_bytes
        if pkt.frag_id is not None and pkt.frag_offset:
            self._later_fragment(pkt, ts)
            return
        side = self._side_for(pkt, ts)
        self._count(side, pkt, ts)
        if pkt.frag_id is not None:
            self._first_fragment(side, pkt)
        flow = side.flow
        if pkt.proto == PROTO_TCP and tcp_update(flow, side.is_a, pkt.tcp_flags):
            self._close_timer(flow)
        if flow.inspect and pkt.payload_end > pkt.payload_off:
            self._hooks.payload(flow, side.is_a, pkt, buf, ts)
            if not flow.inspect:
                self._promote(flow)

    def _side_for(self, pkt: Packet, ts: float) -> FlowSide:
        fast_key = None
        if pkt.sport is not None:
            fast_key = pkt.src + pkt.dst + PORTS.pack(pkt.sport, pkt.dport)
            table = self._fast_table(pkt.proto, pkt.vlan, create=False)
            if table is not None:
                side = table.get(fast_key)
                if side is not None:
                    return side
        key = (pkt.vlan, pkt.proto, pkt.src, pkt.dst, pkt.sport, pkt.dport)
        side = self._slow.get(key)
        if side is not None:
            return side
        return self._new_flow(pkt, ts, key, fast_key)

    def _new_flow(self, pkt: Packet, ts: float, key: tuple, fast_key: bytes | None) -> FlowSide:
        """A flow from its first packet; `fast_key` is that packet's fast-table key, if it has one."""
        if self._active >= self._cfg.max:
            self._evict()
        flow = Flow(pkt, ts)
        self._share_addresses(flow)
        self._active += 1
        self.totals.flows += 1
        flow.next_report = ts + self._cfg.active_timeout
        self._schedule(flow, min(ts + self._idle_timeout(flow), flow.next_report))
        self._hooks.flow_started(flow, pkt)
        # Straight into a fast table when the hooks want no payload (most flows): no slow-table
        # entry to make and take out again.
        if flow.inspect or not self._insert_fast(flow, fast_key):
            reverse = (pkt.vlan, pkt.proto, pkt.dst, pkt.src, pkt.dport, pkt.sport)
            flow.key_a, flow.key_b = key, reverse
            self._slow[key] = flow.a
            self._slow[reverse] = flow.b
        return flow.a

    def _share_addresses(self, flow: Flow) -> None:
        """One bytes object per MAC address, not two per flow: most flows share the gateway's."""
        macs = self._macs
        if len(macs) >= MAC_INTERN_MAX:
            macs.clear()
        if flow.a_mac is not None:
            flow.a_mac = macs.setdefault(flow.a_mac, flow.a_mac)
        if flow.b_mac is not None:
            flow.b_mac = macs.setdefault(flow.b_mac, flow.b_mac)

    def _promote(self, flow: Flow) -> None:
        """Move a flow that needs no more inspection from the slow table onto the fast path."""
        if not isinstance(flow.key_a, tuple):
            return
        slow_a, slow_b = flow.key_a, flow.key_b
        if self._insert_fast(flow):
            self._slow.pop(slow_a, None)
            self._slow.pop(slow_b, None)

    def _insert_fast(self, flow: Flow, key_a: bytes | None = None) -> bool:
        """Key a TCP/UDP flow in its fast table (`key_a`, its a->b key, if already made); False for
        a flow the fast path cannot carry."""
        if flow.a_port is None:
            return False
        table = self._fast_table(flow.proto, flow.vlan, create=True)
        if table is None:
            return False
        if key_a is None:
            key_a = flow.a_ip + flow.b_ip + PORTS.pack(flow.a_port, flow.b_port)
        key_b = flow.b_ip + flow.a_ip + PORTS.pack(flow.b_port, flow.a_port)
        table[key_a] = flow.a
        table[key_b] = flow.b
        flow.key_a, flow.key_b = key_a, key_b
        return True

    def _fast_table(self, proto: int, vlan: int | None, create: bool) -> FastTable | None:
        if proto == PROTO_TCP:
            index = 0
        elif proto == PROTO_UDP:
            index = 1
        else:
            return None
        if vlan is None:
            return self._untagged[index]
        tables = self._vlans.get(vlan)
        if tables is None:
            if not create:
                return None
            tables = self._vlans[vlan] = (FastTable(), FastTable())
        return tables[index]

    @staticmethod
    def _count(side: FlowSide, pkt: Packet, ts: float) -> None:
        side.packets += 1
        side.bytes += pkt.ip_bytes
        side.sec = ts
        side.usec = 0

    def _close_timer(self, flow: Flow) -> None:
        self._schedule(flow, flow.last + self._cfg.tcp_closed_timeout)

    # ------------------------------------------------------------------ fragments
    def _first_fragment(self, side: FlowSide, pkt: Packet) -> None:
        key = (pkt.vlan, pkt.proto, pkt.src, pkt.dst, pkt.frag_id)
        owners = self._fragment_owner
        if len(owners) >= FRAGMENT_OWNERS_MAX:
            del owners[next(iter(owners))]
        owners[key] = side
        for ts, _length, early in self._fragment_pending.pop(key, ()):
            self._count(side, early, ts)

    def _later_fragment(self, pkt: Packet, ts: float) -> None:
        key = (pkt.vlan, pkt.proto, pkt.src, pkt.dst, pkt.frag_id)
        side = self._fragment_owner.get(key)
        if side is not None and side.flow is not None:  # its flow has not ended
            self._count(side, pkt, ts)
            return
        # The first fragment has not arrived yet (reordering): hold the counts until it does.
        pending = self._fragment_pending
        if key not in pending and len(pending) >= FRAGMENT_PENDING_MAX:
            self._orphan_fragments(next(iter(pending)))
        pending.setdefault(key, []).append((ts, pkt.ip_bytes, pkt))

    def _orphan_fragments(self, key: tuple) -> None:
        """Fragments whose first fragment never came: count them in a port-less flow of their addresses."""
        for ts, _length, pkt in self._fragment_pending.pop(key, ()):
            pkt.sport = pkt.dport = None
            self._count(self._side_for(pkt, ts), pkt, ts)

    # ------------------------------------------------------------------ timers
    def _idle_timeout(self, flow: Flow) -> float:
        if flow.state & CLOSED:
            return self._cfg.tcp_closed_timeout
        if flow.proto == PROTO_TCP:
            return self._cfg.idle_tcp
        if flow.proto == PROTO_UDP:
            return self._cfg.idle_udp
        return self._cfg.idle_other

    def _schedule(self, flow: Flow, when: float) -> None:
        second = int(when) + 1
        flow.deadline = second
        bucket = self._wheel.get(second)
        if bucket is None:
            self._wheel[second] = [flow]
        else:
            bucket.append(flow)

    def advance(self, now: float) -> None:
        """Run idle and active timers for every deadline up to `now` (packet time or wall clock)."""
        self._now = now
        wheel = self._wheel
        due = sorted(second for second in wheel if second <= now)
        budget = TIMER_WORK_PER_SECOND
        for second in due:
            bucket = wheel.pop(second)
            if len(bucket) > budget:
                # Bounded work per tick: the rest waits for the next second.
                wheel.setdefault(int(now) + 1, []).extend(bucket[budget:])
                bucket = bucket[:budget]
            budget -= len(bucket)
            for flow in bucket:
                if flow.key_a is not None and flow.deadline == second:
                    self._check(flow, now)
            if budget <= 0:
                break
        if self._fragment_pending:
            stale = [k for k, v in self._fragment_pending.items() if v[0][0] + FRAGMENT_PENDING_SECONDS < now]
            for key in stale:
                self._orphan_fragments(key)
        self.totals.active_flows = self._active

    def _check(self, flow: Flow, now: float) -> None:
        idle_deadline = flow.last + self._idle_timeout(flow)
        if now >= idle_deadline:
            self._end(flow, "flow_end")
            return
        if now >= flow.next_report:
            self._hooks.flow_report(flow, "flow_update")
            flow.next_report = now + self._cfg.active_timeout
        self._schedule(flow, min(idle_deadline, flow.next_report))

    def _end(self, flow: Flow, action: str) -> None:
        if flow.key_a is None:
            return
        if isinstance(flow.key_a, bytes):
            table = self._fast_table(flow.proto, flow.vlan, create=False)
        else:
            table = self._slow
        table.pop(flow.key_a, None)  # type: ignore[union-attr]
        table.pop(flow.key_b, None)  # type: ignore[union-attr]
        flow.key_a = flow.key_b = None
        self._active -= 1
        self._hooks.flow_report(flow, action)
        # A flow and its sides refer to each other: without that cycle an ended flow is freed at
        # once, not left for the cyclic collector to find among everything else alive.
        flow.a.flow = flow.b.flow = None

    def _evict(self) -> None:
        """Make room: end the longest-idle flows among those whose timers are due soonest.

        Eviction works in batches (a share of `flows.max`) so its cost is paid once per batch, not
        per new flow. It samples flows from the earliest deadlines, ends the ones idle longest and
        puts the rest back where they were.
        """
        limit = self._cfg.max
        want = max(1, min(EVICTION_BATCH_MIN, limit // 4), limit // EVICTION_BATCH_DIVISOR)
        need = EVICTION_SAMPLE * want
        wheel = self._wheel
        sample: list[Flow] = []
        for second in sorted(wheel):
            bucket = wheel[second]
            taken = 0
            # Oldest entries first; stale ones (ended or rescheduled flows) are dropped on the way.
            while taken < len(bucket) and len(sample) < need:
                flow = bucket[taken]
                taken += 1
                if flow.key_a is not None and flow.deadline == second:
                    sample.append(flow)
            if taken < len(bucket):
                wheel[second] = bucket[taken:]
            else:
                del wheel[second]
            if len(sample) >= need:
                break
        sample.sort(key=_last_packet)
        for flow in sample[:want]:
            self.totals.evictions += 1
            self._end(flow, "flow_end")
        for flow in sample[want:]:
            wheel.setdefault(flow.deadline, []).append(flow)

    def flush(self) -> None:
        """Report every open flow as ended (end of a replay, or shutdown)."""
        if self._fragment_pending:
            for key in list(self._fragment_pending):
                self._orphan_fragments(key)
        tables = [self._slow, *self._untagged, *(t for pair in self._vlans.values() for t in pair)]
        open_flows = {side.flow for table in tables for side in table.values()}
        for flow in sorted(open_flows, key=lambda f: f.first):
            self._end(flow, "flow_end")
        self._wheel.clear()

    @property
    def active_flows(self) -> int:
        return self._active
