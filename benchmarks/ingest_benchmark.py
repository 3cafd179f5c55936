"""Ingest-and-check a big Parquet batch against a plain DuckDB load of the same file.

Target (issue 3): ``ingest_file`` with a realistic check set (12 checks) on a 10M-row,
15-column Parquet file takes at most 3x a plain ``CREATE TABLE AS SELECT * FROM
read_parquet(...)`` of the same file, both measured in this one process.

The dataset already holds one earlier delivery (``--history-rows``), so the uniqueness
check also looks at stored ids and the drift check has a reference window, as in real use.
Then, optionally (``--page-batches``), it ingests that many small deliveries into a second
dataset and times the page's reads (scorecard, history, batches, drill-down, profile).

Usage::

    .venv/bin/python benchmarks/ingest_benchmark.py                 # 10M rows
    .venv/bin/python benchmarks/ingest_benchmark.py --rows 1000000  # quicker
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb

from mlops_app.auth import Identity
from mlops_app.datasets import Column, Dataset, register_dataset
from mlops_app.ingest import file_sha256, ingest_file
from mlops_app.quality import (
    AllowedValuesCheck,
    DatasetChecks,
    DistributionCheck,
    FreshnessCheck,
    NotNullCheck,
    NullShareCheck,
    RangeCheck,
    ReferenceWindow,
    RequiredColumnsCheck,
    RowCountCheck,
    SchemaCheck,
    UniqueCheck,
    check_history,
    column_profile,
    failing_rows,
    list_batches,
    scorecard,
)
from mlops_app.warehouse import Warehouse

COLUMNS = {
    "apple_id": "VARCHAR",
    "graded_at": "TIMESTAMP WITH TIME ZONE",
    "harvest_date": "DATE",
    "orchard_block": "VARCHAR",
    "variety": "VARCHAR",
    "grading_machine": "VARCHAR",
    "weight_g": "DOUBLE",
    "diameter_mm": "DOUBLE",
    "colour_score": "DOUBLE",
    "blemish_area_mm2": "DOUBLE",
    "firmness_n": "DOUBLE",
    "sugar_brix": "DOUBLE",
    "crate": "BIGINT",
    "is_bad": "BOOLEAN",
    "label_received_at": "TIMESTAMP WITH TIME ZONE",
}
ADMIN = Identity("bench@localhost", "bench", "admin", "local")
NOW = datetime(2026, 9, 30, 20, 0, tzinfo=UTC)


def write_parquet(path: Path, rows: int, *, first_id: int, day_offset: int, seed: float) -> None:
    """Generate apples in DuckDB (fast, no pandas): ~0.1% of weights out of range, a few nulls."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SELECT setseed(?)", [seed])
    con.execute(
        f"""
        COPY (
            SELECT 'apple-' || (range + {int(first_id)}) AS apple_id,
                   TIMESTAMPTZ '2026-09-30 06:00:00+00' - INTERVAL (range % 86400) SECOND - INTERVAL ({int(day_offset)}) DAY AS graded_at,
                   DATE '2026-09-30' - {int(day_offset)} AS harvest_date,
                   'block-' || chr(97 + CAST(floor(random() * 7) AS INTEGER)) AS orchard_block,
                   ['gala', 'fuji', 'honeycrisp', 'granny_smith'][1 + CAST(floor(random() * 4) AS INTEGER)] AS variety,
                   'grader-1' AS grading_machine,
                   CASE WHEN random() < 0.001 THEN 999.0 ELSE 120 + random() * 180 END AS weight_g,
                   60 + random() * 30 AS diameter_mm,
                   random() * 100 AS colour_score,
                   CASE WHEN random() < 0.01 THEN NULL ELSE random() * 50 END AS blemish_area_mm2,
                   50 + random() * 30 AS firmness_n,
                   10 + random() * 6 AS sugar_brix,
                   CAST(range // 40 AS BIGINT) AS crate,
                   random() < 0.1 AS is_bad,
                   CASE WHEN random() < 0.5 THEN NULL ELSE TIMESTAMPTZ '2026-10-02 00:00:00+00' END AS label_received_at
            FROM range({int(rows)})
        ) TO '{path}' (FORMAT parquet, COMPRESSION snappy)
        """
    )
    con.close()


def realistic_checks(dataset: str) -> DatasetChecks:
    return DatasetChecks(
        dataset=dataset,
        checks=(
            RequiredColumnsCheck(name="required_columns", columns=tuple(COLUMNS)),
            SchemaCheck(name="schema", columns=COLUMNS),
            RowCountCheck(name="row_count", min=1, max=50_000_000),
            NotNullCheck(name="apple_id_present", column="apple_id"),
            UniqueCheck(name="apple_id_unique", columns=("apple_id",)),
            NotNullCheck(name="graded_at_present", column="graded_at"),
            RangeCheck(name="weight_range", column="weight_g", min=80, max=400, description="Weight must be between 80 and 400 g"),
            RangeCheck(name="colour_range", column="colour_score", min=0, max=100),
            AllowedValuesCheck(name="variety_known", column="variety", values=("gala", "fuji", "honeycrisp", "granny_smith"), severity="warn"),
            AllowedValuesCheck(name="block_known", column="orchard_block", values=tuple(f"block-{c}" for c in "abcdefgh"), severity="warn"),
            NullShareCheck(name="blemish_missing", column="blemish_area_mm2", max_share=0.05, severity="warn"),
            FreshnessCheck(name="freshness", column="graded_at", max_age_hours=48, severity="warn"),
            DistributionCheck(name="weight_drift", column="weight_g", reference=ReferenceWindow(last_days=30), severity="warn"),
        ),
    )


