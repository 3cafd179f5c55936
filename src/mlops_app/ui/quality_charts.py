"""Plotly figures of the Data quality page, in the app's template and palette."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from mlops_app.quality import ColumnProfile
from mlops_app.ui.theme import PALETTE, TEMPLATE_NAME

# Shape and colour both carry the status, so the chart survives grey-scale and colour blindness.
_STATUS_MARKERS = {
    "pass": ("Pass", "circle", PALETTE["green"], 7),
    "warn": ("Warn", "triangle-up", PALETTE["orange"], 12),
    "fail": ("Fail", "x", PALETTE["red"], 12),
    "skipped": ("Not checked", "circle-open", PALETTE["gray"], 7),
}


def status_strip(points: pd.DataFrame, check_order: list[str]) -> go.Figure:
    """One row per check, one mark per delivery: its status as shape and colour.

    ``points`` comes from :func:`mlops_app.quality_view.history_points`; ``check_order``
    lists the check labels top to bottom.
    """
    figure = go.Figure()
    for status, (word, symbol, colour, size) in _STATUS_MARKERS.items():
        subset = points[points.status == status]
        if subset.empty:
            continue
        figure.add_trace(
            go.Scatter(
                x=subset["when"],
                y=subset["check"],
                mode="markers",
                name=word,
                marker={"symbol": symbol, "color": colour, "size": size, "line": {"width": 2 if status == "fail" else 0, "color": colour}},
                opacity=0.55 if status == "pass" else 1.0,
                customdata=subset["hover"],
                hovertemplate="%{customdata}<extra></extra>",
            )
        )
    figure.update_layout(
        template=TEMPLATE_NAME,
        height=90 + 26 * max(len(check_order), 1),
        hovermode="closest",
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0, "title": {"text": "Result: "}},
        margin={"l": 10, "r": 10, "t": 40, "b": 30},
        xaxis={"title": None},
        yaxis={"title": None, "categoryorder": "array", "categoryarray": list(reversed(check_order))},
    )
    return figure


def histogram(profile: ColumnProfile, title: str) -> go.Figure:
    """Bars of a numeric column's equal-width bins, or of a text column's most frequent values."""
    figure = go.Figure()
    if not profile.histogram.empty:
        bins = profile.histogram
        figure.add_trace(
            go.Bar(
                x=(bins["bin_start"] + bins["bin_end"]) / 2,
                y=bins["rows"],
                width=bins["bin_end"] - bins["bin_start"],
                marker={"color": PALETTE["blue"], "line": {"color": "white", "width": 1}},
                customdata=bins[["bin_start", "bin_end"]],
                hovertemplate="%{customdata[0]:.4g} to %{customdata[1]:.4g}: %{y:,} rows<extra></extra>",
                name="rows",
            )
        )
        figure.update_layout(xaxis={"title": title}, yaxis={"title": "rows"}, bargap=0)
    elif not profile.top_values.empty:
        top = profile.top_values.iloc[::-1]
        figure.add_trace(
            go.Bar(
                x=top["rows"],
                y=top["value"].astype(str),
                orientation="h",
                marker={"color": PALETTE["blue"]},
                customdata=top["share"],
                hovertemplate="%{y}: %{x:,} rows (%{customdata:.1%})<extra></extra>",
                name="rows",
            )
        )
        figure.update_layout(xaxis={"title": "rows"}, yaxis={"title": None, "type": "category"})
    figure.update_layout(template=TEMPLATE_NAME, height=320, hovermode="closest", showlegend=False, margin={"l": 10, "r": 10, "t": 20, "b": 40})
    return figure
