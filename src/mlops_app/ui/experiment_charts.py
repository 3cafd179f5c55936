"""Figures, table settings and styled tables of the Experiments page, in the app's template and palette."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from pandas.io.formats.style import Styler

from mlops_app.experiments import METRIC_PREFIX, PARAM_PREFIX
from mlops_app.experiments_view import NOT_SET, STATUS_COLOURS, STATUS_WORDS, ColumnSpec, describe_metric
from mlops_app.ui.theme import PALETTE, SERIES_COLOURS, TEMPLATE_NAME

# Light tints of the palette for table cells: dark text stays readable on them.
_AMBER_TINT, _GREEN_TINT = "#fdebd0", "#d9f0df"


def _layout(figure: go.Figure, *, height: int = 380, **layout: Any) -> go.Figure:
    figure.update_layout(template=TEMPLATE_NAME, height=height, **layout)
    return figure


def _axis_format(unit: str) -> dict[str, Any]:
    return {"tickformat": ".0%"} if unit == "%" else {}


def curves_figure(curves: pd.DataFrame, metric: str, labels: Mapping[str, str]) -> go.Figure:
    """One line per run: the metric at each step (e.g. the number of trees grown so far).

    Up to seven runs get a colour and a legend entry each; more are drawn as one trace of
    grey lines (named on hover), since a legend of 50 colours helps nobody and each extra
    trace costs the server time to build.
    """
    label = describe_metric(metric)
    figure = go.Figure()
    runs = list(dict.fromkeys(curves["run_id"]))
    if len(runs) <= len(SERIES_COLOURS):
        for index, (run_id, points) in enumerate(curves.groupby("run_id", sort=False)):
            figure.add_trace(
                go.Scatter(
                    x=points["step"].to_numpy(),
                    y=points["value"].to_numpy(),
                    mode="lines+markers",
                    name=labels.get(run_id, points["name"].iloc[0]),
                    line={"color": SERIES_COLOURS[index % len(SERIES_COLOURS)], "width": 2},
                )
            )
    else:
        # One trace, runs separated by a gap (NaN), so the lines do not join up.
        breaks = curves["run_id"].ne(curves["run_id"].shift(-1)).to_numpy()
        steps = np.insert(curves["step"].to_numpy(dtype="float64"), np.flatnonzero(breaks) + 1, np.nan)
        values = np.insert(curves["value"].to_numpy(dtype="float64"), np.flatnonzero(breaks) + 1, np.nan)
        names = np.insert(curves["run_id"].map(lambda run_id: labels.get(run_id, run_id)).to_numpy(dtype=object), np.flatnonzero(breaks) + 1, "")
        figure.add_trace(
            go.Scatter(
                x=steps, y=values, mode="lines", name=f"{len(runs)} runs", hovertext=names, hoverinfo="text+x+y",
                line={"color": PALETTE["blue"], "width": 1}, opacity=0.6,
            )
        )  # fmt: skip
    return _layout(
        figure,
        xaxis_title="Step (model size: trees, boosting rounds or iterations)",
        yaxis={"title": label.label, **_axis_format(label.unit)},
        legend={"orientation": "h", "y": -0.25},
        hovermode="closest" if len(runs) > len(SERIES_COLOURS) else "x unified",
    )


# Values go to plotly as numpy arrays: it validates Python lists element by element, which
# made a 1,000-run chart cost more than the warehouse reads behind it.


def _numeric_axis(values: pd.Series, label: str) -> dict[str, Any]:
    """A parallel-coordinates axis; runs without the value sit on a 'not set' tick below the range."""
    numbers = values.astype("float64").to_numpy()
    present = numbers[~np.isnan(numbers)]
    if present.size == 0:
        return {"label": label, "values": np.zeros(len(numbers)), "tickvals": [0.0], "ticktext": [NOT_SET]}
    low, high = float(present.min()), float(present.max())
    span = (high - low) or max(abs(high), 1.0)
    ticks = list(np.linspace(low, high, 5)) if high > low else [low]
    dimension = {"label": label, "values": numbers, "tickvals": ticks, "ticktext": [f"{tick:.3g}" for tick in ticks]}
    if present.size < numbers.size:
        sentinel = low - 0.15 * span
        dimension["values"] = np.where(np.isnan(numbers), sentinel, numbers)
        dimension["tickvals"] = [sentinel, *ticks]
        dimension["ticktext"] = [NOT_SET, *dimension["ticktext"]]
        dimension["range"] = [sentinel, high]
    return dimension


def _category_axis(values: pd.Series, label: str) -> dict[str, Any]:
    text = values.astype(object).where(values.notna(), NOT_SET).astype(str)
    categories = sorted(text.unique(), key=lambda value: (value == NOT_SET, value))
    codes = {category: index for index, category in enumerate(categories)}
    return {
        "label": label,
        "values": text.map(codes).to_numpy(dtype="float64"),
        "tickvals": list(range(len(categories))),
        "ticktext": categories,
        "range": [-0.5, len(categories) - 0.5] if len(categories) > 1 else [-1, 1],
    }


def parallel_figure(points: pd.DataFrame, params: Sequence[str], metric: str) -> go.Figure:
    """Params of every run as axes, the metric as the last axis and as the line colour."""
    label = describe_metric(metric)
    dimensions = []
    for key in params:
        column = points[PARAM_PREFIX + key]
        numeric = pd.api.types.is_numeric_dtype(column)
        dimensions.append(_numeric_axis(column, key) if numeric else _category_axis(column, key))
    scores = points[METRIC_PREFIX + metric].astype("float64")
    dimensions.append(_numeric_axis(scores, label.label))
    # Better runs are drawn in the darker, more saturated colour whichever the direction.
    scale = [[0, "#e5e7eb"], [1, PALETTE["blue"]]] if label.higher_is_better is not False else [[0, PALETTE["blue"]], [1, "#e5e7eb"]]
    colour = scores.fillna(scores.min() if scores.notna().any() else 0.0).to_numpy()
    figure = go.Figure(
        go.Parcoords(
            line={"color": colour, "colorscale": scale, "showscale": True, "colorbar": {"title": {"text": label.label[:24]}}},
            dimensions=dimensions,
            labelangle=-20,
        )
    )
    # Wide side margins: category labels of the first axis are written to its left.
    return _layout(figure, height=440, margin={"l": 130, "r": 70, "t": 80, "b": 30})


def scatter_figure(points: pd.DataFrame, x: str, y: str, compared: Sequence[str], labels: Mapping[str, str]) -> go.Figure:
    """Two metrics of every run against each other; the compared runs in the series colours
    of the other charts, named in the legend, the rest in grey."""
    x_label, y_label = describe_metric(x), describe_metric(y)
    frame = points.dropna(subset=[METRIC_PREFIX + x, METRIC_PREFIX + y])
    others = frame[~frame["run_id"].isin(compared)]
    figure = go.Figure(
        go.Scatter(
            x=others[METRIC_PREFIX + x].to_numpy(),
            y=others[METRIC_PREFIX + y].to_numpy(),
            mode="markers",
            name="other runs",
            hovertext=others["name"].to_numpy(dtype=object),
            hoverinfo="text+x+y",
            marker={"size": 8, "color": PALETTE["gray"], "opacity": 0.45},
        )
    )
    chosen = frame[frame["run_id"].isin(compared)]
    if len(compared) <= len(SERIES_COLOURS):
        groups = [(labels.get(run_id, run_id), SERIES_COLOURS[index], chosen[chosen["run_id"] == run_id]) for index, run_id in enumerate(compared)]
    else:  # many compared runs: one orange trace, named on hover (see curves_figure)
        groups = [(f"{len(compared)} compared runs", PALETTE["orange"], chosen)]
    for name, colour, part in groups:
        if part.empty:
            continue
        figure.add_trace(
            go.Scatter(
                x=part[METRIC_PREFIX + x].to_numpy(),
                y=part[METRIC_PREFIX + y].to_numpy(),
                mode="markers",
                name=name,
                hovertext=part["name"].to_numpy(dtype=object),
                hoverinfo="text+x+y",
                marker={"size": 13, "color": colour, "line": {"width": 1.5, "color": "#111827"}},
            )
        )
    return _layout(
        figure,
        xaxis={"title": x_label.label, **_axis_format(x_label.unit)},
        yaxis={"title": y_label.label, **_axis_format(y_label.unit)},
        hovermode="closest",
        legend={"orientation": "h", "y": -0.25},
    )


def slices_figure(slices: pd.DataFrame, metric: str) -> go.Figure:
    """Each group's holdout value against the overall line; worse groups in orange."""
    label = describe_metric(metric)
    ordered = slices.iloc[::-1]
    colours = [PALETTE["orange"] if worse else PALETTE["blue"] for worse in ordered["worse"]]
    values = [f"{value * 100:.1f}%" if label.unit == "%" else f"{value:.3g}" for value in ordered["value"]]
    text = [("⚠ " if worse else "") + value for value, worse in zip(values, ordered["worse"], strict=True)]
    figure = go.Figure(go.Bar(x=ordered["value"], y=ordered["Group"], orientation="h", marker_color=colours, text=text, textposition="outside"))
    if not slices.empty:
        overall = float(slices["overall"].iloc[0])
        figure.add_vline(x=overall, line_dash="dash", line_color=PALETTE["gray"], annotation_text="overall", annotation_position="top")
        low = min(float(slices["value"].min()), overall)
        high = max(float(slices["value"].max()), overall)
        pad = (high - low) * 0.6 or 0.05
        figure.update_xaxes(range=[low - pad, high + pad * 0.6])
    return _layout(
        figure,
        height=max(240, 28 * len(slices) + 90),
        xaxis={"title": f"{label.label} on the holdout", **_axis_format(label.unit)},
        hovermode="closest",
        showlegend=False,
    )


