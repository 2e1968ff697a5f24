"""Decoder parity (issue 2): every real public capture replays cleanly and counts what tshark counts.

For each capture in ``../shared/realpcaps`` the real CLI replays it in-process; the test then checks
the exit code, the packet total against capinfos, and, per unordered IP address pair, the packets and
IP-layer bytes of all ``flow_end`` events against tshark's innermost IP layer of every frame (see
``tests/support/tshark.py`` for why that is not ``-z conv,ip``). Where egresswatch counts a frame
differently from tshark on purpose, the conversation is listed in ``DEVIATIONS`` with both sides'
counts pinned and the reason (``docs/decoder-parity.md`` explains each); everything else must match
exactly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from fixtures_geo import write_asn_db, write_country_db
from support import tshark

from egresswatch.cli import main

REALPCAPS = tshark.REALPCAPS
CAPTURES = tshark.real_captures()
EXPECTED_CAPTURES = 56  # MANIFEST.md; a missing file must fail, not shrink the parametrisation
GEOIP_FIXTURES = Path(__file__).resolve().parents[1] / "pcaps" / "geoip"

needs_tshark = pytest.mark.skipif(
    tshark.TSHARK is None, reason="tshark is not installed here (.ci/run installs it for CI)"
)


Count = tuple[int, int]
"""(packets, IP-layer bytes) of one conversation."""


@dataclass(frozen=True, slots=True)
class Deviation:
    """A conversation egresswatch deliberately counts differently from tshark, with both counts pinned."""

    capture: str
    pair: tshark.AddrPair
    tshark: Count | None
    """What tshark's innermost IP layers give the pair (None: no frame)."""
    egresswatch: Count | None
    """What egresswatch reports for it (None: no flow)."""
    frames: str
    """Which frames differ, for the reader."""
    reason: str


# One row per deliberate difference; docs/decoder-parity.md has the long form of each reason.
DEVIATIONS: tuple[Deviation, ...] = (
    Deviation(
        "arkime_gre_erspan_vxlan_http.pcap", tshark.pair("172.16.27.121", "172.16.27.131"), None, (7, 687),
        "1-7", "UDP 4789 -> 4790: VXLAN is recognised by destination port 4789 only (RFC 7348 5.); "
        "tshark matched the source port, so egresswatch counts the UDP packet, not its inner frame",
    ),
    Deviation(
        "arkime_gre_erspan_vxlan_http.pcap", tshark.pair("10.16.27.12", "10.16.27.131"), (7, 337), None,
        "1-7", "the inner HTTP packets of that UDP 4789 -> 4790 tunnel",
    ),
    Deviation(
        "zeek_gre_teb_mirror.pcap", tshark.pair("10.200.0.3", "10.200.0.224"), (49, 59380), (39, 45523),
        "5 6 12 13 59 60 95 96 138 139; 16 fragmented GRE datagrams (153/155 ... 283/284)",
        "GRE carrying ARP: the mirrored frame is not IP, so it is no IP packet (tshark counts the carrier). "
        "GRE datagrams fragmented by the outer IPv4 header: egresswatch decapsulates the first fragment and "
        "counts the others in the carrier's flow; tshark reassembles, counting the inner packet at the last "
        "fragment and the first fragment as carrier. The inner conversations' totals agree.",
    ),
)

# Outer tunnel endpoints: ``-z conv,ip`` credits them with every tunnelled frame, the extraction only
# with frames whose innermost IP layer is the outer one (e.g. GRE carrying ARP).
TUNNEL_OUTER_PAIRS: dict[str, tshark.AddrPair] = {
    "arkime_gre_erspan_vxlan_http.pcap": tshark.pair("100.20.9.1", "100.20.9.2"),
    "suri_vxlan_mixed.pcap": tshark.pair("172.31.0.238", "172.31.17.188"),
    "tcpdump_erspan_ii.pcap": tshark.pair("192.168.195.67", "192.168.195.196"),
    "zeek_erspan_iii_dot1q.pcap": tshark.pair("172.31.1.23", "172.31.1.135"),
    "zeek_gre.pcap": tshark.pair("66.59.109.137", "172.27.1.66"),
    "zeek_gre_teb_mirror.pcap": tshark.pair("10.200.0.3", "10.200.0.224"),
    "zeek_vxlan_http.pcap": tshark.pair("10.1.1.172", "10.1.200.131"),
}
# arkime nests GRE/ERSPAN around a VXLAN tunnel whose own endpoints are a second outer pair.
TUNNEL_MIDDLE_PAIRS: dict[str, tshark.AddrPair] = {
    "arkime_gre_erspan_vxlan_http.pcap": tshark.pair("172.16.27.121", "172.16.27.131"),
    "tcpdump_erspan_ii.pcap": tshark.pair("192.168.195.73", "192.168.195.196"),
}

# Frames the extraction counts although ``-z conv,ip``/``conv,ipv6`` does not tap them.
CONV_TAP_GAPS: dict[str, dict[tshark.AddrPair, int]] = {
    # frame 8: IPv4 header with options that run past the header length; tshark lists the layer
    # (and its addresses) but marks it malformed before the conversation tap.
    "suri_malformed_ipv4.pcap": {tshark.pair("192.0.2.10", "198.51.100.5"): 1},
    # frames 4, 6, 7: IPv6 fragments that do not complete reassembly are not tapped by conv,ipv6.
    "zeek_ipv6_fragmented_dns.pcap": {
        tshark.pair("2001:470:1f11:81f:d138:5f55:6d4:1fe2", "2607:f740:b::f93"): 3,
    },
}


