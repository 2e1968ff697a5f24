"""The vendor-cloud catalogue as the ground truth reads it: egresswatch/data/services.yaml is data,
so the truth reads the same file (as it reads config/demo.yaml) and applies the documented rule:
whole-label suffixes, ``*``/``?`` globs inside one label, the longest pattern wins."""

from __future__ import annotations

import fnmatch
from pathlib import Path

import yaml

SERVICES = Path(__file__).resolve().parents[2] / "egresswatch" / "data" / "services.yaml"


class Catalogue:
    def __init__(self, path: Path = SERVICES) -> None:
        entries = yaml.safe_load(path.read_text())["services"]
        self.jurisdiction = {entry["name"]: entry["jurisdiction"] for entry in entries}
        self._patterns = [(d, entry["name"]) for entry in entries for d in entry.get("domains", [])]

    def service_of(self, domain: str | None) -> str | None:
        if domain is None:
            return None
        labels = domain.lower().split(".")
        best: tuple[int, str] | None = None
        for pattern, name in self._patterns:
            parts = pattern.split(".")
            tail = labels[-len(parts) :]
            covered = len(tail) == len(parts) and all(
                fnmatch.fnmatchcase(label, part) for label, part in zip(tail, parts, strict=True)
            )
            if covered and (best is None or len(pattern) > best[0]):
                best = (len(pattern), name)
        return best[1] if best else None
