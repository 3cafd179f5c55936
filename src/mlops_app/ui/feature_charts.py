"""Plotly figures of the Features page: a feature's distribution and its trend over time.

Both take the small frames :func:`mlops_app.features.feature_overview` computed in DuckDB
(bins, daily summaries), never raw values, and use the app's template and palette.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from mlops_app.features import FeatureDefinition
from mlops_app.features_view import ValueFormat, format_number, value_format
from mlops_app.ui.theme import PALETTE, TEMPLATE_NAME

_HEIGHT = 320


def _translucent(colour: str, alpha: float) -> str:
    """A palette colour (#rrggbb) as rgba with the given opacity, for bands behind a line."""
    red, green, blue = (int(colour[index : index + 2], 16) for index in (1, 3, 5))
    return f"rgba({red}, {green}, {blue}, {alpha})"


def _layout(figure: go.Figure, *, x_title: str, y_title: str) -> go.Figure:
    figure.update_layout(
        template=TEMPLATE_NAME,
        height=_HEIGHT,
        showlegend=False,
        bargap=0.05,
        xaxis_title=x_title,
        yaxis_title=y_title,
        margin={"l": 50, "r": 20, "t": 20, "b": 50},
    )
    return figure


def _axis_name(definition: FeatureDefinition, fmt: ValueFormat) -> str:
    unit = fmt.axis_title
    return f"{definition.name} ({unit})" if unit else definition.name


def _bin_text(start: float, end: float, fmt: ValueFormat) -> str:
    if fmt.percent:
        return f"{start * 100:.1f}–{end * 100:.1f}%"
    unit = f" {fmt.unit}" if fmt.unit else ""
    return f"{format_number(start)}–{format_number(end)}{unit}"


def histogram_figure(histogram: pd.DataFrame, definition: FeatureDefinition) -> go.Figure:
    """How often each value occurs: equal-width bins for numbers, the most frequent values for text.

    Args:
        histogram: :func:`mlops_app.features.feature_histogram`'s frame (bin_start, bin_end,
            count; or value, count, share).
    """
    fmt = value_format(definition)
    figure = go.Figure()
    if "value" in histogram.columns:
        ordered = histogram.sort_values("count")  # largest at the top of a horizontal bar chart
        figure.add_bar(
            x=ordered["count"],
            y=ordered["value"].astype(str),
            orientation="h",
            marker_color=PALETTE["blue"],
            text=[f"{share * 100:.1f}%" for share in ordered["share"]],
            textposition="auto",
            hovertemplate="%{y}: %{x:,} values (%{text})<extra></extra>",
        )
        figure = _layout(figure, x_title="values", y_title="")
        figure.update_layout(hovermode="closest")
        return figure
    middle = (histogram["bin_start"] + histogram["bin_end"]) / 2
    width = (histogram["bin_end"] - histogram["bin_start"]).tolist()
    labels = [_bin_text(start, end, fmt) for start, end in zip(histogram["bin_start"], histogram["bin_end"], strict=True)]
    figure.add_bar(
        x=middle,
        y=histogram["count"],
        width=width,
        marker_color=PALETTE["blue"],
        customdata=labels,
        hovertemplate="%{customdata}: %{y:,} values<extra></extra>",
    )
    figure = _layout(figure, x_title=_axis_name(definition, fmt), y_title="values")
    figure.update_layout(hovermode="closest")
    if fmt.percent:
        figure.update_xaxes(tickformat=".0%")
    return figure


def trend_figure(trend: pd.DataFrame, definition: FeatureDefinition) -> go.Figure:
    """The feature per day: the daily average with the day's smallest to largest value as a band,
    the share of true for yes/no features, and the number of values for text features.

    Args:
        trend: :func:`mlops_app.features.feature_trend`'s frame (day, values, null_share,
            mean, min, max, distinct).
    """
    fmt = value_format(definition)
    figure = go.Figure()
    days = pd.to_datetime(trend["day"])
    if definition.value_type == "text":
        figure.add_bar(x=days, y=trend["values"], marker_color=PALETTE["teal"], name="values", hovertemplate="%{y:,} values")
        return _layout(figure, x_title="day (UTC)", y_title="values per day")
    if definition.value_type == "boolean":
        figure.add_scatter(
            x=days, y=trend["mean"], mode="lines", line={"color": PALETTE["blue"], "width": 2}, name="share of true",
            hovertemplate="%{y:.1%}",
        )  # fmt: skip
        figure = _layout(figure, x_title="day (UTC)", y_title="share of true")
        figure.update_yaxes(tickformat=".0%")
        return figure
    value_hover = "%{y:.1%}" if fmt.percent else "%{y:,.3~f}" + (f" {fmt.unit}" if fmt.unit else "")
    figure.add_scatter(
        x=days, y=trend["max"], mode="lines", line={"width": 0, "color": PALETTE["blue"]}, name="largest",
        hovertemplate=value_hover,
    )  # fmt: skip
    figure.add_scatter(
        x=days, y=trend["min"], mode="lines", line={"width": 0, "color": PALETTE["blue"]}, fill="tonexty",
        fillcolor=_translucent(PALETTE["blue"], 0.15), name="smallest", hovertemplate=value_hover,
    )  # fmt: skip
    figure.add_scatter(
        x=days, y=trend["mean"], mode="lines", line={"color": PALETTE["blue"], "width": 2}, name="average",
        hovertemplate=value_hover,
    )  # fmt: skip
    figure = _layout(figure, x_title="day (UTC)", y_title=_axis_name(definition, fmt))
    if fmt.percent:
        figure.update_yaxes(tickformat=".0%")
    return figure
