"""The address-pair split of `replay --workers` and the daemon's workers: libpcap's filter and
Python's `address_share` agree frame by frame, and the split is even where addresses are alike."""

from __future__ import annotations

import itertools
import json
import random
import socket
from pathlib import Path

import dpkt
import pcapy
import pytest

from egresswatch.cli import main
from egresswatch.workers import address_share, share_filter
from tests.support.frames import ethernet_frame

CONFIG = Path(__file__).resolve().parent.parent / "config" / "demo.yaml"

rng = random.Random(3)


def _pairs() -> list[tuple[bytes, bytes]]:
    site = [socket.inet_aton(f"10.20.{rng.randrange(4)}.{rng.randrange(1, 255)}") for _ in range(200)]
    remote = [rng.getrandbits(32).to_bytes(4, "big") for _ in range(200)]
    v6 = [bytes.fromhex("20010db8") + rng.getrandbits(96).to_bytes(12, "big") for _ in range(200)]
    return [*itertools.pairwise(site), *zip(site, remote, strict=True), *zip(v6, v6[::-1], strict=True)]


@pytest.mark.parametrize("workers", [2, 3])
def test_filter_and_address_share_name_the_same_worker(workers: int) -> None:
    filters = [pcapy.compile(pcapy.DLT_EN10MB, 65535, share_filter(w, workers), 1, 0) for w in range(workers)]
    for src, dst in _pairs():
        owner = address_share(src, dst, workers)
        assert owner == address_share(dst, src, workers)
        for frame in (ethernet_frame(src, dst, 40000, 443), ethernet_frame(dst, src, 443, 40000, vlan=20)):
            kept = [w for w, program in enumerate(filters) if program.filter(frame)]
            assert kept == [owner], (src.hex(), dst.hex())


def test_dns_goes_to_every_worker() -> None:
    frame = ethernet_frame(socket.inet_aton("10.20.1.11"), socket.inet_aton("10.20.0.1"), 5353, 53)
    assert all(pcapy.compile(pcapy.DLT_EN10MB, 65535, share_filter(w, 2), 1, 0).filter(frame) for w in (0, 1))


def test_alike_site_addresses_split_evenly() -> None:
    """60 cameras on every other address (reservations often go so) streaming to 4 NVRs: no
    worker gets the bulk. A plain sum of the addresses put every one of them on worker 0."""
    cameras = [socket.inet_aton(f"10.20.1.{host}") for host in range(10, 130, 2)]
    nvrs = [socket.inet_aton(f"10.20.0.{host}") for host in (2, 4, 6, 8)]
    shares = [address_share(camera, nvrs[i % 4], 2) for i, camera in enumerate(cameras)]
    assert 20 <= shares.count(0) <= 40


def _vxlan(inner: bytes, outer_src: bytes, outer_dst: bytes) -> bytes:
    vxlan_header = bytes.fromhex("0800000000001400")  # flags: VNI present; VNI 20
    return ethernet_frame(outer_src, outer_dst, 49152, 4789, payload=vxlan_header + inner)


def test_dns_inside_a_tunnel_is_counted_by_the_worker_that_gets_the_tunnel(tmp_path: Path) -> None:
    """Every frame of a tunnel reaches the worker of its outer pair, whatever its inner pair: the
    DNS flows inside are that worker's, not shadows of the worker the inner pair hashes to."""
    outer = (socket.inet_aton("192.0.2.1"), socket.inet_aton("192.0.2.2"))
    client = socket.inet_aton("10.20.1.11")
    resolvers = [socket.inet_aton(f"10.20.0.{host}") for host in range(1, 9)]
    inner_owners = {address_share(client, resolver, 2) for resolver in resolvers}
    assert inner_owners == {0, 1}, "some inner pairs must hash away from the tunnel's worker"
    path = tmp_path / "tunnel-dns.pcap"
    with path.open("wb") as out:
        writer = dpkt.pcap.Writer(out)
        for n, resolver in enumerate(resolvers):
            query = ethernet_frame(client, resolver, 40000 + n, 53)
            answer = ethernet_frame(resolver, client, 53, 40000 + n)
            writer.writepkt(_vxlan(query, *outer), ts=1_700_000_000 + n)
            writer.writepkt(_vxlan(answer, *outer[::-1]), ts=1_700_000_000 + n + 0.01)
    summaries = []
    for workers in ("1", "2"):
        summary = tmp_path / f"summary-{workers}.json"
        assert main(["replay", str(path), "-c", str(CONFIG), "--workers", workers,
                     "--summary-json", str(summary)]) == 0
        summaries.append(json.loads(summary.read_text())["totals"])
    assert summaries[0]["flows"] == len(resolvers)
    assert summaries[1] == summaries[0]
