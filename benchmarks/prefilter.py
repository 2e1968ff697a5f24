"""How much of a capture the generated kernel filter removes (libpcap's offline filter, same code).

    python benchmarks/prefilter.py [--config config/demo.yaml] [pcaps/school.pcap]

Prints packets and bytes before and after the filter, the share removed, and the size of the compiled
program (what `egresswatch.bpf.BPF_BUDGET` limits).
"""

from __future__ import annotations

import argparse
import struct

import pcapy

from egresswatch.bpf import build_filter
from egresswatch.config import load_config


def count(path: str, bpf: str | None) -> tuple[int, int]:
    """Packets and captured bytes of ``path`` that pass ``bpf`` (everything when None)."""
    handle = pcapy.open_offline(path)
    if bpf:
        handle.setfilter(bpf)
    packets = size = 0
    while True:
        _, meta = handle.next_batch(65536)
        if not meta:
            return packets, size
        for _, _, _, caplen in struct.iter_unpack("=IIII", meta):
            packets += 1
            size += caplen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pcap", nargs="?", default="pcaps/school.pcap")
    parser.add_argument("-c", "--config", default="config/demo.yaml")
    args = parser.parse_args()
    bpf = build_filter(load_config(args.config))
    all_packets, all_bytes = count(args.pcap, None)
    kept_packets, kept_bytes = count(args.pcap, bpf)
    print(f"capture      {args.pcap}: {all_packets} packets, {all_bytes} bytes")
    print(f"after filter {kept_packets} packets, {kept_bytes} bytes")
    print(f"removed      {1 - kept_packets / max(all_packets, 1):.1%} of packets, "
          f"{1 - kept_bytes / max(all_bytes, 1):.1%} of bytes")
    program = pcapy.compile(pcapy.DLT_EN10MB, 65535, bpf, 1, 0)
    print(f"program      {len(program.get_bpf())} BPF instructions, {len(bpf)} characters")


if __name__ == "__main__":
    main()
