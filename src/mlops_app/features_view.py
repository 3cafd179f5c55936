"""What the Features page says: sentences, number formats, catalogue filters and table rows.

Pure functions over the results of :mod:`mlops_app.features` (no Streamlit), so every
sentence a stakeholder reads is unit-tested. The two loaders at the top are the page's
cached reads: plain positional arguments with a stable repr, as ``ui.state.cached`` needs.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pandas as pd

from mlops_app.formatting import format_time
from mlops_app.features import (
    FeatureDefinition,
    FeatureFreshness,
    FeatureInfo,
    FeatureOverview,
    FeatureStatistics,
    ModelUse,
    feature_overview,
    list_features,
)
from mlops_app.status import Status, worst

if TYPE_CHECKING:
    from mlops_app.registry import Registry
    from mlops_app.warehouse import Warehouse

# Freshness is judged at a clock rounded down to this many minutes: cached reads are reused
# within the bucket, and an age is never more than this out of date (expectations are hours).
CLOCK_MINUTES = 5
HISTOGRAM_BINS = 30
TOP_VALUES = 10  # feature_statistics' default number of most frequent values
NEED_ATTENTION = frozenset({Status.WATCH.word, Status.ACT.word})
STATUS_BY_WORD = {status.word: status for status in Status}
# Plain symbols, not emoji: they render in any font (and in the grid's canvas), and their
# shapes differ, so the status survives colour blindness and grey-scale printouts.
STATUS_MARKS = {Status.HEALTHY: "●", Status.WATCH: "▲", Status.ACT: "■", Status.UNKNOWN: "○"}
AGGREGATION_WORDS = {
    "avg": "average",
    "sum": "total",
    "count": "count",
    "min": "smallest",
    "max": "largest",
    "share": "share of true",
}
# Units read from a column name's suffix. Only unambiguous ones: a wrong unit misleads more
# than a missing one (the definition's description states the unit in words anyway).
_UNIT_SUFFIXES = (
    ("_mm2", "mm²"),
    ("_cm2", "cm²"),
    ("_mm", "mm"),
    ("_cm", "cm"),
    ("_kg", "kg"),
    ("_g", "g"),
    ("_brix", "°Bx"),
)
_BARE_COLUMN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


# --- Cached reads ----------------------------------------------------------------------------


def clock(now: datetime | None = None, *, minutes: int = CLOCK_MINUTES) -> datetime:
    """The time freshness is judged at: now (UTC) rounded down to ``minutes``."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    return now.replace(minute=now.minute - now.minute % minutes, second=0, microsecond=0)


def catalogue(warehouse: Warehouse, now: datetime) -> pd.DataFrame:
    """Every registered feature with its freshness at ``now`` (see :func:`list_features`)."""
    return list_features(warehouse, now=now)


def overview(warehouse: Warehouse, registry: Registry, name: str, now: datetime) -> FeatureOverview:
    """One feature's detail, freshness at ``now``, lineage, statistics, histogram and trend."""
    return feature_overview(warehouse, registry, name, bins=HISTOGRAM_BINS, now=now)


# --- Words and numbers -----------------------------------------------------------------------


def plural(count: int, word: str, words: str | None = None) -> str:
    return f"{count:,} {word if count == 1 else (words or word + 's')}"


def format_age(hours: float) -> str:
    """An age in the unit a person would say: minutes, hours, then days."""
    hours = max(float(hours), 0.0)
    if hours < 1:
        return plural(max(round(hours * 60), 1), "minute")
    if hours < 48:
        return plural(round(hours), "hour")
    return plural(round(hours / 24), "day")


