"""Alerts: opened by the monitoring job when a model breaks a threshold, shown, acknowledged, acted on.

The life of an alert::

    a window breaks a threshold ──▶ open (stored with the window's results, in the same
                                    transaction), webhook queued, retraining requested
    the same breach again       ──▶ the open alert is updated (last seen, occurrences): de-duplicated
    a reviewer acknowledges     ──▶ acknowledged (who, when); still tracked
    the condition stays clear   ──▶ resolved (the monitoring job decides, from stored judgements)

Kinds, each de-duplicated by its key (one unresolved alert per model and key):

* ``drift`` (Watch): the share of the model's features that drifted from its training data
  is above the model's limit;
* ``kpi`` (Act): a business KPI missed its target (key ``kpi:<metric>``);
* ``metric_drop`` (Watch): the key metric fell more than allowed below its holdout result.

Why the webhook is sent after the transaction: sending inside it would hold the warehouse
while an endpoint times out. The alert row is committed first with ``notified_at`` empty;
:func:`notify_pending_alerts` then hands it to :func:`mlops_app.webhooks.notify`, whose
durable outbox retries an endpoint that is down, and marks the alert. A process killed in
between leaves ``notified_at`` empty, so the next run sends it: at least once, never lost
(the payload carries ``alert_id`` for receivers that must not act twice).

Retraining: an alert of a kind listed in the model's ``retrain.on_alerts`` setting is opened with
``retrain_status = requested``. :func:`process_retraining` trains on the dataset, registers
the winner, points the ``challenger`` alias at it and opens a promotion request, which waits
for a human approver; the alert records each step. It is skipped (with the reason) while a
version already waits for review to become champion, and a run killed mid-training is retried.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import pandas as pd

from mlops_app.processes import process_alive
from mlops_app.auth import Identity, require
from mlops_app.config import Settings
from mlops_app.errors import MlopsError, NotFoundError
from mlops_app.registry import Registry, validate_name
from mlops_app.status import Status
from mlops_app.warehouse import Warehouse

LOG = logging.getLogger("mlops_app.alerts")

__all__ = [
    "MONITOR_IDENTITY",
    "Alert",
    "Breach",
    "RetrainPlan",
    "acknowledge_alert",
    "get_alert",
    "list_alerts",
    "monitoring_link",
    "notify_pending_alerts",
    "process_retraining",
    "sync_alerts",
]

DRIFT, KPI, METRIC_DROP = "drift", "kpi", "metric_drop"
ALERT_KINDS = {
    DRIFT: "Features drifted from the training data",
    KPI: "A business KPI missed its target",
    METRIC_DROP: "The key metric dropped below its holdout result",
}
OPEN, ACKNOWLEDGED, RESOLVED = "open", "acknowledged", "resolved"
ACTIVE = (OPEN, ACKNOWLEDGED)
RETRAIN_REQUESTED, RETRAIN_RUNNING, RETRAIN_DONE = "requested", "running", "done"
RETRAIN_FAILED, RETRAIN_SKIPPED = "failed", "skipped"
CHALLENGER, CHAMPION = "challenger", "champion"
# A retraining marked running for longer than this, or by a process that no longer exists
# on this host, was interrupted and is tried again.
STALE_RETRAIN = timedelta(hours=6)

# The monitoring job acts as this identity when it retrains: a reviewer may train, register
# and request a promotion, never approve one, so a human still decides.
MONITOR_IDENTITY = Identity(email="monitoring@mlops-app.local", name="Monitoring job", role="reviewer", source="system")

_COLUMNS = """
    alert_id, model, kind, severity, status, message, dedup_key, opened_at, window_start, window_end,
    last_seen_at, occurrences, acknowledged_by, acknowledged_at, resolved_at, link, notified_at,
    webhook_message_id, retrain_status, retrain_detail, retrain_updated_at, challenger_version,
    promotion_request_id, payload
