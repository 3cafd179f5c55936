"""Monitoring a big window: time, agreement with Evidently on more data, and the page's reads.

Builds, in a temporary home (or ``--home``), a reference dataset of ``--reference-rows``
rows (default 1M) and one daily window of ``--rows`` logged predictions (default 10M) with
20 features (16 numbers, 4 categories). The window's numbers are shifted by amounts spread
around Evidently's 0.1 threshold (normed Wasserstein distance is about the shift), so the
decisions are not all easy. Then, in one process:

* ``import evidently`` on its own (paid once per process);
* the monitoring job on the window (sampled in DuckDB; Evidently on the samples; results,
  KPIs and the snapshot stored);
* baselines: Evidently's same drift metrics on 100k rows a side (sampled the same way), and
  a plain DuckDB scan of the window (count and mean of every feature);
* agreement of the stored drifted flags with Evidently's on the FULL window and reference
  for the ``--full-columns`` features nearest the threshold (one column at a time, to bound
  memory), and with Evidently on ``--large-sample`` rows a side for all 20 features;
* the monitoring page's reads from stored results (status, KPI tiles, history, drift table,
  a distribution, alerts), each in its own unit of work like a fresh page load.

    .venv/bin/python benchmarks/monitoring_benchmark.py [--rows 10000000] [--reference-rows 1000000]
        [--full-columns 6] [--large-sample 300000] [--page-home PATH]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from mlops_app.alerts import list_alerts
from mlops_app.config import load_settings
from mlops_app.datasets import Dataset, Column, register_dataset
from mlops_app.monitoring import (
    feature_distributions,
    feature_drift_table,
    kpi_tiles,
    model_status,
    run_monitor,
    window_history,
)
from mlops_app.registry import Registry
from mlops_app.warehouse import Warehouse

MODEL = "bench-grader"
DATASET = "bench"
NUMERIC = [f"x{i:02d}" for i in range(16)]
CATEGORICAL = [f"k{i}" for i in range(4)]
FEATURES = [*NUMERIC, *CATEGORICAL]
# Shifts in standard deviations: several sit within 0.02 of the 0.1 threshold.
SHIFTS = [0.0, 0.0, 0.02, 0.04, 0.06, 0.08, 0.09, 0.11, 0.12, 0.15, 0.2, 0.3, 0.5, 0.8, 1.0, 2.0]
# Category shares (a, b, c, d): reference, and the window's per column (two calm, one mild, one strong change).
REFERENCE_SHARES = (0.4, 0.3, 0.2, 0.1)
WINDOW_SHARES = [(0.4, 0.3, 0.2, 0.1), (0.4, 0.3, 0.2, 0.1), (0.34, 0.3, 0.23, 0.13), (0.1, 0.2, 0.3, 0.4)]
REFERENCE_DAY = datetime(2026, 1, 1, tzinfo=UTC)
WINDOW_DAY = datetime(2026, 2, 1, tzinfo=UTC)
SAMPLE_ROWS = 100_000  # the monitoring default


def _normal(shift: float) -> str:
    # Box-Muller from two uniform draws: DuckDB has no normal generator.
    return f"({shift} + sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random()))"


def _category(shares: tuple[float, ...]) -> str:
    edges = np.cumsum(shares)[:-1]
    cases = " ".join(f"WHEN u < {edge:.4f} THEN '{label}'" for edge, label in zip(edges, "abc", strict=False))
    return f"CASE {cases} ELSE 'd' END"


def build(home: Path, rows: int, reference_rows: int) -> tuple[object, Warehouse]:
    settings = load_settings({"MLOPS_APP_HOME": str(home)})
    warehouse = Warehouse.from_settings(settings)
    started = time.perf_counter()
    numbers = ", ".join(f"{_normal(0.0)} AS {name}" for name in NUMERIC)
    with warehouse.transaction() as connection:
        connection.execute("SELECT setseed(0.42)")
        categories = ", ".join(
            f"(SELECT {_category(REFERENCE_SHARES)} FROM (SELECT random() + 0 * i AS u)) AS {name}" for name in CATEGORICAL
        )
        connection.execute(
            f"""
            CREATE TABLE ds_{DATASET} AS
            SELECT 'r' || i AS row_id, TIMESTAMPTZ '{REFERENCE_DAY.isoformat()}' + to_microseconds((i * 86400000000 // {reference_rows})::BIGINT) AS at,
                   {numbers}, {categories}, 'b0' AS _batch_id
            FROM range({reference_rows}) t(i)
            """
        )
        connection.execute(f"ALTER TABLE ds_{DATASET} ADD COLUMN is_bad BOOLEAN")
        connection.execute(f"UPDATE ds_{DATASET} SET is_bad = x00 + x08 + {_normal(0.0)} > 1.5")
        register_dataset(
            warehouse,
            Dataset(
                DATASET, "benchmark reference", "bench", "bench",
                (Column("row_id", "VARCHAR", "id"), Column("at", "TIMESTAMPTZ", "timestamp"),
                 *(Column(name, "DOUBLE") for name in NUMERIC), *(Column(name, "VARCHAR") for name in CATEGORICAL),
                 Column("is_bad", "BOOLEAN", "target")),
                target="is_bad", id_column="row_id", time_column="at",
            ),
            con=connection,
        )  # fmt: skip
    print(f"reference: {reference_rows:,} rows in {time.perf_counter() - started:.1f} s")
    sample = warehouse.query(f"SELECT * FROM ds_{DATASET} USING SAMPLE reservoir(50000 ROWS) REPEATABLE (1)")
    pipeline = Pipeline(
        [
            ("prepare", ColumnTransformer([("n", StandardScaler(), NUMERIC), ("c", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL)])),
            ("model", LogisticRegression(max_iter=300)),
        ]
    ).fit(sample[FEATURES], sample["is_bad"].astype(bool))
    registry = Registry(settings.registry_path)
    version = registry.register_version(
        MODEL, pipeline, actor="bench@example", metrics={"recall_bad": 0.9}, features=FEATURES,
        input_schema=[{"name": n, "dtype": "DOUBLE"} for n in NUMERIC] + [{"name": n, "dtype": "VARCHAR"} for n in CATEGORICAL],
        extra={"dataset": DATASET, "target": "is_bad", "training_window": {"start": "2026-01-01", "end": "2026-01-01"},
               "targets": {"recall_bad": {"min": 0.8}, "false_discard_rate": {"max": 0.1}}},
    )  # fmt: skip
    registry.set_alias(MODEL, "champion", version.version, actor="bench@example")
    (home / "monitoring").mkdir(parents=True, exist_ok=True)
    (home / "monitoring" / f"{MODEL}.yaml").write_text(
        f"model: {MODEL}\nsample_rows: {SAMPLE_ROWS}\nretrain:\n  enabled: false\n", encoding="utf-8"
    )

    started = time.perf_counter()
    pairs = []
    for index, (name, shift) in enumerate(zip(NUMERIC, SHIFTS, strict=True)):
        pairs.append(f"'{name}', round({_normal(shift)}, 4)")
    for name, shares in zip(CATEGORICAL, WINDOW_SHARES, strict=True):
        pairs.append(f"'{name}', (SELECT {_category(shares)} FROM (SELECT random() + 0 * i AS u))")
    chunk = 2_000_000
    for first in range(0, rows, chunk):
        count = min(chunk, rows - first)
        with warehouse.transaction() as connection:
            connection.execute(
                f"""
                INSERT INTO predictions (prediction_id, model, version, entity_id, event_time, scored_at, features, prediction, score, batch_id)
                SELECT 'p' || i, '{MODEL}', 1, 'e' || i,
                       TIMESTAMPTZ '{WINDOW_DAY.isoformat()}' + to_microseconds((i * 86400000000 // {rows})::BIGINT),
                       TIMESTAMPTZ '{WINDOW_DAY.isoformat()}', json_object({", ".join(pairs)}),
                       CASE WHEN random() < 0.2 THEN 'true' ELSE 'false' END, random(), 'bench'
                FROM range({first}, {first + count}) t(i)
                """
            )
    print(f"window: {rows:,} logged predictions in {time.perf_counter() - started:.1f} s")
    return settings, warehouse


def _sample_frames(warehouse: Warehouse, rows: int, columns: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    extract = ", ".join(
        f"TRY_CAST(json_extract_string(features, '$.{name}') AS DOUBLE) AS {name}" if name in NUMERIC else f"json_extract_string(features, '$.{name}') AS {name}"
        for name in columns
    )
    current = warehouse.query(
        f"SELECT {extract} FROM predictions p JOIN (SELECT r FROM (SELECT rowid AS r FROM predictions WHERE model = $1) "
        f"USING SAMPLE reservoir({rows} ROWS) REPEATABLE (3)) s ON p.rowid = s.r",
        [MODEL],
    )
    reference = warehouse.query(f"SELECT {', '.join(columns)} FROM ds_{DATASET} USING SAMPLE reservoir({rows} ROWS) REPEATABLE (3)")
    return reference, current


def _evidently_flags(reference: pd.DataFrame, current: pd.DataFrame, columns: list[str]) -> dict[str, bool]:
    from evidently import DataDefinition, Dataset as EvidentlyDataset, Report
    from evidently.metrics import ValueDrift

    definition = DataDefinition(
        numerical_columns=[c for c in columns if c in NUMERIC], categorical_columns=[c for c in columns if c in CATEGORICAL]
    )
    snapshot = Report([ValueDrift(column=c) for c in columns], include_tests=True).run(
        EvidentlyDataset.from_pandas(current[columns], data_definition=definition),
        EvidentlyDataset.from_pandas(reference[columns], data_definition=definition),
    )
    return {
        test["metric_config"]["params"]["column"]: str(getattr(test["status"], "value", test["status"])) == "FAIL"
        for test in snapshot.dict()["tests"]
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--reference-rows", type=int, default=1_000_000)
    parser.add_argument("--full-columns", type=int, default=6, help="features checked against Evidently on the full data")
    parser.add_argument("--large-sample", type=int, default=300_000, help="rows a side for Evidently on all 20 features (0: skip)")
    parser.add_argument("--home", type=Path, default=None)
    parser.add_argument("--page-home", type=Path, default=None, help="also time the page's reads on this home (e.g. the demo)")
    args = parser.parse_args()
    home = args.home or Path(tempfile.mkdtemp(prefix="monitoring-bench-")) / "home"
    settings, warehouse = build(home, args.rows, args.reference_rows)

    started = time.perf_counter()
    import evidently  # noqa: F401 - timed on its own: paid once per process

    import_seconds = time.perf_counter() - started
    print(f"\nimport evidently: {import_seconds:.1f} s")

    started = time.perf_counter()
    report = run_monitor(settings, MODEL, until=datetime(2026, 2, 2, tzinfo=UTC), retrain=False, notify=False)
    monitor_seconds = time.perf_counter() - started
    assert report.ok and len(report.runs[0].computed) == 1, report.message
    window = warehouse.query("SELECT rows, sampled_rows, reference_rows, drift_share, seconds FROM monitor_windows").iloc[0]
    ours = dict(warehouse.query("SELECT feature, drifted FROM drift_results WHERE role = 'feature'").itertuples(index=False, name=None))
    print(
        f"monitoring the {int(window['rows']):,}-row window: {monitor_seconds:.1f} s (+ {import_seconds:.1f} s import = "
        f"{monitor_seconds + import_seconds:.1f} s cold); {int(window['sampled_rows']):,} window rows and "
        f"{int(window['reference_rows']):,} reference rows compared; drift share {window['drift_share']:.2f}"
    )

    started = time.perf_counter()
    reference, current = _sample_frames(warehouse, 100_000, FEATURES)
    sample_seconds = time.perf_counter() - started
    started = time.perf_counter()
    _evidently_flags(reference, current, FEATURES)
    evidently_seconds = time.perf_counter() - started
    print(f"baseline: Evidently's drift metrics on 100k rows a side: {evidently_seconds:.1f} s (+ {sample_seconds:.1f} s to sample in DuckDB)")
    started = time.perf_counter()
    means = ", ".join(f"avg(TRY_CAST(json_extract_string(features, '$.{name}') AS DOUBLE))" for name in NUMERIC)
    warehouse.query_one(f"SELECT count(*), {means} FROM predictions WHERE model = $1", [MODEL])
    scan_seconds = time.perf_counter() - started
    print(f"baseline: a plain DuckDB scan of the window (count and mean of the 16 numbers): {scan_seconds:.1f} s")
    print(f"ratio monitoring / Evidently on 100k: {monitor_seconds / evidently_seconds:.2f}; monitoring / scan: {monitor_seconds / scan_seconds:.2f}")

    # Agreement on the full data for the columns nearest the threshold (the hard ones).
    nearest = sorted(NUMERIC, key=lambda name: abs(SHIFTS[NUMERIC.index(name)] - 0.1))[: max(args.full_columns - 1, 0)]
    full_columns = [*nearest, CATEGORICAL[2]][: args.full_columns]
    agree = 0
    started = time.perf_counter()
    for name in full_columns:
        value = f"TRY_CAST(json_extract_string(features, '$.{name}') AS DOUBLE)" if name in NUMERIC else f"json_extract_string(features, '$.{name}')"
        current_full = warehouse.query(f"SELECT {value} AS {name} FROM predictions WHERE model = $1", [MODEL])
        reference_full = warehouse.query(f"SELECT {name} FROM ds_{DATASET}")
        flag = _evidently_flags(reference_full, current_full, [name])[name]
        agree += flag == ours[name]
        print(f"  {name}: ours {'drifted' if ours[name] else 'calm'}, Evidently on all {len(current_full):,} / {len(reference_full):,} rows "
              f"{'drifted' if flag else 'calm'}")
        del current_full, reference_full
    print(f"agreement with Evidently on the full data: {agree}/{len(full_columns)} features ({time.perf_counter() - started:.0f} s)")
    if args.large_sample:
        started = time.perf_counter()
        reference, current = _sample_frames(warehouse, args.large_sample, FEATURES)
        flags = _evidently_flags(reference, current, FEATURES)
        same = sum(flags[name] == ours[name] for name in FEATURES)
        differ = [name for name in FEATURES if flags[name] != ours[name]]
        print(
            f"agreement with Evidently on {args.large_sample:,} rows a side, all 20 features: {same}/20 = {same / 20:.0%}"
            f"{' (differ: ' + ', '.join(differ) + ')' if differ else ''} ({time.perf_counter() - started:.0f} s)"
        )

    for label, path in (("benchmark home", home), ("page home", args.page_home)):
        if path is None:
            continue
        page_warehouse = Warehouse.from_settings(load_settings({"MLOPS_APP_HOME": str(path)}))
        model = page_warehouse.query("SELECT model FROM monitor_windows GROUP BY model ORDER BY count(*) DESC LIMIT 1")["model"][0]
        feature = feature_drift_table(page_warehouse, model)["feature"][0]
        times = []
        for _ in range(5):
            started = time.perf_counter()
            model_status(page_warehouse, model)
            kpi_tiles(page_warehouse, model)
            window_history(page_warehouse, model)
            feature_drift_table(page_warehouse, model)
            feature_distributions(page_warehouse, model, feature)
            list_alerts(page_warehouse, model)
            times.append(time.perf_counter() - started)
        windows = page_warehouse.query_one("SELECT count(*) FROM monitor_windows WHERE model = $1", [model])[0]
        print(f"page reads on the {label} ({model}, {windows} windows): median {statistics.median(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
