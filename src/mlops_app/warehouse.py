"""The warehouse: every read and write of the DuckDB file goes through :class:`Warehouse`.

Pages, the CLI, jobs and notebooks never call ``duckdb.connect`` themselves; they ask a
``Warehouse`` for a unit of work (``read()`` or ``transaction()``) or use its convenience
methods (``query``, ``execute``, ``append_frame``). See ARCHITECTURE.md, "The warehouse".
"""

from __future__ import annotations

import json
import os
import re
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import duckdb
import filelock
import pandas

from mlops_app.errors import ConfigError, InvalidNameError, MlopsError, WarehouseBusyError

if TYPE_CHECKING:
    from mlops_app.config import Settings

__all__ = [
    "IDENTIFIER_PATTERN",
    "IDENTIFIER_RULE",
    "MIGRATIONS",
    "Warehouse",
    "quote_identifier",
]

IDENTIFIER_PATTERN = re.compile(r"[a-z_][a-z0-9_]{0,62}")
IDENTIFIER_RULE = (
    "a lowercase letter or underscore, then up to 62 lowercase letters, digits or underscores"
)

LOCK_SUFFIX = ".lock"
HOLDER_SUFFIX = ".lock.holder"
WAITING_SUFFIX = ".lock.waiting"
GENERATION_SUFFIX = ".generation"

_TRANSACTION_ATTEMPTS = 3
# Waiters poll the file lock this often; the pause a long write leaves between chunks is a
# few poll intervals long, so a waiting process (the dashboard) reliably wins the gap.
_POLL_SECONDS = 0.01
_TURN_PAUSE_SECONDS = 0.03
# A waiter touches the ".lock.waiting" marker on every poll; a marker younger than this
# means someone is queued. Age-based so a waiter killed mid-wait costs one pause at most.
_WAITING_MARKER_FRESH_SECONDS = 0.25
_CHUNK_VIEW = "_mlops_append_chunk"

_T = TypeVar("_T")


def quote_identifier(name: str) -> str:
    """Validate a table or column name and return it double-quoted for SQL.

    Values always travel as parameters; identifiers cannot, so every dynamic identifier
    goes through this one function.

    Raises:
        InvalidNameError: ``name`` is not a lowercase identifier of at most 63 characters.
    """
    if not isinstance(name, str) or IDENTIFIER_PATTERN.fullmatch(name) is None:
        raise InvalidNameError(
            f"{name!r} is not a valid table or column name: use {IDENTIFIER_RULE} "
            "(for example `apple_batches`)."
        )
    return f'"{name}"'


# --- Schema -----------------------------------------------------------------------------
# Numbered migrations, applied in order, each in its own transaction together with its row
# in schema_migrations. To change the schema, append a new entry; never edit an applied one.
# No foreign keys: DuckDB refuses to update or delete a referenced parent row, which would
# block ordinary clean-ups; modules check references themselves.

