"""The state file (issue 6): round trip, migrations, corrupt files moved aside, WAL, concurrent reader."""

from __future__ import annotations

import ipaddress
import logging
import sqlite3
from pathlib import Path

import pytest

from egresswatch.baseline import Baseline
from egresswatch.bindings import BindingTable
from egresswatch.discovery.evidence import Discovery
from egresswatch.state import MIGRATIONS, StateStore

CAMERA = bytes.fromhex("4419b6000011")
LAPTOP = bytes.fromhex("0242ac110002")
IP = ipaddress.ip_address("10.20.0.11").packed


def filled_stages() -> tuple[BindingTable, Discovery, Baseline]:
    bindings = BindingTable()
    bindings.learn(IP, CAMERA, 100.0, "dhcp")
    bindings.learn(IP, LAPTOP, 200.0, "dhcp")
    bindings.release(IP, LAPTOP, 300.0)
    discovery = Discovery()
    discovery.observe_oui(CAMERA, "hikvision", 100.0, IP)
    discovery.observe_cloud(CAMERA, IP, "hikvision", "Hik-Connect", 150.0)
    baseline = Baseline(learn_for_seconds=50.0)
    baseline.observe("cam-1", "GB", 64500, "hik-connect", 100.0)
    return bindings, discovery, baseline


def save(store: StateStore, bindings: BindingTable, discovery: Discovery, baseline: Baseline) -> None:
    store.stage_bindings(bindings.drain_changes())
    store.stage_devices(discovery.drain_changes())
    store.stage_baselines(*baseline.drain_changes())
    store.stage_alert("cam-1", "203.0.113.9", "footage", 250.0)


def test_round_trip_restores_every_stage(tmp_path: Path) -> None:
    bindings, discovery, baseline = filled_stages()
    store = StateStore(tmp_path / "state.db")
    save(store, bindings, discovery, baseline)
    assert store.load().bindings == [], "staged is not saved until flushed"
    assert store.flush() == 4
    assert store.flush() == 0
    store.close()

    saved = StateStore(tmp_path / "state.db").load()
    again_bindings, again_discovery, again_baseline = (
        BindingTable(),
        Discovery(),
        Baseline(learn_for_seconds=50.0),
    )
    again_bindings.restore(saved.bindings)
    again_discovery.restore(saved.devices)
    again_baseline.import_state(saved.baselines)
    assert again_bindings.history(IP) == bindings.history(IP)
    assert again_bindings.mac_at(IP, 250.0) == LAPTOP and again_bindings.mac_at(IP, 301.0) is None
    assert again_discovery.devices() == discovery.devices()
    assert again_baseline.export_state() == baseline.export_state()
    assert saved.alerts == {("cam-1", "203.0.113.9", "footage"): 250.0}


