"""The AutoML trainer: search model families on a time-based split, judge the winner once.

What ``mlops-app train --dataset D --target T --experiment E`` does:

1. Load the dataset's labelled rows from the warehouse (optionally a uniform sample drawn
   in DuckDB) and sort them by the dataset's time column.
2. Split by time: train (earliest 60%), validation (next 20%), holdout (latest 20%).
   A model judged on the data it was tuned on looks better than it is, so the holdout is
   set aside before anything else happens and is read exactly once, by
   :func:`_evaluate_holdout`, for the winner, after the search has ended.
3. Random search over model families (linear, tree ensembles, histogram gradient boosting)
   and their hyperparameters. Each trial is one tracked run: it is cross-validated on the
   training period (``TimeSeriesSplit``: always fit on the past, score on the future), then
   fitted on the whole training period and scored on the validation period. A trial that
   raises or produces NaN is recorded as a failed run and the search goes on.
4. The trial with the best validation score wins (ties: better cross-validation score,
   then the earlier trial). It is refitted on train + validation, so it has seen the most
   recent labelled data, and evaluated once on the holdout: overall metrics, metrics per
   slice (e.g. per orchard block and variety, to expose groups it serves badly), a
   confusion matrix, calibration and permutation feature importance. All of it is stored
   with a final "winner" run, together with the fitted model, ready to register.

Binary classification (a boolean target, or a column with two values: the positive class
is True, else the rarer value) and regression (a numeric target) are supported. Metric
names are those of :mod:`mlops_app.metric_catalog`; validation metrics are logged under
their plain names (``roc_auc``), cross-validation means as ``cv_roc_auc`` and holdout
metrics as ``holdout_roc_auc``.
"""

from __future__ import annotations

import math
import time
import uuid
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.inspection import permutation_importance
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import TimeSeriesSplit
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from threadpoolctl import threadpool_limits

from mlops_app.auth import Identity, require
from mlops_app.datasets import TABLE_PREFIX, dataset_table, get_dataset, table_columns, type_family
from mlops_app.errors import MlopsError, NotFoundError
from mlops_app.evaluation import classification_metrics, regression_metrics
from mlops_app.metric_catalog import METRICS
from mlops_app.tracking import FAILED, Run, start_run, validate_experiment_name
from mlops_app.warehouse import Warehouse, quote_identifier

CLASSIFICATION, REGRESSION = "classification", "regression"
TASK_METRICS = {
    CLASSIFICATION: ("roc_auc", "recall_bad", "false_discard_rate", "precision_bad", "accuracy", "f1"),
    REGRESSION: ("mae", "rmse", "r2"),
}
DEFAULT_METRIC = {CLASSIFICATION: "roc_auc", REGRESSION: "mae"}
TRAIN_SHARE, VALIDATION_SHARE = 0.6, 0.2  # the holdout is the remaining, latest 20%
MIN_ROWS = 60
MIN_ROWS_PER_PART = 12
DEFAULT_THRESHOLD = 0.5
MAX_CATEGORIES = 100  # a text column with more distinct values is an id or free text
MAX_SLICE_VALUES = 20
CURVE_POINTS = 10
IMPORTANCE_ROWS = 2000
IMPORTANCE_REPEATS = 3
CALIBRATION_BINS = 10
ROLE_TRIAL, ROLE_WINNER = "trial", "winner"

# Result kinds stored with the winner run (see tracking.Run.log_result).
RESULT_HOLDOUT = "holdout"
RESULT_SLICES = "slices"
RESULT_CONFUSION = "confusion_matrix"
RESULT_CALIBRATION = "calibration"
RESULT_IMPORTANCE = "feature_importance"
RESULT_SPLIT = "split"
RESULT_SEARCH = "search"
RESULT_MODEL_INPUTS = "model_inputs"

ProgressCallback = Callable[[int, int, str], None]


# --- Search spaces -----------------------------------------------------------------------


@dataclass(frozen=True)
class LogUniform:
    """A positive number drawn uniformly on a log scale (for C, alpha, learning rates)."""

    low: float
    high: float

    def sample(self, rng: np.random.Generator) -> float:
        value = math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        return float(f"{value:.3g}")  # readable in tables, and nobody tunes the 4th digit


@dataclass(frozen=True)
class Family:
    """A model family and its search space.

    Args:
        name: shown as the ``family`` param of each trial.
        kind: ``linear``, ``tree_ensemble`` or ``boosting`` (a tag, for grouping).
        task: ``classification`` or ``regression``.
        build: ``build(params, seed)`` returns an unfitted estimator.
        space: per hyperparameter, a tuple of choices or a :class:`LogUniform`.
        defaults: the first configuration tried, a sensible default.
    """

    name: str
    kind: str
    task: str
    build: Callable[[Mapping[str, Any], int], Any]
    space: Mapping[str, tuple | LogUniform] = field(default_factory=dict)
    defaults: Mapping[str, Any] = field(default_factory=dict)

    def sample(self, rng: np.random.Generator) -> dict[str, Any]:
        params = {}
        for name, choices in self.space.items():
            params[name] = choices.sample(rng) if isinstance(choices, LogUniform) else choices[int(rng.integers(len(choices)))]
        return params


