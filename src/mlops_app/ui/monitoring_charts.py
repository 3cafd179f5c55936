"""Plotly figures of the Monitoring page, in the app's template and palette."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from mlops_app import monitoring_view as view
from mlops_app.monitoring_view import KpiLine
from mlops_app.status import Status
from mlops_app.ui import state
from mlops_app.ui.theme import PALETTE, SERIES_COLOURS, TEMPLATE_NAME
from mlops_app.warehouse import Warehouse

_ALERT_COLOUR = PALETTE["red"]
MAX_KPI_PANELS = 4  # more stacked panels than this are unreadable; the tiles list every KPI


def _dates(frame: pd.DataFrame) -> np.ndarray:
    # Plotly reads naive datetimes as they are: drop the zone after converting to UTC.
    return frame["window_start"].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy()


def history_figure(history: pd.DataFrame, lines: Sequence[KpiLine], drift_limit: float | None) -> go.Figure:
    """Stacked panels over the windows: share of inputs drifted (bars coloured by the window's
    status, with the limit), then each KPI with its target, and markers where alerts opened.

    ``history`` comes from :func:`mlops_app.monitoring.window_history`.
    """
    shown = list(lines)[:MAX_KPI_PANELS]
    titles = ["Share of inputs that drifted from the training data", *(line.label for line in shown)]
    figure = make_subplots(rows=len(titles), cols=1, shared_xaxes=True, vertical_spacing=0.09, subplot_titles=titles)
    when = _dates(history)
    # Plotly sizes bars from the gaps within a trace, so a status seen in one window only would
    # draw a hairline: give every bar most of its window's length (in milliseconds).
    widths = ((history["window_end"] - history["window_start"]).dt.total_seconds() * 1000 * 0.85).to_numpy()
    # Colour and the status word in the legend and hover, never colour alone.
    for status in (Status.HEALTHY, Status.WATCH, Status.ACT, Status.UNKNOWN):
        mask = (history["status"].str.upper() == status.name).to_numpy()
        if not mask.any():
            continue
        figure.add_trace(
            go.Bar(
                x=when[mask], y=history["drift_share"].to_numpy(dtype="float64")[mask], width=widths[mask], name=f"{status.word} window",
                marker={"color": PALETTE[status.colour]}, legendgroup="status",
                customdata=np.stack([history["drifted_features"].fillna(0).to_numpy()[mask],
                                     history["checked_features"].fillna(0).to_numpy()[mask],
                                     history["rows"].to_numpy()[mask]], axis=-1),
                hovertemplate=f"{status.word}: %{{customdata[0]:.0f}} of %{{customdata[1]:.0f}} inputs drifted "
                              "(%{y:.0%}), %{customdata[2]:,} predictions<extra></extra>",
            ),
            row=1, col=1,
        )  # fmt: skip
    if drift_limit is not None:
        figure.add_hline(y=drift_limit, line={"color": PALETTE["gray"], "dash": "dash", "width": 1}, row=1, col=1,
                         annotation_text=f"limit {drift_limit:.0%}", annotation_position="top left")  # fmt: skip
    alerted = (history["alerts_opened"] > 0).to_numpy()
    if alerted.any():
        figure.add_trace(
            go.Scatter(
                x=when[alerted], y=np.full(int(alerted.sum()), 1.08), mode="markers", name="Alert opened",
                marker={"symbol": "triangle-down", "size": 12, "color": _ALERT_COLOUR},
                customdata=history["alerts_opened"].to_numpy()[alerted],
                hovertemplate="%{customdata} alert(s) opened for this window<extra></extra>",
            ),
            row=1, col=1,
        )  # fmt: skip
    figure.update_yaxes(range=[0, 1.15], tickformat=".0%", row=1, col=1)

    for index, line in enumerate(shown, start=2):
        colour = SERIES_COLOURS[(index - 2) % len(SERIES_COLOURS)]
        percent = line.unit == "%"
        figure.add_trace(
            go.Scatter(
                x=when, y=history[line.column].to_numpy(dtype="float64"), mode="lines+markers", name=line.label,
                line={"color": colour, "width": 2}, connectgaps=False,
                hovertemplate=f"{line.label} (KPI period): %{{y:{'.1%' if percent else '.3g'}}}<extra></extra>",
            ),
            row=index, col=1,
        )  # fmt: skip
        if line.window_column:
            figure.add_trace(
                go.Scatter(
                    x=when, y=history[line.window_column].to_numpy(dtype="float64"), mode="markers",
                    name=f"{line.label}, that window alone", marker={"color": colour, "size": 6, "symbol": "circle-open"},
                    hovertemplate=f"that window alone: %{{y:{'.1%' if percent else '.3g'}}}<extra></extra>",
                ),
                row=index, col=1,
            )  # fmt: skip
        for bound, word in ((line.target_min, "target"), (line.target_max, "limit")):
            if bound is not None:
                text = f"{word} {bound:.1%}" if percent else f"{word} {bound:.3g}"
                figure.add_hline(y=bound, line={"color": colour, "dash": "dash", "width": 1}, row=index, col=1,
                                 annotation_text=text, annotation_position="top left")  # fmt: skip
        if percent:
            figure.update_yaxes(tickformat=".0%", row=index, col=1)
    figure.update_xaxes(tickformat="%Y-%m-%d", hoverformat="%Y-%m-%d %H:%M UTC")
    # Drawn last: plotly leaves out panels that have no trace yet.
    for moment in when[alerted]:
        figure.add_vline(x=moment, line={"color": _ALERT_COLOUR, "dash": "dot", "width": 1}, opacity=0.45, row="all", col=1)
    figure.update_layout(
        template=TEMPLATE_NAME,
        height=260 + 190 * len(shown),
        barmode="overlay",
        hovermode="x unified",
        legend={"orientation": "h", "yanchor": "top", "y": -0.08, "x": 0},
        margin={"l": 10, "r": 10, "t": 40, "b": 30},
    )
    return figure


def history_chart(warehouse: Warehouse, model: str, drift_limit: float | None) -> go.Figure:
    """:func:`history_figure` of the model's stored windows; call it through ``state.cached``.

    Building the figure costs about 0.1 s (subplots and shape validation), more than the
    cached reads of a refresh that found nothing new, so the figure is cached with them.
    """
    live = state.cached(view.load_live, warehouse, model)
    return history_figure(live.history, live.lines, drift_limit)


def distribution_figure(frame: pd.DataFrame, label: str) -> go.Figure:
    """Reference (training data) and current (the window) shares of one input, side by side per range or category."""
    figure = go.Figure()
    buckets = frame["bucket"].astype(str).to_numpy()
    for column, name, colour in (
        ("reference_share", "Training data", PALETTE["gray"]),
        ("current_share", "This window", PALETTE["blue"]),
    ):
        figure.add_trace(
            go.Bar(
                x=buckets, y=frame[column].to_numpy(dtype="float64"), name=name, marker={"color": colour},
                hovertemplate=f"{name}: %{{y:.1%}} of rows in %{{x}}<extra></extra>",
            )
        )  # fmt: skip
    figure.update_layout(
        template=TEMPLATE_NAME,
        height=340,
        barmode="group",
        hovermode="closest",
        xaxis={"title": label, "type": "category"},
        yaxis={"title": "share of rows", "tickformat": ".0%"},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
        margin={"l": 10, "r": 10, "t": 30, "b": 40},
    )
    return figure
