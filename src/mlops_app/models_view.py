"""What the Models and Model review pages show, in plain language.

The judgement (which version is serving, which request is blocked, how the portfolio stands)
lives here so the pages only render, and so it is unit-tested. Everything returned is plain
data (dataclasses, lists, DataFrames): pages cache it with ``state.cached``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pandas as pd

from mlops_app.errors import MlopsError
from mlops_app.metric_catalog import METRICS, format_value, metric_info
from mlops_app.promotion import CHALLENGER, CHAMPION, PENDING, champion_history, list_requests
from mlops_app.registry import ModelVersion, Registry
from mlops_app.status import Status
from mlops_app.warehouse import Warehouse

ALIAS_WORDS = {CHAMPION: "champion (serving)", CHALLENGER: "challenger (under evaluation)"}
# Columns of a versions table: at most this many metrics, the card's key metric first.
MAX_METRIC_COLUMNS = 4


@dataclass(frozen=True)
class PendingItem:
    """One pending promotion request, as the Models page lists it."""

    model: str
    version: int
    alias: str
    request_id: str
    requested_by: str
    requested_at: datetime
    blocked: bool
    summary: str

    @property
    def status(self) -> Status:
        # Blocked needs an approver's or admin's decision now; ready only needs an approval.
        return Status.ACT if self.blocked else Status.WATCH

    @property
    def word(self) -> str:
        return "Blocked" if self.blocked else "Ready for approval"


@dataclass(frozen=True)
class ModelOverview:
    """One registered model with its aliases, its versions and its pending requests."""

    name: str
    description: str
    owner: str
    champion: int | None
    challenger: int | None
    aliases: dict[str, int]
    versions: int
    pending: tuple[PendingItem, ...]


def _pending_item(request) -> PendingItem:
    return PendingItem(
        model=request.model, version=request.version, alias=request.alias, request_id=request.id,
        requested_by=request.requested_by, requested_at=request.requested_at, blocked=request.blocked, summary=request.summary,
    )  # fmt: skip


def model_overviews(registry: Registry, warehouse: Warehouse | None = None) -> list[ModelOverview]:
    """Every registered model with aliases and pending requests, by name.

    ``warehouse`` is unused; it is accepted so pages can cache this with ``state.cached``.
    """
    overviews = []
    for info in registry.list_models():
        pending = tuple(_pending_item(request) for request in reversed(list_requests(registry, info.name, status=PENDING)))
        overviews.append(
            ModelOverview(
                name=info.name, description=info.description, owner=info.owner, champion=info.aliases.get(CHAMPION),
                challenger=info.aliases.get(CHALLENGER), aliases=dict(info.aliases), versions=info.latest_version or 0,
                pending=pending,
            )
        )  # fmt: skip
    return sorted(overviews, key=lambda item: item.name)


def portfolio_verdict(models: list[ModelOverview]) -> tuple[Status, str]:
    """The Models page's opening status and sentence."""
    if not models:
        return Status.UNKNOWN, "No models are registered yet."
    pending = [item for model in models for item in model.pending]
    blocked = [item for item in pending if item.blocked]
    without = [model.name for model in models if model.champion is None]
    count = f"{len(models)} model{'s' if len(models) != 1 else ''}"
    if without:
        serving = f"{len(models) - len(without)} of {count} have a champion in service; {', '.join(without)} has none yet."
    else:
        serving = f"All {count} have a champion in service." if len(models) > 1 else f"{models[0].name} has a champion in service."
    if blocked:
        first = blocked[0]
        more = f" and {len(blocked) - 1} more" if len(blocked) > 1 else ""
        return Status.ACT, (
            f"Decision needed: the request to make {first.model} version {first.version} {first.alias} is blocked by a "
            f"failed gate{more}. Open its review to reject it, or (admins) override with a written reason. {serving}"
        )
    if pending:
        names = "; ".join(f"{item.model} version {item.version} to {item.alias}" for item in pending)
        return Status.WATCH, f"{len(pending)} request{'s wait' if len(pending) > 1 else ' waits'} for approval ({names}); every gate passed. {serving}"
    if without:
        return Status.WATCH, f"No request is waiting. {serving} Request a promotion from a version's review."
    return Status.HEALTHY, f"Nothing waits for a decision. {serving}"


def alias_sentence(model: ModelOverview) -> str:
    """'Champion (serving): version 2 · Challenger (under evaluation): version 3'."""
    champion = f"version {model.champion}" if model.champion is not None else "none yet"
    challenger = f"version {model.challenger}" if model.challenger is not None else "none"
    others = [f"{alias}: version {number}" for alias, number in sorted(model.aliases.items()) if alias not in (CHAMPION, CHALLENGER)]
    return " · ".join([f"Champion (serving): {champion}", f"Challenger (under evaluation): {challenger}", *others])


