"""What the Monitoring page shows, in plain language: which model, which window, tiles, drift rows, alerts.

:mod:`mlops_app.monitoring` and :mod:`mlops_app.alerts` compute and store; this module
decides what the page says about it (which model a link means, which window is picked,
how a KPI tile reads, how a drift test is explained, how an alert's life is told), so the
page only renders and the wording is unit-tested. Nothing here imports Streamlit or
Evidently.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from mlops_app import monitoring
from mlops_app.alerts import ACKNOWLEDGED, ALERT_KINDS, OPEN, RESOLVED, Alert, list_alerts
from mlops_app.auth import Identity
from mlops_app.demo_monitoring import LIVE, LOG_FILE, HistoryProgress
from mlops_app.errors import InvalidNameError
from mlops_app.formatting import format_time
from mlops_app.metric_catalog import METRICS, metric_info
from mlops_app.monitoring import PREDICTION_FEATURE, KpiTile, MonitorConfigError
from mlops_app.quality_view import escape_markdown, permission_note
from mlops_app.status import Status
from mlops_app.warehouse import Warehouse

__all__ = [
    "LATEST",
    "AlertCard",
    "KpiLine",
    "LiveView",
    "ProgressBanner",
    "TileView",
    "acknowledge_refusal",
    "acknowledged_message",
    "alert_cards",
    "alerts_summary",
    "choose_model",
    "configured_models",
    "distribution_sentence",
    "drift_limit",
    "drift_rows",
    "drift_sentence",
    "drift_tile",
    "escape_markdown",
    "input_label",
    "kpi_tile",
    "live_tiles",
    "load_live",
    "methods_caption",
    "model_choices",
    "progress_banner",
    "refresh_interval",
    "report_available",
    "updated_caption",
    "window_caption",
    "window_choices",
    "window_label",
    "window_row",
]

LATEST = "latest"  # the window choice that follows the newest window as new ones arrive
# A shorter interval would have every open page query the warehouse several times a second.
MIN_REFRESH_SECONDS = 1.0
PREDICTION_LABEL = "Model's score (its output)"
KIND_WORDS = {"num": "Number", "cat": "Category"}
DRIFTED_WORDS = {True: "Yes", False: "No"}
RETRAIN_WORDS = {
    "requested": "Retraining requested",
    "running": "Retraining in progress",
    "done": "Retrained",
    "failed": "Retraining failed",
    "skipped": "Retraining not started",
}
# What each of Evidently's drift tests measures, for the caption under the table. Tests
# named "... p_value" (and Fisher's) give a probability: drift when it is BELOW the threshold.
METHOD_EXPLANATIONS = {
    "Wasserstein distance (normed)": "how far the values moved, in standard deviations of the training data",
    "Jensen-Shannon distance": "how different the shares of each category are, from 0 (the same) to 1 (nothing in common)",
    "K-S p_value": "Kolmogorov-Smirnov test: the chance that both samples come from the same spread of values",
    "chi-square p_value": "chi-square test: the chance that the category shares differ only by luck",
    "Z-test p_value": "Z-test: the chance that the share of each of the two values differs only by luck",
    "Fisher's Exact test": "Fisher's exact test: the chance that the shares of the two values differ only by luck",
    "PSI": "Population Stability Index: how much the shares of value ranges moved",
    "Kullback-Leibler divergence": "how much information is lost describing this window with the training data's shares",
    "Hellinger distance (normed)": "how different the two spreads of values are, from 0 (the same) to 1",
    "Energy-distance": "how far apart the two spreads of values are",
}


# --- Refreshing -------------------------------------------------------------------------------------


def refresh_interval(seconds: float | None) -> float | None:
    """The live section's rerun interval in seconds; None (no auto-refresh) for 0, negative or missing."""
    if seconds is None or not math.isfinite(float(seconds)) or float(seconds) <= 0:
        return None
    return max(float(seconds), MIN_REFRESH_SECONDS)


def updated_caption(now: datetime, interval: float | None) -> str:
    """``Updated 14:03:27 UTC · refreshes every 10 s`` (or that it refreshes when the page is reloaded)."""
    moment = now.astimezone(UTC) if now.tzinfo else now.replace(tzinfo=UTC)
    every = f"refreshes every {interval:g} s" if interval else "refreshes when you reload the page"
    return f"Updated {moment:%H:%M:%S} UTC · {every}"


