"""Monitoring: is a model in service still doing its job? Verdict, KPIs, drift over time, alerts, the full report.

`/monitoring?model=NAME` opens one model (a shareable link). Everything that shows results
sits in a live fragment that reruns every `monitoring_refresh_seconds`, so windows written by
`mlops-app monitor` in another process appear without a reload; its reads are cached by the
warehouse generation, so a refresh that finds nothing new never opens the database.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import streamlit as st

from mlops_app import monitoring
from mlops_app import monitoring_view as view
from mlops_app.alerts import acknowledge_alert
from mlops_app.demo_monitoring import history_progress
from mlops_app.errors import MlopsError, NotFoundError, WarehouseBusyError
from mlops_app.ui import monitoring_charts as charts
from mlops_app.ui import navigation, state, theme

FLASH, OPEN_REPORT = "monitoring_flash", "monitoring_open_report"
TILES_PER_ROW = 4

settings, warehouse = state.settings(), state.warehouse()
user = st.session_state["identity"]
interval = view.refresh_interval(settings.monitoring_refresh_seconds)

st.title("Monitoring")
st.caption(
    "Monitoring watches a model after it went into service. For every window (a day by default) it compares the data "
    "the model received with the data it learned from (drift), checks its decisions against the real outcomes once "
    "they are known, and opens an alert when a threshold is broken, so someone acts before customers notice."
)

choices = view.model_choices(state.cached(monitoring.monitored_models, warehouse), settings.home_path)
requested = st.query_params.get("model")
registered = [info.name for info in state.registry().list_models()] if requested and requested not in choices else []
_, warning = view.choose_model(requested, choices, registered)
if warning:
    st.warning(warning, icon=":material/link_off:")
model = None
if not choices:
    st.info(
        "No model is monitored yet. To start, score a batch with `mlops-app score MODEL FILE` (predictions are logged), "
        "then run `mlops-app monitor` (every few minutes from cron) to compute each day's drift, KPIs and alerts; "
        "labels arrive with `mlops-app labels MODEL FILE`. Or run `mlops-app demo`: it replays a season of the apple grader."
    )
else:
    # Bound to ?model=..., so a link opens the model and picking another updates the link.
    model = st.selectbox("Model", choices, key="model", bind="query-params", width=420, help="Models with monitoring results or settings.")
# An action's outcome is kept across the rerun that refreshes the page's data.
flash = st.session_state.pop(FLASH, None)


def _tiles(data: view.LiveView, limit: float | None) -> None:
    tiles = view.live_tiles(data, limit)
    for start in range(0, len(tiles), TILES_PER_ROW):
        row = tiles[start : start + TILES_PER_ROW]
        for column, tile in zip(st.columns(min(len(tiles), TILES_PER_ROW)), row, strict=False):
            with column.container(border=True):
                st.metric(tile.label, tile.value, delta=tile.delta, delta_color=tile.delta_color, help=tile.help)
                theme.status_badge(tile.status, label=tile.badge)
                st.caption(tile.caption)


def _drift(model: str, data: view.LiveView) -> tuple[object, str]:
    """The per-input drift of the chosen window; returns that window's start and label."""
    st.subheader("Which inputs drifted")
    st.markdown(
        "Drift means the values reaching the model no longer look like the data it learned from: a new orchard block, "
        "a recalibrated machine, riper fruit. The model still answers, but its answers may be less reliable than its "
        "tests promised. Each input is tested on its own, with a test suited to its kind and the sample size."
    )
    options = view.window_choices(data.history)
    choice = st.selectbox(
        "Window", list(options), format_func=options.get, key=f"monitoring_window_{model}", width=520,
        help="Latest follows new windows as they are computed; pick a date to look back.",
    )  # fmt: skip
    row = view.window_row(choice, data.history)
    start, label = row["window_start"].to_pydatetime(), view.window_label(row["window_start"], row["window_end"])
    st.caption(view.window_caption(row))
    table = state.cached(monitoring.feature_drift_table, warehouse, model, start)
    if table.empty:
        st.info(
            f"Drift was not compared for the window {label}: it has {int(row['rows']):,} predictions, too few to compare "
            "with the training data. Pick another window."
        )
        return start, label
    st.markdown(view.escape_markdown(view.drift_sentence(table, label)))
    st.dataframe(
        view.drift_rows(table),
        hide_index=True,
        width="stretch",
        column_config={
            "Input": st.column_config.TextColumn("Input", help="A measurement the model decides from; the last row is the model's own score."),
            "Kind": st.column_config.TextColumn("Kind", help="Number or category: each kind gets its own test."),
            "Test used": st.column_config.TextColumn("Test used", help="The statistical test Evidently chose for this input (explained below the table)."),
            "Score": st.column_config.TextColumn("Score", help="The test's result for this window; read it against the threshold."),
            "Threshold": st.column_config.TextColumn("Threshold", help="Where the test starts calling the input drifted; some tests drift above it, others below."),
            "Drifted": st.column_config.TextColumn("Drifted", help="The test's own verdict: Yes means this input moved away from the training data."),
        },
    )
    st.caption(view.methods_caption(table))
    roles = dict(zip(table["feature"], table["role"], strict=True))
    feature = st.selectbox(
        "Input to compare with the training data", list(roles), format_func=lambda name: view.input_label(name, roles[name]),
        key=f"monitoring_input_{model}", width=520,
    )  # fmt: skip
    shares = state.cached(monitoring.feature_distributions, warehouse, model, feature, start)
    name = view.input_label(feature, roles[feature])
    if shares.empty:
        st.info(f"No distribution was stored for {name} in the window {label}.")
    else:
        st.plotly_chart(charts.distribution_figure(shares, name), width="stretch", config={"displayModeBar": False})
        st.caption(
            view.escape_markdown(view.distribution_sentence(shares, name))
            + " Grey bars: the training data; blue bars: this window. Each bar is the share of rows in that range or category."
        )
    return start, label


