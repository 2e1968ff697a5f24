"""The flow-table capture: N concurrent UDP flows, one packet each, then a second packet of each.

Office hosts (10.64.0.0/10 and up, never in the inventory) to 203.0.113.0/24 and 198.51.100.0/24
on varied ports. Pass one spreads over 10 s, pass two over the next 10 s, so with the default UDP
idle timeout (60 s) every flow is still open when its second packet comes: the table holds N
flows at its peak unless ``flows.max`` evicts. Frames are packed directly with struct (UDP
checksum 0, "none", which RFC 768 allows over IPv4) so a million flows take seconds.
"""

from __future__ import annotations

import struct
from pathlib import Path

from frames import IPV4_HEAD, UDP_HEAD, fold
from sitemix import GATEWAY_MAC, write_records

GENERATOR_VERSION = 1
PASS_SECONDS = 10
HOST_MAC = bytes.fromhex("020000400000")
PAYLOAD = b"\x00" * 32


def _frame(i: int, second: bool) -> bytes:
    src = struct.pack("!I", (10 << 24 | 64 << 16) + i)  # 10.64.0.0 + i: up to 4M distinct hosts
    dst = bytes((203, 0, 113, 1 + i % 250)) if i & 1 else bytes((198, 51, 100, 1 + i % 250))
    sport = 1024 + i % 60000
    total = 20 + 8 + len(PAYLOAD)
    ident = (i + second) & 0xFFFF
    words = 0x4500 + total + ident + 0x4000 + (64 << 8 | 17)
    words += int.from_bytes(src, "big") + int.from_bytes(dst, "big")
    ip = IPV4_HEAD.pack(0x45, 0, total, ident, 0x4000, 64, 17, fold(words), src, dst)
    return (
        HOST_MAC + GATEWAY_MAC + b"\x08\x00" + ip + UDP_HEAD.pack(sport, 443, 8 + len(PAYLOAD), 0) + PAYLOAD
    )


def write_pcap(flows: int, path: Path) -> None:
    step = PASS_SECONDS * 1_000_000 / flows
    write_records(
        (
            (PASS_SECONDS * 1_000_000 * second + int(i * step), _frame(i, second))
            for second in (False, True)
            for i in range(flows)
        ),
        path,
    )


def ensure_capture(flows: int, cache: Path) -> Path:
    """The cached capture with ``flows`` flows (2 * flows packets), generated on first use."""
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"flowmix-v{GENERATOR_VERSION}-{flows}flows.pcap"
    if not path.exists():
        write_pcap(flows, path)
    return path