# --- Which model ------------------------------------------------------------------------------------


def configured_models(home: Path | str) -> list[str]:
    """Models with a monitoring settings file (``<home>/monitoring/<model>.yaml``), by name.

    A file whose name is not a valid model name is skipped: it cannot be any model's settings.
    """
    folder = monitoring.monitor_folder(home)
    try:
        names = [entry.name[: -len(".yaml")] for entry in os.scandir(folder) if entry.name.endswith(".yaml")]
    except (FileNotFoundError, NotADirectoryError):
        return []
    found = []
    for name in names:
        try:
            if monitoring.monitor_config_path(home, name).is_file():
                found.append(name)
        except InvalidNameError:
            continue
    return sorted(found)


def model_choices(monitored: pd.DataFrame, home: Path | str) -> list[str]:
    """Models with monitoring results plus models with a settings file (not computed yet), sorted."""
    names = set(monitored["model"].astype(str)) if not monitored.empty else set()
    return sorted(names | set(configured_models(home)))


def choose_model(requested: str | None, known: Sequence[str], registered: Sequence[str] = ()) -> tuple[str | None, str | None]:
    """The model a link asks for, or the first one; with a warning when the link names one not monitored.

    Args:
        registered: models in the registry, so a registered model that is not monitored yet
            gets the commands that start monitoring it rather than "no such model".

    Returns:
        (model or None when none is monitored, warning text or None).
    """
    if not known:
        return None, None
    if not requested:
        return known[0], None
    if requested in known:
        return requested, None
    shown = requested if len(requested) <= 80 else requested[:77] + "..."
    if requested in registered:
        return known[0], (
            f"{shown} is registered but not monitored yet. Score a batch with `mlops-app score {shown} FILE`, "
            f"then run `mlops-app monitor {shown}` to compute its first window. Showing {known[0]}."
        )
    return known[0], (
        f"There is no monitored model named `{shown}`; the link you followed may be out of date. "
        f"Monitored models: {', '.join(known)}. Showing {known[0]}."
    )


def drift_limit(home: Path | str, model: str) -> tuple[float | None, str | None]:
    """The share of drifted inputs above which the model is put on Watch, from its settings.

    Returns:
        (the limit, None), or (None, the problem) when the settings file is malformed.
    """
    try:
        return monitoring.load_monitor_config(home, model).drift_share_threshold, None
    except MonitorConfigError as error:
        return None, f"{error} Until it is fixed, `mlops-app monitor {model}` cannot compute new windows."


# --- The demo's history build -------------------------------------------------------------------------


@dataclass(frozen=True)
class ProgressBanner:
    """What the page says about the demo's season replay.

    Attributes:
        level: ``progress`` (a bar), ``info`` or ``warning``.
        share: the bar's fill from 0 to 1 (``progress`` only).
    """

    level: str
    text: str
    detail: str
    share: float | None = None


def progress_banner(progress: HistoryProgress | None) -> ProgressBanner | None:
    """The banner for a demo history build or live replay; None when there is nothing to say."""
    if progress is None or progress.status in ("complete", "stopped"):
        return None
    done, total = progress.days_done, progress.days_total
    if progress.status == "building":
        if total <= 0:
            return ProgressBanner("progress", "Replaying the demo season: starting…", progress.message, 0.0)
        up_to = f" (up to {progress.day})" if progress.day else ""
        text = f"Replaying the demo season: {done} of {total} days{up_to}…"
        return ProgressBanner("progress", text, progress.message, min(max(progress.share_done, 0.0), 1.0))
    if progress.status == LIVE:
        return ProgressBanner(
            "info",
            f"Live replay of the demo season: day {done} of {total}" + (f" ({progress.day})" if progress.day else "") + ".",
            progress.message,
        )
    resume = "Run `mlops-app demo` (or `mlops-app demo --live`) again to resume it: days already replayed are kept."
    if progress.status == "failed":
        where = f" on the day after {progress.day}" if progress.day else ""
        return ProgressBanner(
            "warning",
            f"Replaying the demo season failed{where}, after {done} of {total} days. {resume}",
            f"{progress.message} (details in `{LOG_FILE}` under the home folder)",
        )
    # "interrupted": the process that replayed is gone (its last message, replaced by the
    # library with the same advice as ours, adds nothing).
    return ProgressBanner("warning", f"Replaying the demo season stopped after {done} of {total} days. {resume}", "")


