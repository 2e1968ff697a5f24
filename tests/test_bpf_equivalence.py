"""The generated filter keeps exactly the frames the straightforward one keeps.

`reference_expression` is the filter as first written (every OUI, inventory MAC and address tested
one after another, nothing merged); the generated one is restructured to run fewer instructions per
frame. Both are compiled by libpcap and run on every Ethernet frame of the test captures and of a
small site mix, and on frames whose MACs sit on and next to every OUI of the inventories.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import struct
from collections.abc import Iterator
from pathlib import Path

import dpkt
import pcapy
import pytest

from egresswatch.bpf import BPF_BUDGET, FilterInputs, build_filter, filter_expression, inputs_from_config
from egresswatch.capture.files import open_capture
from egresswatch.config import load_config, parse_config
from egresswatch.oui import CAMERA_VENDORS, ouis_for
from egresswatch.workers import share_filter

REPO = Path(__file__).resolve().parent.parent
BENCHMARKS = REPO / "benchmarks"
SMALL_SITE = {"packets": 3000, "cameras": 12, "nvrs": 2, "seconds": 5, "office_hosts": 12}
DLT_EN10MB = 1
DEMO = inputs_from_config(load_config(REPO / "config" / "demo.yaml"))


def reference_expression(inputs: FilterInputs) -> str:
    """The filter for ``inputs`` the way it was first written (needs local networks and a device)."""
    device = [f"ether[{at}:4] & 0xffffff00 == 0x{oui.hex()}00" for oui in inputs.ouis for at in (6, 0)]
    device += [f"ether host {mac}" for mac in inputs.macs]
    device += [f"net {ipaddress.ip_network(net, strict=False)}" for net in inputs.networks]
    local_src = " or ".join(f"src net {net}" for net in inputs.local)
    local_dst = " or ".join(f"dst net {net}" for net in inputs.local)
    core = (f"(({' or '.join(device)}) and not (({local_src}) and ({local_dst}))) or port 53"
            " or udp port 67 or udp port 68 or udp port 546 or udp port 547 or arp"
            " or (icmp6 and (icmp6[0] == 135 or icmp6[0] == 136))"
            " or udp port 3702 or udp port 37020 or udp port 37810 or udp port 5050 or udp port 1900"
            " or udp port 5353 or ip proto 47 or ip6 proto 47 or udp port 4789")
    extra = f"({inputs.extra}) or " if inputs.extra else ""
    return f"{extra}(ether[12:2] != 0x8100 and ({core})) or (vlan and ({core}))"


def many_vendors() -> FilterInputs:
    """Every known camera vendor's OUIs, address-less MACs in and out of them, v4 and v6 networks."""
    ouis = tuple(sorted({oui for slug in CAMERA_VENDORS for oui in ouis_for(slug)}))
    return FilterInputs(
        macs=(f"{ouis[7].hex(':')}:00:00:07", "02:11:22:33:44:55", "02:11:22:33:44:56"),
        networks=("10.20.0.11", "10.20.0.12", "10.20.0.13/32", "10.30.0.0/28", "198.51.100.64/26",
                  "2001:db8:20::11", "2001:db8:21::/64"),
        ouis=ouis,
        local=DEMO.local,
        extra="host 192.0.2.99",
    )


