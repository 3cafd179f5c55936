"""The pages of the dashboard and their stable url paths (ARCHITECTURE.md, Layout).

A page is listed here once its file exists under ``pages/``; links to a page that is not
listed yet are rendered as plain text, so no link ever lands on a silent fallback.
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st


@dataclass(frozen=True)
class PageSpec:
    key: str  # url path; "" for the overview at "/"
    file: str
    title: str
    icon: str


PAGES: tuple[PageSpec, ...] = (
    PageSpec("", "overview.py", "Overview", ":material/dashboard:"),
    PageSpec("data_quality", "data_quality.py", "Data quality", ":material/fact_check:"),
    PageSpec("features", "features.py", "Features", ":material/category:"),
    PageSpec("models", "models.py", "Models", ":material/deployed_code:"),
    PageSpec("model_review", "model_review.py", "Model review", ":material/rate_review:"),
    PageSpec("monitoring", "monitoring.py", "Monitoring", ":material/monitor_heart:"),
    PageSpec("experiments", "experiments.py", "Experiments", ":material/science:"),
    PageSpec("access", "access.py", "Access", ":material/admin_panel_settings:"),
)

_BY_KEY = {page.key: page for page in PAGES}


def build_navigation() -> dict[str, st.Page]:
    """st.Page objects for every page, keyed by url path; relative to the entry script."""
    return {
        page.key: st.Page(
            f"../pages/{page.file}",
            title=page.title,
            icon=page.icon,
            url_path=page.key or None,
            default=page.key == "",
        )
        for page in PAGES
    }


def has_page(key: str) -> bool:
    return key in _BY_KEY


def link(key: str, label: str, *, query: dict[str, str] | None = None, help: str | None = None) -> None:
    """A link to a page with query parameters, or the label alone when the page does not exist yet."""
    if key in _BY_KEY:
        st.page_link(f"../pages/{_BY_KEY[key].file}", label=label, query_params=query, help=help)
    else:
        st.markdown(f"**{label}**", help=help)
