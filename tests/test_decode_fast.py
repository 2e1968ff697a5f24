"""The C decode of the common Ethernet frame (`_fastpath.decode_ethernet`) against the registry.

`Decoder.decode` hands an Ethernet frame to the C function first and walks the registry only when
it declines. Both must fill the same `Packet`: every frame of every generated and real capture,
and damaged frames, are decoded both ways; the C function must take exactly the frames of its
shape (so the shortcut is really used) and leave every other frame untouched.
"""

from __future__ import annotations

import ast
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.frames import ethernet_frame
from support.tshark import REALPCAPS

from egresswatch import _fastpath as fastpath
from egresswatch.capture import LINKTYPE_ETHERNET, META_STRUCT
from egresswatch.capture.files import open_capture
from egresswatch.decode.packet import FIELDS, Packet
from egresswatch.decode.registry import UDP_PORT_DECODERS, Decoder

PCAPS = Path(__file__).resolve().parent.parent / "pcaps"
CAPTURES = sorted(p for p in [*PCAPS.iterdir(), *REALPCAPS.iterdir()] if p.suffix in (".pcap", ".pcapng"))
DECODER = Decoder()


def _fields(pkt: Packet) -> dict[str, object]:
    return {name: getattr(pkt, name) for name in FIELDS}


def _both(frame: bytes, off: int = 0, end: int | None = None) -> tuple[bool, Packet, str | None, Packet]:
    """(C took it, its packet, the registry's anomaly, the registry's packet)."""
    end = len(frame) if end is None else end
    fast = Packet()
    took = fastpath.decode_ethernet(frame, off, end, fast, UDP_PORT_DECODERS)
    walked = Packet()
    anomaly = DECODER.walk(LINKTYPE_ETHERNET, frame, off, end, walked)
    return took, fast, anomaly, walked


def _common_shape(frame: bytes) -> bool:
    """The frames the C decode is for, read from the bytes alone: at most one 802.1Q tag, then
    IPv4 or IPv6 whose next header is TCP or UDP (the registry then says whether it is well formed)."""
    if len(frame) < 14:
        return False
    etype, l3 = int.from_bytes(frame[12:14], "big"), 14
    if etype == 0x8100 and len(frame) >= 18:
        etype, l3 = int.from_bytes(frame[16:18], "big"), 18
    if etype == 0x0800 and len(frame) > l3 + 9:
        return frame[l3 + 9] in (6, 17)
    if etype == 0x86DD and len(frame) > l3 + 6:
        return frame[l3 + 6] in (6, 17)
    return False


def _frames(path: Path) -> Iterator[bytes]:
    for linktype, data, meta in open_capture(path):
        if linktype == LINKTYPE_ETHERNET:
            for _sec, _usec, off, caplen in META_STRUCT.iter_unpack(meta):
                yield bytes(data[off : off + caplen])


@pytest.mark.parametrize("capture", CAPTURES, ids=lambda p: p.name)
def test_every_frame_of_every_capture_decodes_as_the_registry_does(capture: Path) -> None:
    taken = 0
    for frame in _frames(capture):
        took, fast, anomaly, walked = _both(frame)
        if took:
            taken += 1
            assert anomaly is None and _fields(fast) == _fields(walked)
        else:
            assert _fields(fast) == _fields(Packet())
            # declined: not its shape, or a fragment, a tunnel or a header the registry rejects
            assert (not _common_shape(frame) or anomaly is not None or walked.frag_id is not None
                    or walked.tunnel_depth or walked.ip_version == 0)
    if capture.parent == PCAPS and capture.name.startswith("school"):
        assert taken > 1000  # the school capture is almost all plain TCP/UDP over Ethernet


def test_the_common_frames_are_taken_at_an_offset_into_the_buffer() -> None:
    frame = ethernet_frame(socket.inet_aton("10.20.1.11"), socket.inet_aton("198.51.100.7"), 5000, 443,
                           tcp_flags=0x18, vlan=21, payload=b"hello")
    buffer = b"\xff" * 37 + frame + b"\xee" * 11
    took, fast, anomaly, walked = _both(buffer, 37, 37 + len(frame))
    assert took and anomaly is None and _fields(fast) == _fields(walked)
    assert (fast.vlan, fast.sport, fast.dport, fast.tcp_flags) == (21, 5000, 443, 0x18)
    assert buffer[fast.payload_off : fast.payload_end] == b"hello"


def test_a_udp_tunnel_port_is_left_to_the_registry() -> None:
    inner = ethernet_frame(socket.inet_aton("10.9.0.1"), socket.inet_aton("198.51.100.9"), 5000, 443)
    vxlan = b"\x08\x00\x00\x00" + (4242 << 8).to_bytes(4, "big")  # I flag, VNI 4242
    frame = ethernet_frame(socket.inet_aton("10.0.0.1"), socket.inet_aton("10.0.0.2"), 40000, 4789,
                           payload=vxlan + inner)
    took, fast, anomaly, walked = _both(frame)
    assert not took and _fields(fast) == _fields(Packet())
    assert anomaly is None and walked.tunnel_depth == 1 and walked.src == socket.inet_aton("10.9.0.1")


def test_records_outside_the_buffer_are_declined() -> None:
    frame = ethernet_frame(socket.inet_aton("10.0.0.1"), socket.inet_aton("10.0.0.2"), 1, 2)
    for off, end in ((0, len(frame) + 1), (-1, len(frame)), (10, 5)):
        pkt = Packet()
        assert fastpath.decode_ethernet(frame, off, end, pkt, UDP_PORT_DECODERS) is False
        assert _fields(pkt) == _fields(Packet())


V6_A, V6_B = (bytes.fromhex("20010db8" + "00" * 11 + last) for last in ("01", "02"))
PLAIN = [ethernet_frame(src, dst, 5000, 443, tcp_flags=flags, vlan=vlan, payload=b"x" * 30)
         for src, dst in ((socket.inet_aton("10.0.0.1"), socket.inet_aton("198.51.100.1")), (V6_A, V6_B))
         for flags in (None, 0x02, 0x11) for vlan in (None, 30)]


@st.composite
def damaged(draw: st.DrawFn) -> bytes:
    """A plain frame with up to three bytes changed and cut anywhere."""
    frame = bytearray(draw(st.sampled_from(PLAIN)))
    for _ in range(draw(st.integers(0, 3))):
        frame[draw(st.integers(0, len(frame) - 1))] = draw(st.integers(0, 255))
    return bytes(frame[: draw(st.integers(0, len(frame)))])


@settings(max_examples=2000, deadline=None)
@given(frame=damaged())
def test_damaged_frames_decode_as_the_registry_does_or_are_declined_untouched(frame: bytes) -> None:
    took, fast, anomaly, walked = _both(frame)
    if took:
        assert anomaly is None and _fields(fast) == _fields(walked)
    else:
        assert _fields(fast) == _fields(Packet())


def test_the_c_packet_has_the_pure_python_packets_defaults() -> None:
    """A build without a compiler gets the Python Packet; both start with the same fields."""
    script = ("import sys; sys.modules['egresswatch._fastpath'] = None\n"
              "from egresswatch.decode.packet import FIELDS, Packet, PacketBase\n"
              "assert PacketBase is object\n"
              "print(repr({name: getattr(Packet(), name) for name in FIELDS}))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                          check=True)
    assert type(Packet()).__mro__[1] is fastpath.PacketBase
    assert ast.literal_eval(done.stdout) == _fields(Packet())
