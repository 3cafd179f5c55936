"""Promotion: requests to move an alias, the gates that judge them, approvals, rollback, the record.

The life of a request::

    request_promotion ──▶ gates run and are stored with the request ──▶ pending
    pending ──▶ approve (an approver; not the requester unless allow_self_approval;
                a failed gate needs an admin's override with a written reason)
                 └─▶ the alias moves, the webhook is told
    pending ──▶ reject (an approver, with a comment) | withdraw (the requester)
    request_rollback: a request to point the champion back at the previous champion,
                      approved like any other (only the "loads and predicts" gate runs)

On disk, inside the registry folder (paths from :meth:`Registry.path_for`)::

    <registry>/<model>/requests/<id>.json   one request: who, why, gates, decision (atomic writes)
    <registry>/<model>/requests/.lock       serialises decisions on the model's requests
    <registry>/<model>/gates.yaml           the model's gate settings (optional; defaults below)

Every step is also an event in the model's append-only ``events.jsonl``: ``requested``,
``gates_evaluated``, ``gate_overridden``, ``approved``, ``rejected``, ``withdrawn``,
``refused`` (an attempt that was turned down: who, what, why) and ``gates_configured``;
the alias move itself is the registry's ``alias_set``. :func:`timeline` tells them in plain
language; :func:`champion_on` answers "which version was champion at time T" from them.

Why a lock of its own: the registry's per-model lock is taken inside ``set_alias`` and
``append_event`` and is not re-entrant across lock objects, so decisions take this lock
first and the registry's lock inside it (always in that order, so they cannot deadlock).
Under it an approval re-reads the request, checks it is still pending and that the alias
still points where it did when the gates ran, moves the alias, then marks the request
approved: of two approvers racing from two processes exactly one succeeds, and the other
is told who approved it and when. A crash between the alias move and the request write
leaves the alias moved and the request pending; approving it again completes it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import re
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time as day_time, timedelta
from typing import Annotated, Any, Literal

import filelock
import numpy as np
import pandas as pd
import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from mlops_app.auth import Identity, require
from mlops_app.config import Settings
from mlops_app.datasets import TABLE_PREFIX, duckdb_type, get_dataset, table_columns, type_family, validate_dataset_name
from mlops_app.errors import IntegrityError, InvalidNameError, MlopsError, NotFoundError, PermissionDeniedError
from mlops_app.experiments import metric_higher_is_better
from mlops_app.metric_catalog import METRICS, describe_target, format_value, meets_target, metric_info
from mlops_app.registry import (
    EVENT_ALIAS_REMOVED,
    EVENT_ALIAS_SET,
    ModelInfo,
    ModelVersion,
    Registry,
    validate_name,
    write_atomic,
)
from mlops_app.status import Status
from mlops_app.warehouse import Warehouse, quote_identifier
from mlops_app.webhooks import notify

LOG = logging.getLogger("mlops_app.promotion")

REQUESTS_DIR = "requests"
REQUESTS_LOCK = ".lock"
GATES_FILE = "gates.yaml"
CHAMPION = "champion"
CHALLENGER = "challenger"

EVENT_REQUESTED = "requested"
EVENT_GATES_EVALUATED = "gates_evaluated"
EVENT_OVERRIDDEN = "gate_overridden"
EVENT_APPROVED = "approved"
EVENT_REJECTED = "rejected"
EVENT_WITHDRAWN = "withdrawn"
EVENT_REFUSED = "refused"
EVENT_GATES_CONFIGURED = "gates_configured"

KIND_PROMOTION, KIND_ROLLBACK = "promotion", "rollback"
PENDING, APPROVED, REJECTED, WITHDRAWN = "pending", "approved", "rejected", "withdrawn"
PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"

GATE_METRIC = "holdout_metric"
GATE_SLICES = "slices"
GATE_QUALITY = "data_quality"
GATE_SCHEMA = "input_schema"
GATE_SMOKE = "smoke_test"
GATE_NAMES = (GATE_METRIC, GATE_SLICES, GATE_QUALITY, GATE_SCHEMA, GATE_SMOKE)
GATE_TITLES = {
    GATE_METRIC: "Holdout result at least the champion's",
    GATE_SLICES: "No group served much worse (bias)",
    GATE_QUALITY: "Latest data quality checks pass",
    GATE_SCHEMA: "Same inputs as the champion",
    GATE_SMOKE: "Loads and predicts on real rows",
}
GateName = Literal["holdout_metric", "slices", "data_quality", "input_schema", "smoke_test"]

REQUEST_ID_PATTERN = re.compile(r"^req-[0-9]{8}-[0-9]{6}-[0-9a-f]{6}$")
MAX_TEXT = 2000
MAX_SAMPLE_ROWS = 10_000

# A share stored 0..1 is shown in percentage points; other units as plain amounts.
_POINT = "point"


# --- Gate settings ---------------------------------------------------------------------------


def _check_metric_name(value: str | None) -> str | None:
    if value is not None and not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", value):
        raise ValueError(f"metric {value!r} is not a metric name (letters, digits, '_', '.', '-')")
    return value


def _check_dataset(value: str | None) -> str | None:
    return None if value is None else validate_dataset_name(value)


class GateConfig(BaseModel):
    """How a model's promotion gates judge a candidate, saved as ``<registry>/<model>/gates.yaml``.

    Attributes:
        metric: the holdout metric compared with the champion; empty means the champion's
            key metric (its card's ``key_metric``), else the candidate's.
        tolerance: how much worse than the champion the candidate may be, in the metric's
            own scale (0.01 is one percentage point for shares).
        slice_limit: the largest drop of any group (slice) below the candidate's overall
            result, in the same scale.
        min_slice_rows: groups with fewer holdout rows are too noisy to judge and are listed, not judged.
        dataset: the dataset whose quality is checked and whose rows the smoke test predicts
            on; empty means the one named on the card (or another version's card).
        sample_rows: rows the smoke test predicts on.
        disabled: gates turned off for this model (their result says so).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: Annotated[str | None, AfterValidator(_check_metric_name)] = None
    tolerance: float = Field(0.01, ge=0, le=1e9, allow_inf_nan=False)
    slice_limit: float = Field(0.10, ge=0, le=1e9, allow_inf_nan=False)
    min_slice_rows: int = Field(30, ge=1)
    dataset: Annotated[str | None, AfterValidator(_check_dataset)] = None
    sample_rows: int = Field(200, ge=1, le=MAX_SAMPLE_ROWS)
    disabled: tuple[GateName, ...] = ()


def gate_config_from_yaml(text: str, *, source: str = "The gate settings") -> GateConfig:
    """Parse gate settings written as YAML (see :class:`GateConfig`).

    Raises:
        MlopsError: the text is not YAML, or a field is unknown or out of range (named).
    """
    try:
        data = yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError as error:
        raise MlopsError(f"{source} is not valid YAML: {error}.") from None
    if not isinstance(data, dict):
        raise MlopsError(f"{source} must be a mapping of settings (metric, tolerance, ...), got {type(data).__name__}.")
    try:
        return GateConfig.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in item['loc']) or 'settings'}: {item['msg']}" for item in error.errors()
        )
        raise MlopsError(
            f"{source} are not valid: {problems}. Known settings: {', '.join(GateConfig.model_fields)}; "
            f"gate names: {', '.join(GATE_NAMES)}."
        ) from None


def gate_config_to_yaml(config: GateConfig) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False, allow_unicode=True)


def load_gate_config(registry: Registry, model: str) -> GateConfig:
    """The model's gate settings; the defaults when it has no ``gates.yaml``.

    Raises:
        NotFoundError: no such model. MlopsError: the file is invalid.
    """
    registry.get_model(model)
    path = registry.path_for(model, GATES_FILE)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return GateConfig()
    return gate_config_from_yaml(text, source=f"The gate settings in {path}")


def save_gate_config(registry: Registry, model: str, config: GateConfig, identity: Identity) -> None:
    """Write the model's gate settings (admins only: loosening a gate is like overriding it).

    Raises:
        PermissionDeniedError: the identity is not an admin (the attempt is logged).
    """
    registry.get_model(model)
    _require(registry, model, identity, "override_gate")
    write_atomic(registry.path_for(model, GATES_FILE), gate_config_to_yaml(config).encode("utf-8"))
    registry.append_event(
        model, EVENT_GATES_CONFIGURED, actor=identity.email, reason="Gate settings changed",
        details={"settings": config.model_dump(mode="json")},
    )  # fmt: skip


# --- Stored records --------------------------------------------------------------------------


class GateResult(BaseModel):
    """One gate's verdict on a candidate, stored with the request.

    ``detail`` is the sentence a person reads, with the numbers; ``measured`` holds the same
    numbers for tables and charts.
    """

    model_config = ConfigDict(frozen=True)

    name: str
    title: str
    status: Literal["passed", "failed", "skipped"]
    detail: str
    measured: dict[str, Any] = Field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """True unless the gate failed (a skipped gate does not block)."""
        return self.status != FAILED


class Override(BaseModel):
    """An admin's written decision to approve despite failed gates."""

    model_config = ConfigDict(frozen=True)

    by: str
    at: datetime
    reason: str
    gates: tuple[str, ...]