def _alert_card(model: str, card: view.AlertCard, refusal: str | None) -> None:
    with st.container(border=True):
        left, right = st.columns([5, 1], vertical_alignment="center")
        with left:
            theme.status_badge(card.badge_status, label=card.badge)
            st.markdown(f"**{view.escape_markdown(card.title)}**: {view.escape_markdown(card.message)}")
            st.caption(view.escape_markdown(f"{card.when}. {card.state}"))
            if card.retrain:
                st.caption(view.escape_markdown(card.retrain))
        with right:
            if card.challenger_version is not None:
                navigation.link(
                    "model_review", f"Review version {card.challenger_version}",
                    query={"model": model, "version": str(card.challenger_version)},
                    help="The challenger retraining registered: its results against the champion, and the approve / reject buttons.",
                )  # fmt: skip
            if card.can_acknowledge and st.button(
                "Acknowledge", key=f"monitoring_ack_{card.alert_id}", disabled=refusal is not None,
                help="Record that you have seen this alert and are acting on it. It stays tracked until the condition clears.",
            ):  # fmt: skip
                try:
                    alert = acknowledge_alert(warehouse, card.alert_id, user)
                except MlopsError as error:  # PermissionDeniedError included: the library decides, the page explains
                    st.session_state[FLASH] = ("error", str(error))
                else:
                    st.session_state[FLASH] = ("success", view.acknowledged_message(alert))
                st.rerun()


def _alerts(model: str, data: view.LiveView, flash: tuple[str, str] | None) -> None:
    st.subheader("Alerts")
    st.caption(
        "An alert opens when a window breaks a threshold (too many inputs drifted, a KPI missed its target) and can "
        "start retraining. Acknowledge it to tell others you are on it; it resolves itself once the condition stays clear."
    )
    if flash:
        getattr(st, flash[0])(flash[1])
    st.markdown(view.alerts_summary(data.alerts))
    refusal = view.acknowledge_refusal(user)
    if refusal and any(card.can_acknowledge for card in data.alerts):
        st.info(refusal, icon=":material/lock:")
    resolved = [card for card in data.alerts if not card.active]
    for card in data.alerts:
        if card.active:
            _alert_card(model, card, refusal)
    if resolved:
        with st.expander(f"Resolved alerts ({len(resolved)})"):
            for card in resolved:
                _alert_card(model, card, refusal)


