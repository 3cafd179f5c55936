"""What the Data quality page shows, in plain language: verdict, scorecard, deliveries, problems.

The judgement and the wording live here (which dataset a link means, how a share reads,
which delivery counts as a problem, what a metric means) so the page only renders them and
so they are unit-tested. Nothing here imports Streamlit; :mod:`mlops_app.quality` computes,
this module words.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, get_args

import pandas as pd

from mlops_app import quality
from mlops_app.formatting import format_time
from mlops_app.auth import ACTIONS, ROLE_DESCRIPTIONS, Identity
from mlops_app.datasets import (
    BATCH_COLUMN,
    FAILED_CHECKS_COLUMN,
    TABLE_PREFIX,
    WARNINGS_COLUMN,
    Dataset,
    get_dataset,
    table_columns,
    type_family,
)
from mlops_app.overview import RECENT_DELIVERIES
from mlops_app.status import Status, worst
from mlops_app.warehouse import Warehouse

__all__ = [
    "CHECK_STATUS_LABELS",
    "DELIVERY_STATUS_LABELS",
    "FAILING_ROWS_LIMIT",
    "PROBLEM_LOOKBACK",
    "DeliveryProblem",
    "MetricTile",
    "QualityPageData",
    "affected_rows_text",
    "batch_label",
    "check_label",
    "choose_dataset",
    "csv_for_download",
    "dataset_verdict",
    "deliveries_table",
    "drilldown_choices",
    "escape_markdown",
    "failing_rows_sample",
    "failing_rows_table",
    "format_time",
    "history_points",
    "ingest_outcome_level",
    "load_page_data",
    "permission_note",
    "profile_metrics",
    "recent_problems",
    "recheck_outcome_level",
    "scorecard_table",
    "share_text",
    "upload_file_name",
]

# Deliveries looked back over for the problems list, the scorecard's "lately" column and
# the drill-down; the verdict itself looks at the overview's RECENT_DELIVERIES, so the two
# pages agree on Act.
PROBLEM_LOOKBACK = 30
FAILING_ROWS_LIMIT = 1_000
# Symbols that every font in the stack has (no emoji font on a bare server), plus the word.
CHECK_STATUS_LABELS = {"pass": "✓ Pass", "warn": "⚠ Warn", "fail": "✗ Fail", "skipped": "– Not checked"}
DELIVERY_STATUS_LABELS = {
    "accepted": "✓ Accepted",
    "partly_quarantined": "✗ Partly quarantined",
    "rejected": "✗ Rejected",
    "duplicate": "↺ Duplicate, not loaded",
}
WARNED_DELIVERY_LABEL = "⚠ Accepted with warnings"
_STATUS_RANK = {"fail": 0, "warn": 1, "skipped": 2, "pass": 3}
ROW_LEVEL_KINDS = frozenset(
    member.model_fields["kind"].default
    for member in get_args(get_args(quality.Check)[0])
    if member.level == "row"
)


@dataclass(frozen=True)
class QualityPageData:
    """Everything the page shows about a dataset, read in one warehouse unit of work and worded.

    The raw reads (scorecard, batches, history) and what the page renders from them
    (tables, problems, chart points, drill-down choices) travel together, so a cached
    copy spares the page the wording work too (measured: a third of a warm render).
    """

    dataset: Dataset
    scorecard: pd.DataFrame
    batches: pd.DataFrame
    history: pd.DataFrame
    last_event_at: datetime | None
    column_types: dict[str, str]  # stored columns and their DuckDB types (system columns left out)
    descriptions: dict[str, str]  # check name -> description
    kinds: dict[str, str]  # check name -> kind
    batch_labels: dict[str, str]  # batch id -> "time · file (status)"
    scorecard_rows: pd.DataFrame
    deliveries: pd.DataFrame
    problems: list[DeliveryProblem]
    points: pd.DataFrame
    drilldown: dict[str, list[str]]
    loaded_batches: list[str]  # deliveries with stored rows, newest first


@dataclass(frozen=True)
class DeliveryProblem:
    """One delivery worth a line under the verdict."""

    batch_id: str
    received_at: datetime
    source: str
    status: Status
    label: str  # a short word for the badge: Rejected, Quarantined, Warning, Duplicate caught
    sentence: str


@dataclass(frozen=True)
class MetricTile:
    label: str
    value: str
    help: str


def load_page_data(warehouse: Warehouse, dataset: str, checks: quality.DatasetChecks | None = None) -> QualityPageData:
    """The dataset's catalogue entry, scorecard, deliveries and check history, in one unit of work.

    Positional arguments only, so ``ui.state.cached`` can key it.

    Raises:
        NotFoundError: no such dataset.
    """
    # Nested units of work reuse the outer connection: one open (about 40 ms) instead of four.
    with warehouse.read() as con:
        entry = get_dataset(warehouse, dataset)
        card = quality.scorecard(warehouse, dataset, checks)
        batches = quality.list_batches(warehouse, dataset, limit=200)
        history = quality.check_history(warehouse, dataset, limit=200)
        newest = warehouse.query_one("SELECT last_event_at FROM datasets WHERE name = ?", [dataset])
        stored = table_columns(con, TABLE_PREFIX + entry.name)
    last_event_at = newest[0] if newest and newest[0] is not None and not pd.isna(newest[0]) else None
    column_types = {name: kind for name, kind in stored.items() if not name.startswith("_")}
    descriptions = {row.check_name: (row.description if isinstance(row.description, str) else "") for row in card.itertuples(index=False)}
    kinds = dict(zip(card.check_name, card.check_kind, strict=True))
    return QualityPageData(
        dataset=entry,
        scorecard=card,
        batches=batches,
        history=history,
        last_event_at=last_event_at,
        column_types=column_types,
        descriptions=descriptions,
        kinds=kinds,
        batch_labels={batch.batch_id: batch_label(batch) for batch in batches.itertuples(index=False)},
        scorecard_rows=scorecard_table(card, batches, history),
        deliveries=deliveries_table(batches),
        problems=recent_problems(batches, history, descriptions),
        points=history_points(history, card, batches),
        drilldown=drilldown_choices(history, kinds),
        loaded_batches=[b.batch_id for b in batches.itertuples(index=False) if b.status in ("accepted", "partly_quarantined")],
    )


def failing_rows_sample(
    warehouse: Warehouse, dataset: str, batch_id: str, check_name: str, checks: quality.DatasetChecks | None = None
) -> pd.DataFrame:
    """Up to FAILING_ROWS_LIMIT rows of a batch that failed a check (positional, for ``ui.state.cached``)."""
    return quality.failing_rows(warehouse, dataset, batch_id, check_name, limit=FAILING_ROWS_LIMIT, checks=checks)


# --- Words -------------------------------------------------------------------------------------




def share_text(share: float) -> str:
    """A share as a person says it: 34%, 0.4%, <0.1%, 0%, 100%."""
    if share is None or (isinstance(share, float) and math.isnan(share)) or share <= 0:
        return "0%"
    percent = share * 100
    if percent < 0.1:
        return "<0.1%"
    if percent < 1:
        return f"{percent:.1f}%"
    if percent > 99 and share < 1:
        return ">99%"
    return f"{percent:.0f}%"


def _rows(count: int) -> str:
    return f"{count:,} row{'s' if count != 1 else ''}"


def affected_rows_text(failed: int, total: int, status: str, description: str | None = None, *, scope: str = "the batch") -> str:
    """"515 rows (34% of the batch) failed: Firmness must be between 15 and 120 N".

    ``status`` is the check's result (pass, warn, fail, skipped); a passing check reads
    "All 1,170 rows pass". ``scope`` names what the rows belong to.
    """
    failed, total = int(failed or 0), int(total or 0)
    rule = f": {description}" if description else ""
    if status == "skipped":
        return "Not checked" + rule
    if failed == 0:
        return f"All {total:,} rows pass" + rule if total else "No rows to check" + rule
    share = share_text(failed / total if total else 0.0)
    verb = "have a warning" if status == "warn" else "failed"
    if failed == 1:
        verb = "has a warning" if status == "warn" else "failed"
    return f"{_rows(failed)} ({share} of {scope}) {verb}{rule}"


def _result_text(row: Any, scope: str) -> str:
    if row.check_kind in ROW_LEVEL_KINDS:
        return affected_rows_text(row.failed_rows, row.total_rows, row.status, scope=scope)
    return str(row.message) if isinstance(row.message, str) and row.message else CHECK_STATUS_LABELS.get(row.status, row.status)


def batch_label(batch: Any) -> str:
    """"2026-10-13 19:00 UTC · grading-line-2026-10-13.csv (partly quarantined)" for pickers."""
    status = str(batch.status).replace("_", " ")
    return f"{format_time(batch.received_at)} · {batch.source_name} ({status})"


def _sources(batches: pd.DataFrame) -> dict[str, tuple[Any, str]]:
    return {row.batch_id: (row.received_at, row.source_name) for row in batches.itertuples(index=False)}


def _ran_on(batch_id: str, checked_at: Any, sources: Mapping[str, tuple[Any, str]]) -> str:
    if batch_id in sources:
        received, source = sources[batch_id]
        return f"{format_time(received)} · {source}"
    if str(batch_id).startswith("recheck-"):
        return f"{format_time(checked_at)} · re-check of the stored rows"
    return f"{format_time(checked_at)} · {batch_id}"


# --- Scorecard ---------------------------------------------------------------------------------


def _recent_runs(history: pd.DataFrame, lookback: int) -> pd.DataFrame:
    """History rows of the newest ``lookback`` deliveries (re-checks of stored rows left out)."""
    if history.empty:
        return history
    deliveries = history[~history.batch_id.astype(str).str.startswith("recheck-")]
    newest = deliveries.drop_duplicates("batch_id", keep="last").sort_values("checked_at").batch_id.tail(lookback)
    return deliveries[deliveries.batch_id.isin(set(newest))]


def scorecard_table(card: pd.DataFrame, batches: pd.DataFrame, history: pd.DataFrame, *, lookback: int = PROBLEM_LOOKBACK) -> pd.DataFrame:
    """One row per check, worst first: Status, Check, Latest result, Problems lately, Ran on, Check name.

    ``Latest result`` reads "515 rows (34% of the batch) failed" for row checks and the
    check's own sentence for batch checks; ``Problems lately`` counts the deliveries among
    the last ``lookback`` where the check failed or warned, naming the newest. Order: the
    latest status (fail, warn, not checked, pass), then checks that failed lately, then
    those that warned lately, then the rest.
    """
    columns = ["Status", "Check", "Latest result", "Problems lately", "Ran on", "Check name"]
    if card.empty:
        return pd.DataFrame(columns=columns)
    sources = _sources(batches)
    recent = _recent_runs(history, lookback)
    delivered = recent.batch_id.nunique() if not recent.empty else 0
    problems = recent[recent.status.isin(["fail", "warn"])] if not recent.empty else recent
    rows, order = [], []
    for position, row in enumerate(card.itertuples(index=False)):
        scope = "the stored rows" if str(row.batch_id).startswith("recheck-") else "the batch"
        mine = problems[problems.check_name == row.check_name] if not problems.empty else problems
        if mine.empty:
            lately, recent_rank = (f"None in the last {delivered} deliveries" if delivered else "No deliveries yet"), 2
        else:
            newest = mine.sort_values("checked_at").iloc[-1]
            when = format_time(sources.get(newest.batch_id, (newest.checked_at, ""))[0])[:10]
            times = "once" if len(mine) == 1 else f"{len(mine)} times"
            failed = bool((mine.status == "fail").any())
            lately, recent_rank = f"{'Failed' if failed else 'Warned'} {times} in the last {delivered} deliveries (latest {when})", (0 if failed else 1)
        order.append((_STATUS_RANK.get(row.status, 3), recent_rank, position))
        rows.append({
            "Status": CHECK_STATUS_LABELS.get(row.status, row.status),
            "Check": row.description or row.check_name,
            "Latest result": _result_text(row, scope),
            "Problems lately": lately,
            "Ran on": _ran_on(row.batch_id, row.checked_at, sources),
            "Check name": row.check_name,
        })
    rows = [row for _, row in sorted(zip(order, rows, strict=True), key=lambda pair: pair[0])]
    return pd.DataFrame(rows, columns=columns)


# --- Deliveries --------------------------------------------------------------------------------


def deliveries_table(batches: pd.DataFrame) -> pd.DataFrame:
    """The deliveries, newest first, with formatted times and status words (counts stay numbers)."""
    columns = ["Received", "Source", "Status", "Rows", "Accepted", "Quarantined", "Warned", "Reason", "Batch id"]
    if batches.empty:
        return pd.DataFrame(columns=columns)
    frame = pd.DataFrame({
        "Received": [format_time(value) for value in batches.received_at],
        "Source": batches.source_name.astype(object).where(batches.source_name.notna(), "unknown"),
        "Status": [
            WARNED_DELIVERY_LABEL if status == "accepted" and _warned(row) else DELIVERY_STATUS_LABELS.get(status, str(status))
            for status, row in zip(batches.status, batches.itertuples(index=False), strict=True)
        ],
        "Rows": batches.row_count.astype("Int64"),
        "Accepted": batches.accepted_rows.astype("Int64"),
        "Quarantined": batches.quarantined_rows.astype("Int64"),
        "Warned": batches.warned_rows.astype("Int64"),
        "Reason": [_sentence(reason) for reason in batches.reason],
        "Batch id": batches.batch_id.astype(object),
    })
    return frame.reset_index(drop=True)


def _lower_first(text: Any) -> str:
    if not isinstance(text, str) or not text:
        return ""
    return text[0].lower() + text[1:]


def _sentence(text: Any) -> str:
    if not isinstance(text, str) or not text:
        return ""
    return text[0].upper() + text[1:]


def _warned(batch: Any) -> bool:
    warned_rows = getattr(batch, "warned_rows", 0)
    warned_checks = getattr(batch, "warned_checks", 0)
    return bool((not pd.isna(warned_rows) and warned_rows) or (not pd.isna(warned_checks) and warned_checks))


def recent_problems(
    batches: pd.DataFrame,
    history: pd.DataFrame,
    descriptions: Mapping[str, str],
    *,
    lookback: int = PROBLEM_LOOKBACK,
) -> list[DeliveryProblem]:
    """Deliveries among the newest ``lookback`` that were rejected, quarantined rows, warned, or repeated a file.

    Newest first. Sentences name the file, the rows and the rule, e.g. "515 rows (34% of the
    batch) failed: Firmness must be between 15 and 120 N. They were set aside (quarantined)".
    """
    if batches.empty:
        return []
    problems = []
    by_batch = {batch_id: group for batch_id, group in history.groupby("batch_id")} if not history.empty else {}
    for batch in batches.head(lookback).itertuples(index=False):
        results = by_batch.get(batch.batch_id)
        flagged = results[results.status.isin(["fail", "warn"])] if results is not None else None

        def rule_sentences(status: str) -> list[str]:
            if flagged is None:
                return []
            sentences = []
            for result in flagged[flagged.status == status].itertuples(index=False):
                description = descriptions.get(result.check_name, result.check_name)
                if result.failed_rows:
                    sentences.append(affected_rows_text(result.failed_rows, result.total_rows, status, description))
                else:
                    sentences.append(f"{description.rstrip('.')}: not met")
            return sentences

        if batch.status == "rejected":
            reason = _sentence(batch.reason) or "a batch-level check failed"
            sentence = f"Rejected, nothing was loaded: {reason.rstrip('.')}."
            problems.append(DeliveryProblem(batch.batch_id, batch.received_at, batch.source_name, Status.ACT, "Rejected", sentence))
        elif batch.status == "partly_quarantined":
            failed = rule_sentences("fail") or [f"{_rows(int(batch.quarantined_rows or 0))} failed an error check"]
            sentence = "; ".join(failed) + ". These rows were set aside (quarantined); the rest was loaded."
            warned = rule_sentences("warn")
            if warned:
                sentence += " Also: " + "; ".join(warned) + "."
            problems.append(DeliveryProblem(batch.batch_id, batch.received_at, batch.source_name, Status.ACT, "Quarantined", sentence))
        elif batch.status == "duplicate":
            reason = str(batch.reason).rstrip(".") if isinstance(batch.reason, str) and batch.reason else "the same content was loaded before"
            sentence = f"Recognised as a re-send: {reason}."
            problems.append(DeliveryProblem(batch.batch_id, batch.received_at, batch.source_name, Status.HEALTHY, "Duplicate caught", sentence))
        else:
            warned = rule_sentences("warn")
            if warned:
                sentence = "; ".join(warned) + ". Loaded, with the warning recorded."
                problems.append(DeliveryProblem(batch.batch_id, batch.received_at, batch.source_name, Status.WATCH, "Warning", sentence))
    return problems


def _age_text(hours: float) -> str:
    if hours < 48:
        return f"{hours:.0f} hours"
    return f"{hours / 24:.0f} days"


def _checks_sentence(card: pd.DataFrame, status: str) -> str:
    """"Latest checks: 515 rows (34% of the batch) failed: <rule>. 2 more checks fail." for the worst status."""
    flagged = card[card.status == status]
    first = flagged.iloc[0]
    scope = "the stored rows" if str(getattr(first, "batch_id", "")).startswith("recheck-") else "the batch"
    if getattr(first, "check_kind", None) in ROW_LEVEL_KINDS and getattr(first, "failed_rows", 0):
        found = affected_rows_text(first.failed_rows, first.total_rows, status, str(first.description or first.check_name), scope=scope)
    else:
        found = str(first.message).rstrip(".")
    verb = "fail" if status == "fail" else "warn"
    more = len(flagged) - 1
    extra = f" {more} more check{'s' if more > 1 else ''} {verb}{'' if more > 1 else 's'}." if more else ""
    return f"Latest checks: {found.rstrip('.')}.{extra}"


def dataset_verdict(
    card: pd.DataFrame,
    batches: pd.DataFrame,
    *,
    freshness_hours: float | None = None,
    last_event_at: datetime | None = None,
    now: datetime | None = None,
) -> tuple[Status, str]:
    """The status and sentence that open the page: the latest checks, the last deliveries, freshness.

    Act when one of the last RECENT_DELIVERIES deliveries (duplicates aside) was rejected
    or partly quarantined (the overview's rule, so both pages agree) or when an error check
    fails on the latest data; Watch when a warn check fires or the newest data is older
    than the dataset's freshness expectation; Healthy otherwise; Not checked when nothing
    was delivered yet. The sentence names the worst finding first.
    """
    checks_status, checks_sentence = quality.quality_verdict(card)
    if card.empty and batches.empty:
        return checks_status, checks_sentence
    if checks_status in (Status.ACT, Status.WATCH):
        checks_sentence = _checks_sentence(card, "fail" if checks_status is Status.ACT else "warn")
    findings: list[tuple[Status, str]] = []
    delivered = batches[batches.status != "duplicate"].head(RECENT_DELIVERIES) if not batches.empty else batches
    bad = delivered[delivered.status.isin(["rejected", "partly_quarantined"])] if not delivered.empty else delivered
    if not bad.empty:
        parts = []
        for batch in bad.itertuples(index=False):
            if batch.status == "rejected":
                parts.append(f"{batch.source_name} was rejected because {_lower_first(batch.reason).rstrip('.') or 'a batch check failed'}")
            else:
                parts.append(f"{batch.source_name} had {_rows(int(batch.quarantined_rows or 0))} quarantined")
        problem = "a problem" if len(bad) == 1 else "problems"
        findings.append((Status.ACT, f"{len(bad)} of the last {len(delivered)} deliveries had {problem}: " + "; ".join(parts) + "."))
    # A failing check on a delivery the sentence above already names would say the same twice.
    failing_batches = set(card[card.status == "fail"].batch_id) if "batch_id" in card else set()
    if not (checks_status is Status.ACT and not bad.empty and failing_batches <= set(bad.batch_id)):
        findings.append((checks_status, checks_sentence))
    if freshness_hours and last_event_at is not None:
        now = now or datetime.now(UTC)
        age_hours = (now - pd.Timestamp(last_event_at).to_pydatetime()).total_seconds() / 3600
        if age_hours > freshness_hours:
            findings.append((
                Status.WATCH,
                f"No new data for {_age_text(age_hours)}; new data is expected every {_age_text(freshness_hours)}.",
            ))
    status = worst([checks_status, *(finding[0] for finding in findings)])
    if status is Status.HEALTHY:
        accepted = f" The last {len(delivered)} deliveries were all loaded." if len(delivered) else ""
        return status, checks_sentence + accepted
    ordered = sorted((f for f in findings if f[0] is not Status.HEALTHY), key=lambda f: f[0].rank, reverse=True)
    sentences = [sentence for _, sentence in ordered]
    if checks_status is Status.HEALTHY:
        sentences.append(checks_sentence)
    return status, " ".join(sentences)


def check_label(description: str, limit: int = 48) -> str:
    """A check's description cut to fit a chart axis."""
    text = description.strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def history_points(history: pd.DataFrame, card: pd.DataFrame, batches: pd.DataFrame) -> pd.DataFrame:
    """One point per check and run for the trend chart, in the scorecard's order of checks.

    Columns: when (the delivery's time), check (a short label), status (pass, warn, fail,
    skipped), hover (file, status word and what was found).
    """
    columns = ["when", "check", "status", "hover"]
    if history.empty or card.empty:
        return pd.DataFrame(columns=columns)
    labels = {row.check_name: check_label(row.description or row.check_name) for row in card.itertuples(index=False)}
    kinds = dict(zip(card.check_name, card.check_kind, strict=True))
    sources = _sources(batches)
    known = history[history.check_name.isin(labels)]
    rows = []
    for run in known.itertuples(index=False):
        received, source = sources.get(run.batch_id, (run.checked_at, "re-check of the stored rows"))
        if kinds.get(run.check_name) in ROW_LEVEL_KINDS:
            found = affected_rows_text(run.failed_rows, run.total_rows, run.status)
        else:
            found = {"pass": "Passed", "warn": "Warned", "fail": "Failed", "skipped": "Not checked"}.get(run.status, run.status)
        rows.append({
            "when": run.checked_at,
            "check": labels[run.check_name],
            "status": run.status,
            "hover": f"{format_time(received)} · {source}<br>{CHECK_STATUS_LABELS.get(run.status, run.status)}: {found}",
        })
    return pd.DataFrame(rows, columns=columns)


# --- Drill-down and profile ----------------------------------------------------------------------


def drilldown_choices(history: pd.DataFrame, kinds: Mapping[str, str], *, lookback: int = PROBLEM_LOOKBACK) -> dict[str, list[str]]:
    """Batch id -> row-level checks that flagged rows in it: failing deliveries first, newest first, worst check first.

    ``kinds`` maps check names to their kind (the scorecard's check_kind): only row-level
    checks have rows to show.
    """
    if history.empty:
        return {}
    recent = _recent_runs(history, lookback)
    row_level = {name for name, kind in kinds.items() if kind in ROW_LEVEL_KINDS}
    # A rejected file loaded nothing, so it has no rows to show (its reason is in the problems list).
    flagged = recent[recent.check_name.isin(row_level) & (recent.failed_rows > 0) & (recent.batch_status != "rejected")]
    if flagged.empty:
        return {}
    flagged = flagged.assign(_order=flagged.status.map({"fail": 0, "warn": 1}).fillna(2))
    # Deliveries with quarantined rows first (data was lost there), then warned ones; newest first within each.
    severity = flagged.groupby("batch_id")._order.transform("min")
    ordered = flagged.assign(_severity=severity).sort_values(["_severity", "checked_at"], ascending=[True, False])
    choices: dict[str, list[str]] = {}
    for batch_id in ordered.batch_id.drop_duplicates():
        mine = flagged[flagged.batch_id == batch_id].sort_values(["_order", "failed_rows"], ascending=[True, False])
        choices[batch_id] = list(mine.check_name)
    return choices


def failing_rows_table(rows: pd.DataFrame, focus: Sequence[str] = ()) -> pd.DataFrame:
    """Failing rows for display: outcome and the checked columns first, check lists as text, no batch id."""
    if rows.empty:
        return rows
    frame = rows.drop(columns=[column for column in (BATCH_COLUMN,) if column in rows.columns])
    for column in (FAILED_CHECKS_COLUMN, WARNINGS_COLUMN):
        if column in frame.columns:
            frame[column] = [_names(value) for value in frame[column]]
    outcome = {"quarantined": "Quarantined (not loaded)", "flagged": "Loaded with a warning", "stored": "Stored"}
    if "_outcome" in frame.columns:
        frame["_outcome"] = frame["_outcome"].map(lambda value: outcome.get(value, value))
    first = [column for column in ("_outcome", *focus) if column in frame.columns]
    frame = frame[first + [column for column in frame.columns if column not in first]]
    return frame.rename(columns={"_outcome": "Outcome", FAILED_CHECKS_COLUMN: "Failed checks", WARNINGS_COLUMN: "Warnings"})


_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_for_download(frame: pd.DataFrame) -> str:
    """CSV text of ``frame`` that a spreadsheet opens as data: text cells that would start a
    formula (``=``, ``+``, ``-``, ``@``) get a leading apostrophe (OWASP's CSV-injection rule).

    Numbers are left alone; only text cells, which came from a delivered file, are guarded.
    """
    safe = frame.copy()
    for column in safe.columns:
        if pd.api.types.is_string_dtype(safe[column]) or safe[column].dtype == object:
            safe[column] = [
                "'" + value if isinstance(value, str) and value.startswith(_FORMULA_STARTS) else value for value in safe[column]
            ]
    return safe.to_csv(index=False)


def _names(value: Any) -> str:
    """A list of check names (a DuckDB list arrives as a numpy array, or NA) as text."""
    if isinstance(value, str):
        return value
    if value is None or not hasattr(value, "__iter__"):  # None, NA, NaN
        return ""
    return ", ".join(str(name) for name in value)


def _number(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.4g}"
    if isinstance(value, datetime):
        return format_time(value)
    return str(value)


def profile_metrics(profile: quality.ColumnProfile) -> list[MetricTile]:
    """Metric tiles for a column profile, each with a help text saying what it means."""
    tiles = [
        MetricTile("Rows", f"{profile.rows:,}", "Rows looked at: the whole stored dataset, or the chosen delivery (loaded and quarantined rows)."),
        MetricTile(
            "Missing",
            f"{profile.nulls:,} ({share_text(profile.null_share)})",
            "Rows with no value in this column. A sudden rise usually means a sensor or an export step failed.",
        ),
        MetricTile(
            "Distinct values",
            f"{profile.distinct:,}",
            "How many different values appear (estimated for large tables). Very few for a measurement suggests a stuck sensor.",
        ),
    ]
    family = type_family(profile.column_type)
    if family in ("integer", "number"):
        tiles.append(MetricTile("Lowest", _number(profile.minimum), "The smallest value present. A 0 or a negative where none is possible points at a faulty reading."))
        tiles.append(MetricTile("Highest", _number(profile.maximum), "The largest value present. Compare it with the allowed range of the checks."))
    elif family in ("date", "timestamp", "time"):
        tiles.append(MetricTile("Earliest", _number(profile.minimum), "The oldest time in the column."))
        tiles.append(MetricTile("Latest", _number(profile.maximum), "The newest time in the column: how fresh the data is."))
    if profile.quantiles:
        median = profile.quantiles.get(0.5)
        low, high = profile.quantiles.get(0.05), profile.quantiles.get(0.95)
        tiles.append(MetricTile("Median", _number(median), "Half of the values are below this, half above; unlike the mean, a few extreme values do not move it."))
        tiles.append(MetricTile(
            "Middle 90%",
            f"{_number(low)} to {_number(high)}",
            "90% of the values lie in this range (5th to 95th percentile): what a normal value looks like.",
        ))
    return tiles


# --- Actions ----------------------------------------------------------------------------------------


def ingest_outcome_level(status: str, warned_rows: int = 0) -> str:
    """How loudly to show an ingestion result: success, warning, error or info."""
    if status == "rejected":
        return "error"
    if status == "partly_quarantined":
        return "warning"
    if status == "duplicate":
        return "info"
    return "warning" if warned_rows else "success"


def permission_note(identity: Identity, action: str, what: str) -> str | None:
    """None when ``identity`` may do ``action``; otherwise who may, in one sentence.

    The library checks the role again when the action runs; this only explains the
    disabled control.
    """
    if identity.can(action):
        return None
    needed = ACTIONS[action]
    return (
        f"Only {needed}s and above may {what} ({needed}: {ROLE_DESCRIPTIONS[needed]}). "
        f"You are signed in as {identity.email} with the {identity.role} role; ask an admin to add you to the {needed}s setting."
    )


def recheck_outcome_level(statuses: Sequence[str]) -> str:
    """How loudly to show a re-check: error when an error check fails, warning for warn checks, else success."""
    if "fail" in statuses:
        return "error"
    return "warning" if "warn" in statuses else "success"


def upload_file_name(name: str) -> str:
    """The name an uploaded file is saved under: a fixed stem with the format's suffix.

    The browser's name is recorded as the source but never becomes a path, so it cannot
    climb out of the upload folder or pick a misleading suffix.
    """
    lowered = str(name).strip().lower()
    for suffix in (".parquet", ".pq", ".parq", ".tsv", ".csv.gz", ".csv"):
        if lowered.endswith(suffix):
            return "delivery" + (".parquet" if suffix in (".pq", ".parq") else suffix)
    return "delivery.csv"


_MARKDOWN_SPECIAL = set("\\`*_{}[]()<>#+-.!|:~$=")


def escape_markdown(text: str) -> str:
    """Text that came from outside (file names, reasons) made literal inside st.markdown."""
    return "".join("\\" + char if char in _MARKDOWN_SPECIAL else char for char in str(text))


def choose_dataset(requested: str | None, known: Sequence[str]) -> tuple[str | None, str | None]:
    """The dataset a link asks for, or the first one; with a warning when the link names an unknown one.

    Returns (dataset or None when there are none, warning text or None).
    """
    if not known:
        return None, None
    if requested is None or requested == "":
        return known[0], None
    if requested in known:
        return requested, None
    shown = requested if len(requested) <= 80 else requested[:77] + "..."
    return known[0], f"There is no dataset named {shown!r}. Known datasets: {', '.join(known)}. Showing {known[0]}."
