"""Per-device destination baselines (issue 6): learn, then report what is new once."""

from __future__ import annotations

import json

import pytest

from egresswatch.baseline import Baseline

DAY = 86400.0
WEEK = 7 * DAY


def test_learning_period_then_a_new_country() -> None:
    baseline = Baseline(learn_for_seconds=WEEK)
    baseline.start(0.0)
    assert baseline.observe("cam-1", "GB", 64500, "hik-connect", 1.0) == []
    assert baseline.observe("cam-1", "IE", 64501, None, 3 * DAY) == [], "still learning: nothing is new"
    assert baseline.observe("cam-1", "GB", 64500, "hik-connect", WEEK + 1) == []
    assert baseline.observe("cam-1", "CN", 64500, "hik-connect", WEEK + 2) == ["country"]
    assert baseline.observe("cam-1", "CN", 64500, "hik-connect", WEEK + 3) == [], "reported once"
    assert baseline.observe("cam-1", "US", 64999, "ezviz", WEEK + 4) == ["country", "asn", "service"]
    assert baseline.known("cam-1", "country") == ("GB", "IE", "CN", "US")
    assert baseline.known("cam-1", "asn") == ("64500", "64501", "64999")


def test_unknown_country_and_asn_are_no_evidence() -> None:
    baseline = Baseline(learn_for_seconds=10.0)
    baseline.observe("cam-1", "GB", None, None, 0.0)
    assert baseline.observe("cam-1", "ZZ", None, None, 20.0) == []
    assert baseline.known("cam-1", "country") == ("GB",)


def test_a_device_first_seen_later_learns_its_own_period() -> None:
    baseline = Baseline(learn_for_seconds=WEEK)
    baseline.start(0.0)
    baseline.observe("cam-1", "GB", None, None, 1.0)
    assert baseline.observe("nvr-new", "CN", None, None, 10 * DAY) == []
    assert baseline.learning("nvr-new", 10 * DAY + 1) and not baseline.learning("cam-1", 10 * DAY)
    assert baseline.observe("nvr-new", "US", None, None, 17 * DAY + 1) == ["country"]
    assert baseline.observe("cam-1", "US", None, None, 10 * DAY) == ["country"]


def test_start_before_any_traffic_holds_learning_back() -> None:
    baseline = Baseline(learn_for_seconds=100.0)
    baseline.start(1000.0)
    baseline.start(5000.0)  # a later start (e.g. after restore) does not move it
    assert baseline.started == 1000.0
    assert baseline.observe("cam-1", "GB", None, None, 500.0) == []
    assert baseline.learning("cam-1", 1099.0) and not baseline.learning("cam-1", 1100.0)


def test_values_per_device_and_devices_are_bounded() -> None:
    baseline = Baseline(learn_for_seconds=0.0, max_values=2, max_devices=2)
    for n, country in enumerate(("AA", "BB", "CC")):
        baseline.observe("cam-1", country, None, None, float(n))
    assert baseline.known("cam-1", "country") == ("BB", "CC")
    baseline.observe("cam-2", "GB", None, None, 5.0)
    baseline.observe("cam-3", "GB", None, None, 6.0)
    assert baseline.known("cam-1", "country") == (), "least recently seen device forgotten"


def test_state_round_trip_keeps_learning_clock_and_values() -> None:
    baseline = Baseline(learn_for_seconds=WEEK)
    baseline.start(0.0)
    baseline.observe("cam-1", "GB", 64500, "hik-connect", 1.0)
    started, changes = baseline.drain_changes()
    assert started == 0.0 and set(changes) == {"cam-1"}
    assert baseline.drain_changes() == (0.0, {})

    restored = Baseline(learn_for_seconds=WEEK)
    restored.import_state(json.loads(json.dumps({"started": started, "devices": changes})))
    assert restored.export_state() == baseline.export_state()
    assert restored.observe("cam-1", "GB", 64500, "hik-connect", WEEK + 5) == []
    assert restored.observe("cam-1", "FR", 64500, "hik-connect", WEEK + 6) == ["country"]
    assert restored.drain_changes()[1]["cam-1"]["country"] == ["GB", "FR"]  # type: ignore[index]


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError):
        Baseline(learn_for_seconds=-1.0)
    with pytest.raises(ValueError):
        Baseline(learn_for_seconds=1.0, max_values=0)
