"""The Monitoring page (pages/monitoring.py) run by AppTest over real homes.

Reads use the shared monitored demo home (never changed here); acknowledging and opening a
report run on a private copy of it. AppTest runs the live fragment once; it does not tick
(tests/e2e/test_monitoring_browser.py watches it refresh in a real browser).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from mlops_app.alerts import get_alert, list_alerts
from mlops_app.config import load_settings
from mlops_app.demo_monitoring import HistoryProgress, _write_progress, install_monitoring_config
from mlops_app.errors import WarehouseBusyError
from mlops_app.monitoring import MonitorConfig, save_monitor_config
from mlops_app.monitoring_view import LATEST
from mlops_app.warehouse import Warehouse
from tests.pages.apptest import open_page

MODEL = "apple-grader"
WAREHOUSE_HELPER = Path(__file__).resolve().parents[1] / "warehouse_helper.py"


def _open(query: dict[str, str] | None = None) -> AppTest:
    return open_page("monitoring", query)


def _text(at: AppTest) -> str:
    kinds = ("markdown", "caption", "info", "warning", "error", "success", "subheader")
    text = "\n".join(str(element.value) for kind in kinds for element in getattr(at, kind))
    return re.sub(r"\\(.)", r"\1", text)  # the page escapes text from the warehouse for markdown


def _open_alert_id(home: Path) -> str:
    alerts = list_alerts(Warehouse(home / "warehouse.duckdb"), MODEL, status="open")
    assert len(alerts) == 1
    return alerts["alert_id"].iloc[0]


@pytest.fixture
def writable_home(monitored_home, tmp_path, monkeypatch) -> Path:
    """A private copy of the monitored demo home, so a test may acknowledge alerts and render reports."""
    home = tmp_path / "writable"
    shutil.copytree(monitored_home, home)
    monkeypatch.setenv("MLOPS_APP_HOME", str(home))
    return home


def test_verdict_tiles_chart_drift_and_alerts_of_the_grader(use_monitored_home):
    at = _open({"model": MODEL})
    assert at.title[0].value == "Monitoring"
    assert at.selectbox(key="model").value == MODEL and not at.warning
    # Verdict first: status word and colour, then the sentence with numbers and targets.
    assert at.markdown[0].value == ":orange-badge[:material/warning: Watch]"
    text = _text(at)
    assert "Watch: apple-grader is on target: share of good apples discarded 2.4% (limit 4.0%)" in text
    assert "Latest window (2026-09-02)" in text
    metrics = {metric.label: metric for metric in at.metric}
    assert list(metrics) == ["Inputs that drifted", "Share of good apples discarded", "Share of bad apples caught"]
    assert all(metric.help for metric in metrics.values())
    assert metrics["Inputs that drifted"].value == "8 of 8"
    assert metrics["Share of good apples discarded"].value == "2.4%"
    assert metrics["Share of good apples discarded"].proto.delta == "-1.6 pts against the limit"
    assert metrics["Share of bad apples caught"].proto.delta == "+3.6 pts against the target"
    assert "Watch · limit 80% of inputs" in text and "Healthy · target at least 93.0%" in text
    assert re.search(r"Updated \d\d:\d\d:\d\d UTC · refreshes every 10 s", text)
    # The chart over time: drift bars, both KPIs with their targets, the alerts marked.
    charts = at.get("plotly_chart")
    history = json.loads(charts[0].proto.spec)
    names = {trace.get("name") for trace in history["data"]}
    assert {"Watch window", "Act window", "Alert opened", "Share of bad apples caught", "Share of good apples discarded"} <= names
    annotations = {item.get("text") for item in history["layout"]["annotations"]}
    assert {"limit 80%", "limit 4.0%", "target 93.0%"} <= annotations
    # Per-input drift of the latest window, in plain words, and the distribution of the most drifted input.
    window = at.selectbox(key=f"monitoring_window_{MODEL}")
    assert window.value == LATEST and window.format_func(window.value) == "Latest window (follows new ones)"
    assert window.options[:2] == ["Latest window (follows new ones)", "2026-09-02 · 95 predictions"] and len(window.options) == 31
    assert "Window 2026-09-02: Watch, 95 predictions." in text
    drift = at.dataframe[0].value
    assert list(drift.columns) == ["Input", "Kind", "Test used", "Score", "Threshold", "Drifted"]
    assert len(drift) == 9 and drift["Input"].iloc[-1] == "Model's score (its output)" and set(drift["Drifted"]) == {"Yes"}
    assert "In the window 2026-09-02, 8 of 8 inputs drifted" in text and "Wasserstein distance (normed)**: how far" in text
    assert len(charts) == 2 and "The biggest difference for firmness_n" in text
    # Alerts: the open one first, with its retraining note, and the review of the retrained challenger.
    assert "1 alert needs attention (1 open, 0 acknowledged); 5 resolved." in text
    assert "Features drifted from the training data**: 8 of 8 features moved" in text
    assert "Retraining not started: version 4 already waits for review" in text
    assert not at.button(key=f"monitoring_ack_{_open_alert_id(use_monitored_home)}").disabled
    reviews = [link for link in at.get("page_link") if link.proto.label == "Review version 4"]
    assert reviews and reviews[0].proto.page == "model_review"
    assert "model=apple-grader" in reviews[0].proto.query_string and "version=4" in reviews[0].proto.query_string
    assert at.button(key="monitoring_report_open").label == "Open the full drift report (2026-09-02)"


def test_an_older_window_and_another_input(use_monitored_home):
    at = _open()
    at.selectbox(key=f"monitoring_window_{MODEL}").set_value("2026-08-19T00:00:00+00:00").run()
    assert not at.exception
    text = _text(at)
    assert "In the window 2026-08-19, 6 of 8 inputs drifted" in text
    assert at.button(key="monitoring_report_open").label == "Open the full drift report (2026-08-19)"
    at.selectbox(key=f"monitoring_input_{MODEL}").set_value("orchard_block").run()
    assert not at.exception
    assert "The biggest difference for orchard_block" in _text(at)
    # The chosen window stays chosen, and the status above still speaks of the latest one.
    assert at.selectbox(key=f"monitoring_window_{MODEL}").value == "2026-08-19T00:00:00+00:00"
    assert "Latest window (2026-09-02)" in _text(at)


def test_an_admin_acknowledges_the_open_alert(writable_home):
    alert_id = _open_alert_id(writable_home)
    at = _open()
    at.button(key=f"monitoring_ack_{alert_id}").click().run()
    assert not at.exception and not at.error
    assert "Acknowledged the alert on apple-grader (features drifted from the training data) as demo@localhost" in at.success[0].value
    alert = get_alert(Warehouse(writable_home / "warehouse.duckdb"), alert_id)
    assert alert.status == "acknowledged" and alert.acknowledged_by == "demo@localhost"
    text = _text(at)
    assert "1 alert needs attention (0 open, 1 acknowledged)" in text and "Acknowledged by demo@localhost on" in text
    assert not [button for button in at.button if button.key.startswith("monitoring_ack_")]


def test_a_viewer_sees_why_the_acknowledge_button_is_off(use_monitored_home, monkeypatch):
    monkeypatch.setenv("MLOPS_APP_LOCAL_USER_ROLE", "viewer")
    at = _open()
    assert at.button(key=f"monitoring_ack_{_open_alert_id(use_monitored_home)}").disabled
    notes = " ".join(info.value for info in at.info)
    assert "Only reviewers and above may acknowledge alerts" in notes and "with the viewer role" in notes


def test_the_library_refuses_a_viewer_even_if_the_page_enabled_the_button(writable_home, monkeypatch):
    """Disabling the button is not the guard: with the page's role note switched off, the library still refuses."""
    from mlops_app import monitoring_view

    monkeypatch.setattr(monitoring_view, "acknowledge_refusal", lambda identity: None)
    monkeypatch.setenv("MLOPS_APP_LOCAL_USER_ROLE", "viewer")
    alert_id = _open_alert_id(writable_home)
    warehouse = Warehouse(writable_home / "warehouse.duckdb")
    generation = warehouse.generation()
    at = _open()
    at.button(key=f"monitoring_ack_{alert_id}").click().run()
    assert not at.exception
    assert "has the viewer role, and acknowledge alert needs the reviewer role" in at.error[0].value
    assert get_alert(warehouse, alert_id).status == "open" and warehouse.generation() == generation


