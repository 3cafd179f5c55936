"""What the Overview page shows: the model portfolio, the datasets and recent activity.

All the judgement lives here (which metric is key, whether it meets its target, how fresh a
dataset is) so the page only renders, and so it is unit-tested.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pandas as pd

from mlops_app.datasets import list_datasets
from mlops_app.errors import NotFoundError
from mlops_app.metric_catalog import describe_target, format_value, meets_target, metric_info
from mlops_app.registry import ModelVersion, Registry
from mlops_app.status import Status
from mlops_app.warehouse import Warehouse


@dataclass(frozen=True)
class ModelSummary:
    """One line of the portfolio, in plain language."""

    name: str
    description: str
    owner: str
    versions: int
    champion: int | None
    challenger: int | None
    key_metric_label: str
    key_metric_value: str
    key_metric_help: str
    status: Status
    verdict: str
    monitored: bool = False  # live monitoring has judged it: status, verdict and key metric are the live ones


@dataclass(frozen=True)
class DatasetSummary:
    name: str
    description: str
    rows: int
    batches: int
    problem_batches: int
    last_event_at: datetime | None
    status: Status
    verdict: str


@dataclass(frozen=True)
class Activity:
    time: datetime
    what: str
    who: str
    subject: str  # the model or dataset the line is about
    kind: str  # "model" or "dataset"


def _open_alerts(warehouse: Warehouse) -> dict[str, list[str]]:
    frame = warehouse.query("SELECT model, severity FROM alerts WHERE status = 'open'")
    result: dict[str, list[str]] = {}
    for model, severity in frame.itertuples(index=False):
        result.setdefault(model, []).append(severity)
    return result


def _release_verdict(version: ModelVersion) -> tuple[Status, str, str, str, str]:
    """Status from the champion's holdout test at release, for models not yet monitored live."""
    extra = version.card.get("extra") or {}
    metrics = version.metrics
    key = extra.get("key_metric") or next(iter(metrics), None)
    if key is None or key not in metrics:
        return Status.UNKNOWN, "No holdout metrics were recorded for this version.", "Key metric", "n/a", ""
    units = extra.get("metric_units") or {}
    info = metric_info(key, units.get(key))
    value_text = format_value(metrics[key], info.unit)
    targets: dict = extra.get("targets") or {}
    if not targets:
        return Status.UNKNOWN, f"{info.label}: {value_text} on the holdout test; no target is set.", info.label, value_text, info.help
    missed = []
    for name, target in targets.items():
        if name in metrics and not meets_target(metrics[name], target):
            target_info = metric_info(name, units.get(name))
            missed.append(
                f"{target_info.label.lower()} {format_value(metrics[name], target_info.unit)} "
                f"({describe_target(target, target_info.unit)})"
            )
    target_text = describe_target(targets.get(key, {}), info.unit)
    headline = f"{info.label}: {value_text}" + (f" ({target_text})" if target_text else "")
    if missed:
        return Status.WATCH, f"{headline} on the holdout test, but it missed: {'; '.join(missed)}.", info.label, value_text, info.help
    return (
        Status.HEALTHY,
        f"{headline} on the holdout test at release; every target met. Live monitoring has not run yet.",
        info.label,
        value_text,
        info.help,
    )


def _monitored_models(warehouse: Warehouse) -> set[str]:
    return set(warehouse.query("SELECT DISTINCT model FROM monitor_windows WHERE rows > 0")["model"])


def _live_verdict(warehouse: Warehouse, model: str) -> tuple[Status, str, str, str, str]:
    """Status, sentence and the first judged KPI of a monitored model (see monitoring.model_status)."""
    from mlops_app.monitoring import kpi_tiles, model_status

    status, sentence = model_status(warehouse, model)
    sentence = sentence.removeprefix(f"{status.word}: ")
    judged = [tile for tile in kpi_tiles(warehouse, model) if tile.met is not None] or kpi_tiles(warehouse, model)
    if not judged:
        return status, sentence, "Key metric", "n/a", ""
    tile = judged[0]
    period = f" (as of {tile.window_end:%Y-%m-%d})" if tile.window_end else ""
    return status, sentence, f"{tile.label}{period}", tile.value_text, f"{tile.help} Live: {tile.target_text}."


