"""Which application a flow's first payload packets carry, judged by the bytes, not the port.

Pure functions of payload bytes (and, for RTP, a little per-flow state across packets); the
inspector (``inspection.py``) decides which flows get to call them and for how many packets.
Each detector names the specification whose header shape it checks, so a false positive can be
argued against the text.
"""

from __future__ import annotations

import re
import struct

RTP_VERSION = 2
RTCP_REPORTS = (200, 201)
"""SR and RR: RFC 3550 6.1 requires a compound RTCP packet to start with one of them."""
RTCP_TYPES = range(200, 205)
RTP_CONFIRM_PACKETS = 3
"""Consecutive packets of one RTP stream before a flow counts as RTP."""
RTP_MAX_SEQ_STEP = 3
"""Largest sequence gap still called consecutive (a lost packet or two on the way to the span port)."""
STUN_MAGIC = 0x2112A442
SRT_HANDSHAKE_TYPES = frozenset((0, 1, 0xFFFFFFFD, 0xFFFFFFFE, 0xFFFFFFFF))
"""Wavehand, induction, done, agreement, conclusion (draft-sharabayko-srt 3.2.1)."""
RTMP_C0C1 = 1 + 1536
"""C0 (version byte 3) and C1 (1536 bytes) before the client may send more (RTMP 1.0 5.2)."""
RTMP_VERSION = 3

_RTP = struct.Struct("!BBHII")
_HEAD = struct.Struct("!BBH")
_U32 = struct.Struct("!I")
_SEGMENT_SUFFIXES = (b".ts", b".m4s", b".mp4", b".m4v", b".cmfv", b".m3u8", b".mpd")
_VIDEO_TYPES = re.compile(
    rb"\r\ncontent-type:[ \t]*(video/|application/vnd\.apple\.mpegurl|application/dash\+xml)", re.I
)
_UPLOAD = re.compile(rb"(PUT|POST) (\S+) HTTP/1\.[01]\r\n")
_MQTT_NAMES = ((b"\x00\x04MQTT", (4, 5)), (b"\x00\x06MQIsdp", (3,)))


def rtp_header(payload: bytes) -> tuple[int, int, int, int] | None:
    """(payload type, sequence, timestamp, SSRC) of an RTP v2 header (RFC 3550 5.1), else None.

    Payload types 72-76 are refused: with the marker bit those are RTCP's 200-204 (RFC 5761 4).
    """
    if len(payload) < 12:
        return None
    first, second, seq, timestamp, ssrc = _RTP.unpack_from(payload)
    pt = second & 0x7F
    if first >> 6 != RTP_VERSION or 72 <= pt <= 76 or len(payload) < 12 + 4 * (first & 0x0F):
        return None
    return pt, seq, timestamp, ssrc


class RtpShape:
    """Watches one direction of a flow for a run of RTP packets of one stream.

    Consecutive means: same SSRC and payload type, sequence numbers advancing by 1 to
    ``RTP_MAX_SEQ_STEP`` (mod 2^16), timestamps not going back (mod 2^32). Random data passes one
    header check one time in four; it passes three linked ones practically never.
    """

    __slots__ = ("_last", "_run")

    def __init__(self) -> None:
        self._last: tuple[int, int, int, int] | None = None
        self._run = 0

    def feed(self, payload: bytes) -> bool:
        """True once ``RTP_CONFIRM_PACKETS`` linked RTP headers have been seen in a row."""
        header = rtp_header(payload)
        last, self._last = self._last, header
        if header is None:
            self._run = 0
            return False
        if last is not None and _follows(last, header):
            self._run += 1
        else:
            self._run = 1
        return self._run >= RTP_CONFIRM_PACKETS


def _follows(last: tuple[int, int, int, int], header: tuple[int, int, int, int]) -> bool:
    pt, seq, timestamp, ssrc = header
    return (
        ssrc == last[3]
        and pt == last[0]
        and 1 <= (seq - last[1]) & 0xFFFF <= RTP_MAX_SEQ_STEP
        and (timestamp - last[2]) & 0xFFFFFFFF < 0x80000000
    )


def is_rtcp(payload: bytes) -> bool:
    """A compound RTCP packet (RFC 3550 6.1): SR or RR first, every part v2, lengths tile exactly."""
    if len(payload) < 8 or payload[1] not in RTCP_REPORTS:
        return False
    off = 0
    while off < len(payload):
        if len(payload) - off < 4:
            return False
        first, kind, words = _HEAD.unpack_from(payload, off)
        if first >> 6 != RTP_VERSION or kind not in RTCP_TYPES:
            return False
        off += (words + 1) * 4
    return off == len(payload)


def is_interleaved_rtp(payload: bytes) -> bool:
    """RTP framed inside an RTSP TCP connection: ``$``, channel, length, then an RTP or RTCP packet
    (RFC 2326 10.12). The inner header is checked so a lone ``$`` is no evidence."""
    if len(payload) < 16 or payload[:1] != b"$":
        return False
    inner = payload[4 : 4 + _HEAD.unpack_from(payload)[2]]
    return rtp_header(inner) is not None or is_rtcp(inner)


def is_stun(payload: bytes) -> bool:
    """A STUN message (RFC 8489 5): top bits 00, the magic cookie, a length that is the rest exactly."""
    if len(payload) < 20 or payload[0] & 0xC0:
        return False
    length = _HEAD.unpack_from(payload)[2]
    return _U32.unpack_from(payload, 4)[0] == STUN_MAGIC and length % 4 == 0 and 20 + length == len(payload)


def is_srt_handshake(payload: bytes) -> bool:
    """An SRT handshake control packet (draft-sharabayko-srt 3.2.1): control bit set, type 0,
    subtype 0, a 48-byte handshake body of version 4 or 5 with a known handshake type and an MTU
    between the IPv4 minimum and jumbo frames."""
    if len(payload) < 64 or payload[:4] != b"\x80\x00\x00\x00":
        return False
    version = _U32.unpack_from(payload, 16)[0]
    mtu = _U32.unpack_from(payload, 28)[0]
    kind = _U32.unpack_from(payload, 36)[0]
    return version in (4, 5) and 576 <= mtu <= 9216 and kind in SRT_HANDSHAKE_TYPES


def is_segment_upload(payload: bytes) -> bool:
    """An HTTP PUT/POST of an HLS/DASH segment or playlist: the path's suffix or a video content type."""
    match = _UPLOAD.match(payload)
    if match is None:
        return False
    path = match[2].split(b"?", 1)[0].lower()
    head = payload[: payload.find(b"\r\n\r\n") + 2 if b"\r\n\r\n" in payload else len(payload)]
    return path.endswith(_SEGMENT_SUFFIXES) or _VIDEO_TYPES.search(head) is not None


def is_mqtt_connect(payload: bytes) -> bool:
    """An MQTT CONNECT packet (MQTT 3.1.1 3.1, 5.0 3.1): type 1, a remaining-length varint, then the
    protocol name and a level that belongs to it."""
    if len(payload) < 12 or payload[0] != 0x10:
        return False
    off = 1
    for _ in range(4):
        if not payload[off] & 0x80:
            break
        off += 1
    else:
        return False
    off += 1
    for name, levels in _MQTT_NAMES:
        if payload.startswith(name, off) and len(payload) > off + len(name):
            return payload[off + len(name)] in levels
    return False


def rtmp_handshake_start(payload: bytes) -> bool:
    """The first client bytes of an RTMP connection start C0 (version 3) and C1 (RTMP 1.0 5.2.2-3)."""
    return len(payload) <= RTMP_C0C1 and payload[:1] == bytes((RTMP_VERSION,))
