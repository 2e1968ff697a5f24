"""A worker's share (`Pipeline(share=...)`): DNS flows another worker owns are seen for names only,
and never show in what a live counter exports, not even while they are open."""

from __future__ import annotations

from pathlib import Path

from egresswatch.capture.files import open_capture
from egresswatch.config import load_config
from egresswatch.pipeline import Pipeline
from egresswatch.workers import share_filter

ROOT = Path(__file__).resolve().parent.parent
SCHOOL = ROOT / "pcaps" / "school.pcap"
CONFIG = load_config(ROOT / "config" / "demo.yaml")


def test_counted_totals_never_go_down_and_leave_out_open_shadow_flows() -> None:
    one = Pipeline(CONFIG, [])
    for batch in open_capture(SCHOOL):
        one.feed(batch)
    whole = one.finish()
    finals = []
    differed = False
    for worker in (0, 1):
        pipeline = Pipeline(CONFIG, [], share=(worker, 2))
        last = (0, 0, 0)
        for batch in open_capture(SCHOOL, bpf=share_filter(worker, 2)):
            pipeline.feed(batch)
            counted = pipeline.counted_totals()
            now = (counted.packets, counted.ip_bytes, counted.flows)
            assert all(n >= p for n, p in zip(now, last, strict=True)), (worker, last, now)
            differed |= now != (pipeline.totals.packets, pipeline.totals.ip_bytes, pipeline.totals.flows)
            last = now
        finals.append(pipeline.finish())
        assert pipeline.counted_totals() is pipeline.totals
    assert differed, "no shadow flow was open at a batch boundary: the test checked nothing"
    assert sum(t.packets for t in finals) == whole.packets
    assert sum(t.ip_bytes for t in finals) == whole.ip_bytes
    assert sum(t.flows for t in finals) == whole.flows
