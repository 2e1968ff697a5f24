"""QUIC Initial SNI: RFC 9001 / RFC 9369 test vectors, real captures, split and garbage input."""

from __future__ import annotations

from pathlib import Path

import dpkt
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from egresswatch.naming.quic import QUIC_V1, QUIC_V2, InitialKeys, QuicInitialReader, quic_initial_sni
from egresswatch.naming.tls import GIVE_UP

REALPCAPS = Path("/work/shared/realpcaps")
# No example database: tests write nowhere but temp dirs.
FUZZ = settings(database=None)

# RFC 9001 Appendix A (https://www.rfc-editor.org/rfc/rfc9001#appendix-A), typed in from the RFC.
RFC_DCID = bytes.fromhex("8394c8f03e515708")
# A.1: client Initial key, IV and header protection key.
RFC9001_CLIENT_KEY = bytes.fromhex("1f369613dd76d5467730efcbe3b1a22d")
RFC9001_CLIENT_IV = bytes.fromhex("fa044b2f42a3fd3b46fb255c")
RFC9001_CLIENT_HP = bytes.fromhex("9f50449e04a0e810283a1e9933adedd2")
# A.2: the sample taken from the protected payload and the header protection mask it gives.
RFC9001_SAMPLE = bytes.fromhex("d1b1c98dd7689fb8ec11d242b123dc9b")
RFC9001_MASK = bytes.fromhex("437b9aec36")
# A.2: the CRYPTO frame (offset 0, 241 bytes of ClientHello with server_name "example.com").
RFC9001_CRYPTO_FRAME = bytes.fromhex(
    "060040f1010000ed0303ebf8fa56f12939b9584a3896472ec40bb863cfd3e868"
    "04fe3a47f06a2b69484c00000413011302010000c000000010000e00000b6578"
    "616d706c652e636f6dff01000100000a00080006001d00170018001000070005"
    "04616c706e000500050100000000003300260024001d00209370b2c9caa47fba"
    "baf4559fedba753de171fa71f50f1ce15d43e994ec74d748002b000302030400"
    "0d0010000e0403050306030203080408050806002d00020101001c0002400100"
    "3900320408ffffffffffffffff05048000ffff07048000ffff08011001048000"
    "75300901100f088394c8f03e51570806048000ffff"
)
# A.2: the complete protected client Initial, 1200 bytes.
RFC9001_CLIENT_INITIAL = bytes.fromhex(
    "c000000001088394c8f03e5157080000449e7b9aec34d1b1c98dd7689fb8ec11"
    "d242b123dc9bd8bab936b47d92ec356c0bab7df5976d27cd449f63300099f399"
    "1c260ec4c60d17b31f8429157bb35a1282a643a8d2262cad67500cadb8e7378c"
    "8eb7539ec4d4905fed1bee1fc8aafba17c750e2c7ace01e6005f80fcb7df6212"
    "30c83711b39343fa028cea7f7fb5ff89eac2308249a02252155e2347b63d58c5"
    "457afd84d05dfffdb20392844ae812154682e9cf012f9021a6f0be17ddd0c208"
    "4dce25ff9b06cde535d0f920a2db1bf362c23e596d11a4f5a6cf3948838a3aec"
    "4e15daf8500a6ef69ec4e3feb6b1d98e610ac8b7ec3faf6ad760b7bad1db4ba3"
    "485e8a94dc250ae3fdb41ed15fb6a8e5eba0fc3dd60bc8e30c5c4287e53805db"
    "059ae0648db2f64264ed5e39be2e20d82df566da8dd5998ccabdae053060ae6c"
    "7b4378e846d29f37ed7b4ea9ec5d82e7961b7f25a9323851f681d582363aa5f8"
    "9937f5a67258bf63ad6f1a0b1d96dbd4faddfcefc5266ba6611722395c906556"
    "be52afe3f565636ad1b17d508b73d8743eeb524be22b3dcbc2c7468d54119c74"
    "68449a13d8e3b95811a198f3491de3e7fe942b330407abf82a4ed7c1b311663a"
    "c69890f4157015853d91e923037c227a33cdd5ec281ca3f79c44546b9d90ca00"
    "f064c99e3dd97911d39fe9c5d0b23a229a234cb36186c4819e8b9c5927726632"
    "291d6a418211cc2962e20fe47feb3edf330f2c603a9d48c0fcb5699dbfe58964"
    "25c5bac4aee82e57a85aaf4e2513e4f05796b07ba2ee47d80506f8d2c25e50fd"
    "14de71e6c418559302f939b0e1abd576f279c4b2e0feb85c1f28ff18f58891ff"
    "ef132eef2fa09346aee33c28eb130ff28f5b766953334113211996d20011a198"
    "e3fc433f9f2541010ae17c1bf202580f6047472fb36857fe843b19f5984009dd"
    "c324044e847a4f4a0ab34f719595de37252d6235365e9b84392b061085349d73"
    "203a4a13e96f5432ec0fd4a1ee65accdd5e3904df54c1da510b0ff20dcc0c77f"
    "cb2c0e0eb605cb0504db87632cf3d8b4dae6e705769d1de354270123cb11450e"
    "fc60ac47683d7b8d0f811365565fd98c4c8eb936bcab8d069fc33bd801b03ade"
    "a2e1fbc5aa463d08ca19896d2bf59a071b851e6c239052172f296bfb5e724047"
    "90a2181014f3b94a4e97d117b438130368cc39dbb2d198065ae3986547926cd2"
    "162f40a29f0c3c8745c0f50fba3852e566d44575c29d39a03f0cda721984b6f4"
    "40591f355e12d439ff150aab7613499dbd49adabc8676eef023b15b65bfc5ca0"
    "6948109f23f350db82123535eb8a7433bdabcb909271a6ecbcb58b936a88cd4e"
    "8f2e6ff5800175f113253d8fa9ca8885c2f552e657dc603f252e1a8e308f76f0"
    "be79e2fb8f5d5fbbe2e30ecadd220723c8c0aea8078cdfcb3868263ff8f09400"
    "54da48781893a7e49ad5aff4af300cd804a6b6279ab3ff3afb64491c85194aab"
    "760d58a606654f9f4400e8b38591356fbf6425aca26dc85244259ff2b19c41b9"
    "f96f3ca9ec1dde434da7d2d392b905ddf3d1f9af93d1af5950bd493f5aa731b4"
    "056df31bd267b6b90a079831aaf579be0a39013137aac6d404f518cfd4684064"
    "7e78bfe706ca4cf5e9c5453e9f7cfd2b8b4c8d169a44e55c88d4a9a7f9474241"
    "e221af44860018ab0856972e194cd934"
)
# RFC 9369 Appendix A.1 (https://www.rfc-editor.org/rfc/rfc9369#appendix-A.1): QUIC v2 client keys.
RFC9369_CLIENT_KEY = bytes.fromhex("8b1a0bc121284290a29e0971b5cd045d")
RFC9369_CLIENT_IV = bytes.fromhex("91f73e2351d8fa91660e909f")
RFC9369_CLIENT_HP = bytes.fromhex("45b95e15235d6f45a6b19cbcb0294ba9")