# --- Tiles ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TileView:
    """One metric tile as the page draws it: st.metric plus a status badge and a caption."""

    label: str
    value: str
    delta: str | None
    delta_color: str  # "normal" (up is good), "inverse" (down is good) or "off"
    help: str
    status: Status
    badge: str
    caption: str


def _points(value: float, unit: str) -> str:
    if unit == "%":
        return f"{value * 100:+.1f} pts"
    return f"{value:+.3g} {unit}".strip()


def kpi_tile(tile: KpiTile) -> TileView:
    """A KPI tile: its latest judged value, the gap to its target bound, and its status in words.

    The delta is drawn only once the KPI is judged, against the bound it is held to: above
    a minimum (a target to reach) is good, above a maximum (a limit not to pass) is bad.
    """
    delta, colour = None, "off"
    if tile.met is not None and tile.delta is not None:
        has_minimum = tile.target_min is not None
        delta = _points(tile.delta, tile.unit) + (" against the target" if has_minimum else " against the limit")
        colour = "normal" if has_minimum else "inverse"
    if tile.met is None:
        caption = f"Not judged yet: {tile.labelled_rows:,} labelled predictions so far."
    else:
        upto = f", to {format_time(tile.window_end)}" if tile.window_end else ""
        caption = f"From {tile.labelled_rows:,} predictions whose outcome is known{upto}."
    return TileView(
        label=tile.label, value=tile.value_text, delta=delta, delta_color=colour, help=tile.help, status=tile.status,
        badge=f"{tile.status.word} · {tile.target_text}" if tile.target_text else tile.status.word, caption=caption,
    )  # fmt: skip


def drift_tile(history: pd.DataFrame, limit: float | None) -> TileView | None:
    """The share of inputs that drifted in the latest window with drift results; None before any."""
    checked = history.dropna(subset=["drift_share"]) if not history.empty else history
    if checked.empty:
        return None
    latest = checked.iloc[-1]
    share, drifted, total = float(latest["drift_share"]), int(latest["drifted_features"]), int(latest["checked_features"])
    if limit is None:
        status, badge = Status.UNKNOWN, "No limit set"
    else:
        status = Status.WATCH if share > limit else Status.HEALTHY
        badge = f"{status.word} · limit {limit:.0%} of inputs"
    return TileView(
        label="Inputs that drifted",
        value=f"{drifted} of {total}",
        delta=None,
        delta_color="off",
        help=(
            "How many of the model's inputs (the measurements it decides from) look different from the data it was "
            "trained on, in the latest window. Above the limit the model is put on Watch and an alert opens: its "
            "decisions may be less reliable than its test results promised."
        ),
        status=status,
        badge=badge,
        caption=f"Window {window_label(latest['window_start'], latest['window_end'])}: {int(latest['rows']):,} predictions compared.",
    )


def live_tiles(live: LiveView, limit: float | None) -> list[TileView]:
    """The tiles in the order shown: inputs drifted first (once a window was compared), then each KPI."""
    drift = drift_tile(live.history, limit)
    return ([drift] if drift else []) + [kpi_tile(tile) for tile in live.tiles]


# --- The live section's data --------------------------------------------------------------------


@dataclass(frozen=True)
class KpiLine:
    """One KPI in the chart over time.

    Attributes:
        column: the KPI's column in :func:`mlops_app.monitoring.window_history`.
        window_column: the same metric measured on each window alone, when recorded.
    """

    kpi: str
    label: str
    unit: str
    column: str
    window_column: str | None
    target_min: float | None
    target_max: float | None


@dataclass(frozen=True)
class LiveView:
    """Everything the live section draws for one model, read in one go (cached per warehouse change)."""

    status: Status
    sentence: str
    tiles: list[KpiTile]
    history: pd.DataFrame
    lines: list[KpiLine]
    alerts: list[AlertCard]