"""


@dataclass(frozen=True)
class Breach:
    """One threshold a window broke, as the monitoring job judged it.

    Attributes:
        key: the de-duplication key within the model (``drift``, ``kpi:recall_bad``...).
        kind: ``drift``, ``kpi`` or ``metric_drop``.
        severity: :data:`Status.WATCH` or :data:`Status.ACT`.
        message: the plain sentence people read in the dashboard and in Slack.
    """

    key: str
    kind: str
    severity: Status
    message: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Alert:
    """An alert as stored.

    Attributes:
        challenger_version, promotion_request_id: the version its retraining registered and
            the review it asked for; while its retraining is skipped, the version (and request)
            already waiting for review that holds it back.
    """

    alert_id: str
    model: str
    kind: str
    severity: str
    status: str
    message: str
    dedup_key: str
    opened_at: datetime
    window_start: datetime | None
    window_end: datetime | None
    last_seen_at: datetime | None
    occurrences: int
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    link: str | None
    notified_at: datetime | None
    webhook_message_id: str | None
    retrain_status: str | None
    retrain_detail: str | None
    retrain_updated_at: datetime | None
    challenger_version: int | None
    promotion_request_id: str | None
    payload: dict[str, Any]

    @property
    def severity_status(self) -> Status:
        return Status.ACT if self.severity == "act" else Status.WATCH

    @property
    def active(self) -> bool:
        return self.status in ACTIVE


def _alert_from_row(row: Sequence[Any]) -> Alert:
    values = list(row)
    payload = values[-1]
    values[-1] = json.loads(payload) if isinstance(payload, str) and payload else {}
    values[11] = int(values[11] or 0)
    values[21] = int(values[21]) if values[21] is not None and not pd.isna(values[21]) else None
    return Alert(*values)


def monitoring_link(settings: Settings, model: str) -> str:
    """The address of the model's monitoring page (``public_url`` + ``/monitoring?model=NAME``)."""
    return f"{settings.public_url.rstrip('/')}/monitoring?model={validate_name(model)}"


def _new_alert_id(now: datetime) -> str:
    return f"alert-{now.astimezone(UTC):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"


# --- Written by the monitoring job, inside its window transaction -----------------------------


def sync_alerts(
    connection: duckdb.DuckDBPyConnection,
    *,
    model: str,
    window_start: datetime,
    window_end: datetime,
    breaches: Iterable[Breach],
    resolved_keys: Iterable[str],
    now: datetime,
    link: str,
    retrain_kinds: Iterable[str] = (),
) -> list[str]:
    """Open, update or resolve the model's alerts for one judged window (call inside a transaction).

    Args:
        breaches: thresholds the window broke; a key with an unresolved alert updates it
            (de-duplication), any other key opens a new alert.
        resolved_keys: keys whose condition has been judged clear long enough; their
            unresolved alerts are resolved (a key that also breached is not resolved).
        retrain_kinds: kinds whose new alerts request retraining.

    Returns:
        The ids of the alerts opened.
    """
    opened: list[str] = []
    retrain_kinds = set(retrain_kinds)
    breaches = list(breaches)
    breached = {breach.key for breach in breaches}
    for breach in breaches:
        existing = connection.execute(
            "SELECT alert_id FROM alerts WHERE model = $1 AND dedup_key = $2 AND status IN ('open', 'acknowledged') "
            "ORDER BY opened_at DESC, alert_id DESC LIMIT 1",
            [model, breach.key],
        ).fetchone()
        severity = "act" if breach.severity == Status.ACT else "watch"
        if existing is not None:
            # Occurrences count windows in breach: a window judged again (more labels) is not a new one.
            connection.execute(
                "UPDATE alerts SET occurrences = coalesce(occurrences, 1) + CASE WHEN $1 > last_seen_at THEN 1 ELSE 0 END, "
                "last_seen_at = greatest(last_seen_at, $1), clear_windows = 0, "
                "severity = CASE WHEN $2 = 'act' THEN 'act' ELSE severity END WHERE alert_id = $3",
                [window_end, severity, existing[0]],
            )
            continue
        alert_id = _new_alert_id(now)
        payload = {"key": breach.key, **breach.details}
        connection.execute(
            """
            INSERT INTO alerts (alert_id, model, kind, severity, status, message, dedup_key, opened_at, window_start,
                                window_end, last_seen_at, occurrences, clear_windows, link, retrain_status,
                                retrain_updated_at, payload)
            VALUES ($1, $2, $3, $4, 'open', $5, $6, $7, $8, $9, $9, 1, 0, $10, $11, $12, $13)
            """,
            [
                alert_id, model, breach.kind, severity, breach.message, breach.key, now, window_start, window_end, link,
                RETRAIN_REQUESTED if breach.kind in retrain_kinds else None, now if breach.kind in retrain_kinds else None,
                json.dumps(payload, default=str),
            ],
        )  # fmt: skip
        opened.append(alert_id)
    for key in set(resolved_keys) - breached:
        connection.execute(
            "UPDATE alerts SET status = 'resolved', resolved_at = $1 WHERE model = $2 AND dedup_key = $3 "
            "AND status IN ('open', 'acknowledged')",
            [now, model, key],
        )
    return opened


