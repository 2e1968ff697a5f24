"""The floor: the least a per-packet Python loop over a pcap file can do.

Read the 16-byte record header, take caplen from it, read caplen bytes; no parsing. Whatever the
pipeline does per packet comes on top of this, so it is the yardstick every other number in
``run.py`` is divided by. Prints the packet count.
"""

from __future__ import annotations

import struct
import sys

RECORD = struct.Struct("<IIII")
PCAP_FILE_HEADER = 24


def count_packets(path: str) -> int:
    """Walk every record of a little-endian classic pcap file (what ``sitemix`` writes)."""
    count = 0
    unpack = RECORD.unpack
    with open(path, "rb", buffering=1 << 20) as f:
        read = f.read
        read(PCAP_FILE_HEADER)
        while True:
            header = read(16)
            if len(header) < 16:
                return count
            read(unpack(header)[2])
            count += 1


if __name__ == "__main__":
    print(count_packets(sys.argv[1]))
