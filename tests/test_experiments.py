"""Page reads: runs tables (sort, filter, paginate), comparisons, curves; registering a run's model."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from mlops_app.auth import Identity
from mlops_app.errors import MlopsError, NotFoundError, PermissionDeniedError
from mlops_app.experiments import (
    RunFilter,
    compare_runs,
    get_run,
    list_experiments,
    metric_curves,
    metric_higher_is_better,
    parse_filters,
    register_run_model,
    run_keys,
    run_points,
    runs_page,
)
from mlops_app.registry import Registry
from mlops_app.tracking import start_run
from mlops_app.warehouse import Warehouse

REVIEWER = Identity("rui@orchard.example", "Rui", "reviewer", "local")
VIEWER = Identity("vic@orchard.example", "Vic", "viewer", "local")


@pytest.fixture
def warehouse(tmp_path: Path) -> Warehouse:
    return Warehouse(tmp_path / "home" / "warehouse.duckdb", lock_timeout=30)


@pytest.fixture(scope="module")
def grader_home(tmp_path_factory) -> tuple[Path, list[str]]:
    """A warehouse logged once per module (tests get a copy): see :func:`grader_runs`."""
    path = tmp_path_factory.mktemp("grader") / "warehouse.duckdb"
    return path, log_grader_runs(Warehouse(path, lock_timeout=30))


@pytest.fixture
def grader_runs(warehouse: Warehouse, grader_home: tuple[Path, list[str]]) -> list[str]:
    """Twelve runs: C = 0.01 .. 0.12, roc_auc rising with C, one failed run without metrics;
    and one run of another experiment. Returns the grader run ids in logging order."""
    source, ids = grader_home
    warehouse.path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, warehouse.path)
    return ids


def log_grader_runs(warehouse: Warehouse) -> list[str]:
    ids = []
    for index in range(12):
        family = "logistic_regression" if index % 2 == 0 else "random_forest"
        with start_run("grader", name=f"trial {index}", warehouse=warehouse, params={"family": family, "C": (index + 1) / 100}) as run:
            run.log_metrics({"roc_auc": 0.80 + index / 100, "mae": 1.0 - index / 20})
            run.set_tag("role", "winner" if index == 7 else "trial")
        ids.append(run.run_id)
    with pytest.raises(RuntimeError), start_run("grader", name="broken", warehouse=warehouse, params={"family": "broken"}) as run:
        raise RuntimeError("out of memory")
    ids.append(run.run_id)
    with start_run("other", warehouse=warehouse):
        pass
    return ids


def test_list_experiments_counts_runs_by_status(warehouse: Warehouse, grader_runs: list[str]) -> None:
    frame = list_experiments(warehouse).set_index("name")
    assert frame.loc["grader", ["runs", "finished", "failed", "running"]].tolist() == [13, 12, 1, 0]
    assert frame.loc["other", "runs"] == 1


def test_runs_sort_by_a_metric_both_ways_with_missing_values_last(warehouse: Warehouse, grader_runs: list[str]) -> None:
    best_first = runs_page(warehouse, "grader", sort_by="metric.roc_auc", descending=True, page_size=20)
    assert best_first.total == 13
    assert best_first.rows["name"].tolist()[:3] == ["trial 11", "trial 10", "trial 9"]
    assert best_first.rows["name"].iloc[-1] == "broken"
    worst_first = runs_page(warehouse, "grader", sort_by="metric.roc_auc", descending=False, page_size=20)
    assert worst_first.rows["name"].tolist()[:2] == ["trial 0", "trial 1"]
    assert worst_first.rows["name"].iloc[-1] == "broken"
    # Params sort as numbers: 0.1 after 0.09.
    by_c = runs_page(warehouse, "grader", sort_by="param.C", descending=False, page_size=20)
    assert by_c.rows["param.C"].tolist()[8:12] == ["0.09", "0.1", "0.11", "0.12"]
    assert {"param.family", "metric.roc_auc", "metric.mae", "tag.role", "duration_s"} <= set(best_first.rows.columns)


def test_runs_paginate_with_a_stable_total(warehouse: Warehouse, grader_runs: list[str]) -> None:
    pages = [runs_page(warehouse, "grader", sort_by="name", descending=False, page=page, page_size=5) for page in (1, 2, 3, 4)]
    assert [len(page.rows) for page in pages] == [5, 5, 3, 0]
    assert {page.total for page in pages} == {13}
    names = [name for page in pages for name in page.rows["name"]]
    assert len(set(names)) == 13
    with pytest.raises(MlopsError, match="Page numbers start at 1"):
        runs_page(warehouse, "grader", page=0)
    with pytest.raises(MlopsError, match="Page size must be between 1 and 500"):
        runs_page(warehouse, "grader", page_size=10_000)


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ([RunFilter("metric", "roc_auc", ">=", 0.9)], {"trial 10", "trial 11"}),
        ([RunFilter("param", "family", "=", "random_forest"), RunFilter("param", "C", "<", 0.05)], {"trial 1", "trial 3"}),
        ([RunFilter("param", "family", "!=", "logistic_regression"), RunFilter("metric", "mae", "<", 0.5)], {"trial 11"}),
        ([RunFilter("param", "family", "contains", "BROK")], {"broken"}),
        ([RunFilter("tag", "role", "=", "winner")], {"trial 7"}),
        ([RunFilter("status", op="=", value="failed")], {"broken"}),
        (parse_filters("status in finished, failed and metric.roc_auc > 0.905 and param.C >= 0.12"), {"trial 11"}),
    ],
)
def test_runs_filter_by_param_metric_tag_and_status(warehouse: Warehouse, grader_runs: list[str], filters, expected) -> None:
    page = runs_page(warehouse, "grader", filters=filters)
    assert set(page.rows["name"]) == expected
    assert page.total == len(expected)


def test_runs_filter_by_date(warehouse: Warehouse, grader_runs: list[str]) -> None:
    warehouse.execute("UPDATE runs SET started_at = started_at - INTERVAL 30 DAY WHERE name IN ('trial 0', 'trial 1')")
    cutoff = datetime.now(UTC) - timedelta(days=10)
    old = runs_page(warehouse, "grader", filters=[RunFilter("date", op="<", value=cutoff)])
    assert set(old.rows["name"]) == {"trial 0", "trial 1"}
    recent = runs_page(warehouse, "grader", filters=parse_filters(f"date >= {cutoff.date().isoformat()}"))
    assert recent.total == 11


def test_a_filter_value_is_data_not_sql(warehouse: Warehouse, grader_runs: list[str]) -> None:
    page = runs_page(warehouse, "grader", filters=[RunFilter("param", "family", "=", "x' OR '1'='1")])
    assert page.total == 0
    assert warehouse.query_one("SELECT count(*) FROM runs") == (14,)


def test_bad_sort_keys_filters_and_experiments_are_explained(warehouse: Warehouse, grader_runs: list[str]) -> None:
    with pytest.raises(NotFoundError, match="No experiment named 'graders'. Experiments: grader, other"):
        runs_page(warehouse, "graders")
    with pytest.raises(MlopsError, match="Cannot sort runs by 'colour'"):
        runs_page(warehouse, "grader", sort_by="colour")
    with pytest.raises(MlopsError, match="compares numbers, but 'high' is not a number"):
        runs_page(warehouse, "grader", filters=[RunFilter("metric", "roc_auc", ">", "high")])
    with pytest.raises(MlopsError, match="Cannot read the filter 'roc_auc high'"):
        parse_filters("roc_auc high")
    with pytest.raises(MlopsError, match="statuses running, finished, failed"):
        runs_page(warehouse, "grader", filters=[RunFilter("status", op="=", value="done")])


def test_compare_flags_param_differences_and_marks_the_better_metric(warehouse: Warehouse, grader_runs: list[str]) -> None:
    first, second, third = grader_runs[0], grader_runs[1], grader_runs[2]
    comparison = compare_runs(warehouse, [third, first, second])
    assert comparison.runs["run_id"].tolist() == [third, first, second]
    assert comparison.params.loc["C", [third, first, second]].tolist() == ["0.03", "0.01", "0.02"]
    assert comparison.params["differs"].to_dict() == {"C": True, "family": True}
    assert comparison.metrics.loc["roc_auc", "best"] == [third]  # higher is better
    assert comparison.metrics.loc["mae", "best"] == [third]  # lower is better: 0.9 beats 0.95 and 1.0
    assert comparison.metrics.loc["mae", "higher_is_better"] is False
    same_family = compare_runs(warehouse, [first, third])
    assert not same_family.params.loc["family", "differs"]
    with pytest.raises(NotFoundError, match="No run with id 0123abcd"):
        compare_runs(warehouse, [first, "0123abcd"])
    with pytest.raises(MlopsError, match="Select at least one run"):
        compare_runs(warehouse, [])


def test_metric_direction_follows_the_catalogue_behind_prefixes() -> None:
    assert metric_higher_is_better("holdout_recall_bad") is True
    assert metric_higher_is_better("cv_mae") is False
    assert metric_higher_is_better("cv_roc_auc_std") is False
    assert metric_higher_is_better("val_loss") is False
    assert metric_higher_is_better("apples_per_second") is None


def test_curves_come_back_ordered_by_step(warehouse: Warehouse) -> None:
    with start_run("curves", warehouse=warehouse) as run:
        for step in (3, 1, 2, 0):
            run.log_metric("loss", 1.0 / (step + 1), step=step)
        run.log_metric("loss", 0.2, step=3)  # a step logged twice: the last value counts
    curve = metric_curves(warehouse, [run.run_id], "loss")
    assert curve["step"].tolist() == [0, 1, 2, 3]
    assert curve["value"].tolist() == pytest.approx([1.0, 0.5, 1 / 3, 0.2])
    assert metric_curves(warehouse, [run.run_id], "accuracy").empty


def test_run_points_and_keys_feed_the_charts(warehouse: Warehouse, grader_runs: list[str]) -> None:
    points = run_points(warehouse, "grader", params=["C", "family"], metrics=["roc_auc"], filters=parse_filters("status = finished"))
    assert len(points) == 12
    assert points["param.C"].dtype == "float64" and points["param.family"].dtype != "float64"
    assert points.set_index("name").loc["trial 4", "metric.roc_auc"] == pytest.approx(0.84)
    assert run_keys(warehouse, "grader") == {"params": ["C", "family"], "metrics": ["mae", "roc_auc"], "tags": ["role"]}


def register_fixture_run(warehouse: Warehouse, *, with_model: bool = True) -> str:
    features = np.array([[1.0, 60.0], [2.0, 70.0], [3.0, 50.0], [4.0, 80.0]])
    with start_run("grader", warehouse=warehouse, params={"C": 1.0}, dataset_fingerprint="4-rows-abc") as run:
        run.log_metrics({"roc_auc": 0.9})
        run.log_result("holdout", {"metrics": {"roc_auc": 0.88, "recall_bad": 0.95}, "rows": 4})
        run.log_result("slices", [{"column": "orchard_block", "value": "block-a", "rows": 2, "metrics": {"recall_bad": 1.0}}])
        run.log_result(
            "model_inputs",
            {"features": ["weight_g", "firmness_n"], "input_schema": [{"name": "weight_g", "dtype": "DOUBLE"}, {"name": "firmness_n", "dtype": "DOUBLE"}]},
        )
        if with_model:
            run.log_model(LogisticRegression().fit(features, [0, 1, 0, 1]))
    return run.run_id


def test_registering_a_runs_model_carries_its_holdout_results(warehouse: Warehouse, tmp_path: Path) -> None:
    registry = Registry(tmp_path / "home" / "registry")
    run_id = register_fixture_run(warehouse)
    with pytest.raises(PermissionDeniedError, match="register model needs the reviewer role"):
        register_run_model(warehouse, registry, run_id, "apple-grader", VIEWER)
    assert registry.list_models() == []

    version = register_run_model(warehouse, registry, run_id, "apple-grader", REVIEWER)
    card = version.card
    assert (card["run_id"], card["author"], card["dataset_fingerprint"]) == (run_id, REVIEWER.email, "4-rows-abc")
    assert card["metrics"] == {"roc_auc": 0.88, "recall_bad": 0.95}  # holdout, not validation
    assert card["params"] == {"C": "1.0"}
    assert card["features"] == ["weight_g", "firmness_n"]
    assert card["extra"]["holdout_slices"][0]["value"] == "block-a"
    assert registry.load_model("apple-grader", 1).predict([[1.0, 60.0]]).shape == (1,)
    assert get_run(warehouse, run_id)["tags"]["registered_as"] == "apple-grader/1"


def test_a_run_without_a_model_or_not_finished_cannot_be_registered(warehouse: Warehouse, tmp_path: Path) -> None:
    registry = Registry(tmp_path / "home" / "registry")
    with pytest.raises(NotFoundError, match="logged no model"):
        register_run_model(warehouse, registry, register_fixture_run(warehouse, with_model=False), "apple-grader", REVIEWER)
    with pytest.raises(RuntimeError), start_run("grader", warehouse=warehouse) as failed:
        raise RuntimeError("boom")
    with pytest.raises(MlopsError, match="is failed; only a finished run's model can be registered"):
        register_run_model(warehouse, registry, failed.run_id, "apple-grader", REVIEWER)
    with pytest.raises(NotFoundError, match="No run with id feedbeef"):
        register_run_model(warehouse, registry, "feedbeef", "apple-grader", REVIEWER)
