"""tshark's view of a capture, reduced to what egresswatch counts.

``tshark -z conv,ip`` counts frame bytes and credits every IP layer of a frame (outer and inner of a
tunnel), while egresswatch counts IP-layer bytes of the innermost IP header only. So the parity tests
do not compare against ``conv,ip`` directly: they ask tshark for the raw header fields of every IP
layer and pick, per frame, the layer egresswatch would count. ``conv,ip`` from the ground-truth files
is still used, through :func:`truth_conversations`, to check this extraction where the two must agree.
"""

from __future__ import annotations

import ipaddress
import re
import shutil
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

TSHARK: str | None = shutil.which("tshark")
REALPCAPS = Path(__file__).resolve().parents[2].parent / "shared" / "realpcaps"
"""The public captures: a read-only sibling of the repository (``../shared/realpcaps``)."""

AddrPair = tuple[str, str]
"""An unordered address pair: both addresses normalised by ``ipaddress``, the smaller first."""

# Column order of the -T fields run below; every IP field comes back with one value per IP layer.
_FIELDS = (
    "frame.number", "frame.protocols", "ip.src", "ip.dst", "ip.len", "ipv6.src", "ipv6.dst", "ipv6.plen",
)
_IPV6_HEADER = 40
# Layers after which an IP header is quoted data (an ICMP error's copy of the offending packet),
# not a packet of its own.
_QUOTING = frozenset({"icmp", "icmpv6"})
_CONV_LINE = re.compile(r"^(\S+)\s+<->\s+(\S+)\s+\d+ \d+ \w+\s+\d+ \d+ \w+\s+(\d+) \d+ \w+")


class TsharkOutputError(Exception):
    """tshark printed something the extraction cannot map to layers unambiguously."""


@dataclass(slots=True)
class Counts:
    """Frames and IP-layer bytes of one conversation."""

    frames: int = 0
    ip_bytes: int = 0


@dataclass(frozen=True, slots=True)
class FrameIP:
    """The IP layer egresswatch would count in one frame."""

    frame: int
    src: str
    dst: str
    ip_bytes: int


def real_captures() -> list[Path]:
    """Every capture file in REALPCAPS, by name."""
    return sorted(p for p in REALPCAPS.glob("*") if p.suffix in (".pcap", ".pcapng"))


def pair(a: str, b: str) -> AddrPair:
    """Key for the conversation between ``a`` and ``b`` in either direction."""
    x, y = ipaddress.ip_address(a), ipaddress.ip_address(b)
    lo, hi = sorted((x, y), key=lambda ip: (ip.version, ip.packed))
    return str(lo), str(hi)


def innermost_ip_layer(protocols: list[str]) -> tuple[str, int] | None:
    """Which IP layer of a frame counts: ``("ip" | "ipv6", occurrence index)``, or None for none.

    Walks ``frame.protocols`` outside in and keeps the last IP layer seen before any ICMP/ICMPv6
    layer: an IP header after ICMP is the quoted packet of an error message. IPv6 extension headers
    (``ipv6.fraghdr``, ``ipv6.hopopts``) are separate names, so they never displace their IPv6 layer.
    """
    seen = {"ip": 0, "ipv6": 0}
    chosen: tuple[str, int] | None = None
    for name in protocols:
        if name in _QUOTING:
            break
        if name in seen:
            chosen = (name, seen[name])
            seen[name] += 1
    return chosen


def _values(column: str) -> list[str]:
    return column.split(",") if column else []


def _frame_ip(line: str) -> FrameIP | None:
    cols = line.rstrip("\n").split("\t")
    if len(cols) != len(_FIELDS):
        raise TsharkOutputError(f"expected {len(_FIELDS)} columns, got {len(cols)}: {line!r}")
    number, protocols, *ip_cols = cols
    layers = protocols.split(":")
    v4 = [_values(c) for c in ip_cols[:3]]
    v6 = [_values(c) for c in ip_cols[3:]]
    # Occurrence lists are only index-aligned with the layers when every IP layer filled every
    # field; a short list (a header too truncated for tshark to fill) would shift values between
    # layers, so refuse rather than guess.
    for family, values in (("ip", v4), ("ipv6", v6)):
        if any(len(v) != layers.count(family) for v in values):
            raise TsharkOutputError(f"frame {number}: {family} fields {values} do not fit layers {protocols}")
    chosen = innermost_ip_layer(layers)
    if chosen is None:
        return None
    family, index = chosen
    if family == "ip":
        src, dst, length = (v[index] for v in v4)
        return FrameIP(int(number), src, dst, int(length))
    src, dst, plen = (v[index] for v in v6)
    return FrameIP(int(number), src, dst, _IPV6_HEADER + int(plen))


def _run_fields(path: Path) -> Iterator[str]:
    if TSHARK is None:
        raise FileNotFoundError("tshark is not installed")
    fields = [arg for name in _FIELDS for arg in ("-e", name)]
    cmd = [TSHARK, "-n", "-r", str(path), "-T", "fields", "-E", "separator=/t", "-E", "occurrence=a", *fields]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return iter(done.stdout.splitlines())


@cache
def frame_ips(path: Path) -> tuple[FrameIP, ...]:
    """The counted IP layer of every frame of ``path`` that has one, in frame order (run once per path)."""
    return tuple(ip for line in _run_fields(path) if (ip := _frame_ip(line)) is not None)


def conversations(frames: Iterable[FrameIP]) -> dict[AddrPair, Counts]:
    """Frames and IP-layer bytes per unordered address pair."""
    convs: dict[AddrPair, Counts] = {}
    for f in frames:
        counts = convs.setdefault(pair(f.src, f.dst), Counts())
        counts.frames += 1
        counts.ip_bytes += f.ip_bytes
    return convs


def truth_packet_count(truth: Path) -> int:
    """capinfos' packet count recorded in a ground-truth file."""
    match = re.search(r"^Number of packets:\s+(\d+)$", truth.read_text(), re.MULTILINE)
    if match is None:
        raise ValueError(f"{truth}: no capinfos packet count")
    return int(match.group(1))


def truth_conversations(truth: Path) -> dict[AddrPair, int]:
    """Total frames per pair from the ``conv,ip`` and ``conv,ipv6`` tables of a ground-truth file."""
    convs: dict[AddrPair, int] = {}
    for line in truth.read_text().splitlines():
        if match := _CONV_LINE.match(line):
            key = pair(match.group(1), match.group(2))
            convs[key] = convs.get(key, 0) + int(match.group(3))
    return convs
