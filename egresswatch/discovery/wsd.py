"""ONVIF WS-Discovery announcements: SOAP over UDP 3702 (multicast 239.255.255.250 / ff02::c).

A device answers a Probe with ProbeMatches (unicast) and announces itself with Hello (multicast);
both carry, per match, ``Types`` (e.g. "dn:NetworkVideoTransmitter tds:Device"), ``Scopes``
(space-separated URIs) and ``XAddrs`` (its service URLs). ONVIF Core 7.3.2.2 defines the scope
names: ``onvif://www.onvif.org/name/<vendor and model>``, ``.../hardware/<model>``,
``.../type/<video_encoder|ptz|...>``, ``.../location/<...>``; many cameras add ``.../MAC/<mac>``.
Values are percent-encoded. Probes and Resolves from clients carry no device facts.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass

from egresswatch.discovery import clean, find_text, local_name, parse_mac, safe_xml

WSD_PORT = 3702
_ANSWERS = ("ProbeMatch", "Hello")
_ONVIF_SCOPE = "onvif://www.onvif.org/"
_MAX_SCOPES = 64


@dataclass(frozen=True, slots=True)
class WsdAnnouncement:
    """One ProbeMatch or Hello."""

    kind: str
    """"ProbeMatch" or "Hello"."""
    types: tuple[str, ...]
    """Local names of the announced types, e.g. ("NetworkVideoTransmitter", "Device")."""
    name: str | None
    """The `name` scope, e.g. "HIKVISION DS-2CD2143G2-I" (usually vendor and model)."""
    hardware: str | None
    """The `hardware` scope: the model."""
    mac: bytes | None
    """The `MAC` scope, when the device publishes one."""
    xaddrs: tuple[str, ...]
    endpoint: str | None
    """EndpointReference/Address, typically "urn:uuid:..."."""

    @property
    def is_onvif_video(self) -> bool:
        return "NetworkVideoTransmitter" in self.types


def parse_wsd(payload: bytes) -> WsdAnnouncement | None:
    """The first ProbeMatch or Hello in a WS-Discovery message, or None."""
    if b"Envelope" not in payload:
        return None
    root = safe_xml(payload)
    if root is None or local_name(root.tag) != "Envelope":
        return None
    match = next((element for element in root.iter() if local_name(element.tag) in _ANSWERS), None)
    if match is None:
        return None
    scopes = _scopes(find_text(match, "Scopes"))
    types = tuple(
        clean(item.rsplit(":", 1)[-1]) or "" for item in (find_text(match, "Types") or "").split()[:16]
    )
    return WsdAnnouncement(
        kind=local_name(match.tag),
        types=tuple(item for item in types if item),
        name=scopes.get("name"),
        hardware=scopes.get("hardware"),
        mac=parse_mac(scopes.get("mac")),
        xaddrs=tuple(filter(None, (clean(url) for url in (find_text(match, "XAddrs") or "").split()[:8]))),
        endpoint=clean(find_text(match, "Address")),
    )


def _scopes(text: str | None) -> dict[str, str]:
    """ONVIF scope name (lower-cased) -> decoded value; the first of each name wins."""
    scopes: dict[str, str] = {}
    for uri in (text or "").split()[:_MAX_SCOPES]:
        if not uri.lower().startswith(_ONVIF_SCOPE):
            continue
        key, _, value = uri[len(_ONVIF_SCOPE) :].partition("/")
        decoded = clean(urllib.parse.unquote(value))
        if decoded:
            scopes.setdefault(key.lower(), decoded)
    return scopes