# --- Reads and the acknowledge action -------------------------------------------------------


def list_alerts(
    warehouse: Warehouse, model: str | None = None, *, status: str | None = None, limit: int = 200
) -> pd.DataFrame:
    """Alerts, newest first.

    Args:
        status: ``open``, ``acknowledged``, ``resolved``, ``active`` (open or acknowledged)
            or None for all.

    Returns:
        One row per alert with every stored column (``payload`` as JSON text).
    """
    conditions, params = ["TRUE"], []
    if model is not None:
        params.append(validate_name(model))
        conditions.append(f"model = ${len(params)}")
    if status is not None:
        wanted = list(ACTIVE) if status == "active" else [status]
        if not set(wanted) <= {OPEN, ACKNOWLEDGED, RESOLVED}:
            raise MlopsError(f"Unknown alert status {status!r}; use open, acknowledged, resolved or active.")
        params.append(wanted)
        conditions.append(f"status IN (SELECT unnest(${len(params)}::VARCHAR[]))")
    params.append(int(limit))
    return warehouse.query(
        f"SELECT {_COLUMNS} FROM alerts WHERE {' AND '.join(conditions)} ORDER BY opened_at DESC, alert_id LIMIT ${len(params)}",
        params,
    )


def get_alert(warehouse: Warehouse, alert_id: str) -> Alert:
    """One alert. Raises NotFoundError for an unknown id."""
    row = warehouse.query_one(f"SELECT {_COLUMNS} FROM alerts WHERE alert_id = $1", [str(alert_id)])
    if row is None:
        raise NotFoundError(f"No alert with id {alert_id!r}.")
    return _alert_from_row(row)


def acknowledge_alert(warehouse: Warehouse, alert_id: str, identity: Identity, *, now: datetime | None = None) -> Alert:
    """Record that a person has seen an alert and is acting on it.

    The alert stays tracked (it still de-duplicates and is resolved by the monitoring job);
    acknowledging twice keeps the first acknowledgement.

    Raises:
        PermissionDeniedError: the identity may not acknowledge alerts (reviewer and up).
        NotFoundError: no such alert.
        MlopsError: the alert was already resolved.
    """
    require(identity, "acknowledge_alert")
    moment = now or datetime.now(UTC)
    with warehouse.transaction() as connection:
        row = connection.execute("SELECT status, acknowledged_by, acknowledged_at FROM alerts WHERE alert_id = $1", [str(alert_id)]).fetchone()
        if row is None:
            raise NotFoundError(f"No alert with id {alert_id!r}.")
        status, by, _ = row
        if status == RESOLVED:
            raise MlopsError(f"Alert {alert_id} was already resolved: the condition cleared, so there is nothing to acknowledge.")
        if status == OPEN:
            connection.execute(
                "UPDATE alerts SET status = 'acknowledged', acknowledged_by = $1, acknowledged_at = $2 WHERE alert_id = $3",
                [identity.email, moment, str(alert_id)],
            )
        else:
            LOG.info("Alert %s was already acknowledged by %s", alert_id, by)
    return get_alert(warehouse, alert_id)


