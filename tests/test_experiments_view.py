"""What the Experiments page says: links, defaults, plain-language metrics, verdicts, tables."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from mlops_app import experiments_view as view
from mlops_app.auth import Identity
from mlops_app.experiments import MAX_COMPARE, Comparison, compare_runs
from mlops_app.status import Status
from mlops_app.tracking import start_run
from mlops_app.warehouse import Warehouse

RUN_A, RUN_B, RUN_C = "a" * 32, "b" * 32, "c" * 32


# --- Links -------------------------------------------------------------------------------


def test_parse_run_ids_keeps_order_drops_repeats_and_sets_aside_malformed():
    link = view.parse_run_ids(f" {RUN_B},{RUN_A} {RUN_B},,../etc,a/b ")
    assert link.ids == [RUN_B, RUN_A]
    assert link.malformed == ["../etc", "a/b"]
    assert link.dropped == 0
    assert view.parse_run_ids(None) == view.RunLink([], [], 0)
    assert view.format_run_ids(link.ids) == f"{RUN_B},{RUN_A}"


def test_parse_run_ids_caps_the_comparison():
    link = view.parse_run_ids(",".join(f"run{i}" for i in range(MAX_COMPARE + 7)))
    assert len(link.ids) == MAX_COMPARE and link.dropped == 7
    assert f"7 more runs were left out: a comparison shows at most {MAX_COMPARE}" in view.link_warning(link, [])


def test_link_warning_names_what_was_not_found():
    link = view.parse_run_ids(f"{RUN_A},nope1,bad/id")
    message = view.link_warning(link, ["nope1"])
    assert "no run has the id nope1" in message and "'bad/id' is not a run id" in message
    assert message.endswith("Showing the others.")
    assert view.link_warning(view.parse_run_ids(RUN_A), []) is None


def test_choose_experiment():
    names = ["newest", "older"]
    assert view.choose_experiment(names, "older") == ("older", None)
    assert view.choose_experiment(names, None) == ("newest", None)
    assert view.choose_experiment(names, None, linked="older") == ("older", None)
    chosen, warning = view.choose_experiment(names, "gone", linked="older")
    assert chosen == "older" and "no experiment named 'gone'" in warning and "Showing older" in warning


def test_merge_selection_keeps_other_pages_and_appends_new_ticks():
    current = [RUN_A, RUN_B]  # RUN_A is on another page
    assert view.merge_selection(current, [RUN_B, RUN_C], [RUN_C]) == [RUN_A, RUN_C]
    assert view.merge_selection(current, [RUN_B, RUN_C], [RUN_B, RUN_C]) == [RUN_A, RUN_B, RUN_C]
    assert view.merge_selection(current, [RUN_B, RUN_C], [RUN_B]) == current  # nothing changed


# --- Metrics in words --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "label", "unit", "higher"),
    [
        ("recall_bad", "Bad apples caught", "%", True),
        ("holdout_f1", "F1 score (holdout)", "", True),
        ("cv_false_discard_rate", "Good apples discarded (cross-validation)", "%", False),
        ("cv_f1_std", "F1 score, spread across folds (cross-validation)", "", False),
        ("mae", "Typical error (MAE)", "", False),
        ("val_loss", "val loss", "", False),
        ("throughput", "throughput", "", None),
    ],
)
def test_describe_metric(key, label, unit, higher):
    info = view.describe_metric(key)
    assert (info.label, info.unit, info.higher_is_better) == (label, unit, higher)


def test_every_catalogue_metric_explains_itself():
    for key in ("roc_auc", "holdout_roc_auc", "cv_roc_auc", "cv_roc_auc_std"):
        assert len(view.describe_metric(key).help) > 40


def test_format_metric_and_delta_use_units():
    assert view.format_metric("recall_bad", 0.9612) == "96.1%"
    assert view.format_metric("f1", 0.95397) == "0.954"
    assert view.format_metric("f1", float("nan")) == "n/a"
    assert view.metric_delta("recall_bad", 0.95, 0.97) == "-2.0 pts"
    assert view.metric_delta("f1", 0.95, 0.954) == "-0.004"
    assert view.metric_delta("f1", None, 0.954) is None


def test_in_sentence_lowers_words_not_acronyms():
    assert view.in_sentence("Typical error (MAE)") == "typical error (MAE)"
    assert view.in_sentence("F1 score") == "F1 score"
    assert view.in_sentence("ROC AUC") == "ROC AUC"


def test_metric_order_puts_the_chosen_metric_then_validation_holdout_cv():
    keys = ["cv_f1", "holdout_f1", "accuracy", "f1", "cv_f1_std", "custom", "recall_bad"]
    assert view.metric_order(keys, first="f1") == ["f1", "recall_bad", "accuracy", "holdout_f1", "cv_f1", "cv_f1_std", "custom"]


def test_default_metric_prefers_the_selection_metric_then_the_catalogue():
    assert view.default_metric(["roc_auc", "f1"], "f1") == "f1"
    assert view.default_metric(["zz", "mae", "recall_bad"], None) == "recall_bad"  # catalogue order
    assert view.default_metric(["throughput", "val_loss"], "gone") == "val_loss"  # known direction
    assert view.default_metric(["throughput"]) == "throughput"
    assert view.default_metric([]) is None


def test_sort_options_and_natural_direction():
    options = view.sort_options(["depth"], ["mae", "f1"])
    assert list(options)[:2] == ["metric.f1", "metric.mae"]
    assert options["param.depth"] == "param depth" and options["started_at"] == "Started"
    assert view.best_first("metric.f1") is True
    assert view.best_first("metric.mae") is False  # lowest error first
    assert view.best_first("started_at") is True and view.best_first("name") is False


def test_default_scatter_axes():
    assert view.default_scatter_axes(["f1", "cv_f1", "accuracy"], "f1") == ("cv_f1", "f1")
    assert view.default_scatter_axes(["mae", "rmse"], "mae") == ("rmse", "mae")


# --- Verdict -----------------------------------------------------------------------------

COUNTS = {"runs": 25, "finished": 25, "failed": 0, "running": 0}
WINNER = {"name": "winner: random_forest (trial #2)", "metric.f1": 0.954, "metric.holdout_f1": 0.95, "tag.registered_as": "apple-grader/3"}


def test_verdict_of_a_search_names_the_winner_and_its_holdout_score():
    status, sentence = view.experiment_verdict("grader", COUNTS, "f1", None, WINNER)
    assert status is Status.HEALTHY
    assert "**grader** has 25 runs: 25 finished, 0 failed, 0 still running." in sentence
    assert "picked **random_forest (trial #2)** for its F1 score of **0.954** on the validation period" in sentence
    assert "Tested once on the holdout" in sentence and "**0.95**" in sentence
    assert "registered as **apple-grader/3**" in sentence


def test_verdict_watches_a_winner_that_falls_short_on_the_holdout_and_failed_runs():
    lucky = {**WINNER, "metric.holdout_f1": 0.80, "tag.registered_as": None}
    status, sentence = view.experiment_verdict("grader", COUNTS, "f1", None, lucky)
    assert status is Status.WATCH and "part of its lead was luck" in sentence and "not registered yet" in sentence
    # Lower is better: a holdout error 12% above the search's is a shortfall too.
    regression = {"name": "winner: ridge", "metric.mae": 0.67, "metric.holdout_mae": 0.75}
    assert view.experiment_verdict("sugar", COUNTS, "mae", None, regression)[0] is Status.WATCH
    status, sentence = view.experiment_verdict("grader", {**COUNTS, "failed": 2}, "f1", None, WINNER)
    assert status is Status.WATCH and "2 runs failed" in sentence


def test_verdict_without_a_search_names_the_best_run_in_units():
    best = {"name": "run-7", "metric.recall_bad": 0.962}
    status, sentence = view.experiment_verdict("manual", {**COUNTS, "runs": 3, "finished": 3}, "recall_bad", best, None)
    assert status is Status.HEALTHY
    assert "Best on bad apples caught (highest is best): **run-7** with **96.2%**" in sentence


@pytest.mark.parametrize(
    ("counts", "status", "words"),
    [
        ({"runs": 0}, Status.UNKNOWN, "`mlops-app train`"),
        ({"runs": 4, "failed": 4}, Status.ACT, "Every run failed"),
        ({"runs": 2, "running": 2}, Status.UNKNOWN, "No run has finished yet"),
    ],
)
def test_verdict_when_nothing_finished(counts, status, words):
    got, sentence = view.experiment_verdict("e", counts, "f1", None, None)
    assert got is status and words in sentence


def test_default_comparison_skips_the_winner_refit():
    best = pd.DataFrame({"run_id": ["w", "t2", "t1", "t3", "t4"], "tag.role": ["winner", "trial", "trial", "trial", "trial"]})
    assert view.default_comparison(best) == ["t2", "t1", "t3"]
    assert view.default_comparison(pd.DataFrame({"run_id": ["x", "y"]})) == ["x", "y"]
    assert view.default_comparison(pd.DataFrame(columns=["run_id"])) == []


def test_best_runs_are_the_finished_ones_with_the_metric():
    page = pd.DataFrame(
        {"run_id": list("abcdefg"), "status": ["failed", "finished", "finished", "running", "finished", "finished", "finished"],
         "metric.f1": [0.99, 0.9, None, 0.8, 0.7, 0.6, 0.5]}
    )  # fmt: skip
    assert view.best_runs(page, "f1", count=3)["run_id"].tolist() == ["b", "e", "f"]
    assert view.best_runs(page, None).empty and view.best_runs(page, "mae").empty


# --- Tables ------------------------------------------------------------------------------


def test_runs_table_shows_words_times_and_scaled_shares():
    rows = pd.DataFrame(
        {
            "run_id": ["r1", "r2"],
            "name": ["one", "two"],
            "status": ["finished", "failed"],
            "started_at": pd.to_datetime(["2026-07-01 09:30", "2026-07-02 10:00"]).tz_localize("UTC"),
            "duration_s": [2.5, 0.1],
            "error": [None, "ValueError: boom"],
            "metric.recall_bad": [0.961, None],
            "metric.f1": [0.9, None],
            "param.depth": ["3", "5"],
            "tag.role": ["trial", "trial"],
        }
    )
    frame, specs = view.runs_table(rows, "f1")
    assert frame["status"].tolist() == [["✓ Finished"], ["✕ Failed"]]
    assert frame["started_at"].tolist() == ["2026-07-01 09:30 UTC", "2026-07-02 10:00 UTC"]
    assert frame.loc[0, "metric.recall_bad"] == pytest.approx(96.1)
    columns = [spec.column for spec in specs]
    assert columns == ["name", "status", "started_at", "duration_s", "metric.f1", "metric.recall_bad", "role", "param.depth", "error"]
    kinds = {spec.column: spec.kind for spec in specs}
    assert kinds["metric.recall_bad"] == "percent" and kinds["metric.f1"] == "number" and kinds["status"] == "status"
    assert all(spec.help for spec in specs if spec.column.startswith("metric."))


def test_page_caption_and_count():
    assert view.page_caption(1, 50, 1234) == "runs 1-50 of 1,234"
    assert view.page_caption(25, 50, 1234) == "runs 1,201-1,234 of 1,234"
    assert view.page_caption(1, 50, 0) == "no runs match"
    assert view.page_count(0, 50) == 1 and view.page_count(101, 50) == 3


def _comparison() -> Comparison:
    runs = pd.DataFrame({"run_id": [RUN_A, RUN_B], "name": ["same", "same"]})
    params = pd.DataFrame({RUN_A: ["3", "a"], RUN_B: ["3", None]}, index=pd.Index(["depth", "kind"], name="key"))
    params["differs"] = [False, True]
    metrics = pd.DataFrame({RUN_A: [0.9, 0.2], RUN_B: [0.8, 0.1]}, index=pd.Index(["f1", "mae"], name="key"))
    metrics["higher_is_better"] = pd.Series([True, False], index=metrics.index, dtype=object)
    metrics["best"] = [[RUN_A], [RUN_B]]
    return Comparison(runs, params, metrics)


def test_comparison_tables_mark_differences_and_the_best():
    comparison = _comparison()
    labels = view.run_labels(comparison.runs)
    assert labels == {RUN_A: "same · aaaaaa", RUN_B: "same · bbbbbb"}  # same names are told apart
    params = view.params_table(comparison, labels)
    assert params["Differs"].tolist() == ["same", "≠ differs"]
    assert params.loc["kind"].tolist() == ["≠ differs", "a", view.NOT_SET]
    assert list(view.params_table(comparison, labels, only_differing=True).index) == ["kind"]
    table = view.metrics_table(comparison, labels, first="mae")
    assert list(table.text.index) == ["Typical error (MAE) (lower is better)", "F1 score (higher is better)"]
    assert table.text.iloc[0].tolist() == ["0.2", "★ 0.1"]
    assert table.best.iloc[1].tolist() == [True, False]
    sentence = view.comparison_sentence(comparison, labels, "f1")
    assert "2 runs side by side; 1 of 2 settings differ" in sentence and "**same · aaaaaa** with 0.9" in sentence


def test_varying_params_puts_family_first_and_skips_constants():
    points = pd.DataFrame({"param.family": ["a", "b", "a"], "param.depth": [1, 2, None], "param.seed": [0, 0, 0], "param.c": [1, None, None]})
    assert view.varying_params(points, ["c", "depth", "family", "seed", "gone"]) == ["family", "depth"]


# --- Holdout results ---------------------------------------------------------------------

RESULTS = {
    "holdout": {"metrics": {"f1": 0.95, "recall_bad": 0.98}, "rows": 2000, "start": "2026-09-28 14:32:47+00:00", "end": "2026-10-27 17:08:14+00:00"},
    "slices": [
        {"column": "block", "value": "a", "rows": 230, "metrics": {"f1": 0.89}},
        {"column": "block", "value": "b", "rows": 250, "metrics": {"f1": 0.97}},
        {"column": "machine", "value": "only-one", "rows": 2000, "metrics": {"f1": 0.95}},
    ],
    "confusion_matrix": {"labels": ["False", "True"], "matrix": [[1697, 24], [5, 274]], "threshold": 0.5},
    "feature_importance": {"metric": "f1", "method": "permutation on 2000 holdout rows: ...", "features": []},
    "model_inputs": {"target": "is_bad", "task": "classification"},
}


def test_holdout_sentence():
    sentence = view.holdout_sentence(RESULTS, "f1")
    assert "Tested once on 2,000 rows from 2026-09-28 to 2026-10-27" in sentence and "F1 score: **0.95**" in sentence
    assert view.holdout_sentence({}, "f1") == "This run stored no holdout test."


def test_slices_flag_worse_groups_and_drop_one_value_columns():
    slices = view.slices_table(RESULTS, "f1")
    assert slices["Group"].tolist() == ["block = a", "block = b"]  # worst first; "machine" has one value
    assert slices["worse"].tolist() == [True, False]
    assert slices.loc[0, "Verdict"] == "⚠ Worse (-0.060)"
    sentence = view.slices_sentence(slices, "f1")
    assert "1 of 2 groups score worse" in sentence and "**block = a**: 0.89 against 0.95 overall (230 rows)" in sentence
    assert view.slices_sentence(slices.iloc[1:], "f1").startswith("Every group scores at least as well")


def test_confusion_calibration_and_importance_in_words():
    assert view.confusion_sentence(RESULTS["confusion_matrix"], "is_bad") == (
        "Of 279 rows that really were is_bad = True, the model flagged 274 and missed 5; "
        "of 1,721 that were not, it wrongly flagged 24 (decision threshold 0.5)."
    )
    assert "predicted 30% really happens" in view.calibration_caption(RESULTS)
    assert "estimates too low" in view.calibration_caption({"model_inputs": {"task": "regression"}})
    assert "how much F1 score worsens" in view.importance_caption(RESULTS["feature_importance"])
    assert "on 2,000 holdout rows" in view.importance_caption(RESULTS["feature_importance"])


@pytest.mark.parametrize(
    ("experiment", "name"),
    [("apple-grader-search", "apple-grader"), ("Sugar estimator", "sugar-estimator"), ("My.Exp_runs", "my-exp"), ("...", "model")],
)
def test_default_model_name(experiment, name):
    assert view.default_model_name(experiment) == name


def test_may_register_follows_the_role():
    assert view.may_register(Identity("r@x", "r", "reviewer", "local"))
    assert not view.may_register(Identity("v@x", "v", "viewer", "local"))


# --- Reads -------------------------------------------------------------------------------


def test_compare_existing_names_missing_runs_and_compares_the_rest(tmp_path: Path):
    warehouse = Warehouse(tmp_path / "warehouse.duckdb", lock_timeout=30)
    ids = []
    for index in range(2):
        with start_run("e", warehouse=warehouse, params={"depth": index}) as run:
            run.log_metric("f1", 0.5 + index / 10)
        ids.append(run.run_id)
    comparison, missing = view.compare_existing(warehouse, (ids[0], "gone1", ids[1]))
    assert missing == ("gone1",)
    assert comparison.runs["run_id"].tolist() == ids
    assert comparison.metrics.loc["f1", "best"] == [ids[1]]
    assert view.compare_existing(warehouse, ("gone1",)) == (None, ("gone1",))
    assert view.compare_existing(warehouse, ()) == (None, ())
    direct = compare_runs(warehouse, ids)
    assert view.compare_existing(warehouse, tuple(ids))[0].params.equals(direct.params)
