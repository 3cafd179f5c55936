"""Live monitoring: per time window, drift against the training data, realized performance and KPIs.

``mlops-app monitor [MODEL]`` (:func:`run_monitor`) is safe to run from cron every few
minutes. For each model with logged predictions it takes the model's lease (a file lock:
the OS releases it when a process dies, so a killed run never blocks the next), finds the
closed time windows (daily by default, aligned to midnight UTC) that have no result yet,
and for each one:

1. samples the window's predictions inside DuckDB (a reservoir of at most ``sample_rows``
   rows, so a 10M-row window costs about as much as a 100k-row one) and the version's
   reference data, i.e. its training rows, from the dataset (sampled the same way, with
   feature-store features as of each row's time, and scored by the version so the
   prediction has a reference too);
2. runs Evidently's per-column data drift metrics (the ``ValueDrift`` per column, default
   method and threshold, that ``DataDriftPreset`` generates) plus a ``ValueDrift`` of the
   prediction on the two samples with ``include_tests=True``, and takes each column's
   drifted flag from its test
   status, never from the raw score (the method, and so the direction of the score,
   changes with the sample size: a p-value for small references, a distance for large);
3. computes realized performance where labels have arrived and the model's business KPIs
   (e.g. share of bad apples caught) over the KPI period ending with the window;
4. writes everything - drift per column (method, score, threshold, drifted, histograms
   computed in DuckDB), performance, KPIs, the window's status and summary sentence, and
   the alerts it opens or resolves - in ONE transaction whose last row is the window's
   ``monitor_windows`` row (primary key model + window start). A run killed midway leaves
   no half window, and the next run computes exactly the missing ones.

Labels arrive days later, so each run also recomputes performance and KPIs of completed
windows that received labels since they were last computed (cheap SQL, no Evidently) and
judges the KPI alerts again. After the windows, alerts not yet sent are handed to the
webhook outbox, requested retraining runs (:mod:`mlops_app.alerts`), and the outbox is
retried.

The full Evidently snapshot of each window is saved (gzip JSON, about 100 kB) under
``<home>/reports/monitoring/<model>/``; :func:`window_report` renders it to HTML on request.
Evidently writes values into that HTML's ``<script>`` blocks unescaped (0.7.23), so a
delivered category such as ``</script><img onerror=...>`` would run wherever the report is
opened. As in :mod:`mlops_app.reports`, ``<`` becomes the look-alike ``＜`` (U+FF1C): in the
text values given to Evidently, and again in every string of a saved snapshot before it is
rendered (snapshots written by older versions included). The report then reads the same and
no value can open or close a tag, so the page may embed it.

Settings per model live in ``<home>/monitoring/<model>.yaml`` (:class:`MonitorConfig`);
without one, defaults apply and KPIs come from the targets on the version's card.

The read functions at the end serve the monitoring page from stored results only; nothing
there imports Evidently (``import evidently`` alone takes seconds and ~290 MB).
"""

from __future__ import annotations

import gzip
import json
import logging
import math
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import duckdb
import filelock
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mlops_app import alerts
from mlops_app.alerts import DRIFT, KPI, METRIC_DROP, Breach, RetrainPlan
from mlops_app.config import Settings
from mlops_app.datasets import TABLE_PREFIX, dataset_table, get_dataset, table_columns
from mlops_app.errors import ConfigError, MlopsError, NotFoundError
from mlops_app.features import parse_window
from mlops_app.metric_catalog import METRICS, describe_target, format_value, meets_target, metric_info
from mlops_app.registry import Registry, validate_name, write_atomic
from mlops_app.reports import SAFE_LESS_THAN
from mlops_app.scoring import CLASSIFICATION, NUMBER, ModelSpec, load_version, predict_scores, registered
from mlops_app.status import Status, worst
from mlops_app.warehouse import Warehouse, quote_identifier

LOG = logging.getLogger("mlops_app.monitoring")

__all__ = [
    "HTML_SUFFIX",
    "PREDICTION_FEATURE",
    "SNAPSHOT_SUFFIX",
    "FeatureDrift",
    "KpiSpec",
    "KpiTile",
    "MonitorConfig",
    "MonitorReport",
    "evidently_drift",
    "feature_distributions",
    "feature_drift_table",
    "kpi_tiles",
    "load_monitor_config",
    "model_status",
    "monitor_config_path",
    "monitored_models",
    "report_file",
    "run_monitor",
    "save_monitor_config",
    "window_history",
    "window_report",
]

MONITOR_FOLDER = "monitoring"
LOCKS_FOLDER = ".locks"
REPORTS_FOLDER = "monitoring"
SNAPSHOT_SUFFIX = ".json.gz"
HTML_SUFFIX = ".defused.html"  # renamed when the defusing changed: older renders are never served
# The prediction is compared like a feature; a leading underscore cannot clash with a
# feature name (dataset columns starting with "_" are system columns, never features).
PREDICTION_FEATURE = "_prediction"
FEATURE, PREDICTION = "feature", "prediction"
HISTOGRAM_BINS = 20
TOP_CATEGORIES = 12
AUC_SAMPLE_ROWS = 100_000
# Per window, the reference sample is at most this many times the current sample (and at
# least MIN_REFERENCE_ROWS): Evidently's time grows with both sides, and the drift
# decision's noise is dominated by the smaller side.
REFERENCE_FACTOR = 5
MIN_REFERENCE_ROWS = 5_000
MAX_WINDOWS_LISTED = 100_000
LABEL_FREE_KPIS = {"positive_rate": "Share decided positive", "mean_score": "Average score"}
_STAMP = "%Y%m%dT%H%M%SZ"
_STAMP_PATTERN = re.compile(r"^[0-9]{8}T[0-9]{6}Z$")
_DRIFT_VIEW = "_mlops_drift_rows"

ProgressCallback = Callable[[str, Mapping[str, Any]], None]


# --- Settings per model ------------------------------------------------------------------------


class MonitorConfigError(ConfigError):
    """A model's monitoring settings file is malformed; the message names the problem."""


def _check_window_text(text: str) -> str:
    try:
        parse_window(text)
    except ValueError as error:
        raise ValueError(str(error)) from None
    return text


class KpiSpec(BaseModel):
    """A business KPI of a model: a metric and its target.

    ``metric`` is a performance metric (``recall_bad``, ``false_discard_rate``, ``mae``...,
    measured where labels have arrived) or ``positive_rate`` / ``mean_score`` (no labels
    needed). ``min`` and/or ``max`` bound it; ``label`` is what the page calls it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: str
    label: str | None = None
    min: float | None = None
    max: float | None = None
    help: str | None = None

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, value: str) -> str:
        if value not in METRICS and value not in LABEL_FREE_KPIS:
            known = ", ".join([*METRICS, *LABEL_FREE_KPIS])
            raise ValueError(f"unknown KPI metric {value!r}; use one of {known}")
        return value

    def target(self) -> dict[str, float]:
        return {key: value for key, value in (("min", self.min), ("max", self.max)) if value is not None}

    def title(self) -> str:
        if self.label:
            return self.label
        return LABEL_FREE_KPIS.get(self.metric) or metric_info(self.metric).label


class ReferenceSpec(BaseModel):
    """Where a model's reference data (its training rows) comes from.

    Without ``start``/``end`` the period comes from the version's card (its
    ``training_window``, or the trainer's train and validation periods). A date ``end``
    includes that whole day.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: str | None = None
    # date before datetime: "2026-07-10" must stay a whole day, not become its first instant.
    start: date | datetime | None = None
    end: date | datetime | None = None


class RetrainSpec(BaseModel):
    """Whether and how an alert starts retraining (see :mod:`mlops_app.alerts`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    on_alerts: tuple[Literal["drift", "kpi", "metric_drop"], ...] = ("drift", "kpi", "metric_drop")
    trials: int = Field(4, ge=1, le=500)
    max_rows: int | None = Field(20_000, ge=60)
    metric: str | None = None
    experiment: str | None = None
    features: tuple[str, ...] | None = None
    since: date | datetime | None = None
    # Train on the most recent stretch only (e.g. "45d": data that reflects the current
    # source), counted back from the monitoring run; combined with `since`, the later wins.
    recent: str | None = None

    @field_validator("recent")
    @classmethod
    def _recent(cls, value: str | None) -> str | None:
        return None if value is None else _check_window_text(value)


class MonitorConfig(BaseModel):
    """Monitoring settings of one model, from ``<home>/monitoring/<model>.yaml``.

    Attributes:
        window: length of a monitoring window (``1d``, ``12h``, ``7d``); windows are
            aligned to the Unix epoch in UTC, so daily windows start at midnight UTC.
        kpi_period: KPIs and alerts on them are judged over this period ending with each
            window (a day of labels is often too few to judge a share of bad apples).
        sample_rows: most rows of a window (and of the reference) compared for drift.
        min_rows: fewer predictions in a window than this: drift is not judged.
        min_labelled_rows: fewer labelled predictions in the KPI period: KPIs not judged.
        min_labelled_share: nor while less than this share of the period's predictions has
            its label: early labels are few and a KPI judged on them flips back and forth.
        drift_share_threshold: above this share of drifted features the model is Watch
            and a drift alert opens.
        metric_drop: the key metric worse than its holdout result by more than this
            fraction (0.05: 5%) opens a metric-drop alert (when it has no KPI already).
        key_metric: the metric that drop is judged on (default: the card's key metric).
        target: the label column's name in the dataset (default: the card's target).
        kpis: business KPIs; default: the targets on the version's card.
        resolve_after_windows: an alert resolves after this many judged windows in a row
            without the breach.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str
    window: str = "1d"
    kpi_period: str = "7d"
    sample_rows: int = Field(100_000, ge=100)
    min_rows: int = Field(30, ge=1)
    min_labelled_rows: int = Field(100, ge=1)
    min_labelled_share: float = Field(0.5, ge=0, le=1)
    drift_share_threshold: float = Field(0.3, gt=0, le=1)
    metric_drop: float = Field(0.05, ge=0)
    key_metric: str | None = None
    target: str | None = None
    reference: ReferenceSpec = ReferenceSpec()
    kpis: tuple[KpiSpec, ...] | None = None
    retrain: RetrainSpec = RetrainSpec()
    resolve_after_windows: int = Field(3, ge=1)
    seed: int = 42

    @field_validator("model")
    @classmethod
    def _model_name(cls, value: str) -> str:
        return validate_name(value)

    @field_validator("window", "kpi_period")
    @classmethod
    def _window(cls, value: str) -> str:
        return _check_window_text(value)

    @property
    def window_length(self) -> timedelta:
        return parse_window(self.window)

    @property
    def kpi_length(self) -> timedelta:
        return parse_window(self.kpi_period)


