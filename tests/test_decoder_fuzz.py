"""Decoder robustness: random and mutated frames never raise, and every frame is counted.

Frames go through the whole slow path (``Pipeline.feed``): link layer, tags, IP, tunnels, the flow
table and the payload inspection of device flows. The seeds are real frames from the public captures
in ``../shared/realpcaps``, one capture per link type and a few tunnel-heavy ones, so mutations start
from deep, valid headers rather than from noise that dies at the first length check.
"""

from __future__ import annotations

from functools import cache

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.tshark import REALPCAPS, real_captures

from egresswatch.capture import META_STRUCT, Batch
from egresswatch.capture.files import open_capture
from egresswatch.config import Config, parse_config
from egresswatch.model import Totals
from egresswatch.pipeline import Pipeline

# Link type -> captures whose frames seed the mutations.
SEED_CAPTURES: dict[int, tuple[str, ...]] = {
    1: ("zeek_gre_teb_mirror.pcap", "arkime_gre_erspan_vxlan_http.pcap", "zeek_erspan_iii_dot1q.pcap",
        "tcpdump_erspan_ii.pcap", "suri_vxlan_mixed.pcap", "zeek_qinqinq_http.pcap",
        "zeek_ipv6_fragmented_dns.pcap", "shf_dlink_cam_wlan.pcap"),
    113: ("ndpi_rtsp.pcap", "ndpi_quic_v2.pcapng"),
    276: ("zeek_sll2.pcap", "zeek_sll2_tls13_sni.pcap"),
    101: ("shf_xiaomi_cam_rawip.pcap",),
    0: ("tcpdump_quic_truncated_loopback.pcap",),
}
SEEDS_PER_CAPTURE = 64
# Shortest frame each link type can carry anything in: shorter is a decode error, never a packet
# handed on (Ethernet 14, SLL 16, SLL2 20, the 4-byte BSD loopback family, raw IP's version nibble).
LINK_HEADER = {1: 14, 113: 16, 276: 20, 101: 1, 12: 1, 0: 4}
FRAME_GAP = 7
# Devices cover the captures' private ranges, so flows get attributed and their payload inspected.
CONFIG: dict[str, object] = {
    "devices": [
        {"name": "lan-10", "cidr": "10.0.0.0/8"},
        {"name": "lan-172", "cidr": "172.16.0.0/12"},
        {"name": "lan-192", "cidr": "192.168.0.0/16"},
    ],
    "events": {"flows": "all"},
}


@cache
def _config() -> Config:
    return parse_config(CONFIG, REALPCAPS)


def split_frames(batch: Batch) -> list[bytes]:
    return [batch.data[off : off + caplen] for _, _, off, caplen in META_STRUCT.iter_unpack(batch.meta)]


@cache
def seed_frames(linktype: int) -> tuple[bytes, ...]:
    """Up to SEEDS_PER_CAPTURE frames, evenly spread, from each seed capture of ``linktype``."""
    frames: list[bytes] = []
    for name in SEED_CAPTURES[linktype]:
        capture: list[bytes] = []
        for batch in open_capture(REALPCAPS / name):  # libpcap reports LINKTYPE_RAW as DLT_RAW (12)
            capture.extend(split_frames(batch))
        step = max(1, len(capture) // SEEDS_PER_CAPTURE)
        frames.extend(capture[::step])
    return tuple(frames)


def make_batch(linktype: int, frames: list[bytes], start: int = 1_700_000_000) -> Batch:
    """One batch of ``frames``, FRAME_GAP seconds apart so idle and active timers fire in between."""
    meta = bytearray()
    off = 0
    for i, frame in enumerate(frames):
        meta += META_STRUCT.pack(start + i * FRAME_GAP, 0, off, len(frame))
        off += len(frame)
    return Batch(linktype, b"".join(frames), bytes(meta))


def run(linktype: int, frames: list[bytes]) -> Totals:
    pipeline = Pipeline(_config(), [])
    pipeline.feed(make_batch(linktype, frames))
    return pipeline.finish()


@st.composite
def mutated_frame(draw: st.DrawFn, linktype: int) -> bytes:
    """A real frame of ``linktype`` with a few bytes flipped, then possibly cut or extended."""
    frame = bytearray(draw(st.sampled_from(seed_frames(linktype))))
    for _ in range(draw(st.integers(0, 4))):
        if frame:
            pos = draw(st.integers(0, len(frame) - 1))
            frame[pos] ^= draw(st.integers(1, 255))
    edit = draw(st.sampled_from(("none", "truncate", "extend")))
    if edit == "truncate":
        frame = frame[: draw(st.integers(0, len(frame)))]
    elif edit == "extend":
        frame += draw(st.binary(min_size=1, max_size=64))
    return bytes(frame)


LINKTYPES = sorted(SEED_CAPTURES)
frames_of_any_linktype = st.sampled_from(LINKTYPES).flatmap(
    lambda lt: st.tuples(
        st.just(lt),
        st.lists(st.one_of(mutated_frame(lt), st.binary(max_size=96)), min_size=1, max_size=24),
    )
)


# database=None: tests write only to temp dirs, and the examples are cheap to regenerate.
@settings(max_examples=2000, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames_of_any_linktype)
def test_random_and_mutated_frames_never_raise(case: tuple[int, list[bytes]]) -> None:
    linktype, frames = case
    totals = run(linktype, frames)
    assert totals.packets == len(frames)
    assert totals.decode_error_count() <= len(frames)
    assert all(count > 0 for count in (totals.decode_errors or {}).values())


@pytest.mark.parametrize("linktype", LINKTYPES)
def test_frames_shorter_than_the_link_header_are_decode_errors(linktype: int) -> None:
    frames = [seed_frames(linktype)[0][:cut] for cut in range(LINK_HEADER[linktype])]
    totals = run(linktype, frames)
    assert totals.packets == len(frames)
    assert totals.decode_error_count() == len(frames)
    assert totals.flows == 0


# Frames per capture cut at every length in the truncation sweep below.
SWEEP_FRAMES = 3


def _sweep_cases() -> list[tuple[str, int, list[bytes]]]:
    cases = []
    for capture in real_captures():
        batch = next(iter(open_capture(capture)))  # the first batch is enough: a few frames per capture
        frames = split_frames(batch)
        step = max(1, len(frames) // SWEEP_FRAMES)
        cases.append((capture.name, batch.linktype, frames[::step][:SWEEP_FRAMES]))
    return cases


def test_every_truncation_of_real_frames() -> None:
    """A few frames of every real capture, cut at every byte position: counted, never raising."""
    cases = _sweep_cases()
    assert len(cases) == 56
    for name, linktype, frames in cases:
        for frame in frames:
            cuts = [frame[:n] for n in range(len(frame) + 1)]
            totals = run(linktype, cuts)
            assert totals.packets == len(cuts), name
            short = min(LINK_HEADER[linktype], len(cuts))
            assert totals.decode_error_count() >= short, f"{name}: cuts inside the link header not all errors"
