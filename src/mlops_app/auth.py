"""Who the user is and what they may do.

Identity comes from one of three sources (setting ``auth_mode``): OIDC through Streamlit's
``st.login`` (the claims arrive here as a plain mapping), a header set by a trusted reverse
proxy, or one local demo identity. Roles come from settings. Every write action in the
library calls :func:`require` on the server: hiding a button is never the only guard.

Nothing here imports Streamlit; ``mlops_app.ui.identity`` reads the request and calls in.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from mlops_app.config import ROLES, Settings, parse_list
from mlops_app.errors import ConfigError, PermissionDeniedError

LOG = logging.getLogger("mlops_app.auth")

ROLE_RANK = {role: rank for rank, role in enumerate(ROLES)}

# The least role each action needs. Reading is open to every signed-in user; acting on the
# model life cycle needs more. Later capabilities add their actions here, not in pages.
ACTIONS: dict[str, str] = {
    "view": "viewer",
    "acknowledge_alert": "reviewer",
    "comment": "reviewer",
    "request_promotion": "reviewer",
    "register_model": "reviewer",
    "ingest_data": "reviewer",
    "approve_promotion": "approver",
    "reject_promotion": "approver",
    "rollback": "approver",
    "set_alias": "approver",
    "override_gate": "admin",
    "edit_checks": "admin",
    "build_demo": "admin",
}

ROLE_DESCRIPTIONS = {
    "viewer": "reads every page",
    "reviewer": "also registers models, requests promotions, acknowledges alerts",
    "approver": "also approves or rejects promotions and rolls back",
    "admin": "also overrides failed gates and edits data checks",
}


@dataclass(frozen=True)
class Identity:
    """The signed-in person as the library sees them."""

    email: str
    name: str
    role: str
    source: str
    groups: tuple[str, ...] = field(default=())

    def can(self, action: str) -> bool:
        """Whether this identity's role allows ``action`` (an entry of :data:`ACTIONS`)."""
        return ROLE_RANK[self.role] >= ROLE_RANK[_needed_role(action)]

    @property
    def display(self) -> str:
        return f"{self.name} <{self.email}>" if self.name and self.name != self.email else self.email


def _needed_role(action: str) -> str:
    try:
        return ACTIONS[action]
    except KeyError:
        # An unknown action is a programming error; failing closed keeps it from passing silently.
        raise ValueError(f"Unknown action {action!r}; known actions: {', '.join(sorted(ACTIONS))}.") from None


def _matches(rule: str, email: str, groups: tuple[str, ...]) -> bool:
    rule = rule.strip().lower()
    if rule.startswith("group:"):
        return rule.removeprefix("group:") in {group.lower() for group in groups}
    if rule.startswith("@"):
        return email.endswith(rule)
    return email == rule


def role_for(email: str, groups: tuple[str, ...], settings: Settings) -> str:
    """The highest role whose rule list (settings ``admins``, ``approvers``, ``reviewers``) matches.

    Rules are e-mails, ``@domain`` or ``group:NAME``; a user matching none gets ``default_role``.
    """
    email = email.strip().lower()
    for role, setting_name in (("admin", "admins"), ("approver", "approvers"), ("reviewer", "reviewers")):
        if any(_matches(rule, email, groups) for rule in parse_list(getattr(settings, setting_name))):
            return role
    return settings.default_role


def local_identity(settings: Settings) -> Identity:
    """The one local identity used by the demo, the CLI and single-user installs."""
    email = settings.local_user
    return Identity(email=email, name=email.split("@")[0], role=settings.local_user_role, source="local")


def choose_mode(settings: Settings, *, oidc_configured: bool) -> str:
    """Resolve ``auth_mode=auto`` into the mode in force; check an explicit mode can work.

    Raises:
        ConfigError: ``oidc`` without an ``[auth]`` section in secrets, or ``proxy`` without a header name.
    """
    mode = settings.auth_mode
    if mode == "auto":
        if oidc_configured:
            return "oidc"
        return "proxy" if settings.proxy_header else "local"
    if mode == "oidc" and not oidc_configured:
        raise ConfigError(
            "auth_mode is oidc but Streamlit's secrets have no [auth] section. Add one to "
            ".streamlit/secrets.toml (see the README, Sign-in) or set MLOPS_APP_AUTH_MODE=local."
        )
    if mode == "proxy" and not settings.proxy_header:
        raise ConfigError("auth_mode is proxy but proxy_header is empty. Set MLOPS_APP_PROXY_HEADER, e.g. X-Forwarded-Email.")
    return mode


def identity_from_claims(claims: Mapping[str, object], settings: Settings) -> Identity | None:
    """The identity for OIDC claims (``st.user``), or None when not logged in."""
    if not claims.get("is_logged_in"):
        return None
    email = str(claims.get("email") or claims.get("preferred_username") or claims.get("sub") or "").lower()
    if not email:
        return None
    raw_groups = claims.get("groups") or ()
    groups = tuple(str(group) for group in raw_groups) if isinstance(raw_groups, (list, tuple)) else ()
    name = str(claims.get("name") or email)
    return Identity(email=email, name=name, role=role_for(email, groups, settings), source="oidc", groups=groups)


def identity_from_headers(headers: Mapping[str, str], settings: Settings) -> Identity | None:
    """The identity from the trusted proxy header, or None when the header is absent."""
    lowered = {key.lower(): value for key, value in headers.items()}
    email = lowered.get(settings.proxy_header.lower(), "").strip().lower()
    if not email:
        return None
    groups: tuple[str, ...] = ()
    if settings.proxy_groups_header:
        groups = tuple(parse_list(lowered.get(settings.proxy_groups_header.lower(), "")))
    return Identity(email=email, name=email, role=role_for(email, groups, settings), source="proxy", groups=groups)


def require(identity: Identity, action: str) -> None:
    """Refuse ``action`` unless the identity's role allows it; log every refusal.

    Raises:
        PermissionDeniedError: with who tried, their role, and the role the action needs.
    """
    if identity.can(action):
        return
    needed = _needed_role(action)
    LOG.warning("refused %s for %s (role %s, needs %s)", action, identity.email, identity.role, needed)
    raise PermissionDeniedError(
        f"{identity.email} has the {identity.role} role, and {action.replace('_', ' ')} needs the {needed} role "
        f"({ROLE_DESCRIPTIONS[needed]}). Ask an admin to add you to the {needed}s setting."
    )
