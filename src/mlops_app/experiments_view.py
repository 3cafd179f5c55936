"""What the Experiments page says, decided here so the page only renders (and so it is unit-tested).

Reading a deep link (``?experiment=E&runs=ID1,ID2``), choosing defaults (the experiment,
the metric, the runs to compare), naming metrics in plain words with their units, the
verdict sentence, the runs table and the side-by-side comparison as display frames, and the
holdout results (slices, confusion matrix) in sentences a product manager can act on.

Everything is pure except the reads at the end (:func:`experiment_summary`,
:func:`run_detail`, :func:`compare_existing`, ``fetch_*``): they call
:mod:`mlops_app.experiments` with positional arguments only, which is what
``ui.state.cached`` needs to key its cache, and group reads into one unit of work.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import pandas as pd

from mlops_app.formatting import format_time as _format_time
from mlops_app.auth import Identity
from mlops_app.errors import NotFoundError
from mlops_app.experiments import (
    MAX_COMPARE,
    METRIC_PREFIX,
    PARAM_PREFIX,
    TAG_PREFIX,
    Comparison,
    RunFilter,
    RunsPage,
    compare_runs,
    get_run,
    metric_higher_is_better,
    run_keys,
    run_points,
    run_results,
    runs_page,
)
from mlops_app.metric_catalog import METRICS, format_value
from mlops_app.registry import NAME_PATTERN
from mlops_app.status import Status
from mlops_app.tracking import FAILED, FINISHED, RUN_ID_PATTERN, RUNNING
from mlops_app.warehouse import Warehouse

EXPERIMENT_PARAM, RUNS_PARAM = "experiment", "runs"
DEFAULT_COMPARE = 3
PAGE_SIZES = (25, 50, 100, 200)
DEFAULT_PAGE_SIZE = 50
# Plain symbols, not emoji: they render with the fonts of a bare server or a printout too.
STATUS_WORDS = {FINISHED: "✓ Finished", FAILED: "✕ Failed", RUNNING: "▶ Running"}
STATUS_COLOURS = {FINISHED: "green", FAILED: "red", RUNNING: "orange"}
# The trainer's tags (mlops_app.training, not imported here: it loads scikit-learn).
ROLE_TAG, SELECTION_TAG = "role", "selection_metric"
WINNER = "winner"
# A winner that does this much worse on the holdout than during the search (relative to
# its validation score) was partly lucky in the search: say so instead of "Healthy".
HOLDOUT_SHORTFALL = 0.05
NOT_SET = "not set"

# Where the trainer measured a metric, by the prefix it logs it under.
_CONTEXTS = (
    ("holdout_", "holdout", "Measured once on the holdout: the latest data, which the search never saw."),
    ("cv_", "cross-validation", "Mean over the cross-validation folds of the training period."),
    ("validation_", "validation", ""),
    ("val_", "validation", ""),
    ("test_", "test", ""),
    ("train_", "training data", "Measured on the data the model was fitted on, so it flatters the model."),
)
_SORT_COLUMNS = {"started_at": "Started", "ended_at": "Ended", "duration_s": "Duration", "name": "Name", "status": "Status"}


# --- Deep links --------------------------------------------------------------------------


class RunLink(NamedTuple):
    """The run ids of a ``runs=`` parameter: well-formed ones (in order, no repeats) and the rest."""

    ids: list[str]
    malformed: list[str]
    dropped: int  # well-formed ids beyond MAX_COMPARE


def parse_run_ids(text: str | None) -> RunLink:
    """Read ``ID1,ID2`` (commas or spaces) from a link; keep at most ``MAX_COMPARE`` ids."""
    ids: list[str] = []
    malformed: list[str] = []
    for part in re.split(r"[,\s]+", text or ""):
        if not part or part in ids or part in malformed:
            continue
        (ids if RUN_ID_PATTERN.fullmatch(part) else malformed).append(part)
    return RunLink(ids[:MAX_COMPARE], malformed, max(len(ids) - MAX_COMPARE, 0))


def format_run_ids(ids: Iterable[str]) -> str:
    return ",".join(ids)


def link_warning(link: RunLink, missing: Sequence[str]) -> str | None:
    """One sentence naming the linked runs that cannot be shown, or None when all can."""
    problems = []
    if missing:
        problems.append(f"no run has the id {', '.join(missing)} (it may have been deleted, or the link is mistyped)")
    if link.malformed:
        shown = ", ".join(repr(text[:70]) for text in link.malformed[:5])
        problems.append(f"{shown} {'is' if len(link.malformed) == 1 else 'are'} not a run id")
    if link.dropped:
        problems.append(f"{link.dropped} more runs were left out: a comparison shows at most {MAX_COMPARE}")
    if not problems:
        return None
    return "The link asks for runs that cannot be shown: " + "; ".join(problems) + ". Showing the others."


def choose_experiment(names: Sequence[str], requested: str | None, linked: str | None = None) -> tuple[str, str | None]:
    """The experiment to show and a warning when the link named an unknown one.

    Args:
        names: known experiments, most recently active first.
        requested: the ``experiment=`` of the link, if any.
        linked: the experiment of the first run the link names, if any.
    """
    if requested in names:
        return requested, None
    fallback = linked if linked in names else names[0]
    if requested:
        return fallback, f"There is no experiment named {requested!r}. Showing {fallback} instead."
    return fallback, None


def merge_selection(current: Sequence[str], page_ids: Sequence[str], picked_on_page: Sequence[str]) -> list[str]:
    """The runs to compare after the ticks on one page of the table changed.

    Runs selected on other pages stay, in their order; runs ticked on this page follow.
    """
    on_page = set(page_ids)
    kept = [run_id for run_id in current if run_id not in on_page or run_id in picked_on_page]
    return kept + [run_id for run_id in picked_on_page if run_id not in kept]


# --- Metrics in plain words --------------------------------------------------------------


@dataclass(frozen=True)
class MetricLabel:
    """How to show one logged metric key (``f1``, ``holdout_f1``, ``cv_f1_std``)."""

    key: str
    label: str
    unit: str
    higher_is_better: bool | None
    help: str


def _split_metric_key(key: str) -> tuple[str, str, bool]:
    """(catalogue name or the key, context prefix or "", is a ``_std`` spread) of a logged key."""
    base, spread = (key[:-4], True) if key.endswith("_std") else (key, False)
    for prefix, *_ in _CONTEXTS:
        if base.startswith(prefix) and base[len(prefix) :] in METRICS:
            return base[len(prefix) :], prefix, spread
    return base, "", spread


def describe_metric(key: str) -> MetricLabel:
    """Plain label, unit, direction and explanation of a metric key, from the catalogue."""
    base, prefix, spread = _split_metric_key(key)
    context, context_help = next(((words, help) for p, words, help in _CONTEXTS if p == prefix), ("", ""))
    info = METRICS.get(base)
    label = info.label if info else base.replace("_", " ")
    if spread:
        label += ", spread across folds"
        context_help = "How much the score varied between cross-validation folds: small means the model is steady over time."
    if context:
        label += f" ({context})"
    elif info is not None:
        context_help = "For a search trial: measured on the validation period, the data the search chose the winner on."
    parts = [info.help if info else "", context_help]
    return MetricLabel(key, label, info.unit if info else "", metric_higher_is_better(key), " ".join(p for p in parts if p))


def in_sentence(label: str) -> str:
    """A label inside a sentence: ``Typical error (MAE)`` -> ``typical error (MAE)``; ``F1 score`` stays."""
    first = label.split(" ", 1)[0]
    if first[:1].isupper() and first[1:2].islower() and not any(char.isdigit() for char in first):
        return label[:1].lower() + label[1:]
    return label


def run_display_name(name: str) -> str:
    """A winner run's name without its ``winner:`` prefix, for sentences that already say so."""
    return name.removeprefix("winner: ") if isinstance(name, str) else str(name)


