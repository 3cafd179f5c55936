"""What the Experiments page reads: runs tables, comparisons, curves and stored results.

Every function does its work in DuckDB inside one unit of work and returns a small result:
a page of runs, a comparison of a few dozen runs, the points of a few curves. Params and
metrics are stored long (one row per run and key); they are pivoted into columns only for
the rows a page shows. A run's value of a metric is its latest one: the value at the
highest step, the last logged on a tie (see :mod:`mlops_app.tracking`).

Also here: :func:`register_run_model`, the page's "register this run's model" action.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, NamedTuple

import pandas as pd

from mlops_app.auth import Identity, require
from mlops_app.errors import MlopsError, NotFoundError
from mlops_app.metric_catalog import METRICS
from mlops_app.registry import ModelVersion, Registry
from mlops_app.tracking import FINISHED, RUN_STATUSES, TAG_DATASET, load_run_model, validate_experiment_name, validate_run_id
from mlops_app.warehouse import Warehouse

RUN_COLUMNS = ("run_id", "experiment", "name", "status", "started_at", "ended_at", "duration_s", "author", "git_commit", "dataset_fingerprint", "error")
SORTABLE = ("started_at", "ended_at", "duration_s", "name", "status", "author")
PARAM_PREFIX, METRIC_PREFIX, TAG_PREFIX = "param.", "metric.", "tag."
FILTER_KINDS = ("param", "metric", "tag", "status", "date")
TEXT_OPS = ("=", "!=", "contains")
NUMBER_OPS = ("=", "!=", ">", ">=", "<", "<=")
MAX_PAGE_SIZE = 500
MAX_COMPARE = 200
MAX_POINTS_RUNS = 20_000
TAG_REGISTERED = "registered_as"

# Prefixes and suffixes the trainer and common notebooks put around catalogue names.
_METRIC_PREFIXES = ("holdout_", "validation_", "val_", "cv_", "test_", "train_")
_LOWER_IS_BETTER_WORDS = ("loss", "error", "mae", "mse", "rmse")

# A run's "duration": to its end, or to now while it is still running.
_DURATION_SQL = "epoch(coalesce(r.ended_at, now()) - r.started_at)"
_RUN_SELECT = f"""
    r.run_id, r.experiment, r.name, r.status, r.started_at, r.ended_at, {_DURATION_SQL} AS duration_s,
    r.author, r.git_commit, r.dataset_fingerprint, r.error