def site_mix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[FilterInputs, Path]:
    """The benchmark site's config at its default size, and a small capture of that site."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import siteconfig
    import sitemix

    document = siteconfig.site_config(sitemix.SiteSpec(), *siteconfig.geoip_databases(tmp_path))
    config = parse_config(document, tmp_path)
    build_filter(config)  # raises ConfigError above BPF_BUDGET
    return inputs_from_config(config), sitemix.ensure_capture(sitemix.SiteSpec(**SMALL_SITE), tmp_path)


def capture_frames(path: Path) -> Iterator[bytes]:
    for batch in open_capture(path):
        if batch.linktype == DLT_EN10MB:
            for _, _, offset, caplen in struct.iter_unpack("=IIII", batch.meta):
                yield batch.data[offset:offset + caplen]


def frames_around_ouis(ouis: tuple[bytes, ...]) -> Iterator[bytes]:
    """Each OUI and its neighbours, as source and as destination, untagged and tagged, to the
    internet (the device clause decides) and to a local host (only "both ends local" decides)."""
    gateway = bytes.fromhex("00005e000101")
    payloads = [bytes(dpkt.ip.IP(src=bytes([10, 1, 0, 7]), dst=bytes(dst), p=dpkt.ip.IP_PROTO_TCP,
                                 data=dpkt.tcp.TCP(sport=40000, dport=443)))
                for dst in ([203, 0, 113, 80], [10, 1, 0, 8])]
    for value in sorted({int.from_bytes(oui, "big") + step for oui in ouis for step in (-1, 0, 1)}):
        for last in (b"\x00\x00\x00", b"\xff\xff\xff"):
            mac = (value % (1 << 24)).to_bytes(3, "big") + last
            for src, dst in ((mac, gateway), (gateway, mac)):
                for tag in (b"", b"\x81\x00\x00\x14"):
                    for payload in payloads:
                        yield dst + src + tag + b"\x08\x00" + payload


def assert_same_frames(inputs: FilterInputs, frames: Iterator[bytes]) -> None:
    generated = pcapy.compile(pcapy.DLT_EN10MB, 65535, filter_expression(inputs), 1, 0)
    reference = pcapy.compile(pcapy.DLT_EN10MB, 65535, reference_expression(inputs), 1, 0)
    verdicts = {True: 0, False: 0}
    for number, frame in enumerate(frames):
        kept = reference.filter(frame) != 0
        assert (generated.filter(frame) != 0) is kept, f"frame {number}: {frame.hex()}"
        verdicts[kept] += 1
    assert verdicts[True] and verdicts[False], verdicts


@pytest.mark.parametrize("inputs", [DEMO, many_vendors()], ids=["demo", "many-vendors"])
def test_same_frames_as_the_reference(inputs: FilterInputs) -> None:
    captures = sorted(REPO.glob("pcaps/*.pcap*"))
    assert len(captures) >= 10
    assert_same_frames(inputs, (frame for path in captures for frame in capture_frames(path)))
    assert_same_frames(inputs, frames_around_ouis(inputs.ouis))


def test_site_mix_same_frames_and_within_budget(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    inputs, capture = site_mix(monkeypatch, tmp_path)
    assert len(inputs.ouis) > 100
    assert_same_frames(inputs, capture_frames(capture))
    assert_same_frames(inputs, frames_around_ouis(inputs.ouis))


def test_demo_config_within_budget() -> None:
    expression = build_filter(load_config(REPO / "config" / "demo.yaml"))
    assert len(pcapy.compile(pcapy.DLT_EN10MB, 65535, expression, 1, 0).get_bpf()) <= BPF_BUDGET


def test_live_form_keeps_on_a_socket_what_the_file_form_keeps_in_a_file() -> None:
    """A live Linux socket sees single-tagged frames with the tag taken out; the live form (no
    `vlan`) must keep such a frame exactly when the file form keeps the frame as it was on the wire."""
    live_expression = filter_expression(DEMO, tags_in_frame=False)
    assert "vlan" not in live_expression and "0x8100" not in live_expression
    file_form = pcapy.compile(pcapy.DLT_EN10MB, 65535, filter_expression(DEMO), 1, 0)
    live = pcapy.compile(pcapy.DLT_EN10MB, 65535, live_expression, 1, 0)
    captures = sorted(REPO.glob("pcaps/*.pcap*"))
    frames = [frame for path in captures for frame in capture_frames(path)]
    frames += list(frames_around_ouis(DEMO.ouis))
    seen = {"tagged": 0, "untagged": 0, "kept": 0}
    for number, frame in enumerate(frames):
        single_tag = frame[12:14] == b"\x81\x00" and frame[16:18] not in (b"\x81\x00", b"\x88\xa8")
        on_socket = frame[:12] + frame[16:] if single_tag else frame
        kept = file_form.filter(frame) != 0
        assert (live.filter(on_socket) != 0) is kept, f"frame {number}: {frame.hex()}"
        seen["tagged" if single_tag else "untagged"] += 1
        seen["kept"] += kept
    assert all(seen.values()), seen


def test_with_workers_the_budget_counts_the_share_filter() -> None:
    config = load_config(REPO / "config" / "demo.yaml")
    expression = build_filter(config, live=True)
    two = dataclasses.replace(config, capture=dataclasses.replace(config.capture, workers=2))
    assert build_filter(two, live=True) == expression
    share = f"({share_filter(0, 2, tags_in_frame=False)}) and ({expression})"
    assert len(pcapy.compile(pcapy.DLT_EN10MB, 65535, share, 1, 0).get_bpf()) <= BPF_BUDGET