def _key_metrics(versions: list[ModelVersion], champion: int | None = None) -> list[str]:
    """The metrics to show as columns: the champion's key metric first (the one the business
    watches), then the other cards' key metrics, then catalogue order."""
    seen: list[str] = []
    ranked = sorted(versions, key=lambda item: (item.version != champion, -item.version))
    for version in ranked:
        key = (version.card.get("extra") or {}).get("key_metric")
        if key and key not in seen:
            seen.append(key)
    names = {name for version in versions for name in version.metrics}
    ordered = seen + [name for name in METRICS if name in names and name not in seen]
    ordered += sorted(name for name in names if name not in ordered)
    return ordered[:MAX_METRIC_COLUMNS]


def _units(versions: list[ModelVersion]) -> dict[str, str]:
    units: dict[str, str] = {}
    for version in versions:
        units.update(((version.card.get("extra") or {}).get("metric_units")) or {})
    return units


def version_status(version: int, aliases: dict[str, int], requests: list, was_champion: set[int]) -> str:
    """The plain status word of one version."""
    held = [ALIAS_WORDS.get(alias, alias) for alias, number in aliases.items() if number == version]
    pending = [request for request in requests if request.version == version and request.status == PENDING]
    words = [word.capitalize() for word in held]
    if pending:
        words.append("Request blocked" if pending[0].blocked else "Request waiting for approval")
    if not held and version in was_champion:
        words.append("Earlier champion")
    return "; ".join(words) or "Registered, not released"


def metric_columns(registry: Registry, model: str) -> list[tuple[str, str]]:
    """(column title, help) of the metric columns of :func:`versions_table`."""
    versions = registry.list_versions(model)
    units = _units(versions)
    keys = _key_metrics(versions, registry.get_model(model).aliases.get(CHAMPION))
    return [(metric_info(key, units.get(key)).label, metric_info(key, units.get(key)).help) for key in keys]


def versions_table(registry: Registry, model: str) -> pd.DataFrame:
    """One row per version, newest first: version, status, when and by whom, key metrics formatted with units.

    Returns:
        Columns Version, Status, Registered, By, then one column per key metric (its catalogue label).
    """
    info = registry.get_model(model)
    versions = registry.list_versions(model)
    requests = list_requests(registry, model)
    was_champion = {period.version for period in champion_history(registry, model)}
    units = _units(versions)
    keys = _key_metrics(versions, info.aliases.get(CHAMPION))
    rows = []
    for version in sorted(versions, key=lambda item: item.version, reverse=True):
        row = {
            "Version": version.version,
            "Status": version_status(version.version, info.aliases, requests, was_champion),
            "Registered": format_iso(version.created_at),
            "By": version.author or "unknown",
        }
        for key in keys:
            row[metric_info(key, units.get(key)).label] = format_value(version.metrics.get(key), metric_info(key, units.get(key)).unit)
        rows.append(row)
    return pd.DataFrame(rows, columns=["Version", "Status", "Registered", "By", *[metric_info(k, units.get(k)).label for k in keys]])


def format_iso(text: str | None) -> str:
    """An ISO time from a card as 'YYYY-MM-DD HH:MM UTC'."""
    if not text:
        return "unknown"
    try:
        moment = datetime.fromisoformat(str(text))
    except ValueError:
        return str(text)[:16]
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def format_moment(moment: datetime | None) -> str:
    if moment is None:
        return "still today"
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def champion_periods(registry: Registry, model: str) -> pd.DataFrame:
    """Which version was champion when, newest first: Version, From, Until, Set by, Reason."""
    periods = champion_history(registry, model)
    return pd.DataFrame(
        [
            {"Version": period.version, "From": format_moment(period.start), "Until": format_moment(period.end),
             "Set by": period.set_by or "unknown", "Reason": period.reason}  # fmt: skip
            for period in reversed(periods)
        ],
        columns=["Version", "From", "Until", "Set by", "Reason"],
    )


def champion_on_sentence(model: str, day, version: int | None) -> str:
    """'On 2026-08-01 (end of day, UTC) version 1 of apple-grader was champion.'"""
    if version is None:
        return f"On {day:%Y-%m-%d} (end of day, UTC) {model} had no champion: no version was serving."
    return f"On {day:%Y-%m-%d} (end of day, UTC) version {version} of {model} was champion, making the real decisions."


