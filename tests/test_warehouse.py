"""Tests of mlops_app.warehouse on real DuckDB files, real threads and real processes."""

from __future__ import annotations

import json
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pandas
import pytest

from mlops_app.config import load_settings
from mlops_app.errors import ConfigError, InvalidNameError, MlopsError, WarehouseBusyError
from mlops_app.warehouse import MIGRATIONS, Warehouse, quote_identifier

HELPER = Path(__file__).with_name("warehouse_helper.py")
EVENTS_TABLE = "CREATE TABLE IF NOT EXISTS events (source VARCHAR, n BIGINT, batch_id VARCHAR)"
CORE_TABLES = [
    "datasets",
    "batches",
    "quality_results",
    "experiments",
    "runs",
    "run_params",
    "run_metrics",
    "run_tags",
    "predictions",
    "labels",
    "drift_results",
    "performance_windows",
    "alerts",
]


@pytest.fixture
def warehouse(tmp_path: Path) -> Warehouse:
    created = Warehouse(tmp_path / "warehouse.duckdb", lock_timeout=10)
    created.execute(EVENTS_TABLE)
    return created


@pytest.fixture
def helpers() -> Iterator[list[subprocess.Popen[str]]]:
    """Processes started by a test; any still running at the end are killed by their handle."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def start_helper(helpers: list[subprocess.Popen[str]], *args: object) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, str(HELPER), *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    helpers.append(process)
    return process


def wait_for_line(process: subprocess.Popen[str], prefix: str) -> str:
    """Read the helper's output until a line starting with ``prefix``; fail if it exits first."""
    assert process.stdout is not None
    while True:
        line = process.stdout.readline()
        if not line:
            stderr = process.stderr.read() if process.stderr else ""
            pytest.fail(f"helper exited with {process.wait()} before printing {prefix!r}: {stderr}")
        if line.startswith(prefix):
            return line.strip()


def count_events(warehouse: Warehouse, where: str = "TRUE", params: list[object] | None = None) -> int:
    row = warehouse.query_one(f"SELECT count(*) FROM events WHERE {where}", params)
    assert row is not None
    return int(row[0])


def test_from_settings_uses_the_warehouse_settings(tmp_path: Path) -> None:
    settings = load_settings(
        {
            "MLOPS_APP_HOME": str(tmp_path / "home"),
            "MLOPS_APP_LOCK_TIMEOUT_SECONDS": "7.5",
            "MLOPS_APP_WRITE_CHUNK_ROWS": "1234",
        }
    )
    warehouse = Warehouse.from_settings(settings)
    assert warehouse.path == tmp_path / "home" / "warehouse.duckdb"
    assert (warehouse.lock_timeout, warehouse.chunk_rows) == (7.5, 1234)
    with pytest.raises(ConfigError, match="write_chunk_rows must be at least 1"):
        Warehouse(tmp_path / "w.duckdb", chunk_rows=0)


# --- Migrations -------------------------------------------------------------------------


def test_migrations_create_the_core_tables_once_and_record_them(tmp_path: Path) -> None:
    warehouse = Warehouse(tmp_path / "fresh.duckdb")
    assert not warehouse.exists()
    assert warehouse.generation() == 0

    assert warehouse.migrate() == [number for number, _, _ in MIGRATIONS]
    assert warehouse.exists()
    for table in CORE_TABLES:
        assert warehouse.table_exists(table), table
    assert not warehouse.table_exists("no_such_table")
    assert warehouse.schema_version() == MIGRATIONS[-1][0]
    recorded = warehouse.query("SELECT version, name FROM schema_migrations ORDER BY version")
    assert list(recorded.itertuples(index=False, name=None)) == [(n, name) for n, name, _ in MIGRATIONS]

    types = warehouse.query(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'predictions'"
    )
    column_types = dict(zip(types["column_name"], types["data_type"], strict=True))
    assert column_types["features"] == "JSON"
    assert column_types["event_time"] == "TIMESTAMP WITH TIME ZONE"
    assert column_types["version"] == "INTEGER"

    # Re-running, from this object or a new one on the same file, applies nothing.
    assert warehouse.migrate() == []
    assert Warehouse(tmp_path / "fresh.duckdb").migrate() == []
    assert warehouse.query_one("SELECT count(*) FROM schema_migrations") == (len(MIGRATIONS),)