# --- After the transaction: webhooks ------------------------------------------------------


def alert_event(alert: Alert) -> dict[str, Any]:
    """The webhook event of an opened alert: structured fields plus a Slack-compatible ``text``."""
    status = alert.severity_status
    retrain = " Retraining has been requested." if alert.retrain_status == RETRAIN_REQUESTED else ""
    text = f"{status.icon} {status.word}: {alert.model}: {alert.message}{retrain} Open {alert.link}"
    return {
        "event": "alert_opened",
        "alert_id": alert.alert_id,
        "model": alert.model,
        "kind": alert.kind,
        "severity": alert.severity,
        "message": alert.message,
        "window_start": alert.window_start.isoformat() if alert.window_start else None,
        "window_end": alert.window_end.isoformat() if alert.window_end else None,
        "link": alert.link,
        "text": text,
    }


def notify_pending_alerts(settings: Settings, warehouse: Warehouse, model: str | None = None) -> int:
    """Queue a webhook for every alert not yet handed to the outbox; mark them. Returns how many.

    :func:`mlops_app.webhooks.notify` writes each message to the durable outbox before
    trying it, so an endpoint that is down costs a retry later, not the message.
    """
    from mlops_app.webhooks import notify  # local: only needed when alerts are pending

    with warehouse.read() as connection:
        rows = connection.execute(
            f"SELECT {_COLUMNS} FROM alerts WHERE notified_at IS NULL AND ($1::VARCHAR IS NULL OR model = $1) ORDER BY opened_at",
            [model],
        ).fetchall()
    sent = 0
    for row in rows:
        alert = _alert_from_row(row)
        message_id = notify(settings, alert_event(alert))
        warehouse.execute(
            "UPDATE alerts SET notified_at = $1, webhook_message_id = $2 WHERE alert_id = $3",
            [datetime.now(UTC), message_id, alert.alert_id],
        )
        sent += 1
    return sent


# --- After the transaction: retraining ----------------------------------------------------


@dataclass(frozen=True)
class RetrainPlan:
    """How to retrain a model when an alert asks for it (built from its monitoring settings).

    Attributes:
        features: the model's inputs (feature-store names allowed); None: every feature column.
        since: train on rows from this time on (None: from the first row).
        until: train on rows before this time whose labels were known by then (the
            monitoring run's time, so a replayed season never trains on its future).
        metric: what the search selects on (None: the trainer's default).
    """

    model: str
    dataset: str
    target: str | None
    features: tuple[str, ...] | None
    experiment: str
    trials: int
    max_rows: int | None
    metric: str | None
    since: datetime | None = None
    until: datetime | None = None
    seed: int = 0


def _set_retrain(warehouse: Warehouse, alert_id: str, status: str, detail: str, **extra: Any) -> None:
    sets = ["retrain_status = $1", "retrain_detail = $2", "retrain_updated_at = $3"]
    params: list[Any] = [status, detail, datetime.now(UTC)]
    for column in ("challenger_version", "promotion_request_id"):
        if column in extra:
            params.append(extra[column])
            sets.append(f"{column} = ${len(params)}")
    params.append(alert_id)
    warehouse.execute(f"UPDATE alerts SET {', '.join(sets)} WHERE alert_id = ${len(params)}", params)


def _process_alive(detail: str | None) -> bool:
    """Whether the process named in a ``running`` detail ("pid 123 on host h") is still alive here."""
    try:
        words = (detail or "").split()
        pid, host = int(words[words.index("pid") + 1]), words[words.index("host") + 1]
    except (ValueError, IndexError):
        return False
    if host != socket.gethostname():
        return True  # another machine's process: trust it until the stale limit
    return process_alive(pid)