_MIGRATION_1_CORE_TABLES = """
CREATE TABLE datasets (
    name VARCHAR PRIMARY KEY,
    description VARCHAR,
    owner VARCHAR,
    source VARCHAR,
    schema_json JSON,
    target VARCHAR,
    id_column VARCHAR,
    time_column VARCHAR,
    freshness_hours DOUBLE,
    row_count BIGINT,
    first_event_at TIMESTAMPTZ,
    last_event_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL DEFAULT current_timestamp,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT current_timestamp
);
CREATE TABLE batches (
    batch_id VARCHAR PRIMARY KEY,
    dataset VARCHAR NOT NULL,
    received_at TIMESTAMPTZ NOT NULL DEFAULT current_timestamp,
    source_name VARCHAR,
    content_sha256 VARCHAR,
    row_count BIGINT,
    accepted_rows BIGINT,
    quarantined_rows BIGINT,
    status VARCHAR,
    reason VARCHAR
);
CREATE TABLE quality_results (
    batch_id VARCHAR NOT NULL,
    dataset VARCHAR NOT NULL,
    check_name VARCHAR NOT NULL,
    check_kind VARCHAR,
    column_name VARCHAR,
    severity VARCHAR,
    status VARCHAR,
    failed_rows BIGINT,
    total_rows BIGINT,
    detail JSON,
    checked_at TIMESTAMPTZ NOT NULL DEFAULT current_timestamp
);
CREATE TABLE experiments (
    name VARCHAR PRIMARY KEY,
    description VARCHAR,
    created_at TIMESTAMPTZ NOT NULL DEFAULT current_timestamp
);
CREATE TABLE runs (
    run_id VARCHAR PRIMARY KEY,
    experiment VARCHAR NOT NULL,
    name VARCHAR,
    status VARCHAR,
    started_at TIMESTAMPTZ,
    ended_at TIMESTAMPTZ,
    author VARCHAR,
    git_commit VARCHAR,
    dataset_fingerprint VARCHAR,
    error VARCHAR
);
CREATE TABLE run_params (
    run_id VARCHAR NOT NULL,
    key VARCHAR NOT NULL,
    value VARCHAR,
    PRIMARY KEY (run_id, key)
);
CREATE TABLE run_metrics (
    run_id VARCHAR NOT NULL,
    key VARCHAR NOT NULL,
    value DOUBLE,
    step BIGINT,
    logged_at TIMESTAMPTZ NOT NULL DEFAULT current_timestamp
);
CREATE TABLE run_tags (
    run_id VARCHAR NOT NULL,
    key VARCHAR NOT NULL,
    value VARCHAR,
    PRIMARY KEY (run_id, key)
);
CREATE TABLE predictions (
    prediction_id VARCHAR PRIMARY KEY,
    model VARCHAR NOT NULL,
    version INTEGER,
    entity_id VARCHAR,
    event_time TIMESTAMPTZ,
    scored_at TIMESTAMPTZ NOT NULL DEFAULT current_timestamp,
    features JSON,
    prediction VARCHAR,
    score DOUBLE,
    batch_id VARCHAR
);
CREATE TABLE labels (
    entity_id VARCHAR NOT NULL,
    model VARCHAR NOT NULL,
    label VARCHAR,
    labelled_at TIMESTAMPTZ,
    received_at TIMESTAMPTZ NOT NULL DEFAULT current_timestamp
);
CREATE TABLE drift_results (
    model VARCHAR NOT NULL,
    version INTEGER,
    window_start TIMESTAMPTZ,
    window_end TIMESTAMPTZ,
    feature VARCHAR,
    method VARCHAR,
    score DOUBLE,
    threshold DOUBLE,
    drifted BOOLEAN,
    computed_at TIMESTAMPTZ NOT NULL DEFAULT current_timestamp
);
CREATE TABLE performance_windows (
    model VARCHAR NOT NULL,
    version INTEGER,
    window_start TIMESTAMPTZ,
    window_end TIMESTAMPTZ,
    metric VARCHAR NOT NULL,
    value DOUBLE,
    labelled_rows BIGINT,
    computed_at TIMESTAMPTZ NOT NULL DEFAULT current_timestamp
);
CREATE TABLE alerts (
    alert_id VARCHAR PRIMARY KEY,
    model VARCHAR,
    kind VARCHAR NOT NULL,
    severity VARCHAR,
    status VARCHAR,
    message VARCHAR,
    dedup_key VARCHAR,
    opened_at TIMESTAMPTZ NOT NULL DEFAULT current_timestamp,
    acknowledged_by VARCHAR,
    acknowledged_at TIMESTAMPTZ,
    payload JSON
);
"""