def test_first_unit_of_work_applies_migrations(tmp_path: Path) -> None:
    warehouse = Warehouse(tmp_path / "nested" / "folder" / "auto.duckdb")
    assert warehouse.query_one("SELECT count(*) FROM runs") == (0,)
    assert warehouse.schema_version() == MIGRATIONS[-1][0]


def test_a_schema_newer_than_the_code_asks_for_an_upgrade(tmp_path: Path) -> None:
    path = tmp_path / "newer.duckdb"
    connection = duckdb.connect(str(path))
    connection.execute(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR, applied_at TIMESTAMPTZ)"
    )
    connection.execute("INSERT INTO schema_migrations VALUES (999, 'from the future', current_timestamp)")
    connection.close()

    warehouse = Warehouse(path, lock_timeout=1)
    with pytest.raises(MlopsError, match=r"schema version 999.*Upgrade mlops-app"):
        warehouse.query("SELECT 1")
    # The failed open released the lock and closed the file: the same error again, not "busy".
    with pytest.raises(MlopsError, match="Upgrade mlops-app"):
        warehouse.migrate()
    check = duckdb.connect(str(path))
    assert check.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'runs'").fetchone() == (0,)
    check.close()


# --- Parameters and identifiers --------------------------------------------------------


def test_query_and_execute_take_parameters(warehouse: Warehouse) -> None:
    warehouse.execute("INSERT INTO events VALUES (?, ?, ?)", ["positional", 1, "b1"])
    warehouse.execute("INSERT INTO events VALUES ($source, $n, $batch)", {"source": "named", "n": 2, "batch": "b1"})

    frame = warehouse.query("SELECT source, n FROM events WHERE batch_id = ? ORDER BY n", ["b1"])
    assert isinstance(frame, pandas.DataFrame)
    assert frame.to_dict("records") == [{"source": "positional", "n": 1}, {"source": "named", "n": 2}]
    assert warehouse.query_one("SELECT n FROM events WHERE source = $1", ["named"]) == (2,)
    assert warehouse.query_one("SELECT n FROM events WHERE source = ?", ["nobody"]) is None


def test_an_injection_attempt_in_a_parameter_is_stored_literally(warehouse: Warehouse) -> None:
    hostile = "x', 0, NULL); DROP TABLE experiments; --"
    warehouse.execute("INSERT INTO experiments (name, description) VALUES (?, ?)", [hostile, "it's"])
    assert warehouse.table_exists("experiments")
    assert warehouse.query_one("SELECT name, description FROM experiments") == (hostile, "it's")


@pytest.mark.parametrize(
    "name",
    ["x; drop table", 'a"b', "", "1abc", "Events", "a b", "a\n", "a-b", "x" * 64, "ünïcode", "events--", "a.b"],
)
def test_quote_identifier_rejects_hostile_names(name: str) -> None:
    with pytest.raises(InvalidNameError, match="lowercase letter or underscore"):
        quote_identifier(name)


def test_quote_identifier_quotes_valid_names() -> None:
    assert quote_identifier("events") == '"events"'
    assert quote_identifier("_staging_2") == '"_staging_2"'
    assert quote_identifier("x" * 63) == '"' + "x" * 63 + '"'
    # A keyword is a fine table name once quoted.
    assert quote_identifier("select") == '"select"'


def test_append_frame_inserts_by_column_name_and_validates_the_table(warehouse: Warehouse) -> None:
    frame = pandas.DataFrame({"batch_id": ["b7", "b7"], "n": [10, 11], "source": ["frame", "frame"]})
    assert warehouse.append_frame("events", frame) == 2
    rows = warehouse.query("SELECT source, n, batch_id FROM events ORDER BY n")
    assert list(rows.itertuples(index=False, name=None)) == [("frame", 10, "b7"), ("frame", 11, "b7")]

    with pytest.raises(InvalidNameError):
        warehouse.append_frame("events; DROP TABLE events", frame)
    assert warehouse.append_frame("events", frame.iloc[0:0]) == 0
    assert count_events(warehouse) == 2


# --- Generation stamp ------------------------------------------------------------------


