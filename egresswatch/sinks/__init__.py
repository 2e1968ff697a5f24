"""Sinks: where flow reports end up (JSON-lines events, Prometheus metrics, the run summary).

The pipeline hands every sink each ``FlowReport`` and, separately, each de-duplicated policy alert;
a sink never sees packets. ``close`` comes once, at the end of a run or on shutdown, with the run's
``Totals``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol

from egresswatch.model import FlowReport, Totals


class Sink(Protocol):
    def flow(self, report: FlowReport) -> None:
        """Every flow report (``flow_update`` and ``flow_end``)."""

    def alert(self, report: FlowReport) -> None:
        """A policy violation alert; the pipeline has already de-duplicated it."""

    def close(self, totals: Totals) -> None:
        """End of run or shutdown."""


def iso_utc(timestamp: float) -> str:
    """Packet time as ISO 8601 UTC with microseconds and "Z", e.g. "2026-01-12T08:00:01.250000Z".

    One formatter for events and summary so the two always agree to the microsecond.
    """
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