def monitor_folder(home: Path | str) -> Path:
    return Path(home).expanduser().resolve() / MONITOR_FOLDER


def monitor_config_path(home: Path | str, model: str) -> Path:
    """``<home>/monitoring/<model>.yaml``; the model name is validated, so the path stays in the folder."""
    return monitor_folder(home) / f"{validate_name(model)}.yaml"


def read_monitor_yaml(path: Path) -> dict[str, Any]:
    """The raw mapping of a settings file. Raises MonitorConfigError when it is not a YAML mapping."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise MonitorConfigError(f"{path} is not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise MonitorConfigError(f"{path} must hold a mapping of settings (model: ..., window: ...).")
    return data


def monitor_config_from_yaml(text: str, *, source: str = "the monitoring settings") -> MonitorConfig:
    """Parse settings from YAML text. Raises MonitorConfigError naming each bad field."""
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as error:
        raise MonitorConfigError(f"{source} is not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise MonitorConfigError(f"{source} must hold a mapping of settings (model: ..., window: ...).")
    try:
        return MonitorConfig.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, item['loc'])) or 'settings'}: {item['msg']}" for item in error.errors())
        raise MonitorConfigError(f"{source} has problems: {problems}.") from None


def load_monitor_config(home: Path | str, model: str) -> MonitorConfig:
    """The model's settings from ``<home>/monitoring/<model>.yaml``, or the defaults without a file.

    Raises:
        MonitorConfigError: the file is malformed or names another model.
    """
    path = monitor_config_path(home, model)
    if not path.is_file():
        return MonitorConfig(model=model)
    config = monitor_config_from_yaml(path.read_text(encoding="utf-8"), source=str(path))
    if config.model != model:
        raise MonitorConfigError(f"{path} is for model {config.model!r}, not {model!r}; rename the file or fix `model:`.")
    return config


def save_monitor_config(home: Path | str, config: MonitorConfig, *, comment: str = "") -> Path:
    """Write the settings atomically to ``<home>/monitoring/<model>.yaml`` and return the path."""
    path = monitor_config_path(home, config.model)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = "".join(f"# {line}\n" for line in comment.splitlines()) if comment else ""
    # Python mode keeps dates as YAML dates (JSON mode would turn them into strings, read back as times).
    data = _plain(config.model_dump(mode="python", exclude_none=True))
    write_atomic(path, (header + yaml.safe_dump(data, sort_keys=False)).encode("utf-8"))
    return path


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


# --- Windows ---------------------------------------------------------------------------------


def _utc(moment: datetime | pd.Timestamp) -> datetime:
    if isinstance(moment, pd.Timestamp):
        moment = moment.to_pydatetime()
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def window_bounds(moment: datetime, length: timedelta) -> tuple[datetime, datetime]:
    """The window of ``length`` holding ``moment``, aligned to the Unix epoch in UTC."""
    seconds = int(length.total_seconds())
    epoch = int(_utc(moment).timestamp())
    start = datetime.fromtimestamp(epoch - epoch % seconds, UTC)
    return start, start + length


def _stamp(moment: datetime) -> str:
    return _utc(moment).strftime(_STAMP)


def report_file(home: Path | str, model: str, window_start: datetime, suffix: str = SNAPSHOT_SUFFIX) -> Path:
    """``<home>/reports/monitoring/<model>/<window start>.json.gz`` (or ``.html``): the one path builder.

    Raises:
        InvalidNameError: a bad model name (the window stamp is made here, never given).
    """
    if suffix not in (SNAPSHOT_SUFFIX, HTML_SUFFIX):
        raise ValueError(f"unknown report suffix {suffix!r}")
    root = Path(home).expanduser().resolve() / "reports" / REPORTS_FOLDER
    folder = root / validate_name(model)
    stamp = _stamp(window_start)
    if not _STAMP_PATTERN.fullmatch(stamp):  # pragma: no cover - strftime output
        raise ValueError(stamp)
    return folder / f"{stamp}{suffix}"


# --- Reference data -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ReferenceData:
    """A sample of a version's training rows, with the version's scores on them.

    Attributes:
        frame: one column per feature plus :data:`PREDICTION_FEATURE`.
        total_rows: rows of the reference period before sampling.
        description: where it came from, in words ("apple_harvest, 2026-06-01 to 2026-07-10").
    """

    frame: pd.DataFrame
    total_rows: int
    description: str


_REFERENCE_CACHE: OrderedDict[tuple[Any, ...], ReferenceData] = OrderedDict()
_REFERENCE_LOCK = threading.Lock()
_REFERENCE_CACHE_SIZE = 4


def _as_start(value: datetime | date | str | None) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value) if ("T" in value or ":" in value) else date.fromisoformat(value)
    if isinstance(value, datetime):
        return _utc(value)
    return datetime(value.year, value.month, value.day, tzinfo=UTC)


def _as_end(value: datetime | date | str | None) -> datetime | None:
    """An exclusive end: a date includes its whole day, a time is included (plus one microsecond)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value) if ("T" in value or ":" in value) else date.fromisoformat(value)
    if isinstance(value, datetime):
        return _utc(value) + timedelta(microseconds=1)
    return datetime(value.year, value.month, value.day, tzinfo=UTC) + timedelta(days=1)


def _reference_period(config: MonitorConfig, spec: ModelSpec) -> tuple[datetime | None, datetime | None]:
    if config.reference.start is not None or config.reference.end is not None:
        return _as_start(config.reference.start), _as_end(config.reference.end)
    extra = dict(spec.card.get("extra") or {})
    window = extra.get("training_window") or {}
    if window.get("start") or window.get("end"):
        return _as_start(window.get("start")), _as_end(window.get("end"))
    split = extra.get("split") or {}
    if (split.get("train") or {}).get("start"):
        # The trainer refits its winner on train + validation: that is the training set.
        last = (split.get("validation") or {}).get("end") or split["train"].get("end")
        return _as_start(split["train"]["start"]), _as_end(last)
    created = spec.card.get("created_at")
    return None, (_as_start(created) if created else None)


def _quote(name: str) -> str:
    return '"' + str(name).replace('"', '""') + '"'


def _typed(frame: pd.DataFrame, spec: ModelSpec) -> pd.DataFrame:
    """Numbers as float64 and categories as text, the way the drift comparison sees them."""
    typed = pd.DataFrame(index=frame.index)
    for name in spec.features:
        values = frame[name] if name in frame.columns else pd.Series([None] * len(frame), index=frame.index)
        if spec.kinds.get(name) == NUMBER:
            typed[name] = pd.to_numeric(values, errors="coerce").astype("float64")
        else:
            typed[name] = values.astype(object).where(values.notna(), None).map(lambda v: v if v is None else str(v))
    return typed


def reference_data(warehouse: Warehouse, config: MonitorConfig, spec: ModelSpec, estimator: Any) -> ReferenceData:
    """The version's training rows, sampled in DuckDB, with store features and the version's scores.

    Cached per process (model, version, artifact, settings), so a run over many windows
    and the live demo read and score the reference once.

    Raises:
        MlopsError: no dataset is known, it lacks the model's columns, or the period is empty.
    """
    dataset = config.reference.dataset or spec.dataset
    if not dataset:
        raise MlopsError(
            f"{spec.label} does not say which dataset it was trained on, so its drift has nothing to be compared with. "
            f"Add `reference: {{dataset: NAME}}` to {MONITOR_FOLDER}/{spec.model}.yaml in the home."
        )
    start, end = _reference_period(config, spec)
    key = (str(warehouse.path), spec.model, spec.version, spec.sha256, dataset, start, end, config.target, config.sample_rows, config.seed)
    with _REFERENCE_LOCK:
        if key in _REFERENCE_CACHE:
            _REFERENCE_CACHE.move_to_end(key)
            return _REFERENCE_CACHE[key]
    entry = get_dataset(warehouse, dataset)
    target = config.target or spec.target or entry.target
    raw = [name for name in spec.features if name not in spec.store_features]
    with warehouse.read() as connection:
        types = table_columns(connection, TABLE_PREFIX + dataset)
        missing = [name for name in raw if name not in types]
        if missing:
            raise MlopsError(f"Dataset {dataset!r} lacks {', '.join(missing)}, which {spec.label} uses; name another reference dataset.")
        time_column = entry.time_column if entry.time_column in types else None
        conditions, params = ["TRUE"], []
        if time_column and start is not None:
            params.append(start)
            conditions.append(f"{quote_identifier(time_column)} >= ${len(params)}")
        if time_column and end is not None:
            params.append(end)
            conditions.append(f"{quote_identifier(time_column)} < ${len(params)}")
        if target and target in types:
            conditions.append(f"{quote_identifier(target)} IS NOT NULL")  # the training set is the labelled rows
        wanted = list(dict.fromkeys([*raw, *(key for key in spec.store_keys if key in types), *([time_column] if time_column else [])]))
        select = ", ".join(quote_identifier(name) for name in wanted)
        rows_sql = f"SELECT {select} FROM {dataset_table(dataset)} WHERE {' AND '.join(conditions)}"
        total = int(connection.execute(f"SELECT count(*) FROM ({rows_sql})", params).fetchone()[0])
        if total == 0:
            period = f"{start:%Y-%m-%d} to {end - timedelta(microseconds=1):%Y-%m-%d}" if start and end else "its training period"
            raise MlopsError(f"Dataset {dataset!r} has no rows for {period}, the reference of {spec.label}; set `reference:` in its monitoring settings.")
        sample = f" USING SAMPLE reservoir({int(config.sample_rows)} ROWS) REPEATABLE ({int(config.seed)})" if total > config.sample_rows else ""
        frame = connection.execute(f"SELECT * FROM ({rows_sql}){sample}", params).df()
    if spec.store_features:
        from mlops_app.features import training_set  # point in time, like training

        if not time_column:
            raise MlopsError(f"Dataset {dataset!r} has no time column, so {', '.join(spec.store_features)} cannot be looked up as of each row.")
        frame = training_set(warehouse, frame, list(spec.store_features), time_column=time_column)
    typed = _typed(frame, spec)
    typed[PREDICTION_FEATURE] = predict_scores(spec, estimator, typed)
    period = " to ".join(
        moment.strftime("%Y-%m-%d") for moment in (start, end - timedelta(microseconds=1) if end else None) if moment is not None
    )
    description = f"{dataset}{', ' + period if period else ''} ({total:,} rows{f', {len(typed):,} sampled' if len(typed) < total else ''})"
    result = ReferenceData(typed.sample(frac=1.0, random_state=config.seed).reset_index(drop=True), total, description)
    with _REFERENCE_LOCK:
        _REFERENCE_CACHE[key] = result
        while len(_REFERENCE_CACHE) > _REFERENCE_CACHE_SIZE:
            _REFERENCE_CACHE.popitem(last=False)
    return result