def test_generation_bumps_on_commits_only(warehouse: Warehouse) -> None:
    start = warehouse.generation()
    assert start >= 1  # the migration and the CREATE TABLE of the fixture committed

    warehouse.query("SELECT * FROM events")
    warehouse.query_one("SELECT count(*) FROM events")
    with warehouse.read() as connection:
        connection.execute("SELECT 42").fetchone()
    assert warehouse.generation() == start

    warehouse.execute("INSERT INTO events VALUES ('a', 1, NULL)")
    assert warehouse.generation() == start + 1
    with warehouse.transaction() as connection:
        connection.execute("INSERT INTO events VALUES ('b', 2, NULL)")
    assert warehouse.generation() == start + 2

    with pytest.raises(RuntimeError, match="boom"):
        with warehouse.transaction() as connection:
            connection.execute("INSERT INTO events VALUES ('rolled back', 3, NULL)")
            raise RuntimeError("boom")
    assert warehouse.generation() == start + 2
    assert count_events(warehouse, "source = ?", ["rolled back"]) == 0

    with pytest.raises(duckdb.Error):
        warehouse.execute("INSERT INTO events VALUES ('bad', 'not a number', NULL)")
    assert warehouse.generation() == start + 2
    assert count_events(warehouse) == 2

    # Five rows in chunks of two: three transactions, three bumps.
    frame = pandas.DataFrame({"source": "chunked", "n": range(5)})
    warehouse.append_frame("events", frame, chunk_rows=2)
    assert warehouse.generation() == start + 5
    assert Path(str(warehouse.path) + ".generation").read_text().strip() == str(start + 5)
    # Another object on the same file reads the same stamp.
    assert Warehouse(warehouse.path).generation() == start + 5


# --- Threads ---------------------------------------------------------------------------


def test_nested_units_of_work_reuse_one_connection(warehouse: Warehouse) -> None:
    # A short timeout turns a self-deadlock into a failure instead of a hang.
    quick = Warehouse(warehouse.path, lock_timeout=1)
    same_file = Warehouse(str(warehouse.path), lock_timeout=1)
    start = quick.generation()
    with quick.transaction() as outer:
        outer.execute("INSERT INTO events VALUES ('outer', 1, NULL)")
        with quick.read() as inner_read:
            assert inner_read is outer
            assert inner_read.execute("SELECT count(*) FROM events").fetchone() == (1,)
        with same_file.transaction() as inner_transaction:
            assert inner_transaction is outer
            inner_transaction.execute("INSERT INTO events VALUES ('inner', 2, NULL)")
        # Convenience methods nested in the unit also join it.
        quick.execute("INSERT INTO events VALUES ('nested execute', 3, NULL)")
        assert quick.query_one("SELECT count(*) FROM events") == (3,)
    assert quick.generation() == start + 1  # one outer commit, no nested ones
    assert count_events(quick) == 3

    with quick.read() as reader:
        with quick.transaction() as writer:
            assert writer is reader
            writer.execute("INSERT INTO events VALUES ('in read', 4, NULL)")
    assert count_events(quick) == 4
    assert quick.generation() == start + 2


def test_rollback_of_the_outer_transaction_discards_nested_writes(warehouse: Warehouse) -> None:
    with pytest.raises(ValueError, match="outer failed"):
        with warehouse.transaction():
            with warehouse.transaction() as inner:
                inner.execute("INSERT INTO events VALUES ('inner', 1, NULL)")
            raise ValueError("outer failed")
    assert count_events(warehouse) == 0