class PromotionRequest(BaseModel):
    """A request to point ``alias`` of ``model`` at ``version``, as stored in ``requests/<id>.json``.

    Attributes:
        kind: ``promotion`` or ``rollback``.
        from_version: where the alias pointed when the request was made (None: unset).
        compared_with: the champion version the gates compared with (None: no champion).
        imported: recorded from a release log kept before mlops-app (no gates were run).
    """

    model_config = ConfigDict(frozen=True)

    id: str
    model: str
    version: int
    alias: str
    kind: Literal["promotion", "rollback"] = KIND_PROMOTION
    from_version: int | None = None
    compared_with: int | None = None
    reason: str
    requested_by: str
    requested_at: datetime
    status: Literal["pending", "approved", "rejected", "withdrawn"] = PENDING
    gates: tuple[GateResult, ...] = ()
    gates_evaluated_at: datetime | None = None
    override: Override | None = None
    decided_by: str | None = None
    decided_at: datetime | None = None
    comment: str = ""
    imported: bool = False

    @property
    def failed_gates(self) -> list[GateResult]:
        return [gate for gate in self.gates if gate.status == FAILED]

    @property
    def gates_passed(self) -> bool:
        return not self.failed_gates

    @property
    def blocked(self) -> bool:
        """Pending with a failed gate and no override: an approval would be refused."""
        return self.status == PENDING and bool(self.failed_gates) and self.override is None

    @property
    def summary(self) -> str:
        """One plain sentence: what is asked and where it stands."""
        what = (
            f"roll {self.alias} back to version {self.version}"
            if self.kind == KIND_ROLLBACK
            else f"make version {self.version} {self.alias}"
        )
        when = _day(self.decided_at) if self.decided_at else ""
        if self.status == APPROVED:
            return f"Approved by {self.decided_by} on {when}: {what}."
        if self.status == REJECTED:
            return f"Rejected by {self.decided_by} on {when}: {what}. Comment: {self.comment}"
        if self.status == WITHDRAWN:
            return f"Withdrawn by {self.decided_by} on {when}: {what}."
        failed = self.failed_gates
        if failed and self.override is None:
            names = ", ".join(gate.title.lower() for gate in failed)
            return (
                f"Blocked: {self.requested_by} asks to {what}, but {len(failed)} of {len(self.gates)} gates failed "
                f"({names}). An approver can reject it; an admin can override with a written reason."
            )
        if failed:
            return f"Waiting for approval: {self.requested_by} asks to {what}; failed gates were overridden by {self.override.by}."
        return f"Waiting for approval: {self.requested_by} asks to {what}; all {len(self.gates)} gates passed."


@dataclass(frozen=True)
class AliasPeriod:
    """A stretch of time during which an alias pointed at one version (``end`` None: still does)."""

    version: int
    start: datetime
    end: datetime | None
    set_by: str
    reason: str


@dataclass(frozen=True)
class TimelineEntry:
    """One line of a model's history, in plain language."""

    time: datetime
    event: str
    actor: str
    text: str
    version: int | None = None
    request_id: str | None = None
    kind: str = "info"  # request, gates, decision, alias, refusal, info


# --- Small helpers ---------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _day(moment: datetime | None) -> str:
    return "" if moment is None else _aware(moment).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _parse_time(text: Any) -> datetime:
    try:
        return _aware(datetime.fromisoformat(str(text)))
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)


def _new_request_id(now: datetime) -> str:
    return f"req-{now.astimezone(UTC):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"


def _clean_text(text: Any, what: str) -> str:
    if text is None:
        return ""
    if not isinstance(text, str):
        raise MlopsError(f"The {what} must be text, got {type(text).__name__}.")
    text = text.strip()
    if len(text) > MAX_TEXT:
        raise MlopsError(f"The {what} is {len(text):,} characters long; keep it under {MAX_TEXT:,}.")
    return text


def _check_alias(alias: Any) -> str:
    validate_name(alias, "alias")
    if alias.isdigit():
        raise InvalidNameError(f"Alias {alias!r} is not allowed: an alias cannot be only digits, it would be read as a version number.")
    return alias


def version_number(version: Any) -> int:
    """A version number from an int or a digits-only string; InvalidNameError otherwise."""
    if isinstance(version, bool) or not isinstance(version, (int, str)) or (isinstance(version, str) and not (version.isascii() and version.isdigit())):
        raise InvalidNameError(f"Version must be a version number like 3, got {version!r}.")
    return int(version)


def _model_exists(registry: Registry, model: str) -> bool:
    try:
        registry.get_model(model)
        return True
    except MlopsError:
        return False