# --- Drift ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeatureDrift:
    """Drift of one column in one window.

    Attributes:
        role: ``feature`` or ``prediction``.
        column_type: ``num`` or ``cat``.
        method: Evidently's method (e.g. "Wasserstein distance (normed)"); None if not checked.
        drifted: Evidently's test status (FAIL means drifted); None when not checked.
        distribution: reference and current histogram shares (see :func:`feature_distributions`).
        note: why a column was not checked.
    """

    feature: str
    role: str
    column_type: str
    method: str | None
    score: float | None
    threshold: float | None
    drifted: bool | None
    reference_rows: int
    current_rows: int
    distribution: dict[str, Any] | None = None
    note: str | None = None


def evidently_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    numerical: Sequence[str],
    categorical: Sequence[str],
    *,
    prediction: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    name: str | None = None,
) -> tuple[list[FeatureDrift], Any]:
    """Evidently's data drift metrics (+ ValueDrift of the prediction) with tests; the flag is the test status.

    Columns with no values on either side are not given to Evidently (it refuses them);
    they come back with ``drifted=None`` and a note. Imports Evidently on first use.

    Returns:
        (one :class:`FeatureDrift` per column, in the order given, prediction last; the snapshot or None).
    """
    features = [*numerical, *categorical]
    columns = [*features, *([prediction] if prediction else [])]
    counts = {column: (int(reference[column].notna().sum()), int(current[column].notna().sum())) for column in columns}
    usable = [column for column in columns if min(counts[column]) > 0]
    results: dict[str, FeatureDrift] = {}
    snapshot = None
    if usable:
        from evidently import DataDefinition, Dataset, Report  # seconds and ~290 MB on first import (measured)
        from evidently.metrics import ValueDrift

        usable_features = [column for column in features if column in usable]
        numeric_columns = [column for column in usable if column in numerical or column == prediction]
        reference, current = _defused(reference, usable, numeric_columns), _defused(current, usable, numeric_columns)
        definition = DataDefinition(
            numerical_columns=numeric_columns, categorical_columns=[column for column in usable if column in categorical]
        )
        # The per-column metrics DataDriftPreset generates (a ValueDrift per column, default
        # method and threshold, with its test), without the preset's summary table and its
        # DriftedColumnsCount: both compute every column's drift a second time through
        # Evidently's legacy metrics (measured: 40% of a demo day's report, a third of a
        # 20-column one). The drifted share is counted here from the per-column tests instead.
        metrics: list[Any] = [ValueDrift(column=column) for column in usable_features]
        if prediction in usable:
            metrics.append(ValueDrift(column=prediction))
        report = Report(metrics, include_tests=True, metadata={key: str(value) for key, value in (metadata or {}).items()})
        snapshot = report.run(
            Dataset.from_pandas(current[usable].reset_index(drop=True), data_definition=definition),
            Dataset.from_pandas(reference[usable].reset_index(drop=True), data_definition=definition),
            name=name,
        )
        values = snapshot.dict()
        scored: dict[str, tuple[str | None, float | None, float | None]] = {}
        for metric in values["metrics"]:
            config = metric.get("config") or {}
            if str(config.get("type", "")).endswith("ValueDrift"):
                score = metric.get("value")
                scored[config["column"]] = (
                    config.get("method"), float(score) if isinstance(score, (int, float)) else None, config.get("threshold")
                )  # fmt: skip
        status: dict[str, bool | None] = {}
        for test in values["tests"]:
            params = (test.get("metric_config") or {}).get("params") or {}
            if str(params.get("type", "")).endswith("ValueDrift"):
                raw = test.get("status", "")
                outcome = str(getattr(raw, "value", raw)).upper()  # a TestStatus enum in dict(), a string in JSON
                status[params["column"]] = True if outcome == "FAIL" else False if outcome == "SUCCESS" else None
        for column in usable:
            method, score, threshold = scored.get(column, (None, None, None))
            results[column] = FeatureDrift(
                feature=column, role=PREDICTION if column == prediction else FEATURE,
                column_type="num" if column in numeric_columns else "cat", method=method, score=score,
                threshold=float(threshold) if threshold is not None else None, drifted=status.get(column),
                reference_rows=counts[column][0], current_rows=counts[column][1],
            )  # fmt: skip
    for column in columns:
        if column not in results:
            side = "the reference" if counts[column][0] == 0 else "this window"
            results[column] = FeatureDrift(
                feature=column, role=PREDICTION if column == prediction else FEATURE,
                column_type="num" if column in numerical or column == prediction else "cat", method=None, score=None,
                threshold=None, drifted=None, reference_rows=counts[column][0], current_rows=counts[column][1],
                note=f"not checked: {side} has no values",
            )  # fmt: skip
    return [results[column] for column in columns], snapshot


def _defused(frame: pd.DataFrame, columns: Sequence[str], numeric: Sequence[str]) -> pd.DataFrame:
    """The columns for Evidently, ``<`` in text values replaced by ``＜`` (see the module docstring)."""
    frame = frame[list(columns)].copy()
    for column in columns:
        if column not in numeric:
            frame[column] = frame[column].map(lambda value: value.replace("<", SAFE_LESS_THAN) if isinstance(value, str) else value)
    return frame


