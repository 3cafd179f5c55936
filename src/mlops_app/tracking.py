"""Experiment tracking: log runs (params, metrics, tags, a model) into the warehouse.

A run belongs to an experiment and goes ``running`` -> ``finished``, or ``failed`` when the
block that logs it raises::

    from mlops_app.tracking import start_run

    with start_run("apple-grader", name="more trees") as run:
        run.log_params({"n_estimators": 300, "max_depth": 8})
        for step, loss in enumerate(losses):
            run.log_metric("loss", loss, step=step)
        run.log_metric("roc_auc", 0.93)
        run.log_model(pipeline)

Why logging is buffered: every unit of work opens and closes the DuckDB file (20-40 ms,
see ARCHITECTURE.md), so writing each point on its own would make 1,000 points cost
half a minute. A :class:`Run` keeps params, metrics, tags and results in memory and writes
them in one transaction (a bulk insert) when ``flush_points`` values are waiting, when
``flush_seconds`` have passed since the last write (checked on the next log call: there is
no background thread), on :meth:`Run.flush`, and when the run ends, failed runs included.
A run killed with SIGKILL loses what was not flushed yet and stays ``running``.

Several processes (a notebook and the trainer) can log at the same time: each flush is a
unit of work, and the warehouse's cross-process lock makes them take turns.

Models are saved with skops under ``<home>/runs/<run_id>/model.skops`` (atomically), after
the same allow-list check as the registry; the run's tags record the path and sha256.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import logging
import math
import re
import subprocess
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import duckdb
import pandas as pd
import skops.io

from mlops_app.errors import IntegrityError, InvalidNameError, MlopsError, NotFoundError, WarehouseBusyError
from mlops_app.registry import VETTED_TYPES, write_atomic
from mlops_app.warehouse import Warehouse

LOG = logging.getLogger("mlops_app.tracking")

RUNNING, FINISHED, FAILED = "running", "finished", "failed"
RUN_STATUSES = (RUNNING, FINISHED, FAILED)

RUNS_DIR = "runs"
MODEL_FILE = "model.skops"
TAG_MODEL_PATH = "model.path"
TAG_MODEL_SHA256 = "model.sha256"
TAG_MODEL_TYPE = "model.type"
TAG_DATASET = "dataset"

EXPERIMENT_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _.-]{0,99}")
EXPERIMENT_RULE = "1-100 characters: letters, digits, spaces, '.', '-' and '_', starting with a letter or digit"
RUN_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
RUN_ID_RULE = "1-64 letters, digits, '-' and '_', starting with a letter or digit"
KEY_PATTERN = re.compile(r"[^\x00-\x1f]{1,250}")
RESULT_KIND_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,62}")

DEFAULT_FLUSH_POINTS = 1000
DEFAULT_FLUSH_SECONDS = 5.0
_MAX_VALUE_CHARS = 5000
_MAX_ERROR_CHARS = 4000
_TRANSACTION_ATTEMPTS = 3
_GIT_TIMEOUT_SECONDS = 5.0


def validate_experiment_name(name: str) -> str:
    """Return ``name`` if it is a valid experiment name.

    Raises:
        InvalidNameError: the name breaks the rule; the message states it.
    """
    if not isinstance(name, str) or EXPERIMENT_PATTERN.fullmatch(name) is None or name != name.strip():
        raise InvalidNameError(f"Experiment name {name!r} is not allowed: use {EXPERIMENT_RULE} (e.g. apple-grader).")
    return name


def validate_run_id(run_id: str) -> str:
    """Return ``run_id`` if it is a valid run id (it becomes a folder name under ``<home>/runs``).

    Raises:
        InvalidNameError: the id breaks the rule.
    """
    if not isinstance(run_id, str) or RUN_ID_PATTERN.fullmatch(run_id) is None:
        raise InvalidNameError(f"Run id {run_id!r} is not allowed: use {RUN_ID_RULE}, or omit it to get a new one.")
    return run_id


def _check_key(key: str, what: str) -> str:
    if not isinstance(key, str) or KEY_PATTERN.fullmatch(key) is None or key != key.strip():
        raise ValueError(
            f"{what} name {key!r} is not allowed: use 1-250 printable characters without leading or trailing spaces."
        )
    return key


def _as_text(value: Any, what: str) -> str:
    if isinstance(value, float):
        text = repr(value)
    elif isinstance(value, (list, tuple, dict)):
        text = json.dumps(value, default=str)
    else:
        text = str(value)
    if len(text) > _MAX_VALUE_CHARS:
        raise ValueError(f"{what} is {len(text):,} characters long; the limit is {_MAX_VALUE_CHARS:,}.")
    return text


def metric_value(key: str, value: Any, step: int = 0) -> float:
    """``value`` as a finite float, or a ValueError that names the metric.

    Raises:
        ValueError: the value is not a number, or is NaN or infinite.
    """
    try:
        if isinstance(value, (bool, str)):
            raise TypeError
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"Metric {key!r} is {value!r} at step {step}; metrics must be numbers.") from None
    if not math.isfinite(number):
        raise ValueError(
            f"Metric {key!r} is {number} at step {step}; metrics must be finite numbers (no NaN or infinity). "
            "Nothing was logged for it: check the computation that produced it."
        )
    return number


def current_git_commit(cwd: Path | str | None = None) -> str | None:
    """The commit checked out in ``cwd`` (default: the current folder), or None.

    None when git is missing, the folder is not in a repository, or the repository has no
    commit yet. Never raises: tracking must work in a plain folder or a container.
    """
    try:
        completed = subprocess.run(
            ["git", "rev-parse", "--verify", "--quiet", "HEAD"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=_GIT_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = completed.stdout.strip()
    return commit if completed.returncode == 0 and re.fullmatch(r"[0-9a-f]{40,64}", commit) else None


def _default_author() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


def runs_root(warehouse: Warehouse) -> Path:
    """Folder that holds run artifacts: ``runs/`` beside the warehouse file, in the home."""
    return warehouse.path.parent / RUNS_DIR


@dataclass(frozen=True)
class _Point:
    key: str
    value: float
    step: int
    logged_at: datetime


class Run:
    """One run being logged. Made by :func:`start_run`; a context manager that ends the run.

    Logging methods buffer in memory; see the module docstring for when buffers are written.
    Not thread-safe: log from one thread, or guard the run with a lock.
    """

    def __init__(
        self,
        warehouse: Warehouse,
        *,
        run_id: str,
        experiment: str,
        name: str,
        flush_points: int,
        flush_seconds: float,
        trusted_types: frozenset[str],
    ) -> None:
        self.warehouse = warehouse
        self.run_id = run_id
        self.experiment = experiment
        self.name = name
        self.status = RUNNING
        self.error: str | None = None
        self.flush_points = max(1, int(flush_points))
        self.flush_seconds = float(flush_seconds)
        self.trusted_types = trusted_types
        self._params: dict[str, str] = {}
        self._pending_params: dict[str, str] = {}
        self._pending_tags: dict[str, str] = {}
        self._pending_points: list[_Point] = []
        self._pending_results: dict[str, str] = {}
        self._pending_fingerprint: str | None = None
        self._last_flush = time.monotonic()

    def __repr__(self) -> str:
        return f"Run({self.run_id!r}, experiment={self.experiment!r}, status={self.status!r})"

    # --- Logging ---------------------------------------------------------------------

    def log_param(self, key: str, value: Any) -> None:
        """Record one parameter (stored as text). Params are the run's configuration.

        Raises:
            ValueError: a bad name, or the same param logged again with another value.
        """
        self.log_params({key: value})

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Record several parameters; see :meth:`log_param`."""
        self._check_running()
        clean = {_check_key(key, "Param"): _as_text(value, f"Param {key!r}") for key, value in params.items()}
        for key, text in clean.items():
            if key in self._params and self._params[key] != text:
                raise ValueError(
                    f"Param {key!r} of run {self.run_id} is already {self._params[key]!r}; it cannot become {text!r}. "
                    "Params describe the run's configuration and do not change: log a metric or a tag instead."
                )
        self._params.update(clean)
        self._pending_params.update(clean)
        self._maybe_flush()

    def log_metric(self, key: str, value: float, step: int | None = None) -> None:
        """Record one metric value; several values of a key at increasing steps make a curve.

        Args:
            step: position on the curve (an epoch, a boosting iteration); 0 when omitted.
                The run's value of a metric is the one at the highest step (the latest
                logged on a tie).

        Raises:
            ValueError: a bad name or step, or a value that is not a finite number (NaN or
                infinity is refused with a message naming the metric; nothing is logged).
        """
        self.log_metrics({key: value}, step=step)

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Record several metric values at one step; all are checked before any is kept."""
        self._check_running()
        if step is None:
            step = 0
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise ValueError(f"Metric step must be a whole number >= 0, got {step!r}.")
        now = datetime.now(UTC)
        points = [_Point(_check_key(key, "Metric"), metric_value(key, value, step), step, now) for key, value in metrics.items()]
        self._pending_points.extend(points)
        self._maybe_flush()

    def set_tag(self, key: str, value: Any) -> None:
        """Set a tag (text; a later value replaces an earlier one)."""
        self.set_tags({key: value})

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set several tags; see :meth:`set_tag`."""
        self._check_running()
        self._pending_tags.update({_check_key(key, "Tag"): _as_text(value, f"Tag {key!r}") for key, value in tags.items()})
        self._maybe_flush()

    def log_dataset(self, fingerprint: str, *, name: str | None = None) -> None:
        """Record which data the run used: its fingerprint (and the dataset name as a tag)."""
        self._check_running()
        self._pending_fingerprint = _as_text(fingerprint, "Dataset fingerprint")
        if name is not None:
            self._pending_tags[TAG_DATASET] = _as_text(name, "Dataset name")
        self._maybe_flush()

    def log_result(self, kind: str, payload: Any) -> None:
        """Store a structured result (holdout metrics, a confusion matrix...) as JSON.

        One payload per ``kind`` and run; logging a kind again replaces it. The page reads
        these instead of recomputing them.

        Raises:
            ValueError: ``kind`` breaks the rule, or the payload is not plain JSON (NaN included).
        """
        self._check_running()
        if not isinstance(kind, str) or RESULT_KIND_PATTERN.fullmatch(kind) is None:
            raise ValueError(f"Result kind {kind!r} is not allowed: use lowercase letters, digits and '_' (e.g. holdout).")
        try:
            text = json.dumps(payload, default=_json_default, allow_nan=False)
        except (TypeError, ValueError) as error:
            raise ValueError(f"Result {kind!r} of run {self.run_id} cannot be stored as JSON: {error}.") from None
        self._pending_results[kind] = text
        self._maybe_flush()

    def log_model(self, estimator: Any) -> Path:
        """Save a fitted estimator with skops as ``<home>/runs/<run_id>/model.skops``.

        Returns:
            The path of the saved file.

        Raises:
            IntegrityError: the estimator contains types outside the registry's allow-list
                (loading them could run code), so it could never be registered.
        """
        self._check_running()
        data = skops.io.dumps(estimator)
        untrusted = sorted(set(skops.io.get_untrusted_types(data=data)) - self.trusted_types)
        if untrusted:
            raise IntegrityError(
                f"The model of run {self.run_id} cannot be saved: it contains types that are not on the vetted "
                f"allow-list ({', '.join(untrusted)}). Use standard scikit-learn components, or add reviewed "
                "types to the setting `trusted_model_types`."
            )
        folder = runs_root(self.warehouse) / self.run_id
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / MODEL_FILE
        write_atomic(path, data)
        self._pending_tags.update(
            {
                TAG_MODEL_PATH: f"{RUNS_DIR}/{self.run_id}/{MODEL_FILE}",
                TAG_MODEL_SHA256: hashlib.sha256(data).hexdigest(),
                TAG_MODEL_TYPE: f"{type(estimator).__module__}.{type(estimator).__qualname__}",
            }
        )
        self._maybe_flush()
        return path

    # --- Writing ---------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """How many values wait in memory for the next flush."""
        return (
            len(self._pending_points)
            + len(self._pending_params)
            + len(self._pending_tags)
            + len(self._pending_results)
            + (self._pending_fingerprint is not None)
        )

    def flush(self) -> None:
        """Write everything buffered, in one transaction.

        Raises:
            WarehouseBusyError: another process held the warehouse past the lock timeout;
                nothing is lost, the values stay buffered for the next flush.
        """
        self._write(None, None)

    def finish(self, status: str = FINISHED, error: str | None = None) -> None:
        """Flush and mark the run ``finished`` or ``failed`` (with an error message).

        Called by the ``with`` block; call it yourself when not using one.

        Raises:
            MlopsError: the run has already ended.
        """
        if status not in (FINISHED, FAILED):
            raise ValueError(f"A run ends as {FINISHED!r} or {FAILED!r}, not {status!r}.")
        if self.status != RUNNING:
            raise MlopsError(f"Run {self.run_id} has already ended ({self.status}).")
        message = None if error is None else str(error)[:_MAX_ERROR_CHARS]
        self._write(status, message)
        self.status, self.error = status, message

    def __enter__(self) -> Run:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if self.status != RUNNING:
            return  # ended inside the block with finish()
        if error is None:
            self.finish(FINISHED)
            return
        message = f"{kind.__name__ if kind else 'Error'}: {error}".rstrip(": ")
        try:
            self.finish(FAILED, message)
        except Exception:  # the block's own error matters more than a failed last write
            LOG.exception("Could not mark run %s as failed", self.run_id)

    def _check_running(self) -> None:
        if self.status != RUNNING:
            raise MlopsError(f"Run {self.run_id} has ended ({self.status}); start a new run to log more.")

    def _maybe_flush(self) -> None:
        due = self.pending >= self.flush_points or time.monotonic() - self._last_flush >= self.flush_seconds
        if not due:
            return
        try:
            self._write(None, None)
        except WarehouseBusyError as busy:
            # A busy warehouse must not stop a training loop: keep the values, try next time.
            LOG.warning("Run %s keeps %d values buffered: %s", self.run_id, self.pending, busy)
            self._last_flush = time.monotonic()

    def _write(self, status: str | None, error: str | None) -> None:
        points = list(self._pending_points)
        params = dict(self._pending_params)
        tags = dict(self._pending_tags)
        results = dict(self._pending_results)
        fingerprint = self._pending_fingerprint
        if not (points or params or tags or results or fingerprint is not None or status):
            self._last_flush = time.monotonic()
            return

        def work(connection: duckdb.DuckDBPyConnection) -> None:
            if params:
                _insert_frame(
                    connection, "run_params", pd.DataFrame({"run_id": self.run_id, "key": list(params), "value": list(params.values())}), replace=True
                )
            if tags:
                _insert_frame(
                    connection, "run_tags", pd.DataFrame({"run_id": self.run_id, "key": list(tags), "value": list(tags.values())}), replace=True
                )
            if results:
                _insert_frame(
                    connection,
                    "run_results",
                    pd.DataFrame(
                        {"run_id": self.run_id, "kind": list(results), "payload": list(results.values()), "logged_at": datetime.now(UTC)}
                    ),
                    replace=True,
                )
            if points:
                frame = pd.DataFrame(
                    {
                        "run_id": self.run_id,
                        "key": [point.key for point in points],
                        "value": [point.value for point in points],
                        "step": pd.array([point.step for point in points], dtype="int64"),
                        "logged_at": [point.logged_at for point in points],
                    }
                )
                _insert_frame(connection, "run_metrics", frame, replace=False)
            if fingerprint is not None:
                connection.execute("UPDATE runs SET dataset_fingerprint = $1 WHERE run_id = $2", [fingerprint, self.run_id])
            if status is not None:
                connection.execute(
                    "UPDATE runs SET status = $1, ended_at = $2, error = $3 WHERE run_id = $4",
                    [status, datetime.now(UTC), error, self.run_id],
                )

        _in_transaction(self.warehouse, work)
        # Cleared only after the commit, so a failed write keeps everything for the next try.
        del self._pending_points[: len(points)]
        for pending, written in ((self._pending_params, params), (self._pending_tags, tags), (self._pending_results, results)):
            for key, value in written.items():
                if pending.get(key) == value:
                    del pending[key]
        if self._pending_fingerprint == fingerprint:
            self._pending_fingerprint = None
        self._last_flush = time.monotonic()