def model_portfolio(registry: Registry, warehouse: Warehouse) -> list[ModelSummary]:
    """Every registered model with its champion, key metric and status.

    A model monitored live takes its status, sentence and key metric from monitoring (the
    latest window, the KPIs against their targets and the alerts still open). Otherwise the
    status is judged from the champion's holdout test, made worse by any open alert.
    """
    alerts = _open_alerts(warehouse)
    monitored = _monitored_models(warehouse)
    summaries = []
    for model in registry.list_models():
        champion = model.aliases.get("champion")
        open_alerts = alerts.get(model.name, [])
        if champion is None:
            status, verdict, label, value, help_text = (
                Status.UNKNOWN,
                f"No version is champion yet ({model.latest_version or 0} registered). Promote one to put it in service.",
                "Key metric",
                "n/a",
                "",
            )
        else:
            try:
                status, verdict, label, value, help_text = _release_verdict(registry.get_version(model.name, champion))
            except NotFoundError:
                status, verdict, label, value, help_text = (
                    Status.ACT,
                    f"The champion alias points at version {champion}, which is missing from the registry.",
                    "Key metric",
                    "n/a",
                    "",
                )
        if champion is not None and model.name in monitored:
            status, verdict, label, value, help_text = _live_verdict(warehouse, model.name)
        elif open_alerts:
            status = Status.ACT if "act" in open_alerts else Status.WATCH
            verdict = f"{len(open_alerts)} open alert{'s' if len(open_alerts) > 1 else ''} from live monitoring. " + verdict
        summaries.append(
            ModelSummary(
                name=model.name,
                description=model.description,
                owner=model.owner,
                versions=model.latest_version or 0,
                champion=champion,
                challenger=model.aliases.get("challenger"),
                key_metric_label=label,
                key_metric_value=value,
                key_metric_help=help_text,
                status=status,
                verdict=verdict,
                monitored=model.name in monitored,
            )
        )
    return summaries


def _age_text(hours: float) -> str:
    if hours < 48:
        return f"{hours:.0f} hours"
    return f"{hours / 24:.0f} days"


RECENT_DELIVERIES = 7


def _recent_problems(warehouse: Warehouse) -> dict[str, list[str]]:
    """Per dataset, the sources of its last deliveries that were rejected or partly quarantined."""
    frame = warehouse.query(
        """
        SELECT dataset, source_name, status FROM (
            SELECT dataset, source_name, status,
                   row_number() OVER (PARTITION BY dataset ORDER BY received_at DESC) AS position
            FROM batches WHERE status <> 'duplicate')
        WHERE position <= $1 AND status IN ('rejected', 'partly_quarantined')
        """,
        [RECENT_DELIVERIES],
    )
    problems: dict[str, list[str]] = {}
    for dataset, source, status in frame.itertuples(index=False):
        problems.setdefault(dataset, []).append(f"{source} ({status.replace('_', ' ')})")
    return problems


