"""The AutoML trainer on small synthetic orchards: searches, the untouched holdout, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression

from mlops_app.auth import Identity
from mlops_app.datasets import Dataset, columns_from_frame, create_dataset_table
from mlops_app.errors import MlopsError, NotFoundError
from mlops_app.experiments import run_results
from mlops_app.tracking import load_run_model
from mlops_app.training import CLASSIFICATION, Family, HistGradientBoostingClassifier, default_families, train
from mlops_app.warehouse import Warehouse

ANA = Identity("ana@orchard.example", "Ana", "reviewer", "local")
FEATURES = ["orchard_block", "variety", "weight_g", "firmness_n", "colour_score"]


def make_orchard(rows: int = 400, seed: int = 1) -> pd.DataFrame:
    """Apples graded hourly; bad ones are soft, and block-c bruises more (a slice to find)."""
    rng = np.random.default_rng(seed)
    block = rng.choice(["block-a", "block-b", "block-c"], rows)
    firmness = rng.normal(65, 8, rows)
    weight = rng.normal(180, 25, rows)
    risk = -0.15 * (firmness - 65) + np.where(block == "block-c", 1.0, 0.0) + rng.normal(0, 1, rows)
    return pd.DataFrame(
        {
            "apple_id": [f"apple-{index:05d}" for index in range(rows)],
            "graded_at": pd.date_range("2026-06-01", periods=rows, freq="h", tz="UTC"),
            "orchard_block": block,
            "variety": np.where(block == "block-a", "gala", "fuji"),
            "weight_g": weight.round(1),
            "firmness_n": firmness.round(1),
            "colour_score": rng.uniform(20, 90, rows).round(1),
            "sugar_brix": (9 + 0.02 * weight + 0.03 * firmness + rng.normal(0, 0.3, rows)).round(2),
            "is_bad": risk > 1.2,
        }
    )


def load_dataset(warehouse: Warehouse, name: str, frame: pd.DataFrame, **roles: str) -> None:
    """Register `frame` as dataset `name` (id apple_id, time graded_at, target is_bad; more `roles` by column)."""
    dataset = Dataset(
        name=name,
        description="synthetic apples",
        owner="test",
        source="test",
        columns=tuple(columns_from_frame(frame, {"apple_id": "id", "graded_at": "timestamp", "is_bad": "target", **roles})),
        target="is_bad",
        id_column="apple_id",
        time_column="graded_at",
    )
    with warehouse.transaction() as connection:
        create_dataset_table(connection, warehouse, dataset, frame)


@pytest.fixture
def warehouse(tmp_path: Path) -> Warehouse:
    created = Warehouse(tmp_path / "home" / "warehouse.duckdb", lock_timeout=30)
    load_dataset(created, "apples", make_orchard())
    return created


def cheap_families() -> tuple[Family, ...]:
    """Linear and boosting with tiny settings: fast, and still two families to choose from."""
    return (
        Family("logistic_regression", "linear", CLASSIFICATION, lambda p, seed: LogisticRegression(**p), {"C": (0.01, 0.1, 1.0, 10.0)}, {"C": 1.0}),
        Family(
            "hist_gradient_boosting", "boosting", CLASSIFICATION,
            lambda p, seed: HistGradientBoostingClassifier(categorical_features=None, random_state=seed, **p),
            {"max_iter": (10, 20), "learning_rate": (0.1, 0.3)}, {"max_iter": 20, "learning_rate": 0.1},
        ),
    )  # fmt: skip


def runs_of(warehouse: Warehouse, experiment: str) -> pd.DataFrame:
    return warehouse.query("SELECT run_id, name, status, error FROM runs WHERE experiment = $1 ORDER BY started_at", [experiment])


def test_classification_search_logs_every_trial_and_evaluates_the_winner_once(warehouse: Warehouse) -> None:
    calls: list[tuple[int, int, str]] = []
    result = train(
        warehouse, dataset="apples", target=None, experiment="grader", identity=ANA, trials=5,
        progress=lambda done, total, message: calls.append((done, total, message)),
    )  # fmt: skip
    assert (result.task, result.metric, result.higher_is_better, result.positive_class) == (CLASSIFICATION, "roc_auc", True, True)
    assert {trial.family for trial in result.trials} == {family.name for family in default_families(CLASSIFICATION)}
    assert result.failed_trials == 0
    runs = runs_of(warehouse, "grader")
    assert len(runs) == 6 and set(runs["status"]) == {"finished"}

    best = max(result.trials, key=lambda trial: trial.validation_score)
    assert result.selected_trial_run_id == best.run_id
    assert result.validation_score == best.validation_score

    # Every trial has its params, cross-validation and validation metrics.
    metrics = warehouse.query("SELECT run_id, key FROM run_metrics")
    for trial in result.trials:
        keys = set(metrics[metrics["run_id"] == trial.run_id]["key"])
        assert {"roc_auc", "recall_bad", "cv_roc_auc", "cv_roc_auc_std"} <= keys
    # Ensembles log a validation curve; the run's latest value is the final model's.
    forest = next(trial for trial in result.trials if trial.family == "random_forest")
    curve = warehouse.query("SELECT step, value FROM run_metrics WHERE run_id = $1 AND key = 'roc_auc' ORDER BY step", [forest.run_id])
    assert len(curve) == 11 and curve["step"].iloc[-1] == 100
    assert curve["value"].iloc[-1] == pytest.approx(forest.validation_score)

    results = run_results(warehouse, result.winner_run_id)
    assert set(results) == {"holdout", "slices", "confusion_matrix", "calibration", "feature_importance", "split", "search", "model_inputs"}
    assert results["holdout"]["metrics"] == result.holdout_metrics
    assert results["holdout"]["rows"] == 80
    assert results["split"]["train"]["rows"] == 240 and results["split"]["validation"]["rows"] == 80
    assert results["split"]["train"]["end"] < results["split"]["validation"]["start"] < results["split"]["holdout"]["start"]
    assert {(entry["column"], entry["value"]) for entry in results["slices"]} >= {("orchard_block", "block-c"), ("variety", "gala")}
    assert sum(sum(row) for row in results["confusion_matrix"]["matrix"]) == 80
    assert results["feature_importance"]["features"][0]["feature"] == "firmness_n"  # the real signal
    assert results["model_inputs"]["features"] == ["weight_g", "firmness_n", "colour_score", "sugar_brix", "orchard_block", "variety"]

    model = load_run_model(warehouse, result.winner_run_id)
    assert model.predict_proba(make_orchard(5, seed=9)[results["model_inputs"]["features"]]).shape == (5, 2)
    assert calls[-1] == (6, 6, "Done")
    assert [done for done, _, _ in calls] == sorted(done for done, _, _ in calls)


def test_regression_search_optimises_mae(warehouse: Warehouse) -> None:
    result = train(warehouse, dataset="apples", target="sugar_brix", experiment="sugar", identity=ANA, trials=4, features=FEATURES[2:])
    assert (result.task, result.metric, result.higher_is_better) == ("regression", "mae", False)
    best = min(result.trials, key=lambda trial: trial.validation_score)
    assert result.selected_trial_run_id == best.run_id
    assert set(result.holdout_metrics) == {"mae", "rmse", "r2"}
    assert result.holdout_metrics["r2"] > 0.5
    results = run_results(warehouse, result.winner_run_id)
    assert "confusion_matrix" not in results
    assert len(results["calibration"]["bins"]) == 10


def test_the_holdout_is_never_used_to_select(warehouse: Warehouse) -> None:
    """Flipping every holdout label changes the holdout metrics but not one selection decision."""
    clean = make_orchard()
    corrupted = clean.copy()
    holdout_rows = corrupted.index >= 320  # the latest 20% by time
    corrupted.loc[holdout_rows, "is_bad"] = ~corrupted.loc[holdout_rows, "is_bad"]
    load_dataset(warehouse, "apples_corrupted", corrupted)

    def search(dataset: str):
        return train(
            warehouse, dataset=dataset, target="is_bad", experiment=dataset.replace("_", "-"), identity=ANA,
            trials=4, families=cheap_families(), seed=3,
        )  # fmt: skip

    honest, tampered = search("apples"), search("apples_corrupted")
    decisions = lambda result: [(t.family, t.params, t.validation_score, t.cv_score) for t in result.trials]  # noqa: E731
    assert decisions(honest) == decisions(tampered)
    assert (honest.family, honest.params) == (tampered.family, tampered.params)
    assert honest.holdout_metrics["roc_auc"] > 0.7 > tampered.holdout_metrics["roc_auc"]


class Jammed(ClassifierMixin, BaseEstimator):
    def fit(self, features, labels):
        raise RuntimeError("the sorting machine jammed")


class Undecided(ClassifierMixin, BaseEstimator):
    def fit(self, features, labels):
        self.classes_ = np.array([False, True])
        return self

    def predict_proba(self, features):
        return np.full((len(features), 2), np.nan)


def test_a_failing_trial_is_recorded_and_the_search_goes_on(warehouse: Warehouse) -> None:
    families = (
        Family("jammed", "linear", CLASSIFICATION, lambda p, seed: Jammed()),
        Family("undecided", "linear", CLASSIFICATION, lambda p, seed: Undecided()),
        cheap_families()[0],
    )
    result = train(warehouse, dataset="apples", target="is_bad", experiment="grader", identity=ANA, trials=3, families=families)
    assert [trial.status for trial in result.trials] == ["failed", "failed", "finished"]
    assert result.family == "logistic_regression"
    runs = runs_of(warehouse, "grader")
    failed = runs[runs["status"] == "failed"].set_index("name")["error"]
    assert failed["jammed #1"] == "RuntimeError: the sorting machine jammed"
    assert "non-finite predictions (NaN or infinity)" in failed["undecided #2"]
    assert result.trials[0].error == "RuntimeError: the sorting machine jammed"


def test_when_every_trial_fails_the_error_says_why(warehouse: Warehouse) -> None:
    jammed = Family("jammed", "linear", CLASSIFICATION, lambda p, seed: Jammed())
    with pytest.raises(MlopsError, match="All 2 trials failed, .* First error: RuntimeError: the sorting machine jammed"):
        train(warehouse, dataset="apples", target="is_bad", experiment="grader", identity=ANA, trials=2, families=(jammed,))
    assert set(runs_of(warehouse, "grader")["status"]) == {"failed"}


def test_the_time_budget_stops_the_search(warehouse: Warehouse) -> None:
    result = train(
        warehouse, dataset="apples", target="is_bad", experiment="grader", identity=ANA,
        trials=10, time_budget_s=0.001, families=cheap_families(),
    )  # fmt: skip
    assert (len(result.trials), result.stopped_by) == (1, "time_budget")
    assert run_results(warehouse, result.winner_run_id)["search"]["stopped_by"] == "time_budget"


def test_unknown_dataset_and_target_are_named(warehouse: Warehouse) -> None:
    with pytest.raises(NotFoundError, match="No dataset named 'pears'. Known datasets: apples"):
        train(warehouse, dataset="pears", target="is_bad", experiment="grader", identity=ANA)
    with pytest.raises(MlopsError, match="Dataset 'apples' has no column 'is_rotten' to predict. Columns: apple_id, graded_at"):
        train(warehouse, dataset="apples", target="is_rotten", experiment="grader", identity=ANA)
    with pytest.raises(MlopsError, match="Metric 'mae' does not fit a classification target; choose one of roc_auc"):
        train(warehouse, dataset="apples", target="is_bad", experiment="grader", identity=ANA, metric="mae")
    with pytest.raises(MlopsError, match="trials must be a whole number of at least 1"):
        train(warehouse, dataset="apples", target="is_bad", experiment="grader", identity=ANA, trials=0)
    assert warehouse.query_one("SELECT count(*) FROM runs") == (0,)


def test_a_target_with_one_class_is_refused(warehouse: Warehouse) -> None:
    load_dataset(warehouse, "all_good", make_orchard().assign(is_bad=False))
    with pytest.raises(MlopsError, match=r"Target 'is_bad' of 'all_good' has only one value \(False\) in its 400 labelled rows"):
        train(warehouse, dataset="all_good", target=None, experiment="grader", identity=ANA)
    # Two classes overall, but the latest 40% are all good: nothing to judge a model on.
    late_good = make_orchard()
    late_good.loc[late_good.index >= 240, "is_bad"] = False
    load_dataset(warehouse, "late_good", late_good)
    with pytest.raises(MlopsError, match=r"The validation period \(2026-06-11 .* holds only one class of 'is_bad'"):
        train(warehouse, dataset="late_good", target=None, experiment="grader", identity=ANA)


def test_too_few_rows_for_the_split_is_refused(warehouse: Warehouse) -> None:
    load_dataset(warehouse, "tiny", make_orchard(rows=40))
    with pytest.raises(MlopsError, match=r"'tiny' has only 40 labelled rows; the time-based split .* needs at least 60"):
        train(warehouse, dataset="tiny", target=None, experiment="grader", identity=ANA)
    with_gaps = make_orchard(rows=100).astype({"is_bad": "object"})
    with_gaps.loc[with_gaps.index >= 30, "is_bad"] = None  # only 30 rows labelled yet
    load_dataset(warehouse, "unlabelled", with_gaps)
    with pytest.raises(MlopsError, match="'unlabelled' has only 30 labelled rows"):
        train(warehouse, dataset="unlabelled", target=None, experiment="grader", identity=ANA)


def test_a_two_valued_text_target_catches_the_rarer_class_and_more_classes_are_refused(warehouse: Warehouse) -> None:
    graded = make_orchard()
    graded["grade"] = np.where(graded["is_bad"], "discard", "keep")
    load_dataset(warehouse, "graded", graded.drop(columns=["is_bad"]))
    result = train(warehouse, dataset="graded", target="grade", experiment="grader", identity=ANA, trials=2, families=cheap_families())
    assert result.positive_class == "discard"
    assert run_results(warehouse, result.winner_run_id)["confusion_matrix"]["labels"] == ["keep", "discard"]

    graded["grade"] = np.where(graded["is_bad"], "discard", np.where(graded["firmness_n"] > 70, "premium", "keep"))
    load_dataset(warehouse, "three_grades", graded.drop(columns=["is_bad"]))
    with pytest.raises(MlopsError, match="Target 'grade' of 'three_grades' has 3 classes .* handles two-class targets and numbers"):
        train(warehouse, dataset="three_grades", target="grade", experiment="grader", identity=ANA)


def test_features_from_the_feature_store_are_joined_point_in_time(tmp_path):
    """Names that are not dataset columns come from the feature store, as of each row's time."""
    from mlops_app.auth import local_identity
    from mlops_app.config import load_settings
    from mlops_app.demo import build_demo
    from mlops_app.experiments import run_results
    from mlops_app.features import training_set
    from mlops_app.training import train as search
    from mlops_app.warehouse import Warehouse

    settings = load_settings(
        {"MLOPS_APP_HOME": str(tmp_path / "h"), "MLOPS_APP_DEMO_DAYS": "70", "MLOPS_APP_DEMO_APPLES_PER_DAY": "60", "MLOPS_APP_DEMO_TRIALS": "3"}
    )
    build_demo(settings, local_identity(settings))
    warehouse = Warehouse.from_settings(settings)
    result = search(
        warehouse, dataset="apple_harvest", target="is_bad", experiment="store", identity=local_identity(settings),
        trials=2, features=["blemish_area_mm2", "firmness_n", "block_bad_share_14d"], metric="f1",
    )  # fmt: skip
    inputs = run_results(warehouse, result.winner_run_id)["model_inputs"]
    assert inputs["features"] == ["blemish_area_mm2", "firmness_n", "block_bad_share_14d"]
    # The values the trainer used are the store's point-in-time values, not anything newer.
    rows = warehouse.query("SELECT apple_id, graded_at, orchard_block FROM ds_apple_harvest ORDER BY graded_at LIMIT 50")
    values = training_set(warehouse, rows, ["block_bad_share_14d"], time_column="graded_at")
    assert values["block_bad_share_14d"].iloc[:5].fillna(0).eq(0).all(), "no label has arrived on the first morning"
    with pytest.raises(MlopsError, match="No feature named 'no_such_feature'"):
        search(
            warehouse, dataset="apple_harvest", target="is_bad", experiment="store", identity=local_identity(settings),
            trials=1, features=["no_such_feature"],
        )  # fmt: skip