def _kpi_lines(warehouse: Warehouse, model: str, history: pd.DataFrame) -> list[KpiLine]:
    targets = warehouse.query(
        """
        SELECT kpi, label, target_min, target_max FROM (
            SELECT *, row_number() OVER (PARTITION BY kpi ORDER BY window_start DESC) AS n FROM model_kpis WHERE model = $1)
        WHERE n = 1 ORDER BY kind, kpi
        """,
        [model],
    )
    lines = []
    for kpi, label, low, high in targets.itertuples(index=False):
        if f"kpi.{kpi}" not in history.columns:
            continue
        window_column = f"metric.{kpi}" if f"metric.{kpi}" in history.columns else None
        unit = metric_info(kpi).unit if kpi in METRICS else ""
        lines.append(KpiLine(kpi, label or metric_info(kpi).label, unit, f"kpi.{kpi}", window_column, _number(low), _number(high)))
    return lines


def _missing(value: Any) -> bool:
    """None, NaN, NaT or pd.NA: what a warehouse NULL becomes in a frame."""
    return value is None or bool(pd.isna(value))


def _number(value: Any) -> float | None:
    return None if _missing(value) else float(value)


def load_live(warehouse: Warehouse, model: str) -> LiveView:
    """The model's status, KPI tiles, window history, chart lines and alerts from stored results.

    Raises:
        WarehouseBusyError: another process held the warehouse past the lock timeout.
    """
    status, sentence = monitoring.model_status(warehouse, model)
    history = monitoring.window_history(warehouse, model)
    return LiveView(
        status=status,
        sentence=sentence,
        tiles=monitoring.kpi_tiles(warehouse, model),
        history=history,
        lines=_kpi_lines(warehouse, model, history) if not history.empty else [],
        alerts=alert_cards(list_alerts(warehouse, model)),
    )


# --- Windows --------------------------------------------------------------------------------------


def window_label(start: Any, end: Any) -> str:
    """``2026-09-02`` for a day, ``2026-08-27 to 2026-09-02`` for whole days, else times in UTC."""
    start, end = pd.Timestamp(start).tz_convert("UTC"), pd.Timestamp(end).tz_convert("UTC")
    whole_days = start == start.normalize() and end == end.normalize()
    if whole_days and end - start == timedelta(days=1):
        return f"{start:%Y-%m-%d}"
    if whole_days:
        return f"{start:%Y-%m-%d} to {end - timedelta(days=1):%Y-%m-%d}"
    return f"{start:%Y-%m-%d %H:%M} to {end:%H:%M} UTC" if start.date() == end.date() else f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC"


def _predictions(rows: Any) -> str:
    return f"{int(rows):,} prediction{'s' if int(rows) != 1 else ''}"


def window_choices(history: pd.DataFrame) -> dict[str, str]:
    """Options of the window picker, newest first: ``{key: label}``.

    The first key, :data:`LATEST`, follows the newest window as new ones arrive; the others
    are the windows' start times in ISO form. A label never changes for its key (the browser
    keeps showing the label it was given when picked), so the status is not in it.
    """
    if history.empty:
        return {}
    choices = {LATEST: "Latest window (follows new ones)"}
    for _, row in history.iloc[::-1].iterrows():
        label = window_label(row["window_start"], row["window_end"])
        choices[pd.Timestamp(row["window_start"]).isoformat()] = f"{label} · {_predictions(row['rows'])}"
    return choices


def window_caption(row: pd.Series) -> str:
    """``Window 2026-09-02: Watch, 95 predictions.`` for the window shown."""
    status = Status[str(row["status"]).upper()]
    return f"Window {window_label(row['window_start'], row['window_end'])}: {status.word}, {_predictions(row['rows'])}."


def window_row(choice: str | None, history: pd.DataFrame) -> pd.Series | None:
    """The history row a picker choice means: the newest for :data:`LATEST` (or an unknown key)."""
    if history.empty:
        return None
    if choice and choice != LATEST:
        matches = history[history["window_start"] == pd.Timestamp(choice)]
        if not matches.empty:
            return matches.iloc[0]
    return history.iloc[-1]


# --- Drift per input -------------------------------------------------------------------------------


