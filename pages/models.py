"""Models: every registered model, which version serves, its versions and the requests waiting.

`/models` lists every model; `/models?model=NAME` focuses one (a shareable link) with its
versions table and its champion history ("which version was champion on date D").
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import streamlit as st

from mlops_app import models_view as view
from mlops_app.promotion import champion_on
from mlops_app.ui import navigation, state, theme

QUERY_KEY = "model"

warehouse, registry = state.warehouse(), state.registry()
models = state.cached(view.model_overviews, registry, warehouse)
names = [model.name for model in models]

st.title("Models")
st.caption(
    "Each model has numbered versions. The champion is the version that makes the real decisions; a challenger is "
    "one under evaluation. A version becomes champion only through a reviewed, approved promotion request."
)

if not models:
    st.info(
        "No models are registered yet. Train and register one with `mlops-app train`, "
        "or build the demo orchard (two models, a pending promotion request) with `mlops-app demo`."
    )
    st.stop()

requested = st.query_params.get(QUERY_KEY)
if requested and requested not in names:
    st.warning(
        f"There is no model named `{requested[:100]}`. Pick one from the list below; the link you followed may be out of date."
    )
    requested = None

if requested:
    shown = [model for model in models if model.name == requested]
    navigation.link("models", "All models", query=None, help="Back to every model.")
else:
    shown = models
    status, sentence = view.portfolio_verdict(models)
    theme.status_badge(status)
    st.markdown(sentence)


def _pending_list(items) -> None:
    for item in items:
        with st.container(border=True):
            left, right = st.columns([4, 1], vertical_alignment="center")
            with left:
                theme.status_badge(item.status, label=item.word)
                st.markdown(item.summary)
                st.caption(f"Request {item.request_id}, made {view.format_moment(item.requested_at)}.")
            with right:
                navigation.link(
                    "model_review",
                    f"Review version {item.version}",
                    query={"model": item.model, "version": str(item.version)},
                    help="Open the review: model card, results against the champion, gates, and the approve / reject buttons.",
                )


if not requested:
    pending = [item for model in models for item in model.pending]
    st.subheader("Waiting for a decision")
    if pending:
        _pending_list(pending)
    else:
        st.info("No promotion request is waiting. Open a version's review to request one.")

for model in shown:
    if requested:
        st.header(model.name, anchor=False)
    else:
        st.subheader(model.name, anchor=False)
        navigation.link("models", f"Open {model.name}", query={"model": model.name}, help="Its versions and champion history.")
    if model.description:
        st.markdown(model.description)
    st.markdown(f"**{view.alias_sentence(model)}**")
    st.caption(f"Owner: {model.owner or 'not set'} · {model.versions} version{'s' if model.versions != 1 else ''} registered.")
    if requested and model.pending:
        _pending_list(model.pending)

    table = state.cached(view.versions_table, registry, model.name)
    metric_help = dict(state.cached(view.metric_columns, registry, model.name))
    st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        column_config={
            "Version": st.column_config.NumberColumn("Version", format="%d"),
            "Status": st.column_config.TextColumn(
                "Status", help="Champion: serving today. Challenger: under evaluation. Earlier champion: served before.", width="large"
            ),
            "Registered": st.column_config.TextColumn("Registered", help="When the version was registered (UTC)."),
            **{
                label: st.column_config.TextColumn(label, help=(help_text + " Measured on the holdout test: data the model never saw in training.").strip())
                for label, help_text in metric_help.items()
            },
        },
        key=f"models_versions_{model.name}",
    )
    st.caption("Results are from the holdout test at registration. Open a version's review to compare it with the champion.")
    link_columns = st.columns(min(len(table), 6) or 1)
    for column, number in zip(link_columns, table["Version"].tolist()[:6], strict=False):
        with column:
            navigation.link("model_review", f"Review version {number}", query={"model": model.name, "version": str(number)})

    if not requested:
        continue

    st.subheader("Champion history")
    periods = state.cached(view.champion_periods, registry, model.name)
    if periods.empty:
        st.info(
            f"{model.name} has never had a champion. Open a version's review and request its promotion; "
            "once approved it starts serving and its period is listed here."
        )
        continue
    st.dataframe(periods, hide_index=True, width="stretch", key=f"models_periods_{model.name}")
    first_day = min(datetime.fromisoformat(text.replace(" UTC", "")).date() for text in periods["From"])
    today = datetime.now(UTC).date()
    day = st.date_input(
        "Which version was champion on",
        value=today,
        # A month before the first champion, so "no champion yet" can be asked about too.
        min_value=min(first_day, today) - timedelta(days=31),
        max_value=max(today, date(first_day.year, 12, 31)),
        key=f"models_champion_day_{model.name}",
        format="YYYY-MM-DD",
        help="Pick a date to see which version made the decisions then (at the end of that day, UTC), e.g. to explain an old decision.",
    )
    if isinstance(day, date):
        version = state.cached(champion_on, registry, model.name, day)
        st.markdown(view.champion_on_sentence(model.name, day, version))