def log_refusal(
    registry: Registry,
    model: str,
    actor: str,
    action: str,
    message: str,
    *,
    version: int | None = None,
    alias: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> None:
    """Record a turned-down attempt in the model's audit log (or the log file when there is no model)."""
    message = message[:MAX_TEXT]  # a hostile name quoted in a message must not bloat the log
    LOG.warning("refused %s on %r by %s: %s", action, str(model)[:100], actor, message)
    if not _model_exists(registry, model):
        return  # an unknown or malformed model has no audit log to write to
    try:
        registry.append_event(
            model, EVENT_REFUSED, actor=actor or "unknown", version=version, alias=alias, reason=message,
            details={"action": action, **(details or {})},
        )  # fmt: skip
    except (MlopsError, ValueError) as error:
        LOG.error("could not record the refusal in the audit log of %r: %s", model, error)


class Refusal:
    """Refusals of one attempted action: each is logged (who, what, why), then handed back to raise.

    Shared with :mod:`mlops_app.sharing`, whose refusals are recorded the same way.
    """

    def __init__(self, registry: Registry, model: str, identity: Identity, action: str, **context: Any) -> None:
        self.registry, self.model, self.identity, self.action = registry, model, identity, action
        self.version: int | None = context.pop("version", None)
        self.alias: str | None = context.pop("alias", None)
        self.details = context

    def __call__(self, message: str, error: type[MlopsError] = MlopsError) -> MlopsError:
        log_refusal(
            self.registry, self.model, self.identity.email, self.action, message,
            version=self.version, alias=self.alias, details=self.details,
        )  # fmt: skip
        return error(message)

    def require(self, action: str) -> None:
        try:
            require(self.identity, action)
        except PermissionDeniedError as error:
            raise self(str(error), PermissionDeniedError) from None


def _require(registry: Registry, model: str, identity: Identity, action: str) -> None:
    Refusal(registry, model, identity, action).require(action)


def _requests_dir(registry: Registry, model: str):
    return registry.path_for(model, REQUESTS_DIR)


@contextlib.contextmanager
def _decision_lock(registry: Registry, model: str) -> Iterator[None]:
    folder = _requests_dir(registry, model)
    folder.mkdir(exist_ok=True)
    lock = filelock.FileLock(registry.path_for(model, REQUESTS_DIR, REQUESTS_LOCK), timeout=registry.lock_timeout)
    try:
        lock.acquire()
    except filelock.Timeout:
        raise MlopsError(
            f"Another decision on {model!r} has held its requests for {registry.lock_timeout:g} s; try again in a "
            "moment, or raise the setting `lock_timeout_seconds`."
        ) from None
    try:
        yield
    finally:
        lock.release()


def _write_request(registry: Registry, request: PromotionRequest) -> None:
    _requests_dir(registry, request.model).mkdir(exist_ok=True)
    data = json.dumps(request.model_dump(mode="json"), indent=2, allow_nan=False) + "\n"
    write_atomic(registry.path_for(request.model, REQUESTS_DIR, f"{request.id}.json"), data.encode("utf-8"))


def _read_request_file(path) -> PromotionRequest:
    try:
        return PromotionRequest.model_validate_json(path.read_bytes())
    except ValidationError as error:
        raise IntegrityError(f"{path} is not a valid promotion request ({error.error_count()} problems); it was edited by hand or damaged.") from None


def get_request(registry: Registry, model: str, request_id: str) -> PromotionRequest:
    """One request of ``model``.

    Raises:
        InvalidNameError: the id is not a request id. NotFoundError: no such request.
    """
    registry.get_model(model)
    if not isinstance(request_id, str) or not REQUEST_ID_PATTERN.fullmatch(request_id):
        raise InvalidNameError(f"{request_id!r} is not a request id; ids look like req-20260901-143000-a1b2c3.")
    path = registry.path_for(model, REQUESTS_DIR, f"{request_id}.json")
    if not path.is_file():
        raise NotFoundError(f"Model {model!r} has no request {request_id}. Open the model's page for its requests.")
    return _read_request_file(path)


def list_requests(
    registry: Registry, model: str, *, status: str | None = None, version: int | None = None
) -> list[PromotionRequest]:
    """The model's requests, newest first, optionally only those with ``status`` or for ``version``."""
    registry.get_model(model)
    folder = _requests_dir(registry, model)
    if not folder.is_dir():
        return []
    requests = []
    for path in folder.glob("req-*.json"):
        if not REQUEST_ID_PATTERN.fullmatch(path.stem):
            continue
        try:
            request = _read_request_file(path)
        except FileNotFoundError:
            continue
        if (status is None or request.status == status) and (version is None or request.version == version):
            requests.append(request)
    requests.sort(key=lambda item: (item.requested_at, item.id), reverse=True)
    return requests


def pending_requests(registry: Registry) -> list[PromotionRequest]:
    """Every pending request of every model, oldest first (an approver's queue)."""
    found = [request for info in registry.list_models() for request in list_requests(registry, info.name, status=PENDING)]
    return sorted(found, key=lambda item: item.requested_at)


# --- Reading cards ---------------------------------------------------------------------------


def _extra(version: ModelVersion) -> dict[str, Any]:
    return dict(version.card.get("extra") or {})


def _units(*versions: ModelVersion | None) -> dict[str, str]:
    units: dict[str, str] = {}
    for version in reversed([v for v in versions if v is not None]):
        units.update(_extra(version).get("metric_units") or {})
    return units


def _tolerance_text(amount: float, unit: str) -> str:
    if unit == "%":
        points = round(amount * 100, 1)
        return f"{points:g} {_POINT}{'' if points == 1 else 's'}"
    return format_value(amount, unit)


def _difference_text(difference: float, unit: str) -> str:
    sign = "+" if difference > 0 else "−" if difference < 0 else "±"
    return sign + _tolerance_text(abs(difference), unit)


def _holdout_period(version: ModelVersion) -> str | None:
    extra = _extra(version)
    window = extra.get("holdout_window") or extra.get("holdout") or {}
    if isinstance(window, Mapping) and window.get("start") and window.get("end"):
        return f"{str(window['start'])[:10]} to {str(window['end'])[:10]}"
    return None


def _key_metric(version: ModelVersion | None) -> str | None:
    if version is None:
        return None
    key = _extra(version).get("key_metric")
    return key if isinstance(key, str) else None


def gate_metric(config: GateConfig, candidate: ModelVersion, champion: ModelVersion | None) -> str | None:
    """The metric the holdout and slice gates judge: the setting, else the champion's key metric
    (when the candidate has it too), else the candidate's key metric, else a catalogue metric it has."""
    if config.metric:
        return config.metric
    champion_key = _key_metric(champion)
    if champion_key and champion_key in candidate.metrics:
        return champion_key
    if _key_metric(candidate):
        return _key_metric(candidate)
    return next((name for name in METRICS if name in candidate.metrics), next(iter(candidate.metrics), None))


def _dataset_for(registry: Registry, config: GateConfig, candidate: ModelVersion) -> str | None:
    """The dataset of the quality and smoke gates: the setting, the card, then other versions' cards."""
    if config.dataset:
        return config.dataset
    named = _extra(candidate).get("dataset")
    if isinstance(named, str) and named:
        return named
    # Versions of one model predict from the same data; older cards may not name it.
    for other in reversed(registry.list_versions(candidate.model)):
        named = _extra(other).get("dataset")
        if isinstance(named, str) and named:
            return named
    return None


# --- Gates -----------------------------------------------------------------------------------


@dataclass
class _GateContext:
    registry: Registry
    warehouse: Warehouse
    candidate: ModelVersion
    champion: ModelVersion | None
    config: GateConfig
    metric: str | None
    dataset: str | None
    units: dict[str, str] = field(default_factory=dict)


def _result(name: str, status: str, detail: str, **measured: Any) -> GateResult:
    return GateResult(name=name, title=GATE_TITLES[name], status=status, detail=detail, measured=_plain(measured))


def _plain(value: Any) -> Any:
    """Measured values as JSON-able plain Python (numpy numbers become floats, NaN becomes None)."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _verdict(passed: bool) -> str:
    return PASSED if passed else FAILED


def _gate_metric(ctx: _GateContext) -> GateResult:
    candidate, champion, metric = ctx.candidate, ctx.champion, ctx.metric
    if champion is None:
        return _result(GATE_METRIC, SKIPPED, "No champion to compare with (a first release).")
    if metric is None:
        return _result(GATE_METRIC, FAILED, f"Version {candidate.version} recorded no holdout metrics, so it cannot be compared with the champion.")
    info = metric_info(metric, ctx.units.get(metric))
    if metric not in candidate.metrics:
        return _result(
            GATE_METRIC, FAILED,
            f"Version {candidate.version} has no recorded {info.label.lower()} ({metric}) to compare with the champion. "
            f"Its metrics: {', '.join(candidate.metrics) or 'none'}. Choose another metric in the gate settings.",
            metric=metric,
        )  # fmt: skip
    if metric not in champion.metrics:
        return _result(
            GATE_METRIC, FAILED,
            f"The champion (version {champion.version}) has no recorded {info.label.lower()} ({metric}), so the "
            "candidate cannot be compared with it. Choose a metric both have in the gate settings.",
            metric=metric,
        )  # fmt: skip
    higher = metric_higher_is_better(metric)
    if higher is None:
        return _result(
            GATE_METRIC, FAILED,
            f"mlops-app does not know whether a higher {metric} is better; choose a catalogue metric "
            f"({', '.join(METRICS)}) in the gate settings.",
            metric=metric,
        )  # fmt: skip
    value, reference, tolerance = candidate.metrics[metric], champion.metrics[metric], ctx.config.tolerance
    passed = value >= reference - tolerance if higher else value <= reference + tolerance
    detail = (
        f"{info.label} {format_value(value, info.unit)} vs champion {format_value(reference, info.unit)} "
        f"(version {champion.version}; tolerance {_tolerance_text(tolerance, info.unit)}): {_verdict(passed)}."
    )
    periods = (_holdout_period(candidate), _holdout_period(champion))
    if all(periods) and periods[0] != periods[1]:
        detail += f" Measured on different holdout periods ({periods[0]} vs {periods[1]}), so the comparison is indicative."
    return _result(
        GATE_METRIC, _verdict(passed), detail, metric=metric, label=info.label, unit=info.unit, value=value,
        champion_value=reference, champion_version=champion.version, tolerance=tolerance, higher_is_better=higher,
    )  # fmt: skip


def slice_gaps(version: ModelVersion, metric: str) -> list[dict[str, Any]]:
    """Per-slice results of ``metric`` on the version's holdout with the gap to its overall result.

    Returns:
        ``[{"column", "value", "rows", "metric_value", "gap"}, ...]`` in card order; ``gap`` is
        how much worse the slice is than overall (positive: worse), None where unknown.
    """
    overall = version.metrics.get(metric)
    higher = metric_higher_is_better(metric)
    rows = []
    for item in _extra(version).get("holdout_slices") or []:
        if not isinstance(item, Mapping):
            continue
        value = (item.get("metrics") or {}).get(metric)
        number = float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None
        gap = None
        if number is not None and overall is not None and higher is not None:
            gap = overall - number if higher else number - overall
        rows.append(
            {"column": str(item.get("column")), "value": str(item.get("value")), "rows": int(item.get("rows") or 0),
             "metric_value": number, "gap": gap}
        )  # fmt: skip
    return rows


def _gate_slices(ctx: _GateContext) -> GateResult:
    candidate, metric, config = ctx.candidate, ctx.metric, ctx.config
    if not _extra(candidate).get("holdout_slices"):
        return _result(
            GATE_SLICES, FAILED,
            f"Version {candidate.version} recorded no per-group (slice) results, so whether it serves some groups "
            "much worse cannot be checked. Register it from a training run (it records slices), or an admin can "
            "turn this gate off for the model.",
        )  # fmt: skip
    if metric is None or metric not in candidate.metrics or metric_higher_is_better(metric) is None:
        return _result(GATE_SLICES, FAILED, f"No overall holdout value of a known metric ({metric}) to compare the groups with.")
    info = metric_info(metric, ctx.units.get(metric))
    gaps = slice_gaps(candidate, metric)
    judged = [row for row in gaps if row["gap"] is not None and row["rows"] >= config.min_slice_rows]
    small = [row for row in gaps if row["gap"] is not None and row["rows"] < config.min_slice_rows]
    if not judged:
        return _result(
            GATE_SLICES, FAILED,
            f"No group has {config.min_slice_rows} or more holdout rows with a {info.label.lower()} result, so no group "
            "could be judged.",
            metric=metric, small_groups=len(small),
        )  # fmt: skip
    overall = candidate.metrics[metric]
    worst = max(judged, key=lambda row: row["gap"])
    too_low = sorted((row for row in judged if row["gap"] > config.slice_limit), key=lambda row: -row["gap"])
    limit_text = _tolerance_text(config.slice_limit, info.unit)

    def name(row: Mapping[str, Any]) -> str:
        return f"{row['column']} = {row['value']}"

    if too_low:
        listed = "; ".join(
            f"{name(row)} {format_value(row['metric_value'], info.unit)} ({_tolerance_text(row['gap'], info.unit)} lower, {row['rows']} rows)"
            for row in too_low[:5]
        )
        more = f" and {len(too_low) - 5} more" if len(too_low) > 5 else ""
        detail = (
            f"{len(too_low)} of {len(judged)} groups are more than {limit_text} worse than overall on "
            f"{info.label.lower()} ({format_value(overall, info.unit)}): {listed}{more}: failed."
        )
    else:
        direction = "lower" if worst["gap"] >= 0 else "higher"
        detail = (
            f"No group is much worse: the weakest, {name(worst)}, has {info.label.lower()} "
            f"{format_value(worst['metric_value'], info.unit)} vs {format_value(overall, info.unit)} overall "
            f"({_tolerance_text(abs(worst['gap']), info.unit)} {direction}; limit {limit_text}). "
            f"{len(judged)} groups checked: passed."
        )
    if small:
        detail += f" {len(small)} group{'s' if len(small) != 1 else ''} with under {config.min_slice_rows} rows not judged."
    return _result(
        GATE_SLICES, _verdict(not too_low), detail, metric=metric, label=info.label, unit=info.unit, overall=overall,
        limit=config.slice_limit, worst_group=name(worst), worst_value=worst["metric_value"], worst_gap=worst["gap"],
        groups_checked=len(judged), groups_too_low=[name(row) for row in too_low], small_groups=len(small),
    )  # fmt: skip


def _gate_quality(ctx: _GateContext) -> GateResult:
    from mlops_app import quality  # heavy module; imported when a gate runs, not at import

    dataset = ctx.dataset
    if dataset is None:
        return _result(
            GATE_QUALITY, FAILED,
            f"No dataset is known for version {ctx.candidate.version} (its card names none and the gate settings set "
            "none), so its data quality cannot be checked. Set `dataset:` in the model's gate settings.",
        )  # fmt: skip
    checks = None
    try:
        # Like the data quality page: only checks still declared count (a removed check's old failure does not block).
        declared = quality.load_checks(ctx.warehouse.path.parent, dataset)
        checks = declared if declared.checks else None
    except MlopsError as error:
        LOG.warning("ignoring the checks file of %s in the quality gate: %s", dataset, error)
    card = quality.scorecard(ctx.warehouse, dataset, checks)
    if card.empty:
        return _result(
            GATE_QUALITY, FAILED,
            f"No data quality checks have run on {dataset} yet, so the data behind the model is unverified. "
            f"Run `mlops-app check {dataset}`.",
            dataset=dataset,
        )  # fmt: skip
    failing = card[card.status == "fail"]
    warning = card[card.status == "warn"]
    latest = card.checked_at.max()
    when = _day(latest.to_pydatetime()) if not pd.isna(latest) else "unknown"
    if not failing.empty:
        messages = "; ".join(f"{row.check_name}: {row.message}" for row in failing.head(3).itertuples())
        more = f" (and {len(failing) - 3} more)" if len(failing) > 3 else ""
        detail = f"{len(failing)} of {len(card)} checks of {dataset} fail on the latest data (checked {when}): {messages}{more}: failed."
    else:
        detail = f"All {len(card) - len(warning)} checks of {dataset} pass on the latest data (checked {when})"
        if not warning.empty:
            detail += f"; {len(warning)} gave a warning ({', '.join(warning.check_name.head(5))}), which does not block"
        detail += ": passed."
    return _result(
        GATE_QUALITY, _verdict(failing.empty), detail, dataset=dataset, checks=len(card), failing=list(failing.check_name),
        warnings=list(warning.check_name), checked_at=when,
    )  # fmt: skip


def _family(dtype: str) -> str:
    try:
        family = type_family(duckdb_type(dtype))
    except MlopsError:
        return f"other ({dtype})"
    # A model fed integers where it learnt decimals (or the reverse) still works.
    return "number" if family in ("integer", "number") else family


def _store_features(warehouse: Warehouse, names: list[str]) -> list[str]:
    """Which of ``names`` are registered feature-store features (scoring looks those up itself)."""
    if not names:
        return []
    from mlops_app.features import list_features  # imported when needed: the feature store is large

    try:
        known = set(list_features(warehouse)["name"])
    except MlopsError:
        return []
    return [name for name in names if name in known]


def _gate_schema(ctx: _GateContext) -> GateResult:
    candidate, champion = ctx.candidate, ctx.champion
    if champion is None:
        return _result(GATE_SCHEMA, SKIPPED, "No champion whose inputs the candidate must match (a first release).")
    mine = {column["name"]: column["dtype"] for column in candidate.card.get("input_schema") or []}
    theirs = {column["name"]: column["dtype"] for column in champion.card.get("input_schema") or []}
    if not mine:
        return _result(GATE_SCHEMA, FAILED, f"Version {candidate.version} recorded no input columns, so compatibility cannot be checked.")
    if not theirs:
        return _result(GATE_SCHEMA, FAILED, f"The champion (version {champion.version}) recorded no input columns to compare with.")
    new = sorted(set(mine) - set(theirs))
    # Feature-store features are looked up at scoring time (features.features_for_scoring),
    # so callers need not send them; the smoke test checks the lookup works.
    looked_up = _store_features(ctx.warehouse, new)
    missing = [name for name in new if name not in looked_up]
    changed = sorted(
        f"{name} ({_family(theirs[name])} → {_family(mine[name])})"
        for name in set(mine) & set(theirs)
        if _family(mine[name]) != _family(theirs[name])
    )
    unused = sorted(set(theirs) - set(mine))
    problems = []
    if missing:
        problems.append(f"it needs columns the champion's callers do not send: {', '.join(missing)}")
    if changed:
        problems.append(f"columns changed type: {', '.join(changed)}")
    notes = []
    if looked_up:
        notes.append(f"it also uses {len(looked_up)} feature-store feature{'s' if len(looked_up) != 1 else ''} ({', '.join(looked_up)}) that scoring looks up, so callers send nothing new")
    if unused:
        notes.append(f"it no longer uses {', '.join(unused)}; callers may keep sending them")
    if problems:
        detail = f"Not a drop-in replacement for version {champion.version}: {'; '.join(problems)}: failed."
    elif notes:
        detail = f"Compatible with the inputs of the champion (version {champion.version}): {'; '.join(notes)}: passed."
    else:
        detail = f"Same {len(mine)} input columns as the champion (version {champion.version}), with compatible types: passed."
    return _result(
        GATE_SCHEMA, _verdict(not problems), detail, columns=len(mine), champion_columns=len(theirs), missing=missing,
        changed_type=changed, no_longer_used=unused, from_feature_store=looked_up,
    )  # fmt: skip


def _gate_smoke(ctx: _GateContext) -> GateResult:
    candidate, dataset, rows = ctx.candidate, ctx.dataset, ctx.config.sample_rows
    # Fails rather than inventing rows from the schema: made-up values prove little about real traffic.
    if dataset is None:
        return _result(
            GATE_SMOKE, FAILED,
            f"No dataset is known for version {candidate.version}, so it cannot be tried on real rows. Set `dataset:` "
            "in the model's gate settings.",
        )  # fmt: skip
    columns = [column["name"] for column in candidate.card.get("input_schema") or []] or list(candidate.card.get("features") or [])
    if not columns:
        return _result(GATE_SMOKE, FAILED, f"Version {candidate.version} recorded no input columns, so no rows can be chosen for it.")
    try:
        info = get_dataset(ctx.warehouse, dataset)
        with ctx.warehouse.read() as connection:
            available = [name for name in table_columns(connection, TABLE_PREFIX + dataset) if not name.startswith("_")]
            if not available:
                return _result(GATE_SMOKE, FAILED, f"Dataset {dataset} has no rows table, so version {candidate.version} cannot be tried on it.", dataset=dataset)
            # Every column, not only the model's: entity keys and the time are needed to look up store features.
            selected = ", ".join(quote_identifier(name) for name in available)
            order = f" ORDER BY {quote_identifier(info.time_column)} DESC" if info.time_column in available else ""
            sample = connection.execute(f"SELECT {selected} FROM {quote_identifier(TABLE_PREFIX + dataset)}{order} LIMIT $1", [rows]).df()
    except (MlopsError, InvalidNameError) as error:
        return _result(GATE_SMOKE, FAILED, f"Could not read rows of {dataset}: {error}", dataset=dataset)
    if sample.empty:
        return _result(GATE_SMOKE, FAILED, f"Dataset {dataset} has no rows yet to try version {candidate.version} on.", dataset=dataset)
    absent = [name for name in columns if name not in sample.columns]
    looked_up = ""
    if absent:
        from mlops_app.features import features_for_scoring

        try:
            sample = features_for_scoring(ctx.warehouse, sample, absent, time_column=info.time_column if info.time_column in sample.columns else None)
        except MlopsError as error:
            return _result(
                GATE_SMOKE, FAILED,
                f"Dataset {dataset} lacks the columns {', '.join(absent)} and the feature store could not provide them "
                f"({error}), so version {candidate.version} cannot be tried on it.",
                dataset=dataset,
            )  # fmt: skip
        looked_up = f", with {len(absent)} feature-store feature{'s' if len(absent) != 1 else ''} looked up as of each row's time"
    try:
        estimator = ctx.registry.load_model(candidate.model, candidate.version)
    except MlopsError as error:
        return _result(GATE_SMOKE, FAILED, f"The artifact did not load: {error}", dataset=dataset)
    started = time.perf_counter()
    try:
        predicted = np.asarray(estimator.predict(sample[columns]))
    except Exception as error:  # noqa: BLE001 - any failure of the model is the finding
        return _result(
            GATE_SMOKE, FAILED,
            f"The artifact loaded but predicting {len(sample)} recent rows of {dataset} failed: {type(error).__name__}: {error}",
            dataset=dataset, rows=len(sample),
        )  # fmt: skip
    milliseconds = (time.perf_counter() - started) * 1000
    if predicted.shape[0] != len(sample):
        return _result(GATE_SMOKE, FAILED, f"The model returned {predicted.shape[0]} predictions for {len(sample)} rows.", dataset=dataset)
    if predicted.dtype.kind in "fc" and not np.isfinite(predicted).all():
        bad = int((~np.isfinite(predicted)).sum())
        return _result(GATE_SMOKE, FAILED, f"{bad} of {len(sample)} predictions on recent rows of {dataset} are not numbers (NaN or infinite).", dataset=dataset)
    return _result(
        GATE_SMOKE, PASSED,
        f"The artifact loaded (sha256 checked, only trusted types) and predicted {len(sample)} recent rows of {dataset}"
        f"{looked_up} in {milliseconds:.0f} ms: passed.",
        dataset=dataset, rows=len(sample), milliseconds=round(milliseconds, 1), from_feature_store=absent,
    )  # fmt: skip


_GATES = {GATE_METRIC: _gate_metric, GATE_SLICES: _gate_slices, GATE_QUALITY: _gate_quality, GATE_SCHEMA: _gate_schema, GATE_SMOKE: _gate_smoke}


def evaluate_gates(
    registry: Registry,
    warehouse: Warehouse,
    model: str,
    version: int,
    *,
    against: int | None | Literal["current"] = "current",
    kind: str = KIND_PROMOTION,
    config: GateConfig | None = None,
) -> list[GateResult]:
    """Run the promotion gates on a version (nothing is stored; requests store what this returns).

    Args:
        against: the version to compare with: ``"current"`` (default) for the current
            champion, None for none (a first release: the comparing gates are skipped).
        kind: ``rollback`` runs only the smoke test (the version already served as champion).
        config: gate settings; default the model's ``gates.yaml``.

    Returns:
        One :class:`GateResult` per gate, in :data:`GATE_NAMES` order. A gate that crashes
        is a failed gate whose detail names the error.

    Raises:
        NotFoundError: no such model or version.
    """
    candidate = registry.get_version(model, version_number(version))
    config = config or load_gate_config(registry, model)
    reference = registry.get_model(model).aliases.get(CHAMPION) if against == "current" else against
    champion = registry.get_version(model, reference) if reference is not None else None
    metric = gate_metric(config, candidate, champion)
    ctx = _GateContext(registry, warehouse, candidate, champion, config, metric, None, _units(candidate, champion))
    ctx.dataset = _dataset_for(registry, config, candidate)
    results = []
    for name in GATE_NAMES:
        if kind == KIND_ROLLBACK and name != GATE_SMOKE:
            results.append(_result(name, SKIPPED, f"Not run for a rollback: version {candidate.version} already served as champion and was judged then."))
        elif name in config.disabled:
            results.append(_result(name, SKIPPED, "Turned off for this model in its gate settings by an admin."))
        else:
            try:
                results.append(_GATES[name](ctx))
            except Exception as error:  # noqa: BLE001 - a broken gate must block, not crash the request
                LOG.exception("gate %s crashed on %s v%s", name, model, version)
                results.append(_result(name, FAILED, f"The gate could not run: {type(error).__name__}: {error}"))
    return results


# --- Requests and decisions ------------------------------------------------------------------


def _gates_details(request: PromotionRequest) -> dict[str, Any]:
    return {
        "request_id": request.id,
        "passed": request.gates_passed,
        "failed": [gate.name for gate in request.failed_gates],
        "results": {gate.name: gate.status for gate in request.gates},
        "compared_with": request.compared_with,
    }


def _record_new_request(registry: Registry, request: PromotionRequest) -> None:
    _write_request(registry, request)
    registry.append_event(
        request.model, EVENT_REQUESTED, actor=request.requested_by, version=request.version, alias=request.alias,
        reason=request.reason, time=request.requested_at,
        details={"request_id": request.id, "kind": request.kind, "from_version": request.from_version, "imported": request.imported},
    )  # fmt: skip
    if request.gates:
        registry.append_event(
            request.model, EVENT_GATES_EVALUATED, actor=request.requested_by, version=request.version, alias=request.alias,
            reason="; ".join(gate.detail for gate in request.failed_gates), time=request.gates_evaluated_at,
            details=_gates_details(request),
        )  # fmt: skip


def _review_link(settings: Settings, model: str, version: int) -> str:
    return f"{settings.public_url.rstrip('/')}/model_review?model={model}&version={version}"


def _open_request(
    settings: Settings,
    registry: Registry,
    warehouse: Warehouse,
    model: str,
    version: Any,
    alias: Any,
    identity: Identity,
    reason: Any,
    kind: str,
    refuse: Refusal,
) -> PromotionRequest:
    try:
        info = registry.get_model(model)
    except MlopsError as error:
        raise refuse(str(error), type(error)) from None
    try:
        _check_alias(alias)
    except InvalidNameError as error:
        refuse.details["alias_given"] = repr(alias)[:100]
        raise refuse(str(error), InvalidNameError) from None
    refuse.alias = alias
    try:
        number = version_number(version)
        candidate = registry.get_version(model, number)
    except (InvalidNameError, NotFoundError) as error:
        refuse.details["version_given"] = repr(version)[:100]
        raise refuse(str(error), type(error)) from None
    refuse.version = number
    try:
        reason = _clean_text(reason, "reason")
    except MlopsError as error:
        raise refuse(str(error)) from None
    if not reason:
        raise refuse(f"Say why version {number} should become {alias}: a request needs a reason reviewers can read.")
    current = info.aliases.get(alias)
    if current == number:
        raise refuse(f"Version {number} of {model} is already {alias}; there is nothing to request.")
    _refuse_if_pending(registry, model, alias, kind, refuse)

    champion = info.aliases.get(CHAMPION)
    gates = evaluate_gates(registry, warehouse, model, candidate.version, against=champion, kind=kind)
    now = _now()
    request = PromotionRequest(
        id=_new_request_id(now), model=model, version=number, alias=alias, kind=kind, from_version=current,
        compared_with=champion, reason=reason, requested_by=identity.email, requested_at=now, gates=tuple(gates),
        gates_evaluated_at=now,
    )  # fmt: skip
    with _decision_lock(registry, model):
        # Checked again under the lock: another request may have been made while the gates ran.
        _refuse_if_pending(registry, model, alias, kind, refuse)
        _record_new_request(registry, request)
    failed = request.failed_gates
    notify(
        settings,
        {
            "event": "promotion_requested", "model": model, "version": number, "alias": alias, "kind": kind,
            "request_id": request.id, "requested_by": identity.email, "gates_passed": request.gates_passed,
            "text": (
                f"{model}: {identity.email} asks to {'roll ' + alias + ' back to' if kind == KIND_ROLLBACK else 'make'} "
                f"version {number}{'' if kind == KIND_ROLLBACK else ' ' + alias}. "
                + (f"{len(failed)} gate(s) failed: {', '.join(g.title.lower() for g in failed)}. " if failed else "All gates passed. ")
                + f"Review: {_review_link(settings, model, number)}"
            ),
        },
    )  # fmt: skip
    return request


def _refuse_if_pending(registry: Registry, model: str, alias: str, kind: str, refuse: Refusal) -> None:
    for other in list_requests(registry, model, status=PENDING):
        # A rollback is urgent and may overtake a pending promotion (which then goes stale).
        if other.alias == alias and (kind != KIND_ROLLBACK or other.kind == KIND_ROLLBACK):
            raise refuse(
                f"Request {other.id} ({other.requested_by} asks to make version {other.version} {alias}) is still "
                "pending. Approve, reject or withdraw it first, so reviewers judge one change at a time."
            )


def request_promotion(
    settings: Settings,
    registry: Registry,
    warehouse: Warehouse,
    model: str,
    version: int,
    alias: str,
    identity: Identity,
    *,
    reason: str,
) -> PromotionRequest:
    """Ask for ``version`` of ``model`` to become ``alias``; the gates run now and are stored.

    A request with failed gates is still recorded (the gates explain why it is blocked).

    Raises:
        PermissionDeniedError: the identity may not request promotions (reviewer and up).
        InvalidNameError: the alias or version breaks the rules.
        NotFoundError: no such model or version.
        MlopsError: no reason, the version already holds the alias, or another request for
            the alias is pending.
        Every refusal is logged as a ``refused`` event in the model's audit log.
    """
    refuse = Refusal(registry, model, identity, "request_promotion")
    refuse.require("request_promotion")
    return _open_request(settings, registry, warehouse, model, version, alias, identity, reason, KIND_PROMOTION, refuse)


def champion_history(registry: Registry, model: str, alias: str = CHAMPION) -> list[AliasPeriod]:
    """Which version held ``alias`` when, oldest first, from the audit log (backdated events by their times)."""
    _check_alias(alias)
    moves = sorted(
        (event for event in registry.events(model) if event.get("event") in (EVENT_ALIAS_SET, EVENT_ALIAS_REMOVED) and event.get("alias") == alias),
        key=lambda event: _parse_time(event.get("time")),
    )  # sorted() is stable: moves with the same time keep the order they were written in
    periods: list[AliasPeriod] = []
    for event in moves:
        moment = _parse_time(event.get("time"))
        if periods and periods[-1].end is None:
            last = periods[-1]
            periods[-1] = AliasPeriod(last.version, last.start, moment, last.set_by, last.reason)
        if event.get("event") == EVENT_ALIAS_SET and event.get("version") is not None:
            periods.append(AliasPeriod(int(event["version"]), moment, None, str(event.get("actor", "")), str(event.get("reason", ""))))
    return periods


def champion_on(registry: Registry, model: str, when: datetime | date, alias: str = CHAMPION) -> int | None:
    """The version that was ``alias`` (champion by default) at ``when``; None when none was.

    Args:
        when: a moment (naive means UTC), or a date, meaning the end of that day in UTC.
    """
    if isinstance(when, datetime):
        moment = _aware(when)
    else:
        moment = datetime.combine(when, day_time.max, tzinfo=UTC)
    found = None
    for period in champion_history(registry, model, alias):
        if period.start <= moment and (period.end is None or moment < period.end):
            found = period.version
    return found


def previous_champion(registry: Registry, model: str) -> int | None:
    """The version that was champion before the current one (None: there is no earlier one)."""
    periods = champion_history(registry, model)
    current = registry.get_model(model).aliases.get(CHAMPION)
    for period in reversed(periods[:-1] if periods and periods[-1].end is None else periods):
        if period.version != current:
            return period.version
    return None


def request_rollback(
    settings: Settings, registry: Registry, warehouse: Warehouse, model: str, identity: Identity, *, reason: str
) -> PromotionRequest:
    """Ask to point the champion back at the previous champion; approved like any request.

    Only the "loads and predicts" gate runs: the previous champion was judged when it was released.

    Raises:
        PermissionDeniedError: the identity may not request (reviewer and up).
        MlopsError: no champion, no previous champion, no reason, or a pending request for the champion.
    """
    refuse = Refusal(registry, model, identity, "request_rollback", alias=CHAMPION)
    refuse.require("request_promotion")
    try:
        info = registry.get_model(model)
    except MlopsError as error:
        raise refuse(str(error), type(error)) from None
    if info.aliases.get(CHAMPION) is None:
        raise refuse(f"{model} has no champion, so there is nothing to roll back.")
    target = previous_champion(registry, model)
    if target is None:
        raise refuse(f"{model} has had only one champion (version {info.aliases[CHAMPION]}); there is no earlier one to roll back to.")
    return _open_request(settings, registry, warehouse, model, target, CHAMPION, identity, reason, KIND_ROLLBACK, refuse)


def _refuse_decided(request: PromotionRequest, refuse: Refusal) -> None:
    if request.status != PENDING:
        word = {APPROVED: "approved", REJECTED: "rejected", WITHDRAWN: "withdrawn"}[request.status]
        raise refuse(f"Request {request.id} was already {word} by {request.decided_by} at {_day(request.decided_at)}; nothing was changed.")


def _load_for_decision(registry: Registry, model: str, request_id: str, refuse: Refusal) -> PromotionRequest:
    try:
        request = get_request(registry, model, request_id)
    except (InvalidNameError, NotFoundError) as error:
        raise refuse(str(error), type(error)) from None
    refuse.version, refuse.alias = request.version, request.alias
    return request


def approve(
    settings: Settings,
    registry: Registry,
    model: str,
    request_id: str,
    identity: Identity,
    *,
    comment: str = "",
    override_reason: str | None = None,
) -> PromotionRequest:
    """Approve a pending request: the alias moves, the request is marked approved, the webhook is told.

    Args:
        override_reason: needed when a gate failed and no admin has overridden it yet; the
            identity must then be an admin, and the reason is recorded.

    Returns:
        The approved request.

    Raises:
        PermissionDeniedError: not an approver; or overriding without being an admin.
        MlopsError: the request is already decided ("already approved by X at T"), is the
            identity's own (unless ``allow_self_approval``), has failed gates without an
            override, or the alias moved since the gates ran (request again).
        NotFoundError / InvalidNameError: no such request.
        Every refusal is logged as a ``refused`` event and changes nothing else.
    """
    refuse = Refusal(registry, model, identity, "approve_promotion", request_id=str(request_id)[:80])
    refuse.require("approve_promotion")
    try:
        comment = _clean_text(comment, "comment")
        override_reason = None if override_reason is None else _clean_text(override_reason, "override reason")
    except MlopsError as error:
        raise refuse(str(error)) from None
    with _decision_lock(registry, model):
        request = _load_for_decision(registry, model, request_id, refuse)
        if request.kind == KIND_ROLLBACK:
            refuse.require("rollback")
        _refuse_decided(request, refuse)
        if request.requested_by.lower() == identity.email.lower() and not settings.allow_self_approval:
            raise refuse(
                f"{identity.email} requested this change and cannot also approve it: a second person must approve "
                "(setting allow_self_approval is off).",
                PermissionDeniedError,
            )
        now = _now()
        override = request.override
        new_override = None
        if request.failed_gates and override is None:
            names = ", ".join(gate.title.lower() for gate in request.failed_gates)
            if override_reason is None:
                raise refuse(
                    f"Request {request.id} is blocked: {len(request.failed_gates)} gate(s) failed ({names}). Reject it, "
                    "or an admin can approve with an override and a written reason."
                )
            refuse.require("override_gate")
            if not override_reason:
                raise refuse("An override needs a written reason: say why the failed gates are acceptable.")
            new_override = override = Override(by=identity.email, at=now, reason=override_reason, gates=tuple(g.name for g in request.failed_gates))
        current = registry.get_model(model).aliases.get(request.alias)
        if current not in (request.from_version, request.version):
            raise refuse(
                f"The {request.alias} alias moved since this request was made (it was "
                f"{_version_text(request.from_version)}, now {_version_text(current)}), so its gates compared with an "
                "outdated champion. Reject or withdraw it and request again."
            )
        try:
            registry.get_version(model, request.version)
        except NotFoundError as error:
            raise refuse(str(error), NotFoundError) from None

        if new_override is not None:
            registry.append_event(
                model, EVENT_OVERRIDDEN, actor=identity.email, version=request.version, alias=request.alias,
                reason=new_override.reason, time=now, details={"request_id": request.id, "gates": list(new_override.gates)},
            )  # fmt: skip
        if current != request.version:
            verb = "Rollback" if request.kind == KIND_ROLLBACK else "Promotion"
            registry.set_alias(
                model, request.alias, request.version, actor=identity.email, at=now,
                reason=f"{verb} approved ({request.id}): {request.reason}",
            )  # fmt: skip
        # else: an earlier approval moved the alias and died before recording itself; finish it.
        approved = request.model_copy(update={"status": APPROVED, "decided_by": identity.email, "decided_at": now, "comment": comment, "override": override})
        _write_request(registry, approved)
        registry.append_event(
            model, EVENT_APPROVED, actor=identity.email, version=request.version, alias=request.alias, reason=comment,
            time=now, details={"request_id": request.id, "kind": request.kind, "previous": current if current != request.version else request.from_version,
                                "overridden": list(override.gates) if override else []},
        )  # fmt: skip
    previous = request.from_version
    notify(
        settings,
        {
            "event": "alias_moved", "model": model, "alias": request.alias, "version": request.version,
            "previous": previous, "kind": request.kind, "request_id": request.id, "approved_by": identity.email,
            "time": now.isoformat(),
            "text": (
                f"{model}: version {request.version} is now {request.alias}"
                f"{f' (was version {previous})' if previous is not None else ''}"
                f"{', rolled back' if request.kind == KIND_ROLLBACK else ''}; approved by {identity.email}. "
                f"Review: {_review_link(settings, model, request.version)}"
            ),
        },
    )  # fmt: skip
    return approved


def _version_text(version: int | None) -> str:
    return "unset" if version is None else f"version {version}"


def reject(settings: Settings, registry: Registry, model: str, request_id: str, identity: Identity, *, comment: str) -> PromotionRequest:
    """Turn a pending request down with a comment the requester reads. Nothing else changes.

    Raises:
        PermissionDeniedError: not an approver. MlopsError: no comment, or already decided.
    """
    refuse = Refusal(registry, model, identity, "reject_promotion", request_id=str(request_id)[:80])
    refuse.require("reject_promotion")
    try:
        comment = _clean_text(comment, "comment")
    except MlopsError as error:
        raise refuse(str(error)) from None
    if not comment:
        raise refuse("A rejection needs a comment: tell the requester what to change.")
    with _decision_lock(registry, model):
        request = _load_for_decision(registry, model, request_id, refuse)
        _refuse_decided(request, refuse)
        now = _now()
        rejected = request.model_copy(update={"status": REJECTED, "decided_by": identity.email, "decided_at": now, "comment": comment})
        _write_request(registry, rejected)
        registry.append_event(
            model, EVENT_REJECTED, actor=identity.email, version=request.version, alias=request.alias, reason=comment,
            time=now, details={"request_id": request.id, "kind": request.kind},
        )  # fmt: skip
    return rejected


def withdraw(settings: Settings, registry: Registry, model: str, request_id: str, identity: Identity, *, reason: str = "") -> PromotionRequest:
    """The requester (or an approver) takes a pending request back.

    Raises:
        PermissionDeniedError: someone else's request, and not an approver. MlopsError: already decided.
    """
    refuse = Refusal(registry, model, identity, "withdraw_request", request_id=str(request_id)[:80])
    try:
        reason = _clean_text(reason, "reason")
    except MlopsError as error:
        raise refuse(str(error)) from None
    with _decision_lock(registry, model):
        request = _load_for_decision(registry, model, request_id, refuse)
        if request.requested_by.lower() != identity.email.lower():
            refuse.require("reject_promotion")
        _refuse_decided(request, refuse)
        now = _now()
        withdrawn = request.model_copy(update={"status": WITHDRAWN, "decided_by": identity.email, "decided_at": now, "comment": reason})
        _write_request(registry, withdrawn)
        registry.append_event(
            model, EVENT_WITHDRAWN, actor=identity.email, version=request.version, alias=request.alias, reason=reason,
            time=now, details={"request_id": request.id},
        )  # fmt: skip
    return withdrawn


def override_gates(settings: Settings, registry: Registry, model: str, request_id: str, identity: Identity, *, reason: str) -> PromotionRequest:
    """An admin records that a request's failed gates are acceptable, with a written reason.

    The request stays pending: an approver (who may be another person) then approves it.

    Raises:
        PermissionDeniedError: not an admin. MlopsError: no reason, no failed gate, already
        overridden, or already decided.
    """
    refuse = Refusal(registry, model, identity, "override_gate", request_id=str(request_id)[:80])
    refuse.require("override_gate")
    try:
        reason = _clean_text(reason, "override reason")
    except MlopsError as error:
        raise refuse(str(error)) from None
    if not reason:
        raise refuse("An override needs a written reason: say why the failed gates are acceptable.")
    with _decision_lock(registry, model):
        request = _load_for_decision(registry, model, request_id, refuse)
        _refuse_decided(request, refuse)
        if not request.failed_gates:
            raise refuse(f"Every gate of request {request.id} passed; there is nothing to override.")
        if request.override is not None:
            raise refuse(f"The gates of request {request.id} were already overridden by {request.override.by} at {_day(request.override.at)}.")
        now = _now()
        override = Override(by=identity.email, at=now, reason=reason, gates=tuple(gate.name for gate in request.failed_gates))
        updated = request.model_copy(update={"override": override})
        _write_request(registry, updated)
        registry.append_event(
            model, EVENT_OVERRIDDEN, actor=identity.email, version=request.version, alias=request.alias, reason=reason,
            time=now, details={"request_id": request.id, "gates": list(override.gates)},
        )  # fmt: skip
    return updated


# --- The record in plain language ------------------------------------------------------------


def _said(base: str, reason: str) -> str:
    """``base`` as a sentence, followed by what the person wrote, quoted."""
    return f"{base}: “{reason}”" if reason else f"{base}."


def _timeline_text(event: Mapping[str, Any]) -> tuple[str, str]:
    name = event.get("event", "")
    who = event.get("actor", "someone")
    version, alias = event.get("version"), event.get("alias")
    details = event.get("details") or {}
    reason = str(event.get("reason") or "")
    if name == "model_created":
        return "info", f"{who} created the model."
    if name == "registered":
        return "info", _said(f"{who} registered version {version}", reason)
    if name == EVENT_ALIAS_SET:
        previous = details.get("previous")
        was = f" (was version {previous})" if previous is not None else ""
        return "alias", _said(f"Version {version} became {alias}{was}, set by {who}", reason)
    if name == EVENT_ALIAS_REMOVED:
        return "alias", _said(f"{who} removed the {alias} alias (it pointed at version {details.get('previous')})", reason)
    if name == EVENT_REQUESTED:
        imported = " (recorded from the release log)" if details.get("imported") else ""
        if details.get("kind") == KIND_ROLLBACK:
            return "request", _said(f"{who} asked to roll {alias} back to version {version}{imported}", reason)
        return "request", _said(f"{who} asked to make version {version} {alias}{imported}", reason)
    if name == EVENT_GATES_EVALUATED:
        results = details.get("results") or {}
        failed = [GATE_TITLES.get(gate, gate).lower() for gate in details.get("failed") or []]
        skipped = sum(1 for status in results.values() if status == SKIPPED)
        not_run = f", {skipped} not needed" if skipped else ""
        if failed:
            return "gates", f"Gates for version {version}: {len(failed)} of {len(results)} failed ({'; '.join(failed)}){not_run}."
        return "gates", f"Gates for version {version}: {len(results) - skipped} passed{not_run}."
    if name == EVENT_OVERRIDDEN:
        gates = "; ".join(GATE_TITLES.get(gate, gate).lower() for gate in details.get("gates") or [])
        return "decision", _said(f"{who} (admin) overrode the failed gates ({gates}) of the request for version {version}", reason)
    if name == EVENT_APPROVED:
        what = f"the rollback of {alias} to version {version}" if details.get("kind") == KIND_ROLLBACK else f"version {version} as {alias}"
        return "decision", _said(f"{who} approved {what}", reason)
    if name == EVENT_REJECTED:
        return "decision", _said(f"{who} rejected version {version} as {alias}", reason)
    if name == EVENT_WITHDRAWN:
        return "decision", _said(f"{who} withdrew the request for version {version} as {alias}", reason)
    if name == EVENT_REFUSED:
        action = str(details.get("action", "an action")).replace("_", " ")
        on = f" (version {version})" if version is not None else ""
        return "refusal", f"Refused: {who} tried to {action}{on}. Why: {reason}"
    if name == EVENT_GATES_CONFIGURED:
        return "info", f"{who} changed the gate settings."
    if name == "share_link_created":
        return "info", f"{who} shared a read-only link to the review of version {version}, valid until {details.get('expires_at', '?')}."
    on = f" (version {version})" if version is not None else ""
    return "info", _said(f"{who}: {str(name).replace('_', ' ')}{on}", reason)


def timeline(registry: Registry, model: str, *, version: int | None = None, include_refusals: bool = True) -> list[TimelineEntry]:
    """The model's history in plain language, oldest first (by the events' own times).

    Args:
        version: only what concerns this version (its registration, requests, decisions, and
            alias moves to or from it).
        include_refusals: keep the ``refused`` attempts (an auditor wants them; a stakeholder may not).
    """
    entries = []
    for event in registry.events(model):
        details = event.get("details") or {}
        if version is not None and version not in (event.get("version"), details.get("previous")):
            continue
        if not include_refusals and event.get("event") == EVENT_REFUSED:
            continue
        kind, text = _timeline_text(event)
        entries.append(
            TimelineEntry(
                time=_parse_time(event.get("time")), event=str(event.get("event", "")), actor=str(event.get("actor", "")),
                text=text, version=event.get("version"), request_id=details.get("request_id"), kind=kind,
            )
        )  # fmt: skip
    entries.sort(key=lambda entry: entry.time)  # stable: same-time events keep their written order
    return entries


# --- The model card and the review -----------------------------------------------------------


@dataclass(frozen=True)
class CardSection:
    heading: str
    text: str
    stated: bool  # False when the author left it out and the text says what is known instead


@dataclass(frozen=True)
class ModelCard:
    """A version's card in plain language, for stakeholders."""

    model: str
    version: int
    title: str
    summary: str
    sections: tuple[CardSection, ...]
    facts: tuple[tuple[str, str], ...]


