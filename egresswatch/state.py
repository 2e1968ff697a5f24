"""What survives a restart: learned bindings, discovered devices, baselines, alert de-duplication.

One SQLite file (`state.path`) in WAL mode, so a reader (an operator's `sqlite3`, a backup) never
blocks the writer. The daemon's hot path only stages changes in memory (`stage_*`, a dict update
under a lock); `flush()` writes everything staged in one transaction, called every few seconds
from a timer and at shutdown. Staged rows are keyed, so a value that changes a thousand times
between flushes is written once.

The schema has a version (`schema_version`) and ordered migrations: opening a file runs every
migration above its version, each in its own transaction. A state file that is corrupt,
unreadable, or from a newer egresswatch is moved aside (`<path>.corrupt-<unix time>`) with an
error log line, and a fresh one is started: monitoring never stops because of its state.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("egresswatch.state")

Migration = tuple[int, tuple[str, ...]]
MIGRATIONS: tuple[Migration, ...] = (
    (
        1,
        (
            "CREATE TABLE bindings (ip BLOB NOT NULL, since REAL NOT NULL, mac BLOB, source TEXT NOT NULL,"
            " last_seen REAL NOT NULL, PRIMARY KEY (ip, since))",
            "CREATE TABLE devices (mac BLOB PRIMARY KEY, data TEXT NOT NULL)",
            "CREATE TABLE baselines (device TEXT PRIMARY KEY, data TEXT NOT NULL)",
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
            "CREATE TABLE alerts (device TEXT NOT NULL, destination TEXT NOT NULL, category TEXT NOT NULL,"
            " last_alert REAL NOT NULL, PRIMARY KEY (device, destination, category))",
        ),
    ),
)
"""(version, statements) in order; append a new version, never edit a released one."""

BindingRow = tuple[float, bytes | None, str, float]
"""(since, mac or None when released, source, last seen): a `bindings.Holding` as plain data."""
AlertKey = tuple[str, str, str]
"""(device, destination ip, category)."""


class _Unusable(Exception):
    """The file cannot serve as our state: the reason, for the log line."""


@dataclass(slots=True)
class SavedState:
    """Everything `load()` found, as plain data for the stages to restore."""

    bindings: list[tuple[bytes, BindingRow]] = field(default_factory=list)
    """(ip, holding) oldest first per IP: for `BindingTable.restore`."""
    devices: list[dict[str, Any]] = field(default_factory=list)
    """Evidence dicts: for `Discovery.restore`."""
    baselines: dict[str, Any] = field(default_factory=dict)
    """{"started": ts, "devices": {...}}: for `Baseline.import_state`."""
    alerts: dict[AlertKey, float] = field(default_factory=dict)
    """(device, destination, category) -> last alert time."""


@dataclass(slots=True)
class _Pending:
    bindings: dict[bytes, Sequence[BindingRow]] = field(default_factory=dict)
    devices: dict[bytes, dict[str, Any] | None] = field(default_factory=dict)
    baselines: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    baseline_started: float | None = None
    alerts: dict[AlertKey, float] = field(default_factory=dict)
    forget_alerts_before: float | None = None

    def merge(self, newer: _Pending) -> None:
        """Put back a batch that failed to write, under anything staged since."""
        newer.bindings = {**self.bindings, **newer.bindings}
        newer.devices = {**self.devices, **newer.devices}
        newer.baselines = {**self.baselines, **newer.baselines}
        if newer.baseline_started is None:
            newer.baseline_started = self.baseline_started
        newer.alerts = {**self.alerts, **newer.alerts}
        if newer.forget_alerts_before is None:
            newer.forget_alerts_before = self.forget_alerts_before

    def __bool__(self) -> bool:
        return bool(
            self.bindings
            or self.devices
            or self.baselines
            or self.alerts
            or self.baseline_started is not None
            or self.forget_alerts_before is not None
        )


class StateStore:
    """The state file: staged changes, batched writes, and a load of everything saved."""

    def __init__(
        self, path: str | Path, migrations: Sequence[Migration] = MIGRATIONS, busy_timeout: float = 5.0
    ) -> None:
        self.path = Path(path)
        self._busy_timeout = busy_timeout
        """Seconds a write waits for another writer (an operator's sqlite3 shell) before it fails."""
        self._migrations = tuple(migrations)
        self._lock = threading.Lock()
        self._pending = _Pending()
        self.moved_aside: Path | None = None
        """Where a corrupt file was moved to, if one was."""
        self._db = self._open()

    @property
    def schema_version(self) -> int:
        return self._db.execute("SELECT version FROM schema_version").fetchone()[0]

    # ------------------------------------------------------------------ opening
    def _open(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return self._connect()
        except (OSError, _Unusable, sqlite3.Error) as error:
            reason = str(error)
        self.moved_aside = self._move_aside(reason)
        try:
            return self._connect()
        except (_Unusable, sqlite3.Error) as error:
            log.error("state file %s cannot be used (%s); keeping state in memory only", self.path, error)
            return self._connect(memory=True)

    def _connect(self, memory: bool = False) -> sqlite3.Connection:
        target = ":memory:" if memory else self.path
        db = sqlite3.connect(
            target, timeout=self._busy_timeout, check_same_thread=False, isolation_level=None
        )
        try:
            if not memory:
                mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                if mode.lower() != "wal":
                    raise _Unusable(f"journal mode {mode}, not wal")
                check = db.execute("PRAGMA quick_check").fetchone()[0]
                if check != "ok":
                    raise _Unusable(f"integrity check: {check}")
            # WAL with NORMAL: no fsync per commit; a power cut loses at most the last flushes.
            db.execute("PRAGMA synchronous=NORMAL")
            self._migrate(db)
        except BaseException:
            db.close()
            raise
        return db

    def _migrate(self, db: sqlite3.Connection) -> None:
        db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = db.execute("SELECT version FROM schema_version").fetchone()
        if row is None:
            db.execute("INSERT INTO schema_version VALUES (0)")
        version = row[0] if row is not None else 0
        newest = self._migrations[-1][0] if self._migrations else 0
        if version > newest:
            raise _Unusable(f"schema version {version} is newer than this egresswatch ({newest})")
        for target, statements in self._migrations:
            if target <= version:
                continue
            db.execute("BEGIN IMMEDIATE")
            try:
                for statement in statements:
                    db.execute(statement)
                db.execute("UPDATE schema_version SET version = ?", (target,))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            log.info("state file %s migrated to schema version %d", self.path, target)

    def _move_aside(self, reason: str) -> Path | None:
        aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
        if not self.path.is_file():
            log.error(
                "state file %s cannot be opened (%s) and is not a file to move aside", self.path, reason
            )
            return None
        try:
            os.replace(self.path, aside)
            for suffix in ("-wal", "-shm"):
                companion = self.path.with_name(self.path.name + suffix)
                if companion.exists():
                    os.replace(companion, aside.with_name(aside.name + suffix))
        except OSError as error:
            log.error(
                "state file %s is unusable (%s) and could not be moved aside: %s", self.path, reason, error
            )
            return None
        log.error(
            "state file %s is unusable (%s): moved to %s, starting a fresh one", self.path, reason, aside
        )
        return aside

    # ------------------------------------------------------------------ staging (hot path side)
    def stage_bindings(self, changes: Mapping[bytes, Sequence[BindingRow]]) -> None:
        """IP -> its whole holding history (empty: forget the IP), as `BindingTable.drain_changes` gives."""
        with self._lock:
            self._pending.bindings.update(changes)

    def stage_devices(self, changes: Mapping[bytes, dict[str, Any] | None]) -> None:
        """MAC -> evidence data (None: forget), as `Discovery.drain_changes` gives."""
        with self._lock:
            self._pending.devices.update(changes)

    def stage_baselines(self, started: float | None, changes: Mapping[str, dict[str, Any] | None]) -> None:
        """Learning start and device -> baseline data (None: forget), as `Baseline.drain_changes` gives."""
        with self._lock:
            self._pending.baselines.update(changes)
            if started is not None:
                self._pending.baseline_started = started

    def stage_alert(self, device: str, destination: str, category: str, ts: float) -> None:
        """An alert was raised: remember when, so a restart does not raise it again."""
        with self._lock:
            self._pending.alerts[(device, destination, category)] = ts

    def forget_alerts_before(self, ts: float) -> None:
        """Drop de-duplication entries older than `ts` (past the window they no longer suppress)."""
        with self._lock:
            self._pending.forget_alerts_before = ts

    # ------------------------------------------------------------------ writing
    def flush(self) -> int:
        """Write everything staged in one transaction; the number of keys written.

        A failed write is logged and kept staged for the next flush, never raised.
        """
        with self._lock:
            batch, self._pending = self._pending, _Pending()
        if not batch:
            return 0
        try:
            return self._write(batch)
        except sqlite3.Error as error:
            log.error(
                "state file %s: write failed (%s); keeping the changes for the next flush", self.path, error
            )
            with self._lock:
                batch.merge(self._pending)
            return 0

    def _write(self, batch: _Pending) -> int:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            for ip, rows in batch.bindings.items():
                db.execute("DELETE FROM bindings WHERE ip = ?", (ip,))
                db.executemany(
                    "INSERT OR REPLACE INTO bindings (ip, since, mac, source, last_seen)"
                    " VALUES (?, ?, ?, ?, ?)",
                    [(ip, since, mac, source, last_seen) for since, mac, source, last_seen in rows],
                )
            for mac, data in batch.devices.items():
                if data is None:
                    db.execute("DELETE FROM devices WHERE mac = ?", (mac,))
                else:
                    db.execute(
                        "INSERT OR REPLACE INTO devices (mac, data) VALUES (?, ?)", (mac, json.dumps(data))
                    )
            for device, data in batch.baselines.items():
                if data is None:
                    db.execute("DELETE FROM baselines WHERE device = ?", (device,))
                else:
                    db.execute(
                        "INSERT OR REPLACE INTO baselines (device, data) VALUES (?, ?)",
                        (device, json.dumps(data)),
                    )
            if batch.baseline_started is not None:
                db.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('baseline_started', ?)",
                    (repr(batch.baseline_started),),
                )
            if batch.forget_alerts_before is not None:
                db.execute("DELETE FROM alerts WHERE last_alert < ?", (batch.forget_alerts_before,))
            db.executemany(
                "INSERT OR REPLACE INTO alerts (device, destination, category, last_alert)"
                " VALUES (?, ?, ?, ?)",
                [(*key, ts) for key, ts in batch.alerts.items()],
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return len(batch.bindings) + len(batch.devices) + len(batch.baselines) + len(batch.alerts)

    # ------------------------------------------------------------------ reading
    def load(self) -> SavedState:
        """Everything saved (not what is only staged). An unreadable row is skipped with a warning."""
        state = SavedState()
        db = self._db
        for ip, since, mac, source, last_seen in db.execute(
            "SELECT ip, since, mac, source, last_seen FROM bindings ORDER BY ip, since"
        ):
            state.bindings.append(
                (bytes(ip), (since, None if mac is None else bytes(mac), source, last_seen))
            )
        state.devices = [
            data for data in self._json_rows("SELECT data FROM devices") if isinstance(data, dict)
        ]
        devices = {}
        for device, text in db.execute("SELECT device, data FROM baselines"):
            data = _json(text)
            if isinstance(data, dict):
                devices[device] = data
        started = db.execute("SELECT value FROM meta WHERE key = 'baseline_started'").fetchone()
        state.baselines = {"started": float(started[0]) if started else None, "devices": devices}
        state.alerts = {
            (device, destination, category): last
            for device, destination, category, last in db.execute(
                "SELECT device, destination, category, last_alert FROM alerts"
            )
        }
        return state

    def _json_rows(self, query: str) -> list[Any]:
        return [_json(text) for (text,) in self._db.execute(query)]

    def close(self) -> None:
        """Flush what is staged and close the file."""
        self.flush()
        self._db.close()


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        log.warning("state file: skipping an unreadable row")
        return None