def drift_status(warehouse: Warehouse, model: str) -> tuple[Status, str]:
    """The model's live monitoring status from stored results; 'not monitored yet' when there are none."""
    from mlops_app.monitoring import model_status, monitored_models

    not_yet = (
        Status.UNKNOWN,
        f"Not monitored yet: no monitoring results are stored for {model}. Score a batch "
        f"(`mlops-app score {model} FILE`), then run `mlops-app monitor {model}`; drift and live results appear here then.",
    )
    try:
        if model not in set(monitored_models(warehouse)["model"]):
            return not_yet
        return model_status(warehouse, model)
    except MlopsError:
        return not_yet
    except Exception as error:  # noqa: BLE001 - an older warehouse without monitoring tables
        if "monitor_windows" in str(error) or "Catalog Error" in str(error):
            return not_yet
        raise


def better_marker(better: bool | None) -> str:
    """The word shown beside a metric compared with the champion (never colour alone)."""
    if better is None:
        return "—"
    return "▲ better" if better else "▼ worse"


GATE_WORDS = {"passed": "✔ Passed", "failed": "✖ Failed", "skipped": "○ Skipped"}
GATE_COLOURS = {"passed": "green", "failed": "red", "skipped": "gray"}


def gate_word(status: str) -> str:
    return GATE_WORDS.get(status, status)


def metrics_table(review) -> pd.DataFrame:
    """Holdout metrics of a :class:`~mlops_app.promotion.ModelReview` beside the champion's, better value marked."""
    champion = f"Champion (version {review.champion.version})" if review.champion else "Champion"
    return pd.DataFrame(
        [
            {"Metric": row.label, "This version": row.value_text, champion: row.champion_text or "—",
             "Change": row.change_text or "—", "Compared with the champion": better_marker(row.better),
             "Target": (row.target_text + ("" if row.meets_target is None else " ✔ met" if row.meets_target else " ✖ missed")) or "—"}  # fmt: skip
            for row in review.metrics
        ],
        columns=["Metric", "This version", champion, "Change", "Compared with the champion", "Target"],
    )


def slices_table(review) -> pd.DataFrame:
    """Per-group (slice) results of the gate metric, this version beside the champion's, better marked.

    Returns:
        Columns Grouped by, Group, Rows, This version, Champion, Compared with the champion,
        Below this version's overall; empty when no slices were recorded.
    """
    from mlops_app.promotion import slice_gaps
    from mlops_app.experiments import metric_higher_is_better

    metric = review.metric
    columns = ["Grouped by", "Group", "Rows", "This version", "Champion", "Compared with the champion", "Below this version's overall"]
    if not metric or not review.slices:
        return pd.DataFrame(columns=columns)
    units = _units([review.version] + ([review.champion] if review.champion else []))
    info = metric_info(metric, units.get(metric))
    champion = {(row["column"], row["value"]): row["metric_value"] for row in slice_gaps(review.champion, metric)} if review.champion else {}
    higher = metric_higher_is_better(metric)
    rows = []
    for row in review.slices:
        value, reference = row["metric_value"], champion.get((row["column"], row["value"]))
        better = None
        if value is not None and reference is not None and higher is not None and value != reference:
            better = value > reference if higher else value < reference
        gap = row["gap"]
        if gap is None:
            gap_text = "—"
        elif gap == 0:
            gap_text = "same"
        else:
            amount = f"{abs(gap) * 100:.1f} points" if info.unit == "%" else format_value(abs(gap), info.unit)
            gap_text = f"{amount} {'worse' if gap > 0 else 'better'}"
        rows.append(
            {"Grouped by": row["column"], "Group": row["value"], "Rows": f"{row['rows']:,}", "This version": format_value(value, info.unit),
             "Champion": "—" if not review.champion else "not recorded" if reference is None else format_value(reference, info.unit),
             "Compared with the champion": better_marker(better), "Below this version's overall": gap_text}  # fmt: skip
        )
    return pd.DataFrame(rows, columns=columns)


def gates_table(review) -> pd.DataFrame:
    return pd.DataFrame(
        [{"Result": gate_word(gate.status), "Gate": gate.title, "Detail": gate.detail} for gate in review.gates],
        columns=["Result", "Gate", "Detail"],
    )


def timeline_table(review) -> pd.DataFrame:
    """The version's history, newest first: When, What, Who."""
    return pd.DataFrame(
        [{"When": format_moment(entry.time), "What": entry.text, "Who": entry.actor or "system"} for entry in reversed(review.timeline)],
        columns=["When", "What", "Who"],
    )