def confusion_figure(payload: Mapping[str, Any], target: str | None) -> go.Figure:
    """The holdout's confusion matrix: what really happened (rows) against what the model decided."""
    negative, positive = payload["labels"]
    name = target or "class"
    truth = [f"really {name} = {negative}", f"really {name} = {positive}"]
    decided = [f"decided {negative}", f"decided {positive}"]
    matrix = np.array(payload["matrix"])
    figure = go.Figure(
        go.Heatmap(
            z=matrix,
            x=decided,
            y=truth,
            text=[[f"{value:,}" for value in row] for row in matrix],
            texttemplate="%{text}",
            textfont={"size": 16},
            colorscale=[[0, "#f3f4f6"], [1, PALETTE["blue"]]],
            showscale=False,
        )
    )
    figure.update_yaxes(autorange="reversed")
    return _layout(figure, height=300, hovermode="closest")


def calibration_figure(payload: Mapping[str, Any]) -> go.Figure:
    """Predicted against observed per bin; on the diagonal means the predictions can be taken at face value."""
    bins = pd.DataFrame(payload.get("bins") or [], columns=["predicted", "observed", "rows"])
    values = pd.concat([bins["predicted"], bins["observed"]]).astype("float64")
    low, high = (float(values.min()), float(values.max())) if not values.empty else (0.0, 1.0)
    if 0.0 <= low and high <= 1.0:  # probabilities: show the whole 0-1 scale
        low, high = 0.0, 1.0
    figure = go.Figure()
    figure.add_trace(go.Scatter(x=[low, high], y=[low, high], mode="lines", name="perfectly calibrated", line={"color": PALETTE["gray"], "dash": "dash"}))
    figure.add_trace(
        go.Scatter(
            x=bins["predicted"],
            y=bins["observed"],
            mode="lines+markers",
            name="this model",
            marker={"size": np.clip(np.sqrt(bins["rows"].astype("float64")), 6, 22), "color": PALETTE["blue"]},
            hovertext=[f"{rows:,} rows" for rows in bins["rows"]],
        )
    )
    return _layout(
        figure,
        height=320,
        xaxis_title="Predicted (mean of the bin)",
        yaxis_title="Observed (mean of the bin)",
        hovermode="closest",
        legend={"orientation": "h", "y": -0.3},
    )