def _distributions(reference: pd.DataFrame, current: pd.DataFrame, numerical: Sequence[str], categorical: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Reference and current histogram shares per column, computed in DuckDB on the two samples.

    Numbers: 20 equal bins between the 0.5% and 99.5% quantiles of both samples together
    (values beyond fall in the outer bins). Categories: the 12 most common, then "(other)".
    """
    connection = duckdb.connect()
    result: dict[str, dict[str, Any]] = {}
    try:
        connection.register("_ref", reference)
        connection.register("_cur", current)
        for column in numerical:
            x = _quote(column)
            both = (
                f"SELECT 'r' AS side, {x} AS x FROM _ref WHERE {x} IS NOT NULL AND NOT isnan({x}) "
                f"UNION ALL SELECT 'c', {x} FROM _cur WHERE {x} IS NOT NULL AND NOT isnan({x})"
            )
            bounds = connection.execute(f"SELECT quantile_cont(x, [0.005, 0.995]) FROM ({both})").fetchone()[0]
            if bounds is None:
                continue
            low, high = float(bounds[0]), float(bounds[1])
            if not high > low:
                low, high = low - 0.5, high + 0.5
            width = (high - low) / HISTOGRAM_BINS
            rows = connection.execute(
                f"SELECT side, least(greatest(floor((x - $1) / $2), 0), {HISTOGRAM_BINS - 1})::INTEGER AS b, count(*) "
                f"FROM ({both}) GROUP BY ALL",
                [low, width],
            ).fetchall()
            shares = _shares(rows, range(HISTOGRAM_BINS))
            result[column] = {
                "kind": "numeric",
                "edges": [low + width * index for index in range(HISTOGRAM_BINS + 1)],
                "reference": shares["r"],
                "current": shares["c"],
            }
        for column in categorical:
            x = f"coalesce(CAST({_quote(column)} AS VARCHAR), '(missing)')"
            both = f"SELECT 'r' AS side, {x} AS x FROM _ref UNION ALL SELECT 'c', {x} FROM _cur"
            rows = connection.execute(f"SELECT side, x, count(*) FROM ({both}) GROUP BY ALL").fetchall()
            totals: dict[str, int] = {}
            for _, value, count in rows:
                totals[value] = totals.get(value, 0) + int(count)
            top = sorted(totals, key=lambda value: (-totals[value], value))[:TOP_CATEGORIES]
            kept = set(top)
            rows = [(side, value if value in kept else "(other)", count) for side, value, count in rows]
            categories = top + (["(other)"] if len(totals) > len(top) else [])
            shares = _shares(rows, categories)
            result[column] = {"kind": "categorical", "categories": categories, "reference": shares["r"], "current": shares["c"]}
    finally:
        connection.close()
    return result


def _shares(rows: Iterable[tuple[str, Any, int]], buckets: Iterable[Any]) -> dict[str, list[float]]:
    buckets = list(buckets)
    counts = {"r": dict.fromkeys(buckets, 0), "c": dict.fromkeys(buckets, 0)}
    for side, bucket, count in rows:
        counts[side][bucket] = counts[side].get(bucket, 0) + int(count)
    return {
        side: [round(values[b] / total, 6) if (total := sum(values.values())) else 0.0 for b in buckets]
        for side, values in counts.items()
    }


# --- Performance and KPIs ------------------------------------------------------------------------


def _performance(connection: duckdb.DuckDBPyConnection, spec: ModelSpec, start: datetime, end: datetime, seed: int) -> tuple[dict[str, float], int]:
    """Realized metrics of every prediction of the model in [start, end) that has a label; and how many had one."""
    params = [spec.model, start, end]
    joined = (
        "FROM (SELECT entity_id, prediction, score FROM predictions WHERE model = $1 AND event_time >= $2 AND event_time < $3) p "
        "JOIN (SELECT entity_id, label FROM labels WHERE model = $1) l USING (entity_id)"
    )
    metrics: dict[str, float] = {}
    if spec.task == CLASSIFICATION:
        positive = spec.positive_text
        n, positives, caught, false_alarms = connection.execute(
            f"SELECT count(*), count(*) FILTER (WHERE l.label = $4), count(*) FILTER (WHERE l.label = $4 AND p.prediction = $4), "
            f"count(*) FILTER (WHERE l.label <> $4 AND p.prediction = $4) {joined}",
            [*params, positive],
        ).fetchone()
        negatives = n - positives
        missed, correct_negatives = positives - caught, negatives - false_alarms
        if positives:
            metrics["recall_bad"] = caught / positives
        if negatives:
            metrics["false_discard_rate"] = false_alarms / negatives
        if caught + false_alarms:
            metrics["precision_bad"] = caught / (caught + false_alarms)
        if n:
            metrics["accuracy"] = (caught + correct_negatives) / n
        if 2 * caught + false_alarms + missed:
            metrics["f1"] = 2 * caught / (2 * caught + false_alarms + missed)
        if positives and negatives:
            from sklearn.metrics import roc_auc_score

            sample = f" USING SAMPLE reservoir({AUC_SAMPLE_ROWS} ROWS) REPEATABLE ({int(seed)})" if n > AUC_SAMPLE_ROWS else ""
            pairs = connection.execute(f"SELECT * FROM (SELECT l.label = $4 AS truth, p.score {joined}){sample}", [*params, positive]).df()
            if pairs["truth"].nunique() == 2:
                metrics["roc_auc"] = float(roc_auc_score(pairs["truth"].astype(bool), pairs["score"]))
    else:
        n, mae, mse, variance = connection.execute(
            f"SELECT count(v), avg(abs(score - v)), avg((score - v) * (score - v)), var_pop(v) "
            f"FROM (SELECT p.score, TRY_CAST(l.label AS DOUBLE) AS v {joined})",
            params,
        ).fetchone()
        if n:
            metrics["mae"], metrics["rmse"] = float(mae), math.sqrt(float(mse))
            if variance and variance > 0:
                metrics["r2"] = 1.0 - float(mse) / float(variance)
    return {key: float(value) for key, value in metrics.items()}, int(n or 0)


def _label_free(connection: duckdb.DuckDBPyConnection, spec: ModelSpec, start: datetime, end: datetime) -> tuple[int, float | None, float | None]:
    """Rows, average score and share decided positive of the model's predictions in [start, end)."""
    rows, mean_score, positive_rate = connection.execute(
        "SELECT count(*), avg(score), avg(CASE WHEN prediction = $4 THEN 1.0 ELSE 0.0 END) "
        "FROM predictions WHERE model = $1 AND event_time >= $2 AND event_time < $3",
        [spec.model, start, end, spec.positive_text if spec.task == CLASSIFICATION else None],
    ).fetchone()
    return int(rows), (float(mean_score) if mean_score is not None else None), (
        float(positive_rate) if positive_rate is not None and spec.task == CLASSIFICATION else None
    )


@dataclass(frozen=True)
class KpiValue:
    """One KPI of one window, judged over the KPI period ending with the window."""

    kpi: str
    kind: str  # "kpi" or "metric_drop"
    label: str
    period_start: datetime
    value: float | None
    target_min: float | None
    target_max: float | None
    met: bool | None  # None: not judged (too few labels)
    labelled_rows: int

    @property
    def target(self) -> dict[str, float]:
        return {key: value for key, value in (("min", self.target_min), ("max", self.target_max)) if value is not None}


def kpi_specs(config: MonitorConfig, spec: ModelSpec, registry: Registry | None = None) -> list[tuple[KpiSpec, str]]:
    """The KPIs judged for a version: declared ones, or the card's targets; plus a metric-drop check.

    Returns:
        ``(KpiSpec, kind)`` pairs, kind ``kpi`` or ``metric_drop``.
    """
    extra = dict(spec.card.get("extra") or {})
    declared: list[KpiSpec] = list(config.kpis or ())
    if config.kpis is None:
        targets = extra.get("targets") or {}
        if not targets and registry is not None:
            for version in reversed(registry.list_versions(spec.model)):
                targets = (version.card.get("extra") or {}).get("targets") or {}
                if targets:
                    break
        for metric, target in targets.items():
            if (metric in METRICS or metric in LABEL_FREE_KPIS) and isinstance(target, Mapping):
                declared.append(KpiSpec(metric=metric, min=target.get("min"), max=target.get("max")))
    specs = [(item, KPI) for item in declared]
    key = config.key_metric or extra.get("key_metric")
    holdout = (spec.card.get("metrics") or {}).get(key) if key else None
    if key in METRICS and holdout is not None and all(item.metric != key for item in declared) and config.metric_drop > 0:
        higher = METRICS[key].higher_is_better
        bound = holdout * (1 - config.metric_drop) if higher else holdout * (1 + config.metric_drop)
        unit = metric_info(key).unit
        specs.append(
            (
                KpiSpec(
                    metric=key, min=bound if higher else None, max=None if higher else bound,
                    label=f"{metric_info(key).label} (holdout {format_value(holdout, unit)})",
                ),
                METRIC_DROP,
            )
        )  # fmt: skip
    return specs


def _kpis(
    connection: duckdb.DuckDBPyConnection, config: MonitorConfig, spec: ModelSpec, specs: Sequence[tuple[KpiSpec, str]], end: datetime
) -> list[KpiValue]:
    if not specs:
        return []
    start = end - config.kpi_length
    metrics, labelled = _performance(connection, spec, start, end, config.seed)
    rows, mean_score, positive_rate = _label_free(connection, spec, start, end)
    free = {"positive_rate": positive_rate, "mean_score": mean_score}
    enough = labelled >= config.min_labelled_rows and labelled >= config.min_labelled_share * rows
    values = []
    for item, kind in specs:
        if item.metric in LABEL_FREE_KPIS:
            value, judged = free[item.metric], free[item.metric] is not None
        else:
            value, judged = metrics.get(item.metric), enough
        met = meets_target(value, item.target()) if judged and value is not None else None
        values.append(KpiValue(item.metric, kind, item.title(), start, value, item.min, item.max, met, labelled))
    return values


# --- Judging a window ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Judgement:
    status: Status
    summary: str
    breaches: list[Breach]


def _day_text(start: datetime, end: datetime) -> str:
    if end - start == timedelta(days=1):
        return f"on {start:%Y-%m-%d}"
    return f"from {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC"


def _value_text(value: float | None, bounds: Iterable[float | None], unit: str) -> str:
    """The value as shown, with more digits when the usual rounding would print it equal to its bound."""
    text = format_value(value, unit)
    if value is not None and unit == "%" and any(bound is not None and format_value(bound, unit) == text and bound != value for bound in bounds):
        return f"{value * 100:.2f}%"
    return text


def _kpi_sentence(value: KpiValue, end: datetime, period: timedelta) -> str:
    unit = metric_info(value.kpi).unit if value.kpi in METRICS else ""
    days = period.days
    span = f"over the {days} days to {end - timedelta(microseconds=1):%Y-%m-%d}" if days >= 2 else f"in the window ending {end:%Y-%m-%d %H:%M} UTC"
    shown = _value_text(value.value, (value.target_min, value.target_max), unit)
    return f"{value.label}: {shown} {span} ({describe_target(value.target, unit)})"


def _judge(
    model: str,
    config: MonitorConfig,
    start: datetime,
    end: datetime,
    rows: int,
    drift: Sequence[FeatureDrift],
    kpis: Sequence[KpiValue],
) -> _Judgement:
    """The window's status, its sentence and the thresholds it broke."""
    breaches: list[Breach] = []
    when = _day_text(start, end)
    if rows == 0:
        return _Judgement(Status.UNKNOWN, f"No predictions of {model} were logged {when}.", [])
    features = [item for item in drift if item.role == FEATURE and item.drifted is not None]
    drifted = [item.feature for item in features if item.drifted]
    prediction = next((item for item in drift if item.role == PREDICTION), None)
    statuses = []
    parts = []
    if features:
        share = len(drifted) / len(features)
        if share > config.drift_share_threshold:
            statuses.append(Status.WATCH)
            message = (
                f"{len(drifted)} of {len(features)} features moved away from the training data {when} "
                f"({', '.join(drifted)}); the limit is {config.drift_share_threshold:.0%} of features."
            )
            breaches.append(Breach(DRIFT, DRIFT, Status.WATCH, message, {"drift_share": share, "drifted": drifted}))
            parts.append(message)
        elif drifted:
            parts.append(f"{len(drifted)} of {len(features)} features drifted {when} ({', '.join(drifted)}), within the limit of {config.drift_share_threshold:.0%}.")
        else:
            parts.append(f"No feature drifted {when}.")
    elif rows < config.min_rows:
        parts.append(f"Only {rows:,} predictions {when}: too few to judge drift (at least {config.min_rows:,} needed).")
    if prediction is not None and prediction.drifted:
        statuses.append(Status.WATCH)
        parts.append("The model's scores moved away from those on its training data.")
    for value in kpis:
        if value.met is None:
            continue
        sentence = _kpi_sentence(value, end, config.kpi_length)
        if value.met:
            statuses.append(Status.HEALTHY)
            continue
        severity = Status.ACT if value.kind == KPI else Status.WATCH
        statuses.append(severity)
        kind = KPI if value.kind == KPI else METRIC_DROP
        message = f"{sentence}, from {value.labelled_rows:,} labelled predictions."
        breaches.append(Breach(f"{kind}:{value.kpi}", kind, severity, message, {"metric": value.kpi, "value": value.value, **value.target}))
        parts.insert(0, sentence + ".")
    if features or any(value.met is not None for value in kpis):
        statuses.append(Status.HEALTHY)
    status = worst(statuses) if statuses else Status.UNKNOWN
    return _Judgement(status, " ".join(parts) or f"{rows:,} predictions {when}; nothing judged yet.", breaches)


def _resolved_keys(connection: duckdb.DuckDBPyConnection, model: str, config: MonitorConfig, kpis: Sequence[KpiValue], drift_checked: bool) -> list[str]:
    """Keys whose last ``resolve_after_windows`` judged windows were all clear (stored results, this window included)."""
    n = config.resolve_after_windows
    keys = []
    if drift_checked:
        recent = connection.execute(
            "SELECT drift_share FROM monitor_windows WHERE model = $1 AND checked_features > 0 ORDER BY window_start DESC LIMIT $2",
            [model, n],
        ).fetchall()
        if len(recent) == n and all(share <= config.drift_share_threshold for (share,) in recent):
            keys.append(DRIFT)
    for value in kpis:
        recent = connection.execute(
            "SELECT met FROM model_kpis WHERE model = $1 AND kpi = $2 AND kind = $3 AND met IS NOT NULL ORDER BY window_start DESC LIMIT $4",
            [model, value.kpi, value.kind, n],
        ).fetchall()
        if len(recent) == n and all(met for (met,) in recent):
            keys.append(f"{KPI if value.kind == KPI else METRIC_DROP}:{value.kpi}")
    return keys


# --- Computing and committing a window ----------------------------------------------------------


@dataclass(frozen=True)
class _WindowOutcome:
    start: datetime
    end: datetime
    version: int | None
    rows: int
    sampled_rows: int
    reference_rows: int
    drift: list[FeatureDrift]
    performance: dict[str, float]
    labelled_rows: int
    kpis: list[KpiValue]
    mean_score: float | None
    positive_rate: float | None
    report_path: str | None
    seconds: float


def _window_sample(connection: duckdb.DuckDBPyConnection, spec: ModelSpec, start: datetime, end: datetime, rows: int, config: MonitorConfig) -> pd.DataFrame:
    """The window's logged features and scores of one version, a reservoir sample drawn inside DuckDB."""
    params: dict[str, Any] = {"model": spec.model, "version": spec.version, "start": start, "end": end}
    columns = []
    for index, name in enumerate(spec.features):
        params[f"path{index}"] = "$." + json.dumps(name)
        value = f"json_extract_string(p.features, $path{index})"
        columns.append(f"{'TRY_CAST(' + value + ' AS DOUBLE)' if spec.kinds.get(name) == NUMBER else value} AS c{index}")
    base = "SELECT rowid AS r FROM predictions WHERE model = $model AND version = $version AND event_time >= $start AND event_time < $end"
    # Sampling row ids first keeps the wide JSON column out of the scan of the whole window.
    ids = f"SELECT r FROM ({base}) USING SAMPLE reservoir({int(config.sample_rows)} ROWS) REPEATABLE ({int(config.seed)})" if rows > config.sample_rows else base
    frame = connection.execute(
        f"SELECT {', '.join(columns)}, p.score AS c_score FROM predictions p JOIN ({ids}) s ON p.rowid = s.r", params
    ).df()
    frame.columns = [*spec.features, PREDICTION_FEATURE]
    typed = _typed(frame, spec)
    typed[PREDICTION_FEATURE] = frame[PREDICTION_FEATURE].astype("float64")
    return typed


def _save_snapshot(home: Path, model: str, start: datetime, snapshot: Any) -> str | None:
    """Save the Evidently snapshot (gzip JSON, atomic); return its path relative to the home."""
    if snapshot is None:
        return None
    path = report_file(home, model, start)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, gzip.compress(snapshot.dumps().encode("utf-8"), compresslevel=6))
    return str(path.relative_to(Path(home).expanduser().resolve()))