def format_period(hours: float) -> str:
    """An expectation such as 24 hours, 36 hours or 7 days."""
    hours = float(hours)
    if hours >= 48 and hours % 24 == 0:
        return plural(int(hours // 24), "day")
    if hours == int(hours):
        return plural(int(hours), "hour")
    return f"{hours:g} hours"




def sentence_case(text: str) -> str:
    """The text with its first letter in capitals; one that opens with code is left as it is."""
    return text[:1].upper() + text[1:] if text[:1].isalpha() else text


def window_words(window: str | None) -> str:
    """``7d`` -> ``7 days``; ``24h`` -> ``24 hours``."""
    match = re.fullmatch(r"\s*(\d+)\s*(m|min|h|d|w)\s*", str(window or ""))
    if match is None:
        return str(window or "")
    unit = {"m": "minute", "min": "minute", "h": "hour", "d": "day", "w": "week"}[match[2]]
    return plural(int(match[1]), unit)


def computed_as(kind: str, aggregation: Any, window: Any) -> str:
    """How a feature is computed, in a few words: ``raw value``, ``average over 7 days``."""
    if kind != "aggregate" or not isinstance(aggregation, str):
        return "raw value"
    return f"{AGGREGATION_WORDS.get(aggregation, aggregation)} over {window_words(window)}"


def status_label(word: str) -> str:
    """A status word with its shape mark, for table cells: ``■ Act``."""
    status = STATUS_BY_WORD.get(word, Status.UNKNOWN)
    return f"{STATUS_MARKS[status]} {status.word}"


def safe_name(text: str, limit: int = 80) -> str:
    """A user-supplied name, shortened and unable to break out of a code span."""
    text = str(text).replace("`", "'").replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def close_matches(name: str, names: Iterable[str], count: int = 3) -> list[str]:
    """Registered names that look like ``name`` (typos, other case, a missing suffix)."""
    names = list(names)
    lowered = {known.lower(): known for known in names}
    found = difflib.get_close_matches(str(name).lower(), list(lowered), n=count, cutoff=0.6)
    # A fragment ("bad_share") is as likely as a typo: names that contain it come next.
    found += [known for known in lowered if str(name).lower() in known and known not in found]
    return [lowered[known] for known in found[:count]]


# --- Units and values ------------------------------------------------------------------------


@dataclass(frozen=True)
class ValueFormat:
    """How one feature's values are written: as a percentage (shares), a whole number, or with a unit."""

    percent: bool = False
    integer: bool = False
    unit: str = ""

    def value(self, number: float | None) -> str:
        if number is None or (isinstance(number, float) and math.isnan(number)):
            return "–"
        if self.percent:
            return f"{number * 100:.1f}%"
        if self.integer and float(number).is_integer():
            text = f"{int(number):,}"
        else:
            text = format_number(number)
        return f"{text} {self.unit}" if self.unit else text

    def spread(self, number: float | None) -> str:
        """A standard deviation: percentage points for shares."""
        if number is not None and self.percent and not math.isnan(number):
            return f"{number * 100:.1f} pp"
        return ValueFormat(unit=self.unit).value(number)

    @property
    def axis_title(self) -> str:
        """The unit for an axis title; none for shares, whose ticks carry the % sign."""
        return "" if self.percent else self.unit


def format_number(number: float) -> str:
    """Three or so significant digits, thousands separated: 1,284 / 152.3 / 4.21 / 0.0312."""
    number = float(number)
    size = abs(number)
    if size >= 1000:
        return f"{number:,.0f}"
    if size >= 10:
        return f"{number:.1f}"
    if size >= 1:
        return f"{number:.2f}"
    return "0" if size == 0 else f"{number:.3g}"


def unit_of_column(column: str) -> str:
    for suffix, unit in _UNIT_SUFFIXES:
        if column.lower().endswith(suffix):
            return unit
    return ""


def value_format(definition: FeatureDefinition) -> ValueFormat:
    """Shares as percentages, counts as whole numbers, a unit when the column's name says it.

    An average, smallest, largest or total of a bare column keeps that column's unit
    (``avg`` of ``blemish_area_mm2`` is in mm²).
    """
    if definition.kind == "aggregate":
        if definition.aggregation == "share":
            return ValueFormat(percent=True)
        if definition.aggregation == "count":
            return ValueFormat(integer=True)
        expression = definition.expression.strip()
        unit = unit_of_column(expression) if _BARE_COLUMN.fullmatch(expression) else ""
        return ValueFormat(integer=definition.value_type == "integer", unit=unit)
    unit = unit_of_column(definition.name)
    return ValueFormat(integer=definition.value_type == "integer", unit=unit)


# --- The catalogue ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FilterOptions:
    tags: list[str]
    owners: list[str]
    entities: list[str]


def _tags(value: Any) -> list[str]:
    if value is None or isinstance(value, float):
        return []
    return [str(tag) for tag in value]


def filter_options(frame: pd.DataFrame) -> FilterOptions:
    """The tags, owners and entities found in the catalogue, sorted, for the filter boxes."""
    tags = sorted({tag for value in frame["tags"] for tag in _tags(value)}) if len(frame) else []
    owners = sorted({str(owner) for owner in frame["owner"] if isinstance(owner, str) and owner}) if len(frame) else []
    entities = sorted({str(entity) for entity in frame["entity"]}) if len(frame) else []
    return FilterOptions(tags, owners, entities)


def filter_catalogue(
    frame: pd.DataFrame,
    *,
    search: str = "",
    tags: Sequence[str] = (),
    owners: Sequence[str] = (),
    entities: Sequence[str] = (),
) -> pd.DataFrame:
    """The features matching every filter given (any of the tags, owners or entities chosen).

    ``search`` is found, ignoring case, in the name, description, dataset or a tag (the same
    fields as :func:`list_features`' search).
    """
    keep = pd.Series(True, index=frame.index)
    text = search.strip().lower()
    if text:
        haystack = (
            frame["name"].astype(str) + "\n" + frame["description"].fillna("").astype(str) + "\n" + frame["dataset"].astype(str)
            + "\n" + frame["tags"].map(lambda value: "\n".join(_tags(value)))
        ).str.lower()  # fmt: skip
        keep &= haystack.str.contains(text, regex=False)
    if tags:
        wanted = {tag.lower() for tag in tags}
        keep &= frame["tags"].map(lambda value: bool(wanted & {tag.lower() for tag in _tags(value)}))
    if owners:
        keep &= frame["owner"].fillna("").str.lower().isin({owner.lower() for owner in owners})
    if entities:
        keep &= frame["entity"].isin(list(entities))
    return frame[keep]


def attention_count(frame: pd.DataFrame) -> int:
    return int(frame["status"].isin(NEED_ATTENTION).sum()) if len(frame) else 0


def count_sentence(shown: pd.DataFrame, total: int) -> str:
    """``13 features (3 need attention)``, or ``4 of 13 features match (...)`` when filtered."""
    attention = attention_count(shown)
    unchecked = int((shown["status"] == Status.UNKNOWN.word).sum()) if len(shown) else 0
    notes = [f"{attention:,} need{'s' if attention == 1 else ''} attention"]
    if unchecked:
        notes.append(f"{unchecked:,} without values yet")
    if len(shown) == total:
        return f"{plural(total, 'feature')} ({', '.join(notes)})"
    if not len(shown):
        return f"No feature of {total:,} matches these filters"
    return f"{len(shown):,} of {plural(total, 'feature')} match ({', '.join(notes)})"


def catalogue_verdict(frame: pd.DataFrame) -> tuple[Status, str]:
    """The status of the whole catalogue and one sentence saying what it means."""
    statuses = [STATUS_BY_WORD.get(word, Status.UNKNOWN) for word in frame["status"]]
    status = worst(statuses)
    total = len(frame)
    attention = attention_count(frame)
    newest = frame["last_value_at"].max() if total else None
    newest_text = ""
    if newest is not None and not pd.isna(newest):
        ages = frame["age_hours"].dropna()
        age = f", {format_age(float(ages.min()))} ago" if len(ages) else ""
        newest_text = f" The newest value of any feature is from {format_time(newest)}{age}."
    if status is Status.HEALTHY:
        return status, f"Healthy: all {plural(total, 'feature')} have recent values, as often as each expects.{newest_text}"
    if attention:
        which = "all" if attention == total else f"{attention:,} of"
        return status, (
            f"{status.word}: {which} {plural(total, 'feature')} {'has' if total == 1 else 'have'} values older than expected, "
            f"so models trained or scored on them now see old data.{newest_text} Open a feature to see why."
        )
    unchecked = int((frame["status"] == Status.UNKNOWN.word).sum())
    return status, (
        f"Not checked: {unchecked:,} of {plural(total, 'feature')} {'has' if unchecked == 1 else 'have'} no values yet; "
        "the others are fresh. Compute the missing ones with `mlops-app features materialize`."
        if unchecked < total
        else f"Not checked: {'the feature has no' if total == 1 else f'none of the {total:,} features has'} values yet. "
        "Compute them with `mlops-app features materialize`."
    )


def catalogue_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The catalogue as the table shows it: status first, words instead of codes, ISO times."""
    rows = [
        {
            "Status": status_label(row.status),
            "Feature": row.name,
            "Entity": row.entity,
            "Computed as": computed_as(row.kind, row.aggregation, row.window),
            "Type": row.value_type,
            "Newest value": format_time(row.last_value_at),
            "Age": "–" if pd.isna(row.age_hours) else format_age(row.age_hours),
            "Expected every": format_period(row.freshness_hours),
            "Owner": row.owner if isinstance(row.owner, str) else "",
            "Tags": _tags(row.tags),
            "Description": row.description if isinstance(row.description, str) else "",
        }
        for row in frame.itertuples(index=False)
    ]
    # The verdict and the facts to act on first; the long description last, where it may be cut.
    columns = ["Status", "Feature", "Entity", "Computed as", "Type", "Newest value", "Age", "Expected every", "Owner", "Tags",
               "Description"]  # fmt: skip
    return pd.DataFrame(rows, columns=columns)


# --- One feature -----------------------------------------------------------------------------


def freshness_sentence(freshness: FeatureFreshness, info: FeatureInfo) -> str:
    """The verdict on one feature's freshness, with the age, the expectation and what to do."""
    expected = format_period(freshness.expected_hours)
    if info.materialized_at is None:
        return f"Not checked: {info.name} has no values yet. Compute them with `mlops-app features materialize`."
    if freshness.last_value_at is None:
        return (
            f"Stale: {info.name} has no values at all, because dataset {info.definition.dataset} has no rows with a value "
            f"that are available yet. New values are expected at least every {expected}."
        )
    age = format_age(freshness.age_hours or 0.0)
    when = format_time(freshness.last_value_at)
    if freshness.status is Status.HEALTHY:
        sentence = f"Fresh: the newest value is {age} old ({when}); new values are expected at least every {expected}."
    else:
        word = "Getting stale" if freshness.status is Status.WATCH else "Stale"
        sentence = f"{word}: the newest value is {age} old ({when}), but new values are expected at least every {expected}."
    source = freshness.source_last_at
    if source is not None and source > freshness.last_value_at:
        sentence += (
            f" Dataset {info.definition.dataset} has rows up to {format_time(source)} that are not computed into this feature yet: "
            "run `mlops-app features materialize`."
        )
    elif freshness.status is not Status.HEALTHY:
        sentence += (
            f" Dataset {info.definition.dataset} has received nothing newer either, so the delay is upstream: "
            "check its deliveries. The statistics below describe the values up to then."
        )
    return sentence


def definition_text(info: FeatureInfo) -> str:
    """The definition as it would be written in ``<home>/features/*.yaml``, with what the store resolved."""
    d = info.definition
    lines = [
        f"name: {d.name}",
        f"entity: {d.entity}            # key column: {info.entity_column}",
        f"dataset: {d.dataset}",
        f"kind: {d.kind}",
        f"expression: {d.expression}",
    ]
    if d.kind == "aggregate":
        lines += [f"aggregation: {d.aggregation}", f"window: {d.window}"]
    lines += [
        f"available_at: {info.available_at_column}" + ("" if d.available_at else "            # the dataset's time column"),
        f"value_type: {d.value_type}",
        f"freshness_hours: {info.freshness_hours:g}" + ("" if d.freshness_hours else "            # inherited"),
    ]
    return "\n".join(lines)


@dataclass(frozen=True)
class Tile:
    """One metric tile: label, value and what it means (the ``help=`` tooltip)."""

    label: str
    value: str
    help: str


def statistic_tiles(statistics: FeatureStatistics, definition: FeatureDefinition) -> tuple[list[Tile], list[Tile]]:
    """The tiles of the statistics section: coverage first, then the distribution.

    Numeric features: mean, spread, smallest, median, largest and the typical range; text and
    boolean ones: the most common values.
    """
    aggregate = definition.kind == "aggregate"
    counted = (
        "each time the value changed: when a source row entered or left the window"
        if aggregate
        else f"one per source row of dataset {definition.dataset}"
    )
    null_share = statistics.null_share
    entity_words = definition.entity.replace("_", " ")
    coverage = [
        Tile("Values recorded", f"{statistics.values:,}", f"How many values the store holds for this feature, {counted}."),
        Tile(
            "Empty",
            "–" if null_share is None else f"{null_share * 100:.1f}%",
            "Share of the stored points with no value (e.g. a missing measurement). "
            "A model fills or skips them, so a rising share deserves a look.",
        ),
        Tile(
            sentence_case(entity_words) + "s",
            f"{statistics.entities:,}",
            f"How many different {entity_words}s have values: the feature has one value per {entity_words} at any moment.",
        ),
        Tile(
            "History",
            _days(statistics.first_value_at, statistics.last_value_at),
            f"From the first to the newest stored value: {_span(statistics.first_value_at, statistics.last_value_at)}.",
        ),
    ]
    fmt = value_format(definition)
    if statistics.top or definition.value_type in ("text", "boolean"):
        if not statistics.top:
            return coverage, []
        value, count, share = statistics.top[0]
        # feature_statistics returns the 10 most frequent values: fewer means that is all of them.
        categories = f"{len(statistics.top)}" if len(statistics.top) < TOP_VALUES else f"{TOP_VALUES} or more"
        distribution = [
            Tile("Most common", value, f"The most frequent value: {count:,} of {statistics.values:,} values."),
            Tile(
                "Its share",
                f"{share * 100:.1f}%",
                "Share of all non-empty values that are the most common one. Near 100% means the feature hardly varies.",
            ),
            Tile(
                "Different values",
                categories,
                "How many different values occur. A new one appearing can mean a new source or a typo upstream.",
            ),
        ]
        return coverage, distribution
    distribution = [
        Tile("Mean", fmt.value(statistics.mean), "The average value; a few extreme values can pull it away from the typical one."),
        Tile(
            "Median",
            fmt.value(statistics.median),
            "Half of the values are below this, half above; unlike the mean, a few extreme values do not move it.",
        ),
        Tile(
            "Spread (std)",
            fmt.spread(statistics.std),
            "Standard deviation: how far values typically are from the mean"
            + (" (pp: percentage points)." if fmt.percent else "."),
        ),
        Tile("Smallest", fmt.value(statistics.min), "The lowest value stored; an impossible one points at a faulty source."),
        Tile("Largest", fmt.value(statistics.max), "The highest value stored; an impossible one points at a faulty source."),
    ]
    return coverage, distribution


def values_caption(statistics: FeatureStatistics, definition: FeatureDefinition) -> str:
    """The period the statistics cover and, from the quantiles, where most values lie."""
    sentence = f"Stored values from {_span(statistics.first_value_at, statistics.last_value_at)}."
    if statistics.p05 is None or statistics.p95 is None:
        return sentence
    fmt = value_format(definition)
    sentence += f" 90% of them lie between {fmt.value(statistics.p05)} and {fmt.value(statistics.p95)} (5th to 95th percentile)"
    if statistics.p25 is not None and statistics.p75 is not None:
        sentence += f", half between {fmt.value(statistics.p25)} and {fmt.value(statistics.p75)}"
    return sentence + "; values outside the first range are unusual."


def _days(first: datetime | None, last: datetime | None) -> str:
    if first is None or last is None:
        return "–"
    days = max((pd.Timestamp(last) - pd.Timestamp(first)).total_seconds() / 86400, 0)
    return plural(round(days), "day")


def _span(first: datetime | None, last: datetime | None) -> str:
    if first is None or last is None:
        return "no time yet"
    return f"{format_time(first)} to {format_time(last)}"


@dataclass(frozen=True)
class ModelUsage:
    """One model using the feature, and which of its versions do."""

    model: str
    versions: str
    serving: bool


def model_usages(uses: Sequence[ModelUse]) -> list[ModelUsage]:
    """The model versions using a feature grouped by model: ``versions 1, 2 (champion), 3 (challenger)``."""
    grouped: dict[str, list[ModelUse]] = {}
    for use in uses:
        grouped.setdefault(use.model, []).append(use)
    result = []
    for model, versions in sorted(grouped.items()):
        parts = [
            f"{use.version}" + (f" ({', '.join(use.aliases)})" if use.aliases else "")
            for use in sorted(versions, key=lambda use: use.version)
        ]
        label = "version" if len(parts) == 1 else "versions"
        result.append(ModelUsage(model, f"{label} {', '.join(parts)}", any("champion" in use.aliases for use in versions)))
    return result


def lineage_sentence(usages: Sequence[ModelUsage], name: str) -> str:
    """Who depends on the feature, in one sentence."""
    if not usages:
        return (
            f"No registered model version lists {name} among its inputs yet, so changing it affects no model in the registry. "
            "A model card lists the features it was trained on."
        )
    serving = [usage.model for usage in usages if usage.serving]
    text = f"{plural(len(usages), 'model')} {'uses' if len(usages) == 1 else 'use'} {name}"
    if len(serving) == 1:
        text += f"; the serving (champion) version of {serving[0]} depends on it, so a wrong value reaches real decisions"
    elif serving:
        models = ", ".join(serving[:-1]) + " and " + serving[-1]
        text += f"; the serving (champion) versions of {models} depend on it, so a wrong value reaches real decisions"
    return text + "."