MIGRATIONS: list[tuple[int, str, str]] = [
    (1, "core tables", _MIGRATION_1_CORE_TABLES),
    # Data quality (issue 3): the plain-language sentence and the check's description travel
    # with each result, so the page needs no checks file to explain an old result; a batch
    # records how many rows passed with a warning and who sent it.
    (
        2,
        "data quality: result messages, warned rows, ingested by",
        """
        ALTER TABLE quality_results ADD COLUMN message VARCHAR;
        ALTER TABLE quality_results ADD COLUMN description VARCHAR;
        ALTER TABLE batches ADD COLUMN warned_rows BIGINT;
        ALTER TABLE batches ADD COLUMN ingested_by VARCHAR;
        """,
    ),
    # Feature store (issue 4): the catalogue of entities and feature definitions. Values
    # live in one table per group of features computed over the same rows, created by
    # features.materialize() like the ds_ tables (fv_<entity>_<hash>: entity_key,
    # value_time, one column per feature), so they are not part of the schema.
    (
        3,
        "feature store: entities and feature definitions",
        """
        CREATE TABLE feature_entities (
            name VARCHAR PRIMARY KEY,
            key_column VARCHAR NOT NULL,
            description VARCHAR,
            source_file VARCHAR,
            applied_at TIMESTAMPTZ NOT NULL DEFAULT current_timestamp,
            applied_by VARCHAR
        );
        CREATE TABLE feature_definitions (
            name VARCHAR PRIMARY KEY,
            entity VARCHAR NOT NULL,
            kind VARCHAR NOT NULL,
            dataset VARCHAR NOT NULL,
            value_type VARCHAR NOT NULL,
            aggregation VARCHAR,
            window_text VARCHAR,
            window_seconds BIGINT,
            expression VARCHAR NOT NULL,
            entity_column VARCHAR NOT NULL,
            available_at_column VARCHAR NOT NULL,
            columns_used VARCHAR[],
            description VARCHAR,
            owner VARCHAR,
            tags VARCHAR[],
            freshness_hours DOUBLE,
            definition JSON NOT NULL,
            source_file VARCHAR,
            value_table VARCHAR NOT NULL,
            applied_at TIMESTAMPTZ NOT NULL DEFAULT current_timestamp,
            applied_by VARCHAR,
            materialized_at TIMESTAMPTZ,
            last_value_at TIMESTAMPTZ,
            value_rows BIGINT
        );
        """,
    ),
    # Experiments (issue 5): structured results of a run (holdout and per-slice metrics,
    # confusion matrix, calibration, feature importance) stored as JSON, so the page shows
    # them without recomputing; one payload per run and kind.
    (
        4,
        "experiments: run results",
        """
        CREATE TABLE run_results (
            run_id VARCHAR NOT NULL,
            kind VARCHAR NOT NULL,
            payload JSON,
            logged_at TIMESTAMPTZ NOT NULL DEFAULT current_timestamp,
            PRIMARY KEY (run_id, kind)
        );
        """,
    ),
    # Live monitoring (issue 7). A window is complete when its monitor_windows row exists;
    # the primary key makes that happen exactly once, and the window's drift, performance
    # and KPI rows are written in the same transaction, so a killed run leaves no half
    # window. KPI rows carry their label and targets so an old result explains itself.
    # Labels whose id matches no logged prediction are kept aside in labels_unmatched.
    # Alerts gain what de-duplication, the webhook outbox and retraining need.
    (
        5,
        "monitoring: windows, KPIs, unmatched labels, alert follow-up",
        """
        CREATE TABLE monitor_windows (
            model VARCHAR NOT NULL,
            window_start TIMESTAMPTZ NOT NULL,
            window_end TIMESTAMPTZ NOT NULL,
            version INTEGER,
            status VARCHAR NOT NULL,
            summary VARCHAR,
            rows BIGINT NOT NULL,
            sampled_rows BIGINT,
            reference_rows BIGINT,
            labelled_rows BIGINT,
            drift_share DOUBLE,
            drifted_features INTEGER,
            checked_features INTEGER,
            prediction_drift_score DOUBLE,
            prediction_drifted BOOLEAN,
            mean_score DOUBLE,
            positive_rate DOUBLE,
            report_path VARCHAR,
            computed_at TIMESTAMPTZ NOT NULL,
            performance_computed_at TIMESTAMPTZ,
            seconds DOUBLE,
            PRIMARY KEY (model, window_start)
        );
        CREATE TABLE model_kpis (
            model VARCHAR NOT NULL,
            window_start TIMESTAMPTZ NOT NULL,
            window_end TIMESTAMPTZ NOT NULL,
            kpi VARCHAR NOT NULL,
            kind VARCHAR NOT NULL,
            label VARCHAR,
            period_start TIMESTAMPTZ,
            value DOUBLE,
            target_min DOUBLE,
            target_max DOUBLE,
            met BOOLEAN,
            labelled_rows BIGINT,
            computed_at TIMESTAMPTZ NOT NULL,
            PRIMARY KEY (model, window_start, kpi)
        );
        CREATE TABLE labels_unmatched (
            model VARCHAR NOT NULL,
            entity_id VARCHAR,
            label VARCHAR,
            labelled_at TIMESTAMPTZ,
            received_at TIMESTAMPTZ,
            recorded_at TIMESTAMPTZ NOT NULL,
            batch_id VARCHAR,
            source_name VARCHAR
        );
        ALTER TABLE labels ADD COLUMN recorded_at TIMESTAMPTZ;
        ALTER TABLE labels ADD COLUMN batch_id VARCHAR;
        ALTER TABLE drift_results ADD COLUMN role VARCHAR;
        ALTER TABLE drift_results ADD COLUMN column_type VARCHAR;
        ALTER TABLE drift_results ADD COLUMN reference_rows BIGINT;
        ALTER TABLE drift_results ADD COLUMN current_rows BIGINT;
        ALTER TABLE drift_results ADD COLUMN distribution JSON;
        ALTER TABLE alerts ADD COLUMN window_start TIMESTAMPTZ;
        ALTER TABLE alerts ADD COLUMN window_end TIMESTAMPTZ;
        ALTER TABLE alerts ADD COLUMN last_seen_at TIMESTAMPTZ;
        ALTER TABLE alerts ADD COLUMN occurrences INTEGER;
        ALTER TABLE alerts ADD COLUMN clear_windows INTEGER;
        ALTER TABLE alerts ADD COLUMN link VARCHAR;
        ALTER TABLE alerts ADD COLUMN resolved_at TIMESTAMPTZ;
        ALTER TABLE alerts ADD COLUMN notified_at TIMESTAMPTZ;
        ALTER TABLE alerts ADD COLUMN webhook_message_id VARCHAR;
        ALTER TABLE alerts ADD COLUMN retrain_status VARCHAR;
        ALTER TABLE alerts ADD COLUMN retrain_detail VARCHAR;
        ALTER TABLE alerts ADD COLUMN retrain_updated_at TIMESTAMPTZ;
        ALTER TABLE alerts ADD COLUMN challenger_version INTEGER;
        ALTER TABLE alerts ADD COLUMN promotion_request_id VARCHAR;
        """,
    ),
]