class _Context:
    """What a run needs per model: settings, versions (cached), KPI specs."""

    def __init__(self, settings: Settings, warehouse: Warehouse, registry: Registry, config: MonitorConfig) -> None:
        self.settings, self.warehouse, self.registry, self.config = settings, warehouse, registry, config
        self._versions: dict[int, tuple[ModelSpec, Any]] = {}

    def version(self, number: int) -> tuple[ModelSpec, Any]:
        if number not in self._versions:
            self._versions[number] = load_version(self.warehouse, self.registry, f"{self.config.model}/{number}")
        return self._versions[number]

    def kpi_specs(self, spec: ModelSpec) -> list[tuple[KpiSpec, str]]:
        return kpi_specs(self.config, spec, self.registry)


def _compute_window(ctx: _Context, start: datetime, end: datetime) -> _WindowOutcome:
    """Everything about one window, read-only except the saved snapshot file.

    The warehouse is read in one unit of work (counts, the sample, performance, KPIs) and
    released before Evidently runs, so the dashboard is not kept waiting for a report.
    """
    started = time.monotonic()
    config, warehouse = ctx.config, ctx.warehouse
    with warehouse.read() as connection:
        counts = connection.execute(
            "SELECT version, count(*) FROM predictions WHERE model = $1 AND event_time >= $2 AND event_time < $3 "
            "GROUP BY version ORDER BY count(*) DESC, version DESC",
            [config.model, start, end],
        ).fetchall()
        rows = sum(count for _, count in counts)
        if rows == 0:
            return _WindowOutcome(start, end, None, 0, 0, 0, [], {}, 0, [], None, None, None, time.monotonic() - started)
        # Versions can change inside a window (a promotion): drift is judged for the version that
        # scored most of it, against that version's own training data.
        version = int(counts[0][0])
        spec, estimator = ctx.version(version)
        judge_drift = counts[0][1] >= config.min_rows
        current = _window_sample(connection, spec, start, end, int(counts[0][1]), config) if judge_drift else None
        performance, labelled = _performance(connection, spec, start, end, config.seed)
        _, mean_score, positive_rate = _label_free(connection, spec, start, end)
        kpis = _kpis(connection, config, spec, ctx.kpi_specs(spec), end)
    drift: list[FeatureDrift] = []
    sampled = reference_rows = 0
    report_path = None
    if current is not None:
        reference = reference_data(warehouse, config, spec, estimator)
        sampled = len(current)
        reference_rows = min(len(reference.frame), max(REFERENCE_FACTOR * sampled, MIN_REFERENCE_ROWS))
        reference_sample = reference.frame.iloc[:reference_rows]
        drift, snapshot = evidently_drift(
            reference_sample, current, spec.numeric, spec.categorical, prediction=PREDICTION_FEATURE,
            metadata={"model": spec.model, "version": spec.version, "window_start": start.isoformat(), "window_end": end.isoformat(),
                      "reference": reference.description, "window_rows": rows, "sampled_rows": sampled},
            name=f"{spec.model} v{spec.version} {_stamp(start)}",
        )  # fmt: skip
        shapes = _distributions(reference_sample, current, [*spec.numeric, PREDICTION_FEATURE], spec.categorical)
        drift = [FeatureDrift(**{**item.__dict__, "distribution": shapes.get(item.feature)}) for item in drift]
        report_path = _save_snapshot(ctx.settings.home_path, spec.model, start, snapshot)
    return _WindowOutcome(
        start, end, version, rows, sampled, reference_rows, drift, performance, labelled, kpis, mean_score, positive_rate,
        report_path, time.monotonic() - started,
    )  # fmt: skip


def _write_performance(connection: duckdb.DuckDBPyConnection, model: str, version: int | None, start: datetime, end: datetime,
                       performance: Mapping[str, float], labelled: int, kpis: Sequence[KpiValue], now: datetime) -> None:  # fmt: skip
    connection.execute("DELETE FROM performance_windows WHERE model = $1 AND window_start = $2", [model, start])
    for metric, value in performance.items():
        connection.execute(
            "INSERT INTO performance_windows (model, version, window_start, window_end, metric, value, labelled_rows, computed_at) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            [model, version, start, end, metric, value, labelled, now],
        )
    connection.execute("DELETE FROM model_kpis WHERE model = $1 AND window_start = $2", [model, start])
    for item in kpis:
        connection.execute(
            "INSERT INTO model_kpis (model, window_start, window_end, kpi, kind, label, period_start, value, target_min, target_max, "
            "met, labelled_rows, computed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            [model, start, end, item.kpi, item.kind, item.label, item.period_start, item.value, item.target_min, item.target_max,
             item.met, item.labelled_rows, now],
        )  # fmt: skip