def input_label(feature: str, role: str | None = None) -> str:
    return PREDICTION_LABEL if feature == PREDICTION_FEATURE or role == "prediction" else feature


def _lower_is_drift(method: str | None) -> bool:
    name = (method or "").lower()
    return "p_value" in name or "exact test" in name


def _threshold_text(method: str | None, threshold: Any) -> str:
    if _missing(threshold):
        return "not set"
    return f"drift if {'below' if _lower_is_drift(method) else 'above'} {float(threshold):.3g}"


def drift_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The drift table in plain words: Input, Kind, Test used, Score, Threshold, Drifted (one row per input)."""
    rows = []
    for item in table.itertuples(index=False):
        drifted = None if _missing(item.drifted) else bool(item.drifted)
        method = None if _missing(item.method) else str(item.method)
        rows.append(
            {
                "Input": input_label(item.feature, item.role),
                "Kind": KIND_WORDS.get(item.column_type, str(item.column_type or "")),
                "Test used": method or "not checked",
                "Score": "n/a" if _missing(item.score) else f"{float(item.score):.3g}",
                "Threshold": _threshold_text(method, item.threshold),
                "Drifted": DRIFTED_WORDS.get(drifted, "Not judged"),
            }
        )
    return pd.DataFrame(rows, columns=["Input", "Kind", "Test used", "Score", "Threshold", "Drifted"])


def drift_sentence(table: pd.DataFrame, window: str) -> str:
    """One sentence on a window's drift: how many inputs moved, whether the score moved, the sample sizes."""
    inputs = table[table["role"] != "prediction"]
    judged = inputs[inputs["drifted"].notna()]
    drifted = [input_label(name) for name in judged.loc[judged["drifted"].astype(bool), "feature"]]
    text = f"In the window {window}, {len(drifted)} of {len(judged)} inputs drifted"
    text += f" ({', '.join(drifted)})" if 0 < len(drifted) <= 4 else ""
    prediction = table[table["role"] == "prediction"]
    if not prediction.empty and prediction["drifted"].notna().iloc[0]:
        text += "; the model's scores moved too" if bool(prediction["drifted"].iloc[0]) else "; the model's scores did not move"
    first = table.iloc[0] if not table.empty else None
    if first is not None and not pd.isna(first["current_rows"]) and not pd.isna(first["reference_rows"]):
        text += f". Compared: {int(first['current_rows']):,} predictions with {int(first['reference_rows']):,} rows of training data"
    return text + "."


def methods_caption(table: pd.DataFrame) -> str:
    """What each test used in the table measures, and which way its threshold points."""
    parts = []
    for method in dict.fromkeys(table["method"].dropna()):
        meaning = METHOD_EXPLANATIONS.get(method, "the test Evidently picks for this kind of input and sample size")
        direction = "a low value means drift" if _lower_is_drift(method) else "a high value means drift"
        parts.append(f"**{method}**: {meaning}; {direction}.")
    return " ".join(parts)


def distribution_sentence(frame: pd.DataFrame, label: str) -> str:
    """Where the window's values differ most from the training data's, in shares of rows."""
    if frame.empty:
        return f"No distribution was stored for {label} in this window."
    gap = (frame["current_share"] - frame["reference_share"]).abs()
    row = frame.loc[gap.idxmax()]
    numeric = row["bin_start"] is not None and pd.notna(row["bin_start"])
    place = f"between {float(row['bin_start']):.4g} and {float(row['bin_end']):.4g}" if numeric else f"‘{row['bucket']}’"
    return (
        f"The biggest difference for {label}: {row['current_share']:.1%} of this window's values are {place}, "
        f"against {row['reference_share']:.1%} of the training data's."
    )


def report_available(home: Path | str, model: str, window_start: Any) -> bool:
    """Whether the window has a saved Evidently report (snapshot or rendered page) to open."""
    start = pd.Timestamp(window_start).to_pydatetime()
    return any(
        monitoring.report_file(home, model, start, suffix).is_file() for suffix in (monitoring.SNAPSHOT_SUFFIX, monitoring.HTML_SUFFIX)
    )


