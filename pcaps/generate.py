#!/usr/bin/env python3
"""Write the test captures, their ground truth and the fixture GeoIP databases, deterministically.

    python pcaps/generate.py           regenerate everything in pcaps/
    python pcaps/generate.py --check   regenerate into a temp dir; exit 1 if anything differs

Every capture is built from a fixed seed and fixed timestamps (from 2026-01-12T08:00:00Z), so two
runs write byte-identical files. See pcaps/README.md for what each capture holds.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import random
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from capgen import addressing, damaged, encapsulated, learning, school, vendors  # noqa: E402
from capgen.capture import Capture, Interface, pcap_bytes, pcapng_bytes  # noqa: E402
from capgen.geoip import write_databases  # noqa: E402
from capgen.summary import summarize  # noqa: E402

CONFIG = HERE.parent / "config" / "demo.yaml"
SEED = 20260112
LINKTYPE_ETHERNET, LINKTYPE_RAW, LINKTYPE_SLL, LINKTYPE_SLL2 = 1, 101, 113, 276
TRUNCATED_CUT = 37  # bytes missing from the end of truncated.pcap: the last record stops mid-data


@dataclass(frozen=True)
class Output:
    name: str
    build: Callable[[random.Random], Capture]
    linktype: int = LINKTYPE_ETHERNET
    nanosecond: bool = False
    interfaces: tuple[Interface, ...] = ()
    """pcapng only."""


OUTPUTS = (
    Output("school.pcap", school.build),
    Output("vlan_qinq.pcap", encapsulated.vlan_qinq),
    Output("erspan.pcap", encapsulated.erspan),
    Output("vxlan.pcap", encapsulated.vxlan),
    Output("ipv6.pcap", addressing.ipv6),
    Output("fragments.pcap", addressing.fragments),
    Output("sll.pcap", addressing.sll, LINKTYPE_SLL),
    Output("sll2.pcap", addressing.sll2, LINKTYPE_SLL2, nanosecond=True),
    Output(
        "multi.pcapng",
        addressing.multi,
        interfaces=(
            Interface(LINKTYPE_ETHERNET, "span0", 6),
            Interface(LINKTYPE_RAW, "tun0", 9),
            Interface(LINKTYPE_SLL, "any", None),
        ),
    ),
    Output("malformed.pcap", damaged.malformed),
    Output("truncated.pcap", damaged.truncated),
    Output("services.pcap", vendors.build),
    Output("learning.pcap", learning.build),
)
EMPTY_INVENTORY = (("school.pcap", "school.discovery.truth.json"),)
"""Captures whose truth is also written for config/demo.yaml without its devices: what discovery
alone must attribute."""


def generate(directory: Path) -> list[str]:
    """Write every capture, its truth and the GeoIP fixtures into ``directory``; return the file names."""
    config = yaml.safe_load(CONFIG.read_text())
    written = []
    for out in OUTPUTS:
        capture = out.build(random.Random(f"{SEED}:{out.name}"))
        records = capture.ordered()
        delivered, cut = (records[:-1], TRUNCATED_CUT) if out.name == "truncated.pcap" else (records, 0)
        if out.interfaces:
            blob = pcapng_bytes(records, list(out.interfaces), records[-1].ts_us + 1000)
        else:
            blob = pcap_bytes(records, out.linktype, nanosecond=out.nanosecond, cut_last=cut)
        (directory / out.name).write_bytes(blob)
        truth = summarize(delivered, config)
        truth_name = out.name.rsplit(".", 1)[0] + ".truth.json"
        (directory / truth_name).write_text(json.dumps(truth, indent=2) + "\n")
        written += [out.name, truth_name]
        for capture_name, discovery_truth in EMPTY_INVENTORY:
            if capture_name == out.name:
                truth = summarize(delivered, {**config, "devices": []})
                (directory / discovery_truth).write_text(json.dumps(truth, indent=2) + "\n")
                written.append(discovery_truth)
    (directory / "geoip").mkdir(exist_ok=True)
    write_databases(directory / "geoip")
    return [*written, "geoip/country.mmdb", "geoip/asn.mmdb"]


def check() -> int:
    """Regenerate into a temp dir and compare byte for byte with the committed files."""
    with tempfile.TemporaryDirectory() as tmp:
        names = generate(Path(tmp))
        differ = [
            n
            for n in names
            if not (HERE / n).exists() or not filecmp.cmp(HERE / n, Path(tmp) / n, shallow=False)
        ]
    for name in differ:
        print(f"differs from a fresh generation: pcaps/{name}", file=sys.stderr)
    return 1 if differ else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="fail if the committed files are stale")
    args = parser.parse_args(argv)
    if args.check:
        return check()
    for name in generate(HERE):
        print(f"wrote pcaps/{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
