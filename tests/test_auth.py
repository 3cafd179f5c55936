from __future__ import annotations

import logging

import pytest

from mlops_app.auth import (
    ACTIONS,
    ROLE_RANK,
    Identity,
    choose_mode,
    identity_from_claims,
    identity_from_headers,
    local_identity,
    require,
    role_for,
)
from mlops_app.config import load_settings
from mlops_app.errors import ConfigError, PermissionDeniedError

SETTINGS = load_settings(
    {
        "MLOPS_APP_ADMINS": "boss@orchard.example",
        "MLOPS_APP_APPROVERS": "@quality.example, group:release-managers",
        "MLOPS_APP_REVIEWERS": "ann@orchard.example",
        "MLOPS_APP_PROXY_HEADER": "X-Forwarded-Email",
        "MLOPS_APP_PROXY_GROUPS_HEADER": "X-Forwarded-Groups",
    }
)


@pytest.mark.parametrize(
    ("email", "groups", "role"),
    [
        ("boss@orchard.example", (), "admin"),
        ("BOSS@orchard.example", (), "admin"),
        ("eve@quality.example", (), "approver"),
        ("eve@notquality.example", (), "viewer"),
        ("bob@orchard.example", ("release-managers",), "approver"),
        ("ann@orchard.example", (), "reviewer"),
        ("stranger@elsewhere.example", (), "viewer"),
    ],
)
def test_roles_come_from_settings(email, groups, role):
    assert role_for(email, groups, SETTINGS) == role


@pytest.mark.parametrize("action", sorted(ACTIONS))
@pytest.mark.parametrize("role", list(ROLE_RANK))
def test_each_role_is_allowed_or_refused_on_each_action(role, action, caplog):
    identity = Identity(email="u@x.example", name="u", role=role, source="local")
    allowed = ROLE_RANK[role] >= ROLE_RANK[ACTIONS[action]]
    if allowed:
        require(identity, action)
    else:
        with caplog.at_level(logging.WARNING, logger="mlops_app.auth"):
            with pytest.raises(PermissionDeniedError, match=rf"has the {role} role, and .* needs the {ACTIONS[action]} role"):
                require(identity, action)
        assert any(action in record.getMessage() for record in caplog.records), "a refusal must be logged"


def test_unknown_action_fails_closed():
    with pytest.raises(ValueError, match="Unknown action"):
        local_identity(SETTINGS).can("launch_rockets")


def test_modes():
    assert choose_mode(load_settings({}), oidc_configured=False) == "local"
    assert choose_mode(load_settings({}), oidc_configured=True) == "oidc"
    assert choose_mode(SETTINGS, oidc_configured=False) == "proxy"
    with pytest.raises(ConfigError, match=r"no \[auth\] section"):
        choose_mode(load_settings({"MLOPS_APP_AUTH_MODE": "oidc"}), oidc_configured=False)
    with pytest.raises(ConfigError, match="proxy_header is empty"):
        choose_mode(load_settings({"MLOPS_APP_AUTH_MODE": "proxy"}), oidc_configured=False)


def test_identity_from_proxy_headers_and_claims():
    headers = {"x-forwarded-email": "Eve@Quality.example", "X-Forwarded-Groups": "a, b"}
    identity = identity_from_headers(headers, SETTINGS, client_address="127.0.0.1")
    assert (identity.email, identity.role, identity.groups, identity.source) == ("eve@quality.example", "approver", ("a", "b"), "proxy")
    assert identity_from_headers({}, SETTINGS, client_address="127.0.0.1") is None
    claims = {"is_logged_in": True, "email": "boss@orchard.example", "name": "The Boss"}
    identity = identity_from_claims(claims, SETTINGS)
    assert (identity.role, identity.display) == ("admin", "The Boss <boss@orchard.example>")
    assert identity_from_claims({"is_logged_in": False}, SETTINGS) is None


def test_local_identity_uses_its_settings():
    identity = local_identity(load_settings({"MLOPS_APP_LOCAL_USER": "me@here.example", "MLOPS_APP_LOCAL_USER_ROLE": "viewer"}))
    assert (identity.email, identity.role, identity.source) == ("me@here.example", "viewer", "local")
    assert not identity.can("approve_promotion")


@pytest.mark.parametrize(
    ("client", "trusted"),
    [("127.0.0.1", True), ("::1", True), ("10.1.2.3", True), ("10.2.0.1", False), ("192.0.2.7", False), (None, False), ("junk", False)],
)
def test_proxy_header_is_believed_only_from_trusted_proxies(client, trusted, caplog):
    settings = SETTINGS.with_overrides(trusted_proxies="127.0.0.1, ::1, 10.1.0.0/16")
    headers = {"X-Forwarded-Email": "boss@orchard.example"}
    if trusted:
        assert identity_from_headers(headers, settings, client_address=client).role == "admin"
    else:
        with caplog.at_level(logging.WARNING, logger="mlops_app.auth"):
            with pytest.raises(PermissionDeniedError, match="not a trusted proxy"):
                identity_from_headers(headers, settings, client_address=client)
        assert "untrusted address" in caplog.text


def test_bad_trusted_proxy_entry_is_a_config_error():
    settings = SETTINGS.with_overrides(trusted_proxies="10.0.0.0/33")
    with pytest.raises(ConfigError, match="is not an address or network"):
        identity_from_headers({"X-Forwarded-Email": "a@b.example"}, settings, client_address="10.0.0.1")


@pytest.mark.parametrize(
    ("address", "mode", "overrides", "message"),
    [
        ("127.0.0.1", "local", {}, None),
        ("localhost", "local", {}, None),
        ("0.0.0.0", "local", {}, "Refusing to serve the local demo identity on 0.0.0.0"),
        ("", "local", {}, "on every interface"),
        ("0.0.0.0", "local", {"allow_remote_local_identity": "true"}, None),
        ("0.0.0.0", "proxy", {}, None),
        ("0.0.0.0", "oidc", {"replicas": "3"}, "replicas is 3 but cookie_secret is empty"),
        ("0.0.0.0", "oidc", {"replicas": "3", "cookie_secret": "s3cret"}, None),
    ],
)
def test_serving_rules(address, mode, overrides, message):
    from mlops_app.auth import check_serving_allowed

    settings = load_settings({}).with_overrides(**overrides)
    if message is None:
        check_serving_allowed(settings, address=address, mode=mode)
    else:
        with pytest.raises(ConfigError, match=message):
            check_serving_allowed(settings, address=address, mode=mode)


def test_oidc_configuration_is_found_in_secrets_files(tmp_path):
    from mlops_app.auth import oidc_configured_in

    plain, with_auth, broken = tmp_path / "a.toml", tmp_path / "b.toml", tmp_path / "c.toml"
    plain.write_text('token = "x"\n')
    with_auth.write_text('[auth]\nredirect_uri = "http://localhost:8501/oauth2callback"\n')
    broken.write_text("[auth\n")
    assert not oidc_configured_in([plain, broken, tmp_path / "missing.toml"])
    assert oidc_configured_in([plain, with_auth])