def _commit_window(ctx: _Context, outcome: _WindowOutcome, now: datetime, progress: ProgressCallback) -> list[str] | None:
    """Write one window's results, its completion row and its alerts in ONE transaction.

    Returns:
        The ids of alerts opened, or None when the window was already complete.
    """
    config = ctx.config
    model = config.model
    judgement = _judge(model, config, outcome.start, outcome.end, outcome.rows, outcome.drift, outcome.kpis)
    features = [item for item in outcome.drift if item.role == FEATURE and item.drifted is not None]
    drifted = sum(1 for item in features if item.drifted)
    prediction = next((item for item in outcome.drift if item.role == PREDICTION), None)
    drift_rows = pd.DataFrame(
        [
            {
                "model": model, "version": outcome.version, "window_start": outcome.start, "window_end": outcome.end,
                "feature": item.feature, "method": item.method, "score": item.score, "threshold": item.threshold,
                "drifted": item.drifted, "computed_at": now, "role": item.role, "column_type": item.column_type,
                "reference_rows": item.reference_rows, "current_rows": item.current_rows,
                "distribution": json.dumps(item.distribution) if item.distribution else None,
            }
            for item in outcome.drift
        ]
    )  # fmt: skip
    try:
        with ctx.warehouse.transaction() as connection:
            done = connection.execute(
                "SELECT 1 FROM monitor_windows WHERE model = $1 AND window_start = $2", [model, outcome.start]
            ).fetchone()
            if done is not None:
                return None
            if len(drift_rows):
                with registered(connection, _DRIFT_VIEW, drift_rows):
                    connection.execute(
                        f"INSERT INTO drift_results (model, version, window_start, window_end, feature, method, score, threshold, "
                        f"drifted, computed_at, role, column_type, reference_rows, current_rows, distribution) "
                        f"SELECT model, version, window_start, window_end, feature, method, score, threshold, drifted, computed_at, "
                        f"role, column_type, reference_rows, current_rows, CAST(distribution AS JSON) FROM {_DRIFT_VIEW}"
                    )
            _write_performance(connection, model, outcome.version, outcome.start, outcome.end, outcome.performance,
                               outcome.labelled_rows, outcome.kpis, now)  # fmt: skip
            progress("window_writing", {"model": model, "window_start": outcome.start})
            # The completion mark: its primary key makes a window complete exactly once.
            connection.execute(
                """
                INSERT INTO monitor_windows (model, window_start, window_end, version, status, summary, rows, sampled_rows,
                    reference_rows, labelled_rows, drift_share, drifted_features, checked_features, prediction_drift_score,
                    prediction_drifted, mean_score, positive_rate, report_path, computed_at, performance_computed_at, seconds)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $19, $20)
                """,
                [
                    model, outcome.start, outcome.end, outcome.version, judgement.status.name.lower(), judgement.summary,
                    outcome.rows, outcome.sampled_rows, outcome.reference_rows, outcome.labelled_rows,
                    drifted / len(features) if features else None, drifted, len(features),
                    prediction.score if prediction else None, prediction.drifted if prediction else None,
                    outcome.mean_score, outcome.positive_rate, outcome.report_path, now, round(outcome.seconds, 3),
                ],
            )  # fmt: skip
            resolved = _resolved_keys(connection, model, config, outcome.kpis, drift_checked=bool(features))
            return alerts.sync_alerts(
                connection, model=model, window_start=outcome.start, window_end=outcome.end, breaches=judgement.breaches,
                resolved_keys=resolved, now=now, link=alerts.monitoring_link(ctx.settings, model),
                retrain_kinds=config.retrain.on_alerts if config.retrain.enabled else (),
            )  # fmt: skip
    except duckdb.ConstraintException:
        # Another run completed the same window between our check and our insert; its rows stand.
        return None


def _refresh_windows(ctx: _Context, due: Sequence[tuple[datetime, datetime, int | None]], now: datetime) -> list[str]:
    """Recompute completed windows' performance and KPIs with the labels that arrived since; judge KPI alerts again.

    Cheap SQL only (no Evidently): all windows are read in one unit of work and written in one
    transaction, oldest first, so alerts see the windows in time order.
    """
    config, model = ctx.config, ctx.config.model
    results = []
    with ctx.warehouse.read() as connection:
        for start, end, version in due:
            if version is None:
                continue
            spec, _ = ctx.version(int(version))
            performance, labelled = _performance(connection, spec, start, end, config.seed)
            kpis = _kpis(connection, config, spec, ctx.kpi_specs(spec), end)
            stored = connection.execute(
                "SELECT feature, role, method, score, threshold, drifted, reference_rows, current_rows, column_type FROM drift_results "
                "WHERE model = $1 AND window_start = $2",
                [model, start],
            ).fetchall()
            rows = connection.execute("SELECT rows FROM monitor_windows WHERE model = $1 AND window_start = $2", [model, start]).fetchone()
            drift = [
                FeatureDrift(feature=f, role=r, column_type=t or "num", method=m, score=s, threshold=th, drifted=d,
                             reference_rows=rr or 0, current_rows=cr or 0)
                for f, r, m, s, th, d, rr, cr, t in stored
            ]  # fmt: skip
            judgement = _judge(model, config, start, end, int(rows[0]) if rows else 0, drift, kpis)
            results.append((start, end, version, performance, labelled, kpis, judgement))
    opened: list[str] = []
    with ctx.warehouse.transaction() as connection:
        for start, end, version, performance, labelled, kpis, judgement in results:
            _write_performance(connection, model, version, start, end, performance, labelled, kpis, now)
            connection.execute(
                "UPDATE monitor_windows SET labelled_rows = $1, status = $2, summary = $3, performance_computed_at = $4 "
                "WHERE model = $5 AND window_start = $6",
                [labelled, judgement.status.name.lower(), judgement.summary, now, model, start],
            )
            # Drift was judged when the window completed; only the label-based breaches are new.
            breaches = [breach for breach in judgement.breaches if breach.kind != DRIFT]
            resolved = _resolved_keys(connection, model, config, kpis, drift_checked=False)
            opened += alerts.sync_alerts(
                connection, model=model, window_start=start, window_end=end, breaches=breaches, resolved_keys=resolved, now=now,
                link=alerts.monitoring_link(ctx.settings, model), retrain_kinds=config.retrain.on_alerts if config.retrain.enabled else (),
            )  # fmt: skip
    return opened


def _windows_with_new_labels(warehouse: Warehouse, config: MonitorConfig) -> list[tuple[datetime, datetime, int | None]]:
    """Completed windows whose performance or KPI period holds labels recorded after they were last computed."""
    model = config.model
    with warehouse.read() as connection:
        windows = connection.execute(
            "SELECT window_start, window_end, version, performance_computed_at FROM monitor_windows WHERE model = $1 AND rows > 0 "
            "ORDER BY window_start",
            [model],
        ).fetchall()
        if not windows:
            return []
        oldest = min(_utc(row[3]) for row in windows if row[3] is not None)
        seconds = int(config.window_length.total_seconds())
        # New labels grouped by the window their prediction falls in (epoch-aligned, like windows).
        buckets = connection.execute(
            "SELECT to_timestamp(floor(epoch(p.event_time) / $3) * $3) AS bucket, max(l.recorded_at) "
            "FROM labels l JOIN predictions p ON p.model = l.model AND p.entity_id = l.entity_id "
            "WHERE l.model = $1 AND l.recorded_at > $2 GROUP BY bucket",
            [model, oldest, seconds],
        ).fetchall()
    if not buckets:
        return []
    period = config.kpi_length
    changed = [(_utc(bucket), _utc(recorded)) for bucket, recorded in buckets]
    due = []
    for start, end, version, computed in windows:
        start, end = _utc(start), _utc(end)
        computed = _utc(computed) if computed is not None else None
        # A label matters to a window when it falls in the window itself or in its KPI period.
        reach_start = min(start, end - period)
        if any(reach_start <= bucket < end and (computed is None or recorded > computed) for bucket, recorded in changed):
            due.append((start, end, version))
    return due


def _pending_windows(warehouse: Warehouse, config: MonitorConfig, until: datetime) -> list[tuple[datetime, datetime]]:
    """Closed windows (end <= until) from the model's first prediction on that have no result yet."""
    with warehouse.read() as connection:
        first = connection.execute("SELECT min(event_time) FROM predictions WHERE model = $1", [config.model]).fetchone()[0]
        if first is None:
            return []
        done = {_utc(row[0]) for row in connection.execute("SELECT window_start FROM monitor_windows WHERE model = $1", [config.model]).fetchall()}
    length = config.window_length
    start, _ = window_bounds(_utc(first), length)
    pending = []
    while start + length <= until and len(pending) < MAX_WINDOWS_LISTED:
        if start not in done:
            pending.append((start, start + length))
        start += length
    return pending


# --- The job -------------------------------------------------------------------------------------


@dataclass
class ModelRun:
    """What one run did for one model."""

    model: str
    computed: list[datetime] = field(default_factory=list)
    refreshed: list[datetime] = field(default_factory=list)
    opened_alerts: list[str] = field(default_factory=list)
    notified: int = 0
    retraining: list[str] = field(default_factory=list)
    pending: int = 0
    skipped: str | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def message(self) -> str:
        if self.skipped:
            return f"{self.model}: skipped: {self.skipped}"
        parts = [f"{len(self.computed)} window(s) computed"]
        if self.refreshed:
            parts.append(f"{len(self.refreshed)} updated with new labels")
        if self.pending:
            parts.append(f"{self.pending} still to do (run again)")
        if self.opened_alerts:
            parts.append(f"{len(self.opened_alerts)} alert(s) opened")
        text = f"{self.model}: " + ", ".join(parts) + "."
        for line in [*self.retraining, *self.errors]:
            text += f"\n  {line}"
        return text


@dataclass
class MonitorReport:
    """What :func:`run_monitor` did, per model."""

    runs: list[ModelRun]
    seconds: float
    webhook_errors: tuple[str, ...] = ()

    @property
    def message(self) -> str:
        if not self.runs:
            return "No model has logged predictions yet; score a batch first (mlops-app score MODEL FILE)."
        return "\n".join(run.message for run in self.runs)

    @property
    def ok(self) -> bool:
        return not any(run.errors for run in self.runs)


