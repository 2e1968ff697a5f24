"""Header-only announcements: SSDP (UDP 1900) NOTIFY and search responses, RTSP server responses.

Passive only: the UPnP device description behind LOCATION is never fetched, so what SSDP gives is
its headers (UPnP Device Architecture 2.0, 1.1.2 and 1.3.3): SERVER ("OS/version UPnP/2.0
product/version", where many cameras name their maker), USN, NT or ST, LOCATION. An M-SEARCH is a
client's question and says nothing about the sender as a device.

An ``RTSP/1.0`` response (RFC 2326 7.1) from a host means it serves media: a camera or an NVR. Its
Server header sometimes names the vendor.
"""

from __future__ import annotations

from dataclasses import dataclass

from egresswatch.discovery import clean

SSDP_PORT = 1900
_MAX_HEADERS = 32
_MAX_MESSAGE = 8192


@dataclass(frozen=True, slots=True)
class SsdpAnnouncement:
    """A NOTIFY (kind "notify") or an M-SEARCH response (kind "response")."""

    kind: str
    server: str | None
    usn: str | None
    target: str | None
    """NT of a NOTIFY, ST of a response: the device or service type announced."""
    location: str | None


@dataclass(frozen=True, slots=True)
class RtspServer:
    """A host answered as an RTSP server."""

    status: int
    server: str | None


def parse_ssdp(payload: bytes) -> SsdpAnnouncement | None:
    """An SSDP NOTIFY or search response, or None (searches, other traffic)."""
    message = _message(payload)
    if message is None:
        return None
    start, headers = message
    if start.upper().startswith("NOTIFY "):
        kind, target = "notify", headers.get("nt")
        if headers.get("nts", "").lower() == "ssdp:byebye":
            return None  # leaving, not announcing
    elif start.upper().startswith("HTTP/1.") and (headers.get("st") or headers.get("usn")):
        kind, target = "response", headers.get("st")
    else:
        return None
    return SsdpAnnouncement(
        kind=kind,
        server=headers.get("server"),
        usn=headers.get("usn"),
        target=target,
        location=headers.get("location"),
    )


def parse_rtsp_response(payload: bytes) -> RtspServer | None:
    """The status and Server header of an RTSP response, or None if it is not one."""
    if not payload.startswith(b"RTSP/1."):
        return None
    message = _message(payload)
    if message is None:
        return None
    start, headers = message
    parts = start.split(None, 2)
    if len(parts) < 2 or not parts[1].isdigit() or len(parts[1]) != 3:
        return None
    return RtspServer(status=int(parts[1]), server=headers.get("server"))


def _message(payload: bytes) -> tuple[str, dict[str, str]] | None:
    """(start line, lower-cased header name -> cleaned value) of an HTTP-style message head."""
    head = payload[:_MAX_MESSAGE].replace(b"\r\n", b"\n").split(b"\n\n", 1)[0]
    lines = head.decode("utf-8", "replace").split("\n")  # some devices end lines with LF alone
    start = lines[0].strip()
    if not start or not start.isprintable():
        return None
    headers: dict[str, str] = {}
    for line in lines[1 : 1 + _MAX_HEADERS]:
        name, sep, value = line.partition(":")
        cleaned = clean(value)
        if sep and cleaned:
            headers.setdefault(name.strip().lower(), cleaned)
    return start, headers
