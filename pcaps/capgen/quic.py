"""A real QUIC v1 client Initial (RFC 9000 17.2.2), protected with the RFC 9001 5 Initial keys.

The generator writes its own packets rather than borrowing egresswatch's reader, so a replay that
finds the SNI proves the two agree on the RFC, not on shared code. The crypto is `cryptography`'s.
"""

from __future__ import annotations

import random
import struct

from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

INITIAL_SALT_V1 = bytes.fromhex("38762cf7f55934b34d179ae6a4c80cadccbb7f0a")  # RFC 9001 5.2
MIN_DATAGRAM = 1200  # RFC 9000 14.1: a client pads datagrams carrying Initials to 1200 bytes
PN_LENGTH = 2
CRYPTO_FRAME = 0x06


def _expand_label(secret: bytes, label: bytes, length: int) -> bytes:
    """HKDF-Expand-Label (RFC 8446 7.1) with an empty context."""
    full = b"tls13 " + label
    info = struct.pack("!HB", length, len(full)) + full + b"\x00"
    return HKDFExpand(hashes.SHA256(), length, info).derive(secret)


def client_initial_keys(dcid: bytes) -> tuple[bytes, bytes, bytes]:
    """(key, iv, hp) of the client's Initial packets for ``dcid`` (RFC 9001 5.2)."""
    extract = hmac.HMAC(INITIAL_SALT_V1, hashes.SHA256())
    extract.update(dcid)
    client = _expand_label(extract.finalize(), b"client in", 32)
    return (
        _expand_label(client, b"quic key", 16),
        _expand_label(client, b"quic iv", 12),
        _expand_label(client, b"quic hp", 16),
    )


def client_initial(client_hello: bytes, rng: random.Random, packet_number: int = 0) -> bytes:
    """One datagram: a protected Initial carrying ``client_hello`` (a TLS Handshake message, no
    record header) in a CRYPTO frame at offset 0, padded to 1200 bytes."""
    dcid, scid = rng.randbytes(8), rng.randbytes(8)
    key, iv, hp = client_initial_keys(dcid)
    frame = bytes((CRYPTO_FRAME, 0)) + struct.pack("!H", 0x4000 | len(client_hello)) + client_hello
    header_fixed = 1 + 4 + 1 + len(dcid) + 1 + len(scid) + 1 + 2  # up to the Length field
    overhead = header_fixed + PN_LENGTH + 16
    plaintext = frame + bytes(max(0, MIN_DATAGRAM - overhead - len(frame)))  # PADDING frames
    length = PN_LENGTH + len(plaintext) + 16
    header = (
        bytes((0xC0 | (PN_LENGTH - 1),))
        + struct.pack("!I", 1)
        + bytes((len(dcid),))
        + dcid
        + bytes((len(scid),))
        + scid
        + b"\x00"  # token length
        + struct.pack("!H", 0x4000 | length)
        + packet_number.to_bytes(PN_LENGTH, "big")
    )
    nonce = (int.from_bytes(iv, "big") ^ packet_number).to_bytes(12, "big")
    sealed = AESGCM(key).encrypt(nonce, plaintext, header)
    # Header protection (RFC 9001 5.4): the sample starts 4 bytes after the packet number starts.
    pn_offset = len(header) - PN_LENGTH
    sample = sealed[4 - PN_LENGTH : 4 - PN_LENGTH + 16]
    encryptor = Cipher(algorithms.AES(hp), modes.ECB()).encryptor()
    mask = encryptor.update(sample) + encryptor.finalize()
    protected = bytearray(header)
    protected[0] ^= mask[0] & 0x0F
    for i in range(PN_LENGTH):
        protected[pn_offset + i] ^= mask[1 + i]
    return bytes(protected) + sealed
