"""The flow meter on hand-built frames: keys, directions, timers, the bounded table, fragments."""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import replace

from egresswatch.capture import META_STRUCT, Batch
from egresswatch.config import FlowConfig
from egresswatch.decode.packet import Packet
from egresswatch.flows import Flow, Meter
from egresswatch.model import Totals

CAMERA = "10.20.1.11"
CLOUD = "198.51.100.21"
MAC_A = bytes.fromhex("4419b6200111")
MAC_B = bytes.fromhex("001b54000001")
FIN, SYN, RST, ACK = 0x01, 0x02, 0x04, 0x10


def ipv4(src: str, dst: str, proto: int, payload: bytes, *, ident: int = 0, frag: int = 0) -> bytes:
    header = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, frag, 64, proto, 0,
        ipaddress.IPv4Address(src).packed, ipaddress.IPv4Address(dst).packed,
    )  # fmt: skip
    return header + payload


def udp(src: str, dst: str, sport: int, dport: int, size: int = 100) -> bytes:
    return ipv4(src, dst, 17, struct.pack("!HHHH", sport, dport, 8 + size, 0) + bytes(size))


def tcp(src: str, dst: str, sport: int, dport: int, flags: int = ACK, size: int = 0) -> bytes:
    header = struct.pack("!HHIIBBHHH", sport, dport, 1, 1, 0x50, flags, 65535, 0, 0)
    return ipv4(src, dst, 6, header + bytes(size))


def ether(ip_packet: bytes, vlan: int | None = None, src: bytes = MAC_A, dst: bytes = MAC_B) -> bytes:
    tag = b"" if vlan is None else struct.pack("!HH", 0x8100, vlan)
    return dst + src + tag + b"\x08\x00" + ip_packet


def batch(frames: list[tuple[float, bytes]]) -> Batch:
    data = bytearray()
    meta = bytearray()
    for ts, frame in frames:
        sec = int(ts)
        meta += META_STRUCT.pack(sec, round((ts - sec) * 1e6), len(data), len(frame))
        data += frame
    return Batch(1, bytes(data), bytes(meta))


class Recorder:
    """Flow hooks that remember what the meter reported."""

    def __init__(self, inspect: int = 0) -> None:
        self.inspect = inspect
        self.reports: list[tuple[str, Flow, tuple[int, int, int, int]]] = []
        self.payloads = 0

    def flow_started(self, flow: Flow, pkt: Packet) -> None:
        flow.inspect = self.inspect

    def payload(self, flow: Flow, from_a: bool, pkt: Packet, buf: bytes, ts: float) -> None:
        self.payloads += 1
        flow.inspect -= 1

    def non_ip(self, pkt: Packet, buf: bytes, off: int, end: int, ts: float) -> None:
        pass

    def flow_report(self, flow: Flow, action: str) -> None:
        counts = (flow.a.packets, flow.a.bytes, flow.b.packets, flow.b.bytes)
        self.reports.append((action, flow, counts))

    def ended(self) -> list[Flow]:
        return [flow for action, flow, _ in self.reports if action == "flow_end"]


def meter(config: FlowConfig | None = None, inspect: int = 0) -> tuple[Meter, Recorder, Totals]:
    hooks = Recorder(inspect)
    totals = Totals()
    return Meter(config or FlowConfig(), hooks, totals), hooks, totals


T0 = 1767600000.0


def test_both_directions_are_one_flow_with_counts_per_direction() -> None:
    m, hooks, totals = meter()
    up = ether(udp(CAMERA, CLOUD, 40000, 443, size=1000))
    down = ether(udp(CLOUD, CAMERA, 443, 40000, size=50), src=MAC_B, dst=MAC_A)
    m.feed(batch([(T0, up), (T0 + 0.1, down), (T0 + 0.2, up), (T0 + 0.3, up)]))
    m.flush()
    [flow] = hooks.ended()
    assert ipaddress.IPv4Address(flow.a_ip) == ipaddress.IPv4Address(CAMERA)
    assert (flow.a.packets, flow.a.bytes) == (3, 3 * 1028)
    assert (flow.b.packets, flow.b.bytes) == (1, 78)
    assert flow.a_mac == MAC_A and flow.b_port == 443
    assert (totals.packets, totals.flows, totals.ip_bytes) == (4, 1, 3 * 1028 + 78)
    assert flow.first == T0 and abs(flow.last - (T0 + 0.3)) < 1e-6


def test_vlan_id_is_part_of_the_key_on_both_paths() -> None:
    m, hooks, _ = meter()
    frames = []
    for n in range(4):  # the first packet of each flow takes the slow path, the rest the fast path
        frames.append((T0 + n, ether(udp(CAMERA, CLOUD, 40000, 443), vlan=10)))
        frames.append((T0 + n + 0.5, ether(udp(CAMERA, CLOUD, 40000, 443), vlan=20)))
        frames.append((T0 + n + 0.7, ether(udp(CAMERA, CLOUD, 40000, 443))))
    m.feed(batch(frames))
    m.flush()
    flows = {flow.vlan: flow.a.packets for flow in hooks.ended()}
    assert flows == {10: 4, 20: 4, None: 4}


def test_udp_flow_ends_after_its_idle_timeout_in_packet_time() -> None:
    m, hooks, _ = meter(FlowConfig(idle_udp=30.0))
    m.feed(batch([(T0, ether(udp(CAMERA, CLOUD, 40000, 53)))]))
    m.advance(T0 + 29)
    assert hooks.ended() == []
    m.advance(T0 + 32)
    assert len(hooks.ended()) == 1
    assert m.active_flows == 0


