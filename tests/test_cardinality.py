"""Prometheus label cardinality stays bounded whatever the traffic (issue 5).

A capture with 100,000 distinct remote addresses and ports from an inventory camera, and more
discovered cameras than `metrics.max_devices` allows, must add no series per address, port or
device beyond the bound docs/metrics.md gives.
"""

from __future__ import annotations

import ipaddress
import random
import struct
from pathlib import Path

from fixtures_geo import write_asn_db, write_country_db
from prometheus_client.parser import text_string_to_metric_families

from egresswatch.cli import main

REMOTES = 100_000
DISCOVERED = 80
MAX_DEVICES = 50
CAMERA_MAC = bytes.fromhex("4419b6300001")
GATEWAY_MAC = bytes.fromhex("00001b540001")
BYTE_FAMILIES = ("egresswatch_device_egress_bytes", "egresswatch_device_ingress_bytes")


def _frame(src_mac: bytes, src: bytes, dst: bytes, sport: int, dport: int) -> bytes:
    udp = struct.pack("!HHHH", sport, dport, 8 + 32, 0) + bytes(32)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, src, dst) + udp
    return GATEWAY_MAC + src_mac + b"\x08\x00" + ip


def _write_capture(path: Path) -> None:
    rng = random.Random(7)
    camera = ipaddress.IPv4Address("10.30.1.10").packed
    frames = []
    for n in range(REMOTES):
        # 11.0.0.0/8 is mapped to CN and US by the test's own fixture database.
        remote = (ipaddress.IPv4Address("11.0.0.0") + n * 83 % (1 << 24)).packed
        frames.append(_frame(CAMERA_MAC, camera, remote, rng.randrange(1024, 65535), rng.randrange(1, 65535)))
    for n in range(DISCOVERED):
        mac = bytes.fromhex("4419b6") + (0x400000 + n).to_bytes(3, "big")
        local = (ipaddress.IPv4Address("10.30.2.0") + n).packed
        frames.append(_frame(mac, local, ipaddress.IPv4Address("11.200.0.1").packed, 40000 + n, 443))
    with path.open("wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for n, frame in enumerate(frames):
            out.write(struct.pack("<IIII", 1767600000 + n // 1000, n % 1000 * 1000, len(frame), len(frame)))
            out.write(frame)


def test_series_stay_bounded_with_100k_remote_addresses(tmp_path: Path) -> None:
    capture = tmp_path / "spray.pcap"
    _write_capture(capture)
    country = write_country_db(tmp_path / "country.mmdb", {"11.0.0.0/9": "CN", "11.128.0.0/9": "US"})
    asn = write_asn_db(tmp_path / "asn.mmdb", {"11.0.0.0/8": (64511, "Example Spray")})
    config = tmp_path / "site.yaml"
    config.write_text(
        "devices:\n"
        "  - {name: cam-spray, mac: '44:19:b6:30:00:01', ip: 10.30.1.10, group: cameras}\n"
        "groups:\n  cameras:\n    allow:\n      - {categories: [infrastructure]}\n"
        f"geoip: {{country_db: {country}, asn_db: {asn}}}\n"
        f"metrics: {{max_devices: {MAX_DEVICES}}}\n"
    )
    metrics = tmp_path / "metrics.prom"
    summary = tmp_path / "summary.json"
    argv = ["replay", str(capture), "-c", str(config), "--metrics-out", str(metrics)]
    assert main([*argv, "--summary-json", str(summary), "--no-progress"]) == 0

    families = list(text_string_to_metric_families(metrics.read_text()))
    samples = [s for f in families if f.name.startswith("egresswatch_") for s in f.samples]
    devices = {s.labels["device"] for s in samples if "device" in s.labels}
    countries = {s.labels["country"] for s in samples if "country" in s.labels}
    addresses = {str(ipaddress.IPv4Address("11.0.0.0") + n * 83 % (1 << 24)) for n in range(0, REMOTES, 997)}

    # Every address and port in the capture is absent from every label value.
    label_values = {value for s in samples for value in s.labels.values()}
    assert not label_values & addresses
    assert not any(value.isdigit() and int(value) > 1023 for value in label_values)
    # Devices: the first max_devices distinct names, then "other".
    assert len(devices) <= MAX_DEVICES + 1
    assert "other" in devices
    assert "cam-spray" in devices
    assert countries <= {"CN", "US", "ZZ", "local"}
    # The documented bound: (max_devices + 2) x (countries seen + 2) x 5 categories x 4 verdicts
    # per byte family; here far fewer, since each device talks to two countries in one category.
    byte_series = [s for s in samples if s.name.startswith(BYTE_FAMILIES) and s.name.endswith("_total")]
    assert len(byte_series) <= 2 * (MAX_DEVICES + 2) * (len(countries) + 2) * 5 * 4
    assert len(samples) < 2_000
