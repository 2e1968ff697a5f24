"""egresswatch.oui reads pymanuf's registry itself: its answers must be pymanuf's, mapped to slugs."""

from __future__ import annotations

import functools
import importlib.resources
import random

import pymanuf
import pytest

from egresswatch import oui

REGISTRY: dict[tuple[int, int], str] = getattr(pymanuf, "__CONTENT")  # (prefix << host bits, bits)
slug_of = functools.lru_cache(maxsize=None)(oui.vendor_slug)


def _pymanuf_slug(mac: bytes) -> str | None:
    return slug_of(pymanuf.lookup(mac.hex(":")))


def test_every_registry_block_gets_pymanufs_answer() -> None:
    rng = random.Random(7)
    checked = mismatched = 0
    for masked, bits in REGISTRY:
        # a MAC inside the block, with random host bits
        mac = (masked | rng.getrandbits(48 - bits)).to_bytes(6, "big")
        checked += 1
        mismatched += oui.vendor_of(mac) != _pymanuf_slug(mac)
    assert checked > 50_000
    assert mismatched == 0


def test_macs_outside_every_block_and_random_macs_agree() -> None:
    rng = random.Random(11)
    for _ in range(20_000):
        mac = rng.getrandbits(48).to_bytes(6, "big")
        assert oui.vendor_of(mac) == _pymanuf_slug(mac), mac.hex(":")


def test_known_vendors_are_found() -> None:
    assert oui.vendor_of(bytes.fromhex("4419b6000001")) == "hikvision"
    assert oui.vendor_of(bytes.fromhex("3cef8c000001")) == "dahua"
    assert {"hikvision", "dahua"} <= oui.CAMERA_VENDORS
    with pytest.raises(ValueError):
        oui.vendor_of(b"\x00" * 5)


def test_vendor_ouis_are_every_block_of_the_vendor_as_its_24_bit_parent() -> None:
    text = importlib.resources.files("pymanuf").joinpath("manuf.txt").read_text("utf-8")
    expected: dict[str, set[bytes]] = {}
    for line in text.splitlines():
        fields = [field for field in line.split("\t") if field]
        if len(fields) < 2 or line.startswith("#"):
            continue
        slug = slug_of(fields[-1])
        if slug is not None:
            expected.setdefault(slug, set()).add(bytes.fromhex(fields[0][:8].replace(":", "")))
    assert len(expected["hikvision"]) > 50
    for slug, ouis in expected.items():
        assert oui.ouis_for(slug) == tuple(sorted(ouis)), slug
    assert oui.ouis_for("no-such-vendor") == ()
