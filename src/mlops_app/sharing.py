"""Read-only share links to one model review, and the review as one self-contained HTML file.

A share link lets a stakeholder without an account open one review (``/model_review``)
until it expires. The token in the link is ``base64url(payload) + "." + base64url(HMAC-SHA256)``;
the payload names the model, the version, the expiry and who shared it. The page must call
:func:`verify_share_token` with the model and version it is about to show and show nothing
else: a token opens exactly one review, read-only, never an action.

The signing secret is the setting ``share_secret``, or else a random one created once in
``<home>/.share-secret`` (mode 0600). Changing the secret (or deleting the file) revokes every
link at once; a single link cannot be revoked before it expires, so keep ``share_link_hours``
short. Link creation and every refused link are recorded in the model's audit log.

The HTML export (:func:`review_html`) is one file with inline CSS and inline SVG bars: no
scripts, no external resources, every value escaped, so it can be attached to a change
ticket and opened offline, years later, safely.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import html
import json
import logging
import math
import os
import re
import secrets
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

from mlops_app.auth import Identity
from mlops_app.config import Settings, parse_list
from mlops_app.errors import ConfigError, MlopsError, PermissionDeniedError
from mlops_app.metric_catalog import format_value, metric_info
from mlops_app.promotion import (
    APPROVED,
    FAILED,
    PENDING,
    SKIPPED,
    ModelReview,
    Refusal,
    version_number,
    build_review,
    log_refusal,
)
from mlops_app.registry import Registry, validate_name
from mlops_app.status import Status
from mlops_app.warehouse import Warehouse

LOG = logging.getLogger("mlops_app.sharing")

SECRET_FILE = ".share-secret"
EVENT_SHARE_LINK_CREATED = "share_link_created"
# Sharing extends access to people without an account, so it needs more than reading: the
# reviewer role. auth.ACTIONS has no "share_review" action yet; "comment" is the reviewer one.
SHARE_ACTION = "comment"
MAX_LINK_HOURS = 24 * 365
MIN_SECRET_CHARS = 16
MAX_TOKEN_CHARS = 4096
TOKEN_VERSION = 1
_SIGNING_CONTEXT = b"mlops-app share link v1\n"
_TOKEN_PART = re.compile(r"^[A-Za-z0-9_-]{1,4096}$")


class ShareLinkError(PermissionDeniedError):
    """A share link that is tampered with, expired, or for another review."""


@dataclass(frozen=True)
class SharePayload:
    """What a valid share token says."""

    model: str
    version: int
    expires_at: datetime
    issued_at: datetime
    issued_by: str
    link_id: str


# --- The secret ------------------------------------------------------------------------------


def share_secret(settings: Settings) -> bytes:
    """The key that signs share links: the setting, or ``<home>/.share-secret`` (made once, 0600).

    Raises:
        ConfigError: the setting is shorter than 16 characters, or the file is unusable.
    """
    if settings.share_secret:
        if len(settings.share_secret) < MIN_SECRET_CHARS:
            raise ConfigError(
                f"share_secret is {len(settings.share_secret)} characters long; use at least {MIN_SECRET_CHARS} random "
                "characters (e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`), or leave it empty."
            )
        return settings.share_secret.encode("utf-8")
    path = settings.home_path / SECRET_FILE
    if not path.is_file():
        _create_secret_file(path)
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        # Anyone who reads it can forge links; tighten it rather than refuse to serve.
        LOG.warning("%s was readable by others (mode %o); setting it to 0600", path, mode)
        os.chmod(path, 0o600)
    secret = path.read_text(encoding="utf-8").strip()
    if len(secret) < MIN_SECRET_CHARS * 2:
        raise ConfigError(f"{path} holds no usable secret (too short). Delete it; a new one is made (existing links stop working).")
    return secret.encode("utf-8")


def _create_secret_file(path: Path) -> None:
    """Write a new random secret so that concurrent first users all end up with the same one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f"{SECRET_FILE}.{uuid.uuid4().hex}.tmp")
    descriptor = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(secrets.token_urlsafe(48) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        # link() publishes the complete file and fails if another process published first,
        # where os.replace would silently swap in a second secret and break the first links.
        try:
            os.link(temp, path)
        except FileExistsError:
            pass
    finally:
        temp.unlink(missing_ok=True)


# --- Tokens ----------------------------------------------------------------------------------


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(secret: bytes, payload_part: str) -> bytes:
    return hmac.new(secret, _SIGNING_CONTEXT + payload_part.encode("ascii"), hashlib.sha256).digest()


def _registry(settings: Settings, registry: Registry | None) -> Registry:
    if registry is not None:
        return registry
    return Registry(settings.registry_path, lock_timeout=settings.lock_timeout_seconds, extra_trusted_types=parse_list(settings.trusted_model_types))


def make_share_link(
    settings: Settings,
    model: str,
    version: int,
    *,
    identity: Identity,
    hours: float | None = None,
    registry: Registry | None = None,
    now: datetime | None = None,
) -> str:
    """A signed, expiring, read-only link to the review of one version.

    Args:
        hours: how long it stays valid; default the setting ``share_link_hours``.
        registry: default the one in the settings' home.
        now: the issue time (tests); default now.

    Returns:
        ``{public_url}/model_review?model=NAME&version=N&share=TOKEN``.

    Raises:
        PermissionDeniedError: the identity is below the reviewer role (logged).
        NotFoundError: no such model or version (logged when the model exists).
        MlopsError: hours outside 0-8760.
    """
    registry = _registry(settings, registry)
    refuse = Refusal(registry, model, identity, "share_review")
    refuse.require(SHARE_ACTION)
    try:
        found = registry.get_version(model, version_number(version))
    except MlopsError as error:
        raise refuse(str(error), type(error)) from None
    refuse.version = found.version
    hours = settings.share_link_hours if hours is None else hours
    if isinstance(hours, bool) or not isinstance(hours, (int, float)) or not 0 < hours <= MAX_LINK_HOURS:
        raise refuse(f"A share link lasts more than 0 and at most {MAX_LINK_HOURS} hours (a year); got {hours!r}.")
    issued = (now or datetime.now(UTC)).astimezone(UTC)
    expires = issued + timedelta(hours=hours)
    link_id = uuid.uuid4().hex[:12]
    payload = {
        "v": TOKEN_VERSION, "m": model, "n": found.version, "iat": int(issued.timestamp()),
        "exp": int(expires.timestamp()), "iss": identity.email, "id": link_id,
    }  # fmt: skip
    payload_part = _b64encode(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode("utf-8"))
    token = f"{payload_part}.{_b64encode(_signature(share_secret(settings), payload_part))}"
    registry.append_event(
        model, EVENT_SHARE_LINK_CREATED, actor=identity.email, version=found.version,
        reason=f"Read-only link valid for {hours:g} hours",
        details={"link_id": link_id, "expires_at": expires.isoformat(timespec="seconds"), "hours": hours},
    )  # fmt: skip
    base = settings.public_url.rstrip("/")
    return f"{base}/model_review?model={quote(model)}&version={found.version}&share={token}"


# Anyone who can reach the dashboard can try links without signing in, so refused links are
# written to the audit log at most once per model and reason every AUDIT_INTERVAL_SECONDS
# (per process); the rest go to the log file only. Bounds how fast a script can grow the log.
AUDIT_INTERVAL_SECONDS = 10.0
_LAST_AUDITED: dict[tuple[str, str, str], float] = {}
_AUDIT_LOCK = threading.Lock()


def _audit_allowed(registry: Registry, model: str, message: str) -> bool:
    key, now = (str(registry.root), model, message.split(":")[0][:60]), time.monotonic()
    with _AUDIT_LOCK:
        if now - _LAST_AUDITED.get(key, -math.inf) < AUDIT_INTERVAL_SECONDS:
            return False
        if len(_LAST_AUDITED) > 10_000:
            _LAST_AUDITED.clear()
        _LAST_AUDITED[key] = now
        return True


def verify_share_token(
    settings: Settings,
    token: str,
    model: str,
    version: int | str,
    *,
    registry: Registry | None = None,
    now: datetime | None = None,
) -> SharePayload:
    """Check a share token for the review of ``model`` version ``version``.

    The signature is checked first (in constant time), then the expiry, then that the link
    is for this review. Every refusal is logged in the model's audit log (when the model exists).

    Returns:
        The token's :class:`SharePayload`.

    Raises:
        ShareLinkError: the token was altered or not made with this secret, has expired, or
            opens another review; the message says which and what to do.
    """
    registry = _registry(settings, registry)

    def refuse(message: str, details: dict | None = None) -> ShareLinkError:
        try:
            validate_name(model)
            if _audit_allowed(registry, model, message):
                log_refusal(registry, model, "anonymous (share link)", "open_share_link", message, details=details)
            else:
                LOG.warning("refused share link for %s (not audited again so soon): %s", model, message)
        except MlopsError:
            LOG.warning("refused share link for an invalid model name: %s", message)
        return ShareLinkError(message)

    tampered = (
        "This share link is not valid: it was changed, cut short, or not made by this dashboard. "
        "Ask the person who shared it for a new link."
    )
    if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS or token.count(".") != 1:
        raise refuse(tampered)
    payload_part, signature_part = token.split(".")
    if not _TOKEN_PART.fullmatch(payload_part) or not _TOKEN_PART.fullmatch(signature_part):
        raise refuse(tampered)
    try:
        given = _b64decode(signature_part)
    except (binascii.Error, ValueError):
        raise refuse(tampered) from None
    if not hmac.compare_digest(given, _signature(share_secret(settings), payload_part)):
        raise refuse(tampered)
    try:
        data = json.loads(_b64decode(payload_part))
        payload = SharePayload(
            model=str(data["m"]), version=int(data["n"]),
            expires_at=datetime.fromtimestamp(int(data["exp"]), UTC), issued_at=datetime.fromtimestamp(int(data["iat"]), UTC),
            issued_by=str(data["iss"]), link_id=str(data["id"]),
        )  # fmt: skip
        if data.get("v") != TOKEN_VERSION:
            raise ValueError("unknown token version")
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise refuse(tampered) from None
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    if moment >= payload.expires_at:
        raise refuse(
            f"This share link expired on {payload.expires_at:%Y-%m-%d %H:%M} UTC. Ask {payload.issued_by} for a new one.",
            {"link_id": payload.link_id},
        )
    if payload.model != model or str(payload.version) != str(version):
        raise refuse(
            f"This share link opens the review of {payload.model} version {payload.version}, not {model} version {version}.",
            {"link_id": payload.link_id},
        )
    return payload


# --- The self-contained HTML review ----------------------------------------------------------

_COLOURS = {"green": "#1b873f", "orange": "#c76a00", "red": "#c62828", "gray": "#6b7280", "blue": "#1f5fa8"}
# Symbols from common text fonts (emoji are missing where no emoji font is installed).
_GATE_WORDS = {"passed": ("Passed", "✔", "green"), FAILED: ("Failed", "✖", "red"), SKIPPED: ("Skipped", "○", "gray")}
_STATUS_SYMBOLS = {Status.HEALTHY: "✔", Status.WATCH: "▲", Status.ACT: "✖", Status.UNKNOWN: "○"}
_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0 auto;max-width:1000px;padding:24px;color:#1f2937;line-height:1.45}
h1{font-size:1.6em;margin:0 0 4px}h2{font-size:1.2em;margin:28px 0 8px;border-bottom:1px solid #e5e7eb;padding-bottom:4px}
.sub{color:#4b5563;margin:0 0 12px}.verdict{padding:10px 14px;border-left:6px solid;border-radius:4px;background:#f9fafb}
.word{font-weight:700;margin-right:6px}table{border-collapse:collapse;width:100%;margin:6px 0}
th,td{text-align:left;padding:6px 8px;border-bottom:1px solid #e5e7eb;vertical-align:top}th{background:#f3f4f6}
td.num{text-align:right;white-space:nowrap}.muted{color:#6b7280}dt{font-weight:600;margin-top:8px}dd{margin:2px 0 0 0}
.missing{color:#92400e}ol.timeline{padding-left:20px}ol.timeline li{margin:4px 0}.time{color:#6b7280;font-size:.9em}
footer{margin-top:32px;color:#6b7280;font-size:.85em}svg{vertical-align:middle}
@media print{body{padding:0}.verdict{background:none}}
"""


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _bar(share: float | None, colour: str, label: str) -> str:
    """A small inline SVG bar for a 0..1 share (no xmlns: inline SVG in HTML needs none)."""
    if share is None:
        return ""
    width = max(0.0, min(1.0, float(share))) * 120
    return (
        f'<svg width="124" height="12" role="img" aria-label="{_e(label)}">'
        f'<rect x="0" y="1" width="122" height="10" fill="#e5e7eb"/>'
        f'<rect x="0" y="1" width="{width:.1f}" height="10" fill="{_COLOURS[colour]}"/></svg>'
    )


def _scaled(values: Iterable[float | None], unit: str) -> tuple[float, bool]:
    present = [abs(value) for value in values if value is not None]
    if unit == "%":
        return 1.0, True
    return (max(present) if present else 0.0), bool(present and max(present) > 0)


def _table(headers: list[str], rows: list[list[str]], numeric: set[int] = frozenset()) -> str:
    head = "".join(f"<th>{_e(header)}</th>" for header in headers)
    body = "".join(
        "<tr>" + "".join(f'<td class="num">{cell}</td>' if index in numeric else f"<td>{cell}</td>" for index, cell in enumerate(row)) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_review_html(review: ModelReview, *, generated_at: datetime | None = None) -> str:
    """The HTML text of a :class:`ModelReview` (see :func:`review_html`)."""
    generated = (generated_at or datetime.now(UTC)).astimezone(UTC)
    card, version = review.card, review.version
    status: Status = review.status
    champion_text = f"version {review.champion.version}" if review.champion else "no champion"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Model review: {_e(card.title)}</title><style>{_CSS}</style></head><body>",
        f"<header><h1>Model review: {_e(card.title)}</h1>",
        f'<p class="sub">{_e(review.model.description or card.summary)}</p>',
        f'<p class="verdict" style="border-color:{_COLOURS[status.colour]}"><span class="word" style="color:{_COLOURS[status.colour]}">'
        f"{_STATUS_SYMBOLS[status]} {_e(status.word)}</span>{_e(review.verdict)}</p></header>",
    ]

    parts.append("<section><h2>Model card</h2>")
    parts.append("<dl>")
    for section in card.sections:
        style = "" if section.stated else ' class="missing"'
        parts.append(f"<dt>{_e(section.heading)}</dt><dd{style}>{_e(section.text)}</dd>")
    parts.append("</dl>")
    parts.append(_table(["Fact", "Value"], [[_e(name), _e(value)] for name, value in card.facts]))
    parts.append("</section>")

    parts.append(f"<section><h2>Holdout results compared with the champion ({_e(champion_text)})</h2>")
    if review.metrics:
        rows = []
        for row in review.metrics:
            scale, scalable = _scaled([row.value, row.champion_value], row.unit)
            share = (row.value / scale) if scalable and row.value is not None and scale else None
            judged = "" if row.better is None else ("better" if row.better else "worse")
            target = row.target_text + ("" if row.meets_target is None else (" (met)" if row.meets_target else " (missed)"))
            rows.append(
                [
                    f"{_e(row.label)}<br><span class=\"muted\">{_e(row.help)}</span>",
                    f"{_e(row.value_text)} {_bar(share, 'blue', row.label)}",
                    _e(row.champion_text or "—"),
                    _e(f"{row.change_text} {judged}".strip() or "—"),
                    _e(target or "—"),
                ]
            )
        parts.append(_table(["Metric", "This version", "Champion", "Change", "Target"], rows, {1, 2, 3}))
    else:
        parts.append("<p>No holdout metrics were recorded for this version.</p>")
    parts.append("</section>")

    parts.append("<section><h2>Results by group (slices)</h2>")
    if review.slices and review.metric:
        info = metric_info(review.metric, ((version.card.get("extra") or {}).get("metric_units") or {}).get(review.metric))
        scale, scalable = _scaled([row["metric_value"] for row in review.slices], info.unit)
        parts.append(f"<p>{_e(info.label)} for each group of the holdout, and how it compares with the version's overall result ({_e(format_value(version.metrics.get(review.metric), info.unit))}).</p>")
        rows = []
        for row in review.slices:
            value = row["metric_value"]
            share = (value / scale) if scalable and value is not None and scale else None
            gap = row["gap"]
            if gap is None:
                gap_text = "—"
            else:
                amount = f"{abs(gap) * 100:.1f} points" if info.unit == "%" else format_value(abs(gap), info.unit)
                gap_text = f"{amount} {'worse' if gap > 0 else 'better'}" if gap else "same"
            rows.append(
                [_e(row["column"]), _e(row["value"]), _e(f"{row['rows']:,}"), f"{_e(format_value(value, info.unit))} {_bar(share, 'blue', row['value'])}", _e(gap_text)]
            )
        parts.append(_table(["Grouped by", "Group", "Rows", info.label, "Compared with overall"], rows, {2, 3, 4}))
    else:
        parts.append("<p>No per-group results were recorded for this version.</p>")
    parts.append("</section>")

    parts.append("<section><h2>Promotion gates</h2>")
    if review.gates_are_preview:
        why = (
            "This release was recorded from the release log, before mlops-app ran gates"
            if review.request is not None
            else "No promotion was requested for this version yet"
        )
        parts.append(f'<p class="muted">{_e(why)}; these gates were run when this file was made.</p>')
    gate_rows = []
    for gate in review.gates:
        word, icon, colour = _GATE_WORDS.get(gate.status, (gate.status, "", "gray"))
        gate_rows.append([f'<span class="word" style="color:{_COLOURS[colour]}">{_e(icon)} {_e(word)}</span>', _e(gate.title), _e(gate.detail)])
    parts.append(_table(["Result", "Gate", "Detail"], gate_rows) if gate_rows else "<p>No gates were run.</p>")
    request = review.request
    if request is not None:
        facts = [
            ["Request", _e(request.id)],
            ["Asked", _e(f"{request.requested_by} on {request.requested_at:%Y-%m-%d %H:%M} UTC: make version {request.version} {request.alias}")],
            ["Reason", _e(request.reason)],
            ["Status", _e(request.status)],
        ]
        if request.override is not None:
            facts.append(["Override", _e(f"{request.override.by} on {request.override.at:%Y-%m-%d %H:%M} UTC: {request.override.reason}")])
        if request.status != PENDING:
            facts.append(["Decision", _e(f"{request.status} by {request.decided_by} on {request.decided_at:%Y-%m-%d %H:%M} UTC" + (f": {request.comment}" if request.comment else ""))])
        parts.append(_table(["Request", "Detail"], facts))
    parts.append("</section>")

    parts.append("<section><h2>History</h2><ol class=\"timeline\">")
    for entry in review.timeline:
        parts.append(f'<li><span class="time">{_e(f"{entry.time:%Y-%m-%d %H:%M} UTC")}</span> {_e(entry.text)}</li>')
    parts.append("</ol></section>")
    parts.append(
        f"<footer>Made by mlops-app on {_e(f'{generated:%Y-%m-%d %H:%M} UTC')}. A snapshot of the review at that time: "
        f"{'the approval above is final' if request is not None and request.status == APPROVED else 'later decisions are not in it'}.</footer>"
    )
    parts.append("</body></html>")
    return "\n".join(parts)


def review_html(registry: Registry, warehouse: Warehouse, model: str, version: int, *, generated_at: datetime | None = None) -> str:
    """The whole review of one version as one self-contained HTML file, for a change ticket.

    Card, holdout results against the champion (with inline SVG bars), results by group,
    gates and their request, and the version's history; inline CSS, no scripts and no
    external resources; every value is HTML-escaped.

    Raises:
        NotFoundError / InvalidNameError: no such model or version.
    """
    return render_review_html(build_review(registry, warehouse, model, version), generated_at=generated_at)


__all__ = [
    "EVENT_SHARE_LINK_CREATED",
    "SharePayload",
    "ShareLinkError",
    "make_share_link",
    "render_review_html",
    "review_html",
    "share_secret",
    "verify_share_token",
]