def _report_button(model: str, start: object, label: str) -> None:
    st.subheader("Full drift report")
    st.markdown(
        "Evidently's complete drift report of the chosen window: every input's test, score and distribution in one "
        "document you can keep or send. It was saved when the window was computed."
    )
    if not view.report_available(settings.home_path, model, start):
        st.info(f"No report was saved for the window {label}: it had too few predictions to compare. Pick another window above.")
        return
    if st.button(f"Open the full drift report ({label})", icon=":material/description:", key="monitoring_report_open"):
        try:
            with st.spinner("Opening the report: a few seconds the first time..."):
                path = monitoring.window_report(settings, model, start)
        except NotFoundError as error:
            st.info(str(error))
        except MlopsError as error:
            st.error(str(error))
        else:
            st.session_state[OPEN_REPORT] = {"path": str(path), "model": model, "window": label}
            st.rerun()


def _live(model: str | None, flash: tuple[str, str] | None) -> None:
    banner = view.progress_banner(history_progress(settings))
    if banner is not None and banner.level == "progress":
        st.progress(banner.share or 0.0, text=banner.text)
        st.caption(view.escape_markdown(banner.detail))
    elif banner is not None:
        getattr(st, banner.level)(banner.text + (f"\n\n{view.escape_markdown(banner.detail)}" if banner.detail else ""))
    if model is None:
        # A demo build writes the first settings file after the page opened: show the chooser then.
        if view.model_choices(state.cached(monitoring.monitored_models, warehouse), settings.home_path):
            st.rerun()
        return
    data = state.cached(view.load_live, warehouse, model)
    theme.status_badge(data.status)
    st.markdown(view.escape_markdown(data.sentence))
    limit, problem = view.drift_limit(settings.home_path, model)
    if problem:
        st.error(problem)
    _tiles(data, limit)

    st.subheader("Over time")
    if data.history.empty:
        st.info(
            f"No window of {model} has been computed yet. Score a batch with `mlops-app score {model} FILE`, then run "
            f"`mlops-app monitor {model}`: each closed window appears here, and this part refreshes itself."
        )
    else:
        figure = state.cached(charts.history_chart, warehouse, model, limit)
        st.plotly_chart(figure, width="stretch", config={"displayModeBar": False})
        st.caption(
            "Top: the share of the model's inputs that drifted, one bar per window, coloured by the window's status; the "
            "dashed line is the limit. Below: each business KPI over its period ending with the window (line) and on that "
            "window alone (open circles), against its target (dashed). KPIs trail by days: they need the real outcomes "
            "(labels). A red triangle and dotted line mark a window that opened an alert."
        )
    st.caption(view.updated_caption(datetime.now(UTC), interval))
    chosen = _drift(model, data) if not data.history.empty else None
    _alerts(model, data, flash)
    if chosen:
        _report_button(model, *chosen)


@st.fragment(run_every=interval)
def live_section(model: str | None, flash: tuple[str, str] | None) -> None:
    # A fragment's own reruns do not pass through app/main.py's handler: catch here, try again next time.
    try:
        _live(model, flash)
    except WarehouseBusyError as error:
        again = f" It tries again in {interval:g} s." if interval else " Reload the page to try again."
        st.warning(f"The warehouse is busy with a long job, so this part could not refresh. {error}{again}")
    except MlopsError as error:
        st.error(str(error))


live_section(model, flash)

# The report viewer stays outside the live part: an open report (megabytes) is not resent on every refresh.
opened = st.session_state.get(OPEN_REPORT)
if model is not None and opened and opened["model"] == model and Path(opened["path"]).is_file():
    path = Path(opened["path"])
    st.markdown(f"**Drift report of {model}, window {opened['window']}**")
    left, right = st.columns([1, 3])
    left.download_button(
        "Download the report (HTML)", path.read_bytes(), file_name=f"{model}_drift_{path.name.split('.')[0]}.html",
        mime="text/html", icon=":material/download:", key="monitoring_report_download",
    )  # fmt: skip
    if right.button("Close the report", icon=":material/close:", key="monitoring_report_close"):
        del st.session_state[OPEN_REPORT]
        st.rerun()
    # Safe to embed: no value in a window report can carry markup (mlops_app.monitoring explains).
    st.iframe(path, height=900)