def importance_figure(payload: Mapping[str, Any], top: int = 15) -> go.Figure:
    """Permutation importance: how much the score drops when a column is shuffled."""
    features = pd.DataFrame(payload.get("features") or [], columns=["feature", "importance", "std"]).head(top).iloc[::-1]
    metric = payload.get("metric")
    label = describe_metric(metric).label if metric else "score"
    figure = go.Figure(
        go.Bar(
            x=features["importance"],
            y=features["feature"],
            orientation="h",
            marker_color=PALETTE["teal"],
            error_x={"type": "data", "array": features["std"], "color": PALETTE["gray"]},
        )
    )
    return _layout(figure, height=max(240, 26 * len(features) + 90), xaxis_title=f"Drop in {label} when shuffled", hovermode="closest", showlegend=False)


# --- Styled tables -----------------------------------------------------------------------

ROW_PIXELS = 35  # st.dataframe's default row height


def table_height(rows: int, most: int = 40) -> int:
    """A table height that shows every row up to ``most``, then scrolls."""
    return (min(max(rows, 1), most) + 1) * ROW_PIXELS + 3


# Streamlit sends a Styler's CSS cell by cell: measured here, 150 ms for 10 x 50 cells and
# 580 ms for a 500-row runs table. So tints are added to small tables only; the text
# carries the same marks (≠, ★), so nothing is said by colour alone.
STYLED_CELLS = 250


