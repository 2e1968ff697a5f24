"""The C scan (egresswatch/_fastpath.c) against its Python reference (flows.scan_batch).

Both implement one contract: count the fast-path packets of an Ethernet batch, stop at the first
record that needs Python. Every generated capture replays to the same events and summary through
either; the contract's stops are checked one by one on hand-built batches; and a build without the
extension still replays the school capture to its truth.
"""

from __future__ import annotations

import json
import socket
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from egresswatch import _fastpath as fastpath
from egresswatch import flows
from egresswatch.capture import META_STRUCT
from egresswatch.cli import main
from egresswatch.decode.packet import Packet
from tests.support.frames import ethernet_frame

ROOT = Path(__file__).resolve().parent.parent
PCAPS = ROOT / "pcaps"
CONFIG = str(ROOT / "config" / "demo.yaml")
CAPTURES = sorted(p.name for p in PCAPS.iterdir() if p.suffix in (".pcap", ".pcapng"))
Scan = Callable[..., flows.ScanResult]
SCANS = {"c": fastpath.scan, "python": flows.scan_batch}


def _replay(capture: Path, out: Path, scan: str, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    monkeypatch.setattr(flows, "SCAN", SCANS[scan])
    events, summary = out / f"{scan}.jsonl", out / f"{scan}.json"
    main(["replay", str(capture), "-c", CONFIG, "--events", str(events), "--summary-json", str(summary)])
    return events.read_text(), summary.read_text()


@pytest.mark.parametrize("capture", CAPTURES)
def test_c_and_python_scans_replay_every_capture_alike(
        capture: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    c_events, c_summary = _replay(PCAPS / capture, tmp_path, "c", monkeypatch)
    py_events, py_summary = _replay(PCAPS / capture, tmp_path, "python", monkeypatch)
    assert json.loads(c_summary)["totals"]["packets"] > 0
    assert c_summary == py_summary
    assert c_events.splitlines() == py_events.splitlines()


# ---------------------------------------------------------------------- the contract, stop by stop
CAM, REMOTE = socket.inet_aton("10.20.1.11"), socket.inet_aton("198.51.100.7")
A6, B6 = (bytes.fromhex("20010db8" + "00" * 11 + last) for last in ("01", "02"))


def _frame(src: bytes, dst: bytes, sport: int, dport: int, *, tcp_flags: int | None = None,
           vlan: int | None = None, payload: bytes = b"x" * 40) -> bytes:
    return ethernet_frame(src, dst, sport, dport, tcp_flags=tcp_flags, vlan=vlan, payload=payload,
                          src_mac=bytes.fromhex("4419b6000001"), dst_mac=b"\x02" * 6)


def _batch(frames: list[tuple[int, bytes]]) -> tuple[bytes, bytes]:
    data, meta = b"", b""
    for sec, frame in frames:
        meta += META_STRUCT.pack(sec, 250_000, len(data), len(frame))
        data += frame
    return data, meta


def _side(is_a: bool = True) -> flows.FlowSide:
    """A side of a fresh TCP flow (the scan writes the flow's TCP state)."""
    pkt = Packet()
    pkt.src, pkt.dst, pkt.proto, pkt.sport, pkt.dport = CAM, REMOTE, flows.PROTO_TCP, 5000, 443
    flow = flows.Flow(pkt, 0.0)
    return flow.a if is_a else flow.b


def _tables(tcp: dict[bytes, flows.FlowSide] | None = None,
            udp: dict[bytes, flows.FlowSide] | None = None) -> flows.FastTables:
    """A (TCP, UDP) pair of the meter's fast tables holding these entries."""
    pair = (flows.FastTable(), flows.FastTable())
    for table, entries in zip(pair, (tcp or {}, udp or {}), strict=True):
        for key, side in entries.items():
            table[key] = side
    return pair


def _key(src: bytes, dst: bytes, sport: int, dport: int) -> bytes:
    return src + dst + struct.pack("!HH", sport, dport)


@pytest.fixture(params=sorted(SCANS))
def scan(request: pytest.FixtureRequest) -> Scan:
    return SCANS[request.param]


def test_established_packets_are_counted_until_the_batch_ends(scan: Scan) -> None:
    side = _side()
    untagged = _tables({}, {_key(CAM, REMOTE, 5000, 443): side})
    frames = [(100, _frame(CAM, REMOTE, 5000, 443)) for _ in range(3)]
    data, meta = _batch(frames)
    ip_length = len(frames[0][1]) - 14
    assert scan(data, meta, 0, 100, untagged, {}) == (flows.SCAN_END, 3, 3 * ip_length, None, 0)
    assert (side.packets, side.bytes, side.sec, side.usec) == (3, 3 * ip_length, 100, 250_000)
    assert side.last == pytest.approx(100.25)


def test_a_later_second_stops_the_scan_where_it_resumes(scan: Scan) -> None:
    side = _side()
    untagged = _tables({}, {_key(CAM, REMOTE, 5000, 443): side})
    data, meta = _batch([(100, _frame(CAM, REMOTE, 5000, 443)), (101, _frame(CAM, REMOTE, 5000, 443))])
    reason, index, _, _, _ = scan(data, meta, 0, 100, untagged, {})
    assert (reason, index, side.packets) == (flows.SCAN_TICK, 1, 1)
    assert scan(data, meta, 1, 101, untagged, {})[:2] == (flows.SCAN_END, 2)
    assert side.packets == 2


def test_unknown_flows_and_other_protocols_need_the_slow_path(scan: Scan) -> None:
    untagged = _tables({}, {_key(CAM, REMOTE, 5000, 443): _side()})
    for frame in (_frame(CAM, REMOTE, 5001, 443), _frame(CAM, REMOTE, 5000, 443, tcp_flags=0x10)):
        data, meta = _batch([(100, frame)])
        assert scan(data, meta, 0, 100, untagged, {}) == (flows.SCAN_SLOW, 0, 0, None, 0)
    # a frame too short to hold the fields the scan reads
    data, meta = _batch([(100, _frame(CAM, REMOTE, 5000, 443, payload=b""))])
    assert len(data) < flows.IPV4_MIN
    assert scan(data, meta, 0, 100, untagged, {})[0] == flows.SCAN_SLOW


def test_syn_and_a_first_fin_update_the_flow_and_the_closing_fin_is_handed_back(scan: Scan) -> None:
    side_a = _side()
    side_b = side_a.flow.b
    untagged = _tables({_key(CAM, REMOTE, 5000, 443): side_a, _key(REMOTE, CAM, 443, 5000): side_b}, {})
    data, meta = _batch([(100, _frame(REMOTE, CAM, 443, 5000, tcp_flags=0x12)),  # SYN+ACK from b
                         (100, _frame(CAM, REMOTE, 5000, 443, tcp_flags=0x11)),  # FIN from a
                         (100, _frame(CAM, REMOTE, 5000, 443, tcp_flags=0x10)),
                         (100, _frame(REMOTE, CAM, 443, 5000, tcp_flags=0x11)),  # FIN from b: closed
                         (100, _frame(REMOTE, CAM, 443, 5000, tcp_flags=0x10))])
    reason, index, ip_bytes, found, tcp_flags = scan(data, meta, 0, 100, untagged, {})
    assert (reason, index, found, tcp_flags) == (flows.SCAN_CLOSED, 3, side_b, 0x11)
    assert (side_a.packets, side_b.packets) == (2, 2) and ip_bytes == side_a.bytes + side_b.bytes
    flow = side_a.flow
    assert flow.tcp_flags == 0x13  # SYN, FIN, ACK; a plain ACK on the fast path adds nothing
    assert flow.state == flows.FIN_A | flows.FIN_B | flows.CLOSED
    assert scan(data, meta, 4, 100, untagged, {})[:2] == (flows.SCAN_END, 5)
    assert side_b.packets == 3


def test_a_reset_closes_the_flow_at_once(scan: Scan) -> None:
    side = _side(is_a=False)
    untagged = _tables({_key(CAM, REMOTE, 5000, 443): side}, {})
    data, meta = _batch([(100, _frame(CAM, REMOTE, 5000, 443, tcp_flags=0x04))])
    assert scan(data, meta, 0, 100, untagged, {})[:4] == (flows.SCAN_CLOSED, 0, side.bytes, side)
    assert side.flow.state == flows.CLOSED and side.flow.tcp_flags == 0x04


def test_the_c_and_python_scans_leave_the_same_tcp_state_for_every_flag_byte() -> None:
    """Every TCP flag byte from one side, then each of FIN, RST, ACK, FIN+ACK, SYN+ACK from the other."""

    def run(scan: Scan, first: int, second: int) -> tuple[list[tuple[int, int]], int, int]:
        side_a = _side()
        side_b = side_a.flow.b
        untagged = _tables({_key(CAM, REMOTE, 5000, 443): side_a, _key(REMOTE, CAM, 443, 5000): side_b})
        data, meta = _batch([(100, _frame(CAM, REMOTE, 5000, 443, tcp_flags=first)),
                             (100, _frame(REMOTE, CAM, 443, 5000, tcp_flags=second))])
        stops, start = [], 0
        while True:
            reason, index, _, _, _ = scan(data, meta, start, 100, untagged, {})
            stops.append((reason, index))
            if reason != flows.SCAN_CLOSED:
                return stops, side_a.flow.tcp_flags, side_a.flow.state
            start = index + 1

    closed = 0
    for first in range(256):
        for second in (0x01, 0x04, 0x10, 0x11, 0x12):
            c, python = run(fastpath.scan, first, second), run(flows.scan_batch, first, second)
            assert c == python, (first, second)
            closed += c[2] & flows.CLOSED != 0
    assert closed > 256  # every RST, and a FIN answered by a FIN, closed the flow


def test_tagged_and_ipv6_frames_use_their_vlan_tables(scan: Scan) -> None:
    v4, v6 = _side(), _side()
    key6 = _key(A6, B6, 6000, 443)
    vlans = {20: _tables({}, {_key(CAM, REMOTE, 5000, 443): v4}), 30: _tables({key6: v6}, {})}
    data, meta = _batch([(100, _frame(CAM, REMOTE, 5000, 443, vlan=20)),
                         (100, _frame(A6, B6, 6000, 443, tcp_flags=0x10, vlan=30))])
    assert scan(data, meta, 0, 100, _tables(), vlans)[:2] == (flows.SCAN_END, 2)
    assert (v4.packets, v6.packets) == (1, 1)
    assert v6.bytes == len(data) - v4.bytes - 2 * 18  # both frames' Ethernet + tag headers
    # the same frames on a VLAN without a table, or untagged, are not these flows
    data, meta = _batch([(100, _frame(CAM, REMOTE, 5000, 443, vlan=21))])
    assert scan(data, meta, 0, 100, _tables(), vlans)[0] == flows.SCAN_SLOW


def test_the_c_scan_leaves_records_outside_the_data_to_the_slow_path() -> None:
    side = _side()
    untagged = _tables({}, {_key(CAM, REMOTE, 5000, 443): side})
    data, _ = _batch([(100, _frame(CAM, REMOTE, 5000, 443))])
    meta = META_STRUCT.pack(100, 0, 10, len(data))  # runs 10 bytes past the end
    assert fastpath.scan(data, meta, 0, 100, untagged, {}) == (flows.SCAN_SLOW, 0, 0, None, 0)
    assert side.packets == 0
    with pytest.raises(TypeError):
        fastpath.scan(data, meta, 0, 100, [{}, {}], {})
    data, meta = _batch([(100, _frame(CAM, REMOTE, 5000, 443))])
    with pytest.raises(TypeError):  # the C scan looks frames up in FastTables only
        fastpath.scan(data, meta, 0, 100, ({}, {_key(CAM, REMOTE, 5000, 443): side}), {})


def test_without_the_extension_the_school_capture_still_replays_to_its_truth(tmp_path: Path) -> None:
    out = tmp_path / "summary.json"
    script = (
        "import sys; sys.modules['egresswatch._fastpath'] = None\n"
        "from egresswatch import flows; assert flows.SCAN is flows.scan_batch\n"
        "from egresswatch.cli import main\n"
        f"sys.exit(main(['replay', {str(PCAPS / 'school.pcap')!r}, '-c', {CONFIG!r}, "
        f"'--summary-json', {str(out)!r}]))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    truth = json.loads((PCAPS / "school.truth.json").read_text())
    assert json.loads(out.read_text()) == truth


# ---------------------------------------------------------------------- hostile input
# Mirrored traffic is whatever anyone on the wire sends, and a pcap is whatever a file holds: the
# C code must answer every input with a result or a Python exception, never read out of bounds.
VALID = [_frame(CAM, REMOTE, 5000, 443), _frame(CAM, REMOTE, 5000, 443, tcp_flags=0x11, vlan=20),
         _frame(A6, B6, 6000, 443), _frame(A6, B6, 6000, 443, tcp_flags=0x02, vlan=20)]


@st.composite
def damaged_frames(draw: st.DrawFn) -> bytes:
    """A valid frame cut anywhere and with one byte changed, or plain random bytes."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=96))
    frame = bytearray(draw(st.sampled_from(VALID)))
    frame[draw(st.integers(0, len(frame) - 1))] = draw(st.integers(0, 255))
    return bytes(frame[: draw(st.integers(0, len(frame)))])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames=st.lists(damaged_frames(), min_size=1, max_size=8),
       shifts=st.lists(st.integers(min_value=-2, max_value=200), min_size=1, max_size=8),
       clock=st.integers(min_value=-1, max_value=2**32))
def test_scan_survives_any_bytes_and_any_records(frames: list[bytes], shifts: list[int], clock: int) -> None:
    data = b"".join(frames)
    meta = b"".join(META_STRUCT.pack(100, 0, max(0, len(data) - shift) % 2**32, (shift * 7) % 2**32)
                    for shift in shifts)
    key_of = {frame[at : at + size] for frame in [*frames, *VALID]
              for at, size in ((26, 12), (30, 12), (22, 36), (26, 36)) if len(frame) >= at + size}
    untagged = _tables({key: _side() for key in key_of}, {key: _side() for key in key_of})
    start = 0
    while True:
        reason, index, _, _, _ = fastpath.scan(data, meta, start, clock, untagged, {20: untagged})
        assert start <= index <= len(meta) // 16
        if reason == flows.SCAN_END:
            break
        start = index + 1
        if start > len(meta) // 16:
            break


@settings(max_examples=400, deadline=None)
@given(body=st.binary(max_size=300), offset=st.integers(min_value=0, max_value=400),
       snapshot=st.integers(min_value=1, max_value=2**32 - 1), big=st.booleans())
def test_pcap_index_survives_any_file(body: bytes, offset: int, snapshot: int, big: bool) -> None:
    meta, end, problem = fastpath.pcap_index(body, offset, 16, big, False, snapshot)
    for _, _, off, caplen in META_STRUCT.iter_unpack(meta):
        assert off + caplen <= len(body)
    assert problem is None or isinstance(problem, str)
    assert end >= offset


def test_negative_positions_are_refused() -> None:
    with pytest.raises(ValueError):
        fastpath.scan(b"", b"", -1, 0, _tables(), {})
    with pytest.raises(ValueError):
        fastpath.pcap_index(b"", -1, 1, False, False, 65535)


# ---------------------------------------------------------------------- FastTable
KEYS = [bytes([n]) * 12 for n in range(6)] + [bytes([n]) * 36 for n in range(6)] + [b"", b"\x00" * 11]


@settings(max_examples=300, deadline=None)
@given(operations=st.lists(st.tuples(st.sampled_from(["set", "pop", "get", "del"]), st.sampled_from(KEYS),
                                     st.integers(0, 3)), max_size=200))
def test_fast_table_answers_as_a_dict_does(operations: list[tuple[str, bytes, int]]) -> None:
    table, model = fastpath.FastTable(), {}
    for operation, key, value in operations:
        if operation == "set":
            table[key] = model[key] = value
        elif operation == "pop":
            assert table.pop(key, None) == model.pop(key, None)
        elif operation == "del":
            if key in model:
                del table[key], model[key]
            else:
                with pytest.raises(KeyError):
                    del table[key]
        assert table.get(key) == model.get(key) and table.get(key, "absent") == model.get(key, "absent")
        assert len(table) == len(model) and sorted(table.values()) == sorted(model.values())


def test_fast_table_grows_and_reuses_deleted_slots() -> None:
    table, keys = fastpath.FastTable(), [n.to_bytes(12, "big") for n in range(50_000)]
    for round_ in range(3):  # fill, empty, fill again: deleted slots give way to new entries
        for n, key in enumerate(keys):
            table[key] = n + round_
        assert len(table) == len(keys) and table[keys[123]] == 123 + round_
        for key in keys[::2]:
            assert table.pop(key) is not None
        assert len(table) == len(keys) // 2 and table.get(keys[0]) is None and table[keys[1]] == 1 + round_
        for key in keys[1::2]:
            del table[key]
        assert len(table) == 0 and table.values() == []
    with pytest.raises(TypeError):
        table["text"] = 1
    with pytest.raises(KeyError):
        table.pop(keys[0])
