"""Feature store: point-in-time training set build time, and the page's library reads.

Builds a harvest of ``--rows`` apples (default 1M) in a temporary warehouse, registers 20
features (10 raw per apple, 10 windowed aggregates per orchard block over 4 windows and two
availability columns, so 5 value tables), materialises them, then times:

* a point-in-time training set of every apple (1M entity rows x 20 features) from a
  DataFrame, and from the dataset name; baselines in the same process: a plain DuckDB
  hash join of the same rows to the raw value table (no time condition, 10 columns), and
  a one-feature point-in-time set, so the ratios show what time-correctness and width cost;
* the page: 1,000 registered features (980 more, not materialised), applying them, listing
  (all, and a search), and opening one (detail, statistics, histogram, trend, freshness,
  lineage against a registry of a few model versions).

    .venv/bin/python benchmarks/features_benchmark.py [--rows 1000000] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from mlops_app import features as F
from mlops_app.auth import Identity
from mlops_app.datasets import Dataset, columns_from_frame, create_dataset_table
from mlops_app.registry import Registry
from mlops_app.warehouse import Warehouse

ADMIN = Identity("bench@orchard.example", "bench", "admin", "local")
MEASUREMENTS = [f"m{i}" for i in range(10)]


def _harvest(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2026-06-01", tz="UTC")
    graded = start + pd.to_timedelta(np.sort(rng.integers(0, 150 * 86400, rows)), unit="s")
    frame = pd.DataFrame(
        {
            "apple_id": [f"apple-{i:08d}" for i in range(rows)],
            "graded_at": graded,
            "orchard_block": rng.choice([f"block-{i:02d}" for i in range(40)], rows),
            **{name: rng.normal(100, 20, rows).round(2) for name in MEASUREMENTS},
            "is_bad": pd.array(rng.random(rows) < 0.1, dtype="boolean"),
        }
    )
    labelled = rng.random(rows) < 0.9
    frame["label_received_at"] = pd.Series(graded + pd.to_timedelta(rng.integers(2 * 86400, 6 * 86400, rows), unit="s")).where(labelled)
    frame.loc[~labelled, "is_bad"] = pd.NA
    return frame


def _definitions(extra: int) -> str:
    entries = [
        {"name": name, "entity": "apple", "dataset": "harvest", "value_type": "number", "tags": ["measurement"], "owner": "quality@orchard.example"}
        for name in MEASUREMENTS
    ]
    aggregates = [
        ("block_m0_avg_7d", "m0", "avg", "7d", None), ("block_m1_avg_7d", "m1", "avg", "7d", None),
        ("block_m2_high_share_7d", "m2 > 120", "share", "7d", None), ("block_apples_3d", "apple_id", "count", "3d", None),
        ("block_m3_avg_3d", "m3", "avg", "3d", None), ("block_bad_share_14d", "is_bad", "share", "14d", "label_received_at"),
        ("block_labels_14d", "is_bad", "count", "14d", "label_received_at"), ("block_m4_avg_24h", "m4", "avg", "24h", None),
        ("block_m5_max_24h", "m5", "max", "24h", None), ("block_m6_sum_24h", "m6", "sum", "24h", None),
    ]  # fmt: skip
    for name, expression, aggregation, window, available_at in aggregates:
        entry = {"name": name, "entity": "orchard_block", "dataset": "harvest", "kind": "aggregate", "expression": expression,
                 "aggregation": aggregation, "window": window, "tags": ["orchard"], "owner": "orchard@orchard.example",
                 "value_type": "integer" if aggregation == "count" else "number"}  # fmt: skip
        if available_at:
            entry["available_at"] = available_at
        entries.append(entry)
    for index in range(extra):  # distinct windows: each its own (unmaterialised) value table
        entries.append(
            {"name": f"catalogue_filler_{index:04d}", "entity": "orchard_block", "dataset": "harvest", "kind": "aggregate",
             "expression": MEASUREMENTS[index % 10], "aggregation": "avg", "window": f"{25 + index}h", "value_type": "number",
             "description": f"Filler feature {index} for the catalogue benchmark", "tags": [f"team-{index % 7}"],
             "owner": f"team-{index % 7}@orchard.example"}  # fmt: skip
        )
    return (
        "entities:\n  - {name: apple, key: apple_id}\n  - {name: orchard_block, key: orchard_block}\nfeatures:\n"
        + "\n".join("  - " + json.dumps(entry) for entry in entries)
        + "\n"
    )


def _timed(work, runs: int) -> tuple[float, object]:
    timings, result = [], None
    for _ in range(runs):
        started = time.perf_counter()
        result = work()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings), result


def _registry_with_models(root: Path, features: list[str]) -> Registry:
    from sklearn.linear_model import LogisticRegression

    registry = Registry(root)
    rng = np.random.default_rng(1)
    for model in ("apple-grader", "sugar-estimator", "block-risk"):
        for version in range(2):
            x = pd.DataFrame(rng.normal(size=(40, 3)), columns=features[:3])
            estimator = LogisticRegression().fit(x, rng.random(40) < 0.5)
            registry.register_version(model, estimator, actor=ADMIN.email, features=features[version::2], description="bench")
    return registry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        warehouse = Warehouse(Path(scratch) / "warehouse.duckdb", lock_timeout=600)
        warehouse.migrate()
        started = time.perf_counter()
        harvest = _harvest(args.rows)
        dataset = Dataset("harvest", "bench", "bench", "bench", tuple(columns_from_frame(harvest, {"apple_id": "id", "graded_at": "timestamp"})),
                          id_column="apple_id", time_column="graded_at", freshness_hours=36)  # fmt: skip
        with warehouse.transaction() as connection:
            create_dataset_table(connection, warehouse, dataset, harvest)
        print(f"generated and loaded {args.rows:,} rows in {time.perf_counter() - started:.1f} s")

        feature_set = F.definitions_from_yaml(_definitions(extra=980))
        started = time.perf_counter()
        F.apply_features(warehouse, feature_set, ADMIN)
        print(f"apply (validate + register) {len(feature_set.features):,} definitions: {time.perf_counter() - started:.2f} s")
        names = [f.name for f in feature_set.features if not f.name.startswith("catalogue_filler_")]
        started = time.perf_counter()
        result = F.materialize(warehouse, ADMIN, names)
        print(f"materialise {len(names)} features into {len(result.tables)} value tables: {time.perf_counter() - started:.1f} s "
              f"({sum(result.rows.values()):,} value rows)")  # fmt: skip

        entities = harvest[["apple_id", "graded_at", "orchard_block"]]
        full, frame = _timed(lambda: F.training_set(warehouse, entities, names, time_column="graded_at"), args.runs)
        assert frame.shape == (args.rows, 3 + len(names)), frame.shape
        from_dataset, _ = _timed(lambda: F.training_set(warehouse, "harvest", names), args.runs)
        one, _ = _timed(lambda: F.training_set(warehouse, entities, ["block_m0_avg_7d"], time_column="graded_at"), args.runs)
        raw_table = next(table for table, members in result.tables.items() if "m0" in members)

        def plain_join() -> pd.DataFrame:
            with warehouse.read() as connection:
                connection.register("entities", entities)
                try:
                    columns = ", ".join(f"r.{name}" for name in MEASUREMENTS)
                    return connection.execute(
                        f"SELECT e.*, {columns} FROM entities e LEFT JOIN {raw_table} r ON r.entity_key = e.apple_id"
                    ).df()
                finally:
                    connection.unregister("entities")

        baseline, _ = _timed(plain_join, args.runs)
        print(f"training set {args.rows:,} x {len(names)} features (DataFrame in): median {full:.2f} s "
              f"(target < 10 s); from the dataset name: {from_dataset:.2f} s")  # fmt: skip
        print(f"  baseline plain hash join, same rows x 10 raw columns, no time: {baseline:.2f} s -> ratio {full / baseline:.1f}x")
        print(f"  baseline one-feature point-in-time set: {one:.2f} s -> ratio {full / one:.1f}x")

        registry = _registry_with_models(Path(scratch) / "registry", names)
        listed, listing = _timed(lambda: F.list_features(warehouse), args.runs)
        searched, found = _timed(lambda: F.list_features(warehouse, search="block", tag="orchard"), args.runs)

        def open_one(name: str) -> None:
            overview = F.feature_overview(warehouse, registry, name)
            assert overview.statistics is not None and overview.lineage.models

        opened_aggregate, _ = _timed(lambda: open_one("block_m0_avg_7d"), args.runs)
        opened_raw, _ = _timed(lambda: open_one("m1"), args.runs)
        print(f"page: list {len(listing):,} features {listed * 1000:.0f} ms; search+tag ({len(found)} hits) {searched * 1000:.0f} ms")
        print(f"page: open one (detail, statistics, histogram, trend, freshness, lineage): aggregate {opened_aggregate * 1000:.0f} ms, "
              f"raw {opened_raw * 1000:.0f} ms (target < 1 s)")  # fmt: skip


if __name__ == "__main__":
    main()
