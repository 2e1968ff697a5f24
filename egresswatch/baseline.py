"""Per-device destination baselines: what is normal for a camera, learned, then what is new.

While a device is learning, every destination country, ASN and service it uses is recorded.
Afterwards a value it has never used is reported once per dimension ("country", "asn",
"service") and then remembered, so the pipeline raises one `new_destination` event for it.

Learning is per device: it runs for `learn_for_seconds` from the later of `start(ts)` and the
device's first observation. A camera plugged in on day ten learns its own week instead of
reporting every destination it has as new (the policy verdict still judges each flow).
Time is packet time, as everywhere below the capture layer.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from egresswatch.model import UNKNOWN_COUNTRY

DIMENSIONS = ("country", "asn", "service")
DEFAULT_MAX_VALUES = 256
"""Values remembered per device and dimension; the oldest is forgotten beyond it."""
DEFAULT_MAX_DEVICES = 65536


@dataclass(slots=True)
class _DeviceBaseline:
    first_seen: float
    seen: dict[str, dict[str, None]] = field(default_factory=lambda: {name: {} for name in DIMENSIONS})
    """dimension -> values in the order first used (a dict as an ordered set)."""


class Baseline:
    """Destination countries, ASNs and services per device name."""

    def __init__(
        self,
        learn_for_seconds: float,
        max_values: int = DEFAULT_MAX_VALUES,
        max_devices: int = DEFAULT_MAX_DEVICES,
    ) -> None:
        if learn_for_seconds < 0 or max_values < 1 or max_devices < 1:
            raise ValueError("learn_for_seconds must be >= 0, max_values and max_devices >= 1")
        self.learn_for = learn_for_seconds
        self.started: float | None = None
        self._max_values = max_values
        self._max_devices = max_devices
        self._devices: OrderedDict[str, _DeviceBaseline] = OrderedDict()
        self._dirty: set[str] = set()

    def start(self, ts: float) -> None:
        """Learning begins no earlier than `ts`; a start restored from the state file stays."""
        if self.started is None:
            self.started = ts

    def learning(self, device: str, ts: float) -> bool:
        """True while `device` is still in its learning period at `ts` (also before it is first seen)."""
        entry = self._devices.get(device)
        first = entry.first_seen if entry is not None else ts
        return ts < max(first, self.started if self.started is not None else ts) + self.learn_for

    def observe(
        self, device: str, country: str | None, asn: int | None, service: str | None, ts: float
    ) -> list[str]:
        """Record one egress destination of `device`; the dimensions that are new to it.

        Empty while the device is learning. An unknown country ("ZZ") or ASN is no evidence.
        """
        self.start(ts)
        entry = self._devices.get(device)
        if entry is None:
            if len(self._devices) >= self._max_devices:
                self._dirty.add(self._devices.popitem(last=False)[0])
            entry = self._devices[device] = _DeviceBaseline(first_seen=ts)
        else:
            self._devices.move_to_end(device)
        learning = self.learning(device, ts)
        values = {
            "country": None if country in (None, UNKNOWN_COUNTRY) else country,
            "asn": None if asn is None else str(asn),
            "service": service,
        }
        new = []
        for dimension, value in values.items():
            if value is None:
                continue
            seen = entry.seen[dimension]
            if value in seen:
                continue
            if not learning:
                new.append(dimension)
            seen[value] = None
            if len(seen) > self._max_values:
                del seen[next(iter(seen))]
            self._dirty.add(device)
        return new

    def known(self, device: str, dimension: str) -> tuple[str, ...]:
        """Values of one dimension `device` has used (ASNs as decimal strings)."""
        entry = self._devices.get(device)
        return tuple(entry.seen[dimension]) if entry is not None else ()

    # ------------------------------------------------------------------ state
    def drain_changes(self) -> tuple[float | None, dict[str, dict[str, Any] | None]]:
        """(learning start, device -> plain data or None when forgotten) changed since the last call."""
        changes = {device: self._data(device) for device in self._dirty}
        self._dirty.clear()
        return self.started, changes

    def export_state(self) -> dict[str, Any]:
        """Everything as plain data: {"started": ts, "devices": {name: {...}}}."""
        return {"started": self.started, "devices": {device: self._data(device) for device in self._devices}}

    def import_state(self, state: Mapping[str, Any]) -> None:
        """Restore what `export_state` (or the state file) gave; it counts as saved."""
        started = state.get("started")
        if started is not None:
            self.started = float(started)
        devices = state.get("devices") or {}
        for device, data in devices.items():
            if data is None:
                continue
            entry = _DeviceBaseline(first_seen=float(data["first_seen"]))
            for dimension in DIMENSIONS:
                entry.seen[dimension] = dict.fromkeys(
                    str(v) for v in data.get(dimension, ())[-self._max_values :]
                )
            self._devices[device] = entry
            if len(self._devices) > self._max_devices:
                self._devices.popitem(last=False)
        self._dirty.clear()

    def _data(self, device: str) -> dict[str, Any] | None:
        entry = self._devices.get(device)
        if entry is None:
            return None
        data: dict[str, Any] = {"first_seen": entry.first_seen}
        data.update({dimension: list(entry.seen[dimension]) for dimension in DIMENSIONS})
        return data
