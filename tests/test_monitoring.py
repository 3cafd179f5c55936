"""The monitoring job on real homes: windows computed once, labels arriving later, a killed run, Evidently agreement."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from mlops_app.monitoring import (
    PREDICTION_FEATURE,
    feature_distributions,
    feature_drift_table,
    kpi_tiles,
    model_status,
    monitored_models,
    run_monitor,
    window_history,
    window_report,
)
from mlops_app.scoring import record_labels, score_frame
from mlops_app.status import Status
from tests.monitoring_helper import (
    ANA,
    FIRST_DAY,
    MODEL,
    WIDE_MODEL,
    build_home,
    build_wide_home,
    fruit,
    score_days,
    wide_features,
    wide_frame,
)

HELPER = Path(__file__).with_name("monitoring_helper.py")
REPO = Path(__file__).resolve().parents[1]
# Two calm days, then two days whose weight, size and colour moved.
DAYS = [(FIRST_DAY + timedelta(days=index), shift) for index, shift in enumerate([0.0, 0.0, 1.5, 1.5])]


def midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def counts(home, table: str) -> pd.DataFrame:
    return home.warehouse.query(f"SELECT window_start, count(*) AS n FROM {table} WHERE model = $1 GROUP BY ALL ORDER BY 1", [MODEL])


def test_each_closed_window_is_computed_once_and_a_second_run_changes_nothing(tmp_path):
    home = build_home(tmp_path / "home")
    score_days(home, DAYS, rows=600)

    first = run_monitor(home.settings, MODEL, until=midnight(DAYS[2][0] + timedelta(days=1)), retrain=False)
    assert [start.date() for start in first.runs[0].computed] == [day for day, _ in DAYS[:3]]  # day 4 is still open
    windows = home.warehouse.query("SELECT window_start, status, rows, drift_share, checked_features, summary FROM monitor_windows ORDER BY 1")
    assert list(windows["status"]) == ["healthy", "healthy", "watch"]
    assert list(windows["rows"]) == [600, 600, 600] and list(windows["checked_features"]) == [3, 3, 3]
    assert windows["drift_share"].iloc[2] == 1.0 and "3 of 3 features moved away" in windows["summary"].iloc[2]
    drifted = home.warehouse.query(
        "SELECT feature, method, drifted FROM drift_results WHERE window_start = $1 ORDER BY feature", [midnight(DAYS[2][0])]
    )
    assert list(drifted["feature"]) == [PREDICTION_FEATURE, "colour", "size", "weight"]
    assert drifted.set_index("feature").loc[["colour", "size", "weight"], "drifted"].all()
    assert set(drifted["method"]) == {"Wasserstein distance (normed)", "Jensen-Shannon distance"}
    before = {table: counts(home, table) for table in ("drift_results", "monitor_windows", "alerts")}

    again = run_monitor(home.settings, MODEL, until=midnight(DAYS[2][0] + timedelta(days=1)), retrain=False)
    assert again.runs[0].computed == [] and again.ok
    for table, frame in before.items():
        pd.testing.assert_frame_equal(counts(home, table), frame)

    last = run_monitor(home.settings, MODEL, until=midnight(DAYS[3][0] + timedelta(days=1)), retrain=False)
    assert [start.date() for start in last.runs[0].computed] == [DAYS[3][0]]
    assert list(counts(home, "monitor_windows")["n"]) == [1, 1, 1, 1]


def test_labels_arriving_days_later_judge_the_kpis_and_the_page_reads_it_all(tmp_path):
    home = build_home(tmp_path / "home")
    score_days(home, DAYS[:3], rows=600)
    until = midnight(DAYS[2][0] + timedelta(days=1))
    run_monitor(home.settings, MODEL, until=until, retrain=False)
    assert home.warehouse.query_one("SELECT count(*) FROM model_kpis WHERE met IS NOT NULL")[0] == 0  # no labels yet

    # The inspection finds the grader got every fruit wrong: it caught no bad fruit and discarded only good ones.
    logged = home.warehouse.query("SELECT entity_id, prediction FROM predictions")
    truth = pd.DataFrame({"fruit_id": logged["entity_id"], "is_bad": logged["prediction"] == "false"})
    record_labels(home.warehouse, home.registry, MODEL, truth, ANA)
    report = run_monitor(home.settings, MODEL, until=until, retrain=False)
    run = report.runs[0]
    assert run.computed == [] and len(run.refreshed) == 3 and len(run.opened_alerts) == 2

    kpis = home.warehouse.query("SELECT window_start, kpi, value, met FROM model_kpis WHERE kpi = 'recall_bad' ORDER BY 1")
    assert list(kpis["value"]) == [0.0, 0.0, 0.0] and not kpis["met"].any()
    alerts = home.warehouse.query("SELECT dedup_key, kind, severity, status, message, occurrences FROM alerts ORDER BY dedup_key")
    assert list(alerts["dedup_key"]) == ["drift", "kpi:false_discard_rate", "kpi:recall_bad"]  # one per breach, not per window
    alert = alerts.iloc[2]
    assert (alert["kind"], alert["severity"], alert["status"]) == ("kpi", "act", "open")
    assert alert["message"].startswith("Share of bad fruit caught: 0.0% over the 2 days to") and alert["occurrences"] == 3

    status, sentence = model_status(home.warehouse, MODEL)
    assert status == Status.ACT
    assert sentence.startswith("Act: fruit-grader is off target: ")
    assert "share of bad fruit caught 0.0% (target at least 90.0%)" in sentence and "(limit 20.0%)" in sentence
    assert "3 alerts are open" in sentence
    tiles = {tile.kpi: tile for tile in kpi_tiles(home.warehouse, MODEL)}
    assert tiles["recall_bad"].status == Status.ACT and tiles["recall_bad"].target_text == "target at least 90.0%"
    assert tiles["recall_bad"].value_text == "0.0%" and tiles["recall_bad"].delta == pytest.approx(-0.9)
    history = window_history(home.warehouse, MODEL)
    assert list(history["status"]) == ["act", "act", "act"] and list(history["kpi.recall_bad"]) == [0.0, 0.0, 0.0]
    assert history["alerts_opened"].sum() == 3 and history["metric.accuracy"].notna().all()
    table = feature_drift_table(home.warehouse, MODEL)  # the latest window: the shifted day
    assert table["drifted"].iloc[0] and table["role"].iloc[-1] == "prediction"
    shape = feature_distributions(home.warehouse, MODEL, "weight")
    assert len(shape) == 20 and shape["reference_share"].sum() == pytest.approx(1.0, abs=1e-3)
    centre = lambda column: float((shape["bin_start"] * shape[column]).sum())  # noqa: E731
    assert centre("current_share") > centre("reference_share") + 15  # 1.5 standard deviations of 20 g
    assert feature_distributions(home.warehouse, MODEL, "no-such-feature").empty
    html = window_report(home.settings, MODEL, midnight(DAYS[2][0]))
    assert html.is_file() and "<html" in html.read_text(encoding="utf-8")[:2000].lower()
    assert monitored_models(home.warehouse)["status"].tolist() == ["act"]
    assert model_status(home.warehouse, "other-model")[0] == Status.UNKNOWN


def test_a_killed_run_leaves_no_half_window_and_the_next_run_completes_the_missing_ones_once(tmp_path):
    home = build_home(tmp_path / "home")
    score_days(home, DAYS, rows=300)
    until = midnight(DAYS[-1][0] + timedelta(days=1))
    process = subprocess.Popen(
        [sys.executable, str(HELPER), str(tmp_path / "home"), "2", until.isoformat()],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    try:
        lines = []
        while not (lines and lines[-1].startswith("writing 2")):
            line = process.stdout.readline()
            if not line:
                pytest.fail(f"helper exited with {process.wait()} before writing window 2: {process.stderr.read()}")
            lines.append(line.strip())
        assert lines == ["done 1", "writing 2"]
        os.kill(process.pid, signal.SIGKILL)  # inside window 2's transaction
    finally:
        process.kill()
        process.wait()
    for table in ("monitor_windows", "drift_results", "model_kpis"):
        assert list(counts(home, table)["window_start"]) == [midnight(DAYS[0][0])], table

    report = run_monitor(home.settings, MODEL, until=until, retrain=False)
    assert [start.date() for start in report.runs[0].computed] == [day for day, _ in DAYS[1:]]
    assert list(counts(home, "monitor_windows")["n"]) == [1, 1, 1, 1]
    assert list(counts(home, "drift_results")["n"]) == [4, 4, 4, 4]  # 3 features and the prediction, once each


def test_a_model_another_run_is_working_on_is_skipped(tmp_path):
    home = build_home(tmp_path / "home")
    score_days(home, DAYS[:1], rows=100)
    lock = tmp_path / "home" / "monitoring" / ".locks" / f"{MODEL}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import filelock, time; lock = filelock.FileLock({str(lock)!r}); lock.acquire(); print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        report = run_monitor(home.settings, MODEL, until=midnight(DAYS[0][0] + timedelta(days=1)), retrain=False)
    finally:
        holder.kill()
        holder.wait()
    assert report.runs[0].skipped == "another monitor run is working on this model" and report.runs[0].computed == []
    assert home.warehouse.query_one("SELECT count(*) FROM monitor_windows")[0] == 0


def test_bad_settings_are_reported_by_name_and_leave_the_windows_for_later(tmp_path):
    home = build_home(tmp_path / "home", monitoring_yaml="model: fruit-grader\nwindow: fortnightly\n")
    score_days(home, DAYS[:1], rows=50)
    report = run_monitor(home.settings, until=midnight(DAYS[0][0] + timedelta(days=2)), retrain=False)
    assert not report.ok and "window" in report.runs[0].errors[0] and "fortnightly" in report.runs[0].errors[0]
    assert home.warehouse.query_one("SELECT count(*) FROM monitor_windows")[0] == 0


def test_sampled_drift_decisions_agree_with_evidently_on_the_full_data(tmp_path):
    rows = 12_000
    home, reference = build_wide_home(tmp_path / "home", reference_rows=rows, sample_rows=3_000)
    current = wide_frame(rows, current=True, seed=12, start=datetime(2026, 2, 1, tzinfo=UTC))
    score_frame(home.warehouse, home.registry, WIDE_MODEL, current.drop(columns=["is_bad"]), ANA)
    report = run_monitor(home.settings, WIDE_MODEL, until=datetime(2026, 2, 2, tzinfo=UTC), retrain=False)
    assert len(report.runs[0].computed) == 1
    window = home.warehouse.query("SELECT sampled_rows, reference_rows, rows FROM monitor_windows").iloc[0]
    assert (window["rows"], window["sampled_rows"], window["reference_rows"]) == (rows, 3_000, 3_000)
    ours = dict(home.warehouse.query("SELECT feature, drifted FROM drift_results WHERE role = 'feature'").itertuples(index=False, name=None))

    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift

    numeric, categorical = wide_features()
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    snapshot = Report([ValueDrift(column=column) for column in [*numeric, *categorical]], include_tests=True).run(
        Dataset.from_pandas(current[[*numeric, *categorical]], data_definition=definition),
        Dataset.from_pandas(reference[[*numeric, *categorical]], data_definition=definition),
    )
    full = {
        test["metric_config"]["params"]["column"]: str(getattr(test["status"], "value", test["status"])) == "FAIL"
        for test in snapshot.dict()["tests"]
    }
    assert len(full) == len(ours) == 20
    agree = sum(ours[column] == full[column] for column in full)
    assert agree / len(full) >= 0.95, {column: (ours[column], full[column]) for column in full if ours[column] != full[column]}
    assert sum(full.values()) == 10  # the test data really has drifted and calm columns


def test_settings_survive_a_round_trip_and_a_date_end_includes_its_whole_day(tmp_path):
    from mlops_app.demo_monitoring import GRADER_MONITORING_YAML
    from mlops_app.monitoring import MonitorConfigError, load_monitor_config, monitor_config_from_yaml, save_monitor_config

    config = monitor_config_from_yaml(GRADER_MONITORING_YAML)
    save_monitor_config(tmp_path, config, comment="the grader")
    again = load_monitor_config(tmp_path, "apple-grader")
    assert again == config and again.reference.end == date(2026, 7, 10) and again.retrain.on_alerts == ("drift", "kpi")
    with pytest.raises(MonitorConfigError, match=r"kpis.0.metric.*unknown KPI metric 'happiness'"):
        monitor_config_from_yaml("model: apple-grader\nkpis:\n  - metric: happiness\n    min: 1\n")
    with pytest.raises(MonitorConfigError, match="is for model 'apple-grader', not 'sugar-estimator'"):
        (tmp_path / "monitoring" / "sugar-estimator.yaml").write_text("model: apple-grader\n", encoding="utf-8")
        load_monitor_config(tmp_path, "sugar-estimator")


def test_a_hostile_category_cannot_become_markup_in_the_saved_drift_report(tmp_path):
    """Evidently writes values into the report's <script> blocks unescaped; a delivered value must not end them."""
    home = build_home(tmp_path / "home")
    frame = fruit(DAYS[0][0], 300, seed=5)
    hostile = "</script><img src=x onerror=alert(1)>"
    frame.loc[:60, "colour"] = hostile
    score_frame(home.warehouse, home.registry, MODEL, frame.drop(columns=["is_bad"]), ANA)
    run_monitor(home.settings, MODEL, until=midnight(DAYS[0][0] + timedelta(days=1)), retrain=False)
    text = window_report(home.settings, MODEL, midnight(DAYS[0][0])).read_text(encoding="utf-8")
    assert "onerror=alert(1)" in text  # the value is still there to read...
    assert "<img" not in text and "</script><" not in text  # ...but it cannot open or close a tag
    # The distribution shown on the page keeps the category readable.
    assert any("onerror=alert(1)" in str(bucket) for bucket in feature_distributions(home.warehouse, MODEL, "colour")["bucket"])
