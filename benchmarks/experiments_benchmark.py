"""Experiments reads and tracking writes at scale.

Fills a fresh warehouse, set-based in DuckDB, with 10,000 runs x 20 params x 10 metrics
(100 of the runs with 100 steps of every metric, for curves), then times what the
Experiments page asks for and what a training loop costs:

* ``runs_page``: the first page of 50, sorted by a metric, filtered by a param and a metric;
* ``compare_runs`` of 50 runs (the 100-step ones among them);
* ``metric_curves`` of 10 runs x 100 steps;
* logging 1,000 metric points through the tracking API (start, log, end).

The baseline is a plain ``SELECT count(*) FROM runs`` unit of work (open, query, close), so
the ratio shows what each read costs beyond opening the file.

    .venv/bin/python benchmarks/experiments_benchmark.py [--runs 10000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

PARAMS, METRICS, CURVE_RUNS, CURVE_STEPS = 20, 10, 100, 100


def _fill(warehouse, runs: int) -> None:
    """Insert the runs, params, metrics and tags with a few INSERT ... SELECT statements."""
    with warehouse.transaction() as connection:
        connection.execute("INSERT INTO experiments (name, description) VALUES ('bench', 'benchmark')")
        connection.execute(
            """
            INSERT INTO runs (run_id, experiment, name, status, started_at, ended_at, author, git_commit, dataset_fingerprint)
            SELECT md5(i::VARCHAR), 'bench', 'trial ' || i, CASE WHEN i % 20 = 0 THEN 'failed' ELSE 'finished' END,
                   TIMESTAMPTZ '2026-07-01 00:00:00+00' + i * INTERVAL 1 MINUTE,
                   TIMESTAMPTZ '2026-07-01 00:00:30+00' + i * INTERVAL 1 MINUTE,
                   'bench@example.com', 'abc123', 'rows-1'
            FROM range($1) t(i)
            """,
            [runs],
        )
        # Even params are numbers, odd ones categories ('a'..'e').
        connection.execute(
            """
            INSERT INTO run_params
            SELECT md5(i::VARCHAR), 'p' || lpad(p::VARCHAR, 2, '0'),
                   CASE WHEN p % 2 = 0 THEN round(random() * 100, 3)::VARCHAR ELSE chr(97 + ((i + p) % 5)::INTEGER) END
            FROM range($1) r(i), range($2) q(p)
            """,
            [runs, PARAMS],
        )
        connection.execute(
            """
            INSERT INTO run_metrics (run_id, key, value, step, logged_at)
            SELECT md5(i::VARCHAR), CASE m WHEN 0 THEN 'roc_auc' WHEN 1 THEN 'mae' ELSE 'm' || m END,
                   random(), 0, TIMESTAMPTZ '2026-07-01 00:00:30+00' + i * INTERVAL 1 MINUTE
            FROM range($1) r(i), range($2) q(m)
            """,
            [runs, METRICS],
        )
        connection.execute(
            """
            INSERT INTO run_metrics (run_id, key, value, step, logged_at)
            SELECT md5(i::VARCHAR), CASE m WHEN 0 THEN 'roc_auc' WHEN 1 THEN 'mae' ELSE 'm' || m END,
                   random(), s, TIMESTAMPTZ '2026-07-01 00:00:30+00' + i * INTERVAL 1 MINUTE + s * INTERVAL 1 SECOND
            FROM range($1) r(i), range($2) q(m), range(1, $3 + 1) t(s)
            """,
            [CURVE_RUNS, METRICS, CURVE_STEPS],
        )
        connection.execute(
            """
            INSERT INTO run_tags
            SELECT md5(i::VARCHAR), k, CASE k WHEN 'role' THEN (CASE WHEN i % 100 = 0 THEN 'winner' ELSE 'trial' END) ELSE 'search-' || (i // 50) END
            FROM range($1) r(i), (VALUES ('role'), ('search_id')) v(k)
            """,
            [runs],
        )


def _timed(work: Callable[[], object], repeat: int) -> tuple[float, object]:
    timings, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = work()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    from mlops_app.experiments import RunFilter, compare_runs, metric_curves, runs_page
    from mlops_app.tracking import start_run
    from mlops_app.warehouse import Warehouse

    with tempfile.TemporaryDirectory() as scratch:
        warehouse = Warehouse(Path(scratch) / "warehouse.duckdb")
        warehouse.migrate()
        started = time.perf_counter()
        _fill(warehouse, args.runs)
        fill_seconds = time.perf_counter() - started
        counts = {
            table: warehouse.query_one(f"SELECT count(*) FROM {table}")[0] for table in ("runs", "run_params", "run_metrics", "run_tags")
        }
        size_mb = warehouse.path.stat().st_size / 1e6
        print(f"filled in {fill_seconds:.1f} s: " + ", ".join(f"{table} {count:,}" for table, count in counts.items()) + f" ({size_mb:.0f} MB)")

        baseline, _ = _timed(lambda: warehouse.query_one("SELECT count(*) FROM runs"), args.repeat)
        filters = [RunFilter("param", "p01", "=", "b"), RunFilter("metric", "mae", "<", 0.5)]
        page_seconds, page = _timed(
            lambda: runs_page(warehouse, "bench", sort_by="metric.roc_auc", descending=True, filters=filters, page_size=50),
            args.repeat,
        )
        plain_seconds, _ = _timed(lambda: runs_page(warehouse, "bench", page_size=50), args.repeat)
        curve_ids = warehouse.query("SELECT DISTINCT run_id FROM run_metrics WHERE step > 0 LIMIT 50")["run_id"].tolist()
        compare_seconds, comparison = _timed(lambda: compare_runs(warehouse, curve_ids), args.repeat)
        curves_seconds, curves = _timed(lambda: metric_curves(warehouse, curve_ids[:10], "roc_auc"), args.repeat)

        def log_thousand() -> None:
            with start_run("bench-logging", warehouse=warehouse) as run:
                for step in range(1000):
                    run.log_metric("loss", 1.0 / (step + 1), step=step)

        logging_seconds, _ = _timed(log_thousand, max(1, args.repeat // 2))

    print(f"baseline unit of work (SELECT count(*)):            {baseline * 1000:7.1f} ms")
    rows = [
        (f"runs_page, sorted by metric, 2 filters ({page.total:,} match)", page_seconds),
        ("runs_page, default sort, no filter", plain_seconds),
        (f"compare_runs, {len(curve_ids)} runs ({len(comparison.params)} params, {len(comparison.metrics)} metrics)", compare_seconds),
        (f"metric_curves, 10 runs ({len(curves):,} points)", curves_seconds),
        ("log 1,000 metric points (start, log, end)", logging_seconds),
    ]
    for label, seconds in rows:
        print(f"{label:<55} {seconds * 1000:7.1f} ms  ({seconds / baseline:4.1f}x baseline)")


if __name__ == "__main__":
    main()