# Kept small on purpose: on 2 cores a 200-tree forest on all features took 8 s of a 60 s
# demo search for no better validation score than 100 trees on half of them.
_FOREST_SPACE = {
    "n_estimators": (50, 100),
    "max_depth": (None, 8, 16),
    "min_samples_leaf": (1, 5, 20),
    "max_features": ("sqrt", 0.5),
}
_FOREST_DEFAULTS = {"n_estimators": 100, "max_depth": None, "min_samples_leaf": 1, "max_features": "sqrt"}
_BOOSTING_SPACE = {
    "learning_rate": LogUniform(0.02, 0.3),
    "max_iter": (50, 100, 200),
    "max_leaf_nodes": (15, 31, 63),
    "min_samples_leaf": (10, 20, 50),
    "l2_regularization": (0.0, 0.1, 1.0),
}
_BOOSTING_DEFAULTS = {"learning_rate": 0.1, "max_iter": 100, "max_leaf_nodes": 31, "min_samples_leaf": 20, "l2_regularization": 0.0}
_CLASS_WEIGHT = {"class_weight": (None, "balanced")}


def _boosting(cls: type, params: Mapping[str, Any], seed: int) -> Any:
    # categorical_features=None: inputs are already one-hot encoded, and the "from_dtype"
    # default stores a functools.partial that the registry's allow-list refuses.
    return cls(categorical_features=None, random_state=seed, **params)


def default_families(task: str) -> tuple[Family, ...]:
    """The families searched for a task: linear, two tree ensembles, gradient boosting."""
    if task == CLASSIFICATION:
        return (
            Family(
                "logistic_regression", "linear", task,
                lambda p, seed: LogisticRegression(max_iter=1000, **p),
                {"C": LogUniform(1e-3, 1e2), **_CLASS_WEIGHT}, {"C": 1.0, "class_weight": None},
            ),
            Family(
                "random_forest", "tree_ensemble", task,
                lambda p, seed: RandomForestClassifier(n_jobs=1, random_state=seed, **p),
                {**_FOREST_SPACE, **_CLASS_WEIGHT}, {**_FOREST_DEFAULTS, "class_weight": None},
            ),
            Family(
                "extra_trees", "tree_ensemble", task,
                lambda p, seed: ExtraTreesClassifier(n_jobs=1, random_state=seed, **p),
                {**_FOREST_SPACE, **_CLASS_WEIGHT}, {**_FOREST_DEFAULTS, "class_weight": None},
            ),
            Family(
                "hist_gradient_boosting", "boosting", task,
                lambda p, seed: _boosting(HistGradientBoostingClassifier, p, seed),
                {**_BOOSTING_SPACE, **_CLASS_WEIGHT}, {**_BOOSTING_DEFAULTS, "class_weight": None},
            ),
        )  # fmt: skip
    return (
        Family("ridge", "linear", task, lambda p, seed: Ridge(**p), {"alpha": LogUniform(1e-3, 1e3)}, {"alpha": 1.0}),
        Family(
            "random_forest", "tree_ensemble", task,
            lambda p, seed: RandomForestRegressor(n_jobs=1, random_state=seed, **p), _FOREST_SPACE, _FOREST_DEFAULTS,
        ),
        Family(
            "extra_trees", "tree_ensemble", task,
            lambda p, seed: ExtraTreesRegressor(n_jobs=1, random_state=seed, **p), _FOREST_SPACE, _FOREST_DEFAULTS,
        ),
        Family(
            "hist_gradient_boosting", "boosting", task,
            lambda p, seed: _boosting(HistGradientBoostingRegressor, p, seed),
            {**_BOOSTING_SPACE, "loss": ("squared_error", "absolute_error")}, {**_BOOSTING_DEFAULTS, "loss": "squared_error"},
        ),
    )  # fmt: skip


# --- Results -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TrialOutcome:
    """One trial of the search, as the result lists it."""

    run_id: str
    family: str
    params: dict[str, Any]
    status: str
    validation_score: float | None = None
    cv_score: float | None = None
    error: str | None = None
    validation_metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainResult:
    """What a search produced.

    ``winner_run_id`` is the final run (refitted on train + validation, evaluated on the
    holdout, with the model saved): register that one. ``selected_trial_run_id`` is the
    trial it was chosen from.
    """

    experiment: str
    search_id: str
    dataset: str
    target: str
    task: str
    metric: str
    higher_is_better: bool
    positive_class: Any
    winner_run_id: str
    selected_trial_run_id: str
    family: str
    params: dict[str, Any]
    validation_score: float
    holdout_metrics: dict[str, float]
    trials: tuple[TrialOutcome, ...]
    stopped_by: str  # "trials" or "time_budget"
    seconds: float

    @property
    def failed_trials(self) -> int:
        return sum(trial.status == FAILED for trial in self.trials)


# --- Data --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Data:
    """The loaded rows and what each column is for."""

    frame: pd.DataFrame  # sorted by time; target already mapped (bool for classification)
    features: list[str]
    numeric: list[str]
    categorical: list[str]
    slices: list[str]
    dropped: dict[str, str]
    task: str
    positive_class: Any
    negative_class: Any
    time_column: str
    labelled_rows: int
    column_types: dict[str, str]


@dataclass(frozen=True)
class _Split:
    train: pd.DataFrame
    validation: pd.DataFrame
    holdout: pd.DataFrame


