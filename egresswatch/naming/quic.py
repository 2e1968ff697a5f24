"""QUIC Initial server name: decrypt a client's Initial packets with the public Initial keys.

Initial packets are encrypted with keys anyone can derive from the Destination Connection ID
(RFC 9001 §5.2; QUIC v2 changes the salt and labels, RFC 9369 §3.3.1-3.3.2), so a passive
observer can read the ClientHello inside: remove header protection (RFC 9001 §5.4), open the
AES-128-GCM payload (§5.3), gather the CRYPTO frames (RFC 9000 §19.6) and read the server_name.
The crypto is the ``cryptography`` package's; this module only lays the bytes out.
"""

from __future__ import annotations

import hmac
from hashlib import sha256

from egresswatch.naming.tls import GIVE_UP, GiveUp, sni_from_client_hello

QUIC_V1 = 0x00000001
QUIC_V2 = 0x6B3343CF

# version -> (initial salt, label prefix, long-header packet type of Initial)
_VERSIONS = {
    QUIC_V1: (bytes.fromhex("38762cf7f55934b34d179ae6a4c80cadccbb7f0a"), b"quic ", 0),  # RFC 9001 §5.2
    QUIC_V2: (bytes.fromhex("0dede3def700a6db819381be6e269dcbf9bd2ed9"), b"quicv2 ", 1),  # RFC 9369 §3
}
_MAX_CID = 20  # RFC 9000 §17.2
_SAMPLE = 16
_TAG = 16
# Frames an Initial may carry (RFC 9000 §17.2.2, table 3).
_PADDING, _PING, _ACK, _ACK_ECN, _CRYPTO, _CLOSE = 0x00, 0x01, 0x02, 0x03, 0x06, 0x1C


class InitialKeys:
    """Client Initial packet protection for one DCID and version (RFC 9001 §5.2)."""

    __slots__ = ("_aead", "_hp", "hp", "iv", "key")

    def __init__(self, dcid: bytes, version: int) -> None:
        salt, prefix, _ = _VERSIONS[version]
        initial_secret = hmac.digest(salt, dcid, sha256)  # HKDF-Extract (RFC 5869 §2.2)
        client_secret = _expand_label(initial_secret, b"client in", 32)
        self.key = _expand_label(client_secret, prefix + b"key", 16)
        self.iv = _expand_label(client_secret, prefix + b"iv", 12)
        self.hp = _expand_label(client_secret, prefix + b"hp", 16)
        # cryptography is imported at the first QUIC Initial, not at every start (15 ms; most
        # captures have none)
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self._aead = AESGCM(self.key)
        self._hp = Cipher(algorithms.AES(self.hp), modes.ECB())

    def mask(self, sample: bytes) -> bytes:
        """Header protection mask (RFC 9001 §5.4.3): AES-ECB of the 16-byte sample."""
        encryptor = self._hp.encryptor()
        return encryptor.update(sample) + encryptor.finalize()

    def open(self, packet_number: int, header: bytes, ciphertext: bytes) -> bytes | None:
        """Decrypt a payload (RFC 9001 §5.3); None if it does not authenticate."""
        from cryptography.exceptions import InvalidTag

        nonce = (int.from_bytes(self.iv, "big") ^ packet_number).to_bytes(12, "big")
        try:
            return self._aead.decrypt(nonce, ciphertext, header)
        except InvalidTag:
            return None


