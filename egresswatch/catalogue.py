"""Camera-vendor cloud services: whose service a destination is, and where that company sits.

A server's country says where the machine is; the catalogue says whose service it is and the
operating company's home jurisdiction (Hik-Connect's EU servers sit in Frankfurt, the service
is run from Hangzhou). The facts live in ``data/services.yaml``, each entry citing its source;
this module only loads, validates and matches them.

Matching: ``match_domain`` is a suffix match on whole labels (``hik-connect.com`` matches
``api.hik-connect.com``, not ``nothik-connect.com``); a pattern may hold ``*`` / ``?`` globs
within a label (``p2p*.reolink.com``); the most specific (longest) pattern wins.
``match_payload`` compares a payload packet with the services' signature prefixes and says which
service it belongs to and which application the signature stands for (``signatures`` map an app
name such as ``dh-p2p`` or ``ptcp`` to its prefixes; ``classify.py`` knows what each app carries).
A service that lists ``ports`` only counts signatures seen on those ports. Ports alone are never
evidence: UDP 8800 or 9999 carry plenty of other traffic.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from egresswatch.config import ConfigError, load_yaml
from egresswatch.model import Service

DEFAULT_PATH = Path(__file__).parent / "data" / "services.yaml"

_KEYS = {"name", "operator", "jurisdiction", "vendor", "domains", "ports", "signatures", "source"}
_VENDOR = re.compile(r"[a-z0-9][a-z0-9_-]*\Z")
_REQUIRED = ("name", "operator", "jurisdiction", "source")
_JURISDICTION = re.compile(r"[A-Z]{2}\Z")
_PATTERN_LABEL = re.compile(r"[a-z0-9_*?]([a-z0-9_*?-]*[a-z0-9_*?])?\Z")
_PORT = re.compile(r"(tcp|udp)/(\d{1,5})\Z")
_HEX_PREFIX = "hex:"
_APP = re.compile(r"[a-z][a-z0-9-]{1,30}\Z")
__all__ = ["Catalogue", "PayloadMatch", "Service"]


class PayloadMatch(NamedTuple):
    service: Service
    app: str
    """The application the matched signature stands for, e.g. "dh-p2p" or "ptcp"."""


@dataclass(frozen=True, slots=True)
class _Entry:
    service: Service
    domains: tuple[str, ...]
    ports: frozenset[tuple[str, int]]
    signatures: tuple[tuple[bytes, str], ...]
    """(prefix, app) pairs."""


class Catalogue:
    """Validated catalogue entries with domain and payload matchers."""

    def __init__(self, entries: Sequence[_Entry]) -> None:
        self._exact: dict[str, Service] = {}
        self._globs: list[tuple[re.Pattern[str], int, Service]] = []
        for entry in entries:
            for pattern in entry.domains:
                if "*" in pattern or "?" in pattern:
                    self._globs.append((_glob_regex(pattern), len(pattern), entry.service))
                else:
                    self._exact[pattern] = entry.service
        self._signed = [entry for entry in entries if entry.signatures]
        self.services: tuple[Service, ...] = tuple(entry.service for entry in entries)

    @classmethod
    def load(cls, path: str | Path | None = None) -> Catalogue:
        """Read and validate a catalogue file (the packaged one by default).

        Raises ``ConfigError`` naming the entry and key, e.g. ``services[3] (Reolink P2P).ports[0]``.
        """
        path = Path(path) if path is not None else DEFAULT_PATH
        try:
            data = load_yaml(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(str(path), f"cannot read catalogue: {exc}") from exc
        services = data.get("services") if isinstance(data, Mapping) and set(data) == {"services"} else None
        if not isinstance(services, list):
            raise ConfigError("services", "the file must hold one key, services, with a list")
        entries = [_entry(raw, i) for i, raw in enumerate(services)]
        seen: set[str] = set()
        for i, entry in enumerate(entries):
            if entry.service.name in seen:
                raise ConfigError(f"services[{i}].name", f"duplicate service {entry.service.name!r}")
            seen.add(entry.service.name)
        return cls(entries)

    def match_domain(self, name: str) -> Service | None:
        """The service whose most specific domain pattern covers ``name``."""
        name = name.lower().rstrip(".")
        best: tuple[int, Service] | None = None
        labels = name.split(".")
        for i in range(len(labels)):
            suffix = ".".join(labels[i:])
            if suffix in self._exact:
                best = (len(suffix), self._exact[suffix])
                break
        for regex, length, service in self._globs:
            if (best is None or length > best[0]) and regex.fullmatch(name):
                best = (length, service)
        return best[1] if best else None

    def match_payload(self, transport: str, port: int | None, payload: bytes) -> PayloadMatch | None:
        """The service and app one of whose signatures ``payload`` starts with, on an allowed port.

        ``port`` is the remote (server) port; None for port-less transports.
        """
        for entry in self._signed:
            if entry.ports and (transport, port) not in entry.ports:
                continue
            for prefix, app in entry.signatures:
                if payload.startswith(prefix):
                    return PayloadMatch(entry.service, app)
        return None


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """Globs stay inside one label; any labels may precede the pattern (suffix semantics)."""
    body = "".join("[^.]*" if c == "*" else "[^.]" if c == "?" else re.escape(c) for c in pattern)
    return re.compile(rf"(?:.+\.)?{body}")


def _entry(raw: Any, index: int) -> _Entry:
    where = f"services[{index}]"
    if not isinstance(raw, Mapping):
        raise ConfigError(where, "must be a mapping")
    if isinstance(raw.get("name"), str):
        where = f"{where} ({raw['name']})"
    for key in raw:
        if key not in _KEYS:
            raise ConfigError(f"{where}.{key}", "unknown key")
    for key in _REQUIRED:
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            raise ConfigError(f"{where}.{key}", "required, a non-empty string")
    if not _JURISDICTION.match(raw["jurisdiction"]):
        raise ConfigError(f"{where}.jurisdiction", "must be an ISO 3166 alpha-2 code such as CN")
    domains = tuple(_domain(d, f"{where}.domains[{i}]") for i, d in enumerate(_list(raw, "domains", where)))
    ports = frozenset(_port(p, f"{where}.ports[{i}]") for i, p in enumerate(_list(raw, "ports", where)))
    signatures = _signatures(raw.get("signatures", {}), f"{where}.signatures")
    if not domains and not signatures:
        raise ConfigError(where, "needs domains or signatures: it could never match")
    if ports and not signatures:
        raise ConfigError(f"{where}.ports", "ports only narrow signatures; add signatures or drop ports")
    vendor = raw.get("vendor")
    if vendor is not None and (not isinstance(vendor, str) or not _VENDOR.match(vendor)):
        raise ConfigError(f"{where}.vendor", "must be a vendor slug such as hikvision (data/vendors.yaml)")
    service = Service(raw["name"].strip(), raw["operator"].strip(), raw["jurisdiction"], vendor)
    return _Entry(service, domains, ports, signatures)


def _list(raw: Mapping[str, Any], key: str, where: str) -> list[Any]:
    value = raw.get(key, [])
    if not isinstance(value, list):
        raise ConfigError(f"{where}.{key}", "must be a list")
    return value


def _signatures(value: Any, where: str) -> tuple[tuple[bytes, str], ...]:
    """``{app: [prefix, ...]}`` -> ((prefix, app), ...) in file order."""
    if not isinstance(value, Mapping):
        raise ConfigError(where, "must map an app name to a list of prefixes, e.g. {dh-p2p: [DHGET]}")
    pairs = []
    for app, prefixes in value.items():
        if not isinstance(app, str) or not _APP.match(app):
            raise ConfigError(f"{where}.{app}", "app names are lower-case words such as ptcp or dh-p2p")
        if not isinstance(prefixes, list) or not prefixes:
            raise ConfigError(f"{where}.{app}", "must be a non-empty list")
        pairs += [(_signature(p, f"{where}.{app}[{i}]"), app) for i, p in enumerate(prefixes)]
    return tuple(pairs)


def _domain(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(where, "must be a string")
    labels = value.split(".")
    if value != value.lower() or len(labels) < 2 or not all(_PATTERN_LABEL.match(label) for label in labels):
        raise ConfigError(where, f"{value!r} is not a lower-case domain suffix (globs * and ? allowed)")
    return value


def _port(value: Any, where: str) -> tuple[str, int]:
    match = _PORT.match(value) if isinstance(value, str) else None
    if not match or not 0 < int(match[2]) < 65536:
        raise ConfigError(where, f"{value!r} is not transport/port such as udp/8800")
    return match[1], int(match[2])


def _signature(value: Any, where: str) -> bytes:
    if not isinstance(value, str) or not value:
        raise ConfigError(where, "must be a non-empty string (text, or hex:... for bytes)")
    if value.startswith(_HEX_PREFIX):
        try:
            prefix = bytes.fromhex(value[len(_HEX_PREFIX) :])
        except ValueError:
            raise ConfigError(where, f"{value!r} is not valid hex") from None
    else:
        try:
            prefix = value.encode("ascii")
        except UnicodeEncodeError:
            raise ConfigError(where, "text signatures must be ASCII; use hex:... for bytes") from None
    if len(prefix) < 4:
        raise ConfigError(where, "at least 4 bytes: shorter prefixes match random traffic")
    return prefix
