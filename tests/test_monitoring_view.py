"""The words and choices of the Monitoring page: model, window, tiles, drift rows, alerts, the demo banner.

Pure functions get small hand-made values; the reads run on the shared monitored demo home
(never changed here) or on a fresh home in tmp_path.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from mlops_app.alerts import Alert
from mlops_app.auth import Identity
from mlops_app.config import load_settings
from mlops_app.demo_monitoring import HistoryProgress
from mlops_app.monitoring import KpiTile, MonitorConfig, monitor_config_path, save_monitor_config
from mlops_app.monitoring_view import (
    LATEST,
    PREDICTION_LABEL,
    acknowledge_refusal,
    acknowledged_message,
    alert_cards,
    alerts_summary,
    choose_model,
    configured_models,
    distribution_sentence,
    drift_limit,
    drift_rows,
    drift_sentence,
    drift_tile,
    kpi_tile,
    live_tiles,
    load_live,
    methods_caption,
    model_choices,
    progress_banner,
    refresh_interval,
    report_available,
    updated_caption,
    window_caption,
    window_choices,
    window_label,
    window_row,
)
from mlops_app.status import Status
from mlops_app.warehouse import Warehouse

DAY = pd.Timestamp("2026-09-02", tz="UTC")


def _identity(role: str) -> Identity:
    return Identity(email=f"{role}@orchard.example", name=role, role=role, source="local")


# --- Refreshing and choosing the model ------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(10, 10.0), (2.5, 2.5), (0.2, 1.0), (0, None), (-3, None), (None, None), (math.nan, None), (math.inf, None)],
)
def test_refresh_interval_is_off_for_zero_and_never_faster_than_a_second(seconds, expected):
    assert refresh_interval(seconds) == expected


def test_updated_caption_names_the_utc_time_and_the_interval():
    moment = datetime(2026, 9, 3, 14, 3, 27, tzinfo=UTC)
    assert updated_caption(moment, 10.0) == "Updated 14:03:27 UTC · refreshes every 10 s"
    assert updated_caption(moment.astimezone(UTC).replace(tzinfo=None), 2.5).endswith("every 2.5 s")
    assert updated_caption(moment, None) == "Updated 14:03:27 UTC · refreshes when you reload the page"


def test_configured_models_are_the_valid_settings_files(tmp_path):
    assert configured_models(tmp_path) == []
    save_monitor_config(tmp_path, MonitorConfig(model="plum-sorter"))
    save_monitor_config(tmp_path, MonitorConfig(model="apple-grader"))
    folder = monitor_config_path(tmp_path, "apple-grader").parent
    (folder / "Not A Model.yaml").write_text("model: x\n")
    (folder / "notes.txt").write_text("not settings")
    (folder / "dir.yaml").mkdir()
    assert configured_models(tmp_path) == ["apple-grader", "plum-sorter"]
    monitored = pd.DataFrame({"model": ["cherry-picker", "apple-grader"]})
    assert model_choices(monitored, tmp_path) == ["apple-grader", "cherry-picker", "plum-sorter"]
    assert model_choices(pd.DataFrame(columns=["model"]), tmp_path / "nowhere") == []


def test_choose_model_from_the_link():
    known = ["apple-grader", "plum-sorter"]
    assert choose_model(None, []) == (None, None)
    assert choose_model(None, known) == ("apple-grader", None)
    assert choose_model("plum-sorter", known) == ("plum-sorter", None)
    model, warning = choose_model("pear-grader", known)
    assert model == "apple-grader"
    assert warning.startswith("There is no monitored model named `pear-grader`") and "apple-grader, plum-sorter" in warning
    model, warning = choose_model("sugar-estimator", known, registered=["apple-grader", "sugar-estimator"])
    assert "sugar-estimator is registered but not monitored yet" in warning
    assert "`mlops-app score sugar-estimator FILE`" in warning and "`mlops-app monitor sugar-estimator`" in warning
    _, warning = choose_model("x" * 500, known)
    assert "x" * 77 + "..." in warning and "x" * 78 not in warning


def test_drift_limit_comes_from_the_settings_and_a_broken_file_is_explained(tmp_path):
    assert drift_limit(tmp_path, "apple-grader") == (0.3, None)
    save_monitor_config(tmp_path, MonitorConfig(model="apple-grader", drift_share_threshold=0.8))
    assert drift_limit(tmp_path, "apple-grader") == (0.8, None)
    monitor_config_path(tmp_path, "apple-grader").write_text("model: apple-grader\ndrift_share_threshold: lots\n")
    limit, problem = drift_limit(tmp_path, "apple-grader")
    assert limit is None and "drift_share_threshold" in problem and "`mlops-app monitor apple-grader` cannot compute" in problem


# --- The demo banner ------------------------------------------------------------------------------


def _progress(status: str, done: int = 12, total: int = 30, day: str | None = "2026-08-15", message: str = "m") -> HistoryProgress:
    return HistoryProgress(status, done, total, day, message, "2026-09-01T10:00:00+00:00", "2026-09-01T10:01:00+00:00", 1)


def test_progress_banner_for_each_state_of_the_replay():
    assert progress_banner(None) is None
    assert progress_banner(_progress("complete")) is None and progress_banner(_progress("stopped")) is None
    building = progress_banner(_progress("building", message="2026-08-15: scored 120 apples"))
    assert building.level == "progress" and building.share == pytest.approx(0.4)
    assert building.text == "Replaying the demo season: 12 of 30 days (up to 2026-08-15)…"
    assert building.detail == "2026-08-15: scored 120 apples"
    starting = progress_banner(_progress("building", done=0, total=0, day=None))
    assert starting.level == "progress" and starting.share == 0.0 and "starting" in starting.text
    live = progress_banner(_progress("live"))
    assert live.level == "info" and "day 12 of 30 (2026-08-15)" in live.text
    for status in ("interrupted", "failed"):
        banner = progress_banner(_progress(status, message="ValueError: boom"))
        assert banner.level == "warning" and "`mlops-app demo`" in banner.text and "12 of 30 days" in banner.text
    assert "failed on the day after 2026-08-15" in progress_banner(_progress("failed")).text
    assert progress_banner(_progress("failed", message="ValueError: boom")).detail.startswith("ValueError: boom")
    assert progress_banner(_progress("interrupted")).detail == ""  # the library's note repeats the advice
    assert "monitoring-history.log" in progress_banner(_progress("failed")).detail


# --- Tiles ----------------------------------------------------------------------------------------


def _tile(value, met, *, low=None, high=None, unit="%", labelled=440, kind="kpi") -> KpiTile:
    bound = low if low is not None else high
    return KpiTile(
        kpi="k", kind=kind, label="Share of bad apples caught", value=value, value_text=f"{value}", target_text="target x",
        met=met, delta=None if value is None else value - bound, unit=unit, labelled_rows=labelled,
        window_end=datetime(2026, 9, 2, tzinfo=UTC), help="What it means.", target_min=low, target_max=high,
    )  # fmt: skip


def test_kpi_tile_delta_points_the_good_way_for_targets_and_limits():
    above_target = kpi_tile(_tile(0.966, True, low=0.93))
    assert (above_target.delta, above_target.delta_color) == ("+3.6 pts against the target", "normal")
    assert above_target.status == Status.HEALTHY and above_target.badge == "Healthy · target x"
    assert above_target.caption == "From 440 predictions whose outcome is known, to 2026-09-02 00:00 UTC."
    under_limit = kpi_tile(_tile(0.024, True, high=0.04))
    assert (under_limit.delta, under_limit.delta_color) == ("-1.6 pts against the limit", "inverse")
    missed_target = kpi_tile(_tile(0.9, False, low=0.93))
    assert (missed_target.delta, missed_target.delta_color) == ("-3.0 pts against the target", "normal")
    assert missed_target.status == Status.ACT and missed_target.badge.startswith("Act")
    over_limit = kpi_tile(_tile(0.05, False, high=0.04, kind="metric_drop"))
    assert (over_limit.delta, over_limit.delta_color) == ("+1.0 pts against the limit", "inverse")
    assert over_limit.status == Status.WATCH
    error = kpi_tile(_tile(0.42, True, high=0.5, unit="°Bx"))
    assert error.delta == "-0.08 °Bx against the limit"
    at_the_limit = kpi_tile(_tile(0.04, True, high=0.04))  # met exactly at the bound: still a limit, not a target
    assert (at_the_limit.delta, at_the_limit.delta_color) == ("+0.0 pts against the limit", "inverse")


def test_a_kpi_not_judged_yet_says_so_and_draws_no_delta():
    tile = kpi_tile(_tile(0.5, None, low=0.93, labelled=12))
    assert tile.delta is None and tile.delta_color == "off" and tile.status == Status.UNKNOWN
    assert tile.caption == "Not judged yet: 12 labelled predictions so far."
    assert kpi_tile(_tile(None, None, low=0.93)).delta is None


def _history(shares, statuses=None, rows=None, alerts=None) -> pd.DataFrame:
    count = len(shares)
    starts = [DAY - pd.Timedelta(days=count - 1 - i) for i in range(count)]
    return pd.DataFrame(
        {
            "window_start": starts,
            "window_end": [start + pd.Timedelta(days=1) for start in starts],
            "status": statuses or ["watch"] * count,
            "rows": rows or [100] * count,
            "drift_share": shares,
            "drifted_features": [None if pd.isna(share) else round(share * 8) for share in shares],
            "checked_features": [None if pd.isna(share) else 8 for share in shares],
            "alerts_opened": alerts or [0] * count,
        }
    )


def test_drift_tile_judges_the_latest_checked_window_against_the_limit():
    history = _history([0.5, 1.0, math.nan], rows=[100, 95, 3])
    tile = drift_tile(history, 0.8)
    assert tile.value == "8 of 8" and tile.status == Status.WATCH and tile.badge == "Watch · limit 80% of inputs"
    assert tile.caption == "Window 2026-09-01: 95 predictions compared." and tile.help
    assert drift_tile(_history([1.0, 0.5]), 0.8).status == Status.HEALTHY
    assert drift_tile(_history([0.5]), None).status == Status.UNKNOWN
    assert drift_tile(_history([math.nan]), 0.8) is None and drift_tile(_history([]), 0.8) is None


# --- Windows --------------------------------------------------------------------------------------


def test_window_labels_are_iso_dates_or_times_in_utc():
    assert window_label(DAY, DAY + pd.Timedelta(days=1)) == "2026-09-02"
    assert window_label(DAY - pd.Timedelta(days=6), DAY + pd.Timedelta(days=1)) == "2026-08-27 to 2026-09-02"
    assert window_label(DAY + pd.Timedelta(hours=12), DAY + pd.Timedelta(hours=18)) == "2026-09-02 12:00 to 18:00 UTC"
    assert window_label(DAY + pd.Timedelta(hours=12), DAY + pd.Timedelta(days=1)) == "2026-09-02 12:00 to 2026-09-03 00:00 UTC"
    assert window_label(pd.Timestamp("2026-09-02 02:00", tz="Europe/Paris"), pd.Timestamp("2026-09-03 02:00", tz="Europe/Paris")) == "2026-09-02"


def test_window_choices_put_a_latest_option_that_follows_new_windows_first():
    history = _history([0.5, 1.0], statuses=["healthy", "act"], rows=[1, 95])
    choices = window_choices(history)
    assert list(choices) == [LATEST, "2026-09-02T00:00:00+00:00", "2026-09-01T00:00:00+00:00"]
    # Labels stay put for their key: the browser keeps showing the label of the picked option.
    assert choices[LATEST] == "Latest window (follows new ones)"
    assert choices["2026-09-01T00:00:00+00:00"] == "2026-09-01 · 1 prediction"
    assert window_choices(history.assign(status=["act", "watch"])) == choices
    assert window_caption(window_row(LATEST, history)) == "Window 2026-09-02: Act, 95 predictions."
    assert window_row(LATEST, history)["window_start"] == DAY
    assert window_row("2026-09-01T00:00:00+00:00", history)["window_start"] == DAY - pd.Timedelta(days=1)
    # A remembered window that is gone (another model, a reset) falls back to the latest.
    assert window_row("2020-01-01T00:00:00+00:00", history)["window_start"] == DAY
    longer = pd.concat([history, _history([0.2]).assign(window_start=[DAY + pd.Timedelta(days=1)], window_end=[DAY + pd.Timedelta(days=2)])])
    assert window_row(LATEST, longer)["window_start"] == DAY + pd.Timedelta(days=1)
    assert window_choices(_history([])) == {} and window_row(LATEST, _history([])) is None


# --- Drift per input ------------------------------------------------------------------------------


def _drift_table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "feature": ["weight_g", "variety", "firmness_n", "new_sensor", "_prediction"],
            "role": ["feature", "feature", "feature", "feature", "prediction"],
            "column_type": ["num", "cat", "num", "num", "num"],
            "method": ["Wasserstein distance (normed)", "chi-square p_value", "K-S p_value", None, "Energy-distance"],
            "score": [1.6366, 0.0001, 0.3, None, 0.02],
            "threshold": [0.1, 0.05, 0.05, None, 0.1],
            "drifted": [True, True, False, None, False],
            "reference_rows": [3268] * 5,
            "current_rows": [95] * 5,
        }
    )


def test_drift_rows_read_in_plain_words_with_the_threshold_s_direction():
    rows = drift_rows(_drift_table())
    assert list(rows.columns) == ["Input", "Kind", "Test used", "Score", "Threshold", "Drifted"]
    assert rows.iloc[0].tolist() == ["weight_g", "Number", "Wasserstein distance (normed)", "1.64", "drift if above 0.1", "Yes"]
    assert rows.iloc[1].tolist() == ["variety", "Category", "chi-square p_value", "0.0001", "drift if below 0.05", "Yes"]
    assert rows.iloc[2]["Drifted"] == "No" and rows.iloc[2]["Threshold"] == "drift if below 0.05"
    assert rows.iloc[3][["Test used", "Score", "Threshold", "Drifted"]].tolist() == ["not checked", "n/a", "not set", "Not judged"]
    assert rows.iloc[4]["Input"] == PREDICTION_LABEL
    assert drift_rows(_drift_table().iloc[0:0]).empty


def test_drift_sentence_counts_judged_inputs_and_names_a_few():
    table = _drift_table()
    assert drift_sentence(table, "2026-09-02") == (
        "In the window 2026-09-02, 2 of 3 inputs drifted (weight_g, variety); the model's scores did not move. "
        "Compared: 95 predictions with 3,268 rows of training data."
    )
    many = pd.concat([table.iloc[[0]]] * 6, ignore_index=True).assign(feature=[f"x{i}" for i in range(6)])
    assert drift_sentence(many, "2026-09-02").startswith("In the window 2026-09-02, 6 of 6 inputs drifted.")


def test_methods_caption_explains_each_test_once_and_which_way_it_points():
    caption = methods_caption(_drift_table())
    assert caption.count("**Wasserstein distance (normed)**") == 1
    assert "**chi-square p_value**" in caption and "a low value means drift" in caption and "a high value means drift" in caption
    unknown = methods_caption(pd.DataFrame({"method": ["Brand-new test", None]}))
    assert unknown == "**Brand-new test**: the test Evidently picks for this kind of input and sample size; a high value means drift."


def test_distribution_sentence_names_the_range_or_category_that_moved_most():
    numeric = pd.DataFrame(
        {"bucket": ["-5-0", "0-5"], "bin_start": [-5.0, 0.0], "bin_end": [0.0, 5.0], "reference_share": [0.5, 0.5], "current_share": [0.1, 0.9]}
    )
    assert distribution_sentence(numeric, "temperature") == (
        "The biggest difference for temperature: 10.0% of this window's values are between -5 and 0, against 50.0% of the training data's."
    )
    categories = pd.DataFrame(
        {"bucket": ["block-a", "block-h"], "bin_start": [None, None], "bin_end": [None, None], "reference_share": [0.6, 0.0], "current_share": [0.55, 0.15]}
    )
    assert "15.0% of this window's values are ‘block-h’, against 0.0%" in distribution_sentence(categories, "orchard_block")
    assert distribution_sentence(numeric.iloc[0:0], "x") == "No distribution was stored for x in this window."


# --- Alerts ---------------------------------------------------------------------------------------


def _alert_row(alert_id, status, *, severity="watch", kind="drift", opened="2026-08-21", occurrences=1, **extra):
    row = {
        "alert_id": alert_id, "model": "apple-grader", "kind": kind, "severity": severity, "status": status,
        "message": f"message of {alert_id}", "opened_at": pd.Timestamp(opened, tz="UTC"),
        "window_start": pd.Timestamp(opened, tz="UTC") - pd.Timedelta(days=1), "window_end": pd.Timestamp(opened, tz="UTC"),
        "last_seen_at": pd.Timestamp(opened, tz="UTC") + pd.Timedelta(days=occurrences - 1), "occurrences": occurrences,
        "acknowledged_by": None, "acknowledged_at": pd.NaT, "resolved_at": pd.NaT, "retrain_status": None,
        "retrain_detail": None, "challenger_version": pd.NA,
    }  # fmt: skip
    row.update(extra)
    return row


def test_alert_cards_put_open_first_and_tell_each_alert_s_life():
    frame = pd.DataFrame(
        [
            _alert_row("resolved-new", "resolved", severity="act", kind="kpi", opened="2026-08-31",
                       resolved_at=pd.Timestamp("2026-09-01", tz="UTC"), retrain_status="done",
                       retrain_detail="Challenger v4 registered.", challenger_version=4),
            _alert_row("acked", "acknowledged", opened="2026-08-25", acknowledged_by="rita@orchard.example",
                       acknowledged_at=pd.Timestamp("2026-08-26 09:30", tz="UTC"), retrain_status="requested"),
            _alert_row("open-old", "open", opened="2026-08-10", occurrences=14,
                       retrain_status="skipped", retrain_detail="Retraining not started: version 4 already waits for review."),
            _alert_row("open-new", "open", severity="act", kind="metric_drop", opened="2026-08-30", retrain_status="failed",
                       retrain_detail="ValueError: no rows"),
        ]
    )  # fmt: skip
    cards = alert_cards(frame)
    assert [card.alert_id for card in cards] == ["open-new", "open-old", "acked", "resolved-new"]
    new, old, acked, resolved = cards
    assert new.badge_status == Status.ACT and new.badge == "Act" and new.can_acknowledge and new.active
    assert new.title == "The key metric dropped below its holdout result"
    assert new.state == "Open: nobody has acknowledged it yet."
    assert new.when == "Opened 2026-08-30 00:00 UTC for the window 2026-08-29 · seen in 1 window"
    assert new.retrain == "Retraining failed: ValueError: no rows"
    assert old.when.endswith("seen in 14 windows, last up to 2026-08-23 00:00 UTC")
    assert old.retrain == "Retraining not started: version 4 already waits for review."
    assert not acked.can_acknowledge and acked.active and acked.badge == "Watch"
    assert acked.state.startswith("Acknowledged by rita@orchard.example on 2026-08-26 09:30 UTC")
    assert acked.retrain == "Retraining requested."
    assert resolved.badge_status == Status.HEALTHY and resolved.badge == "Resolved (was Act)" and not resolved.active
    assert resolved.state == "Resolved on 2026-09-01 00:00 UTC: the condition stayed clear."
    assert resolved.challenger_version == 4 and resolved.retrain == "Retrained: Challenger v4 registered."
    assert old.challenger_version is None
    assert alerts_summary(cards) == "3 alerts need attention (2 open, 1 acknowledged); 1 resolved."
    assert alerts_summary(cards[:1]) == "1 alert needs attention (1 open, 0 acknowledged)."
    assert alerts_summary(cards[3:]) == "No alert needs attention; 1 resolved."
    assert alerts_summary([]) == "No alert so far: no window has broken a threshold."


def test_acknowledging_needs_a_reviewer_and_the_outcome_names_who():
    refusal = acknowledge_refusal(_identity("viewer"))
    assert refusal.startswith("Only reviewers and above may acknowledge alerts") and "viewer@orchard.example" in refusal
    assert acknowledge_refusal(_identity("reviewer")) is None and acknowledge_refusal(_identity("admin")) is None
    moment = datetime(2026, 9, 3, tzinfo=UTC)
    alert = Alert(
        "a1", "apple-grader", "drift", "watch", "acknowledged", "m", "drift", moment, None, None, None, 1, "rita@orchard.example",
        moment, None, None, None, None, None, None, None, None, None, {},
    )  # fmt: skip
    assert acknowledged_message(alert) == (
        "Acknowledged the alert on apple-grader (features drifted from the training data) as rita@orchard.example. "
        "It stays tracked; the monitoring job resolves it once the condition clears."
    )


# --- Reads on the monitored demo ------------------------------------------------------------------


def test_load_live_reads_everything_the_live_section_draws(monitored_home):
    warehouse = Warehouse(monitored_home / "warehouse.duckdb")
    live = load_live(warehouse, "apple-grader")
    assert live.status == Status.WATCH and live.sentence.startswith("Watch: apple-grader is on target")
    assert {tile.kpi for tile in live.tiles} == {"recall_bad", "false_discard_rate"}
    assert live.history["window_start"].iloc[-1] == DAY and len(live.history) == 30
    lines = {line.kpi: line for line in live.lines}
    assert (lines["recall_bad"].target_min, lines["recall_bad"].target_max) == (0.93, None)
    assert (lines["false_discard_rate"].target_min, lines["false_discard_rate"].target_max) == (None, 0.04)
    assert lines["recall_bad"].unit == "%" and lines["recall_bad"].window_column == "metric.recall_bad"
    assert all(line.column in live.history.columns for line in live.lines)
    assert live.alerts[0].can_acknowledge and live.alerts[0].title == "Features drifted from the training data"
    assert any(card.challenger_version == 4 for card in live.alerts)
    assert drift_limit(monitored_home, "apple-grader") == (0.8, None)
    tiles = live_tiles(live, 0.8)
    assert [tile.label for tile in tiles] == ["Inputs that drifted", "Share of good apples discarded", "Share of bad apples caught"]
    assert [tile.status for tile in tiles] == [Status.WATCH, Status.HEALTHY, Status.HEALTHY]


def test_an_unmonitored_model_loads_empty_and_reports_exist_only_for_compared_windows(monitored_home, tmp_path):
    live = load_live(Warehouse(monitored_home / "warehouse.duckdb"), "sugar-estimator")
    assert live.status == Status.UNKNOWN and "Not checked yet" in live.sentence
    assert live.history.empty and live.tiles == [] and live.lines == [] and live.alerts == []
    assert live_tiles(live, 0.3) == []
    assert report_available(monitored_home, "apple-grader", DAY)
    assert not report_available(monitored_home, "apple-grader", DAY + timedelta(days=30))
    assert not report_available(tmp_path, "apple-grader", DAY)
    settings = load_settings({"MLOPS_APP_HOME": str(monitored_home)})
    assert configured_models(settings.home_path) == ["apple-grader"]