def model_card(version: ModelVersion, info: ModelInfo | None = None) -> ModelCard:
    """Render a version's card in plain language: what it predicts, for whom, intended use, limits.

    Fields the author left out get a sentence saying so and what the record does show
    (target, training period, owner), so a missing field never reads as a blank.
    """
    extra = _extra(version)
    card = version.card
    author = version.author or "the author"
    owner = info.owner if info and info.owner else author

    def text(*keys: str) -> str | None:
        for key in keys:
            value = extra.get(key) if key in extra else card.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()
        return None

    columns = [column["name"] for column in card.get("input_schema") or []] or list(card.get("features") or [])
    inputs = f" from {len(columns)} inputs ({', '.join(columns[:8])}{', ...' if len(columns) > 8 else ''})" if columns else ""
    predicts = text("predicts")
    if predicts:
        predicts_section = CardSection("What it predicts", predicts, True)
    elif extra.get("target"):
        task = {"classification": "a yes/no answer", "regression": "a number"}.get(str(extra.get("task")), "a value")
        predicts_section = CardSection(
            "What it predicts", f"Not described by the author. From the record: {task} for “{extra['target']}”{inputs}.", False
        )
    else:
        uses = f" It works{inputs}." if inputs else ""
        predicts_section = CardSection("What it predicts", f"Not described by the author ({author}); ask them before relying on it.{uses}", False)

    for_whom = text("for_whom", "audience", "users")
    whom_section = CardSection("For whom", for_whom, True) if for_whom else CardSection(
        "For whom", f"Not stated. The model is owned by {owner}; ask them who relies on its answers.", False
    )
    use = text("intended_use")
    use_section = CardSection("Intended use", use, True) if use else CardSection(
        "Intended use", f"Not stated. Do not use it beyond what it was trained for without asking {owner}.", False
    )
    limits = text("limits")
    training = extra.get("training_window") or {}
    split = extra.get("split") or {}
    if not training and isinstance(split, Mapping) and isinstance(split.get("train"), Mapping):
        # The trainer refits its winner on the training and validation periods together.
        last = split.get("validation") if isinstance(split.get("validation"), Mapping) else split["train"]
        training = {"start": split["train"].get("start"), "end": last.get("end")}
    trained = (
        f"trained on data from {str(training.get('start'))[:10]} to {str(training.get('end'))[:10]}"
        if isinstance(training, Mapping) and training.get("start") and training.get("end") else ""
    )  # fmt: skip
    if limits:
        limits_section = CardSection("Limits", limits, True)
    else:
        known = f" From the record: it was {trained}, so it has not seen what changed since." if trained else ""
        limits_section = CardSection("Limits", f"Not stated by the author.{known}", False)

    metrics = version.metrics
    key = _key_metric(version) or next((name for name in METRICS if name in metrics), next(iter(metrics), None))
    units = extra.get("metric_units") or {}
    if key and key in metrics:
        key_info = metric_info(key, units.get(key))
        target = (extra.get("targets") or {}).get(key)
        target_text = f" ({describe_target(target, key_info.unit)})" if target else ""
        period = _holdout_period(version)
        rows = extra.get("holdout_rows") or (extra.get("holdout") or {}).get("rows")
        on = f" on {rows:,} held-out rows" if isinstance(rows, int) else " on held-out data"
        tested = f"{key_info.label}: {format_value(metrics[key], key_info.unit)}{target_text}{on}{f' from {period}' if period else ''}. {key_info.help}"
        tested_section = CardSection("How it was tested", tested.strip(), True)
    else:
        tested_section = CardSection("How it was tested", "No holdout results were recorded for this version.", False)

    description = card.get("description") or ""
    title = f"{version.model} version {version.version}"
    summary = predicts or (info.description if info and info.description else description) or f"Version {version.version} of {version.model}."
    facts = [
        ("Registered", f"{card.get('created_at', '')[:16].replace('T', ' ')} UTC by {author}"),
        ("Description", description or "none"),
        ("Owner", owner),
    ]
    if card.get("run_id"):
        facts.append(("Training run", f"{card['run_id']} ({extra.get('experiment', 'experiment unknown')})"))
    if extra.get("dataset"):
        facts.append(("Dataset", str(extra["dataset"])))
    if trained:
        facts.append(("Training data", trained.removeprefix("trained on ").capitalize()))
    facts.append(("Artifact", f"{card.get('artifact_bytes', 0):,} bytes, sha256 {str(card.get('artifact_sha256', ''))[:12]}…"))
    return ModelCard(
        version.model, version.version, title, summary,
        (predicts_section, whom_section, use_section, limits_section, tested_section), tuple(facts),
    )  # fmt: skip


