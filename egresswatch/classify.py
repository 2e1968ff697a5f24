"""What a flow carries: footage, telemetry, firmware or infrastructure, with the reason for the answer.

Rules, first match wins; the tables below are the data:

1. the application payload inspection recognised (`APP_CATEGORIES`), reason "app=<app>". Apps
   come from the bytes (`apps.py`) or from a catalogue signature (`data/services.yaml`): RTSP,
   RTP/RTCP by header shape, RTMP, SRT, HLS/DASH segment uploads, WebRTC media and the vendor
   relays (Dahua PTCP, Reolink Baichuan data) are footage; MQTT, STUN alone and vendor P2P
   signalling (Dahua DHGET/DHPOST, Reolink Baichuan negotiation) are telemetry;
2. a well-known service port on either end (`PORT_CATEGORIES`), reason "port=<n>". Either end,
   because a camera that serves RTSP to a cloud NVR is the source of a flow from its port 554;
3. a firmware download: a flow to a catalogued vendor service that brought the device at least
   `FIRMWARE_MIN_DOWN_BYTES` and at least `FIRMWARE_MIN_DOWN_UP_RATIO` times what it sent,
   reason e.g. "download 2.4 MB from Reolink cloud". An update is one big transfer towards the
   camera from its vendor; nothing else a camera does looks like that;
4. video-shaped upstream -> footage, reason e.g. "upstream 2048 kbit/s >= 256": a flow that
   lasts at least `VIDEO_MIN_SECONDS`, averages at least `classify.video_min_kbps` from the
   device side over its whole duration, sends at least `VIDEO_MIN_UP_DOWN_RATIO` times the bytes
   it receives, and whose upstream packets average at least `VIDEO_MIN_MEAN_PACKET` bytes. Video
   fills packets and flows one way; a chatty TLS API or a firmware *download* fails the ratio, a
   stream of small sensor readings fails the packet size, a short burst fails the duration. This
   is also how a vendor relay without a public signature (Hik-Connect/EZVIZ over TLS) is found;
5. otherwise telemetry: reason "service=<name>" for a catalogued vendor service (its API,
   registration and heartbeats), "default" for anything else.

Facts are cumulative for the flow, so the answer can change between interim reports as a flow
grows (a stream becomes footage once it has lasted 10 s); when inspection sees a flow's app change
(signalling that turns into a relay), the pipeline reports the flow at that moment so the bytes
before and after are judged apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from egresswatch.config import ClassifyConfig

FOOTAGE_APPS = ("rtsp", "rtp", "rtcp", "rtmp", "srt", "hls", "webrtc", "ptcp", "baichuan-relay")
TELEMETRY_APPS = ("mqtt", "stun", "dh-p2p", "baichuan-p2p")
INFRASTRUCTURE_APPS = ("dns", "ntp", "dhcp")
APP_CATEGORIES: Mapping[str, str] = MappingProxyType(
    {
        **dict.fromkeys(FOOTAGE_APPS, "footage"),
        **dict.fromkeys(TELEMETRY_APPS, "telemetry"),
        **dict.fromkeys(INFRASTRUCTURE_APPS, "infrastructure"),
    }
)
PORT_CATEGORIES: Mapping[int, str] = MappingProxyType(
    {
        554: "footage",  # RTSP
        8554: "footage",  # RTSP alternate
        1935: "footage",  # RTMP
        1883: "telemetry",  # MQTT
        8883: "telemetry",  # MQTT over TLS
        53: "infrastructure",  # DNS
        123: "infrastructure",  # NTP
        67: "infrastructure",  # DHCP server
        68: "infrastructure",  # DHCP client
    }
)
VIDEO_MIN_SECONDS = 10.0
VIDEO_MIN_UP_DOWN_RATIO = 4
VIDEO_MIN_MEAN_PACKET = 500
FIRMWARE_MIN_DOWN_BYTES = 1_000_000
FIRMWARE_MIN_DOWN_UP_RATIO = 10


@dataclass(frozen=True, slots=True)
class FlowFacts:
    """What classification may look at; "up" is from the device side, "down" towards it."""

    transport: str
    src_port: int | None
    dst_port: int | None
    up_bytes: int
    up_packets: int
    down_bytes: int
    down_packets: int
    duration: float
    app: str | None
    """Protocol recognised by payload inspection ("dns", "rtsp", "tls", "ptcp", ...) or None."""
    service: str | None = None
    """The catalogued vendor service of the destination, if any."""


def classify(facts: FlowFacts, cfg: ClassifyConfig) -> tuple[str, str]:
    """(category, reason) for a flow's cumulative facts."""
    if facts.app in APP_CATEGORIES:
        return APP_CATEGORIES[facts.app], f"app={facts.app}"
    for port in (facts.dst_port, facts.src_port):
        if port in PORT_CATEGORIES:
            return PORT_CATEGORIES[port], f"port={port}"
    if (
        facts.service is not None
        and facts.down_bytes >= FIRMWARE_MIN_DOWN_BYTES
        and facts.down_bytes >= FIRMWARE_MIN_DOWN_UP_RATIO * facts.up_bytes
    ):
        return "firmware", f"download {facts.down_bytes / 1e6:.1f} MB from {facts.service}"
    kbps = upstream_kbps(facts)
    if (
        facts.duration >= VIDEO_MIN_SECONDS
        and kbps >= cfg.video_min_kbps
        and facts.up_bytes >= VIDEO_MIN_UP_DOWN_RATIO * facts.down_bytes
        and facts.up_bytes >= VIDEO_MIN_MEAN_PACKET * facts.up_packets
    ):
        return "footage", f"upstream {kbps:.0f} kbit/s >= {cfg.video_min_kbps:g}"
    if facts.service is not None:
        return "telemetry", f"service={facts.service}"
    return "telemetry", "default"


def upstream_kbps(facts: FlowFacts) -> float:
    """Mean upstream rate over the flow's life in kbit/s (0 for a flow with no duration)."""
    return facts.up_bytes * 8 / facts.duration / 1000 if facts.duration > 0 else 0.0