def register(warehouse: Warehouse, name: str) -> None:
    columns = tuple(Column(column, kind, "id" if column == "apple_id" else "feature") for column, kind in COLUMNS.items())
    register_dataset(warehouse, Dataset(name, "benchmark apples", "bench", "generated", columns, "is_bad", "apple_id", "graded_at", 36.0))


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="rows of the timed batch (default 10M)")
    parser.add_argument("--history-rows", type=int, default=1_000_000, help="rows already stored before the timed batch")
    parser.add_argument("--page-batches", type=int, default=200, help="small deliveries for the page-read timing (0: skip)")
    parser.add_argument("--repeat", type=int, default=2, help="alternating timings of each (the best is compared)")
    parser.add_argument("--folder", type=Path, default=None, help="work folder (default: a temp folder, removed afterwards)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(dir=args.folder) as folder:
        work = Path(folder)
        batch, history = work / "batch.parquet", work / "history.parquet"
        started = time.perf_counter()
        write_parquet(batch, args.rows, first_id=10_000_000_000, day_offset=0, seed=0.1)
        write_parquet(history, args.history_rows, first_id=0, day_offset=3, seed=0.2)
        print(f"generated {args.rows:,} + {args.history_rows:,} rows x {len(COLUMNS)} columns in {time.perf_counter() - started:.1f} s "
              f"({batch.stat().st_size / 2**20:,.0f} MiB Parquet)")

        # Both figures are taken --repeat times, alternating, each ingest into a fresh
        # warehouse: on a shared 2-core machine single timings vary by +-30%, and the
        # minimum is the least disturbed one. The file is read once first so neither
        # measurement pays for a cold page cache.
        file_sha256(batch)
        baselines, ingests = [], []
        for attempt in range(args.repeat):
            started = time.perf_counter()
            con = duckdb.connect(str(work / f"baseline-{attempt}.duckdb"))
            con.execute("CREATE TABLE apples AS SELECT * FROM read_parquet(?)", [str(batch)])
            con.close()
            baselines.append(time.perf_counter() - started)
            print(f"baseline CREATE TABLE AS SELECT * FROM read_parquet: {baselines[-1]:.2f} s")
            (work / f"baseline-{attempt}.duckdb").unlink()

            warehouse = Warehouse(work / f"warehouse-{attempt}.duckdb")
            warehouse.migrate()
            register(warehouse, "apples")
            checks = realistic_checks("apples")
            first = ingest_file(warehouse, "apples", history, identity=ADMIN, checks=checks, now=NOW)
            print(f"history batch: {first.status}, {first.accepted_rows:,} rows loaded in {first.seconds:.2f} s")
            started = time.perf_counter()
            result = ingest_file(warehouse, "apples", batch, identity=ADMIN, checks=checks, now=NOW)
            ingests.append(time.perf_counter() - started)
            print(f"ingest_file with {len(checks.checks)} checks: {ingests[-1]:.2f} s -> {result.status}; "
                  f"{result.accepted_rows:,} loaded, {result.quarantined_rows:,} quarantined, {result.warned_rows:,} flagged")
            if attempt == 0:
                for item in result.results:
                    print(f"    {item.name:18} {item.status:8} {item.message}")
            if attempt < args.repeat - 1:
                for path in work.glob(f"warehouse-{attempt}.duckdb*"):
                    path.unlink()
        ratio = min(ingests) / min(baselines)
        print(f"baseline {min(baselines):.2f} s, ingest {min(ingests):.2f} s (best of {args.repeat}); "
              f"RATIO = {ratio:.2f} (target <= 3.0); per-attempt ratios "
              f"{', '.join(f'{i / b:.2f}' for i, b in zip(ingests, baselines, strict=True))}; peak RSS {peak_rss_mib():,.0f} MiB")

        if args.page_batches:
            _page_reads(work, args.page_batches)
        return 0 if ratio <= 3.0 else 1


def _page_reads(work: Path, batches: int) -> None:
    """Ingest many small deliveries, then time what the data-quality page reads."""
    warehouse = Warehouse(work / "pages.duckdb")
    warehouse.migrate()
    register(warehouse, "daily")
    checks = realistic_checks("daily")
    started = time.perf_counter()
    last = None
    for day in range(batches):
        path = work / f"day-{day}.parquet"
        write_parquet(path, 500, first_id=day * 1000, day_offset=batches - day, seed=day / (batches + 1))
        last = ingest_file(warehouse, "daily", path, identity=ADMIN, checks=checks, now=NOW - timedelta(days=batches - day))
        path.unlink()
    print(f"ingested {batches} small deliveries in {time.perf_counter() - started:.1f} s")
    timings = {}
    for name, read in (
        ("scorecard", lambda: scorecard(warehouse, "daily")),
        ("check_history", lambda: check_history(warehouse, "daily")),
        ("list_batches", lambda: list_batches(warehouse, "daily")),
        ("failing_rows", lambda: failing_rows(warehouse, "daily", last.batch_id, "weight_range")),
        ("column_profile", lambda: column_profile(warehouse, "daily", "weight_g")),
    ):
        started = time.perf_counter()
        frame = read()
        timings[name] = time.perf_counter() - started
        size = len(frame) if hasattr(frame, "__len__") else frame.rows
        print(f"    {name:15} {timings[name] * 1000:6.0f} ms  ({size:,} rows)")
    print(f"page data for {batches} batches: {sum(timings.values()) * 1000:.0f} ms in total (each read opens the warehouse, ~40 ms)")


if __name__ == "__main__":
    sys.exit(main())