@dataclass(frozen=True)
class MetricRow:
    """One metric of a version beside the champion's."""

    key: str
    label: str
    help: str
    unit: str
    value: float | None
    value_text: str
    champion_value: float | None
    champion_text: str
    change_text: str
    better: bool | None  # True: the candidate is better; None: equal, unknown or no champion
    target_text: str
    meets_target: bool | None


def compare_metrics(candidate: ModelVersion, champion: ModelVersion | None) -> list[MetricRow]:
    """The candidate's holdout metrics beside the champion's, key metric first."""
    units = _units(candidate, champion)
    targets = _extra(candidate).get("targets") or (_extra(champion).get("targets") if champion else None) or {}
    keys = list(candidate.metrics) + [key for key in (champion.metrics if champion else {}) if key not in candidate.metrics]
    key_metric = _key_metric(candidate)
    keys.sort(key=lambda key: (key != key_metric, key not in METRICS, list(METRICS).index(key) if key in METRICS else 0))
    rows = []
    for key in keys:
        info = metric_info(key, units.get(key))
        value = candidate.metrics.get(key)
        reference = champion.metrics.get(key) if champion else None
        better, change = None, ""
        if value is not None and reference is not None:
            change = _difference_text(value - reference, info.unit)
            higher = metric_higher_is_better(key)
            if higher is not None and value != reference:
                better = value > reference if higher else value < reference
        target = targets.get(key)
        rows.append(
            MetricRow(
                key, info.label, info.help, info.unit, value, format_value(value, info.unit), reference,
                format_value(reference, info.unit) if champion else "", change, better,
                describe_target(target, info.unit) if target else "",
                meets_target(value, target) if target and value is not None else None,
            )
        )  # fmt: skip
    return rows