def test_eight_threads_reading_and_writing_all_succeed(warehouse: Warehouse) -> None:
    errors: list[BaseException] = []
    results: list[int] = []

    def work(thread_number: int) -> None:
        own = Warehouse(warehouse.path, lock_timeout=30)  # separate objects share the locks
        try:
            for step in range(3):
                own.execute("INSERT INTO events VALUES (?, ?, NULL)", [f"thread {thread_number}", step])
                with own.read() as connection:
                    row = connection.execute("SELECT count(*) FROM events").fetchone()
                    assert row is not None
                    results.append(int(row[0]))
        except BaseException as error:  # noqa: BLE001 - reported by the main thread
            errors.append(error)

    threads = [threading.Thread(target=work, args=(number,)) for number in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    assert len(results) == 24
    assert count_events(warehouse) == 24
    per_thread = warehouse.query("SELECT source, count(*) AS rows FROM events GROUP BY source")
    assert sorted(per_thread["rows"].tolist()) == [3] * 8


def test_append_frame_releases_the_lock_between_chunks(warehouse: Warehouse) -> None:
    observed: list[tuple[int, int, int | None]] = []

    def on_chunk(written: int, total: int) -> None:
        # Another thread must be able to take the lock right now, and see this chunk.
        seen: dict[str, int] = {}

        def read_count() -> None:
            seen["rows"] = count_events(Warehouse(warehouse.path, lock_timeout=0.5))

        reader = threading.Thread(target=read_count)
        reader.start()
        reader.join(timeout=10)
        observed.append((written, total, seen.get("rows")))

    frame = pandas.DataFrame({"source": "chunks", "n": range(10)})
    assert warehouse.append_frame("events", frame, chunk_rows=3, on_chunk=on_chunk) == 10
    assert observed == [(3, 10, 3), (6, 10, 6), (9, 10, 9), (10, 10, 10)]


def test_a_waiting_thread_gets_a_turn_during_a_long_append(warehouse: Warehouse) -> None:
    timeline: list[str] = []
    chunk_seen = threading.Event()

    def writer() -> None:
        chunk_seen.wait(timeout=10)
        Warehouse(warehouse.path, lock_timeout=10).execute("INSERT INTO events VALUES ('writer', 0, NULL)")
        timeline.append("writer")

    def on_chunk(written: int, total: int) -> None:
        timeline.append(f"chunk {written}")
        chunk_seen.set()

    thread = threading.Thread(target=writer)
    thread.start()
    frame = pandas.DataFrame({"source": "long", "n": range(40)})
    warehouse.append_frame("events", frame, chunk_rows=2, on_chunk=on_chunk)
    thread.join(timeout=10)
    assert "writer" in timeline
    assert timeline.index("writer") < timeline.index("chunk 40"), timeline
    assert count_events(warehouse) == 41


# --- Processes -------------------------------------------------------------------------


def test_a_write_waits_for_another_process_then_succeeds(warehouse: Warehouse, helpers: list) -> None:
    holder = start_helper(helpers, "hold", warehouse.path, 1.5)
    wait_for_line(holder, "holding")
    started = time.monotonic()
    warehouse.execute("INSERT INTO events VALUES ('waiter', 2, NULL)")
    waited = time.monotonic() - started
    assert waited > 0.5, f"the write did not wait for the holder ({waited:.2f} s)"
    assert holder.wait(timeout=30) == 0
    rows = warehouse.query("SELECT source FROM events ORDER BY n")
    assert rows["source"].tolist() == ["holder", "waiter"]


def test_a_short_lock_timeout_raises_busy_naming_the_holder(warehouse: Warehouse, helpers: list) -> None:
    holder = start_helper(helpers, "hold", warehouse.path, 1.5)
    wait_for_line(holder, "holding")
    impatient = Warehouse(warehouse.path, lock_timeout=0.3)
    started = time.monotonic()
    expected = rf"is busy: process {holder.pid} \(warehouse_helper.py hold"
    with pytest.raises(WarehouseBusyError, match=expected) as caught:
        impatient.execute("INSERT INTO events VALUES ('impatient', 2, NULL)")
    assert time.monotonic() - started < 1.2
    message = str(caught.value)
    assert re.search(r"since \d\d:\d\d:\d\d UTC \([\d.]+ s\)\. Waited 0\.\d s\.", message), message
    assert message.endswith("Try again when it finishes, or raise lock_timeout_seconds.")
    holder_record = json.loads(Path(str(warehouse.path) + ".lock.holder").read_text())
    assert holder_record["pid"] == holder.pid
    assert holder.wait(timeout=30) == 0
    assert count_events(warehouse, "source = ?", ["impatient"]) == 0
    assert count_events(warehouse, "source = ?", ["holder"]) == 1


def test_two_processes_appending_at_once_lose_nothing(warehouse: Warehouse, tmp_path: Path, helpers: list) -> None:
    start_file = tmp_path / "go"
    first = start_helper(helpers, "append-rows", warehouse.path, "first", 20, start_file)
    second = start_helper(helpers, "append-rows", warehouse.path, "second", 20, start_file)
    wait_for_line(first, "ready")
    wait_for_line(second, "ready")
    start_file.touch()
    assert first.wait(timeout=60) == 0, first.stderr.read() if first.stderr else ""
    assert second.wait(timeout=60) == 0, second.stderr.read() if second.stderr else ""
    counts = warehouse.query("SELECT source, count(DISTINCT n) AS rows FROM events GROUP BY source ORDER BY source")
    assert list(counts.itertuples(index=False, name=None)) == [("first", 20), ("second", 20)]


def test_another_process_gets_a_turn_during_a_long_append(warehouse: Warehouse, helpers: list) -> None:
    appender = start_helper(helpers, "append-frame", warehouse.path, 6_000, 100)
    wait_for_line(appender, "chunk 300")
    # A chunk takes tens of milliseconds and the whole load seconds. The appender leaves a
    # gap between chunks only when it sees a waiter; without that hand-over these reads
    # measured 20-1200 ms each (median ~400 ms), with it ~30 ms.
    dashboard = Warehouse(warehouse.path, lock_timeout=2.0)
    latencies = []
    for _ in range(5):
        started = time.monotonic()
        rows = count_events(dashboard)
        latencies.append(time.monotonic() - started)
        assert rows % 100 == 0 and 300 <= rows < 6_000
        time.sleep(0.05)
    assert appender.poll() is None, "the load finished before the reads; make it longer"
    assert statistics.median(latencies) < 0.25, latencies
    assert appender.wait(timeout=60) == 0
    assert count_events(warehouse) == 6_000


def test_sigkill_during_a_long_append_leaves_whole_chunks(warehouse: Warehouse, helpers: list) -> None:
    appender = start_helper(helpers, "append-frame", warehouse.path, 100_000, 250)
    wait_for_line(appender, "chunk 750")
    os.kill(appender.pid, signal.SIGKILL)
    assert appender.wait(timeout=10) == -signal.SIGKILL

    fresh = Warehouse(warehouse.path, lock_timeout=5)
    rows = count_events(fresh, "batch_id = ?", ["long"])
    assert 750 <= rows < 100_000
    assert rows % 250 == 0, f"{rows} rows is not a whole number of 250-row chunks"
    fresh.execute("INSERT INTO events VALUES ('after crash', 1, 'next')")
    assert count_events(fresh, "batch_id = ?", ["next"]) == 1
    # The partial load is findable by its batch id and can be cleaned up.
    fresh.execute("DELETE FROM events WHERE batch_id = ?", ["long"])
    assert count_events(fresh) == 1


def test_sigkill_inside_a_transaction_commits_nothing(warehouse: Warehouse, helpers: list) -> None:
    warehouse.execute("INSERT INTO events VALUES ('before', 1, 'committed')")
    hanging = start_helper(helpers, "hang-in-transaction", warehouse.path, 500)
    wait_for_line(hanging, "inserted")
    os.kill(hanging.pid, signal.SIGKILL)
    assert hanging.wait(timeout=10) == -signal.SIGKILL

    fresh = Warehouse(warehouse.path, lock_timeout=5)
    assert count_events(fresh, "batch_id = ?", ["uncommitted"]) == 0
    assert count_events(fresh, "batch_id = ?", ["committed"]) == 1
    fresh.execute("INSERT INTO events VALUES ('after crash', 2, 'committed')")
    assert count_events(fresh, "batch_id = ?", ["committed"]) == 2


def test_times_compare_in_utc_whatever_the_server_time_zone(tmp_path, monkeypatch):
    import time as clock
    from datetime import UTC, datetime

    monkeypatch.setenv("TZ", "America/New_York")
    clock.tzset()
    try:
        warehouse = Warehouse(tmp_path / "w.duckdb")
        # A naive stored time is UTC: 00:00 is before 01:00 UTC (in New York time it would be 04:00 UTC).
        row = warehouse.query_one(
            "SELECT current_setting('TimeZone'), TIMESTAMP '2026-08-20 00:00' < $1",
            [datetime(2026, 8, 20, 1, tzinfo=UTC)],
        )
        assert row == ("UTC", True)
    finally:
        monkeypatch.delenv("TZ")
        clock.tzset()
