"""Streamlit entry: page config, identity, navigation. Pages live in ../pages/."""

from __future__ import annotations

import streamlit as st

from mlops_app.auth import Identity
from mlops_app.errors import MlopsError, WarehouseBusyError
from mlops_app.ui import identity, navigation, state

st.set_page_config(page_title="mlops-app", layout="wide")

settings = state.settings()
# A share link (?share=TOKEN) opens one model review, read-only, to a visitor without an
# account: the page verifies the token and draws no action, and no other page is reachable.
shared_review = "share" in st.query_params
if shared_review:
    user = Identity(email="anonymous (share link)", name="Visitor with a share link", role="viewer", source="share")
    st.sidebar.caption("Read-only view opened with a share link.")
else:
    user = identity.current_identity(settings)
    identity.sidebar_identity(user)
st.session_state["identity"] = user

if not settings.warehouse_path.exists():
    st.title("mlops-app")
    st.warning(
        f"There is no warehouse in the home folder {settings.home_path} yet, so there is nothing to show. "
        "Run `mlops-app demo` to build the demo orchard there, or `mlops-app init` to start an empty home, "
        "or point MLOPS_APP_HOME at an existing home."
    )
    st.stop()

pages = navigation.build_navigation()
page = st.navigation([pages["model_review"]], position="hidden") if shared_review else st.navigation(list(pages.values()))
try:
    page.run()
except WarehouseBusyError as error:
    st.warning(f"The warehouse is busy with a long job, so this page could not load. {error}")
except MlopsError as error:
    st.error(str(error))