# --- Alerts -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AlertCard:
    """One alert as the page tells it.

    Attributes:
        badge_status / badge: the severity while active; a resolved alert reads "Resolved".
        retrain: what retraining did, or None when it was not asked for.
        challenger_version: the version retraining registered (or, while skipped, the one waiting
            for review that holds it back), to link its review.
    """

    alert_id: str
    title: str
    message: str
    badge_status: Status
    badge: str
    state: str
    when: str
    retrain: str | None
    challenger_version: int | None
    can_acknowledge: bool
    active: bool


def _state_text(row: Any) -> str:
    if row.status == OPEN:
        return "Open: nobody has acknowledged it yet."
    if row.status == ACKNOWLEDGED:
        return f"Acknowledged by {row.acknowledged_by or 'someone'} on {format_time(row.acknowledged_at)}; tracked until the condition clears."
    return f"Resolved on {format_time(row.resolved_at)}: the condition stayed clear."


def _retrain_text(status: Any, detail: Any) -> str | None:
    if _missing(status) or not status:
        return None
    label = RETRAIN_WORDS.get(str(status), f"Retraining {status}")
    if _missing(detail) or not str(detail).strip():
        return label + "."
    detail = str(detail).strip()
    # The library's skip notes already open with "Retraining not started: ...".
    return detail if detail.lower().startswith("retrain") else f"{label}: {detail}"


def alert_cards(frame: pd.DataFrame) -> list[AlertCard]:
    """Alerts from :func:`mlops_app.alerts.list_alerts`, open first, then acknowledged, then resolved; newest first in each."""
    order = {OPEN: 0, ACKNOWLEDGED: 1, RESOLVED: 2}
    cards: list[tuple[int, Any, AlertCard]] = []
    for row in frame.itertuples(index=False):
        severity = Status.ACT if row.severity == "act" else Status.WATCH
        active = row.status in (OPEN, ACKNOWLEDGED)
        occurrences = int(row.occurrences or 1)
        when = f"Opened {format_time(row.opened_at)}"
        if not _missing(row.window_start) and not _missing(row.window_end):
            when += f" for the window {window_label(row.window_start, row.window_end)}"
        when += f" · seen in {occurrences} window{'s' if occurrences != 1 else ''}"
        if occurrences > 1 and not _missing(row.last_seen_at):
            when += f", last up to {format_time(row.last_seen_at)}"
        version = row.challenger_version
        card = AlertCard(
            alert_id=row.alert_id, title=ALERT_KINDS.get(row.kind, str(row.kind)), message=row.message,
            badge_status=severity if active else Status.HEALTHY,
            badge=severity.word if active else f"Resolved (was {severity.word})",
            state=_state_text(row), when=when, retrain=_retrain_text(row.retrain_status, row.retrain_detail),
            challenger_version=None if _missing(version) else int(version),
            can_acknowledge=row.status == OPEN, active=active,
        )  # fmt: skip
        cards.append((order.get(row.status, 3), -pd.Timestamp(row.opened_at).value, card))
    return [card for *_, card in sorted(cards, key=lambda item: item[:2])]


def alerts_summary(cards: Sequence[AlertCard]) -> str:
    """``1 alert needs attention (1 open, 0 acknowledged); 5 resolved.`` or that there has been none."""
    if not cards:
        return "No alert so far: no window has broken a threshold."
    opened = sum(card.can_acknowledge for card in cards)
    active = sum(card.active for card in cards)
    resolved = len(cards) - active
    if not active:
        return f"No alert needs attention; {resolved} resolved."
    needs = f"{active} alert{'s need' if active != 1 else ' needs'} attention ({opened} open, {active - opened} acknowledged)"
    return needs + (f"; {resolved} resolved." if resolved else ".")


def acknowledge_refusal(identity: Identity) -> str | None:
    """None when ``identity`` may acknowledge alerts; otherwise who may (the library checks again)."""
    return permission_note(identity, "acknowledge_alert", "acknowledge alerts")


def acknowledged_message(alert: Alert) -> str:
    """The outcome shown after the Acknowledge button."""
    title = ALERT_KINDS.get(alert.kind, alert.kind).lower()
    return (
        f"Acknowledged the alert on {alert.model} ({title}) as {alert.acknowledged_by}. "
        "It stays tracked; the monitoring job resolves it once the condition clears."
    )