_FRAME_VIEW = "_mlops_tracking_frame"


def _insert_frame(connection: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame, *, replace: bool) -> None:
    verb = "INSERT OR REPLACE INTO" if replace else "INSERT INTO"
    connection.register(_FRAME_VIEW, frame)
    try:
        # Table names here are module constants, never user input.
        connection.execute(f"{verb} {table} BY NAME SELECT * FROM {_FRAME_VIEW}")
    finally:
        connection.unregister(_FRAME_VIEW)


def _in_transaction(warehouse: Warehouse, work) -> Any:
    """Run ``work(connection)`` in one transaction, again on a write conflict (up to 3 times)."""
    for attempt in range(1, _TRANSACTION_ATTEMPTS + 1):
        try:
            with warehouse.transaction() as connection:
                return work(connection)
        except duckdb.TransactionException:
            if attempt == _TRANSACTION_ATTEMPTS:
                raise
            time.sleep(0.05 * attempt)
    raise AssertionError("unreachable")


def _json_default(value: Any) -> Any:
    # numpy scalars and arrays turn up in results; store them as plain JSON.
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def start_run(
    experiment: str,
    *,
    name: str | None = None,
    warehouse: Warehouse | None = None,
    run_id: str | None = None,
    author: str | None = None,
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, Any] | None = None,
    dataset_fingerprint: str | None = None,
    git_cwd: Path | str | None = None,
    experiment_description: str = "",
    flush_points: int = DEFAULT_FLUSH_POINTS,
    flush_seconds: float = DEFAULT_FLUSH_SECONDS,
    trusted_types: Iterable[str] = (),
) -> Run:
    """Start a run: record it as ``running`` now and return it (use it in a ``with`` block).

    The experiment is created on first use. The code version is the git commit checked out
    in ``git_cwd`` (default: the current folder), or None outside a repository.

    Args:
        experiment: the experiment's name (see :data:`EXPERIMENT_RULE`).
        name: a readable name for the run; ``run-<first 8 characters of the id>`` by default.
        warehouse: where to log; the one the settings point at when omitted (notebooks).
        run_id: an id to use instead of a new uuid (e.g. to match an external system).
        author: who runs it; the operating-system user by default.
        flush_points: buffered values that trigger a write.
        flush_seconds: age of the last write that triggers one on the next log call.
        trusted_types: types a logged model may contain besides the registry's vetted list.

    Returns:
        The running :class:`Run`.

    Raises:
        InvalidNameError: a bad experiment name or run id.
        MlopsError: ``run_id`` was already logged (a run cannot be logged twice).
        WarehouseBusyError: another process held the warehouse past the lock timeout.
    """
    validate_experiment_name(experiment)
    if warehouse is None:
        from mlops_app.config import load_settings

        warehouse = Warehouse.from_settings(load_settings())
    run_id = uuid.uuid4().hex if run_id is None else validate_run_id(run_id)
    run_name = name if name else f"run-{run_id[:8]}"
    commit = current_git_commit(git_cwd)
    who = author or _default_author()

    def work(connection: duckdb.DuckDBPyConnection) -> None:
        existing = connection.execute(
            "SELECT experiment, status, started_at FROM runs WHERE run_id = $1", [run_id]
        ).fetchone()
        if existing is not None:
            raise MlopsError(
                f"Run {run_id} was already logged (experiment {existing[0]!r}, {existing[1]}, started "
                f"{existing[2]:%Y-%m-%d %H:%M %Z}). A run id names exactly one run: omit run_id to get a new one."
            )
        connection.execute(
            "INSERT INTO experiments (name, description, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING",
            [experiment, experiment_description, datetime.now(UTC)],
        )
        connection.execute(
            "INSERT INTO runs (run_id, experiment, name, status, started_at, author, git_commit, dataset_fingerprint) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            [run_id, experiment, run_name, RUNNING, datetime.now(UTC), who, commit, dataset_fingerprint],
        )

    _in_transaction(warehouse, work)
    run = Run(
        warehouse,
        run_id=run_id,
        experiment=experiment,
        name=run_name,
        flush_points=flush_points,
        flush_seconds=flush_seconds,
        trusted_types=VETTED_TYPES | frozenset(trusted_types),
    )
    # Start-up values are buffered like any other and written by the first flush.
    if params:
        run.log_params(params)
    if tags:
        run.set_tags(tags)
    return run