def dataset_summaries(warehouse: Warehouse, *, now: datetime | None = None) -> list[DatasetSummary]:
    """Every dataset with its size and a freshness / delivery verdict.

    Act when one of the last deliveries was rejected or partly quarantined (older problems
    stay visible on the Data quality page, not here); Watch when the newest data is older
    than the dataset's freshness expectation; Healthy otherwise.
    """
    now = now or datetime.now(UTC)
    recent_problems = _recent_problems(warehouse)
    summaries = []
    for row in list_datasets(warehouse).itertuples(index=False):
        rows = int(row.row_count or 0)
        last = row.last_event_at if not pd.isna(row.last_event_at) else None
        problems = recent_problems.get(row.name, [])
        problem = int(row.problem_batches or 0)
        if rows == 0:
            status, verdict = Status.UNKNOWN, "No rows delivered yet."
        elif problems:
            status = Status.ACT
            verdict = (
                f"{len(problems)} of the last {RECENT_DELIVERIES} deliveries had problems: {', '.join(problems)}. "
                "Open the data quality page for the failing rows."
            )
        elif last is not None and not pd.isna(row.freshness_hours) and row.freshness_hours:
            age_hours = (now - last.to_pydatetime()).total_seconds() / 3600
            if age_hours > row.freshness_hours:
                status = Status.WATCH
                verdict = (
                    f"Newest data is {_age_text(age_hours)} old; new data is expected every "
                    f"{_age_text(row.freshness_hours)}."
                )
            else:
                status, verdict = Status.HEALTHY, f"Up to date: newest data is {_age_text(age_hours)} old."
        else:
            status, verdict = Status.HEALTHY, f"All {row.batches} deliveries accepted."
        summaries.append(
            DatasetSummary(row.name, row.description or "", rows, int(row.batches), problem, last, status, verdict)
        )
    return summaries


_EVENT_WORDS = {
    "registered": "registered version {version}",
    "alias_set": "made version {version} {alias}",
    "alias_removed": "removed the {alias} alias",
    "model_created": "created the model",
    "requested": "asked to make version {version} {alias}",
    "approved": "approved version {version} as {alias}",
    "rejected": "rejected version {version} as {alias}",
    "withdrawn": "withdrew the request for version {version}",
    "gate_overridden": "overrode failed gates for version {version}",
    "refused": "was refused an action",
}
# Bookkeeping events that would only add noise to the activity feed.
_QUIET_EVENTS = {"gates_evaluated", "gates_configured", "share_link_created"}


def recent_activity(registry: Registry, warehouse: Warehouse, *, limit: int = 12) -> list[Activity]:
    """Registry events and data deliveries merged, newest first."""
    items: list[Activity] = []
    for event in registry.events(limit=None):
        if event.get("event") in _QUIET_EVENTS:
            continue
        template = _EVENT_WORDS.get(event.get("event", ""), event.get("event", "").replace("_", " "))
        what = template.format(version=event.get("version"), alias=event.get("alias"))
        if event.get("reason"):
            what += f": {event['reason']}"
        items.append(
            Activity(datetime.fromisoformat(event["time"]), what, event.get("actor", ""), event.get("model", ""), "model")
        )
    deliveries = warehouse.query(
        "SELECT dataset, batch_id, received_at, row_count, status, reason FROM batches ORDER BY received_at DESC LIMIT $1",
        [limit],
    )
    for row in deliveries.itertuples(index=False):
        what = f"received {row.row_count:,} rows ({row.batch_id}): {row.status}"
        if row.reason:
            what += f", {row.reason}"
        items.append(Activity(row.received_at.to_pydatetime(), what, "", row.dataset, "dataset"))
    items.sort(key=lambda item: item.time, reverse=True)
    return items[:limit]


def headline(models: list[ModelSummary], datasets: list[DatasetSummary]) -> tuple[Status, str]:
    """The one-sentence verdict that opens the Overview page."""
    if not models and not datasets:
        return Status.UNKNOWN, "Nothing is tracked yet: ingest a dataset or register a model to fill this page."
    items = [*models, *datasets]
    worst_item = max(items, key=lambda item: item.status.rank)
    in_service = sum(1 for model in models if model.champion is not None)
    counts = {status: sum(1 for item in items if item.status is status) for status in Status}
    parts = [f"{in_service} of {len(models)} model{'s' if len(models) != 1 else ''} in service"]
    parts.append(f"{len(datasets)} dataset{'s' if len(datasets) != 1 else ''} tracked")
    if worst_item.status in (Status.ACT, Status.WATCH):
        needing = counts[Status.ACT] + counts[Status.WATCH]
        return worst_item.status, (
            f"{needing} item{'s need' if needing > 1 else ' needs'} attention ({', '.join(parts)}). "
            f"Most urgent: {worst_item.name}: {worst_item.verdict}"
        )
    return worst_item.status, f"All clear: {', '.join(parts)}, and none needs attention."