def _retrain_plan(ctx: _Context, spec: ModelSpec, now: datetime) -> RetrainPlan:
    """How to retrain after an alert at ``now``: on labels known by then (a replay must not see its future),
    from ``since`` / the ``recent`` stretch when set."""
    config, retrain = ctx.config, ctx.config.retrain
    dataset = config.reference.dataset or spec.dataset
    if not dataset:
        raise MlopsError(f"{spec.label} names no dataset to retrain on; set `reference: {{dataset: NAME}}` in its monitoring settings.")
    starts = [_as_start(retrain.since)] if retrain.since else []
    if retrain.recent:
        starts.append(now - parse_window(retrain.recent))
    extra = dict(spec.card.get("extra") or {})
    metric = retrain.metric or (extra.get("selection") or {}).get("metric")
    return RetrainPlan(
        model=spec.model,
        dataset=dataset,
        target=config.target or spec.target,
        features=tuple(retrain.features) if retrain.features else spec.features,
        experiment=retrain.experiment or f"{spec.model}-retrain",
        trials=retrain.trials,
        max_rows=retrain.max_rows,
        metric=metric,
        since=max(starts, default=None),
        until=now,
        seed=config.seed,
    )


def _lease(home: Path, model: str) -> filelock.BaseFileLock:
    folder = monitor_folder(home) / LOCKS_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    return filelock.FileLock(str(folder / f"{validate_name(model)}.lock"))


def _models_with_predictions(warehouse: Warehouse) -> list[str]:
    return [row[0] for row in warehouse.query("SELECT DISTINCT model FROM predictions ORDER BY model").itertuples(index=False)]


def run_monitor(
    settings: Settings,
    model: str | None = None,
    *,
    until: datetime | None = None,
    now: datetime | None = None,
    max_windows: int | None = None,
    retrain: bool = True,
    notify: bool = True,
    progress: ProgressCallback | None = None,
    warehouse: Warehouse | None = None,
    registry: Registry | None = None,
) -> MonitorReport:
    """Compute every closed window without a result, refresh windows with new labels, act on alerts.

    Safe to run from cron every few minutes: a model another run is working on is skipped
    (its lease is held), a window is completed exactly once, and a run killed midway leaves
    the missing windows to the next run. One model's failure (bad settings, an Evidently
    error) is reported and the other models go on.

    Args:
        model: one model; default every model with logged predictions.
        until: windows ending at or before this are closed (default: now).
        now: the time recorded as computed/opened (default: the clock; replays set it).
        max_windows: compute at most this many new windows per model in this run.
        retrain: run retraining that alerts requested.
        notify: hand new alerts to the webhook outbox and retry waiting messages.
        progress: called as ``progress(event, details)``; events ``window_started``,
            ``window_writing`` (inside the window's transaction: keep it quick),
            ``window_done``, ``refreshed``, ``retraining``, ``skipped``, ``error``.

    Returns:
        A :class:`MonitorReport`.
    """
    started = time.monotonic()
    report = progress or (lambda event, details: None)
    warehouse = warehouse or Warehouse.from_settings(settings)
    registry = registry or Registry(settings.registry_path, lock_timeout=settings.lock_timeout_seconds)
    clock = _utc(now) if now is not None else None
    until = _utc(until) if until is not None else (clock or datetime.now(UTC))
    names = [validate_name(model)] if model is not None else _models_with_predictions(warehouse)
    runs: list[ModelRun] = []
    for name in names:
        run = ModelRun(name)
        runs.append(run)
        lease = _lease(settings.home_path, name)
        try:
            lease.acquire(timeout=0)
        except filelock.Timeout:
            run.skipped = "another monitor run is working on this model"
            report("skipped", {"model": name, "reason": run.skipped})
            continue
        try:
            _monitor_model(settings, warehouse, registry, run, until=until, clock=clock, max_windows=max_windows,
                           retrain=retrain, notify=notify, report=report)  # fmt: skip
        except MlopsError as error:
            run.errors.append(str(error))
            report("error", {"model": name, "error": str(error)})
        finally:
            lease.release()
    errors: tuple[str, ...] = ()
    if notify and settings.webhook_url:
        from mlops_app.webhooks import deliver_pending

        errors = deliver_pending(settings).errors
    return MonitorReport(runs, time.monotonic() - started, errors)


def _monitor_model(settings: Settings, warehouse: Warehouse, registry: Registry, run: ModelRun, *, until: datetime,
                   clock: datetime | None, max_windows: int | None, retrain: bool, notify: bool, report: ProgressCallback) -> None:  # fmt: skip
    config = load_monitor_config(settings.home_path, run.model)
    registry.get_model(run.model)  # NotFoundError names the registered models
    if warehouse.query_one("SELECT 1 FROM predictions WHERE model = $1 LIMIT 1", [run.model]) is None:
        run.skipped = f"no predictions logged yet; score a batch first (mlops-app score {run.model} FILE)"
        return
    ctx = _Context(settings, warehouse, registry, config)
    pending = _pending_windows(warehouse, config, until)
    if max_windows is not None:
        run.pending = max(len(pending) - max_windows, 0)
        pending = pending[:max_windows]
    for start, end in pending:
        report("window_started", {"model": run.model, "window_start": start, "window_end": end})
        try:
            outcome = _compute_window(ctx, start, end)
        except MlopsError:
            raise
        except Exception as error:  # an Evidently or model failure leaves this window for the next run
            LOG.exception("Monitoring %s window %s failed", run.model, start)
            run.errors.append(f"window {start:%Y-%m-%d %H:%M} failed: {type(error).__name__}: {error}; it is tried again next run")
            report("error", {"model": run.model, "window_start": start, "error": str(error)})
            continue
        opened = _commit_window(ctx, outcome, clock or datetime.now(UTC), report)
        if opened is not None:
            run.computed.append(start)
            run.opened_alerts.extend(opened)
        report("window_done", {"model": run.model, "window_start": start, "opened_alerts": opened or []})
    due = _windows_with_new_labels(warehouse, config)
    if due:
        run.opened_alerts.extend(_refresh_windows(ctx, due, clock or datetime.now(UTC)))
        run.refreshed.extend(start for start, _, _ in due)
        report("refreshed", {"model": run.model, "windows": len(due)})
    if notify:
        run.notified = alerts.notify_pending_alerts(settings, warehouse, run.model)
    if retrain and config.retrain.enabled:
        requested = warehouse.query_one(
            "SELECT count(*) FROM alerts WHERE model = $1 AND (retrain_status IN ('requested', 'running') "
            "OR (retrain_status = 'skipped' AND status IN ('open', 'acknowledged')))",
            [run.model],
        )
        if requested and requested[0]:
            spec, _ = load_version(warehouse, registry, run.model)
            run.retraining.extend(
                alerts.process_retraining(
                    settings, warehouse, registry, _retrain_plan(ctx, spec, clock or datetime.now(UTC)),
                    progress=lambda message: report("retraining", {"model": run.model, "message": message}),
                )
            )  # fmt: skip
            if notify:
                run.notified += alerts.notify_pending_alerts(settings, warehouse, run.model)


# --- Reads for the monitoring page ------------------------------------------------------------------


@dataclass(frozen=True)
class KpiTile:
    """One KPI tile: the latest judged value against its target.

    Attributes:
        delta: value minus the target bound it is held to (positive is better for a
            ``min`` target, negative for a ``max``); None without a value.
        target_min, target_max: the bounds it is held to (a minimum to reach, a limit not to
            pass); the delta is taken against ``target_min`` when both are set.
        met: None when not judged yet (too few labels).
        help: what the KPI means, for a tooltip.
    """

    kpi: str
    kind: str
    label: str
    value: float | None
    value_text: str
    target_text: str
    met: bool | None
    delta: float | None
    unit: str
    labelled_rows: int
    window_end: datetime | None
    help: str
    target_min: float | None = None
    target_max: float | None = None

    @property
    def status(self) -> Status:
        if self.met is None:
            return Status.UNKNOWN
        if self.met:
            return Status.HEALTHY
        return Status.ACT if self.kind == KPI else Status.WATCH


def monitored_models(warehouse: Warehouse) -> pd.DataFrame:
    """Models with monitoring results: latest window, its status and summary, open alerts.

    Returns:
        Columns model, window_start, window_end, status, summary, windows, open_alerts.
    """
    return warehouse.query(
        """
        SELECT w.model, w.window_start, w.window_end, w.status, w.summary, c.windows,
               (SELECT count(*) FROM alerts a WHERE a.model = w.model AND a.status IN ('open', 'acknowledged')) AS open_alerts
        FROM monitor_windows w
        JOIN (SELECT model, max(window_start) AS latest, count(*) AS windows FROM monitor_windows GROUP BY model) c
          ON c.model = w.model AND c.latest = w.window_start
        ORDER BY w.model
        """
    )


def _latest_kpis(connection: duckdb.DuckDBPyConnection, model: str) -> list[tuple[Any, ...]]:
    """Per KPI, the most recent judged row (else the most recent row)."""
    return connection.execute(
        """
        SELECT kpi, kind, label, value, target_min, target_max, met, labelled_rows, window_end FROM (
            SELECT *, row_number() OVER (PARTITION BY kpi, kind ORDER BY met IS NULL, window_start DESC) AS n
            FROM model_kpis WHERE model = $1)
        WHERE n = 1 ORDER BY kind, kpi
        """,
        [model],
    ).fetchall()