def test_an_unknown_or_unmonitored_model_in_the_link_warns_and_shows_a_monitored_one(use_monitored_home):
    at = _open({"model": "pear-grader"})
    assert "There is no monitored model named `pear-grader`" in at.warning[0].value
    assert at.selectbox(key="model").value == MODEL and at.metric
    at = _open({"model": "sugar-estimator"})
    warning = at.warning[0].value
    assert "sugar-estimator is registered but not monitored yet" in warning and "`mlops-app monitor sugar-estimator`" in warning


def test_a_model_with_settings_but_no_window_yet_guides(writable_home):
    save_monitor_config(writable_home, MonitorConfig(model="sugar-estimator"))
    at = _open({"model": "sugar-estimator"})
    assert at.selectbox(key="model").options == [MODEL, "sugar-estimator"]
    assert at.selectbox(key="model").value == "sugar-estimator" and not at.warning
    assert at.markdown[0].value.endswith("Not checked]")
    text = _text(at)
    assert "Not checked yet: no monitoring window of sugar-estimator has been computed" in text
    assert "No window of sugar-estimator has been computed yet" in text and "No alert so far" in text
    assert not at.metric and not at.get("plotly_chart") and not at.dataframe


def test_no_auto_refresh_when_the_interval_is_zero(use_monitored_home, monkeypatch):
    monkeypatch.setenv("MLOPS_APP_MONITORING_REFRESH_SECONDS", "0")
    assert "refreshes when you reload the page" in _text(_open())


