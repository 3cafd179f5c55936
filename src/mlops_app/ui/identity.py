"""Who is looking at the page: reads the request, asks ``mlops_app.auth``."""

from __future__ import annotations

from collections.abc import Mapping

import streamlit as st

from mlops_app.auth import ROLE_DESCRIPTIONS, Identity, choose_mode, identity_from_claims, identity_from_headers, local_identity
from mlops_app.config import Settings


def request_headers() -> Mapping[str, str]:
    """Headers of the websocket request. One small function, so tests can replace it
    (AppTest cannot set st.context.headers)."""
    return dict(st.context.headers or {})


def oidc_configured() -> bool:
    try:
        return "auth" in st.secrets
    except FileNotFoundError:
        return False
    except Exception:  # noqa: BLE001 - a malformed secrets file must not take the page down
        return False


def current_identity(settings: Settings) -> Identity:
    """The signed-in identity; renders a sign-in prompt and stops the script when there is none."""
    mode = choose_mode(settings, oidc_configured=oidc_configured())
    if mode == "oidc":
        identity = identity_from_claims(st.user.to_dict(), settings)
        if identity is None:
            st.title("Sign in to mlops-app")
            st.write("This dashboard is private to your organisation. Sign in with your company account to continue.")
            st.button("Sign in", on_click=st.login, type="primary")
            st.stop()
        return identity
    if mode == "proxy":
        identity = identity_from_headers(request_headers(), settings)
        if identity is None:
            st.error(
                f"Your sign-in did not reach the dashboard: the {settings.proxy_header} header is missing. "
                "Open the dashboard through the company sign-in address, not directly."
            )
            st.stop()
        return identity
    return local_identity(settings)


def sidebar_identity(identity: Identity) -> None:
    with st.sidebar:
        st.caption(f"Signed in as **{identity.display}**")
        st.caption(f"Role: **{identity.role}** ({ROLE_DESCRIPTIONS[identity.role]})")
        if identity.source == "oidc":
            st.button("Sign out", on_click=st.logout)