CLIENT_HELLO = RFC9001_CRYPTO_FRAME[4:]


def test_rfc9001_client_initial_keys() -> None:
    keys = InitialKeys(RFC_DCID, QUIC_V1)
    assert (keys.key, keys.iv, keys.hp) == (RFC9001_CLIENT_KEY, RFC9001_CLIENT_IV, RFC9001_CLIENT_HP)
    assert keys.mask(RFC9001_SAMPLE)[:5] == RFC9001_MASK


def test_rfc9369_client_initial_keys() -> None:
    keys = InitialKeys(RFC_DCID, QUIC_V2)
    assert (keys.key, keys.iv, keys.hp) == (RFC9369_CLIENT_KEY, RFC9369_CLIENT_IV, RFC9369_CLIENT_HP)


def test_rfc9001_sample_client_initial_names_example_com() -> None:
    assert quic_initial_sni(RFC9001_CLIENT_INITIAL) == "example.com"


def test_tampered_initial_does_not_authenticate() -> None:
    tampered = bytearray(RFC9001_CLIENT_INITIAL)
    tampered[600] ^= 0x01
    assert quic_initial_sni(bytes(tampered)) is None


def _varint(value: int) -> bytes:
    return (value | 0x4000).to_bytes(2, "big") if value >= 64 else bytes([value])


def _seal(version: int, frames: bytes, packet_number: int, key: bytes, iv: bytes, hp: bytes) -> bytes:
    """A client Initial built independently of the module (RFC 9001 §5.3-5.4), padded to 1200 bytes."""
    initial_type = 0 if version == QUIC_V1 else 1
    frames += b"\x00" * (1200 - 60 - len(frames))  # PADDING frames
    pn = packet_number.to_bytes(4, "big")
    length = len(pn) + len(frames) + 16
    header = (
        bytes([0xC0 | initial_type << 4 | 0x03])
        + version.to_bytes(4, "big")
        + bytes([len(RFC_DCID)])
        + RFC_DCID
        + b"\x00"  # SCID length
        + b"\x00"  # token length
        + (length | 0x4000).to_bytes(2, "big")
        + pn
    )
    nonce = (int.from_bytes(iv, "big") ^ packet_number).to_bytes(12, "big")
    sealed = AESGCM(key).encrypt(nonce, frames, header)
    encryptor = Cipher(algorithms.AES(hp), modes.ECB()).encryptor()
    mask = encryptor.update(sealed[:16]) + encryptor.finalize()
    first = bytes([header[0] ^ (mask[0] & 0x0F)])
    protected_pn = bytes(a ^ b for a, b in zip(pn, mask[1:5], strict=True))
    return first + header[1:-4] + protected_pn + sealed


def _crypto(offset: int, data: bytes) -> bytes:
    return b"\x06" + _varint(offset) + _varint(len(data)) + data