def test_an_empty_home_guides(tmp_path, monkeypatch):
    monkeypatch.setenv("MLOPS_APP_HOME", str(tmp_path / "empty"))
    Warehouse(tmp_path / "empty" / "warehouse.duckdb").migrate()
    at = _open()
    info = at.info[0].value
    assert "No model is monitored yet" in info
    assert "`mlops-app score MODEL FILE`" in info and "`mlops-app monitor`" in info and "`mlops-app demo`" in info
    assert not at.selectbox and not at.get("progress") and not at.warning


def _progress_home(tmp_path, monkeypatch, status: str, pid: int, *, settings_file: bool = True) -> Path:
    home = tmp_path / "replaying"
    monkeypatch.setenv("MLOPS_APP_HOME", str(home))
    Warehouse(home / "warehouse.duckdb").migrate()
    settings = load_settings()
    if settings_file:
        install_monitoring_config(settings)
    _write_progress(
        settings,
        HistoryProgress(status, 12, 30, "2026-08-15", "2026-08-15: scored 120 apples with v2", "2026-09-01T10:00:00+00:00",
                        "2026-09-01T10:01:00+00:00", pid),
    )  # fmt: skip
    return home


def test_a_running_demo_replay_shows_its_progress(tmp_path, monkeypatch):
    _progress_home(tmp_path, monkeypatch, "building", os.getpid())
    at = _open()
    bar = at.get("progress")[0]
    assert bar.proto.text == "Replaying the demo season: 12 of 30 days (up to 2026-08-15)…" and bar.proto.value == 40
    assert "2026-08-15: scored 120 apples with v2" in _text(at)
    # The settings file is written first, so the grader is listed, not computed yet.
    assert at.selectbox(key="model").value == MODEL and "Not checked yet" in _text(at)


def test_a_demo_replay_starting_before_any_settings_shows_progress_under_the_empty_state(tmp_path, monkeypatch):
    _progress_home(tmp_path, monkeypatch, "building", os.getpid(), settings_file=False)
    at = _open()
    assert "No model is monitored yet" in at.info[0].value
    assert at.get("progress")[0].proto.text.startswith("Replaying the demo season: 12 of 30 days")


def test_an_interrupted_demo_replay_says_how_to_resume(tmp_path, monkeypatch):
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    _progress_home(tmp_path, monkeypatch, "building", int(finished.stdout))
    at = _open()
    assert not at.get("progress")
    warning = at.warning[0].value
    assert "Replaying the demo season stopped after 12 of 30 days" in warning and "`mlops-app demo`" in warning


def test_a_busy_warehouse_shows_a_message_not_a_trace(writable_home, monkeypatch):
    monkeypatch.setenv("MLOPS_APP_LOCK_TIMEOUT_SECONDS", "0.2")
    # A fresh copy, so no cached read spares the page from meeting the lock.
    holder = subprocess.Popen(
        [sys.executable, str(WAREHOUSE_HELPER), "hold", str(writable_home / "warehouse.duckdb"), "20"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "holding"
        at = _open()
        assert "busy" in at.warning[0].value and str(holder.pid) in at.warning[0].value
    finally:
        holder.kill()
        holder.wait()


def test_a_busy_warehouse_during_a_refresh_keeps_the_page(use_monitored_home, monkeypatch):
    """The live part's own reruns bypass app/main.py's handler, so the part catches the error itself."""
    from mlops_app import monitoring_view

    def busy(warehouse, model):
        raise WarehouseBusyError("The warehouse is held by process 4242 (mlops-app monitor).")

    monkeypatch.setattr(monitoring_view, "load_live", busy)
    at = _open()
    assert at.title[0].value == "Monitoring" and at.selectbox(key="model").value == MODEL
    warning = at.warning[0].value
    assert "could not refresh" in warning and "process 4242" in warning and "tries again in 10 s" in warning


def test_the_full_drift_report_opens_downloads_and_closes(writable_home):
    at = _open()
    at.button(key="monitoring_report_open").click().run()
    assert not at.exception and not at.error
    rendered = sorted((writable_home / "reports" / "monitoring" / MODEL).glob("*.html"))
    assert [path.name for path in rendered] == ["20260902T000000Z.defused.html"]
    assert at.get("download_button")[0].proto.label == "Download the report (HTML)"
    assert len(at.get("iframe")) == 1 and "Drift report of apple-grader, window 2026-09-02" in _text(at)
    at.button(key="monitoring_report_close").click().run()
    assert not at.exception and not at.get("iframe") and not at.get("download_button")
