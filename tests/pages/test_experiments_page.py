"""The Experiments page in AppTest: verdict, server-side table, deep links, comparison, results, registering."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from mlops_app.auth import local_identity
from mlops_app.config import load_settings
from mlops_app.demo import build_demo
from mlops_app.experiments import RunFilter, runs_page
from mlops_app.registry import Registry
from mlops_app.tracking import FAILED, start_run
from mlops_app.warehouse import Warehouse
from tests.pages.apptest import open_page

GRADER = "apple-grader-search"
TINY_DEMO = {"MLOPS_APP_DEMO_DAYS": "70", "MLOPS_APP_DEMO_APPLES_PER_DAY": "40", "MLOPS_APP_DEMO_TRIALS": "3"}


def _open(**query: str) -> AppTest:
    return open_page("experiments", query)


def _text(at: AppTest) -> str:
    return " ".join(block.value for block in [*at.markdown, *at.caption, *at.info, *at.warning, *at.error, *at.success])


def _runs(home: Path, experiment: str = GRADER, **filters) -> list[dict]:
    warehouse = Warehouse(home / "warehouse.duckdb")
    return runs_page(warehouse, experiment, page_size=100, **filters).rows.to_dict("records")


def _widget(widgets, label: str):
    return next(widget for widget in widgets if widget.label == label)


# --- Verdict and empty states ------------------------------------------------------------


def test_verdict_names_the_winner_and_its_holdout_score(use_demo_home):
    at = _open(experiment=GRADER)
    assert at.title[0].value == "Experiments"
    runs = _runs(use_demo_home)
    winner = next(run for run in runs if run["tag.role"] == "winner")
    text = _text(at)
    assert f"**{GRADER}** has {len(runs)} runs: {len(runs)} finished, 0 failed, 0 still running." in text
    assert f"picked **{winner['name'].removeprefix('winner: ')}** for its F1 score of" in text
    assert "Tested once on the holdout, data the search never saw" in text
    assert "registered as **apple-grader/" in text
    assert any(word in at.markdown[0].value for word in ("Healthy", "Watch"))  # the status badge comes first
    tiles = {metric.label: metric for metric in at.metric}
    assert tiles["Runs"].value == str(len(runs))
    assert tiles["F1 score on the holdout"].value == f"{winner['metric.holdout_f1']:.3g}"
    assert tiles["F1 score on the holdout"].help.startswith("Measured once")
    assert at.query_params["experiment"] == GRADER


def test_without_a_link_the_most_recent_experiment_is_shown_and_linked(use_demo_home):
    at = _open()
    newest = Warehouse(use_demo_home / "warehouse.duckdb").query("SELECT experiment FROM runs ORDER BY started_at DESC LIMIT 1").iloc[0, 0]
    assert at.query_params["experiment"] == newest
    assert at.selectbox[0].value == newest
    assert not at.warning


def test_no_experiments_guides(tmp_path, monkeypatch):
    monkeypatch.setenv("MLOPS_APP_HOME", str(tmp_path / "empty"))
    Warehouse(tmp_path / "empty" / "warehouse.duckdb").migrate()
    at = _open()
    assert "mlops-app train --dataset" in at.info[0].value and "mlops-app demo" in at.info[0].value
    assert not at.dataframe


def test_runs_without_metrics_or_results_still_guide(tmp_path, monkeypatch):
    monkeypatch.setenv("MLOPS_APP_HOME", str(tmp_path / "bare"))
    warehouse = Warehouse(tmp_path / "bare" / "warehouse.duckdb")
    start_run("notebook", warehouse=warehouse, name="still going", params={"lr": 0.1})
    start_run("notebook", warehouse=warehouse, name="done", params={"lr": 0.2}).finish()
    at = _open()
    text = _text(at)
    assert "**notebook** has 2 runs: 1 finished, 0 failed, 1 still running." in text
    assert "logged no metrics" in text and "No run of this experiment was tested on a holdout" in text
    assert "Pick runs to compare" in text
    assert [list(status) for status in at.dataframe[0].value["status"]] == [["✓ Finished"], ["▶ Running"]]  # newest first


# --- Deep links --------------------------------------------------------------------------


def test_link_with_runs_compares_them(use_demo_home):
    trials = [run for run in _runs(use_demo_home) if run["tag.role"] == "trial"][:2]
    ids = [run["run_id"] for run in trials]
    at = _open(experiment=GRADER, runs=",".join(ids))
    assert not at.warning
    assert _widget(at.multiselect, "Runs to compare").value == ids
    assert "2 runs side by side" in _text(at)
    params, metrics = at.dataframe[1].value, at.dataframe[2].value
    names = [run["name"] for run in trials]
    assert names[0] in params.columns and names[1] in params.columns and "Differs" in params.columns
    assert set(params["Differs"]) <= {"same", "≠ differs"}
    assert "F1 score (higher is better)" in metrics.index
    assert any(str(value).startswith("★ ") for value in metrics.loc["F1 score (higher is better)"])
    assert at.query_params["runs"] == ",".join(ids)
    assert len(at.get("plotly_chart")) >= 4  # curves, parallel coordinates, scatter, holdout charts


def test_unknown_experiment_and_runs_warn_and_the_rest_is_shown(use_demo_home):
    real = _runs(use_demo_home)[0]["run_id"]
    at = _open(experiment="no-such-search", runs=f"{real},deadbeef00,../x")
    warnings = " ".join(warning.value for warning in at.warning)
    assert "There is no experiment named 'no-such-search'. Showing apple-grader-search instead." in warnings
    assert "no run has the id deadbeef00" in warnings and "'../x' is not a run id" in warnings
    assert "1 run side by side" in _text(at)
    # The address now names what is shown, so a copied link works.
    assert at.query_params["experiment"] == GRADER and at.query_params["runs"] == real


def test_ticking_rows_and_the_picker_update_the_link(use_demo_home):
    at = _open(experiment=GRADER)
    table = at.dataframe[0]
    ids = table.value["run_id"].tolist()
    at.session_state[table.key] = {"selection": {"rows": [0, 2], "columns": [], "cells": []}}
    at.run()
    assert not at.exception
    # Runs already compared keep their place; newly ticked ones follow.
    assert sorted(at.query_params["runs"].split(",")) == sorted([ids[0], ids[2]])
    assert "2 runs side by side" in _text(at)
    _widget(at.multiselect, "Runs to compare").unselect(ids[0]).run()
    assert at.query_params["runs"] == ids[2]
    _widget(at.multiselect, "Runs to compare").unselect(ids[2]).run()
    assert at.query_params["runs"] == ""  # an explicit empty choice, not the defaults
    assert "Pick runs to compare" in " ".join(info.value for info in at.info)


def test_switching_experiment_drops_the_selection(use_demo_home):
    run = _runs(use_demo_home)[0]["run_id"]
    at = _open(experiment=GRADER, runs=run)
    _widget(at.selectbox, "Experiment").set_value("sugar-estimator-search").run()
    assert not at.exception
    assert at.query_params["experiment"] == "sugar-estimator-search" and "runs" not in at.query_params
    assert "**sugar-estimator-search** has" in _text(at)
    assert "Typical error (MAE)" in {metric.label for metric in at.metric}


# --- Table: server-side paging, sorting, filtering -------------------------------------------


@pytest.fixture
def many_runs_home(tmp_path, monkeypatch) -> Path:
    """30 runs of one experiment: score = i / 100, depth = i % 5, every tenth run failed."""
    home = tmp_path / "many"
    monkeypatch.setenv("MLOPS_APP_HOME", str(home))
    warehouse = Warehouse(home / "warehouse.duckdb")
    for index in range(30):
        run = start_run("paging", warehouse=warehouse, name=f"run {index:02d}", params={"depth": index % 5})
        run.log_metric("roc_auc", index / 100)
        run.finish(FAILED, error="ValueError: boom") if index % 10 == 9 else run.finish()
    return home


def test_table_pages_sorts_and_filters_on_the_server(many_runs_home):
    at = _open(experiment="paging")
    assert "runs 1-30 of 30" in _text(at)
    assert at.dataframe[0].value["name"].iloc[0] == "run 29"  # sorted by ranking quality, best first
    _widget(at.selectbox, "Runs per page").set_value(25).run()
    assert "runs 1-25 of 30" in _text(at) and len(at.dataframe[0].value) == 25
    at.pagination[0].set_value(2).run()
    assert not at.exception
    assert "runs 26-30 of 30" in _text(at)
    assert at.dataframe[0].value["name"].tolist() == ["run 04", "run 03", "run 02", "run 01", "run 00"]
    # A new sort starts again at page 1; reversing shows the worst first.
    at.toggle(key="reverse:paging").set_value(True).run()
    assert "runs 1-25 of 30" in _text(at) and at.dataframe[0].value["name"].iloc[0] == "run 00"
    _widget(at.selectbox, "Sort by").set_value("name").run()
    assert at.dataframe[0].value["name"].iloc[0] == "run 29"  # names Z-A when reversed
    at.text_input(key="filter:paging").set_value("metric.roc_auc >= 0.2 and param.depth = 3").run()
    table = at.dataframe[0].value
    assert "runs 1-2 of 2" in _text(at) and sorted(table["name"]) == ["run 23", "run 28"]
    assert table["param.depth"].tolist() == ["3", "3"]


def test_status_filter_and_bad_filters(many_runs_home):
    at = _open(experiment="paging")
    at.pills[0].set_value(["failed"]).run()
    table = at.dataframe[0].value
    assert [list(status) for status in table["status"]] == [["✕ Failed"]] * 3 and set(table["error"]) == {"ValueError: boom"}
    assert "runs 1-3 of 3" in _text(at)
    at.text_input(key="filter:paging").set_value("roc_auc is big").run()
    assert not at.exception and "Cannot read the filter" in at.error[0].value
    assert "runs 1-3 of 3" in _text(at)  # the status filter still applies
    at.text_input(key="filter:paging").set_value("metric.roc_auc contains 9").run()
    assert not at.exception and "compares numbers" in at.error[0].value
    at.text_input(key="filter:paging").set_value("param.depth = 99").run()
    assert "No run matches these filters" in " ".join(info.value for info in at.info)


# --- Holdout results ---------------------------------------------------------------------


def test_results_of_the_winner(use_demo_home):
    at = _open(experiment=GRADER)
    winner = next(run for run in _runs(use_demo_home) if run["tag.role"] == "winner")
    assert _widget(at.selectbox, "Run").value == winner["run_id"]
    text = _text(at)
    assert "Tested once on" in text and "the most recent data, which the search never saw" in text
    assert "groups score" in text
    assert "really were is_bad = True" in text and "Calibration:" in text and "Permutation importance" in text
    labels = {metric.label: metric.value for metric in at.metric}
    assert labels["Bad apples caught"].endswith("%") and labels["Good apples discarded"].endswith("%")
    slices = at.dataframe[-1].value
    assert {"Group", "Rows", "Verdict"} <= set(slices.columns)
    assert all(verdict.startswith(("⚠ Worse", "✓ As good")) for verdict in slices["Verdict"])


def test_a_trial_has_no_results_and_no_model_to_register(use_demo_home):
    trial = next(run for run in _runs(use_demo_home) if run["tag.role"] == "trial")
    at = _open(experiment=GRADER, runs=trial["run_id"])
    _widget(at.selectbox, "Run").set_value(trial["run_id"]).run()
    infos = " ".join(info.value for info in at.info)
    assert "no holdout results" in infos and "saved no model" in infos
    assert not [button for button in at.button if button.key == "register_run_model"]


# --- Registering -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_home(tmp_path_factory) -> Path:
    """A demo home of its own (tests here register models into it)."""
    home = tmp_path_factory.mktemp("register") / "home"
    settings = load_settings({"MLOPS_APP_HOME": str(home), **TINY_DEMO})
    build_demo(settings, local_identity(settings))
    return home


@pytest.fixture
def use_tiny_home(tiny_home, monkeypatch) -> Path:
    monkeypatch.setenv("MLOPS_APP_HOME", str(tiny_home))
    for name, value in TINY_DEMO.items():
        monkeypatch.setenv(name, value)
    return tiny_home


def _winner(home: Path) -> dict:
    return _runs(home, filters=[RunFilter("tag", "role", "=", "winner")])[0]


def test_admin_registers_the_winner(use_tiny_home):
    at = _open(experiment=GRADER)
    winner = _winner(use_tiny_home)
    assert at.text_input(key=f"model_name:{winner['run_id']}").value == "apple-grader"
    at.text_input(key=f"model_name:{winner['run_id']}").set_value("grader-from-page")
    at.button(key="register_run_model").click().run()
    assert not at.exception and not at.error
    assert "Registered **grader-from-page** version **1**" in at.success[0].value
    version = Registry(use_tiny_home / "registry").get_version("grader-from-page", 1)
    assert version.card["run_id"] == winner["run_id"] and version.author == "demo@localhost"
    assert version.metrics["f1"] == pytest.approx(winner["metric.holdout_f1"])  # the card carries holdout metrics
    at.run()
    assert "Already registered as **grader-from-page/1**" in _text(at)


def test_a_bad_model_name_is_explained(use_tiny_home):
    at = _open(experiment=GRADER)
    winner = _winner(use_tiny_home)
    at.text_input(key=f"model_name:{winner['run_id']}").set_value("Bad Name!")
    at.button(key="register_run_model").click().run()
    assert not at.exception and "is not allowed" in at.error[0].value
    assert "Bad Name!" not in {model.name for model in Registry(use_tiny_home / "registry").list_models()}


def test_viewer_sees_the_button_disabled_with_the_reason(use_tiny_home, monkeypatch):
    monkeypatch.setenv("MLOPS_APP_LOCAL_USER_ROLE", "viewer")
    at = _open(experiment=GRADER)
    button = at.button(key="register_run_model")
    assert button.disabled
    assert "signed in as a **viewer**" in _text(at) and "reviewer role" in _text(at)


def test_viewer_clicking_an_enabled_button_is_refused_by_the_library(use_tiny_home, monkeypatch):
    # Were the page to offer the button by mistake, the library's role check still refuses.
    from mlops_app import experiments_view

    monkeypatch.setenv("MLOPS_APP_LOCAL_USER_ROLE", "viewer")
    monkeypatch.setattr(experiments_view, "may_register", lambda identity: True)
    registry = Registry(use_tiny_home / "registry")
    before = {model.name: model.latest_version for model in registry.list_models()}
    at = _open(experiment=GRADER)
    at.button(key="register_run_model").click().run()
    assert not at.exception
    assert "has the viewer role, and register model needs the reviewer role" in at.error[0].value
    assert not at.success
    assert {model.name: model.latest_version for model in registry.list_models()} == before