@dataclass(frozen=True)
class ModelReview:
    """Everything the Model review page and the HTML export show about one version."""

    model: ModelInfo
    version: ModelVersion
    champion: ModelVersion | None
    card: ModelCard
    metrics: list[MetricRow]
    metric: str | None
    slices: list[dict[str, Any]]
    request: PromotionRequest | None
    gates: list[GateResult]
    gates_are_preview: bool
    timeline: list[TimelineEntry]
    status: Status
    verdict: str


def build_review(registry: Registry, warehouse: Warehouse, model: str, version: int) -> ModelReview:
    """Gather the review of one version: card, metrics vs champion, slices, gates, timeline, verdict.

    The gates are those stored with the latest request for the version; without a request
    they are run now as a preview (nothing is stored).

    Raises:
        NotFoundError / InvalidNameError: no such model or version.
    """
    info = registry.get_model(model)
    candidate = registry.get_version(model, version_number(version))
    requests = list_requests(registry, model, version=candidate.version)
    request = requests[0] if requests else None
    reference = request.compared_with if request else info.aliases.get(CHAMPION)
    if reference == candidate.version:
        reference = None
    champion = registry.get_version(model, reference) if reference is not None else None
    config = load_gate_config(registry, model)
    metric = gate_metric(config, candidate, champion)
    if request is not None and not request.imported:
        gates, preview = list(request.gates), False
    else:
        gates, preview = evaluate_gates(registry, warehouse, model, candidate.version, against=reference, config=config), True
    serving = [alias for alias, number in info.aliases.items() if number == candidate.version]
    if request is not None and request.status == PENDING:
        status = Status.ACT if request.blocked else Status.WATCH
        verdict = request.summary
    elif request is not None and request.status == APPROVED:
        status, verdict = Status.HEALTHY, request.summary + (f" Now serving as {', '.join(serving)}." if serving else " It no longer holds that alias.")
    elif request is not None:
        status, verdict = Status.UNKNOWN, request.summary
    else:
        failed = [gate for gate in gates if gate.status == FAILED]
        status = Status.UNKNOWN
        verdict = (
            f"No promotion was requested for version {candidate.version} yet. As things stand, "
            + (f"{len(failed)} of {len(gates)} gates would fail ({', '.join(g.title.lower() for g in failed)})." if failed else f"all {len(gates)} gates would pass.")
        )
        if serving:
            status, verdict = Status.HEALTHY, f"Version {candidate.version} is {', '.join(serving)}. " + verdict
    return ModelReview(
        info, candidate, champion, model_card(candidate, info), compare_metrics(candidate, champion), metric,
        slice_gaps(candidate, metric) if metric else [], request, gates, preview,
        timeline(registry, model, version=candidate.version), status, verdict,
    )  # fmt: skip


