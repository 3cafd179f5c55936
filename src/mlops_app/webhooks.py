"""Webhook delivery through a durable outbox: a message is written to disk before it is sent.

Used when an alias moves (a deployment pipeline picks up the new champion) and by
monitoring when an alert opens. The setting ``webhook_url`` says where messages go; each
is a JSON POST with a Slack-compatible ``text`` field plus the structured ``event`` and a
message ``id`` (delivery is at least once: a receiver that must not act twice dedupes on it).

The outbox lives in the home::

    <home>/outbox/<id>.json                      waiting: the message, attempts, next try time
    <home>/outbox/<id>.claimed-<ms>-<pid>        being delivered by one process right now

Why an outbox: an endpoint that is down (or a process that dies while sending) must never
lose a message. :func:`notify` writes the message atomically, then tries it once; a failure
leaves it there with the attempt count and the next try time (exponential backoff), and
:func:`deliver_pending` (run by the monitoring job and the CLI) retries what is due.

Why claims by rename: several processes (the dashboard, the CLI, a job) may deliver at the
same time; renaming a message to a claim name succeeds for exactly one of them, so a message
is not sent twice in parallel. A claim older than :data:`STALE_CLAIM_SECONDS` was left by a
process that died mid-delivery and is taken over.

Delivery never raises to the caller: a failure is a logged warning and a message that stays
in the outbox. The URL is a secret (it often embeds a token), so it is never logged.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mlops_app.config import Settings
from mlops_app.registry import write_atomic

LOG = logging.getLogger("mlops_app.webhooks")

OUTBOX_FOLDER = "outbox"
# Backoff after failed attempt n: 30 s, 1 min, 2 min, ... capped at one hour. Messages are
# kept however many attempts fail: losing a deployment notice is worse than a late one.
FIRST_RETRY_SECONDS = 30.0
MAX_RETRY_SECONDS = 3600.0
STALE_CLAIM_SECONDS = 300.0
MAX_TEXT_CHARS = 3000

_MESSAGE_ID = re.compile(r"^[0-9]{8}T[0-9]{12}-[0-9a-f]{8}$")
_CLAIM = re.compile(r"^(?P<id>[0-9]{8}T[0-9]{12}-[0-9a-f]{8})\.claimed-(?P<ms>[0-9]{1,16})-(?P<pid>[0-9]{1,10})$")


@dataclass(frozen=True)
class OutboxMessage:
    """One message waiting in the outbox."""

    id: str
    created_at: datetime
    event: dict[str, Any]
    text: str
    attempts: int
    next_try_at: datetime
    last_error: str


@dataclass(frozen=True)
class DeliveryReport:
    """What one :func:`deliver_pending` pass did.

    Attributes:
        delivered: messages the endpoint accepted (removed from the outbox).
        failed: messages tried and refused or unreachable (kept, retried later).
        not_due: messages left alone because their next try time has not come.
        busy: messages another process was delivering at the time.
        errors: one plain-language line per failure.
    """

    delivered: int = 0
    failed: int = 0
    not_due: int = 0
    busy: int = 0
    errors: tuple[str, ...] = ()

    @property
    def waiting(self) -> int:
        """Messages still in the outbox after this pass (that this pass knows of)."""
        return self.failed + self.not_due + self.busy


def outbox_path(settings: Settings) -> Path:
    return settings.home_path / OUTBOX_FOLDER


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def _new_id(now: datetime) -> str:
    # Sortable by creation time, so the outbox is delivered oldest first.
    return f"{now.astimezone(UTC):%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:8]}"


def _default_text(event: Mapping[str, Any]) -> str:
    parts = [f"{key}={value}" for key, value in event.items() if key != "text" and not isinstance(value, (dict, list))]
    return "mlops-app: " + ", ".join(parts)


def _retry_delay(attempts: int) -> float:
    return min(FIRST_RETRY_SECONDS * 2 ** max(attempts - 1, 0), MAX_RETRY_SECONDS)


def notify(settings: Settings, event: Mapping[str, Any]) -> str | None:
    """Queue ``event`` for the webhook and try to deliver it now. Never raises.

    Args:
        event: a JSON-able mapping; ``event["text"]`` is the sentence a person reads in
            Slack (a generic one is made when missing), ``event["event"]`` names the kind
            (e.g. ``alias_moved``) so a pipeline can filter.

    Returns:
        The message id, or None when no ``webhook_url`` is set or the message could not be
        written (both logged).
    """
    if not settings.webhook_url:
        LOG.debug("No webhook_url set; event %s not sent", event.get("event"))
        return None
    now = _now()
    message_id = _new_id(now)
    text = str(event.get("text") or _default_text(event))[:MAX_TEXT_CHARS]
    message = {
        "id": message_id,
        "created_at": _iso(now),
        "event": dict(event),
        "text": text,
        "attempts": 0,
        "next_try_at": _iso(now),
        "last_error": "",
    }
    folder = outbox_path(settings)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        data = json.dumps(message, default=str, allow_nan=False).encode("utf-8")
        write_atomic(folder / f"{message_id}.json", data)
    except (OSError, TypeError, ValueError) as error:
        LOG.error("Could not write webhook message to the outbox %s: %s", folder, error)
        return None
    _try_message(settings, folder, message_id, now)
    return message_id


def deliver_pending(settings: Settings, *, now: datetime | None = None, force: bool = False) -> DeliveryReport:
    """Retry every outbox message whose next try time has come. Never raises for delivery failures.

    Args:
        now: the time to judge "due" by (tests); default now.
        force: try every message regardless of its next try time.

    Returns:
        A :class:`DeliveryReport`. With no ``webhook_url`` set nothing is tried, and
        every waiting message counts as not due.
    """
    now = now or _now()
    folder = outbox_path(settings)
    if not folder.is_dir():
        return DeliveryReport()
    _reclaim_stale(folder, now)
    delivered = failed = not_due = busy = 0
    errors: list[str] = []
    for message in pending_messages(settings):
        if not settings.webhook_url or (not force and message.next_try_at > now):
            not_due += 1
            continue
        outcome, error = _try_message(settings, folder, message.id, now)
        if outcome == "delivered":
            delivered += 1
        elif outcome == "busy":
            busy += 1
        else:
            failed += 1
            errors.append(f"message {message.id} ({message.event.get('event', 'event')}): {error}")
    return DeliveryReport(delivered, failed, not_due, busy, tuple(errors))


def pending_messages(settings: Settings) -> list[OutboxMessage]:
    """Messages waiting in the outbox, oldest first (claimed ones are not listed)."""
    folder = outbox_path(settings)
    if not folder.is_dir():
        return []
    messages = []
    for path in sorted(folder.glob("*.json")):
        if not _MESSAGE_ID.fullmatch(path.stem):
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            messages.append(
                OutboxMessage(
                    id=data["id"],
                    created_at=datetime.fromisoformat(data["created_at"]),
                    event=dict(data.get("event") or {}),
                    text=str(data.get("text", "")),
                    attempts=int(data.get("attempts", 0)),
                    next_try_at=datetime.fromisoformat(data["next_try_at"]),
                    last_error=str(data.get("last_error", "")),
                )
            )
        except FileNotFoundError:
            continue  # delivered by another process meanwhile
        except (OSError, ValueError, KeyError, TypeError) as error:
            LOG.warning("Skipping unreadable outbox message %s: %s", path.name, error)
    return messages


def _reclaim_stale(folder: Path, now: datetime) -> None:
    for path in folder.iterdir():
        match = _CLAIM.fullmatch(path.name)
        if match is None:
            continue
        age = now.timestamp() - int(match["ms"]) / 1000
        if age > STALE_CLAIM_SECONDS:
            try:
                os.rename(path, folder / f"{match['id']}.json")
                LOG.warning("Took over webhook message %s, left mid-delivery by process %s", match["id"], match["pid"])
            except FileNotFoundError:
                pass


def _try_message(settings: Settings, folder: Path, message_id: str, now: datetime) -> tuple[str, str]:
    """Claim, send and settle one message: ("delivered" | "failed" | "busy", error text)."""
    source = folder / f"{message_id}.json"
    claim = folder / f"{message_id}.claimed-{int(time.time() * 1000)}-{os.getpid()}"
    try:
        os.rename(source, claim)
    except FileNotFoundError:
        return "busy", ""
    try:
        message = json.loads(claim.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        LOG.error("Webhook message %s is unreadable (%s); it is kept as %s", message_id, error, claim.name)
        return "failed", f"unreadable message file ({error})"
    error = _post(settings, message)
    if error is None:
        claim.unlink(missing_ok=True)
        LOG.info("Delivered webhook message %s", message_id)
        return "delivered", ""
    message["attempts"] = int(message.get("attempts", 0)) + 1
    message["last_error"] = error
    message["next_try_at"] = _iso(now + timedelta(seconds=_retry_delay(message["attempts"])))
    try:
        write_atomic(source, json.dumps(message, default=str).encode("utf-8"))
        claim.unlink(missing_ok=True)
    except OSError as write_error:
        # The claim file still holds the message; it is taken over once stale.
        LOG.error("Could not put webhook message %s back in the outbox: %s", message_id, write_error)
    LOG.warning(
        "Webhook delivery of message %s failed (attempt %d, next try %s): %s",
        message_id, message["attempts"], message["next_try_at"], error,
    )  # fmt: skip
    return "failed", error


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # urllib turns a redirected POST into a body-less GET: a message "delivered" that way
    # never arrived, so a redirect counts as a failure to fix in the setting.
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001
        return None


def _post(settings: Settings, message: Mapping[str, Any]) -> str | None:
    """POST one message; None on a 2xx answer, else a short reason (never the URL)."""
    url = settings.webhook_url
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):
        # urllib would also open file:// and ftp:// addresses; a webhook is only ever HTTP.
        return "webhook_url must start with https:// (or http://); fix the setting, the message is kept"
    body = json.dumps(
        {"text": message.get("text", ""), "id": message.get("id"), "event": message.get("event", {})},
        default=str,
    ).encode("utf-8")
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json", "User-Agent": "mlops-app-webhook"}
    )
    opener = urllib.request.build_opener(_NoRedirects)
    try:
        with opener.open(request, timeout=float(settings.webhook_timeout_seconds)) as response:
            status = response.status
    except urllib.error.HTTPError as error:
        return f"the endpoint answered HTTP {error.code} {error.reason}"
    except urllib.error.URLError as error:
        return f"the endpoint could not be reached ({error.reason})"
    except (TimeoutError, OSError) as error:
        return f"the endpoint could not be reached ({type(error).__name__}: {error})"
    if not 200 <= status < 300:
        return f"the endpoint answered HTTP {status}"
    return None
