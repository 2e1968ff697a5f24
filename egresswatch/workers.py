"""`replay --workers N`: N processes, each running the whole pipeline on its share of every file.

libpcap applies a BPF filter per worker, in C, that keeps the packets whose address pair hashes
to that worker. The hash XORs the address words (the same in both directions, so a flow always
lands on one worker) and multiplies by Knuth's 32-bit golden-ratio constant, whose upper half
depends on every bit: a plain sum modulo 2 is the parity of the two last address bits, and on
the site mix put 83% of the packets (60 cameras streaming to 4 NVRs) on one worker. Frames that
are not IP (and QinQ stacks, which one BPF `vlan` cannot look through) all go to worker 0. Every
worker also sees all DNS so the names it learns cover the flows it owns; it reports only the DNS
flows it owns.

Workers send their reports back to the parent, which feeds the sinks in report-time order, so the
sinks are the same single-process code as for one worker.
"""

from __future__ import annotations

import heapq
import multiprocessing
from collections.abc import Sequence
from multiprocessing.connection import Connection
from pathlib import Path

from egresswatch.capture import CaptureError
from egresswatch.capture.files import PcapSource, open_capture
from egresswatch.config import Config
from egresswatch.model import FlowReport, Totals

GOLDEN = 0x9E3779B1
MIX4 = f"((ip[12:4] ^ ip[16:4]) * {GOLDEN:#x}) >> 16"
MIX6 = f"(({' ^ '.join(f'ip6[{offset}:4]' for offset in range(8, 40, 4))}) * {GOLDEN:#x}) >> 16"
TAGS = "ether proto 0x8100 or ether proto 0x88a8 or ether proto 0x9100"
DNS = "udp port 53 or tcp port 53"


def share_filter(worker: int, workers: int, tags_in_frame: bool = True) -> str:
    """The BPF expression selecting worker `worker`'s share of the traffic (plus all DNS).

    ``tags_in_frame=False`` is for a live Linux socket, where the kernel has taken the 802.1Q tag out
    of the frame before the filter runs: the untagged form alone then sees every single-tagged frame's
    IP header, and a QinQ frame (its inner tag still in the frame) is not IP to it, so worker 0 gets
    it. The `vlan` form is left out there, and not only as dead weight: libpcap 1.10 compiles
    `(...) or (vlan and (...))` with these sums wrongly for a socket, and worker 0 then also took
    the other worker's tagged IPv6 frames (tests/test_live_share.py)."""
    mine = f"(ip and ({MIX4}) % {workers} = {worker}) or (ip6 and ({MIX6}) % {workers} = {worker}) or {DNS}"
    if not tags_in_frame:
        return f"{mine} or (not ip and not ip6)" if worker == 0 else mine
    if worker == 0:
        untagged = f"{mine} or (not ip and not ip6 and not ({TAGS}))"
        tagged = f"{mine} or (not ip and not ip6)"
    else:
        untagged = tagged = mine
    # `vlan` shifts every later offset, so the untagged alternatives come first.
    return f"({untagged}) or (vlan and ({tagged}))"


def address_share(a: bytes, b: bytes, workers: int) -> int:
    """The worker that owns the address pair (a, b): the same hash the BPF filter computes."""
    mixed = 0
    for address in (a, b):
        for i in range(0, len(address), 4):
            mixed ^= int.from_bytes(address[i : i + 4], "big")
    return (((mixed * GOLDEN) & 0xFFFFFFFF) >> 16) % workers


class _Collector:
    """A sink that keeps (kind, report) pairs for the parent."""

    def __init__(self) -> None:
        self.items: list[tuple[float, int, str, FlowReport]] = []

    def flow(self, report: FlowReport) -> None:
        self.items.append((report.end, len(self.items), "flow", report))

    def alert(self, report: FlowReport) -> None:
        self.items.append((report.end, len(self.items), "alert", report))

    def close(self, totals: Totals) -> None:
        pass


def _work(conn: Connection, paths: list[str], config: Config, worker: int, workers: int) -> None:
    from egresswatch.pipeline import Pipeline, settle_heap

    collector = _Collector()
    pipeline = Pipeline(config, [collector], share=(worker, workers))
    settle_heap()
    expr = share_filter(worker, workers)
    for path in paths:
        for batch in open_capture(path, bpf=expr):
            pipeline.feed(batch)
    totals = pipeline.finish()
    conn.send((collector.items, totals))
    conn.close()


def replay_parallel(paths: Sequence[str | Path], config: Config, sinks: Sequence, workers: int) -> Totals:
    sources = [open_capture(path) for path in paths]
    for source in sources:
        if not isinstance(source, PcapSource):
            raise CaptureError(source.name, "--workers needs classic pcap files (libpcap splits them)")
    names = [source.name for source in sources]
    # fork: the workers inherit the config as it is (nothing to pickle on the way in).
    context = multiprocessing.get_context("fork")
    results = []
    processes = []
    for worker in range(workers):
        parent_end, child_end = context.Pipe(duplex=False)
        process = context.Process(target=_work, args=(child_end, names, config, worker, workers))
        process.start()
        child_end.close()
        processes.append((process, parent_end))
    for process, conn in processes:
        try:
            results.append(conn.recv())
        except EOFError:
            process.join()
            raise RuntimeError(f"replay worker {process.name} died: exit code {process.exitcode}") from None
        process.join()
    totals = Totals()
    for _, part in results:
        _add_totals(totals, part)
    streams = [items for items, _ in results]
    for _end, _seq, kind, report in heapq.merge(*streams, key=lambda item: (item[0], item[1])):
        for sink in sinks:
            (sink.flow if kind == "flow" else sink.alert)(report)
    for sink in sinks:
        sink.close(totals)
    return totals


def _add_totals(total: Totals, part: Totals) -> None:
    total.packets += part.packets
    total.ip_bytes += part.ip_bytes
    total.flows += part.flows
    total.evictions += part.evictions
    for name, count in (part.decode_errors or {}).items():
        errors = total.decode_errors if total.decode_errors is not None else {}
        errors[name] = errors.get(name, 0) + count
        total.decode_errors = errors
    if part.truncated_files:
        total.truncated_files = sorted(set((total.truncated_files or []) + part.truncated_files))
