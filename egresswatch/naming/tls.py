"""TLS ClientHello server name (RFC 8446 §4.1.2, RFC 6066 §3), read from a flow's first bytes.

Works for TLS 1.0 to 1.3 alike: the ClientHello layout and the server_name extension did not
change. With Encrypted Client Hello (draft-ietf-tls-esni) the outer ClientHello still carries
a server_name, the public name of the client-facing server, and that is what is returned: the
inner name is encrypted and stays unknown.
"""

from __future__ import annotations

import enum
import struct
from typing import Final

_U16 = struct.Struct(">H")
_RECORD = struct.Struct(">BBBH")

_CONTENT_HANDSHAKE = 22
_CLIENT_HELLO = 1
_EXT_SERVER_NAME = 0
_HOST_NAME = 0
# RFC 8446 §5.1: a plaintext record carries at most 2^14 bytes; some stacks overshoot a little.
_MAX_RECORD = 2**14 + 2048


class GiveUp(enum.Enum):
    """Why a reader stopped without a name (one member: the type exists for annotations)."""

    GIVE_UP = "give_up"


GIVE_UP: Final = GiveUp.GIVE_UP
"""Returned by ``ClientHelloReader.feed`` once it is sure no name will come: not TLS, not a
ClientHello, a ClientHello without server_name, or more bytes than the buffer allows."""


def sni_from_client_hello(handshake: bytes) -> str | None:
    """The host_name in a ClientHello handshake message (starting at its 4-byte header).

    A message cut short is read as far as it goes: a server_name extension that arrived whole
    still counts. Returns None when there is none or the bytes are not a ClientHello.
    """
    try:
        return _sni(memoryview(handshake))
    except (struct.error, IndexError, ValueError):
        return None


def _sni(msg: memoryview) -> str | None:
    if len(msg) < 4 or msg[0] != _CLIENT_HELLO:
        return None
    body = msg[4 : 4 + int.from_bytes(msg[1:4], "big")]
    off = 2 + 32  # legacy_version, random
    off += 1 + body[off]  # legacy_session_id
    off += 2 + _U16.unpack_from(body, off)[0]  # cipher_suites
    off += 1 + body[off]  # legacy_compression_methods
    (ext_total,) = _U16.unpack_from(body, off)
    off += 2
    end = min(off + ext_total, len(body))
    while off + 4 <= end:
        ext_type, ext_len = struct.unpack_from(">HH", body, off)
        off += 4
        if ext_type == _EXT_SERVER_NAME:
            if off + ext_len > end:
                return None
            return _host_name(body[off : off + ext_len])
        off += ext_len
    return None


def _host_name(ext: memoryview) -> str | None:
    (list_len,) = _U16.unpack_from(ext, 0)
    off = 2
    end = min(2 + list_len, len(ext))
    while off + 3 <= end:
        name_type = ext[off]
        (name_len,) = _U16.unpack_from(ext, off + 1)
        off += 3
        name = bytes(ext[off : off + name_len])
        off += name_len
        if name_type == _HOST_NAME and name and len(name) == name_len:
            # RFC 6066: ASCII, no trailing dot; anything else is not a host name we can use.
            return name.decode("ascii").rstrip(".").lower() or None
    return None


class ClientHelloReader:
    """Collects a flow's client-side TCP payload until its ClientHello is complete.

    Feed segments in order. ``feed`` returns the server name as soon as the whole ClientHello
    has arrived (however it was split over segments and TLS records), None while more bytes are
    needed, and ``GIVE_UP`` when no name will come. After the first non-None answer every
    further call returns the same answer without looking at its argument. At most
    ``max_bytes`` of handshake are buffered: a ClientHello longer than that is read from its
    first ``max_bytes`` (where the server_name almost always is) and then given up on.

    ``is_tls`` turns True once the first bytes are a TLS handshake record opening a
    ClientHello, so a flow can be recognised as TLS even when it names nothing.
    """

    __slots__ = ("_header", "_hs", "_left", "_result", "is_tls", "max_bytes")

    def __init__(self, max_bytes: int = 16384) -> None:
        self.max_bytes = max_bytes
        self.is_tls = False
        self._header = bytearray()  # a record header split across segments
        self._hs = bytearray()  # handshake bytes gathered from record bodies
        self._left = 0  # bytes still to come in the current record's body
        self._result: str | GiveUp | None = None

    def feed(self, segment: bytes) -> str | GiveUp | None:
        """Add the next in-order segment of client payload; see the class docstring."""
        if self._result is not None:
            return self._result
        data = memoryview(segment)
        pos = 0
        while pos < len(data):
            if self._left == 0:
                take = 5 - len(self._header)
                self._header += data[pos : pos + take]
                pos += take
                if len(self._header) < 5:
                    return None
                ctype, major, minor, length = _RECORD.unpack(self._header)
                self._header.clear()
                if ctype != _CONTENT_HANDSHAKE or major != 3 or minor > 4 or not 0 < length <= _MAX_RECORD:
                    return self._finish(GIVE_UP)
                self._left = length
            take = min(self._left, len(data) - pos, self.max_bytes - len(self._hs))
            if not take:
                break  # the segment ended right after a record header
            self._hs += data[pos : pos + take]
            pos += take
            self._left -= take
            done = self._check()
            if done is not None:
                return done
        return None

    def _check(self) -> str | GiveUp | None:
        """Decide once enough handshake bytes are in; None means keep reading."""
        if self._hs[0] != _CLIENT_HELLO:
            return self._finish(GIVE_UP)
        if len(self._hs) < 4:
            return None
        self.is_tls = True
        wanted = min(4 + int.from_bytes(self._hs[1:4], "big"), self.max_bytes)
        if len(self._hs) < wanted:
            return None
        return self._finish(sni_from_client_hello(bytes(self._hs)) or GIVE_UP)

    def _finish(self, result: str | GiveUp) -> str | GiveUp:
        self._result = result
        self._hs = bytearray()  # free the buffer: the flow may live for hours
        return result