def _ids(captures: list[Path]) -> list[str]:
    return [p.name for p in captures]


def test_capture_set_is_complete() -> None:
    assert len(CAPTURES) == EXPECTED_CAPTURES, f"{REALPCAPS}: expected {EXPECTED_CAPTURES} captures"
    for capture in CAPTURES:
        assert capture.with_suffix(".truth.txt").is_file(), f"{capture.name}: no truth file"
    for deviation in DEVIATIONS:
        assert (REALPCAPS / deviation.capture).is_file(), deviation


@needs_tshark
@pytest.mark.parametrize("capture", CAPTURES, ids=_ids(CAPTURES))
def test_tshark_extraction_matches_truth_conversations(capture: Path) -> None:
    """The per-frame extraction reproduces the ground truth's conv,ip frame counts.

    Tunnels aside (the truth credits outer and middle endpoints with every frame they carry), and
    the few frames tshark shows but does not tap, both views must agree frame for frame.
    """
    mine = {key: counts.frames for key, counts in tshark.conversations(tshark.frame_ips(capture)).items()}
    truth = tshark.truth_conversations(capture.with_suffix(".truth.txt"))
    for key, gap in CONV_TAP_GAPS.get(capture.name, {}).items():
        truth[key] += gap
    for tunnel in (TUNNEL_OUTER_PAIRS, TUNNEL_MIDDLE_PAIRS):
        if key := tunnel.get(capture.name):
            assert mine.pop(key, 0) < truth.pop(key), f"{capture.name}: {key} is not a tunnel endpoint pair"
    assert mine == truth


@pytest.fixture(scope="module")
def geoip_dbs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The repo's fixture GeoIP DBs, or two tiny stand-ins while they do not exist yet."""
    country, asn = GEOIP_FIXTURES / "country.mmdb", GEOIP_FIXTURES / "asn.mmdb"
    if country.is_file() and asn.is_file():
        return country, asn
    out = tmp_path_factory.mktemp("geoip")
    return (
        write_country_db(out / "country.mmdb", {"198.51.100.0/24": "GB"}),
        write_asn_db(out / "asn.mmdb", {"198.51.100.0/24": (64500, "Example")}),
    )


def replay(capture: Path, tmp_path: Path, geoip: tuple[Path, Path]) -> tuple[int, list[dict], dict]:
    """Run ``egresswatch replay`` on one capture; return exit code, flow_end events, summary."""
    config, events, summary = tmp_path / "config.yaml", tmp_path / "events.jsonl", tmp_path / "summary.json"
    geo = {"country_db": str(geoip[0]), "asn_db": str(geoip[1])}
    config.write_text(json.dumps({"events": {"flows": "all"}, "geoip": geo}))  # JSON is YAML
    argv = [str(capture), "-c", str(config), "--events", str(events), "--summary-json", str(summary)]
    code = main(["replay", *argv, "--no-progress"])
    lines = events.read_text().splitlines() if events.exists() else []
    flow_ends = [e for e in map(json.loads, lines) if e["event"]["action"] == "flow_end"]
    return code, flow_ends, json.loads(summary.read_text()) if summary.exists() else {}


def egresswatch_conversations(flow_ends: list[dict]) -> dict[tshark.AddrPair, tshark.Counts]:
    convs: dict[tshark.AddrPair, tshark.Counts] = {}
    for event in flow_ends:
        src, dst = event["source"], event["destination"]
        counts = convs.setdefault(tshark.pair(src["ip"], dst["ip"]), tshark.Counts())
        counts.frames += src["packets"] + dst["packets"]
        counts.ip_bytes += src["bytes"] + dst["bytes"]
    return convs


@needs_tshark
@pytest.mark.parametrize("capture", CAPTURES, ids=_ids(CAPTURES))
def test_replay_matches_tshark(capture: Path, tmp_path: Path, geoip_dbs: tuple[Path, Path]) -> None:
    code, flow_ends, summary = replay(capture, tmp_path, geoip_dbs)
    assert code == 0
    assert summary["totals"]["packets"] == tshark.truth_packet_count(capture.with_suffix(".truth.txt"))

    ours = {key: (c.frames, c.ip_bytes) for key, c in egresswatch_conversations(flow_ends).items()}
    counted = tshark.conversations(tshark.frame_ips(capture))
    theirs = {key: (c.frames, c.ip_bytes) for key, c in counted.items()}
    ip_bytes = summary["totals"]["ip_bytes"]
    for deviation in (d for d in DEVIATIONS if d.capture == capture.name):
        assert (theirs.pop(deviation.pair, None), ours.pop(deviation.pair, None)) == (
            deviation.tshark, deviation.egresswatch), deviation
        ip_bytes -= deviation.egresswatch[1] if deviation.egresswatch else 0
    assert ours == theirs
    assert ip_bytes == sum(b for _, b in theirs.values())
