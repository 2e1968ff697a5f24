"""Host names in the first segment of plaintext HTTP/1.x (RFC 9112) and RTSP (RFC 2326/7826).

Only the first segment of a request is read: the request line and headers of a device's
request almost always fit one, and the caller does not need to reassemble to name a flow.
IP literals are not names (the address already says that much), so they come back as None.
"""

from __future__ import annotations

import ipaddress
import re

# Enough for any real request line and header block; bounds the work on garbage.
_MAX_HEAD = 8192
_TOKEN = re.compile(rb"[A-Z][A-Z_-]{1,19}\Z")
_HTTP_VERSION = re.compile(rb"HTTP/1\.[01]\Z")
_RTSP_VERSION = re.compile(rb"RTSP/[12]\.0\Z")
_RTSP_RESPONSE = re.compile(rb"RTSP/[12]\.0 [1-5]\d\d[ \r\n]")
_RTSP_SCHEMES = (b"rtsp://", b"rtsps://", b"rtspu://")
_HOST_CHARS = re.compile(r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)*\Z")


def _request_line(payload: bytes, version: re.Pattern[bytes]) -> tuple[bytes, bytes] | None:
    """(method, target) when ``payload`` opens with ``METHOD SP target SP version CRLF``."""
    end = payload.find(b"\r\n", 0, _MAX_HEAD)
    if end < 0:
        return None
    parts = payload[:end].split(b" ")
    if len(parts) != 3 or not _TOKEN.match(parts[0]) or not version.match(parts[2]):
        return None
    return parts[0], parts[1]


def _name(authority: bytes) -> str | None:
    """A DNS name from ``host[:port]`` (userinfo already removed), or None."""
    try:
        text = authority.decode("ascii").strip().lower()
    except UnicodeDecodeError:
        return None
    if text.startswith("["):
        return None  # bracketed IPv6 literal
    host = text.rsplit(":", 1)[0] if text.count(":") == 1 else text
    host = host.rstrip(".")
    if not host or len(host) > 253 or not _HOST_CHARS.match(host):
        return None
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return host
    return None


def http_host(payload: bytes) -> str | None:
    """The Host header's name in an HTTP/1.x request (or the absolute-form target's)."""
    line = _request_line(payload, _HTTP_VERSION)
    if line is None:
        return None
    head_end = payload.find(b"\r\n\r\n", 0, _MAX_HEAD)
    head = payload[: head_end if head_end >= 0 else _MAX_HEAD]
    for header in head.split(b"\r\n")[1:]:
        name, sep, value = header.partition(b":")
        if sep and name.strip().lower() == b"host":
            return _name(value)
    target = line[1]
    if target.lower().startswith((b"http://", b"https://")):
        return _name(_authority(target.split(b"://", 1)[1]))
    return None


def rtsp_host(payload: bytes) -> str | None:
    """The host of the ``rtsp://host[:port]/...`` URL in an RTSP request line."""
    line = _request_line(payload, _RTSP_VERSION)
    if line is None or not line[1].lower().startswith(_RTSP_SCHEMES):
        return None
    return _name(_authority(line[1].split(b"://", 1)[1]))


def looks_like_rtsp(payload: bytes) -> bool:
    """Whether a flow's first payload is an RTSP request or response.

    Interleaved RTP (``$`` + channel + length) is not counted: one ``$`` byte is no evidence,
    and an interleaved stream starts with an RTSP request anyway.
    """
    return _request_line(payload, _RTSP_VERSION) is not None or bool(_RTSP_RESPONSE.match(payload))


def _authority(rest: bytes) -> bytes:
    """``host[:port]`` from what follows ``scheme://``, without path or userinfo.

    Camera URLs often carry credentials (``rtsp://admin:pw@host/``); they are cut here and
    never returned.
    """
    end = len(rest)
    for stop in (b"/", b"?", b"#"):
        at = rest.find(stop)
        if 0 <= at < end:
            end = at
    return rest[:end].rpartition(b"@")[2]
