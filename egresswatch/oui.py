"""MAC vendors: the IEEE OUI registry, reduced to the vendors egresswatch has names for.

The registry comes from the `pymanuf` package. The three candidates, as installed here:

- pymanuf (2026.10.1): ships the IEEE registry (MA-L, MA-M, MA-S: 24/28/36-bit prefixes) as
  `manuf.txt` inside the wheel and is re-released on the first of every month, so the data is at
  most a month old. Works offline (its `online` submodule is separate and never imported here).
  84 Hikvision prefixes.
- manuf (1.1.5): ships a Wireshark `manuf` file frozen at its last release (37 Hikvision
  prefixes against 84), and `MacParser()` parses it in ~0.33 s. Its `update()` downloads.
- mac-vendor-lookup (0.1.15): ships no data; the first lookup downloads oui.txt from the IEEE
  into ~/.cache through aiohttp. Unusable on an isolated sensor.

pymanuf wins on freshness and offline use. Its answers are company names, several per vendor
("Hangzhou Hikvision ...", "Prama Hikvision ...", "Hangzhou Ezviz ..."), so
`egresswatch/data/vendors.yaml` maps name patterns to one slug per vendor.

We read pymanuf's file ourselves rather than importing pymanuf, whose import builds a dict of all
~59,000 companies (0.28 s) and whose answers we then matched against every name pattern. One
regular-expression pass keeps only the 24-bit blocks of companies we have a name for, plus every
28/36-bit block (a company we do not know can hold a block inside a known vendor's, and the most
specific block answers, as in pymanuf). The answers are pymanuf's, mapped to slugs
(tests/test_oui.py compares them over the whole registry).
"""

from __future__ import annotations

import functools
import importlib.resources
import importlib.util
import re
from pathlib import Path

from egresswatch.config import load_yaml


def _load_vendor_table() -> tuple[dict[str, str], frozenset[str]]:
    text = importlib.resources.files("egresswatch").joinpath("data/vendors.yaml").read_text("utf-8")
    table = load_yaml(text)
    names = {name: slug for slug, entry in table.items() for name in entry["names"]}
    return names, frozenset(slug for slug, entry in table.items() if entry["camera"])


_VENDOR_NAMES, CAMERA_VENDORS = _load_vendor_table()
"""CAMERA_VENDORS: slugs whose OUIs make an unlisted local host a discovered camera."""
_NAME_PATTERNS = tuple(
    (re.compile(rf"\b{re.escape(name)}\b", re.IGNORECASE), slug) for name, slug in _VENDOR_NAMES.items()
)

_BLOCK_BITS = (36, 28, 24)
"""Most specific first: the order a MAC's blocks are asked in."""


def vendor_slug(company: str) -> str | None:
    """The slug for a registry company name, e.g. "Zhejiang Dahua Technology Co., Ltd." -> "dahua"."""
    for pattern, slug in _NAME_PATTERNS:
        if pattern.search(company):
            return slug
    return None


@functools.lru_cache(maxsize=65536)
def vendor_of(mac: bytes) -> str | None:
    """Vendor slug of a 6-byte MAC from its OUI, or None when the company is not in our table."""
    if len(mac) != 6:
        raise ValueError(f"expected a 6-byte MAC, got {len(mac)} bytes")
    blocks = _registry()[0]
    value = int.from_bytes(mac, "big")
    for bits in _BLOCK_BITS:
        key = (value >> (48 - bits), bits)
        if key in blocks:
            return blocks[key]
    return None


def ouis_for(slug: str) -> tuple[bytes, ...]:
    """Sorted 3-byte OUIs of a vendor's registry blocks, for capture filters (bpf.py).

    A 28- or 36-bit block (MA-M, MA-S) is given as its 24-bit parent, which other companies
    share: a superset is right for deciding what to capture, not for attribution (`vendor_of`).
    """
    return _registry()[1].get(slug, ())


@functools.cache
def _registry() -> tuple[dict[tuple[int, int], str | None], dict[str, tuple[bytes, ...]]]:
    """((block prefix, bits) -> slug or None, slug -> 24-bit OUIs), from one read of manuf.txt."""
    # find_spec, not importlib.resources.files: that would import pymanuf, which parses the file
    spec = importlib.util.find_spec("pymanuf")
    if spec is None or spec.origin is None:
        raise ImportError("pymanuf (the OUI registry) is not installed")
    registry = (Path(spec.origin).parent / "manuf.txt").read_bytes()
    # Lines: "XX:XX:XX<TAB><TAB>Company" for a 24-bit block, "XX:XX:XX:XX:XX:XX/28<TAB>Company"
    # (or /36) for a smaller one. Only lines holding one of our vendor names can have a slug: they
    # are found with bytes.find (a regex per line costs 10x more) and only they are matched against
    # the name patterns. Every smaller block is kept, 24-bit blocks only with a slug. The file is
    # searched as bytes and only the companies matched are decoded: some names are not ASCII, and
    # as text the whole file would be lowered and searched as UCS-2 (132 M instructions more, of
    # ~400 M for the read). Every vendor name is ASCII, so lowering ASCII alone finds them all.
    lowered = registry.lower()
    named: set[int] = set()
    for name in {name.lower().encode("ascii") for name in _VENDOR_NAMES}:
        at = lowered.find(name)
        while at != -1:
            named.add(registry.rfind(b"\n", 0, at) + 1)
            at = lowered.find(name, at + 1)
    slugs = functools.lru_cache(maxsize=None)(vendor_slug)
    blocks: dict[tuple[int, int], str | None] = {}
    ouis: dict[str, set[bytes]] = {}
    small = ((line.start(), line[1], int(line[2]), line[3]) for line in _SMALL_BLOCK.finditer(registry))
    large = ((at, line[1], 24, line[2]) for at in sorted(named) if (line := _BLOCK_24.match(registry, at)))
    for start, prefix, bits, company in (*small, *large):
        value = int(prefix.replace(b":", b"").ljust(12, b"0"), 16)
        slug = slugs(company.decode("utf-8").replace("\t\t", "\t")) if start in named else None
        blocks[(value >> (48 - bits), bits)] = slug
        if slug is not None:
            ouis.setdefault(slug, set()).add((value >> 24).to_bytes(3, "big"))
    return blocks, {slug: tuple(sorted(found_ouis)) for slug, found_ouis in ouis.items()}


_SMALL_BLOCK = re.compile(rb"^([0-9A-Fa-f:]{17})/(28|36)\t+([^\n]*)$", re.M)
_BLOCK_24 = re.compile(rb"([0-9A-Fa-f:]{8})\t\t([^\n]*)")
