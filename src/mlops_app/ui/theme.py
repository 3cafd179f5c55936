"""One look for the whole app: palette, plotly template, status badges, number formats."""

from __future__ import annotations


import plotly.graph_objects as go
import plotly.io as pio
import streamlit as st

from mlops_app.formatting import format_time  # noqa: F401 - pages use theme.format_time
from mlops_app.status import Status

PALETTE = {
    "green": "#1b873f",
    "orange": "#c76a00",
    "red": "#c62828",
    "gray": "#6b7280",
    "blue": "#1f5fa8",
    "teal": "#0f766e",
    "purple": "#6d28d9",
}
SERIES_COLOURS = [PALETTE[name] for name in ("blue", "orange", "teal", "purple", "gray", "green", "red")]
TEMPLATE_NAME = "mlops_app"

pio.templates[TEMPLATE_NAME] = go.layout.Template(
    layout=go.Layout(
        colorway=SERIES_COLOURS,
        font={"family": "Source Sans Pro, sans-serif", "size": 13},
        margin={"l": 40, "r": 20, "t": 40, "b": 40},
        hovermode="x unified",
    )
)


# Material icons ship with Streamlit's own font, so they render where no emoji font is installed.
STATUS_ICONS = {
    Status.HEALTHY: ":material/check_circle:",
    Status.WATCH: ":material/warning:",
    Status.ACT: ":material/error:",
    Status.UNKNOWN: ":material/help:",
}


def status_badge(status: Status, *, label: str | None = None) -> None:
    """A status as icon, word and colour (never colour alone), with its meaning as a tooltip."""
    st.badge(label or status.word, icon=STATUS_ICONS[status], color=status.colour, help=status.meaning.capitalize() + ".")




def summary_card(
    *,
    page: str,
    name: str,
    query: dict[str, str],
    description: str,
    status: Status,
    verdict: str,
):
    """A bordered card: linked name, description, status badge and verdict on the left.

    Returns the middle and right columns for the caller's metrics.
    """
    from mlops_app.ui import navigation

    card = st.container(border=True)
    left, middle, right = card.columns([3, 2, 2], vertical_alignment="center")
    with left:
        navigation.link(page, name, query=query)
        st.caption(description)
        status_badge(status)
        st.write(verdict)
    return middle, right