def test_tcp_closes_soon_after_fin_both_ways_or_rst() -> None:
    cfg = FlowConfig(idle_tcp=300.0, tcp_closed_timeout=5.0)
    m, hooks, _ = meter(cfg)
    frames = [
        (T0, ether(tcp(CAMERA, CLOUD, 40000, 443, SYN))),
        (T0 + 1, ether(tcp(CAMERA, CLOUD, 40000, 443, ACK, size=500))),
        (T0 + 2, ether(tcp(CAMERA, CLOUD, 40000, 443, FIN | ACK))),
        (T0 + 2.1, ether(tcp(CLOUD, CAMERA, 443, 40000, FIN | ACK), src=MAC_B, dst=MAC_A)),
        (T0 + 3, ether(tcp(CAMERA, CLOUD, 40001, 443, SYN))),
        (T0 + 3.5, ether(tcp(CLOUD, CAMERA, 443, 40001, RST | ACK), src=MAC_B, dst=MAC_A)),
    ]
    m.feed(batch(frames))
    m.advance(T0 + 10)
    ended = hooks.ended()
    assert sorted(flow.a_port for flow in ended) == [40000, 40001]
    assert all(flow.tcp_flags & SYN for flow in ended)


def test_long_flows_report_at_the_active_timeout_with_cumulative_counts() -> None:
    m, hooks, _ = meter(FlowConfig(active_timeout=60.0))
    frames = [(T0 + n, ether(udp(CAMERA, CLOUD, 40000, 5004, size=1000))) for n in range(150)]
    m.feed(batch(frames))
    m.flush()
    actions = [(action, counts[0]) for action, _, counts in hooks.reports]
    assert [a for a, _ in actions] == ["flow_update", "flow_update", "flow_end"]
    packets = [p for _, p in actions]
    assert packets == sorted(packets) and packets[-1] == 150
    assert 59 <= packets[0] <= 62 and 119 <= packets[1] <= 122


def test_the_table_is_bounded_and_evicts_the_longest_idle_flows() -> None:
    m, hooks, totals = meter(FlowConfig(max=10))
    frames = []
    for n in range(50):
        frames.append((T0 + n * 0.01, ether(udp(CAMERA, CLOUD, 30000 + n, 443))))
        # flow 0 stays busy: it must survive every eviction
        frames.append((T0 + n * 0.01 + 0.005, ether(udp(CAMERA, CLOUD, 30000, 443))))
    m.feed(batch(frames))
    assert m.active_flows <= 10
    assert totals.evictions == 40
    evicted_ports = {flow.a_port for flow in hooks.ended()}
    assert 30000 not in evicted_ports
    assert len(evicted_ports) == 40


def test_fragments_join_the_flow_of_their_first_fragment_even_out_of_order() -> None:
    m, hooks, totals = meter()
    datagram = struct.pack("!HHHH", 40000, 5004, 8 + 2992, 0) + bytes(2992)
    first = ipv4(CAMERA, CLOUD, 17, datagram[:1480], ident=7, frag=0x2000)
    second = ipv4(CAMERA, CLOUD, 17, datagram[1480:2960], ident=7, frag=0x2000 | 185)
    last = ipv4(CAMERA, CLOUD, 17, datagram[2960:], ident=7, frag=370)
    m.feed(batch([(T0, ether(second)), (T0 + 0.1, ether(first)), (T0 + 0.2, ether(last))]))
    m.flush()
    [flow] = hooks.ended()
    assert flow.a_port == 40000
    assert flow.a.packets == 3
    assert flow.a.bytes == len(first) + len(second) + len(last) == totals.ip_bytes


def test_fragments_whose_first_never_comes_get_a_portless_flow() -> None:
    m, hooks, _ = meter()
    orphan = ipv4(CAMERA, CLOUD, 17, bytes(800), ident=9, frag=185)
    m.feed(batch([(T0, ether(orphan))]))
    m.advance(T0 + 31)
    m.flush()
    [flow] = hooks.ended()
    assert (flow.a_port, flow.b_port, flow.a.packets) == (None, None, 1)


def test_inspected_flows_stay_on_the_slow_path_until_the_hooks_are_done() -> None:
    m, hooks, _ = meter(inspect=2)
    frames = [(T0 + n, ether(udp(CAMERA, CLOUD, 40000, 443))) for n in range(5)]
    m.feed(batch(frames))
    m.flush()
    assert hooks.payloads == 2
    [flow] = hooks.ended()
    assert flow.a.packets == 5


def test_malformed_frames_are_counted_and_skipped() -> None:
    m, hooks, totals = meter()
    good = ether(udp(CAMERA, CLOUD, 40000, 443))
    bad_ihl = bytearray(good)
    bad_ihl[14] = 0x43
    m.feed(batch([(T0, good), (T0 + 1, bytes(bad_ihl)), (T0 + 2, good[:10])]))
    m.flush()
    assert totals.packets == 3
    assert totals.decode_errors == {"bad_ipv4_header": 1, "truncated_link": 1}
    assert len(hooks.ended()) == 1


def test_reconfigure_applies_new_timeouts() -> None:
    m, hooks, _ = meter(FlowConfig(idle_udp=300.0))
    m.reconfigure(replace(FlowConfig(), idle_udp=10.0))
    m.feed(batch([(T0, ether(udp(CAMERA, CLOUD, 40000, 443)))]))
    m.advance(T0 + 12)
    assert len(hooks.ended()) == 1