def load_run_model(warehouse: Warehouse, run_id: str, *, trusted_types: Iterable[str] = ()) -> Any:
    """Load the model a run logged, after checking its sha256 and its types.

    Raises:
        NotFoundError: no such run, or the run logged no model.
        IntegrityError: the file is missing, changed since it was logged, or contains
            types outside the allow-list.
    """
    validate_run_id(run_id)
    tags = dict(
        warehouse.query(
            "SELECT key, value FROM run_tags WHERE run_id = $1 AND key IN ($2, $3)", [run_id, TAG_MODEL_PATH, TAG_MODEL_SHA256]
        ).itertuples(index=False, name=None)
    )
    if TAG_MODEL_PATH not in tags:
        if warehouse.query_one("SELECT 1 FROM runs WHERE run_id = $1", [run_id]) is None:
            raise NotFoundError(f"No run with id {run_id!r}.")
        raise NotFoundError(f"Run {run_id} logged no model (call run.log_model(estimator) in the run).")
    root = warehouse.path.parent.resolve()
    path = (root / tags[TAG_MODEL_PATH]).resolve()
    if not path.is_relative_to(root / RUNS_DIR):
        raise IntegrityError(f"The model path {tags[TAG_MODEL_PATH]!r} of run {run_id} leaves the runs folder; refusing it.")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise IntegrityError(f"The model file of run {run_id} is missing ({path}).") from None
    actual = hashlib.sha256(data).hexdigest()
    if actual != tags.get(TAG_MODEL_SHA256):
        raise IntegrityError(
            f"The model file of run {run_id} does not match its recorded sha256 (expected {tags.get(TAG_MODEL_SHA256)}, "
            f"found {actual}): it was changed after the run logged it."
        )
    trusted = VETTED_TYPES | frozenset(trusted_types)
    untrusted = sorted(set(skops.io.get_untrusted_types(data=data)) - trusted)
    if untrusted:
        raise IntegrityError(
            f"The model of run {run_id} contains types that are not on the vetted allow-list: {', '.join(untrusted)}."
        )
    return skops.io.loads(data, trusted=sorted(trusted))