def _load_data(
    warehouse: Warehouse,
    dataset_name: str,
    target: str | None,
    *,
    features: Sequence[str] | None,
    slices: Sequence[str] | None,
    max_rows: int | None,
    seed: int,
    since: datetime | None = None,
    until: datetime | None = None,
) -> tuple[_Data, str]:
    """Read the labelled rows (of [since, until) when given; a sample of ``max_rows`` when given) and classify the columns."""
    dataset = get_dataset(warehouse, dataset_name)
    target = target or dataset.target
    if not target:
        raise MlopsError(f"Dataset {dataset_name!r} has no target registered; name the column to predict with --target.")
    roles = {column.name: column.role for column in dataset.columns}
    with warehouse.read() as connection:
        types = {name: kind for name, kind in table_columns(connection, TABLE_PREFIX + dataset_name).items() if not name.startswith("_")}
        if not types:
            raise MlopsError(f"Dataset {dataset_name!r} has no rows yet (table {TABLE_PREFIX}{dataset_name} is missing); ingest a batch first.")
        if target not in types:
            raise MlopsError(f"Dataset {dataset_name!r} has no column {target!r} to predict. Columns: {', '.join(types)}.")
        time_column = dataset.time_column
        if not time_column or time_column not in types:
            raise MlopsError(
                f"Dataset {dataset_name!r} has no time column, so it cannot be split by time into train, validation "
                "and holdout. Register the dataset with its time column (role timestamp)."
            )
        excluded = {target, time_column, dataset.id_column} | {
            name for name, role in roles.items() if role in ("id", "timestamp", "target", "label_time")
        }
        if target in (time_column, dataset.id_column):
            raise MlopsError(f"Column {target!r} is the dataset's {'time' if target == time_column else 'id'} column; it cannot be the target.")
        store_features: list[str] = []
        if features is not None:
            # Names that are not columns of the dataset come from the feature store, point in time.
            store_features = [name for name in features if name not in types and name not in excluded]
            unknown = [name for name in features if name in excluded]
            if unknown:
                raise MlopsError(f"Cannot use {', '.join(map(repr, unknown))} as features of {dataset_name!r}: not a feature column.")
            candidates = list(features)
        else:
            candidates = [name for name in types if name not in excluded and roles.get(name, "feature") == "feature"]
        if slices is not None:
            unknown = [name for name in slices if name not in types or name == target]
            if unknown:
                raise MlopsError(f"Cannot slice {dataset_name!r} by {', '.join(map(repr, unknown))}: no such column.")
        text_columns = [name for name in types if type_family(types[name]) == "text" and name not in (target, dataset.id_column)]
        wanted = list(dict.fromkeys([time_column, target, *(c for c in candidates if c in types), *text_columns, *(slices or ())]))
        table, target_sql = dataset_table(dataset_name), quote_identifier(target)
        select = ", ".join(quote_identifier(name) for name in wanted)
        where, params = f"{target_sql} IS NOT NULL", {}
        if since is not None:
            where += f" AND {quote_identifier(time_column)} >= $since"
            params["since"] = since
        if until is not None:
            # Point in time: rows before `until` whose label was known by then (its label-time column).
            where += f" AND {quote_identifier(time_column)} < $until"
            for name in (name for name, role in roles.items() if role == "label_time" and name in types):
                where += f" AND ({quote_identifier(name)} IS NULL OR {quote_identifier(name)} < $until)"
            params["until"] = until
        labelled = connection.execute(f"SELECT count(*) FROM {table} WHERE {where}", params).fetchone()[0]
        # The sample is drawn in DuckDB so only the rows used ever reach pandas; ordering by
        # a seeded hash keeps it the same from one run to the next.
        sample = "" if max_rows is None else f" ORDER BY hash(rowid, {int(seed)}) LIMIT {int(max_rows)}"
        frame = connection.execute(
            f"SELECT {select} FROM (SELECT rowid, * FROM {table} WHERE {where}{sample}) "
            f"ORDER BY {quote_identifier(time_column)}, rowid",  # rowid: equal times keep one order
            params,
        ).df()

    if store_features:
        frame = _with_store_features(warehouse, frame, store_features, time_column, dataset_name)
        types.update({name: "DOUBLE" if pd.api.types.is_numeric_dtype(frame[name]) else "VARCHAR" for name in store_features})
    task, positive, negative = _task_of(frame[target], types[target], dataset_name, target, labelled)
    if len(frame) < MIN_ROWS:
        period = _period_words(since, until)
        raise MlopsError(
            f"Dataset {dataset_name!r} has only {len(frame)} labelled rows{period}; the time-based split into train (60%), "
            f"validation (20%) and holdout (20%) needs at least {MIN_ROWS}. "
            + ("Widen the period (since / until) or ingest more labelled data." if period else "Ingest more labelled data first.")
        )
    if task == CLASSIFICATION:
        frame[target] = (frame[target] == positive).astype(bool)
    else:
        frame[target] = frame[target].astype(float)

    numeric, categorical, dropped = [], [], {}
    for name in candidates:
        family = type_family(types[name])
        if family in ("integer", "number", "boolean"):
            numeric.append(name)
            frame[name] = frame[name].to_numpy(dtype="float64", na_value=np.nan)
        elif family == "text":
            distinct = frame[name].nunique(dropna=True)
            if distinct > MAX_CATEGORIES:
                dropped[name] = f"{distinct} distinct values: an identifier or free text, not a category"
                continue
            categorical.append(name)
            frame[name] = frame[name].astype(object).where(frame[name].notna(), None)
        else:
            dropped[name] = f"type {types[name]} is not used as a feature"
    features_used = numeric + categorical
    if not features_used:
        raise MlopsError(f"Dataset {dataset_name!r} has no usable feature columns besides {target!r}; register feature columns first.")
    if slices is None:
        slices = [name for name in text_columns if name in frame and 2 <= frame[name].nunique(dropna=True) <= MAX_SLICE_VALUES]
    data = _Data(
        frame=frame.reset_index(drop=True),
        features=features_used,
        numeric=numeric,
        categorical=categorical,
        slices=list(slices),
        dropped=dropped,
        task=task,
        positive_class=positive,
        negative_class=negative,
        time_column=time_column,
        labelled_rows=int(labelled),
        column_types={name: types[name] for name in features_used},
    )
    return data, target


