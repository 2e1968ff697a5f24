"""In-process drivers that ``run.py`` starts as subprocesses (one measured process per run).

- ``pipeline FILE -c CONFIG [--bpf] --events PATH``: the full egresswatch pipeline with the same
  sinks as ``egresswatch replay`` (events to a file, summary, metrics), reading through
  ``open_capture(path, bpf=...)``. With ``--bpf`` ``egresswatch.bpf.build_filter``, compiled by
  libpcap, is applied to the file's records, as the kernel would apply it on a live socket. It
  exists because ``replay`` has no BPF flag; once it does, ``run.py`` can call ``replay`` for
  this run too.
- ``nfstream FILE``: NFStream with one meter, counting flows.

Each prints one JSON line: packets read (after the filter), packets passed to the pipeline, flows.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def run_pipeline(pcap: str, config_path: str, events_path: str, bpf: bool) -> dict[str, Any]:
    """Replay ``pcap`` through the whole pipeline; what ``--profile`` profiles, too."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from prometheus_client import CollectorRegistry

    from egresswatch.bpf import build_filter
    from egresswatch.capture.files import open_capture
    from egresswatch.config import load_config
    from egresswatch.pipeline import Pipeline
    from egresswatch.sinks.events import EventSink
    from egresswatch.sinks.metrics import MetricsSink, render
    from egresswatch.sinks.summary import SummarySink

    config = load_config(config_path)
    expression = build_filter(config) if bpf else None
    with open(events_path, "w", encoding="utf-8") as events:
        summary = SummarySink(config)
        registry = CollectorRegistry()
        sinks = [
            summary,
            EventSink(events, flows=config.events.flows),
            MetricsSink(registry, config.metrics.max_devices),
        ]
        pipeline = Pipeline(config, sinks)
        for batch in open_capture(pcap, bpf=expression):
            pipeline.feed(batch)
        totals = pipeline.finish()
    summary.to_dict()
    render(registry)
    return {"packets": totals.packets, "flows": totals.flows, "bpf_chars": len(expression or "")}


def run_nfstream(pcap: str) -> dict[str, Any]:
    from nfstream import NFStreamer

    flows = packets = 0
    for flow in NFStreamer(source=pcap, n_meters=1):
        flows += 1
        packets += flow.bidirectional_packets
    return {"packets": packets, "flows": flows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="driver", required=True)
    pipe = sub.add_parser("pipeline")
    pipe.add_argument("pcap")
    pipe.add_argument("-c", "--config", required=True)
    pipe.add_argument("--events", required=True)
    pipe.add_argument("--bpf", action="store_true", help="apply egresswatch.bpf.build_filter(config)")
    nfs = sub.add_parser("nfstream")
    nfs.add_argument("pcap")
    args = parser.parse_args(argv)
    if args.driver == "pipeline":
        result = run_pipeline(args.pcap, args.config, args.events, args.bpf)
    else:
        result = run_nfstream(args.pcap)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
