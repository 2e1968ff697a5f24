"""Passive discovery: what cameras and NVRs say about themselves on the local network.

One parser module per announcement protocol (bytes in, a small frozen dataclass or None out, never
an exception on garbage) and `evidence.py`, which weighs everything known about a MAC into a vendor,
a role and a confidence. The helpers below are the parsers' shared ground: a guarded XML reader
and tag lookup that ignores namespaces, since cameras disagree on prefixes.
"""

from __future__ import annotations

import ipaddress
import xml.etree.ElementTree as ElementTree

MAX_XML_BYTES = 65536
"""Discovery messages fit in one datagram; anything larger is not one."""
_FORBIDDEN = (b"<!DOCTYPE", b"<!ENTITY")


def safe_xml(payload: bytes) -> ElementTree.Element | None:
    """The root element of a small XML document, or None.

    defusedxml is not a dependency, so entity attacks are refused at the door: a document type
    declaration is the only place entities can be declared, and no discovery message has one.
    """
    if len(payload) > MAX_XML_BYTES:
        return None
    upper = payload.replace(b"\0", b"").upper()  # NULs removed: UTF-16 must not hide a DOCTYPE
    if any(marker in upper for marker in _FORBIDDEN):
        return None
    try:
        return ElementTree.fromstring(payload)
    except (ElementTree.ParseError, ValueError, UnicodeError):
        return None


def local_name(tag: str) -> str:
    """ "{http://www.w3.org/2003/05/soap-envelope}Body" -> "Body"."""
    return tag.rsplit("}", 1)[-1]


def find_text(root: ElementTree.Element, name: str) -> str | None:
    """Stripped text of the first element named `name` (any namespace, any depth), or None if empty."""
    for element in root.iter():
        if local_name(element.tag) == name:
            text = (element.text or "").strip()
            return text or None
    return None


def clean(text: str | None, limit: int = 256) -> str | None:
    """Printable, bounded text from an untrusted field, or None when nothing is left."""
    if text is None:
        return None
    text = "".join(char for char in text if char.isprintable()).strip()[:limit]
    return text or None


def parse_mac(text: str | None) -> bytes | None:
    """ "68-6d-bc-ee-f8-f0", "68:6D:BC:EE:F8:F0" or "686dbceef8f0" -> 6 bytes, else None."""
    if text is None:
        return None
    digits = text.strip().replace("-", "").replace(":", "").replace(".", "")
    if len(digits) != 12:
        return None
    try:
        mac = bytes.fromhex(digits)
    except ValueError:
        return None
    return None if mac == bytes(6) else mac


def parse_address(text: str | None, version: int) -> bytes | None:
    """Packed address of IP `version` from "192.0.2.7" or "2001:db8::7/64"; None also for 0.0.0.0 and ::."""
    if text is None:
        return None
    try:
        address = ipaddress.ip_address(text.split("/", 1)[0].strip())
    except ValueError:
        return None
    if address.version != version or address.is_unspecified:
        return None
    return address.packed