def _expand_label(secret: bytes, label: bytes, length: int) -> bytes:
    """TLS 1.3 HKDF-Expand-Label with an empty context (RFC 8446 §7.1)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

    full = b"tls13 " + label
    info = length.to_bytes(2, "big") + bytes([len(full)]) + full + b"\x00"
    return HKDFExpand(hashes.SHA256(), length, info).derive(secret)


def _varint(buf: bytes, off: int) -> tuple[int, int]:
    """RFC 9000 §16 variable-length integer at ``off``; raises IndexError when cut short."""
    first = buf[off]
    size = 1 << (first >> 6)
    if off + size > len(buf):
        raise IndexError
    value = first & 0x3F
    for i in range(1, size):
        value = (value << 8) | buf[off + i]
    return value, off + size


class QuicInitialReader:
    """Gathers the ClientHello from one flow's client Initial packets, across datagrams.

    A post-quantum ClientHello no longer fits one 1200-byte datagram, and browsers scatter
    CRYPTO frames out of order, so fragments are kept by offset until the bytes from offset 0
    hold a server_name. ``feed`` returns the name, None (need more), or ``GIVE_UP`` (not a QUIC
    Initial of a known version, or ``max_bytes`` of CRYPTO data without a name). Keys come
    from the DCID of the first Initial and are kept once they open a packet, as the server keeps
    them until a Retry.
    """

    __slots__ = ("_fragments", "_held", "_keys", "_result", "max_bytes")

    def __init__(self, max_bytes: int = 16384) -> None:
        self.max_bytes = max_bytes
        self._keys: InitialKeys | None = None
        self._fragments: dict[int, bytes] = {}
        self._held = 0
        self._result: str | GiveUp | None = None

    def feed(self, datagram: bytes) -> str | GiveUp | None:
        """Add one client-to-server UDP payload; see the class docstring."""
        if self._result is not None:
            return self._result
        try:
            seen_initial = self._read_datagram(datagram)
        except (IndexError, ValueError):
            seen_initial = False
        if not seen_initial:
            # The first datagram must be an Initial; later junk (short headers) just waits.
            return self._finish(GIVE_UP) if self._keys is None else None
        hello = self._contiguous()
        name = sni_from_client_hello(hello) if hello else None
        if name:
            return self._finish(name)
        if self._held >= self.max_bytes or _complete(hello):
            return self._finish(GIVE_UP)
        return None

    def _read_datagram(self, data: bytes) -> bool:
        """Decrypt every coalesced Initial in the datagram (RFC 9000 §12.2); True if any."""
        seen = False
        off = 0
        while off < len(data) and data[off] & 0x80:
            off, payload = self._read_packet(data, off)
            if payload is not None:
                seen = True
                self._read_frames(payload)
        return seen

    def _read_packet(self, data: bytes, start: int) -> tuple[int, bytes | None]:
        """One long-header packet at ``start``: (offset after it, Initial payload or None)."""
        version = int.from_bytes(data[start + 1 : start + 5], "big")
        if version not in _VERSIONS or len(data) < start + 7:
            raise ValueError("not a QUIC version we can read")
        off = start + 5
        dcid_len = data[off]
        dcid = data[off + 1 : off + 1 + dcid_len]
        off += 1 + dcid_len
        scid_len = data[off]
        off += 1 + scid_len
        if dcid_len > _MAX_CID or scid_len > _MAX_CID or off > len(data):
            raise ValueError("connection id too long")
        is_initial = (data[start] >> 4) & 0x03 == _VERSIONS[version][2]
        if is_initial:
            token_len, off = _varint(data, off)
            off += token_len
        length, pn_off = _varint(data, off)
        end = pn_off + length
        if end > len(data):
            raise ValueError("packet longer than datagram")
        if not is_initial:
            return end, None
        keys = self._keys or InitialKeys(bytes(dcid), version)
        payload = _unprotect(keys, data, start, pn_off, end)
        if payload is not None:
            self._keys = keys  # keep only keys that opened a packet: garbage cannot pin wrong ones
        return end, payload

    def _read_frames(self, payload: bytes) -> None:
        off = 0
        while off < len(payload):
            kind = payload[off]
            off += 1
            if kind in (_PADDING, _PING):
                continue
            if kind in (_ACK, _ACK_ECN):
                _largest, off = _varint(payload, off)
                _delay, off = _varint(payload, off)
                ranges, off = _varint(payload, off)
                _first, off = _varint(payload, off)
                for _ in range(2 * ranges + (3 if kind == _ACK_ECN else 0)):
                    _value, off = _varint(payload, off)
            elif kind == _CRYPTO:
                offset, off = _varint(payload, off)
                length, off = _varint(payload, off)
                chunk = payload[off : off + length]
                off += length
                if len(chunk) != length:
                    raise ValueError("CRYPTO frame cut short")
                self._keep(offset, chunk)
            else:
                return  # CONNECTION_CLOSE or a frame an Initial may not carry: nothing more

    def _keep(self, offset: int, chunk: bytes) -> None:
        if offset >= self.max_bytes or not chunk or offset in self._fragments:
            return
        chunk = chunk[: self.max_bytes - offset]
        self._fragments[offset] = chunk
        self._held += len(chunk)

    def _contiguous(self) -> bytes:
        """The CRYPTO stream from offset 0 up to the first gap."""
        out = bytearray()
        for offset in sorted(self._fragments):
            if offset > len(out):
                break
            out += self._fragments[offset][len(out) - offset :]
        return bytes(out)

    def _finish(self, result: str | GiveUp) -> str | GiveUp:
        self._result = result
        self._fragments = {}
        return result


def _unprotect(keys: InitialKeys, data: bytes, start: int, pn_off: int, end: int) -> bytes | None:
    """Remove header protection and open the payload of the packet at ``start``."""
    sample = data[pn_off + 4 : pn_off + 4 + _SAMPLE]
    if len(sample) < _SAMPLE or pn_off + 4 + _TAG > end:
        return None
    mask = keys.mask(sample)
    first = data[start] ^ (mask[0] & 0x0F)
    pn_len = (first & 0x03) + 1
    pn_bytes = bytes(b ^ m for b, m in zip(data[pn_off : pn_off + pn_len], mask[1:], strict=False))
    header = bytes([first]) + data[start + 1 : pn_off] + pn_bytes
    # The truncated packet number is the full one for a connection's first packets, which
    # are the only ones that carry the ClientHello (RFC 9000 §17.1 decoding needs no state).
    return keys.open(int.from_bytes(pn_bytes, "big"), header, data[pn_off + pn_len : end])


def _complete(hello: bytes) -> bool:
    """Whether ``hello`` holds a whole handshake message (so a missing name stays missing)."""
    return len(hello) >= 4 and len(hello) >= 4 + int.from_bytes(hello[1:4], "big")


def quic_initial_sni(datagram: bytes) -> str | None:
    """The server_name in one UDP datagram's client Initial, when the datagram alone holds it."""
    result = QuicInitialReader().feed(datagram)
    return result if isinstance(result, str) else None