def _waiting_challenger(registry: Registry, warehouse: Warehouse, model: str) -> tuple[str, int | None, str | None] | None:
    """Why a new retraining would be redundant now, or None.

    A retraining is running for another alert, or a version already waits for review to
    become champion (whoever asked): reviewers judge one change at a time, and a second
    challenger would only make the pending request stale.

    Returns:
        (reason, the waiting version, its promotion request id); both None while another
        alert's retraining runs.
    """
    rows = warehouse.query(
        "SELECT alert_id, retrain_detail FROM alerts WHERE model = $1 AND retrain_status = 'running'", [model]
    )
    for alert_id, detail in rows.itertuples(index=False, name=None):
        if _process_alive(detail):
            return f"retraining for alert {alert_id} is already running", None, None
    from mlops_app.promotion import PENDING, list_requests

    for request in list_requests(registry, model, status=PENDING):
        if request.alias == CHAMPION:
            reason = (
                f"version {request.version} already waits for review to become champion (request {request.id}, asked by "
                f"{request.requested_by}); approve or reject it first, so reviewers judge one change at a time"
            )
            return reason, request.version, request.id
    return None


def _request_review(
    settings: Settings, registry: Registry, warehouse: Warehouse, model: str, version: int, identity: Identity, reason: str
) -> str:
    """Open a promotion request (challenger -> champion) that waits for a human approver; return its id."""
    from mlops_app.promotion import request_promotion

    request = request_promotion(settings, registry, warehouse, model, version, CHAMPION, identity, reason=reason)
    return request.id


# What people wrote on the champion's card that still holds for its retrained successor: what it
# predicts, for whom, its use, and the targets and key metric the business judges it by. Its
# limits and training period do not carry over: the record states the new ones.
CARRIED_CARD_FIELDS = ("predicts", "for_whom", "intended_use", "targets", "key_metric", "metric_units")


def _carried_card(registry: Registry, model: str) -> dict[str, Any]:
    champion = registry.get_model(model).aliases.get(CHAMPION)
    if champion is None:
        return {}
    extra = registry.get_version(model, champion).card.get("extra") or {}
    return {key: extra[key] for key in CARRIED_CARD_FIELDS if extra.get(key) not in (None, "", {})}


def _train_kwargs(plan: RetrainPlan, identity: Identity) -> dict[str, Any]:
    return {
        "dataset": plan.dataset, "target": plan.target, "experiment": plan.experiment, "identity": identity,
        "trials": plan.trials, "max_rows": plan.max_rows, "metric": plan.metric,
        "features": list(plan.features) if plan.features else None, "seed": plan.seed,
        "since": plan.since, "until": plan.until,
    }  # fmt: skip