def _as_moment(value: datetime | date | str | None, name: str) -> datetime | None:
    """A ``since``/``until`` bound as an aware UTC datetime (a date means its midnight, UTC)."""
    if value is None:
        return None
    try:
        moment = pd.Timestamp(value)
    except (ValueError, TypeError):
        raise MlopsError(f"{name} must be a date or time such as 2026-08-20 or 2026-08-20T06:00, got {value!r}.") from None
    if pd.isna(moment):
        raise MlopsError(f"{name} must be a date or time such as 2026-08-20, got {value!r}.")
    moment = moment.tz_localize("UTC") if moment.tzinfo is None else moment.tz_convert("UTC")
    return moment.to_pydatetime()


def _period_words(since: datetime | None, until: datetime | None) -> str:
    if since is None and until is None:
        return ""
    parts = ([f"from {since:%Y-%m-%d %H:%M}"] if since else []) + ([f"before {until:%Y-%m-%d %H:%M}"] if until else [])
    return " " + " ".join(parts) + " UTC"


def _with_store_features(warehouse: Warehouse, frame: pd.DataFrame, names: list[str], time_column: str, dataset: str) -> pd.DataFrame:
    """Add feature-store features as of each row's time (the rows' entity keys are among their text columns)."""
    from mlops_app.features import training_set

    try:
        return training_set(warehouse, frame, names, time_column=time_column)
    except NotFoundError as error:
        raise MlopsError(f"Cannot use {', '.join(map(repr, names))} as features of {dataset!r}: {error}") from None


def _task_of(values: pd.Series, duck_type: str, dataset: str, target: str, labelled: int) -> tuple[str, Any, Any]:
    """Classification or regression, and for classification the positive and negative class."""
    family = type_family(duck_type)
    if family in ("date", "time", "timestamp", "other"):
        raise MlopsError(f"Column {target!r} of {dataset!r} holds {duck_type} values; a target must be a class or a number.")
    counts = values.value_counts(dropna=True)
    if len(counts) < 2:
        only = f" ({counts.index[0]})" if len(counts) else ""
        raise MlopsError(
            f"Target {target!r} of {dataset!r} has only one value{only} in its {labelled} labelled rows; a model "
            "needs at least two classes (or varying numbers) to learn from. Wait for more labels or pick another target."
        )
    if family == "boolean":
        return CLASSIFICATION, True, False
    if family in ("integer", "number") and len(counts) > 2:
        return REGRESSION, None, None
    if len(counts) > 2:
        raise MlopsError(
            f"Target {target!r} of {dataset!r} has {len(counts)} classes ({', '.join(map(str, counts.index[:5]))}...); "
            "the trainer handles two-class targets and numbers. Derive a yes/no column for the class that matters."
        )
    # Two values: the rarer one is the class to catch (ties: the larger value, e.g. 1 over 0).
    ordered = sorted(sorted(counts.index, key=str, reverse=True), key=lambda value: counts[value])
    return CLASSIFICATION, ordered[0], ordered[1]


def _split(data: _Data, target: str) -> _Split:
    frame = data.frame
    n = len(frame)
    train_end = int(n * TRAIN_SHARE)
    validation_end = int(n * (TRAIN_SHARE + VALIDATION_SHARE))
    split = _Split(frame.iloc[:train_end], frame.iloc[train_end:validation_end], frame.iloc[validation_end:])
    for label, part in (("train", split.train), ("validation", split.validation), ("holdout", split.holdout)):
        if len(part) < MIN_ROWS_PER_PART:
            raise MlopsError(f"The {label} period has only {len(part)} rows; need at least {MIN_ROWS_PER_PART}. Ingest more labelled data.")
        if data.task == CLASSIFICATION and part[target].nunique() < 2:
            start, end = part[data.time_column].iloc[0], part[data.time_column].iloc[-1]
            raise MlopsError(
                f"The {label} period ({start} to {end}) holds only one class of {target!r}, so models cannot be "
                f"{'trained' if label == 'train' else 'judged'} on it. Ingest more labelled data, or a longer period."
            )
    return split


def _fingerprint(frame: pd.DataFrame) -> str:
    digest = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    return f"{len(frame)}-rows-{int(np.bitwise_xor.reduce(digest)) if len(digest) else 0:016x}"


def _period(part: pd.DataFrame, time_column: str) -> dict[str, Any]:
    return {"rows": len(part), "start": str(part[time_column].iloc[0]), "end": str(part[time_column].iloc[-1])}


# --- Models and scores -------------------------------------------------------------------


