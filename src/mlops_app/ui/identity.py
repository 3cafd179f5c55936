"""Who is looking at the page: reads the request, asks ``mlops_app.auth``."""

from __future__ import annotations

from collections.abc import Mapping

import streamlit as st

from mlops_app.auth import (
    ROLE_DESCRIPTIONS,
    Identity,
    choose_mode,
    identity_from_claims,
    identity_from_headers,
    is_loopback,
    local_identity,
)
from mlops_app.config import Settings
from mlops_app.errors import PermissionDeniedError


def request_headers() -> Mapping[str, str]:
    """Headers of the websocket request. One small function, so tests can replace it
    (AppTest cannot set st.context.headers)."""
    return dict(st.context.headers or {})


def client_address() -> str | None:
    """The address the websocket request came from (the proxy's, behind one); None when unknown."""
    # Not st.context.ip_address: it answers None for 127.0.0.1 and ::1, so a proxy on this
    # host could never be trusted. The session's client context holds the TCP peer.
    from streamlit import runtime
    from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx

    ctx = get_script_run_ctx()
    if ctx is None or not runtime.exists():
        return None
    client = runtime.get_instance().get_client(ctx.session_id)
    address = getattr(getattr(client, "client_context", None), "remote_ip", None)
    # AppTest has no client connection and answers with a stand-in object, not a string.
    return address if isinstance(address, str) else None


def oidc_configured() -> bool:
    try:
        return "auth" in st.secrets
    except FileNotFoundError:
        return False
    except Exception:  # noqa: BLE001 - a malformed secrets file must not take the page down
        return False


def _refuse(message: str) -> None:
    st.title("mlops-app")
    st.error(message)
    st.stop()


def current_identity(settings: Settings) -> Identity:
    """The signed-in identity; renders a sign-in prompt or a refusal and stops the script when there is none."""
    mode = choose_mode(settings, oidc_configured=oidc_configured())
    if mode == "oidc":
        identity = identity_from_claims(st.user.to_dict(), settings)
        if identity is None:
            st.title("Sign in to mlops-app")
            st.write("This dashboard is private to your organisation. Sign in with your company account to continue.")
            st.button("Sign in", on_click=st.login, type="primary", key="sign_in")
            st.stop()
        return identity
    if mode == "proxy":
        try:
            identity = identity_from_headers(request_headers(), settings, client_address=client_address())
        except PermissionDeniedError as error:
            _refuse(str(error))
        if identity is None:
            _refuse(
                f"Your sign-in did not reach the dashboard: the {settings.proxy_header} header is missing. "
                "Open the dashboard through the company sign-in address, not directly."
            )
        return identity
    address = client_address()
    # The local identity gives everyone the same (admin) role: only for this machine.
    if address is not None and not is_loopback(address) and not settings.allow_remote_local_identity:
        _refuse(
            "This dashboard has no sign-in configured, so it only answers on this machine. "
            "Ask the operator to set up sign-in (docs/self-hosting.md)."
        )
    return local_identity(settings)


def sidebar_identity(identity: Identity) -> None:
    with st.sidebar:
        st.caption(f"Signed in as **{identity.display}**")
        st.caption(f"Role: **{identity.role}** ({ROLE_DESCRIPTIONS[identity.role]})")
        if identity.source == "oidc":
            st.button("Sign out", on_click=st.logout, key="sign_out")
