"""pcapng block reader (draft-ietf-opsawg-pcapng).

Each packet is read with its own interface's link type and timestamp resolution: one file may
carry Ethernet, raw IP and Linux cooked interfaces side by side. Consecutive packets of the same
link type are gathered into one `Batch`; timestamps are normalised to microseconds.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from egresswatch.capture import BATCH_PACKETS, META_STRUCT, Batch, CaptureError
from egresswatch.decode.registry import SUPPORTED_LINKTYPES

PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"
BYTE_ORDER_MAGIC = 0x1A2B3C4D
BLOCK_SHB = 0x0A0D0D0A
BLOCK_IDB = 0x00000001
BLOCK_PB = 0x00000002  # obsolete Packet Block
BLOCK_SPB = 0x00000003
BLOCK_EPB = 0x00000006
OPT_IF_TSRESOL = 9
OPT_IF_TSOFFSET = 14
MAX_BLOCK = 64 * 1024 * 1024


class _Interface:
    __slots__ = ("linktype", "offset", "snaplen", "units")

    def __init__(self, linktype: int, snaplen: int, units: int, offset: int) -> None:
        self.linktype = linktype
        self.snaplen = snaplen
        self.units = units
        """Timestamp units per second."""
        self.offset = offset
        """if_tsoffset, seconds added to every timestamp."""


class PcapngSource:
    def __init__(self, path: Path) -> None:
        self.name = str(path)
        self.size_bytes: int | None = path.stat().st_size
        self.position_bytes = 0
        self.truncated_at: str | None = None
        self.packets_read = 0

    def __iter__(self) -> Iterator[Batch]:
        with open(self.name, "rb") as f:
            yield from self._blocks(f)

    def _blocks(self, f: BinaryIO) -> Iterator[Batch]:
        endian = "<"
        interfaces: list[_Interface] = []
        linktype = -1
        data = bytearray()
        meta = bytearray()
        while True:
            start = self.position_bytes
            head = f.read(8)
            if not head:
                break
            if len(head) < 8:
                self._truncated(start, "block header cut short")
                break
            if head[:4] == PCAPNG_MAGIC:
                order = f.read(4)
                if len(order) < 4:
                    self._truncated(start, "section header cut short")
                    break
                endian = "<" if struct.unpack("<I", order)[0] == BYTE_ORDER_MAGIC else ">"
                body_len = struct.unpack(endian + "I", head[4:8])[0] - 12
                body = order + f.read(body_len)
                interfaces = []
                if len(body) < body_len + 4:
                    self._truncated(start, "section header cut short")
                    break
                self.position_bytes += 8 + len(body)
                continue
            block_type, block_len = struct.unpack(endian + "II", head)
            if block_len < 12 or block_len % 4 or block_len > MAX_BLOCK:
                self._truncated(start, f"corrupt block length {block_len}")
                break
            body = f.read(block_len - 8)
            if len(body) < block_len - 8:
                self._truncated(start, "block cut short")
                break
            self.position_bytes += block_len
            if block_type == BLOCK_IDB:
                interfaces.append(self._interface(body, endian))
                continue
            try:
                packet = self._packet(block_type, body, endian, interfaces)
            except ValueError as exc:
                self._truncated(start, str(exc))
                break
            if packet is None:
                continue
            iface, sec, usec, payload = packet
            if iface.linktype != linktype or len(meta) >= BATCH_PACKETS * META_STRUCT.size:
                if meta:
                    yield Batch(linktype, bytes(data), bytes(meta))
                data.clear()
                meta.clear()
                linktype = iface.linktype
            meta += META_STRUCT.pack(sec, usec, len(data), len(payload))
            data += payload
            self.packets_read += 1
        if meta:
            yield Batch(linktype, bytes(data), bytes(meta))

    def _truncated(self, offset: int, why: str) -> None:
        self.truncated_at = f"stopped at packet {self.packets_read + 1}, byte offset {offset} ({why})"

    def _interface(self, body: bytes, endian: str) -> _Interface:
        linktype, _reserved, snaplen = struct.unpack_from(endian + "HHI", body, 0)
        if linktype not in SUPPORTED_LINKTYPES:
            raise CaptureError(self.name, f"unsupported link type {linktype}")
        units, offset = 1_000_000, 0
        for code, value in _options(body, 8, endian):
            if code == OPT_IF_TSRESOL and value:
                exponent = value[0] & 0x7F
                units = 2**exponent if value[0] & 0x80 else 10**exponent
            elif code == OPT_IF_TSOFFSET and len(value) >= 8:
                offset = struct.unpack(endian + "q", value[:8])[0]
        return _Interface(linktype, snaplen, units, offset)

    def _packet(
        self, block_type: int, body: bytes, endian: str, interfaces: list[_Interface]
    ) -> tuple[_Interface, int, int, bytes] | None:
        if block_type in (BLOCK_EPB, BLOCK_PB):
            if block_type == BLOCK_EPB:
                if_id, ts_high, ts_low, caplen, _wirelen = struct.unpack_from(endian + "IIIII", body, 0)
            else:
                layout = endian + "HHIIII"
                if_id, _drops, ts_high, ts_low, caplen, _wirelen = struct.unpack_from(layout, body, 0)
            iface = self._iface(interfaces, if_id)
            start = 20
            ticks = ts_high << 32 | ts_low
        elif block_type == BLOCK_SPB:
            iface = self._iface(interfaces, 0)
            wirelen = struct.unpack_from(endian + "I", body, 0)[0]
            caplen = min(wirelen, iface.snaplen or wirelen, len(body) - 8)
            start = 4
            ticks = 0
        else:
            return None  # statistics, name resolution, custom blocks: nothing we count
        if start + caplen > len(body) - 4:
            raise ValueError("packet overruns its block")
        whole, frac = divmod(ticks, iface.units)
        usec = frac * 1_000_000 // iface.units
        return iface, whole + iface.offset, usec, body[start : start + caplen]

    def _iface(self, interfaces: list[_Interface], if_id: int) -> _Interface:
        if if_id >= len(interfaces):
            raise ValueError(f"packet names undeclared interface {if_id}")
        return interfaces[if_id]


def _options(body: bytes, offset: int, endian: str) -> Iterator[tuple[int, bytes]]:
    end = len(body) - 4  # trailing block length copy
    while offset + 4 <= end:
        code, length = struct.unpack_from(endian + "HH", body, offset)
        if code == 0:
            return
        value = body[offset + 4 : offset + 4 + length]
        yield code, value
        offset += 4 + (length + 3) // 4 * 4