def format_metric(key: str, value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return format_value(float(value), describe_metric(key).unit)


def metric_delta(key: str, value: Any, reference: Any) -> str | None:
    """``value - reference`` for a metric tile: percentage points for shares, 3 significant digits otherwise."""
    if value is None or reference is None or pd.isna(value) or pd.isna(reference):
        return None
    difference = float(value) - float(reference)
    if describe_metric(key).unit == "%":
        return f"{difference * 100:+.1f} pts"
    return f"{difference:+.3f}" if abs(float(reference)) < 10 else f"{difference:+,.3g}"


def metric_order(keys: Iterable[str], first: str | None = None) -> list[str]:
    """Metric keys in reading order: the chosen one, then validation (plain names), holdout,
    cross-validation, spreads, unknown keys; catalogue order within each."""
    catalogue = list(METRICS)
    groups = {"": 0, "holdout_": 1, "cv_": 2}

    def rank(key: str) -> tuple[int, int, str]:
        if key == first:
            return (-1, 0, key)
        base, prefix, spread = _split_metric_key(key)
        known = base in METRICS
        group = 3 if spread else groups.get(prefix, 0) if known else 4
        return (group, catalogue.index(base) if known else len(catalogue), key)

    return sorted(keys, key=rank)


def default_metric(metric_keys: Sequence[str], selection_metric: str | None = None) -> str | None:
    """The metric the page judges runs by: the search's selection metric, else the first
    catalogue metric the runs logged, else one with a known direction, else any."""
    if selection_metric in metric_keys:
        return selection_metric
    for name in METRICS:
        if name in metric_keys:
            return name
    known = [key for key in metric_keys if metric_higher_is_better(key) is not None]
    return (known or list(metric_keys) or [None])[0]


def sort_options(params: Sequence[str], metrics: Sequence[str]) -> dict[str, str]:
    """Sort keys for ``runs_page`` and their labels: metrics first (the useful sorts), then run columns, then params."""
    options = {METRIC_PREFIX + key: describe_metric(key).label for key in metric_order(metrics)}
    options.update(_SORT_COLUMNS)
    options.update({PARAM_PREFIX + key: f"param {key}" for key in params})
    return options


def best_first(sort_by: str) -> bool:
    """The natural direction of a sort: best metric values first, newest runs first, names A-Z."""
    if sort_by.startswith(METRIC_PREFIX):
        return metric_higher_is_better(sort_by[len(METRIC_PREFIX) :]) is not False
    return sort_by in ("started_at", "ended_at", "duration_s")


# --- The verdict -------------------------------------------------------------------------


def _value(row: Mapping[str, Any] | None, key: str) -> float | None:
    if row is None:
        return None
    value = row.get(METRIC_PREFIX + key)
    return None if value is None or pd.isna(value) else float(value)


def experiment_verdict(
    experiment: str,
    counts: Mapping[str, int],
    metric: str | None,
    best: Mapping[str, Any] | None,
    winner: Mapping[str, Any] | None,
) -> tuple[Status, str]:
    """The status and the opening sentences of the page.

    Args:
        counts: ``runs``, ``finished``, ``failed``, ``running`` of the experiment.
        metric: the metric runs are judged by (None when no run logged one).
        best: the finished run with the best value of ``metric`` (a runs-table row).
        winner: the latest winner run of a search (a row with its ``holdout_*`` metrics), if any.
    """
    runs, finished, failed, running = (int(counts.get(k, 0)) for k in ("runs", "finished", "failed", "running"))
    tally = f"**{experiment}** has {runs:,} run{'s' if runs != 1 else ''}: {finished:,} finished, {failed:,} failed, {running:,} still running."
    if runs == 0:
        return Status.UNKNOWN, tally + " Nothing to compare yet: start a search with `mlops-app train`."
    if finished == 0:
        status = Status.ACT if failed else Status.UNKNOWN
        why = "Every run failed: open one below (filter `status = failed`) to read its error." if failed else "No run has finished yet."
        return status, f"{tally} {why}"
    status = Status.WATCH if failed else Status.HEALTHY
    sentences = [tally]
    if metric is None:
        sentences.append("The runs logged no metrics, so there is no best run to name.")
    elif winner is not None:
        label = describe_metric(metric)
        chosen = _value(winner, metric)
        holdout = _value(winner, f"holdout_{metric}")
        sentences.append(
            f"The latest search picked **{run_display_name(winner.get('name'))}** for its {in_sentence(label.label)} of "
            f"**{format_metric(metric, chosen)}** on the validation period."
        )
        if holdout is None:
            sentences.append("It has no holdout result yet.")
        else:
            sentences.append(
                f"Tested once on the holdout, data the search never saw, it scored **{format_metric(metric, holdout)}**: "
                "the honest estimate of how it will do in service."
            )
            if chosen and label.higher_is_better is not None:
                shortfall = (chosen - holdout) / abs(chosen) if label.higher_is_better else (holdout - chosen) / abs(chosen)
                if shortfall > HOLDOUT_SHORTFALL:
                    status = Status.WATCH
                    sentences.append("That is clearly worse than during the search, so part of its lead was luck.")
        registered = winner.get(TAG_PREFIX + "registered_as")
        if isinstance(registered, str) and registered:
            sentences.append(f"Its model is registered as **{registered}**.")
        else:
            sentences.append("Its model is not registered yet: review the results below, then register it.")
    elif best is not None:
        label = describe_metric(metric)
        direction = "highest" if label.higher_is_better is not False else "lowest"
        sentences.append(
            f"Best on {in_sentence(label.label)} ({direction} is best): **{best.get('name')}** with **{format_metric(metric, _value(best, metric))}**."
        )
    if failed:
        sentences.append(f"{failed:,} run{'s' if failed != 1 else ''} failed; filter by `status = failed` to read why.")
    return status, " ".join(sentences)


def default_comparison(best_rows: pd.DataFrame, count: int = DEFAULT_COMPARE) -> list[str]:
    """Runs to compare when the link names none: the best finished trials (not the winner's
    refit, which repeats its trial's params)."""
    if best_rows is None or best_rows.empty:
        return []
    role = best_rows.get(TAG_PREFIX + ROLE_TAG)
    rows = best_rows if role is None else best_rows[role.fillna("") != WINNER]
    return rows["run_id"].head(count).tolist()


# --- Runs table --------------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnSpec:
    """How the page shows one column of the runs table: kind is text, status, number, percent, seconds."""

    column: str
    label: str
    kind: str
    help: str = ""


def runs_table(rows: pd.DataFrame, metric: str | None) -> tuple[pd.DataFrame, list[ColumnSpec]]:
    """The runs of one page as shown: status words, ISO times, metrics then params.

    Returns:
        The frame (``run_id`` first, for selection) and a spec per visible column.
    """
    frame = pd.DataFrame({"run_id": rows["run_id"], "name": rows["name"]})
    # A one-item list per cell: the page shows it as a coloured label (see ui.experiment_charts.status_column).
    frame["status"] = rows["status"].map(lambda status: [STATUS_WORDS.get(status, status)])
    frame["started_at"] = rows["started_at"].map(format_time)
    frame["duration_s"] = rows["duration_s"].astype("float64")
    specs = [
        ColumnSpec("name", "Run", "text", "The run's name; trials of a search are numbered, the winner is named after its trial."),
        ColumnSpec("status", "Status", "status", "Finished, failed (see the Error column) or still running."),
        ColumnSpec("started_at", "Started", "text"),
        ColumnSpec("duration_s", "Duration", "seconds", "Wall-clock time of the run, to its end or until now while running."),
    ]
    metrics = [c[len(METRIC_PREFIX) :] for c in rows.columns if c.startswith(METRIC_PREFIX)]
    for key in metric_order(metrics, first=metric):
        label = describe_metric(key)
        values = rows[METRIC_PREFIX + key].astype("float64")
        kind = "percent" if label.unit == "%" else "number"
        # Shares are shown as 0-100 so every row gets the same one decimal ("96.6%").
        frame[METRIC_PREFIX + key] = values * 100 if kind == "percent" else values
        specs.append(ColumnSpec(METRIC_PREFIX + key, label.label, kind, label.help))
    if (TAG_PREFIX + ROLE_TAG) in rows.columns:
        frame["role"] = rows[TAG_PREFIX + ROLE_TAG]
        specs.append(ColumnSpec("role", "Role", "text", "trial: one configuration the search tried; winner: the chosen one, refitted and tested on the holdout."))
    for column in sorted(c for c in rows.columns if c.startswith(PARAM_PREFIX)):
        frame[column] = rows[column]
        specs.append(ColumnSpec(column, column[len(PARAM_PREFIX) :], "text", "A setting of the run (hyperparameter); empty when the run's model has no such setting."))
    if rows["error"].notna().any():
        frame["error"] = rows["error"]
        specs.append(ColumnSpec("error", "Error", "text", "Why the run failed."))
    return frame.reset_index(drop=True), specs


def page_count(total: int, page_size: int) -> int:
    return max(1, math.ceil(total / page_size))


def page_caption(page: int, page_size: int, total: int) -> str:
    """``runs 1-50 of 1,234``."""
    if total == 0:
        return "no runs match"
    first = (page - 1) * page_size + 1
    last = min(page * page_size, total)
    if first > total:
        return f"no runs on page {page}; {total:,} match"
    return f"runs {first:,}-{last:,} of {total:,}"


def format_time(value: Any) -> str:
    """ISO date and time in UTC; empty for a run that has none."""
    return _format_time(value, empty="")


# --- Comparison --------------------------------------------------------------------------


def run_labels(runs: pd.DataFrame) -> dict[str, str]:
    """A column title per run: its name, with the id's start when two runs share a name."""
    counts = runs["name"].value_counts()
    return {
        run_id: name if counts[name] == 1 else f"{name} · {run_id[:6]}"
        for run_id, name in zip(runs["run_id"], runs["name"], strict=True)
    }


def params_table(comparison: Comparison, labels: Mapping[str, str], only_differing: bool = False) -> pd.DataFrame:
    """Params side by side as text, one column per run, and a ``Differs`` marker column."""
    ids = list(labels)
    params = comparison.params
    if only_differing:
        params = params[params["differs"]]
    frame = params[ids].map(lambda value: NOT_SET if value is None or pd.isna(value) else str(value)).rename(columns=labels)
    frame.insert(0, "Differs", params["differs"].map({True: "≠ differs", False: "same"}))
    frame.index.name = "Setting"
    return frame


class MetricsTable(NamedTuple):
    text: pd.DataFrame  # formatted values, the best marked with ★
    best: pd.DataFrame  # True where the cell holds the best value (same shape as the run columns)


def metrics_table(comparison: Comparison, labels: Mapping[str, str], first: str | None = None) -> MetricsTable:
    """Metrics side by side in plain words and units; the best value of each row starred."""
    ids = list(labels)
    metrics = comparison.metrics
    order = metric_order(metrics.index, first=first)
    text_rows, best_rows, index = [], [], []
    for key in order:
        winners = set(metrics.at[key, "best"])
        text_rows.append([("★ " if run_id in winners else "") + format_metric(key, metrics.at[key, run_id]) for run_id in ids])
        best_rows.append([run_id in winners for run_id in ids])
        direction = metrics.at[key, "higher_is_better"]
        better = {True: "higher", False: "lower"}.get(direction, "?")
        index.append(f"{describe_metric(key).label} ({better} is better)" if better != "?" else describe_metric(key).label)
    columns = [labels[run_id] for run_id in ids]
    text = pd.DataFrame(text_rows, index=pd.Index(index, name="Metric"), columns=columns)
    best = pd.DataFrame(best_rows, index=text.index, columns=columns)
    return MetricsTable(text, best)


def comparison_sentence(comparison: Comparison, labels: Mapping[str, str], metric: str | None) -> str:
    """Which of the compared runs is best on the metric, and how many settings differ."""
    differing = int(comparison.params["differs"].sum()) if not comparison.params.empty else 0
    count = len(labels)
    parts = [f"{count} run{'s' if count != 1 else ''} side by side; {differing} of {len(comparison.params)} settings differ (marked ≠)."]
    if metric and metric in comparison.metrics.index:
        best = comparison.metrics.at[metric, "best"]
        if best:
            label = describe_metric(metric)
            value = comparison.metrics.at[metric, best[0]]
            names = ", ".join(labels[run_id] for run_id in best)
            parts.append(f"Best on {in_sentence(label.label)}: **{names}** with {format_metric(metric, value)} (★ marks the best value of each metric).")
    return " ".join(parts)


# --- Charts' data ------------------------------------------------------------------------


def varying_params(points: pd.DataFrame, params: Sequence[str], limit: int = 8) -> list[str]:
    """Params worth an axis: those that take more than one value among the runs, the most often set first."""
    scored = []
    for key in params:
        column = points.get(PARAM_PREFIX + key)
        if column is None:
            continue
        values = column.dropna()
        if values.nunique() > 1:
            # The model family first: it decides which other settings exist at all.
            scored.append((key != "family", -len(values), key))
    return [key for *_, key in sorted(scored)][:limit]


def default_scatter_axes(metric_keys: Sequence[str], metric: str) -> tuple[str, str]:
    """Axes of the metric scatter: the cross-validation score against the validation score of
    the chosen metric when both exist (runs off the diagonal were lucky or unlucky), else the
    chosen metric against the next one."""
    ordered = metric_order(metric_keys, first=metric)
    if f"cv_{metric}" in metric_keys:
        return f"cv_{metric}", metric
    others = [key for key in ordered if key != metric]
    return (others[0] if others else metric), metric


# --- Holdout results ---------------------------------------------------------------------


def holdout_sentence(results: Mapping[str, Any], metric: str | None) -> str:
    """What the holdout was and what the run scored on it, in words."""
    holdout = results.get("holdout") or {}
    metrics = holdout.get("metrics") or {}
    if not metrics:
        return "This run stored no holdout test."
    when = ""
    if holdout.get("start") and holdout.get("end"):
        when = f" from {str(holdout['start'])[:10]} to {str(holdout['end'])[:10]}"
    rows = f"{holdout['rows']:,} rows" if holdout.get("rows") else "the latest rows"
    sentence = f"Tested once on {rows}{when}, the most recent data, which the search never saw."
    key = metric if metric in metrics else next(iter(metrics))
    label = describe_metric(key)
    sentence += f" {label.label}: **{format_metric(key, metrics[key])}**."
    return sentence


def calibration_caption(results: Mapping[str, Any]) -> str:
    task = (results.get("model_inputs") or {}).get("task")
    if task == "regression":
        return (
            "Calibration: the holdout split into bins by the estimate. Points on the dashed line mean the estimates are "
            "right on average at every level; points above it mean the model estimates too low there, below it too high."
        )
    return (
        "Calibration: the holdout split into bins by predicted probability. Points on the dashed line mean a predicted 30% "
        "really happens about 30% of the time, so the scores can drive thresholds and costs directly."
    )


def importance_caption(payload: Mapping[str, Any]) -> str:
    metric = payload.get("metric")
    label = in_sentence(describe_metric(metric).label) if metric else "the score"
    method = str(payload.get("method", ""))
    rows = re.search(r"on (\d+) holdout rows", method)
    where = f" on {int(rows[1]):,} holdout rows" if rows else " on the holdout"
    return (
        f"Permutation importance: how much {label} worsens when one column's values are shuffled{where}. "
        "Longer bars matter more; a bar near zero means the model barely uses that column."
    )


def slices_table(results: Mapping[str, Any], metric: str) -> pd.DataFrame:
    """Per-group holdout values of ``metric`` against the overall value; worse groups flagged.

    A slice column with one value (the whole holdout) says nothing and is left out.

    Returns:
        Columns Group, Rows, value, overall, gap (positive = worse), worse, Verdict; worst first.
    """
    overall = ((results.get("holdout") or {}).get("metrics") or {}).get(metric)
    higher = metric_higher_is_better(metric)
    slices = results.get("slices") or []
    groups_per_column: dict[str, int] = {}
    for item in slices:
        groups_per_column[item["column"]] = groups_per_column.get(item["column"], 0) + 1
    rows = []
    for item in slices:
        value = (item.get("metrics") or {}).get(metric)
        if value is None or overall is None or groups_per_column[item["column"]] < 2:
            continue
        gap = (overall - value) if higher is not False else (value - overall)
        difference = metric_delta(metric, value, overall)
        rows.append(
            {
                "Group": f"{item['column']} = {item['value']}",
                "Rows": int(item.get("rows", 0)),
                "value": float(value),
                "overall": float(overall),
                "gap": float(gap),
                "worse": gap > 0,
                "Verdict": f"⚠ Worse ({difference})" if gap > 0 else "✓ As good or better",
            }
        )
    frame = pd.DataFrame(rows, columns=["Group", "Rows", "value", "overall", "gap", "worse", "Verdict"])
    return frame.sort_values("gap", ascending=False, kind="stable").reset_index(drop=True)


def slices_sentence(slices: pd.DataFrame, metric: str) -> str:
    if slices.empty:
        return "This run stored no per-group results."
    worse = slices[slices["worse"]]
    label = in_sentence(describe_metric(metric).label)
    if worse.empty:
        return f"Every group scores at least as well as overall on {label}."
    weakest = worse.iloc[0]
    return (
        f"{len(worse)} of {len(slices)} groups score worse than overall on {label}. The weakest is **{weakest['Group']}**: "
        f"{format_metric(metric, weakest['value'])} against {format_metric(metric, weakest['overall'])} overall "
        f"({weakest['Rows']:,} rows). Check whether that group needs more training data before relying on the model there."
    )


def confusion_sentence(payload: Mapping[str, Any], target: str | None) -> str:
    """The confusion matrix in words: caught, missed and false alarms."""
    (tn, fp), (fn, tp) = payload["matrix"]
    negative, positive = payload["labels"]
    what = f"{target} = {positive}" if target else f"class {positive}"
    return (
        f"Of {tp + fn:,} rows that really were {what}, the model flagged {tp:,} and missed {fn:,}; "
        f"of {tn + fp:,} that were not, it wrongly flagged {fp:,} (decision threshold {payload.get('threshold', 0.5)})."
    )


# --- Registering -------------------------------------------------------------------------


def may_register(identity: Identity) -> bool:
    """Whether to offer the register button. A courtesy only: ``register_run_model`` checks the role itself."""
    return identity.can("register_model")


def default_model_name(experiment: str) -> str:
    """A registry name from an experiment name: ``Apple grader search`` -> ``apple-grader``."""
    name = re.sub(r"[^a-z0-9_-]+", "-", experiment.lower()).strip("-_")
    name = re.sub(r"[-_](search|experiment|experiments|runs)$", "", name)
    name = name[:64].rstrip("-_") or "model"
    return name if NAME_PATTERN.fullmatch(name) else "model"


# --- Reads with positional arguments, for ui.state.cached --------------------------------


@dataclass(frozen=True)
class ExperimentSummary:
    """What the top of the page needs about one experiment, read in one unit of work.

    Attributes:
        keys: the param, metric and tag names its runs use (see ``run_keys``).
        winners: the winner runs of its searches, latest first (empty without a search).
        metric: the metric runs are judged by (see :func:`default_metric`), None without metrics.
    """

    keys: dict[str, list[str]]
    winners: pd.DataFrame
    metric: str | None

    @property
    def winner(self) -> dict[str, Any] | None:
        return self.winners.iloc[0].to_dict() if not self.winners.empty else None

    @property
    def default_sort(self) -> str:
        """The table's first sort: the judging metric, else the start time."""
        return METRIC_PREFIX + self.metric if self.metric else "started_at"


def experiment_summary(warehouse: Warehouse, experiment: str) -> ExperimentSummary:
    """Keys, winners and judging metric of ``experiment``, in one unit of work (each open of
    the warehouse costs 20-40 ms, and a cold page pays them one after another)."""
    with warehouse.read():
        keys = run_keys(warehouse, experiment)
        winners = runs_page(warehouse, experiment, filters=[RunFilter("tag", ROLE_TAG, "=", WINNER)], page_size=20).rows
    selection = winners.iloc[0].get(TAG_PREFIX + SELECTION_TAG) if not winners.empty else None
    return ExperimentSummary(keys, winners, default_metric(keys["metrics"], selection if isinstance(selection, str) else None))


def best_runs(first_page: pd.DataFrame, metric: str | None, count: int = DEFAULT_COMPARE + 2) -> pd.DataFrame:
    """The best finished runs on ``metric``, from the first page of the table sorted by it.

    The page asks for that page anyway (it is the table's default view), so taking the best
    runs from it costs no extra read of the warehouse.
    """
    column = METRIC_PREFIX + (metric or "")
    if not metric or first_page.empty or column not in first_page.columns:
        return first_page.iloc[0:0]
    finished = first_page[(first_page["status"] == FINISHED) & first_page[column].notna()]
    return finished.head(count).reset_index(drop=True)


def run_detail(warehouse: Warehouse, run_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A run (``get_run``) and its stored results (``run_results``), in one unit of work."""
    with warehouse.read():
        detail = get_run(warehouse, run_id)
        return detail, (run_results(warehouse, run_id) if detail["results"] else {})


def fetch_runs_page(
    warehouse: Warehouse,
    experiment: str,
    sort_by: str,
    descending: bool,
    filters: tuple[RunFilter, ...],
    page: int,
    page_size: int,
) -> RunsPage:
    return runs_page(warehouse, experiment, sort_by=sort_by, descending=descending, filters=filters, page=page, page_size=page_size)


def fetch_points(warehouse: Warehouse, experiment: str, params: tuple[str, ...], metrics: tuple[str, ...], limit: int) -> pd.DataFrame:
    return run_points(warehouse, experiment, params=params, metrics=metrics, limit=limit)


def compare_existing(warehouse: Warehouse, run_ids: tuple[str, ...]) -> tuple[Comparison | None, tuple[str, ...]]:
    """Compare the runs that exist; also return the ids that name no run.

    ``compare_runs`` refuses a list with a missing id; only then are the ids checked one
    by one, inside one unit of work (each open of the file costs about 40 ms).
    """
    if not run_ids:
        return None, ()
    try:
        return compare_runs(warehouse, run_ids), ()
    except NotFoundError:
        pass
    missing = []
    with warehouse.read():
        for run_id in run_ids:
            try:
                get_run(warehouse, run_id)
            except NotFoundError:
                missing.append(run_id)
        existing = tuple(run_id for run_id in run_ids if run_id not in missing)
        return (compare_runs(warehouse, existing) if existing else None), tuple(missing)