def test_since_and_until_train_on_a_period_with_only_the_labels_known_by_then(tmp_path: Path) -> None:
    warehouse = Warehouse(tmp_path / "home" / "warehouse.duckdb", lock_timeout=30)
    frame = make_orchard(600)
    frame["label_received_at"] = frame["graded_at"] + pd.Timedelta(hours=30)  # inspection results come 30 h later
    load_dataset(warehouse, "apples", frame, label_received_at="label_time")

    result = train(
        warehouse, dataset="apples", target=None, experiment="recent", identity=ANA, trials=2, families=cheap_families(),
        since="2026-06-05", until=pd.Timestamp("2026-06-20T00:00", tz="UTC").to_pydatetime(),
    )  # fmt: skip
    split = run_results(warehouse, result.winner_run_id)["split"]
    # Graded from 5 June on, and inspected before 20 June: graded before 18 June 18:00.
    expected = frame[(frame["graded_at"] >= "2026-06-05") & (frame["label_received_at"] < "2026-06-20")]
    assert split["rows_used"] == len(expected) == 330
    assert pd.Timestamp(split["train"]["start"]) == expected["graded_at"].min()
    assert pd.Timestamp(split["holdout"]["end"]) == expected["graded_at"].max() == pd.Timestamp("2026-06-18 17:00", tz="UTC")
    assert split["since"].startswith("2026-06-05T00:00:00") and split["until"].startswith("2026-06-20T00:00:00")

    with pytest.raises(MlopsError, match="since .* must be before until"):
        train(warehouse, dataset="apples", target=None, experiment="x", identity=ANA, since="2026-06-20", until="2026-06-05")
    with pytest.raises(MlopsError, match="since must be a date or time"):
        train(warehouse, dataset="apples", target=None, experiment="x", identity=ANA, since="last tuesday")
    with pytest.raises(MlopsError, match=r"only 24 labelled rows from 2026-06-25 00:00 UTC.*Widen the period"):
        train(warehouse, dataset="apples", target=None, experiment="x", identity=ANA, since="2026-06-25")