def kpi_tiles(warehouse: Warehouse, model: str) -> list[KpiTile]:
    """The model's KPIs, each at its latest judged value, with target, status and a tooltip text."""
    validate_name(model)
    with warehouse.read() as connection:
        rows = _latest_kpis(connection, model)
    tiles = []
    for kpi, kind, label, value, low, high, met, labelled, end in rows:
        unit = metric_info(kpi).unit if kpi in METRICS else ""
        target = {key: bound for key, bound in (("min", low), ("max", high)) if bound is not None}
        delta = None
        if value is not None:
            delta = value - low if low is not None else (value - high if high is not None else None)
        info_help = METRICS[kpi].help if kpi in METRICS else "Computed from every prediction, no labels needed."
        judged = "" if met is not None else f" Not judged yet: {int(labelled or 0):,} labelled predictions so far."
        tiles.append(
            KpiTile(
                kpi=kpi, kind=kind, label=label, value=value, value_text=_value_text(value, (low, high), unit),
                target_text=describe_target(target, unit), met=met, delta=delta, unit=unit, labelled_rows=int(labelled or 0),
                window_end=_utc(end) if end is not None else None, help=info_help + judged, target_min=low, target_max=high,
            )
        )  # fmt: skip
    return tiles


def model_status(warehouse: Warehouse, model: str) -> tuple[Status, str]:
    """The model's status word and one plain sentence, from stored results.

    The status is the worst of the latest window, the latest judged KPIs and the alerts
    still open or acknowledged (an unresolved alert keeps its severity).
    """
    validate_name(model)
    with warehouse.read() as connection:
        latest = connection.execute(
            "SELECT window_start, window_end, status, summary FROM monitor_windows WHERE model = $1 AND rows > 0 "
            "ORDER BY window_start DESC LIMIT 1",
            [model],
        ).fetchone()
        kpis = _latest_kpis(connection, model)
        active = connection.execute(
            "SELECT severity, count(*) FROM alerts WHERE model = $1 AND status IN ('open', 'acknowledged') GROUP BY severity", [model]
        ).fetchall()
    if latest is None:
        return Status.UNKNOWN, (
            f"Not checked yet: no monitoring window of {model} has been computed. Score a batch "
            f"(`mlops-app score {model} FILE`), then run `mlops-app monitor {model}`."
        )
    statuses = [Status[latest[2].upper()]]
    missed, kept = [], []
    for kpi, kind, label, value, low, high, met, _, end in kpis:
        if met is None:
            continue
        unit = metric_info(kpi).unit if kpi in METRICS else ""
        target = {key: bound for key, bound in (("min", low), ("max", high)) if bound is not None}
        name = label[:1].lower() + label[1:] if label[:1].isupper() and not label[1:2].isupper() else label
        text = f"{name} {_value_text(value, (low, high), unit)} ({describe_target(target, unit)})"
        (kept if met else missed).append(text)
        statuses.append(Status.HEALTHY if met else Status.ACT if kind == KPI else Status.WATCH)
    open_count = sum(count for _, count in active)
    for severity, _ in active:
        statuses.append(Status.ACT if severity == "act" else Status.WATCH)
    status = worst(statuses)
    sentence = f"{status.word}: "
    if missed:
        sentence += f"{model} is off target: " + "; ".join(missed) + "."
        if kept:
            sentence += " On target: " + "; ".join(kept) + "."
    elif kept:
        sentence += f"{model} is on target: " + "; ".join(kept) + "."
    else:
        sentence += f"{model}: KPIs not judged yet (labels arrive days later)."
    sentence += f" Latest window ({_utc(latest[0]):%Y-%m-%d}): {latest[3]}"
    if open_count:
        sentence += f" {open_count} alert{'s are' if open_count > 1 else ' is'} open."
    return status, sentence


def window_history(warehouse: Warehouse, model: str, *, limit: int = 400) -> pd.DataFrame:
    """One row per window, oldest first: status, rows, drift share, performance, KPIs, alert markers.

    Returns:
        Columns window_start, window_end, version, status, summary, rows, labelled_rows,
        drift_share, drifted_features, checked_features, prediction_drift_score,
        prediction_drifted, mean_score, positive_rate, one ``kpi.<name>`` and one
        ``metric.<name>`` column per KPI and metric, and ``alerts_opened`` (alerts whose
        breach started in the window).
    """
    validate_name(model)
    with warehouse.read() as connection:
        windows = connection.execute(
            """
            SELECT * FROM (
                SELECT window_start, window_end, version, status, summary, rows, labelled_rows, drift_share, drifted_features,
                       checked_features, prediction_drift_score, prediction_drifted, mean_score, positive_rate
                FROM monitor_windows WHERE model = $1 ORDER BY window_start DESC LIMIT $2)
            ORDER BY window_start
            """,
            [model, int(limit)],
        ).df()
        if windows.empty:
            return windows
        first = windows["window_start"].min()
        kpis = connection.execute(
            "SELECT window_start, kpi, value FROM model_kpis WHERE model = $1 AND window_start >= $2", [model, first]
        ).df()
        metrics = connection.execute(
            "SELECT window_start, metric, value FROM performance_windows WHERE model = $1 AND window_start >= $2", [model, first]
        ).df()
        opened = connection.execute(
            "SELECT window_start, count(*) AS alerts_opened FROM alerts WHERE model = $1 AND window_start >= $2 GROUP BY window_start",
            [model, first],
        ).df()
    for frame, key, prefix in ((kpis, "kpi", "kpi."), (metrics, "metric", "metric.")):
        if not frame.empty:
            wide = frame.pivot_table(index="window_start", columns=key, values="value", aggfunc="last")
            wide.columns = [prefix + str(column) for column in wide.columns]
            windows = windows.merge(wide, left_on="window_start", right_index=True, how="left")
    windows = windows.merge(opened, on="window_start", how="left")
    windows["alerts_opened"] = windows["alerts_opened"].fillna(0).astype(int)
    return windows.reset_index(drop=True)


def _window_start_or_latest(connection: duckdb.DuckDBPyConnection, model: str, window_start: datetime | None) -> datetime | None:
    if window_start is not None:
        return _utc(window_start)
    row = connection.execute(
        "SELECT max(window_start) FROM drift_results WHERE model = $1", [model]
    ).fetchone()
    return _utc(row[0]) if row and row[0] is not None else None


def feature_drift_table(warehouse: Warehouse, model: str, window_start: datetime | None = None) -> pd.DataFrame:
    """Per column of a window (the latest with drift results by default): method, score, threshold, drifted.

    Returns:
        Columns feature, role, column_type, method, score, threshold, drifted,
        reference_rows, current_rows, window_start, window_end; drifted first, the
        prediction last.
    """
    validate_name(model)
    with warehouse.read() as connection:
        start = _window_start_or_latest(connection, model, window_start)
        return connection.execute(
            """
            SELECT feature, role, column_type, method, score, threshold, drifted, reference_rows, current_rows, window_start, window_end
            FROM drift_results WHERE model = $1 AND window_start = $2
            ORDER BY role = 'prediction', drifted IS NOT TRUE, score DESC NULLS LAST, feature
            """,
            [model, start],
        ).df()


def feature_distributions(warehouse: Warehouse, model: str, feature: str, window_start: datetime | None = None) -> pd.DataFrame:
    """Reference vs current shares of one column in a window (histogram bins computed in DuckDB when monitored).

    Returns:
        Columns bucket (a range like ``120-130`` or a category), bin_start, bin_end (numbers
        only), reference_share, current_share. Empty when the column was not checked.
    """
    validate_name(model)
    with warehouse.read() as connection:
        start = _window_start_or_latest(connection, model, window_start)
        row = connection.execute(
            "SELECT distribution FROM drift_results WHERE model = $1 AND window_start = $2 AND feature = $3", [model, start, feature]
        ).fetchone()
    columns = ["bucket", "bin_start", "bin_end", "reference_share", "current_share"]
    if row is None or row[0] is None:
        return pd.DataFrame(columns=columns)
    shape = json.loads(row[0])
    if shape["kind"] == "numeric":
        edges = shape["edges"]
        return pd.DataFrame(
            {
                "bucket": [f"{edges[i]:.4g}-{edges[i + 1]:.4g}" for i in range(len(edges) - 1)],
                "bin_start": edges[:-1],
                "bin_end": edges[1:],
                "reference_share": shape["reference"],
                "current_share": shape["current"],
            }
        )
    return pd.DataFrame(
        {
            "bucket": shape["categories"],
            "bin_start": None,
            "bin_end": None,
            "reference_share": shape["reference"],
            "current_share": shape["current"],
        }
    )[columns]


def window_report(settings: Settings, model: str, window_start: datetime) -> Path:
    """The saved Evidently report of a window as an HTML file (rendered from its snapshot on first request).

    Imports Evidently (seconds): call it when a person asks for the report. No value in it
    can carry markup (see the module docstring), so it may be embedded in a page.

    Raises:
        NotFoundError: the window has no saved report.
    """
    html = report_file(settings.home_path, model, window_start, HTML_SUFFIX)
    if html.is_file():
        return html
    snapshot_path = report_file(settings.home_path, model, window_start)
    if not snapshot_path.is_file():
        raise NotFoundError(
            f"No saved drift report for {model} in the window starting {_utc(window_start):%Y-%m-%d %H:%M} UTC "
            "(too few predictions to compare, or not computed yet)."
        )
    from evidently.core.report import Snapshot  # seconds on first import

    text = gzip.decompress(snapshot_path.read_bytes()).decode("utf-8")
    # "<" only occurs inside JSON strings: none may reach the HTML (see the module docstring).
    text = re.sub(r"<|\\u003[cC]", SAFE_LESS_THAN, text)
    snapshot = Snapshot.loads(text)
    temporary = html.with_name(f".{html.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        # save_html writes only when given a str (a Path is silently ignored in evidently 0.7.23).
        snapshot.save_html(str(temporary))
        os.replace(temporary, html)
    finally:
        temporary.unlink(missing_ok=True)
    return html
