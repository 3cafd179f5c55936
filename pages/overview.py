"""Overview: the model portfolio, the datasets and what happened lately."""

from __future__ import annotations

import streamlit as st

from mlops_app.overview import dataset_summaries, headline, model_portfolio, recent_activity
from mlops_app.ui import navigation, state, theme

warehouse, registry = state.warehouse(), state.registry()
models = state.cached(model_portfolio, registry, warehouse)
datasets = state.cached(dataset_summaries, warehouse)
activity = state.cached(recent_activity, registry, warehouse)

st.title("Overview")
status, sentence = headline(models, datasets)
theme.status_badge(status)
st.markdown(sentence)

st.subheader("Models in service")
if not models:
    st.info("No models are registered yet. Train one with `mlops-app train`, or build the demo with `mlops-app demo`.")
for model in models:
    middle, right = theme.summary_card(
        page="models",
        name=model.name,
        query={"model": model.name},
        description=f"{model.description} Owner: {model.owner or 'not set'}.",
        status=model.status,
        verdict=model.verdict,
    )
    where = "Measured live on the latest labelled predictions." if model.monitored else (
        "Measured on the holdout test: data the model never saw in training."
    )
    middle.metric(model.key_metric_label, model.key_metric_value, help=f"{model.key_metric_help} {where}".strip())
    champion = f"version {model.champion}" if model.champion else "none yet"
    right.metric("Champion (serving)", champion, help="The version that makes the real decisions today.")
    challenger = f"version {model.challenger}" if model.challenger else "none"
    right.caption(f"Challenger (under evaluation): {challenger}. {model.versions} versions registered.")
    if model.monitored:
        with right:
            navigation.link("monitoring", "Live monitoring", query={"model": model.name}, help="KPIs, drift and alerts per day.")

st.subheader("Datasets")
if not datasets:
    st.info("No datasets yet. Load one with `mlops-app ingest DATASET FILE`, or build the demo with `mlops-app demo`.")
for dataset in datasets:
    middle, right = theme.summary_card(
        page="data_quality",
        name=dataset.name,
        query={"dataset": dataset.name},
        description=dataset.description,
        status=dataset.status,
        verdict=dataset.verdict,
    )
    middle.metric("Rows", f"{dataset.rows:,}", help="Rows accepted into the warehouse, all deliveries together.")
    right.metric("Deliveries", f"{dataset.batches:,}", help="Files (batches) received for this dataset.")
    right.caption(f"Newest data: {theme.format_time(dataset.last_event_at)}")

st.subheader("Recent activity")
if not activity:
    st.info("Nothing has happened yet. Registrations, promotions and data deliveries will be listed here.")
else:
    st.dataframe(
        [
            {"When": theme.format_time(item.time), "What": f"{item.subject}: {item.what}", "Who": item.who or "data pipeline"}
            for item in activity
        ],
        hide_index=True,
        width="stretch",
    )