def _pipeline(data: _Data, estimator: Any) -> Pipeline:
    """Impute and scale numbers, one-hot encode categories (unknown ones ignored), then fit."""
    prepare = ColumnTransformer(
        [
            ("numbers", Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]), data.numeric),
            ("categories", OneHotEncoder(handle_unknown="ignore", sparse_output=False), data.categorical),
        ]
    )
    return Pipeline([("prepare", prepare), ("model", estimator)])


def _predict(model: Pipeline, features: pd.DataFrame, task: str) -> np.ndarray:
    """Probability of the positive class, or the estimate; refuses NaN or infinite output."""
    if task == CLASSIFICATION:
        classes = list(model.classes_)
        predicted = model.predict_proba(features)[:, classes.index(True)]
    else:
        predicted = np.asarray(model.predict(features), dtype=float)
    if not np.all(np.isfinite(predicted)):
        raise ValueError(
            f"The model produced {int((~np.isfinite(predicted)).sum())} non-finite predictions (NaN or infinity) "
            f"out of {len(predicted)}; its metrics would be NaN."
        )
    return predicted


def _metrics(truth: np.ndarray, predicted: np.ndarray, task: str) -> dict[str, float]:
    if task == CLASSIFICATION:
        return classification_metrics(truth, predicted, threshold=DEFAULT_THRESHOLD)
    return regression_metrics(truth, predicted)


def _better(metric: str) -> bool:
    return METRICS[metric].higher_is_better


def _cross_validate(data: _Data, split: _Split, target: str, family: Family, params: Mapping[str, Any], seed: int, folds: int) -> dict[str, list[float]]:
    """Per-metric fold scores of a TimeSeriesSplit on the training period (fit on the past only)."""
    features, truth = split.train[data.features], split.train[target].to_numpy()
    scores: dict[str, list[float]] = {}
    for fit_rows, score_rows in TimeSeriesSplit(n_splits=folds).split(features):
        if data.task == CLASSIFICATION and len(np.unique(truth[fit_rows])) < 2:
            continue  # an early fold with one class cannot be fitted; later folds can
        model = _pipeline(data, family.build(params, seed)).fit(features.iloc[fit_rows], truth[fit_rows])
        fold = _metrics(truth[score_rows], _predict(model, features.iloc[score_rows], data.task), data.task)
        for name, value in fold.items():
            scores.setdefault(name, []).append(value)
    return scores


def _curve(model: Pipeline, features: pd.DataFrame, truth: np.ndarray, task: str, metric: str) -> tuple[list[tuple[int, float]], int]:
    """The validation metric as an ensemble grows: (iterations or trees, value) points, and the final size.

    Boosting models replay their stages; forests average their first k trees. Linear
    models have no curve (final size 0).
    """
    estimator = model[-1]
    prepared = None
    stages: Any = None
    total = 0
    if hasattr(estimator, "n_iter_") and hasattr(estimator, "staged_predict"):
        prepared = model[:-1].transform(features)
        total = int(estimator.n_iter_)
        if task == CLASSIFICATION:
            column = list(estimator.classes_).index(True)
            stages = (stage[:, column] for stage in estimator.staged_predict_proba(prepared))
        else:
            stages = estimator.staged_predict(prepared)
    elif isinstance(getattr(estimator, "estimators_", None), list):
        prepared = model[:-1].transform(features)
        total = len(estimator.estimators_)

        def forest_stages():
            running = np.zeros(len(features))
            column = list(estimator.classes_).index(True) if task == CLASSIFICATION else None
            for index, tree in enumerate(estimator.estimators_, start=1):
                single = tree.predict_proba(prepared)[:, column] if column is not None else tree.predict(prepared)
                running += single
                yield running / index

        stages = forest_stages()
    if stages is None or total < 2:
        return [], total
    # The final size is left out: the run logs its exact final metrics at that step.
    checkpoints = set(np.unique(np.linspace(1, total, CURVE_POINTS + 1).astype(int))[:-1].tolist())
    last = max(checkpoints)
    points = []
    for step, predicted in enumerate(stages, start=1):
        if step in checkpoints and np.all(np.isfinite(predicted)):
            value = _metrics(truth, predicted, task).get(metric)
            if value is not None:
                points.append((step, value))
        if step >= last:
            break
    return points, total


# --- The search --------------------------------------------------------------------------


def _candidates(families: Sequence[Family], trials: int, rng: np.random.Generator) -> list[tuple[Family, dict[str, Any]]]:
    """Trial configurations: each family's defaults first, then random draws, round robin, no repeats."""
    chosen: list[tuple[Family, dict[str, Any]]] = []
    seen: set[tuple[str, str]] = set()
    for index in range(trials):
        family = families[index % len(families)]
        params = dict(family.defaults) if index < len(families) else family.sample(rng)
        for _ in range(20):
            key = (family.name, repr(sorted(params.items(), key=lambda item: item[0])))
            if key not in seen:
                break
            params = family.sample(rng)
        seen.add(key)
        chosen.append((family, params))
    return chosen


