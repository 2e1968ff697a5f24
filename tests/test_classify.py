"""classify(): app, port, video shape and default, each with its reason."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from egresswatch.classify import FlowFacts, classify
from egresswatch.config import ClassifyConfig
from egresswatch.model import CATEGORIES

CFG = ClassifyConfig(video_min_kbps=256)

# 2 Mbit/s for 60 s up in 1,200-byte packets, a trickle of ACKs down: a camera pushing video.
STREAM = FlowFacts(
    transport="tcp",
    src_port=50000,
    dst_port=443,
    up_bytes=15_360_000,
    up_packets=12_800,
    down_bytes=256_000,
    down_packets=6_400,
    duration=60.0,
    app="tls",
)
# a small HTTPS exchange
CHATTER = FlowFacts("tcp", 50001, 443, 2_000, 10, 6_000, 10, 3.0, "tls")


@pytest.mark.parametrize(
    "app", ["rtsp", "rtp", "rtcp", "rtmp", "srt", "hls", "webrtc", "ptcp", "baichuan-relay"]
)
def test_streaming_apps_are_footage(app: str) -> None:
    assert classify(dataclasses.replace(CHATTER, app=app), CFG) == ("footage", f"app={app}")


@pytest.mark.parametrize("app", ["mqtt", "stun", "dh-p2p", "baichuan-p2p"])
def test_signalling_and_messaging_apps_are_telemetry_even_when_video_shaped(app: str) -> None:
    assert classify(dataclasses.replace(STREAM, app=app), CFG) == ("telemetry", f"app={app}")


@pytest.mark.parametrize("app", ["dns", "ntp", "dhcp"])
def test_infrastructure_apps(app: str) -> None:
    # app beats the shape: a DNS flow is infrastructure however it looks
    assert classify(dataclasses.replace(STREAM, app=app), CFG) == ("infrastructure", f"app={app}")


@pytest.mark.parametrize(
    ("port", "category"),
    [
        (554, "footage"),
        (8554, "footage"),
        (1935, "footage"),
        (53, "infrastructure"),
        (123, "infrastructure"),
        (67, "infrastructure"),
        (68, "infrastructure"),
        (1883, "telemetry"),
        (8883, "telemetry"),
    ],
)
def test_well_known_ports_on_either_end(port: int, category: str) -> None:
    to_service = dataclasses.replace(CHATTER, app=None, dst_port=port)
    from_service = dataclasses.replace(CHATTER, app=None, src_port=port, dst_port=40000)
    assert classify(to_service, CFG) == (category, f"port={port}")
    assert classify(from_service, CFG) == (category, f"port={port}")


def test_destination_port_is_checked_before_source_port() -> None:
    facts = dataclasses.replace(CHATTER, app=None, src_port=123, dst_port=554)
    assert classify(facts, CFG) == ("footage", "port=554")


def test_video_shaped_upstream_is_footage() -> None:
    assert classify(STREAM, CFG) == ("footage", "upstream 2048 kbit/s >= 256")


def test_threshold_comes_from_config() -> None:
    assert classify(STREAM, ClassifyConfig(video_min_kbps=4000)) == ("telemetry", "default")
    assert classify(STREAM, ClassifyConfig(video_min_kbps=2048)) == (
        "footage",
        "upstream 2048 kbit/s >= 2048",
    )
    assert classify(STREAM, ClassifyConfig(video_min_kbps=128.5))[1] == "upstream 2048 kbit/s >= 128.5"


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"duration": 9.9, "up_bytes": 2_534_400, "up_packets": 2112}, "too short, though 2 Mbit/s"),
        ({"up_bytes": 1_800_000, "up_packets": 1500}, "240 kbit/s is below 256"),
        ({"down_bytes": 3_840_001}, "upstream is less than 4x downstream"),
        ({"up_packets": 30_721}, "mean upstream packet is just under 500 bytes"),
        ({"duration": 0.0}, "no duration"),
    ],
)
def test_not_video_shaped(change: dict, why: str) -> None:
    assert classify(dataclasses.replace(STREAM, **change), CFG) == ("telemetry", "default"), why


def test_video_shape_boundaries_are_inclusive() -> None:
    edge = dataclasses.replace(
        STREAM, duration=10.0, up_bytes=320_000, up_packets=640, down_bytes=80_000
    )  # 256 kbit/s exactly, ratio exactly 4, mean packet exactly 500
    assert classify(edge, CFG) == ("footage", "upstream 256 kbit/s >= 256")


# 2.5 MB down from the vendor, 40 kB of requests and ACKs up: a firmware update.
DOWNLOAD = FlowFacts("tcp", 50002, 80, 40_000, 900, 2_500_000, 1800, 20.0, "http", "Reolink cloud")


def test_large_download_from_a_vendor_service_is_firmware() -> None:
    assert classify(DOWNLOAD, CFG) == ("firmware", "download 2.5 MB from Reolink cloud")


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"service": None}, "an unknown server is not the vendor's update service"),
        ({"down_bytes": 999_999}, "under 1 MB"),
        ({"up_bytes": 250_001}, "less than 10x what went up: an exchange, not a download"),
    ],
)
def test_not_firmware(change: dict, why: str) -> None:
    assert classify(dataclasses.replace(DOWNLOAD, **change), CFG)[0] == "telemetry", why


def test_vendor_service_that_is_not_video_shaped_is_its_telemetry() -> None:
    api = dataclasses.replace(CHATTER, service="Hik-Connect")
    assert classify(api, CFG) == ("telemetry", "service=Hik-Connect")
    # a relay without a signature (TLS to the vendor) is footage by its shape
    relay = dataclasses.replace(STREAM, service="EZVIZ")
    assert classify(relay, CFG) == ("footage", "upstream 2048 kbit/s >= 256")


def test_small_flow_is_telemetry() -> None:
    assert classify(CHATTER, CFG) == ("telemetry", "default")
    icmp = FlowFacts("icmp", None, None, 840, 10, 840, 10, 9.0, None)
    assert classify(icmp, CFG) == ("telemetry", "default")


FACTS = st.builds(
    FlowFacts,
    transport=st.sampled_from(["tcp", "udp", "icmp", "47"]),
    src_port=st.one_of(st.none(), st.integers(0, 65535)),
    dst_port=st.one_of(st.none(), st.integers(0, 65535)),
    up_bytes=st.integers(0, 10**12),
    up_packets=st.integers(0, 10**9),
    down_bytes=st.integers(0, 10**12),
    down_packets=st.integers(0, 10**9),
    duration=st.floats(0, 10**7),
    app=st.one_of(st.none(), st.sampled_from(["dns", "rtsp", "tls", "http", "quic", "rtp", "ptcp", "mqtt"])),
    service=st.one_of(st.none(), st.sampled_from(["Hik-Connect", "Reolink cloud"])),
)


@given(FACTS)
def test_always_answers_a_known_category(facts: FlowFacts) -> None:
    category, reason = classify(facts, CFG)
    assert category in CATEGORIES
    assert category != "footage" or reason.startswith(("app=", "port=", "upstream "))
    assert category != "firmware" or (facts.service is not None and facts.service in reason)
