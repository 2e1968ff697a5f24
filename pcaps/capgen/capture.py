"""Frames as written, what the generator meant by each, and the pcap/pcapng file writers.

The container formats are written by hand rather than with dpkt's writers: the captures need
caplen < wirelen records, nanosecond pcap, a record cut mid-data, and pcapng sections whose
interfaces have different link types and timestamp resolutions, none of which dpkt writes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

PCAP_MAGIC_US = 0xA1B2C3D4
PCAP_MAGIC_NS = 0xA1B23C4D
PCAP_SNAPLEN = 262144

PCAPNG_SHB = 0x0A0D0D0A
PCAPNG_IDB = 1
PCAPNG_SPB = 3
PCAPNG_ISB = 5
PCAPNG_EPB = 6
PCAPNG_BYTE_ORDER_MAGIC = 0x1A2B3C4D
OPT_END = 0
OPT_IF_NAME = 2
OPT_IF_TSRESOL = 9


@dataclass(frozen=True, slots=True)
class IpInfo:
    """What the generator put in one decodable IP packet (innermost header for tunnels)."""

    version: int
    proto: int
    src: str
    dst: str
    sport: int | None
    """Transport ports; a non-first fragment carries its datagram's ports (the generator knows them)."""
    dport: int | None
    ip_bytes: int
    """IPv4 total length, or 40 + IPv6 payload length."""
    src_mac: str | None
    dst_mac: str | None
    vlan: int | None
    tcp_flags: int = 0
    sni: str | None = None
    dns_answers: tuple[tuple[str, str], ...] = ()
    """(name, address) pairs of a DNS response."""
    app: str | None = None
    """The application this packet starts (or switches the flow to) as inspection must see it, e.g.
    "rtmp" on the last byte of RTMP's C0+C1 or "ptcp" on the first relay datagram after signalling."""
    service: str | None = None
    """The catalogue service whose payload signature this packet carries."""


@dataclass(slots=True)
class Record:
    """One frame in a capture file."""

    ts_us: int
    """Microseconds since the epoch (every capture uses whole microseconds)."""
    data: bytes
    """The captured bytes (caplen = len(data))."""
    wirelen: int
    iface: int = 0
    info: IpInfo | None = None
    """None for frames that are not a decodable IP packet (ARP, malformed)."""
    error: str | None = None
    """Why the frame is malformed (documentation only; the truth counts errors, not reasons)."""
    simple: bool = False
    """pcapng only: write as a Simple Packet Block (interface 0, no timestamp)."""
    bindings: tuple[tuple[str, str | None], ...] = ()
    """(ip, mac) the frame binds (ARP sender, neighbour advertisement target, DHCP ACK); mac None:
    a DHCP release gives the ip back."""
    announce: tuple[str, str, str] | None = None
    """(mac, vendor, role) a discovery announcement in this frame makes that host known as."""


@dataclass
class Capture:
    """The frames of one capture file, kept in time order when written."""

    name: str
    records: list[Record] = field(default_factory=list)
    _taken: set[int] = field(default_factory=set)

    def free_moment(self, ts_us: int) -> int:
        """``ts_us`` or the next free microsecond: two scenario events never share a timestamp."""
        while ts_us in self._taken:
            ts_us += 1
        return ts_us

    def add(self, record: Record) -> None:
        if record.ts_us in self._taken:
            raise ValueError(f"{self.name}: two frames at the same microsecond {record.ts_us}")
        self._taken.add(record.ts_us)
        self.records.append(record)

    def ordered(self) -> list[Record]:
        """Records by time (timestamps are unique, so readers cannot disagree about the order)."""
        return sorted(self.records, key=lambda r: r.ts_us)


def pcap_bytes(records: list[Record], linktype: int, *, nanosecond: bool = False, cut_last: int = 0) -> bytes:
    """A classic little-endian pcap; ``cut_last`` drops that many bytes off the end of the file."""
    magic = PCAP_MAGIC_NS if nanosecond else PCAP_MAGIC_US
    out = [struct.pack("<IHHiIII", magic, 2, 4, 0, 0, PCAP_SNAPLEN, linktype)]
    for rec in records:
        sec, usec = divmod(rec.ts_us, 1_000_000)
        frac = usec * 1000 if nanosecond else usec
        out.append(struct.pack("<IIII", sec, frac, len(rec.data), rec.wirelen))
        out.append(rec.data)
    blob = b"".join(out)
    return blob[: len(blob) - cut_last] if cut_last else blob


@dataclass(frozen=True, slots=True)
class Interface:
    """A pcapng interface: link type, if_tsresol exponent (None: option absent, default 10^-6)."""

    linktype: int
    name: str
    tsresol: int | None = None


def _pad4(data: bytes) -> bytes:
    return data + b"\x00" * (-len(data) % 4)


def _option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + _pad4(value)


def _block(block_type: int, body: bytes) -> bytes:
    total = 12 + len(body)
    return struct.pack("<II", block_type, total) + body + struct.pack("<I", total)


def pcapng_bytes(records: list[Record], interfaces: list[Interface], stats_ts_us: int) -> bytes:
    """One little-endian section: SHB, one IDB per interface, EPB/SPB per record, ISB at the end.

    Timestamps are written in each interface's own unit (10^-tsresol s) so a reader has to apply
    the resolution of the packet's interface, not the first interface's.
    """
    shb = struct.pack("<IHHq", PCAPNG_BYTE_ORDER_MAGIC, 1, 0, -1)
    out = [_block(PCAPNG_SHB, shb)]
    for iface in interfaces:
        options = _option(OPT_IF_NAME, iface.name.encode())
        if iface.tsresol is not None:
            options += _option(OPT_IF_TSRESOL, bytes([iface.tsresol]))
        options += struct.pack("<HH", OPT_END, 0)
        out.append(_block(PCAPNG_IDB, struct.pack("<HHI", iface.linktype, 0, 0) + options))
    for rec in records:
        if rec.simple:
            if rec.iface != 0 or len(rec.data) != rec.wirelen:
                raise ValueError("a Simple Packet Block belongs to interface 0 and carries the whole frame")
            out.append(_block(PCAPNG_SPB, struct.pack("<I", rec.wirelen) + _pad4(rec.data)))
            continue
        units = rec.ts_us * 10 ** ((interfaces[rec.iface].tsresol or 6) - 6)
        head = struct.pack("<IIIII", rec.iface, units >> 32, units & 0xFFFFFFFF, len(rec.data), rec.wirelen)
        out.append(_block(PCAPNG_EPB, head + _pad4(rec.data)))
    units = stats_ts_us * 10 ** ((interfaces[0].tsresol or 6) - 6)
    out.append(_block(PCAPNG_ISB, struct.pack("<III", 0, units >> 32, units & 0xFFFFFFFF)))
    return b"".join(out)