def process_retraining(
    settings: Settings,
    warehouse: Warehouse,
    registry: Registry,
    plan: RetrainPlan,
    *,
    identity: Identity = MONITOR_IDENTITY,
    progress: Callable[[str], None] | None = None,
) -> list[str]:
    """Run the retraining requested by the model's alerts: train, register a challenger, ask for review.

    Each requested alert is handled once: skipped (with the reason) while a version already
    waits for review to become champion, else trained. Once no version waits any more, the
    newest still-active skipped alert is requested again, so a rejected challenger is
    followed by one trained on the data known now. Interrupted runs (the process is
    gone, or it is older than :data:`STALE_RETRAIN`) are tried again. Failures are recorded
    on the alert, never raised: the monitoring job goes on.

    Returns:
        One plain sentence per alert handled.
    """
    from mlops_app.experiments import register_run_model
    from mlops_app.training import train

    report = progress or (lambda message: None)
    messages: list[str] = []
    stale_before = datetime.now(UTC) - STALE_RETRAIN
    running = warehouse.query(
        "SELECT alert_id, retrain_detail, retrain_updated_at FROM alerts WHERE model = $1 AND retrain_status = 'running'",
        [plan.model],
    )
    for alert_id, detail, updated in running.itertuples(index=False, name=None):
        if not _process_alive(detail) or (updated is not None and pd.Timestamp(updated) < pd.Timestamp(stale_before)):
            _set_retrain(warehouse, alert_id, RETRAIN_REQUESTED, f"Retrying: the previous attempt was interrupted ({detail}).")
    # An alert still active whose retraining was skipped while another challenger waited for review gets
    # its turn once that review is decided (approved, rejected or withdrawn): the newest one retrains, on
    # the data known now, so the rejected challenger's successor learns from what happened since.
    if _waiting_challenger(registry, warehouse, plan.model) is None:
        revived = warehouse.query_one(
            "SELECT alert_id FROM alerts WHERE model = $1 AND retrain_status = $2 AND status IN ('open', 'acknowledged') "
            "ORDER BY opened_at DESC, alert_id DESC LIMIT 1",
            [plan.model, RETRAIN_SKIPPED],
        )
        if revived is not None:
            _set_retrain(
                warehouse, revived[0], RETRAIN_REQUESTED, "Retrying: the review that held this retraining back is decided.",
                challenger_version=None, promotion_request_id=None,
            )  # fmt: skip
    requested = warehouse.query(
        "SELECT alert_id, message FROM alerts WHERE model = $1 AND retrain_status = 'requested' ORDER BY opened_at",
        [plan.model],
    )
    for alert_id, message in requested.itertuples(index=False, name=None):
        busy = _waiting_challenger(registry, warehouse, plan.model)
        if busy is not None:
            reason, waiting_version, waiting_request = busy
            text = f"Retraining not started: {reason}."
            # The version it waits for is recorded, so the alert links the review that holds it back.
            _set_retrain(
                warehouse, alert_id, RETRAIN_SKIPPED, text, challenger_version=waiting_version, promotion_request_id=waiting_request
            )  # fmt: skip
            messages.append(f"{plan.model}: alert {alert_id}: {text}")
            continue
        _set_retrain(
            warehouse, alert_id, RETRAIN_RUNNING,
            f"Retraining started: pid {os.getpid()} on host {socket.gethostname()} at {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        )  # fmt: skip
        report(f"Retraining {plan.model} after alert {alert_id}")
        try:
            result = train(warehouse, **_train_kwargs(plan, identity))
            version = register_run_model(
                warehouse, registry, result.winner_run_id, plan.model, identity,
                description=f"Retrained by the monitoring job after alert {alert_id}: {message}",
                card=_carried_card(registry, plan.model),
            )  # fmt: skip
            registry.set_alias(
                plan.model, CHALLENGER, version.version, actor=identity.email,
                reason=f"Retrained after alert {alert_id}; waits for review",
            )  # fmt: skip
        except Exception as error:  # any failure is recorded on the alert; the job goes on
            LOG.exception("Retraining %s after alert %s failed", plan.model, alert_id)
            text = f"Retraining failed: {type(error).__name__}: {error}"
            _set_retrain(warehouse, alert_id, RETRAIN_FAILED, text[:2000])
            messages.append(f"{plan.model}: alert {alert_id}: {text}")
            continue
        score = result.holdout_metrics.get(result.metric)
        registered = (
            f"Challenger v{version.version} registered ({result.family.replace('_', ' ')}, {result.metric} "
            f"{score:.3g} on its holdout)" if score is not None else f"Challenger v{version.version} registered"
        )
        try:
            request_id: str | None = _request_review(
                settings, registry, warehouse, plan.model, version.version, identity,
                reason=f"Retrained automatically after alert {alert_id}: {message}",
            )  # fmt: skip
            text = f"{registered}; promotion request {request_id} waits for an approver."
        except MlopsError as error:
            request_id = None
            text = f"{registered}; no promotion request was opened: {error}"
        _set_retrain(
            warehouse, alert_id, RETRAIN_DONE, text, challenger_version=version.version, promotion_request_id=request_id
        )
        messages.append(f"{plan.model}: alert {alert_id}: {text}")
        report(text)
    return messages