def _v1(frames: bytes, packet_number: int = 0) -> bytes:
    return _seal(QUIC_V1, frames, packet_number, RFC9001_CLIENT_KEY, RFC9001_CLIENT_IV, RFC9001_CLIENT_HP)


def test_client_hello_across_two_datagrams_out_of_order() -> None:
    reader = QuicInitialReader()
    # The tail first, behind PING and ACK frames; the head (with the server_name) second.
    ack = b"\x02" + _varint(0) + _varint(0) + _varint(1) + _varint(0) + _varint(0) + _varint(0)
    assert reader.feed(_v1(b"\x01" + ack + _crypto(40, CLIENT_HELLO[40:]), 0)) is None
    assert reader.feed(_v1(_crypto(0, CLIENT_HELLO[:40]), 1)) == "example.com"
    assert reader.feed(b"anything later") == "example.com"


def test_crypto_frames_out_of_order_within_one_packet() -> None:
    frames = _crypto(60, CLIENT_HELLO[60:]) + _crypto(0, CLIENT_HELLO[:30]) + _crypto(30, CLIENT_HELLO[30:60])
    assert quic_initial_sni(_v1(frames)) == "example.com"


def test_quic_v2_initial() -> None:
    datagram = _seal(
        QUIC_V2, RFC9001_CRYPTO_FRAME, 2, RFC9369_CLIENT_KEY, RFC9369_CLIENT_IV, RFC9369_CLIENT_HP
    )
    assert quic_initial_sni(datagram) == "example.com"
    # Relabelled v1, the type bits (01) now say 0-RTT: nothing is an Initial, nothing is read.
    relabelled = datagram[:1] + QUIC_V1.to_bytes(4, "big") + datagram[5:]
    assert quic_initial_sni(relabelled) is None


def test_not_quic_gives_up_and_other_versions_are_not_guessed() -> None:
    assert QuicInitialReader().feed(b"\x40" + b"\x00" * 40) is GIVE_UP  # short header first
    draft29 = RFC9001_CLIENT_INITIAL[:1] + bytes.fromhex("ff00001d") + RFC9001_CLIENT_INITIAL[5:]
    assert QuicInitialReader().feed(draft29) is GIVE_UP


def test_complete_hello_without_server_name_gives_up() -> None:
    # Turn the server_name extension (type 0) into an unknown one (type 0x7a7a).
    at = CLIENT_HELLO.index(bytes.fromhex("00000010000e00000b"))
    hello = CLIENT_HELLO[:at] + b"\x7a\x7a" + CLIENT_HELLO[at + 2 :]
    assert QuicInitialReader().feed(_v1(_crypto(0, hello))) is GIVE_UP


@FUZZ
@given(st.binary(max_size=1300))
def test_garbage_never_raises(data: bytes) -> None:
    assert quic_initial_sni(b"\xc0\x00\x00\x00\x01" + data) is None


@FUZZ
@given(st.integers(min_value=0, max_value=1199), st.binary(min_size=1, max_size=4))
def test_corrupted_rfc_packet_never_raises(at: int, noise: bytes) -> None:
    corrupted = RFC9001_CLIENT_INITIAL[:at] + noise + RFC9001_CLIENT_INITIAL[at + len(noise) :]
    result = quic_initial_sni(corrupted)
    assert result in (None, "example.com")


def _client_udp_payloads(path: Path, reader_type: type, link: type) -> list[bytes]:
    """UDP payloads of a capture, in order (``reader_type`` pcap or pcapng, ``link`` the L2 class)."""
    out = []
    with path.open("rb") as f:
        for _ts, frame in reader_type(f):
            udp = link(frame).data.data
            if isinstance(udp, dpkt.udp.UDP):
                out.append(bytes(udp.data))
    return out


@pytest.mark.skipif(not REALPCAPS.is_dir(), reason="shared real captures (/work/shared/realpcaps) absent")
@pytest.mark.parametrize(
    ("capture", "reader_type", "link", "expected"),
    [
        # From "<capture>.truth.txt", "TLS/QUIC SNI unique" (tshark 4.0.17).
        ("zeek_quic_chromium.pcap", dpkt.pcap.Reader, dpkt.ethernet.Ethernet, "api.cirrus-ci.com"),
        ("zeek_quic_firefox_google.pcap", dpkt.pcap.Reader, dpkt.ethernet.Ethernet, "www.google.com"),
        ("ndpi_quic_v2.pcapng", dpkt.pcapng.Reader, dpkt.sll.SLL, "test"),  # QUIC v2 on ::1
    ],
)
def test_real_captures_match_tshark(capture: str, reader_type: type, link: type, expected: str) -> None:
    payloads = _client_udp_payloads(REALPCAPS / capture, reader_type, link)
    assert quic_initial_sni(payloads[0]) == expected
    assert [quic_initial_sni(p) for p in payloads[1:]] == [None] * (len(payloads) - 1)
    reader = QuicInitialReader()
    assert reader.feed(payloads[0]) == expected