_SCHEMA_MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name VARCHAR NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL
)
"""


# --- Process-wide state ----------------------------------------------------------------


@dataclass
class _PathLocks:
    """The in-process and cross-process locks of one database file, shared by every Warehouse on it."""

    thread_lock: threading.RLock
    file_lock: filelock.BaseFileLock
    waiting_threads: int = 0


@dataclass
class _Session:
    """The open connection of the unit of work a thread is inside, so nested units reuse it."""

    connection: duckdb.DuckDBPyConnection
    in_transaction: bool = False


_REGISTRY_LOCK = threading.Lock()
_PATH_LOCKS: dict[str, _PathLocks] = {}
# (path, device, inode) of files whose migrations this process has checked; keyed by inode
# too so a warehouse deleted and re-created under the same name is migrated again.
_MIGRATED: set[tuple[str, int, int]] = set()
_THREAD_STATE = threading.local()


def _locks_for(key: str) -> _PathLocks:
    with _REGISTRY_LOCK:
        locks = _PATH_LOCKS.get(key)
        if locks is None:
            # thread_local=False: the RLock already admits one thread at a time, and the
            # file lock must be released by whichever thread acquired it.
            locks = _PathLocks(threading.RLock(), filelock.FileLock(key + LOCK_SUFFIX, thread_local=False))
            _PATH_LOCKS[key] = locks
        return locks


def _thread_sessions() -> dict[str, _Session]:
    sessions = getattr(_THREAD_STATE, "sessions", None)
    if sessions is None:
        sessions = _THREAD_STATE.sessions = {}
    return sessions


def _write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to a temp file beside ``path`` and rename it over, so readers see old or new."""
    temporary = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def _format_seconds(seconds: float) -> str:
    return f"{seconds:.1f}" if seconds < 10 else f"{seconds:.0f}"