def test_later_changes_replace_rows_and_forgotten_ones_go(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.db")
    bindings = BindingTable(max_entries=1)
    bindings.learn(IP, CAMERA, 1.0, "arp")
    store.stage_bindings(bindings.drain_changes())
    store.flush()
    other = ipaddress.ip_address("10.20.0.12").packed
    bindings.learn(other, LAPTOP, 2.0, "arp")  # evicts IP
    store.stage_bindings(bindings.drain_changes())
    store.stage_alert("cam-1", "203.0.113.9", "footage", 10.0)
    store.stage_alert("cam-1", "203.0.113.9", "footage", 20.0)
    store.stage_alert("cam-2", "198.51.100.1", "telemetry", 5.0)
    store.flush()
    store.forget_alerts_before(8.0)
    store.flush()
    saved = store.load()
    assert [ip for ip, _ in saved.bindings] == [other]
    assert saved.alerts == {("cam-1", "203.0.113.9", "footage"): 20.0}


def test_wal_mode_and_schema_version(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.db")
    assert store.schema_version == MIGRATIONS[-1][0] == 1
    with sqlite3.connect(tmp_path / "state.db") as reader:
        assert reader.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_reader_never_blocks_the_writer(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.db")
    store.stage_alert("cam-1", "203.0.113.9", "footage", 1.0)
    store.flush()
    reader = sqlite3.connect(tmp_path / "state.db", isolation_level=None, timeout=0)
    reader.execute("BEGIN")
    assert reader.execute("SELECT count(*) FROM alerts").fetchone()[0] == 1
    store.stage_alert("cam-2", "203.0.113.10", "footage", 2.0)
    assert store.flush() == 1, "the write commits while the reader holds its snapshot"
    assert reader.execute("SELECT count(*) FROM alerts").fetchone()[0] == 1, "the reader's snapshot is stable"
    reader.execute("COMMIT")
    assert reader.execute("SELECT count(*) FROM alerts").fetchone()[0] == 2
    reader.close()


V2 = (2, ("ALTER TABLE alerts ADD COLUMN severity TEXT",))


def test_migrations_run_in_order_from_an_older_version(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = StateStore(path)
    store.stage_alert("cam-1", "203.0.113.9", "footage", 1.0)
    store.close()
    upgraded = StateStore(path, migrations=(*MIGRATIONS, V2))
    assert upgraded.schema_version == 2
    assert upgraded.moved_aside is None
    assert upgraded.load().alerts == {("cam-1", "203.0.113.9", "footage"): 1.0}, "data survives the migration"


def test_a_file_from_before_any_schema_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    sqlite3.connect(path).close()  # an empty database: version 0
    assert StateStore(path).schema_version == 1


@pytest.mark.parametrize(
    "content",
    [b"this is not a database at all" * 100, b"SQLite format 3\x00" + bytes(range(256)) * 8],
    ids=["garbage", "damaged-header"],
)
def test_a_corrupt_file_is_moved_aside_and_a_fresh_one_started(
    tmp_path: Path, content: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(content)
    with caplog.at_level(logging.ERROR, logger="egresswatch.state"):
        store = StateStore(path)
    assert store.moved_aside is not None and store.moved_aside.name.startswith("state.db.corrupt-")
    assert store.moved_aside.read_bytes() == content
    assert any("moved to" in record.getMessage() for record in caplog.records)
    store.stage_alert("cam-1", "203.0.113.9", "footage", 1.0)
    store.flush()
    assert StateStore(path).load().alerts == {("cam-1", "203.0.113.9", "footage"): 1.0}


def test_a_file_from_a_newer_egresswatch_is_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    StateStore(path, migrations=(*MIGRATIONS, V2)).close()
    store = StateStore(path)
    assert store.moved_aside is not None and store.schema_version == 1


def test_an_unusable_location_keeps_state_in_memory(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "a-directory"
    path.mkdir()
    with caplog.at_level(logging.ERROR, logger="egresswatch.state"):
        store = StateStore(path)
    store.stage_alert("cam-1", "203.0.113.9", "footage", 1.0)
    assert store.flush() == 1
    assert store.load().alerts == {("cam-1", "203.0.113.9", "footage"): 1.0}
    assert any("in memory" in record.getMessage() for record in caplog.records)
    assert path.is_dir(), "a directory is never moved aside"


def test_missing_parent_directories_are_created(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "var" / "lib" / "egresswatch" / "state.db")
    assert store.moved_aside is None and (tmp_path / "var" / "lib" / "egresswatch" / "state.db").is_file()


def test_a_failed_write_is_kept_for_the_next_flush(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.db", busy_timeout=0)
    blocker = sqlite3.connect(tmp_path / "state.db", isolation_level=None, timeout=0)
    blocker.execute("BEGIN IMMEDIATE")  # another writer holds the lock
    store.stage_alert("cam-1", "203.0.113.9", "footage", 1.0)
    assert store.flush() == 0
    blocker.execute("ROLLBACK")
    store.stage_alert("cam-2", "203.0.113.10", "footage", 2.0)
    assert store.flush() == 2
    assert len(store.load().alerts) == 2
