"""Streamlit entry: page config, identity, navigation. Pages live in ../pages/."""

from __future__ import annotations

import streamlit as st

from mlops_app.errors import MlopsError, WarehouseBusyError
from mlops_app.ui import identity, navigation, state

st.set_page_config(page_title="mlops-app", page_icon=":material/monitoring:", layout="wide")

settings = state.settings()
user = identity.current_identity(settings)
st.session_state["identity"] = user
identity.sidebar_identity(user)

if not settings.warehouse_path.exists():
    st.title("mlops-app")
    st.warning(
        f"There is no warehouse in the home folder {settings.home_path} yet, so there is nothing to show. "
        "Run `mlops-app demo` to build the demo orchard there, or `mlops-app init` to start an empty home, "
        "or point MLOPS_APP_HOME at an existing home."
    )
    st.stop()

page = st.navigation(list(navigation.build_navigation().values()))
try:
    page.run()
except WarehouseBusyError as error:
    st.warning(f"The warehouse is busy with a long job, so this page could not load. {error}")
except MlopsError as error:
    st.error(str(error))