def _run_trial(
    run: Run, data: _Data, split: _Split, target: str, family: Family, params: Mapping[str, Any], *, metric: str, seed: int, cv_folds: int
) -> tuple[dict[str, float], float | None]:
    """Cross-validate, fit on train, score on validation; log it all.

    Returns:
        The validation metrics and the cross-validation mean of ``metric`` (None when no
        fold could compute it).
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cv = _cross_validate(data, split, target, family, params, seed, cv_folds)
        model = _pipeline(data, family.build(params, seed)).fit(split.train[data.features], split.train[target].to_numpy())
        truth = split.validation[target].to_numpy()
        validation = _metrics(truth, _predict(model, split.validation[data.features], data.task), data.task)
        curve, final_step = _curve(model, split.validation[data.features], truth, data.task, metric)
    cv_means = {f"cv_{name}": float(np.mean(values)) for name, values in cv.items()}
    if metric in cv and len(cv[metric]) > 1:
        cv_means[f"cv_{metric}_std"] = float(np.std(cv[metric]))
    run.log_metrics(cv_means, step=final_step)
    for step, value in curve:
        run.log_metric(metric, value, step=step)
    # Logged at the model's final size, so the run's value of each metric is the final one.
    run.log_metrics(validation, step=final_step)
    messages = sorted({str(warning.message).splitlines()[0][:200] for warning in caught})
    if messages:
        run.set_tags({"warnings": f"{len(caught)} warnings, e.g. {messages[0]}"})
    if metric not in validation:
        raise ValueError(f"Metric {metric!r} could not be computed on the validation period.")
    return validation, cv_means.get(f"cv_{metric}")


def _holdout_slices(holdout: pd.DataFrame, truth: np.ndarray, predicted: np.ndarray, data: _Data) -> list[dict[str, Any]]:
    rows = []
    for column in data.slices:
        values = holdout[column].astype(object).where(holdout[column].notna(), "(missing)").to_numpy()
        for value in sorted(set(values), key=str):
            mask = values == value
            entry: dict[str, Any] = {"column": column, "value": str(value), "rows": int(mask.sum())}
            # A slice of one row has no R²; keep what is defined rather than store NaN.
            entry["metrics"] = {k: v for k, v in _metrics(truth[mask], predicted[mask], data.task).items() if math.isfinite(v)}
            if data.task == CLASSIFICATION:
                entry["positive_rate"] = float(truth[mask].mean())
            rows.append(entry)
    return rows


def _calibration_bins(truth: np.ndarray, predicted: np.ndarray) -> list[dict[str, float]]:
    """Mean prediction against mean outcome in up to 10 bins of equal size (by prediction).

    For a classifier: predicted probability against the observed share of the positive
    class; for a regressor: mean estimate against mean measured value.
    """
    edges = np.unique(np.quantile(predicted, np.linspace(0, 1, CALIBRATION_BINS + 1)))
    # Tied predictions (trees output few distinct values) stay together in one bin.
    index = np.searchsorted(edges[1:-1], predicted, side="right")
    return [
        {"predicted": float(predicted[index == b].mean()), "observed": float(truth[index == b].mean()), "rows": int((index == b).sum())}
        for b in np.unique(index)
    ]


def _evaluate_holdout(model: Pipeline, split: _Split, data: _Data, target: str, metric: str, seed: int) -> dict[str, Any]:
    """Evaluate the winner on the holdout: the only place that reads the holdout rows.

    Returns the result payloads to store with the winner run, keyed by result kind.
    """
    holdout = split.holdout
    features, truth = holdout[data.features], holdout[target].to_numpy()
    predicted = _predict(model, features, data.task)
    overall = _metrics(truth, predicted, data.task)
    results: dict[str, Any] = {
        RESULT_HOLDOUT: {
            "metrics": overall,
            **_period(holdout, data.time_column),
            "threshold": DEFAULT_THRESHOLD if data.task == CLASSIFICATION else None,
        },
        RESULT_SLICES: _holdout_slices(holdout, truth, predicted, data),
    }
    if data.task == CLASSIFICATION:
        decided = predicted >= DEFAULT_THRESHOLD
        results[RESULT_CONFUSION] = {
            "labels": [str(data.negative_class), str(data.positive_class)],
            "matrix": [[int((~truth & ~decided).sum()), int((~truth & decided).sum())], [int((truth & ~decided).sum()), int((truth & decided).sum())]],
            "threshold": DEFAULT_THRESHOLD,
        }
        results[RESULT_CALIBRATION] = {"bins": _calibration_bins(truth, predicted), "brier": float(np.mean((predicted - truth) ** 2))}
    else:
        results[RESULT_CALIBRATION] = {"bins": _calibration_bins(truth, predicted)}
    sample = holdout.sample(n=min(IMPORTANCE_ROWS, len(holdout)), random_state=seed)
    if data.task == CLASSIFICATION and sample[target].nunique() < 2:
        sample = holdout  # a sample with one class has no ROC AUC to lose
    sign = 1.0 if _better(metric) else -1.0

    def score(estimator: Any, rows: pd.DataFrame, labels: np.ndarray) -> float:
        value = _metrics(labels, _predict(estimator, rows, data.task), data.task).get(metric, float("nan"))
        return sign * value

    importance = permutation_importance(
        model, sample[data.features], sample[target].to_numpy(), scoring=score, n_repeats=IMPORTANCE_REPEATS, random_state=seed, n_jobs=1
    )
    ranked = sorted(
        zip(data.features, importance.importances_mean, importance.importances_std, strict=True), key=lambda item: -item[1]
    )
    results[RESULT_IMPORTANCE] = {
        "method": f"permutation on {len(sample)} holdout rows: how much {metric} worsens when the column is shuffled",
        "metric": metric,
        "features": [{"feature": name, "importance": float(mean), "std": float(std)} for name, mean, std in ranked],
    }
    return results


def train(
    warehouse: Warehouse,
    *,
    dataset: str,
    target: str | None,
    experiment: str,
    identity: Identity,
    trials: int = 20,
    time_budget_s: float | None = None,
    metric: str | None = None,
    features: Sequence[str] | None = None,
    slices: Sequence[str] | None = None,
    max_rows: int | None = None,
    cv_folds: int = 3,
    seed: int = 0,
    families: Sequence[Family] | None = None,
    progress: ProgressCallback | None = None,
    git_cwd: Path | str | None = None,
    threads: int | None = 1,
    since: datetime | date | str | None = None,
    until: datetime | date | str | None = None,
) -> TrainResult:
    """Search models for ``target`` of ``dataset``; log every trial as a run of ``experiment``.

    Args:
        target: the column to predict; the dataset's registered target when None.
        trials: how many configurations to try (at least one per family first).
        time_budget_s: stop starting new trials after this many seconds (the final
            refit and holdout evaluation come on top).
        metric: what selection optimises, a catalogue name (``roc_auc``, ``recall_bad``,
            ``mae``...); ``roc_auc`` for classification, ``mae`` for regression by default.
        features: feature columns; by default every column with the feature role.
        slices: columns to break holdout metrics down by; by default every text column
            with 2-20 values (e.g. orchard block, variety).
        max_rows: train on a uniform sample of this many labelled rows (drawn in DuckDB).
        cv_folds: folds of the time-series cross-validation on the training period.
        families: model families to search; :func:`default_families` by default.
        progress: called as ``progress(done, total, message)`` after each step.
        since: train on rows whose time is at or after this moment (a date means its
            midnight UTC), e.g. only data from after a change in the source; None: all.
        until: and before this moment, with labels known by then (a label-time column,
            when the dataset has one, must be before it too): the data a model trained at
            that moment could have seen. None: every labelled row.
        threads: OpenMP/BLAS threads for fitting (None: the libraries' default). One is
            fastest on small machines: measured on 2 busy cores, histogram gradient
            boosting fitted 3x slower with its default threads than with one.

    Returns:
        The :class:`TrainResult`; the winner run holds the model and the holdout results.

    Raises:
        NotFoundError: unknown dataset.
        MlopsError: unknown target or features, a target with one class, too few rows for
            the split, a period with one class, a bad argument, or every trial failed.
        PermissionDeniedError: the identity may not train models.
    """
    require(identity, "train_model")
    with threadpool_limits(limits=threads):
        return _train(
            warehouse, dataset=dataset, target=target, experiment=experiment, identity=identity, trials=trials,
            time_budget_s=time_budget_s, metric=metric, features=features, slices=slices, max_rows=max_rows,
            cv_folds=cv_folds, seed=seed, families=families, progress=progress, git_cwd=git_cwd,
            since=_as_moment(since, "since"), until=_as_moment(until, "until"),
        )  # fmt: skip


def _train(
    warehouse: Warehouse,
    *,
    dataset: str,
    target: str | None,
    experiment: str,
    identity: Identity,
    trials: int,
    time_budget_s: float | None,
    metric: str | None,
    features: Sequence[str] | None,
    slices: Sequence[str] | None,
    max_rows: int | None,
    cv_folds: int,
    seed: int,
    families: Sequence[Family] | None,
    progress: ProgressCallback | None,
    git_cwd: Path | str | None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> TrainResult:
    started = time.monotonic()
    validate_experiment_name(experiment)
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise MlopsError(f"trials must be a whole number of at least 1, got {trials!r}.")
    if time_budget_s is not None and not (time_budget_s > 0):
        raise MlopsError(f"The time budget must be a positive number of seconds, got {time_budget_s!r}.")
    if cv_folds < 2:
        raise MlopsError(f"cv_folds must be at least 2, got {cv_folds!r}.")
    if max_rows is not None and max_rows < MIN_ROWS:
        raise MlopsError(f"max_rows must be at least {MIN_ROWS}, got {max_rows!r}.")
    if since is not None and until is not None and since >= until:
        raise MlopsError(f"since ({since:%Y-%m-%d %H:%M}) must be before until ({until:%Y-%m-%d %H:%M}).")
    data, target = _load_data(
        warehouse, dataset, target, features=features, slices=slices, max_rows=max_rows, seed=seed, since=since, until=until
    )
    metric = metric or DEFAULT_METRIC[data.task]
    if metric not in TASK_METRICS[data.task]:
        raise MlopsError(
            f"Metric {metric!r} does not fit a {data.task} target; choose one of {', '.join(TASK_METRICS[data.task])}."
        )
    split = _split(data, target)
    families = tuple(families) if families is not None else default_families(data.task)
    wrong = [family.name for family in families if family.task != data.task]
    if not families or wrong:
        raise MlopsError(f"Model families {', '.join(wrong) or '(none)'} do not fit a {data.task} target.")
    higher = _better(metric)
    rng = np.random.default_rng(seed)
    search_id = uuid.uuid4().hex[:12]
    fingerprint = _fingerprint(data.frame)
    plan = _candidates(families, trials, rng)
    total_steps = len(plan) + 1
    report = progress or (lambda done, total, message: None)
    common_tags = {
        "search_id": search_id,
        "dataset": dataset,
        "target": target,
        "task": data.task,
        "selection_metric": metric,
        "train_rows": len(split.train),
        "validation_rows": len(split.validation),
        "cv_folds": cv_folds,
    }

    outcomes: list[TrialOutcome] = []
    stopped_by = "trials"
    for index, (family, params) in enumerate(plan):
        if index and time_budget_s is not None and time.monotonic() - started >= time_budget_s:
            stopped_by = "time_budget"
            break
        report(index, total_steps, f"Trial {index + 1}/{len(plan)}: {family.name}")
        run = start_run(
            experiment,
            warehouse=warehouse,
            name=f"{family.name} #{index + 1}",
            author=identity.email,
            params={"family": family.name, **params},
            tags={**common_tags, "role": ROLE_TRIAL, "family_kind": family.kind},
            dataset_fingerprint=fingerprint,
            git_cwd=git_cwd,
        )
        try:
            with run:
                validation, cv_score = _run_trial(
                    run, data, split, target, family, params, metric=metric, seed=seed + index, cv_folds=cv_folds
                )
        except Exception as error:  # recorded as a failed run by the with-block; the search goes on
            message = f"{type(error).__name__}: {error}"
            outcomes.append(TrialOutcome(run.run_id, family.name, dict(params), FAILED, error=message))
            report(index + 1, total_steps, f"Trial {index + 1} ({family.name}) failed: {message}")
            continue
        outcomes.append(
            TrialOutcome(run.run_id, family.name, dict(params), run.status, validation[metric], cv_score, validation_metrics=validation)
        )
    report(len(outcomes), total_steps, "Search finished")

    succeeded = [(index, outcome) for index, outcome in enumerate(outcomes) if outcome.status != FAILED]
    if not succeeded:
        first = next((outcome.error for outcome in outcomes if outcome.error), "none ran")
        raise MlopsError(f"All {len(outcomes)} trials failed, so there is no model to evaluate. First error: {first}")

    def rank(item: tuple[int, TrialOutcome]) -> tuple[float, float, int]:
        index, outcome = item
        sign = -1.0 if higher else 1.0
        cv_value = outcome.cv_score if outcome.cv_score is not None else (-math.inf if higher else math.inf)
        return (sign * outcome.validation_score, sign * cv_value, index)

    best_index, best = min(succeeded, key=rank)
    family = plan[best_index][0]
    report(len(outcomes), total_steps, f"Evaluating the winner ({best.family}) on the holdout")

    with start_run(
        experiment,
        warehouse=warehouse,
        name=f"winner: {best.family} (trial #{best_index + 1})",
        author=identity.email,
        params={"family": best.family, **best.params},
        tags={**common_tags, "role": ROLE_WINNER, "family_kind": family.kind, "selected_trial": best.run_id, "refit_on": "train+validation"},
        dataset_fingerprint=fingerprint,
        git_cwd=git_cwd,
    ) as winner:
        seed_used = seed + best_index
        refit_rows = pd.concat([split.train, split.validation])
        model = _pipeline(data, family.build(best.params, seed_used)).fit(refit_rows[data.features], refit_rows[target].to_numpy())
        results = _evaluate_holdout(model, split, data, target, metric, seed_used)
        holdout_metrics = results[RESULT_HOLDOUT]["metrics"]
        # The selected trial's validation metrics, so the winner sorts beside its trial.
        winner.log_metrics(best.validation_metrics)
        winner.log_metrics({f"holdout_{name}": value for name, value in holdout_metrics.items()})
        seconds = time.monotonic() - started
        results[RESULT_SPLIT] = {
            "time_column": data.time_column,
            "labelled_rows": data.labelled_rows,
            "rows_used": len(data.frame),
            "since": since.isoformat() if since else None,
            "until": until.isoformat() if until else None,
            "train": _period(split.train, data.time_column),
            "validation": _period(split.validation, data.time_column),
            "holdout": _period(split.holdout, data.time_column),
        }
        results[RESULT_SEARCH] = {
            "search_id": search_id,
            "metric": metric,
            "higher_is_better": higher,
            "trials": len(outcomes),
            "failed": sum(outcome.status == FAILED for outcome in outcomes),
            "stopped_by": stopped_by,
            "families": [family.name for family in families],
            "selected_trial": best.run_id,
            "validation_score": best.validation_score,
            "cv_score": best.cv_score,
            "seconds": round(seconds, 2),
        }
        results[RESULT_MODEL_INPUTS] = {
            "dataset": dataset,
            "target": target,
            "task": data.task,
            "positive_class": _plain(data.positive_class),
            "negative_class": _plain(data.negative_class),
            "features": data.features,
            "input_schema": [{"name": name, "dtype": data.column_types[name]} for name in data.features],
            "dropped_columns": data.dropped,
            "slices": data.slices,
        }
        for kind, payload in results.items():
            winner.log_result(kind, payload)
        winner.log_model(model)
    report(total_steps, total_steps, "Done")
    return TrainResult(
        experiment=experiment,
        search_id=search_id,
        dataset=dataset,
        target=target,
        task=data.task,
        metric=metric,
        higher_is_better=higher,
        positive_class=data.positive_class,
        winner_run_id=winner.run_id,
        selected_trial_run_id=best.run_id,
        family=best.family,
        params=dict(best.params),
        validation_score=best.validation_score,
        holdout_metrics=dict(holdout_metrics),
        trials=tuple(outcomes),
        stopped_by=stopped_by,
        seconds=time.monotonic() - started,
    )


def _plain(value: Any) -> Any:
    """A class label as plain JSON (numpy scalars become Python values)."""
    return value.item() if hasattr(value, "item") else value