def style_params(frame: pd.DataFrame) -> Styler | pd.DataFrame:
    """Rows whose value differs between runs get an amber tint (the Differs column says it in words)."""
    if frame.size > STYLED_CELLS:
        return frame
    differs = frame["Differs"] != "same"
    return frame.style.apply(lambda row: [f"background-color: {_AMBER_TINT}" if differs[row.name] else "" for _ in row], axis=1)


def style_metrics(text: pd.DataFrame, best: pd.DataFrame) -> Styler | pd.DataFrame:
    """The best value of each metric in bold on a green tint (also starred in the text)."""
    if text.size > STYLED_CELLS:
        return text
    styles = best.map(lambda is_best: f"background-color: {_GREEN_TINT}; font-weight: 600" if is_best else "")
    return text.style.apply(lambda _: styles, axis=None)


_NUMBER_FORMATS = {"number": "%.3f", "percent": "%.1f%%", "seconds": "%.1f s"}


def runs_column_config(columns: Sequence[ColumnSpec]) -> dict[str, Any]:
    """st.dataframe column settings for the runs table: labels, explanations, number formats,
    and the status as a coloured label (symbol and word inside)."""
    words = {STATUS_WORDS[status]: PALETTE[colour] for status, colour in STATUS_COLOURS.items()}
    config = {}
    for column in columns:
        if column.kind in _NUMBER_FORMATS:
            config[column.column] = st.column_config.NumberColumn(column.label, help=column.help, format=_NUMBER_FORMATS[column.kind])
        elif column.kind == "status":
            # A read-only multiselect column is how st.dataframe colours a label without a
            # Styler (see STYLED_CELLS); the cells hold one-item lists for it.
            config[column.column] = st.column_config.MultiselectColumn(
                column.label, help=column.help, options=list(words), color=list(words.values())
            )
        else:
            config[column.column] = st.column_config.TextColumn(column.label, help=column.help)
    return config


def slices_column_config(metric: str) -> dict[str, Any]:
    return {
        "Group": st.column_config.TextColumn("Group", help="A column of the data and one of its values, e.g. one orchard block."),
        "value": st.column_config.TextColumn(describe_metric(metric).label),
        "Rows": st.column_config.NumberColumn("Rows", help="Holdout rows in the group; small groups swing more by chance."),
        "Verdict": st.column_config.TextColumn("Against overall", help="Worse groups are tinted amber, with the difference to the overall value."),
    }


def style_slices(frame: pd.DataFrame) -> Styler:
    worse = frame["worse"]
    return frame.style.apply(lambda row: [f"background-color: {_AMBER_TINT}" if worse[row.name] else "" for _ in row], axis=1)
