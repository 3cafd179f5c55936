"""Scoring: predict with a registered version and log every prediction; record ground truth later.

What ``mlops-app score MODEL[@alias] FILE`` does (:func:`score_file`, :func:`score_frame`):

1. Resolve the version (``name@alias``, ``name/3``, or ``name``: its champion, else its
   latest version) and load it through the registry, which checks the artifact's sha256
   and the vetted allow-list of types. Loaded versions are kept in memory, keyed by sha256.
2. Check the input against the version's card before anything is predicted: every
   measurement the model needs must be a column (features the feature store computes
   over history, e.g. a block's 7-day blemish average, are looked up as of each row's
   time instead), numeric features must hold numbers, the time column times and the id
   column distinct values. Every problem is listed in one :class:`ScoringInputError`
   naming the columns, and nothing is logged for the batch.
3. Predict and log each row to ``predictions`` (id, event time, model, version, the
   feature values used as JSON, the decision and the score) in ONE transaction: a batch is
   logged whole or not at all.

:func:`record_labels` (``mlops-app labels MODEL FILE``) stores ground truth when it
arrives, days later. A label is matched to the logged prediction by its entity id (e.g.
``apple_id``) or its prediction id; labels for ids with no logged prediction are reported
and kept aside in ``labels_unmatched``, and matched automatically once such a prediction
is logged. A label sent again for the same id replaces the earlier one (a correction).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from mlops_app.auth import Identity, require
from mlops_app.datasets import duckdb_type, get_dataset, type_family
from mlops_app.errors import MlopsError, NotFoundError
from mlops_app.registry import ModelVersion, Registry, validate_name
from mlops_app.warehouse import Warehouse

__all__ = [
    "CLASSIFICATION",
    "REGRESSION",
    "LabelResult",
    "ModelSpec",
    "ScoreResult",
    "ScoringInputError",
    "label_text",
    "load_version",
    "model_spec",
    "predict_scores",
    "read_input_file",
    "record_labels",
    "record_labels_file",
    "resolve_version",
    "score_file",
    "score_frame",
]

CLASSIFICATION, REGRESSION = "classification", "regression"
DEFAULT_THRESHOLD = 0.5
CHAMPION = "champion"
NUMBER, TEXT = "number", "text"
MAX_EXAMPLES = 3
MAX_REPORTED_IDS = 20
SINGLE_THREAD_ROWS = 100_000
# Loaded estimators kept per process (a scoring service or the live demo scores the same
# version again and again; loading and checking an artifact costs tens of milliseconds).
_CACHE_SIZE = 8
_CACHE: OrderedDict[tuple[str, str, int, str], tuple[ModelSpec, Any]] = OrderedDict()
_CACHE_LOCK = threading.Lock()
_LOG_VIEW = "_mlops_scored_rows"
_LABEL_VIEW = "_mlops_label_rows"
_TRUE_WORDS = {"true", "t", "yes", "y", "1", "1.0"}
_FALSE_WORDS = {"false", "f", "no", "n", "0", "0.0"}


class ScoringInputError(MlopsError, ValueError):
    """The rows to score or the labels to record do not fit the model; nothing was logged."""


@dataclass(frozen=True)
class ModelSpec:
    """What scoring and monitoring need to know about one registered version.

    Attributes:
        features: the model's inputs, in card order.
        kinds: feature -> ``number`` or ``text`` (how it is checked, logged and compared).
        store_features: features the feature store computes over history (aggregates),
            looked up as of each row's time when the input lacks them.
        store_keys: the entity key columns those features need in the input.
        positive_class: for classification, the class the score is the probability of.
        threshold: scores at or above it decide for the positive class.
        dataset, id_column, time_column, target: where the version's training data lives
            (from the card, else from the model's monitoring settings); may be None.
    """

    model: str
    version: int
    sha256: str
    features: tuple[str, ...]
    kinds: Mapping[str, str]
    store_features: tuple[str, ...]
    store_keys: tuple[str, ...]
    task: str
    positive_class: Any
    negative_class: Any
    threshold: float
    dataset: str | None
    id_column: str | None
    time_column: str | None
    target: str | None
    card: Mapping[str, Any]

    @property
    def positive_text(self) -> str:
        return label_text(self.positive_class)

    @property
    def negative_text(self) -> str:
        return label_text(self.negative_class)

    @property
    def numeric(self) -> list[str]:
        return [name for name in self.features if self.kinds.get(name) == NUMBER]

    @property
    def categorical(self) -> list[str]:
        return [name for name in self.features if self.kinds.get(name) == TEXT]

    @property
    def label(self) -> str:
        return f"{self.model} v{self.version}"


@dataclass(frozen=True)
class ScoreResult:
    """One scored and logged batch.

    Attributes:
        predictions: one row per input row, in input order: prediction_id, entity_id,
            event_time, prediction (the decision, as text) and score (probability of the
            positive class, or the estimate).
        positive_rate: share of rows decided for the positive class (None for regression).
    """

    batch_id: str
    model: str
    version: int
    rows: int
    predictions: pd.DataFrame
    positive_rate: float | None
    rematched_labels: int
    seconds: float

    @property
    def message(self) -> str:
        share = "" if self.positive_rate is None else f"; {self.positive_rate:.1%} decided positive"
        return f"Scored and logged {self.rows:,} rows with {self.model} v{self.version} (batch {self.batch_id}{share})."


@dataclass(frozen=True)
class LabelResult:
    """What :func:`record_labels` did with one file of ground truth.

    Attributes:
        recorded: labels matched to a logged prediction and stored.
        corrected: of those, labels that replaced an earlier label for the same id.
        unmatched: labels whose id matches no logged prediction, kept aside.
        unmatched_ids: the first of those ids, for the message.
        skipped_empty: rows without a label value (ignored).
        duplicates: rows that repeated an id of the same file (the last one counts).
        rematched: labels kept aside earlier that now match a logged prediction.
    """

    batch_id: str
    model: str
    rows: int
    recorded: int
    corrected: int
    unmatched: int
    unmatched_ids: tuple[str, ...]
    skipped_empty: int
    duplicates: int
    rematched: int

    @property
    def message(self) -> str:
        parts = [f"Recorded {self.recorded:,} labels for {self.model}"]
        if self.corrected:
            parts.append(f"{self.corrected:,} of them replace an earlier label")
        text = "; ".join(parts) + "."
        if self.unmatched:
            shown = ", ".join(self.unmatched_ids)
            more = "" if self.unmatched <= len(self.unmatched_ids) else f" and {self.unmatched - len(self.unmatched_ids):,} more"
            text += (
                f" {self.unmatched:,} ids match no logged prediction ({shown}{more}): they are kept aside and will be "
                "matched when predictions for them are logged."
            )
        if self.skipped_empty:
            text += f" {self.skipped_empty:,} rows had no label value and were skipped."
        if self.duplicates:
            text += f" {self.duplicates:,} rows repeated an id of the same file; the last one counts."
        if self.rematched:
            text += f" {self.rematched:,} labels kept aside earlier now match a prediction."
        return text


# --- Versions and their specs --------------------------------------------------------------


def label_text(value: Any) -> str:
    """A class label as stored text: booleans as ``true``/``false``, anything else as ``str``."""
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def resolve_version(registry: Registry, model: str) -> ModelVersion:
    """The version ``model`` names: ``name@alias``, ``name/3``, or ``name`` (champion, else latest).

    Raises:
        InvalidNameError: a part breaks the naming rule.
        NotFoundError: no such model, alias or version.
    """
    if isinstance(model, str) and "@" not in model and "/" not in model:
        info = registry.get_model(model)
        if CHAMPION in info.aliases:
            return registry.get_version(model, CHAMPION)
    return registry.resolve(model)


def _kind_of(dtype: str | None) -> str | None:
    if dtype is None:
        return None
    try:
        family = type_family(duckdb_type(dtype))
    except MlopsError:
        return TEXT if str(dtype).lower() in ("str", "string", "object", "category") else None
    if family in ("integer", "number", "boolean"):
        return NUMBER
    if family == "text":
        return TEXT
    return None


def _store_definitions(warehouse: Warehouse, names: Sequence[str]) -> dict[str, tuple[str, str]]:
    """Aggregate feature-store features among ``names``: name -> (kind, entity key column)."""
    if not names:
        return {}
    rows = warehouse.query(
        "SELECT d.name, d.kind, e.key_column FROM feature_definitions d LEFT JOIN feature_entities e ON e.name = d.entity "
        "WHERE d.name IN (SELECT unnest($1::VARCHAR[]))",
        [list(names)],
    )
    return {name: (kind, key) for name, kind, key in rows.itertuples(index=False, name=None)}


def _monitor_defaults(warehouse: Warehouse, model: str) -> dict[str, Any]:
    """The dataset named in the model's monitoring settings (``<home>/monitoring/<model>.yaml``), if any."""
    from mlops_app.monitoring import monitor_config_path, read_monitor_yaml  # local: monitoring imports scoring

    path = monitor_config_path(warehouse.path.parent, model)
    if not path.is_file():
        return {}
    data = read_monitor_yaml(path)
    return dict((data.get("reference") or {})) | {"target": data.get("target")}


def model_spec(warehouse: Warehouse, version: ModelVersion, estimator: Any) -> ModelSpec:
    """Read a version's card (and the feature store catalogue) into a :class:`ModelSpec`.

    Raises:
        MlopsError: the card lists no features, or a two-class model's classes are unclear.
    """
    card = dict(version.card)
    extra = dict(card.get("extra") or {})
    features = [str(name) for name in (card.get("features") or [column["name"] for column in card.get("input_schema") or []])]
    if not features:
        raise MlopsError(f"{version.model} v{version.version} lists no input features on its card, so rows cannot be checked or scored.")
    schema = {column["name"]: column.get("dtype") for column in card.get("input_schema") or []}
    kinds = {name: _kind_of(schema.get(name)) for name in features}
    definitions = _store_definitions(warehouse, features)
    store = [name for name in features if definitions.get(name, ("raw", None))[0] != "raw"]
    for name in store:
        kinds[name] = kinds.get(name) or NUMBER
    keys = tuple(dict.fromkeys(definitions[name][1] for name in store if definitions[name][1]))

    task = extra.get("task")
    classes = list(getattr(estimator, "classes_", []))
    if task not in (CLASSIFICATION, REGRESSION):
        task = CLASSIFICATION if hasattr(estimator, "predict_proba") and classes else REGRESSION
    positive = negative = None
    if task == CLASSIFICATION:
        if len(classes) != 2:
            raise MlopsError(f"{version.model} v{version.version} has {len(classes)} classes; scoring handles two-class models and regressors.")
        if "positive_class" in extra and any(label_text(c) == label_text(extra["positive_class"]) for c in classes):
            positive = next(c for c in classes if label_text(c) == label_text(extra["positive_class"]))
        elif any(isinstance(c, (bool, np.bool_)) and c for c in classes):
            positive = True
        else:
            positive = classes[-1]
        negative = next(c for c in classes if label_text(c) != label_text(positive))
        positive = positive.item() if hasattr(positive, "item") else positive
        negative = negative.item() if hasattr(negative, "item") else negative

    dataset = extra.get("dataset")
    defaults: dict[str, Any] = {}
    if not dataset:
        defaults = _monitor_defaults(warehouse, version.model)
        dataset = defaults.get("dataset")
    id_column = time_column = None
    target = extra.get("target") or defaults.get("target")
    if dataset:
        try:
            entry = get_dataset(warehouse, dataset)
            id_column, time_column, target = entry.id_column, entry.time_column, target or entry.target
        except (NotFoundError, MlopsError):
            dataset = dataset  # the card names a dataset this warehouse lacks: no defaults from it
    threshold = extra.get("threshold")
    return ModelSpec(
        model=version.model,
        version=version.version,
        sha256=str(card.get("artifact_sha256", "")),
        features=tuple(features),
        kinds=kinds,
        store_features=tuple(store),
        store_keys=keys,
        task=task,
        positive_class=positive,
        negative_class=negative,
        threshold=float(threshold) if isinstance(threshold, (int, float)) and not isinstance(threshold, bool) else DEFAULT_THRESHOLD,
        dataset=dataset,
        id_column=id_column,
        time_column=time_column,
        target=target,
        card=card,
    )


def load_version(warehouse: Warehouse, registry: Registry, model: str | ModelVersion) -> tuple[ModelSpec, Any]:
    """The spec and fitted estimator of a version (cached per process by the artifact's sha256).

    Args:
        model: a version, or ``name@alias`` / ``name/3`` / ``name`` (see :func:`resolve_version`).

    Raises:
        NotFoundError, InvalidNameError: see :func:`resolve_version`.
        IntegrityError: the artifact changed since registration or holds untrusted types.
    """
    version = model if isinstance(model, ModelVersion) else resolve_version(registry, model)
    key = (str(registry.root), version.model, version.version, str(version.card.get("artifact_sha256", "")))
    with _CACHE_LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    # Loaded outside the lock: a slow load must not block other threads' cache hits.
    estimator = registry.load_model(version.model, version.version)
    loaded = (model_spec(warehouse, version, estimator), estimator)
    with _CACHE_LOCK:
        _CACHE[key] = loaded
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return loaded


def predict_scores(spec: ModelSpec, estimator: Any, frame: pd.DataFrame) -> np.ndarray:
    """Scores for rows that already hold every feature: P(positive class), or the estimate.

    Raises:
        MlopsError: the model failed on the rows or produced NaN or infinite scores.
    """
    # One thread for small batches: on 2 busy cores, histogram gradient boosting predicted a
    # day of the demo several times slower with its default OpenMP threads (measured).
    limits = 1 if len(frame) < SINGLE_THREAD_ROWS else None
    try:
        with threadpool_limits(limits=limits):
            if spec.task == CLASSIFICATION:
                classes = [label_text(c) for c in estimator.classes_]
                scores = estimator.predict_proba(frame[list(spec.features)])[:, classes.index(spec.positive_text)]
            else:
                scores = estimator.predict(frame[list(spec.features)])
    except Exception as error:  # any estimator error becomes a message about this batch
        raise MlopsError(f"{spec.label} could not score the rows: {type(error).__name__}: {error}. Nothing was logged.") from error
    scores = np.asarray(scores, dtype=float)
    bad = ~np.isfinite(scores)
    if bad.any():
        raise MlopsError(
            f"{spec.label} produced {int(bad.sum()):,} scores that are not finite numbers (NaN or infinity) out of "
            f"{len(scores):,}; check the rows for missing or extreme values. Nothing was logged."
        )
    return scores


# --- Checking the input --------------------------------------------------------------------


def _examples(values: pd.Series) -> str:
    shown = [f"{value!r} (row {index + 1})" for index, value in values.head(MAX_EXAMPLES).items()]
    return ", ".join(shown)


def _prepare(
    spec: ModelSpec, frame: pd.DataFrame, id_column: str | None, time_column: str | None
) -> tuple[pd.DataFrame, pd.Series | None, pd.Series | None]:
    """Check and convert the input; return (features and keys, ids, event times).

    Raises:
        ScoringInputError: every problem found, in one message naming the columns.
    """
    if len(frame) == 0:
        raise ScoringInputError(f"The input has no rows, so there is nothing to score with {spec.label}.")
    frame = frame.reset_index(drop=True)
    columns = set(map(str, frame.columns))
    needed_measurements = [name for name in spec.features if name not in spec.store_features]
    missing = [name for name in needed_measurements if name not in columns]
    lookups = [name for name in spec.store_features if name not in columns]
    missing_keys = [key for key in spec.store_keys if lookups and key not in columns and key not in missing]
    problems: list[str] = []
    if missing or missing_keys:
        names = missing + missing_keys
        problems.append(
            f"the input lacks {len(names)} column{'s' if len(names) > 1 else ''} the model needs: {', '.join(names)}"
            + (f" (keys to look up {', '.join(lookups)} in the feature store)" if missing_keys else "")
        )
    for name, role in ((id_column, "id"), (time_column, "time")):
        if name is not None and name not in columns:
            problems.append(f"the {role} column {name!r} is not in the input")
    prepared = pd.DataFrame(index=frame.index)
    for name in spec.features:
        if name not in columns:
            continue
        values = frame[name]
        kind = spec.kinds.get(name) or (NUMBER if pd.api.types.is_numeric_dtype(values) else TEXT)
        if kind == NUMBER:
            if pd.api.types.is_bool_dtype(values):
                numbers = values.astype("float64")
            else:
                numbers = pd.to_numeric(values, errors="coerce").astype("float64")
            wrong = values.notna() & ~np.isfinite(numbers.fillna(0.0)) | (values.notna() & numbers.isna())
            if wrong.any():
                problems.append(
                    f"column {name} must hold numbers, but {int(wrong.sum()):,} value{'s are' if wrong.sum() > 1 else ' is'} not: "
                    + _examples(values[wrong])
                )
            prepared[name] = numbers
        else:
            prepared[name] = values.astype(object).where(values.notna(), None).map(lambda v: v if v is None else label_text(v))
    for key in spec.store_keys:
        if key in columns and key not in prepared:
            prepared[key] = frame[key].astype(object).where(frame[key].notna(), None).map(lambda v: v if v is None else str(v))

    ids = times = None
    if id_column is not None and id_column in columns:
        raw = frame[id_column]
        ids = raw.astype(object).where(raw.notna(), None).map(lambda v: v if v is None else label_text(v))
        empty = ids.isna()
        if empty.any():
            problems.append(f"the id column {id_column} is empty in {int(empty.sum()):,} rows, e.g. row {int(empty.idxmax()) + 1}")
        repeated = ids[ids.notna() & ids.duplicated(keep=False)]
        if len(repeated):
            problems.append(
                f"the id column {id_column} repeats {repeated.nunique():,} values (e.g. {', '.join(map(repr, repeated.unique()[:MAX_EXAMPLES]))}); "
                "each row must be a different entity"
            )
    if time_column is not None and time_column in columns:
        raw = frame[time_column]
        times = pd.to_datetime(raw, errors="coerce", utc=True, format="mixed") if not pd.api.types.is_datetime64_any_dtype(raw) else raw
        if times.dt.tz is None:
            times = times.dt.tz_localize("UTC")
        wrong = times.isna()
        if wrong.any():
            problems.append(f"the time column {time_column} must hold dates or times, but {int(wrong.sum()):,} values do not: " + _examples(raw[wrong]))
        prepared[time_column] = times
    if problems:
        raise ScoringInputError(f"Cannot score these rows with {spec.label}: " + "; ".join(problems) + ". Nothing was scored or logged.")
    return prepared, ids, times


def _default_column(explicit: str | None, default: str | None, frame: pd.DataFrame) -> str | None:
    if explicit is not None:
        return explicit
    return default if default is not None and default in frame.columns else None


def _new_batch_id(prefix: str, now: datetime) -> str:
    return f"{prefix}-{now.astimezone(UTC):%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:6]}"


def _now(now: datetime | None) -> datetime:
    moment = now or datetime.now(UTC)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@contextmanager
def registered(connection: duckdb.DuckDBPyConnection, name: str, frame: pd.DataFrame) -> Iterator[None]:
    """Register ``frame`` as view ``name`` for the block; unregistering never hides the block's own error.

    After a failed statement DuckDB has aborted the transaction and refuses even
    ``unregister``; that refusal must not replace the error that caused it.
    """
    connection.register(name, frame)
    try:
        yield
    finally:
        with suppress(duckdb.Error):
            connection.unregister(name)


# --- Scoring ---------------------------------------------------------------------------------


def score_frame(
    warehouse: Warehouse,
    registry: Registry,
    model: str,
    frame: pd.DataFrame,
    identity: Identity,
    *,
    id_column: str | None = None,
    time_column: str | None = None,
    batch_id: str | None = None,
    scored_at: datetime | None = None,
) -> ScoreResult:
    """Score rows with a registered version and log every prediction (all or nothing).

    Args:
        model: ``name@alias``, ``name/3`` or ``name`` (its champion, else its latest version).
        frame: one row per entity to score, with the model's measurements as columns.
        id_column: the column identifying each entity (labels refer to it later); the
            training dataset's id column when present in the input. Without one, each
            prediction's own id serves.
        time_column: when each row happened (feature-store lookups are as of it, and it
            places the prediction in a monitoring window); the training dataset's time
            column when present, else the scoring time.
        scored_at: the scoring time to record (default now).

    Returns:
        A :class:`ScoreResult`.

    Raises:
        PermissionDeniedError: the identity may not score batches (reviewer and up).
        ScoringInputError: a missing column, a value of the wrong type, an empty or
            repeated id, a bad time; the message names every column. Nothing is logged.
        NotFoundError, InvalidNameError, IntegrityError: see :func:`load_version`.
        MlopsError: the model failed on the rows. Nothing is logged.
    """
    require(identity, "score_batch")
    started = time.monotonic()
    spec, estimator = load_version(warehouse, registry, model)
    id_column = _default_column(id_column, spec.id_column, frame)
    time_column = _default_column(time_column, spec.time_column, frame)
    prepared, ids, times = _prepare(spec, frame, id_column, time_column)
    now = _now(scored_at)
    lookups = [name for name in spec.store_features if name not in prepared.columns]
    if lookups:
        from mlops_app.features import features_for_scoring  # local: the feature store is only needed here

        try:
            prepared = features_for_scoring(warehouse, prepared, spec.features, time_column=time_column, as_of=now)
        except MlopsError as error:
            raise ScoringInputError(f"Cannot look up {', '.join(lookups)} for {spec.label}: {error} Nothing was logged.") from None
    scores = predict_scores(spec, estimator, prepared)
    rows = len(prepared)
    batch_id = batch_id or _new_batch_id(spec.model, now)
    prediction_ids = [f"{batch_id}-{index:07d}" for index in range(rows)]
    if spec.task == CLASSIFICATION:
        decided = scores >= spec.threshold
        predicted = np.where(decided, spec.positive_text, spec.negative_text)
        positive_rate: float | None = float(decided.mean())
    else:
        predicted = np.array([f"{value:.6g}" for value in scores], dtype=object)
        positive_rate = None
    log = pd.DataFrame(
        {
            "prediction_id": prediction_ids,
            "entity_id": ids if ids is not None else prediction_ids,
            "event_time": times if times is not None else pd.Series([now] * rows),
            "prediction": predicted,
            "score": scores,
        }
    )
    for index, name in enumerate(spec.features):
        log[f"f{index}"] = prepared[name].to_numpy() if spec.kinds.get(name) != NUMBER else prepared[name].astype("float64").to_numpy()
    rematched = _log_predictions(warehouse, spec, log, batch_id, now)
    return ScoreResult(
        batch_id=batch_id,
        model=spec.model,
        version=spec.version,
        rows=rows,
        predictions=log[["prediction_id", "entity_id", "event_time", "prediction", "score"]],
        positive_rate=positive_rate,
        rematched_labels=rematched,
        seconds=time.monotonic() - started,
    )


def _feature_json_sql(spec: ModelSpec, params: dict[str, Any]) -> str:
    """``json_object(...)`` of the logged features; keys travel as parameters, NaN becomes null."""
    parts = []
    for index, name in enumerate(spec.features):
        params[f"k{index}"] = name
        column = f"f{index}"
        value = f"CASE WHEN isnan({column}) THEN NULL ELSE {column} END" if spec.kinds.get(name) == NUMBER else column
        parts.append(f"$k{index}, {value}")
    return f"json_object({', '.join(parts)})"


def _log_predictions(warehouse: Warehouse, spec: ModelSpec, log: pd.DataFrame, batch_id: str, now: datetime) -> int:
    """Insert the batch in one transaction; move labels kept aside that now match. Returns how many moved."""
    params: dict[str, Any] = {"model": spec.model, "version": spec.version, "scored_at": now, "batch": batch_id}
    features_sql = _feature_json_sql(spec, params)
    with warehouse.transaction() as connection, registered(connection, _LOG_VIEW, log):
        connection.execute(
            f"""
            INSERT INTO predictions (prediction_id, model, version, entity_id, event_time, scored_at, features,
                                     prediction, score, batch_id)
            SELECT prediction_id, $model, $version, entity_id, event_time, $scored_at, {features_sql},
                   prediction, score, $batch
            FROM {_LOG_VIEW}
            """,
            params,
        )
        return _rematch(connection, spec.model, now, f"SELECT entity_id FROM {_LOG_VIEW} UNION ALL SELECT prediction_id FROM {_LOG_VIEW}")


def _rematch(connection: duckdb.DuckDBPyConnection, model: str, now: datetime, among: str | None = None) -> int:
    """Move kept-aside labels of ``model`` that now match a logged prediction into labels.

    Args:
        among: SQL of our own making (a registered view's columns), restricting the ids
            looked at; None looks at every kept-aside label of the model.
    """
    restrict = f" AND u.entity_id IN ({among})" if among else ""
    found = connection.execute(
        f"""
        SELECT u.rowid AS unmatched_row, coalesce(e.entity_id, p.entity_id) AS entity_id
        FROM labels_unmatched u
        LEFT JOIN (SELECT DISTINCT entity_id FROM predictions WHERE model = $1) e ON e.entity_id = u.entity_id
        LEFT JOIN (SELECT prediction_id, entity_id FROM predictions WHERE model = $1) p ON p.prediction_id = u.entity_id
        WHERE u.model = $1{restrict} AND coalesce(e.entity_id, p.entity_id) IS NOT NULL
        """,
        [model],
    ).df()
    if found.empty:
        return 0
    # The latest kept-aside label of an entity wins, like a correction.
    with registered(connection, "_mlops_rematched", found):
        connection.execute("DELETE FROM labels WHERE model = $1 AND entity_id IN (SELECT entity_id FROM _mlops_rematched)", [model])
        connection.execute(
            """
            INSERT INTO labels (entity_id, model, label, labelled_at, received_at, recorded_at, batch_id)
            SELECT m.entity_id, u.model, arg_max(u.label, u.recorded_at), max(u.labelled_at), max(u.received_at), $1,
                   arg_max(u.batch_id, u.recorded_at)
            FROM labels_unmatched u JOIN _mlops_rematched m ON m.unmatched_row = u.rowid
            GROUP BY m.entity_id, u.model
            """,
            [now],
        )
        connection.execute("DELETE FROM labels_unmatched WHERE rowid IN (SELECT unmatched_row FROM _mlops_rematched)")
    return len(found)


def read_input_file(path: Path | str) -> pd.DataFrame:
    """Read a CSV (every column as text, so type problems are reported per column), Parquet or JSON-lines file.

    Raises:
        MlopsError: the file is missing or cannot be read.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise MlopsError(f"No file at {path}.")
    suffix = "".join(path.suffixes[-2:]).lower()
    connection = duckdb.connect()
    try:
        if suffix.endswith(".parquet"):
            relation = connection.execute("SELECT * FROM read_parquet(?)", [str(path)])
        elif suffix.endswith((".json", ".jsonl", ".ndjson")):
            relation = connection.execute("SELECT * FROM read_json_auto(?)", [str(path)])
        else:
            relation = connection.execute("SELECT * FROM read_csv(?, header = true, all_varchar = true)", [str(path)])
        frame = relation.df()
    except duckdb.Error as error:
        raise MlopsError(f"Cannot read {path.name}: {str(error).splitlines()[0]}") from None
    finally:
        connection.close()
    return frame


def score_file(
    warehouse: Warehouse,
    registry: Registry,
    model: str,
    path: Path | str,
    identity: Identity,
    *,
    id_column: str | None = None,
    time_column: str | None = None,
    output: Path | str | None = None,
) -> ScoreResult:
    """:func:`score_frame` on a CSV, Parquet or JSON-lines file; optionally write the predictions as CSV.

    Raises:
        Same as :func:`score_frame`, and MlopsError for an unreadable file.
    """
    frame = read_input_file(path)
    result = score_frame(warehouse, registry, model, frame, identity, id_column=id_column, time_column=time_column)
    if output is not None:
        target = Path(output).expanduser()
        temporary = target.with_name(f".{target.name}.tmp")
        result.predictions.to_csv(temporary, index=False)
        temporary.replace(target)
    return result


# --- Labels ----------------------------------------------------------------------------------


def _normalise_labels(spec: ModelSpec, values: pd.Series, column: str) -> pd.Series:
    """Label values as stored text (``true``/``false``, a class name, or a number).

    Raises:
        ScoringInputError: values that are not a class (or a number) of the model.
    """
    if spec.task == REGRESSION:
        numbers = pd.to_numeric(values, errors="coerce")
        wrong = numbers.isna() | ~np.isfinite(numbers.fillna(0.0))
        if wrong.any():
            raise ScoringInputError(
                f"Labels for {spec.model} must be numbers, but {int(wrong.sum()):,} values of {column} are not: "
                f"{_examples(values[wrong])}. Nothing was recorded."
            )
        return numbers.map(lambda v: f"{float(v):.10g}")
    classes = {spec.positive_text, spec.negative_text}
    boolean = isinstance(spec.positive_class, bool)

    def convert(value: Any) -> str | None:
        if isinstance(value, (bool, np.bool_)):
            return label_text(value)
        text = label_text(value).strip()
        if text in classes:
            return text
        if boolean:
            lowered = text.lower()
            if lowered in _TRUE_WORDS:
                return "true"
            if lowered in _FALSE_WORDS:
                return "false"
        return None

    converted = values.map(convert)
    wrong = converted.isna()
    if wrong.any():
        allowed = "true/false (or 1/0, yes/no)" if boolean else " or ".join(sorted(classes))
        raise ScoringInputError(
            f"Labels for {spec.model} must be {allowed}, but {int(wrong.sum()):,} values of {column} are not: "
            f"{_examples(values[wrong])}. Nothing was recorded."
        )
    return converted


def record_labels(
    warehouse: Warehouse,
    registry: Registry,
    model: str,
    frame: pd.DataFrame,
    identity: Identity,
    *,
    id_column: str | None = None,
    label_column: str | None = None,
    labelled_at_column: str | None = None,
    received_at_column: str | None = None,
    source_name: str | None = None,
    now: datetime | None = None,
) -> LabelResult:
    """Record ground truth for logged predictions; keep labels for unknown ids aside (all in one transaction).

    Args:
        model: the model name (the labels apply to every version's predictions).
        frame: one row per labelled entity.
        id_column: the entity id (as given when scoring) or ``prediction_id``; default:
            the training dataset's id column, else ``prediction_id``, ``entity_id`` or ``id``.
        label_column: the ground truth; default: the training target, else ``label``.
        labelled_at_column: when the truth was established (optional).
        received_at_column: when the label arrived (default: now); replays of history set it.
        now: the recording time (default now).

    Returns:
        A :class:`LabelResult` whose ``message`` reports unknown ids.

    Raises:
        PermissionDeniedError: the identity may not record labels (reviewer and up).
        ScoringInputError: a missing column, or a value that is not a class of the model.
        NotFoundError: no such model.
    """
    require(identity, "record_labels")
    validate_name(model)
    spec, _ = load_version(warehouse, registry, model)
    columns = list(map(str, frame.columns))
    id_column = id_column or next((c for c in (spec.id_column, "prediction_id", "entity_id", "id") if c and c in columns), None)
    label_column = label_column or next((c for c in (spec.target, "label") if c and c in columns), None)
    problems = []
    if id_column is None or id_column not in columns:
        problems.append(f"no id column ({id_column!r} is not in the file)" if id_column else "no id column (name it with --id-column)")
    if label_column is None or label_column not in columns:
        problems.append(f"no label column ({label_column!r} is not in the file)" if label_column else "no label column (name it with --label-column)")
    for name in (labelled_at_column, received_at_column):
        if name is not None and name not in columns:
            problems.append(f"no column {name!r}")
    if problems:
        raise ScoringInputError(f"Cannot record labels for {model}: " + "; ".join(problems) + f". Columns: {', '.join(columns)}. Nothing was recorded.")
    moment = _now(now)
    frame = frame.reset_index(drop=True)
    present = frame[label_column].notna() & frame[id_column].notna()
    skipped = int((~present).sum())
    rows = frame[present]
    labels = _normalise_labels(spec, rows[label_column], label_column)

    def times(column: str | None, default: datetime | None) -> pd.Series:
        if column is None:
            return pd.Series([default] * len(rows), index=rows.index, dtype="datetime64[us, UTC]")
        parsed = pd.to_datetime(rows[column], errors="coerce", utc=True, format="mixed")
        wrong = parsed.isna() & rows[column].notna()
        if wrong.any():
            raise ScoringInputError(f"Column {column} must hold dates or times, but some do not: {_examples(rows[column][wrong])}. Nothing was recorded.")
        return parsed if default is None else parsed.fillna(default)

    incoming = pd.DataFrame(
        {
            "id": rows[id_column].map(label_text).to_numpy(),
            "label": labels.to_numpy(),
            "labelled_at": times(labelled_at_column, None).to_numpy(),
            "received_at": times(received_at_column, moment).to_numpy(),
        }
    )
    duplicates = int(incoming["id"].duplicated(keep="last").sum())
    incoming = incoming.drop_duplicates("id", keep="last").reset_index(drop=True)
    batch_id = _new_batch_id(f"labels-{model}", moment)
    with warehouse.transaction() as connection, registered(connection, _LABEL_VIEW, incoming):
        matched = connection.execute(
            f"""
            SELECT i.id, coalesce(e.entity_id, p.entity_id) AS entity_id
            FROM {_LABEL_VIEW} i
            LEFT JOIN (SELECT DISTINCT entity_id FROM predictions
                       WHERE model = $1 AND entity_id IN (SELECT id FROM {_LABEL_VIEW})) e ON e.entity_id = i.id
            LEFT JOIN (SELECT prediction_id, entity_id FROM predictions
                       WHERE model = $1 AND prediction_id IN (SELECT id FROM {_LABEL_VIEW})) p ON p.prediction_id = i.id
            """,
            [model],
        ).df()
        known = matched.dropna(subset=["entity_id"]).drop_duplicates("entity_id", keep="last")
        unknown_ids = matched.loc[matched["entity_id"].isna(), "id"]
        with registered(connection, "_mlops_label_match", known):
            corrected = connection.execute(
                "SELECT count(*) FROM labels WHERE model = $1 AND entity_id IN (SELECT entity_id FROM _mlops_label_match)", [model]
            ).fetchone()[0]
            connection.execute("DELETE FROM labels WHERE model = $1 AND entity_id IN (SELECT entity_id FROM _mlops_label_match)", [model])
            # Labels of this file supersede any kept aside earlier for the same ids.
            connection.execute(f"DELETE FROM labels_unmatched WHERE model = $1 AND entity_id IN (SELECT id FROM {_LABEL_VIEW})", [model])
            connection.execute(
                f"""
                INSERT INTO labels (entity_id, model, label, labelled_at, received_at, recorded_at, batch_id)
                SELECT m.entity_id, $1, i.label, i.labelled_at, i.received_at, $2, $3
                FROM {_LABEL_VIEW} i JOIN _mlops_label_match m ON m.id = i.id
                """,
                [model, moment, batch_id],
            )
        connection.execute(
            f"""
            INSERT INTO labels_unmatched (model, entity_id, label, labelled_at, received_at, recorded_at, batch_id, source_name)
            SELECT $1, i.id, i.label, i.labelled_at, i.received_at, $2, $3, $4
            FROM {_LABEL_VIEW} i WHERE i.id IN (SELECT unnest($5::VARCHAR[]))
            """,
            [model, moment, batch_id, source_name, list(unknown_ids)],
        )
        # Only labels kept aside by earlier files can match now; this file's unknown ids just failed to.
        rematched = _rematch(connection, model, moment)
    return LabelResult(
        batch_id=batch_id,
        model=model,
        rows=len(frame),
        recorded=len(known),
        corrected=int(corrected),
        unmatched=len(unknown_ids),
        unmatched_ids=tuple(unknown_ids.head(MAX_REPORTED_IDS)),
        skipped_empty=skipped,
        duplicates=duplicates,
        rematched=rematched,
    )


def record_labels_file(
    warehouse: Warehouse,
    registry: Registry,
    model: str,
    path: Path | str,
    identity: Identity,
    *,
    id_column: str | None = None,
    label_column: str | None = None,
) -> LabelResult:
    """:func:`record_labels` on a CSV, Parquet or JSON-lines file (its name is kept with unmatched labels)."""
    frame = read_input_file(path)
    return record_labels(
        warehouse, registry, model, frame, identity, id_column=id_column, label_column=label_column, source_name=Path(path).name
    )


def unmatched_labels(warehouse: Warehouse, model: str, *, limit: int = 100) -> pd.DataFrame:
    """Labels kept aside for ``model`` because no logged prediction has their id, newest first."""
    validate_name(model)
    return warehouse.query(
        "SELECT entity_id, label, received_at, recorded_at, batch_id, source_name FROM labels_unmatched "
        "WHERE model = $1 ORDER BY recorded_at DESC LIMIT $2",
        [model, int(limit)],
    )
