"""Access: who has which role, read from the settings. Admins only."""

from __future__ import annotations

import streamlit as st

from mlops_app.auth import ROLE_DESCRIPTIONS, access_rules, actions_by_role, choose_mode, require
from mlops_app.errors import PermissionDeniedError
from mlops_app.ui import identity, state

settings = state.settings()
user = st.session_state["identity"]

st.title("Access")
try:
    require(user, "view_access")
except PermissionDeniedError as error:
    st.error(str(error))
    st.stop()

mode = choose_mode(settings, oidc_configured=identity.oidc_configured())
mode_words = {
    "oidc": "company sign-in (OpenID Connect through Streamlit)",
    "proxy": f"a trusted reverse proxy's `{settings.proxy_header}` header, believed only from {settings.trusted_proxies}",
    "local": f"the local demo identity: everyone on this machine is {settings.local_user} ({settings.local_user_role})",
}
st.markdown(f"People sign in with **{mode_words[mode]}**. Anyone signed in who matches no rule below is a **{settings.default_role}**.")
st.caption("Roles come from the settings `admins`, `approvers` and `reviewers` (see the README); change them there and restart.")

rules = access_rules(settings)
if not rules:
    st.info(
        "No role rules are set, so every signed-in person is a "
        f"{settings.default_role}. Set MLOPS_APP_ADMINS, MLOPS_APP_APPROVERS or MLOPS_APP_REVIEWERS to grant roles."
    )
else:
    st.dataframe(
        [{"Role": rule.role, "Who": rule.who, "Matched by": rule.kind} for rule in rules],
        hide_index=True,
        width="stretch",
    )

st.subheader("What each role may do")
allowed = actions_by_role()
st.dataframe(
    [
        {"Role": role, "Summary": ROLE_DESCRIPTIONS[role], "Actions it adds": ", ".join(allowed[role]) or "-"}
        for role in allowed
    ],
    hide_index=True,
    width="stretch",
)