# --- Demo ------------------------------------------------------------------------------------

DEMO_REQUESTER = "data-scientist@orchard.example"
DEMO_DATASET = "apple_harvest"  # mlops_app.demo.DATASET; not imported, the demo imports this module


def _record_past_request(
    registry: Registry, model: str, version: int, alias: str, *, requested_by: str, approved_by: str,
    requested_at: datetime, approved_at: datetime, reason: str, comment: str, from_version: int | None,
) -> None:  # fmt: skip
    """Import an approval made before mlops-app ran gates (the alias move is already in the log)."""
    request = PromotionRequest(
        id=f"req-{requested_at:%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}", model=model, version=version, alias=alias,
        from_version=from_version, compared_with=from_version, reason=reason, requested_by=requested_by,
        requested_at=requested_at, status=APPROVED, decided_by=approved_by, decided_at=approved_at, comment=comment,
        imported=True,
    )  # fmt: skip
    with _decision_lock(registry, model):
        _record_new_request(registry, request)
        registry.append_event(
            model, EVENT_APPROVED, actor=approved_by, version=version, alias=alias, reason=comment, time=approved_at,
            details={"request_id": request.id, "kind": KIND_PROMOTION, "previous": from_version, "imported": True},
        )  # fmt: skip


def install_demo_promotions(settings: Settings, registry: Registry, warehouse: Warehouse) -> None:
    """Give the demo a promotion history and a pending request. Idempotent.

    Records the demo's past releases (the champion moves already in the log) as approved
    requests, writes gate settings naming the dataset (older cards do not), and opens a real
    request, with real gates, for the grader's challenger to become champion, made by a
    data scientist so the local demo identity (an admin) can approve, reject or override it.
    """
    models = {info.name: info for info in registry.list_models()}
    for name, metric in (("apple-grader", "recall_bad"), ("sugar-estimator", "mae")):
        if name not in models or list_requests(registry, name):
            continue
        write_atomic(
            registry.path_for(name, GATES_FILE),
            gate_config_to_yaml(GateConfig(metric=metric, dataset=DEMO_DATASET)).encode("utf-8"),
        )
        for period in champion_history(registry, name):
            previous = champion_on(registry, name, period.start - timedelta(milliseconds=1))
            _record_past_request(
                registry, name, period.version, CHAMPION, requested_by=DEMO_REQUESTER, approved_by=period.set_by,
                requested_at=period.start - timedelta(hours=20), approved_at=period.start - timedelta(seconds=1),
                reason=period.reason or f"Release version {period.version}", comment="Reviewed the holdout results; approved.",
                from_version=previous,
            )  # fmt: skip
    grader = models.get("apple-grader")
    if grader is None:
        return
    grader = registry.get_model("apple-grader")
    challenger = grader.aliases.get(CHALLENGER)
    if challenger is None or challenger == grader.aliases.get(CHAMPION) or list_requests(registry, "apple-grader", status=PENDING):
        return
    requester = Identity(email=DEMO_REQUESTER, name="Data scientist", role="reviewer", source="local")
    request_promotion(
        settings, registry, warehouse, "apple-grader", challenger, CHAMPION, requester,
        reason="The season's AutoML winner was trained on data after the 20 August change (new block and grading machine); "
        "the current champion has never seen it.",
    )  # fmt: skip