class Warehouse:
    """Owns all access to the DuckDB warehouse file.

    Why units of work: a DuckDB process that has the file open read-write locks every other
    process out (read-only ones too), and the CLI, jobs, notebooks and the dashboard all
    share the file. So nobody keeps it open while idle: ``read()`` and ``transaction()``
    open the file, do one piece of work and close it again (about 40 ms).

    Why the lock: DuckDB does not wait for another process's lock, it fails immediately.
    A lock file beside the database (``<db>.lock``) makes a second process queue for its
    turn instead, up to ``lock_timeout`` seconds, after which :class:`WarehouseBusyError`
    names the process holding it (recorded in ``<db>.lock.holder``). Within one process a
    re-entrant thread lock per file serialises threads, because a DuckDB connection must not
    be shared across threads. A unit of work nested inside another in the same thread
    reuses the outer connection instead of waiting on itself.

    Every committed write bumps a generation stamp in ``<db>.generation``; readers that
    cache results key them on :meth:`generation`, which never opens the database.

    Args:
        path: the DuckDB file; it and its folder are created on first use.
        lock_timeout: seconds to wait for another process or thread before giving up.
        chunk_rows: default rows per transaction for :meth:`append_frame`.
    """

    def __init__(self, path: Path | str, *, lock_timeout: float = 60.0, chunk_rows: int = 100_000) -> None:
        if chunk_rows < 1:
            raise ConfigError(f"write_chunk_rows must be at least 1, got {chunk_rows}.")
        if lock_timeout < 0:
            raise ConfigError(f"lock_timeout_seconds must not be negative, got {lock_timeout}.")
        self.path = Path(path).expanduser().resolve()
        self.lock_timeout = float(lock_timeout)
        self.chunk_rows = int(chunk_rows)
        self._key = str(self.path)
        self._locks = _locks_for(self._key)
        self._holder_path = Path(self._key + HOLDER_SUFFIX)
        self._waiting_path = Path(self._key + WAITING_SUFFIX)
        self._generation_path = Path(self._key + GENERATION_SUFFIX)

    @classmethod
    def from_settings(cls, settings: Settings) -> Warehouse:
        """The warehouse the settings point at (``warehouse_path``, ``lock_timeout_seconds``, ``write_chunk_rows``)."""
        return cls(
            settings.warehouse_path,
            lock_timeout=settings.lock_timeout_seconds,
            chunk_rows=settings.write_chunk_rows,
        )

    def __repr__(self) -> str:
        return f"Warehouse({self._key!r})"

    def exists(self) -> bool:
        """Whether the database file exists yet (it is created by the first unit of work)."""
        return self.path.is_file()

    # --- Units of work ---------------------------------------------------------------

    @contextmanager
    def read(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A unit of work for reading: lock, open, yield the connection, close, unlock.

        Use the connection only in this thread and only inside the ``with`` block. Write
        through :meth:`transaction` instead: writes made here are not announced to caches.
        Nested inside another unit of work of this thread, it yields the same connection.

        Raises:
            WarehouseBusyError: another process or thread held the warehouse past ``lock_timeout``.
            MlopsError: the file was written by a newer mlops-app.
        """
        with self._session() as session:
            yield session.connection

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A unit of work for writing: like :meth:`read`, inside ``BEGIN ... COMMIT``.

        An exception in the block rolls everything back and propagates. After a successful
        commit the generation stamp is bumped. A ``transaction()`` nested in another yields
        the same connection without a second ``BEGIN``: the outer block decides commit or
        rollback. The block is not retried on conflicts (it may have side effects); the
        convenience methods (:meth:`execute`, :meth:`append_frame`) are. Do not catch a
        failed statement inside the block and carry on: DuckDB has then aborted the whole
        transaction, and its COMMIT silently keeps nothing.

        Raises:
            WarehouseBusyError: another process or thread held the warehouse past ``lock_timeout``.
            duckdb.TransactionException: a conflicting write; the block may be run again.
        """
        with self._session() as session:
            if session.in_transaction:
                yield session.connection
                return
            connection = session.connection
            connection.execute("BEGIN TRANSACTION")
            session.in_transaction = True
            try:
                yield connection
                connection.execute("COMMIT")
            except BaseException:
                # After a failed statement DuckDB has already aborted; the ROLLBACK then
                # reports "no transaction is active", which must not hide the real error.
                with suppress(duckdb.Error):
                    connection.execute("ROLLBACK")
                raise
            finally:
                session.in_transaction = False
            self._bump_generation()

    # --- Convenience methods -----------------------------------------------------------

    def query(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> pandas.DataFrame:
        """Run one read query with parameters (``?``, ``$1`` or ``$name``) and return a DataFrame."""

        def work() -> pandas.DataFrame:
            with self.read() as connection:
                return _run(connection, sql, params).df()

        return self._with_retries(work)

    def query_one(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> tuple[Any, ...] | None:
        """Run one read query and return its first row as a tuple, or None when it has no rows."""

        def work() -> tuple[Any, ...] | None:
            with self.read() as connection:
                return _run(connection, sql, params).fetchone()

        return self._with_retries(work)

    def execute(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> None:
        """Run one write statement with parameters in its own transaction (retried on conflicts).

        Raises:
            WarehouseBusyError: another process or thread held the warehouse past ``lock_timeout``.
            duckdb.Error: the statement failed; nothing was written.
        """

        def work() -> None:
            with self.transaction() as connection:
                _run(connection, sql, params)

        self._with_retries(work)

    def append_frame(
        self,
        table: str,
        frame: pandas.DataFrame,
        *,
        chunk_rows: int | None = None,
        on_chunk: Callable[[int, int], None] | None = None,
    ) -> int:
        """Insert a DataFrame into ``table`` by column name, one transaction per chunk.

        The lock is released between chunks, and handed over when another process or thread
        is waiting, so a long load does not freeze the dashboard. Atomicity is therefore per
        chunk: a crash or an error leaves the chunks committed so far in place. Callers tag
        rows with a batch id so they can find and delete a partial load. Columns the frame
        lacks get the table's defaults. Called inside another unit of work of this thread,
        the chunks join it and the lock is not released in between.

        Args:
            table: target table name (see :func:`quote_identifier`).
            frame: rows to insert; column names must exist in the table.
            chunk_rows: rows per transaction; the warehouse's ``chunk_rows`` when omitted.
            on_chunk: called as ``on_chunk(rows_written, total_rows)`` after each chunk is
                committed and the lock released.

        Returns:
            The number of rows written.

        Raises:
            InvalidNameError: ``table`` is not a valid identifier.
            WarehouseBusyError: another process held the warehouse past ``lock_timeout``.
            duckdb.Error: a chunk failed (missing table or column, bad type, duplicate key);
                earlier chunks stay committed.
        """
        target = quote_identifier(table)
        size = self.chunk_rows if chunk_rows is None else int(chunk_rows)
        if size < 1:
            raise ConfigError(f"chunk_rows must be at least 1, got {size}.")
        total = len(frame)
        written = 0
        for start in range(0, total, size):
            chunk = frame.iloc[start : start + size]
            self._with_retries(lambda chunk=chunk: self._insert_chunk(target, chunk))
            written += len(chunk)
            if on_chunk is not None:
                on_chunk(written, total)
            if written < total:
                self._give_turn()
        return written

    def _insert_chunk(self, target: str, chunk: pandas.DataFrame) -> None:
        with self.transaction() as connection:
            connection.register(_CHUNK_VIEW, chunk)
            try:
                connection.execute(f"INSERT INTO {target} BY NAME SELECT * FROM {_CHUNK_VIEW}")
            finally:
                connection.unregister(_CHUNK_VIEW)

    # --- Generation stamp --------------------------------------------------------------

    def generation(self) -> int:
        """The number of committed writes so far, read from ``<db>.generation`` (0 when absent).

        Cheap (one small file read, no DuckDB open): key caches of query results on it.
        """
        try:
            return int(self._generation_path.read_text(encoding="utf-8").strip())
        except (FileNotFoundError, ValueError):
            return 0

    def _bump_generation(self) -> None:
        # Called only while holding the lock, so read-increment-write cannot lose a bump.
        _write_atomically(self._generation_path, f"{self.generation() + 1}\n")

    # --- Schema ------------------------------------------------------------------------

    def migrate(self) -> list[int]:
        """Apply pending migrations and return their numbers (empty when up to date).

        Raises:
            MlopsError: the file has a schema newer than this version of mlops-app knows.
        """
        with self._session(check_migrations=False) as session:
            return self._apply_migrations(session.connection)

    def schema_version(self) -> int:
        """The highest migration number recorded in the file (0 for an empty database)."""
        with self.read() as connection:
            return _recorded_version(connection)

    def table_exists(self, name: str) -> bool:
        """Whether a table or view of this name exists in the warehouse."""
        row = self.query_one(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'main' AND table_name = ?",
            [name],
        )
        return bool(row and row[0])

    def _apply_migrations(self, connection: duckdb.DuckDBPyConnection) -> list[int]:
        connection.execute(_SCHEMA_MIGRATIONS_TABLE)
        known = max(number for number, _, _ in MIGRATIONS)
        found = _recorded_version(connection)
        if found > known:
            raise MlopsError(
                f"The warehouse at {self.path} has schema version {found}, but this mlops-app "
                f"only knows versions up to {known}: it was written by a newer release. "
                "Upgrade mlops-app (pip install --upgrade mlops-app) to open it."
            )
        recorded = {row[0] for row in connection.execute("SELECT version FROM schema_migrations").fetchall()}
        applied: list[int] = []
        for number, name, sql in sorted(MIGRATIONS):
            if number in recorded:
                continue
            connection.execute("BEGIN TRANSACTION")
            try:
                connection.execute(sql)
                connection.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, current_timestamp)",
                    [number, name],
                )
                connection.execute("COMMIT")
            except BaseException:
                with suppress(duckdb.Error):
                    connection.execute("ROLLBACK")
                raise
            applied.append(number)
        if applied:
            self._bump_generation()
        with suppress(OSError):
            stat = self.path.stat()
            _MIGRATED.add((self._key, stat.st_dev, stat.st_ino))
        return applied

    def _needs_migration_check(self) -> bool:
        try:
            stat = self.path.stat()
        except OSError:
            return True
        return (self._key, stat.st_dev, stat.st_ino) not in _MIGRATED

    # --- Locking and connections -------------------------------------------------------

    @contextmanager
    def _session(self, *, check_migrations: bool = True) -> Iterator[_Session]:
        sessions = _thread_sessions()
        outer = sessions.get(self._key)
        if outer is not None:
            yield outer
            return
        with self._locked():
            connection = duckdb.connect(self._key)
            try:
                # Every stored time is UTC: the server's own time zone must not shift naive TIMESTAMP
                # columns compared with aware datetimes (TZ=America/New_York moved them by 4 h).
                connection.execute("SET TimeZone = 'UTC'")
                if check_migrations and self._needs_migration_check():
                    self._apply_migrations(connection)
                session = _Session(connection)
                sessions[self._key] = session
                try:
                    yield session
                finally:
                    del sessions[self._key]
            finally:
                connection.close()

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the thread lock, then the file lock, for one unit of work."""
        started = time.monotonic()
        deadline = started + self.lock_timeout
        locks = self._locks
        with _REGISTRY_LOCK:
            locks.waiting_threads += 1
        try:
            acquired = locks.thread_lock.acquire(timeout=self.lock_timeout)
        finally:
            with _REGISTRY_LOCK:
                locks.waiting_threads -= 1
        if not acquired:
            raise self._busy_error(time.monotonic() - started)
        try:
            self._acquire_file_lock(deadline, started)
            try:
                self._record_holder()
                yield
            finally:
                locks.file_lock.release()
        finally:
            locks.thread_lock.release()

    def _acquire_file_lock(self, deadline: float, started: float) -> None:
        # Our own poll loop rather than filelock's, so each poll can also announce that
        # someone is waiting (the waiting marker), which a long chunked write checks.
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            try:
                self._locks.file_lock.acquire(blocking=False)
                return
            except filelock.Timeout:
                pass
            now = time.monotonic()
            if now >= deadline:
                raise self._busy_error(now - started)
            with suppress(OSError):
                self._waiting_path.touch()
            time.sleep(min(_POLL_SECONDS, deadline - now))

    def _record_holder(self) -> None:
        now = datetime.now(UTC)
        holder = {
            "pid": os.getpid(),
            "hostname": socket.gethostname(),
            "command": [Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python", *sys.argv[1:3]],
            "more_arguments": len(sys.argv) > 3,
            "thread": threading.current_thread().name,
            "since": now.isoformat(),
            "since_epoch": now.timestamp(),
        }
        with suppress(OSError):
            _write_atomically(self._holder_path, json.dumps(holder))

    def _busy_error(self, waited: float) -> WarehouseBusyError:
        try:
            holder = json.loads(self._holder_path.read_text(encoding="utf-8"))
            command = " ".join(str(part) for part in holder["command"])
            if holder.get("more_arguments"):
                command += " ..."
            since = datetime.fromtimestamp(float(holder["since_epoch"]), UTC)
            held = max(0.0, time.time() - since.timestamp())
            who = (
                f"process {holder['pid']} ({command}) on host {holder['hostname']} has held it "
                f"since {since:%H:%M:%S} UTC ({_format_seconds(held)} s)"
            )
        except (OSError, ValueError, KeyError, TypeError):
            who = "another process holds it (its identity was not recorded)"
        return WarehouseBusyError(
            f"The warehouse at {self.path} is busy: {who}. Waited {_format_seconds(waited)} s. "
            "Try again when it finishes, or raise lock_timeout_seconds."
        )

    def _someone_is_waiting(self) -> bool:
        if self._locks.waiting_threads > 0:
            return True
        try:
            return time.time() - self._waiting_path.stat().st_mtime < _WAITING_MARKER_FRESH_SECONDS
        except OSError:
            return False

    def _give_turn(self) -> None:
        """Between chunks of a long write: pause briefly when another process or thread waits."""
        if _thread_sessions().get(self._key) is None and self._someone_is_waiting():
            time.sleep(_TURN_PAUSE_SECONDS)

    def _with_retries(self, work: Callable[[], _T]) -> _T:
        """Run ``work`` (one whole unit of work) again on a write conflict, up to 3 times."""
        if self._key in _thread_sessions():
            # Inside an outer unit of work the outer transaction is what failed; only its
            # owner can start it again.
            return work()
        for attempt in range(1, _TRANSACTION_ATTEMPTS + 1):
            try:
                return work()
            except duckdb.TransactionException:
                if attempt == _TRANSACTION_ATTEMPTS:
                    raise
                time.sleep(0.05 * attempt)
        raise AssertionError("unreachable")


def _run(
    connection: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] | Mapping[str, Any] | None
) -> duckdb.DuckDBPyConnection:
    if params is None:
        return connection.execute(sql)
    return connection.execute(sql, params)


def _recorded_version(connection: duckdb.DuckDBPyConnection) -> int:
    exists = connection.execute(
        "SELECT count(*) FROM information_schema.tables "
        "WHERE table_schema = 'main' AND table_name = 'schema_migrations'"
    ).fetchone()
    if not exists or not exists[0]:
        return 0
    row = connection.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
    return int(row[0]) if row else 0