"""
# The latest value of each (run, key), for the keys and runs a query needs.
_LATEST_METRICS = "SELECT run_id, key, arg_max(value, (step, logged_at)) AS value FROM run_metrics"


@dataclass(frozen=True)
class RunFilter:
    """One condition on runs.

    Args:
        kind: ``param``, ``metric``, ``tag``, ``status`` or ``date`` (the start time).
        key: the param, metric or tag name (not used for status and date).
        op: ``=``, ``!=``, ``contains`` (params and tags), ``>``, ``>=``, ``<``, ``<=``
            (metrics, dates, and params compared as numbers), ``in`` (status, a list).
        value: what to compare with.
    """

    kind: str
    key: str | None = None
    op: str = "="
    value: Any = None


class RunsPage(NamedTuple):
    """One page of runs (``rows``) and how many runs match in all (``total``)."""

    rows: pd.DataFrame
    total: int


@dataclass(frozen=True)
class Comparison:
    """Runs side by side.

    Attributes:
        runs: one row per run, in the order asked for (the ``RUN_COLUMNS``).
        params: one row per param key; a column per run id (text, None where a run lacks
            it) and ``differs`` (True when not every run has the same value).
        metrics: one row per metric key; a column per run id, ``higher_is_better`` (None
            when the direction is unknown), ``best`` (the run ids holding the best value;
            empty when the direction is unknown or every run has the same value).
    """

    runs: pd.DataFrame
    params: pd.DataFrame
    metrics: pd.DataFrame


def metric_higher_is_better(key: str) -> bool | None:
    """Whether a bigger value of metric ``key`` is better; None when unknown.

    Catalogue names decide (``roc_auc`` yes, ``mae`` no), also behind the prefixes the
    trainer uses (``holdout_``, ``cv_``...). A ``_std`` spread is better small; unknown
    keys that name a loss or an error are better small too.
    """
    name = key.lower()
    if name.endswith("_std"):
        return False
    for prefix in _METRIC_PREFIXES:
        if name.startswith(prefix) and name[len(prefix) :] in METRICS:
            name = name[len(prefix) :]
            break
    if name in METRICS:
        return METRICS[name].higher_is_better
    if any(word in re.split(r"[^a-z0-9]+", name) for word in _LOWER_IS_BETTER_WORDS):
        return False
    return None


# --- Filters ---------------------------------------------------------------------------

_FILTER_TEXT = re.compile(
    r"^\s*(?:(?P<kind>param|metric|tag)\.(?P<key>[^\s=!<>]+)|(?P<plain>status|date))\s*"
    r"(?P<op>>=|<=|!=|=|>|<|contains\b|in\b)\s*(?P<value>.+?)\s*$",
    re.IGNORECASE,
)


def parse_filters(text: str) -> list[RunFilter]:
    """Read filters written as text, joined by ``and``.

    Examples: ``metric.roc_auc >= 0.9``, ``param.family = extra_trees``,
    ``tag.role = winner and status = finished``, ``date >= 2026-07-01``,
    ``status in finished, failed``.

    Raises:
        MlopsError: a part cannot be read; the message shows the accepted forms.
    """
    filters = []
    for part in re.split(r"\s+and\s+", text.strip(), flags=re.IGNORECASE) if text.strip() else []:
        match = _FILTER_TEXT.match(part)
        if match is None:
            raise MlopsError(
                f"Cannot read the filter {part!r}. Write e.g. `metric.roc_auc >= 0.9`, `param.family = extra_trees`, "
                "`tag.role = winner`, `status = failed` or `date >= 2026-07-01`, joined by `and`."
            )
        kind = (match["kind"] or match["plain"]).lower()
        op = match["op"].lower()
        value: Any = match["value"].strip().strip("'\"")
        if op == "in":
            value = [item.strip().strip("'\"") for item in value.split(",") if item.strip()]
        filters.append(RunFilter(kind, match["key"], op, value))
    return filters


def _number(value: Any, what: str) -> float:
    try:
        if isinstance(value, bool):
            raise TypeError
        number = float(value)
    except (TypeError, ValueError):
        raise MlopsError(f"{what} compares numbers, but {value!r} is not a number.") from None
    if not math.isfinite(number):
        raise MlopsError(f"{what} needs a finite number, got {value!r}.")
    return number


def _moment(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        raise MlopsError(f"The date filter needs a date like 2026-07-01 or 2026-07-01T09:30, got {value!r}.") from None


def _filter_sql(item: RunFilter, params: list[Any]) -> str:
    """SQL condition on runs ``r`` for one filter; values are appended to ``params``."""

    def bind(value: Any) -> str:
        params.append(value)
        return f"${len(params)}"

    if item.kind not in FILTER_KINDS:
        raise MlopsError(f"Cannot filter runs by {item.kind!r}; use one of {', '.join(FILTER_KINDS)}.")
    if item.kind == "status":
        values = list(item.value) if item.op == "in" and not isinstance(item.value, str) else [item.value]
        unknown = [value for value in values if value not in RUN_STATUSES]
        if unknown or item.op not in ("=", "!=", "in"):
            raise MlopsError(f"Filter runs by status with =, != or in, and the statuses {', '.join(RUN_STATUSES)}.")
        condition = f"r.status IN (SELECT unnest({bind(values)}::VARCHAR[]))"
        return f"NOT ({condition})" if item.op == "!=" else condition
    if item.kind == "date":
        if item.op not in NUMBER_OPS or item.op in ("=", "!="):
            raise MlopsError("Filter runs by date with >, >=, < or <= (e.g. `date >= 2026-07-01`).")
        return f"r.started_at {item.op} {bind(_moment(item.value))}"
    what = f"The filter on {item.kind} {item.key!r}"
    if not item.key:
        raise MlopsError(f"A {item.kind} filter needs the {item.kind}'s name, e.g. `{item.kind}.NAME = value`.")
    key = bind(item.key)
    if item.kind == "metric":
        if item.op not in NUMBER_OPS:
            raise MlopsError(f"{what} compares numbers: use one of {', '.join(NUMBER_OPS)}.")
        number = bind(_number(item.value, what))
        return f"r.run_id IN (SELECT run_id FROM ({_LATEST_METRICS} WHERE key = {key} GROUP BY ALL) WHERE value {item.op} {number})"
    table = "run_params" if item.kind == "param" else "run_tags"
    if item.op in ("=", "!="):
        value_sql = f"value = {bind(str(item.value))}"
    elif item.op == "contains":
        value_sql = f"contains(lower(value), lower({bind(str(item.value))}))"
    elif item.op in NUMBER_OPS and item.kind == "param":
        value_sql = f"TRY_CAST(value AS DOUBLE) {item.op} {bind(_number(item.value, what))}"
    else:
        raise MlopsError(f"{what} uses {item.op!r}; use one of {', '.join(TEXT_OPS)}" + (" or a number comparison." if item.kind == "param" else "."))
    condition = f"r.run_id IN (SELECT run_id FROM {table} WHERE key = {key} AND {value_sql})"
    if item.op == "!=":
        # "!=": the run has the key, with another value.
        return f"r.run_id IN (SELECT run_id FROM {table} WHERE key = {key}) AND NOT ({condition})"
    return condition


def _where(experiment: str, filters: Iterable[RunFilter], params: list[Any]) -> str:
    params.append(experiment)
    conditions = [f"r.experiment = ${len(params)}"]
    conditions += [_filter_sql(item, params) for item in filters]
    return " AND ".join(conditions)


# --- Reads -----------------------------------------------------------------------------


def list_experiments(warehouse: Warehouse) -> pd.DataFrame:
    """Every experiment with its run counts, most recently active first.

    Returns:
        Columns name, description, created_at, runs, finished, failed, running, last_run_at.
    """
    return warehouse.query(
        """
        SELECT e.name, e.description, e.created_at, count(r.run_id) AS runs,
               count(*) FILTER (WHERE r.status = 'finished') AS finished,
               count(*) FILTER (WHERE r.status = 'failed') AS failed,
               count(*) FILTER (WHERE r.status = 'running') AS running,
               max(r.started_at) AS last_run_at
        FROM experiments e LEFT JOIN runs r ON r.experiment = e.name
        GROUP BY ALL
        ORDER BY last_run_at DESC NULLS LAST, e.name
        """
    )


def _check_experiment(connection, experiment: str) -> None:
    validate_experiment_name(experiment)
    if connection.execute("SELECT 1 FROM experiments WHERE name = $1", [experiment]).fetchone() is None:
        known = [row[0] for row in connection.execute("SELECT name FROM experiments ORDER BY name").fetchall()]
        raise NotFoundError(
            f"No experiment named {experiment!r}. Experiments: {', '.join(known) if known else 'none yet (run `mlops-app train`)'}."
        )


def _sort_sql(sort_by: str, descending: bool, params: list[Any]) -> tuple[str, str]:
    """(JOIN clause, ORDER BY expression) for a sort key."""
    direction = "DESC" if descending else "ASC"
    if sort_by in SORTABLE:
        return "", f"{sort_by} {direction} NULLS LAST"
    for prefix, table in ((METRIC_PREFIX, None), (PARAM_PREFIX, "run_params"), (TAG_PREFIX, "run_tags")):
        if sort_by.startswith(prefix) and len(sort_by) > len(prefix):
            params.append(sort_by[len(prefix) :])
            key = f"${len(params)}"
            if table is None:
                join = f"LEFT JOIN ({_LATEST_METRICS} WHERE key = {key} GROUP BY ALL) s ON s.run_id = r.run_id"
                return join, f"s.value {direction} NULLS LAST"
            join = f"LEFT JOIN (SELECT run_id, value FROM {table} WHERE key = {key}) s ON s.run_id = r.run_id"
            # Numbers sort as numbers ("10" after "9"), then text.
            return join, f"TRY_CAST(s.value AS DOUBLE) {direction} NULLS LAST, s.value {direction} NULLS LAST"
    raise MlopsError(
        f"Cannot sort runs by {sort_by!r}; use one of {', '.join(SORTABLE)}, or metric.NAME, param.NAME, tag.NAME."
    )


def _wide(connection, base: pd.DataFrame, run_ids: list[str], *, tags: bool = True) -> pd.DataFrame:
    """Add ``param.*``, ``metric.*`` (latest values) and ``tag.*`` columns for ``run_ids`` to ``base``."""
    if not run_ids:
        return base
    ids = "(SELECT unnest($1::VARCHAR[]))"
    parts = [
        (PARAM_PREFIX, connection.execute(f"SELECT run_id, key, value FROM run_params WHERE run_id IN {ids}", [run_ids]).df()),
        (METRIC_PREFIX, connection.execute(f"{_LATEST_METRICS} WHERE run_id IN {ids} GROUP BY ALL", [run_ids]).df()),
    ]
    if tags:
        parts.append((TAG_PREFIX, connection.execute(f"SELECT run_id, key, value FROM run_tags WHERE run_id IN {ids}", [run_ids]).df()))
    frame = base
    for prefix, long in parts:
        if long.empty:
            continue
        wide = long.pivot(index="run_id", columns="key", values="value")
        wide = wide[sorted(wide.columns)]
        wide.columns = [prefix + str(key) for key in wide.columns]
        frame = frame.merge(wide, how="left", left_on="run_id", right_index=True)
    return frame


def runs_page(
    warehouse: Warehouse,
    experiment: str,
    *,
    sort_by: str = "started_at",
    descending: bool = True,
    filters: Sequence[RunFilter] = (),
    page: int = 1,
    page_size: int = 50,
) -> RunsPage:
    """One page of an experiment's runs, sorted and filtered in DuckDB.

    Args:
        sort_by: a run column (``started_at``, ``ended_at``, ``duration_s``, ``name``,
            ``status``, ``author``) or ``metric.NAME``, ``param.NAME``, ``tag.NAME``. Runs
            without the value come last either way.
        filters: conditions that must all hold (see :class:`RunFilter`, :func:`parse_filters`).
        page: 1-based page number; a page past the end is empty (``total`` still counts).

    Returns:
        ``RunsPage(rows, total)``: the rows have the ``RUN_COLUMNS`` plus ``param.*``,
        ``metric.*`` and ``tag.*`` columns for the keys these rows have.

    Raises:
        NotFoundError: no such experiment (the message lists the known ones).
        MlopsError: a bad sort key, filter or page.
    """
    if isinstance(page, bool) or not isinstance(page, int) or page < 1:
        raise MlopsError(f"Page numbers start at 1, got {page!r}.")
    if isinstance(page_size, bool) or not isinstance(page_size, int) or not 1 <= page_size <= MAX_PAGE_SIZE:
        raise MlopsError(f"Page size must be between 1 and {MAX_PAGE_SIZE}, got {page_size!r}.")
    params: list[Any] = []
    where = _where(experiment, filters, params)
    where_params = list(params)
    join, order = _sort_sql(sort_by, descending, params)
    with warehouse.read() as connection:
        _check_experiment(connection, experiment)
        total = connection.execute(f"SELECT count(*) FROM runs r WHERE {where}", where_params).fetchone()[0]
        params += [page_size, (page - 1) * page_size]
        rows = connection.execute(
            f"SELECT {_RUN_SELECT} FROM runs r {join} WHERE {where} "
            f"ORDER BY {order}, r.started_at DESC, r.run_id LIMIT ${len(params) - 1} OFFSET ${len(params)}",
            params,
        ).df()
        rows = _wide(connection, rows, rows["run_id"].tolist())
    return RunsPage(rows.reset_index(drop=True), int(total))


def run_keys(warehouse: Warehouse, experiment: str) -> dict[str, list[str]]:
    """The param, metric and tag names an experiment's runs use, for filter and axis pickers.

    Returns:
        ``{"params": [...], "metrics": [...], "tags": [...]}``, each sorted.
    """
    with warehouse.read() as connection:
        _check_experiment(connection, experiment)
        runs = "(SELECT run_id FROM runs WHERE experiment = $1)"
        return {
            name: [row[0] for row in connection.execute(f"SELECT DISTINCT key FROM {table} WHERE run_id IN {runs} ORDER BY key", [experiment]).fetchall()]
            for name, table in (("params", "run_params"), ("metrics", "run_metrics"), ("tags", "run_tags"))
        }


def _check_run_ids(run_ids: Sequence[str]) -> list[str]:
    ids = list(dict.fromkeys(run_ids))
    for run_id in ids:
        validate_run_id(run_id)
    return ids


def _runs_in_order(connection, ids: list[str]) -> pd.DataFrame:
    runs = connection.execute(f"SELECT {_RUN_SELECT} FROM runs r WHERE r.run_id IN (SELECT unnest($1::VARCHAR[]))", [ids]).df()
    missing = [run_id for run_id in ids if run_id not in set(runs["run_id"])]
    if missing:
        raise NotFoundError(f"No run with id {', '.join(missing)}. It may have been deleted, or the link is mistyped.")
    return runs.set_index("run_id").loc[ids].reset_index()


def compare_runs(warehouse: Warehouse, run_ids: Sequence[str]) -> Comparison:
    """Put runs side by side: params with differences flagged, metrics with the best marked.

    Args:
        run_ids: up to 200 run ids, in the order to show them (duplicates are dropped).

    Raises:
        NotFoundError: an id names no run (the message lists them).
        MlopsError: no ids, or more than 200.
    """
    ids = _check_run_ids(run_ids)
    if not ids:
        raise MlopsError("Select at least one run to compare.")
    if len(ids) > MAX_COMPARE:
        raise MlopsError(f"Compare at most {MAX_COMPARE} runs at once; {len(ids)} were selected.")
    with warehouse.read() as connection:
        runs = _runs_in_order(connection, ids)
        ids_sql = "(SELECT unnest($1::VARCHAR[]))"
        params_long = connection.execute(f"SELECT run_id, key, value FROM run_params WHERE run_id IN {ids_sql}", [ids]).df()
        metrics_long = connection.execute(f"{_LATEST_METRICS} WHERE run_id IN {ids_sql} GROUP BY ALL", [ids]).df()

    params = _side_by_side(params_long, ids)
    values = params[ids]
    params["differs"] = values.apply(lambda row: len({None if pd.isna(v) else v for v in row}) > 1, axis=1)

    metrics = _side_by_side(metrics_long, ids).astype({run_id: "float64" for run_id in ids})
    # object dtype keeps None for "unknown" instead of turning the column into NaN floats.
    metrics["higher_is_better"] = pd.Series([metric_higher_is_better(key) for key in metrics.index], index=metrics.index, dtype=object)
    metrics["best"] = [_best(metrics.loc[key, ids], metrics.loc[key, "higher_is_better"]) for key in metrics.index]
    return Comparison(runs, params, metrics)


def _side_by_side(long: pd.DataFrame, ids: list[str]) -> pd.DataFrame:
    if long.empty:
        return pd.DataFrame(columns=ids, index=pd.Index([], name="key"))
    wide = long.pivot(index="key", columns="run_id", values="value").reindex(columns=ids)
    wide.columns.name = None
    return wide.sort_index()


def _best(values: pd.Series, higher_is_better: bool | None) -> list[str]:
    present = values.dropna()
    if higher_is_better is None or present.empty or (present.nunique() == 1 and len(present) == len(values) > 1):
        return []  # unknown direction, or nothing to choose between
    target = present.max() if higher_is_better else present.min()
    return [str(run_id) for run_id, value in present.items() if value == target]


def metric_curves(warehouse: Warehouse, run_ids: Sequence[str], metric: str) -> pd.DataFrame:
    """Every step of ``metric`` for the runs, for a line chart.

    Returns:
        Columns run_id, name, step, value, ordered by run then step (one value per step:
        the last logged when a step was logged twice). Empty when no run logged the metric.
    """
    ids = _check_run_ids(run_ids)
    if not ids:
        return pd.DataFrame(columns=["run_id", "name", "step", "value"])
    return warehouse.query(
        """
        SELECT m.run_id, r.name, m.step, arg_max(m.value, m.logged_at) AS value
        FROM run_metrics m JOIN runs r USING (run_id)
        WHERE m.run_id IN (SELECT unnest($1::VARCHAR[])) AND m.key = $2
        GROUP BY m.run_id, r.name, m.step
        ORDER BY list_position($1::VARCHAR[], m.run_id), m.step
        """,
        [ids, metric],
    )


def run_points(
    warehouse: Warehouse,
    experiment: str,
    *,
    params: Sequence[str] = (),
    metrics: Sequence[str] = (),
    filters: Sequence[RunFilter] = (),
    limit: int = 5000,
) -> pd.DataFrame:
    """Chosen params and metrics of many runs, one row per run: for parallel coordinates and scatter plots.

    Args:
        params: param names; their columns are ``param.NAME`` (numbers where every value is one).
        metrics: metric names; columns ``metric.NAME``.
        limit: at most this many runs, the most recent first (charts of more are unreadable).

    Returns:
        Columns run_id, name, status, started_at, then the param and metric columns.
    """
    if not 1 <= limit <= MAX_POINTS_RUNS:
        raise MlopsError(f"limit must be between 1 and {MAX_POINTS_RUNS}, got {limit!r}.")
    bound: list[Any] = []
    where = _where(experiment, filters, bound)
    bound.append(limit)
    with warehouse.read() as connection:
        _check_experiment(connection, experiment)
        connection.execute(
            f"CREATE OR REPLACE TEMP TABLE _points_runs AS SELECT r.run_id, r.name, r.status, r.started_at FROM runs r "
            f"WHERE {where} ORDER BY r.started_at DESC LIMIT ${len(bound)}",
            bound,
        )
        base = connection.execute("SELECT * FROM _points_runs").df()
        param_long = connection.execute(
            "SELECT run_id, key, value FROM run_params WHERE run_id IN (SELECT run_id FROM _points_runs) "
            "AND key IN (SELECT unnest($1::VARCHAR[]))",
            [list(params)],
        ).df()
        metric_long = connection.execute(
            f"{_LATEST_METRICS} WHERE run_id IN (SELECT run_id FROM _points_runs) AND key IN (SELECT unnest($1::VARCHAR[])) GROUP BY ALL",
            [list(metrics)],
        ).df()
        connection.execute("DROP TABLE _points_runs")
    frame = base
    for prefix, long, keys in ((PARAM_PREFIX, param_long, params), (METRIC_PREFIX, metric_long, metrics)):
        wide = long.pivot(index="run_id", columns="key", values="value") if not long.empty else pd.DataFrame()
        for key in keys:
            column = wide[key] if key in wide.columns else pd.Series(dtype="float64")
            if prefix == PARAM_PREFIX:
                numeric = pd.to_numeric(column, errors="coerce")
                column = numeric if numeric.notna().sum() == column.notna().sum() else column
            frame[prefix + key] = frame["run_id"].map(column)
    return frame


def get_run(warehouse: Warehouse, run_id: str) -> dict[str, Any]:
    """One run: its row, params, latest metrics, tags and the kinds of stored results.

    Returns:
        ``{"run": {...RUN_COLUMNS}, "params": {...}, "metrics": {...}, "tags": {...},
        "results": [kinds]}``.

    Raises:
        NotFoundError: no such run.
    """
    validate_run_id(run_id)
    with warehouse.read() as connection:
        run = _runs_in_order(connection, [run_id]).iloc[0].to_dict()
        params = dict(connection.execute("SELECT key, value FROM run_params WHERE run_id = $1 ORDER BY key", [run_id]).fetchall())
        latest = connection.execute(f"{_LATEST_METRICS} WHERE run_id = $1 GROUP BY ALL ORDER BY key", [run_id]).fetchall()
        metrics = {key: value for _, key, value in latest}
        tags = dict(connection.execute("SELECT key, value FROM run_tags WHERE run_id = $1 ORDER BY key", [run_id]).fetchall())
        kinds = [row[0] for row in connection.execute("SELECT kind FROM run_results WHERE run_id = $1 ORDER BY kind", [run_id]).fetchall()]
    return {"run": run, "params": params, "metrics": metrics, "tags": tags, "results": kinds}


def run_results(warehouse: Warehouse, run_id: str) -> dict[str, Any]:
    """The structured results a run stored (holdout, slices, confusion_matrix, calibration,
    feature_importance, split, search, model_inputs for a trainer's winner), parsed from JSON.

    Returns:
        ``{kind: payload}``; empty for a run that stored none.
    """
    validate_run_id(run_id)
    rows = warehouse.query("SELECT kind, payload FROM run_results WHERE run_id = $1 ORDER BY kind", [run_id])
    return {kind: json.loads(payload) for kind, payload in rows.itertuples(index=False, name=None)}


# --- Actions ---------------------------------------------------------------------------


def register_run_model(
    warehouse: Warehouse,
    registry: Registry,
    run_id: str,
    model_name: str,
    identity: Identity,
    *,
    description: str = "",
    card: Mapping[str, Any] | None = None,
) -> ModelVersion:
    """Register the model a run logged as the next version of ``model_name``.

    The card carries the run's holdout metrics (its latest metrics when it has no holdout),
    the per-slice holdout metrics, params, dataset fingerprint, features, input schema and
    run id. The run is tagged ``registered_as = model/version``.

    Args:
        card: card fields people wrote (``predicts``, ``intended_use``, ``targets``,
            ``key_metric``...), e.g. carried over from the version it is meant to replace;
            they win over what the run records.

    Raises:
        PermissionDeniedError: the identity's role may not register models.
        NotFoundError: no such run, or it logged no model.
        MlopsError: the run has not finished successfully.
        IntegrityError: the model file changed since the run logged it, or holds untrusted types.
    """
    require(identity, "register_model")
    detail = get_run(warehouse, run_id)
    run = detail["run"]
    if run["status"] != FINISHED:
        raise MlopsError(f"Run {run_id} is {run['status']}; only a finished run's model can be registered.")
    estimator = load_run_model(warehouse, run_id, trusted_types=registry.trusted_types)
    results = run_results(warehouse, run_id)
    holdout = results.get("holdout", {}).get("metrics")
    metrics = holdout if holdout else {key: value for key, value in detail["metrics"].items() if math.isfinite(value)}
    inputs = results.get("model_inputs", {})
    tags = detail["tags"]
    extra = {
        "experiment": run["experiment"],
        "run_name": run["name"],
        "git_commit": run["git_commit"],
        "dataset": tags.get(TAG_DATASET) or inputs.get("dataset"),
        "target": inputs.get("target"),
        "task": inputs.get("task"),
        "positive_class": inputs.get("positive_class"),
        "holdout": {key: value for key, value in results.get("holdout", {}).items() if key != "metrics"} or None,
        "holdout_slices": results.get("slices"),
        "split": results.get("split"),
        "selection": results.get("search"),
        "metrics_from": "holdout" if holdout else "run",
    }
    if tags.get("selection_metric"):
        extra["key_metric"] = tags["selection_metric"]
    extra.update(card or {})
    version = registry.register_version(
        model_name,
        estimator,
        actor=identity.email,
        metrics=metrics,
        params=detail["params"],
        input_schema=inputs.get("input_schema"),
        run_id=run_id,
        dataset_fingerprint=run["dataset_fingerprint"],
        features=inputs.get("features"),
        description=description or f"From run {run['name']} of experiment {run['experiment']}",
        extra={key: value for key, value in extra.items() if value is not None},
    )
    # The run logged its last values long ago; a direct upsert, not a Run, records the link.
    warehouse.execute(
        "INSERT OR REPLACE INTO run_tags (run_id, key, value) VALUES ($1, $2, $3)",
        [run_id, TAG_REGISTERED, version.uri],
    )
    return version
