"""Who the user is and what they may do.

Identity comes from one of three sources (setting ``auth_mode``): OIDC through Streamlit's
``st.login`` (the claims arrive here as a plain mapping), a header set by a trusted reverse
proxy, or one local demo identity. Roles come from settings. Every write action in the
library calls :func:`require` on the server: hiding a button is never the only guard.

Nothing here imports Streamlit; ``mlops_app.ui.identity`` reads the request and calls in.
"""

from __future__ import annotations

import ipaddress
import logging
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

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
    "share_review": "reviewer",
    "register_model": "reviewer",
    "ingest_data": "reviewer",
    "register_dataset": "reviewer",
    "train_model": "reviewer",
    "apply_features": "reviewer",
    "score_batch": "reviewer",
    "record_labels": "reviewer",
    "approve_promotion": "approver",
    "reject_promotion": "approver",
    "rollback": "approver",
    "set_alias": "approver",
    "override_gate": "admin",
    "edit_checks": "admin",
    "build_demo": "admin",
    "view_access": "admin",
}

ROLE_DESCRIPTIONS = {
    "viewer": "reads every page",
    "reviewer": "also loads data, defines features, trains and registers models, scores batches and records labels, requests promotions, acknowledges alerts",
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


@dataclass(frozen=True)
class RoleRule:
    """One line of the access table: who (an e-mail, a domain or a group) gets which role."""

    role: str
    kind: str  # "person", "domain" or "group"
    who: str


def access_rules(settings: Settings) -> list[RoleRule]:
    """Every role rule from settings, strongest role first, for the admins' Access page."""
    rules = []
    for role, setting_name in (("admin", "admins"), ("approver", "approvers"), ("reviewer", "reviewers")):
        for rule in parse_list(getattr(settings, setting_name)):
            rule = rule.lower()
            if rule.startswith("group:"):
                rules.append(RoleRule(role, "group", rule.removeprefix("group:")))
            elif rule.startswith("@"):
                rules.append(RoleRule(role, "domain", "everyone at " + rule))
            else:
                rules.append(RoleRule(role, "person", rule))
    return rules


def actions_by_role() -> dict[str, list[str]]:
    """For each role, the actions it is the least role for (each role may also do those of the roles below)."""
    table: dict[str, list[str]] = {role: [] for role in ROLES}
    for action, role in sorted(ACTIONS.items()):
        table[role].append(action.replace("_", " "))
    return table


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


def oidc_configured_in(secrets_files: list[Path]) -> bool:
    """Whether any of Streamlit's secrets files has an ``[auth]`` section (st.login's configuration)."""
    for path in secrets_files:
        try:
            with Path(path).open("rb") as handle:
                if "auth" in tomllib.load(handle):
                    return True
        except (OSError, tomllib.TOMLDecodeError):
            continue
    return False


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
            ".streamlit/secrets.toml (see docs/self-hosting.md) or set MLOPS_APP_AUTH_MODE=local."
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


def is_loopback(address: str | None) -> bool:
    """Whether a listen or client address only reaches this machine (an empty address listens everywhere)."""
    if not address:
        return False
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def is_trusted_proxy(client_address: str | None, settings: Settings) -> bool:
    """Whether a request comes from one of the ``trusted_proxies`` addresses or networks.

    Raises:
        ConfigError: an entry of ``trusted_proxies`` is not an address or network.
    """
    if not client_address:
        return False
    try:
        client = ipaddress.ip_address(client_address.split("%")[0])
    except ValueError:
        return False
    for entry in parse_list(settings.trusted_proxies):
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise ConfigError(
                f"trusted_proxies entry {entry!r} is not an address or network (e.g. 10.0.0.5 or 10.1.0.0/16)."
            ) from None
        if client.version == network.version and client in network:
            return True
    return False


def check_serving_allowed(settings: Settings, *, address: str | None, mode: str) -> None:
    """Refuse server settings that would expose the dashboard unsafely.

    Raises:
        ConfigError: the local identity on a non-loopback address without
            ``allow_remote_local_identity``; several replicas without a ``cookie_secret``.
    """
    if mode == "local" and not is_loopback(address) and not settings.allow_remote_local_identity:
        raise ConfigError(
            f"Refusing to serve the local demo identity on {address or 'every interface'}: anyone who can reach "
            "this address would act as " + settings.local_user + ". Configure sign-in (OIDC or a trusted proxy, "
            "see docs/self-hosting.md), serve on 127.0.0.1, or set MLOPS_APP_ALLOW_REMOTE_LOCAL_IDENTITY=true."
        )
    if settings.replicas > 1 and not settings.cookie_secret:
        raise ConfigError(
            f"replicas is {settings.replicas} but cookie_secret is empty: each replica would sign cookies and XSRF "
            "tokens with its own random secret and users would be thrown out when the load balancer switches. "
            "Set the same MLOPS_APP_COOKIE_SECRET on every replica."
        )


def identity_from_headers(
    headers: Mapping[str, str], settings: Settings, *, client_address: str | None = None
) -> Identity | None:
    """The identity from the trusted proxy header, or None when the header is absent.

    Raises:
        PermissionDeniedError: the header came from an address outside ``trusted_proxies``
            (anyone could type it), which is logged.
    """
    lowered = {key.lower(): value for key, value in headers.items()}
    email = lowered.get(settings.proxy_header.lower(), "").strip().lower()
    if not email:
        return None
    if not is_trusted_proxy(client_address, settings):
        LOG.warning("refused sign-in header for %s from untrusted address %s", email, client_address)
        raise PermissionDeniedError(
            f"The sign-in header arrived from {client_address or 'an unknown address'}, which is not a trusted proxy. "
            "Open the dashboard through the company sign-in address; an operator can add the proxy to "
            "MLOPS_APP_TRUSTED_PROXIES."
        )
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
