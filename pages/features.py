"""Features: the feature store's catalogue, and one feature's freshness, definition, values and lineage.

`/features` lists the catalogue; `/features?feature=NAME` opens one feature (a shareable
link). The query parameter follows whatever the reader picks, so the address bar always
links to what is on screen.
"""

from __future__ import annotations

import streamlit as st

from mlops_app import features_view as view
from mlops_app.features import features_folder, list_entities
from mlops_app.status import Status
from mlops_app.ui import feature_charts, navigation, state, theme

QUERY_KEY = "feature"
TABLE_ROUND = "features_table_round"

warehouse, registry = state.warehouse(), state.registry()
now = view.clock()
catalogue = state.cached(view.catalogue, warehouse, now)
names = catalogue["name"].tolist()

st.title("Features")
st.caption(
    "Features are the inputs models learn from and decide on, computed from the datasets. "
    "The store keeps every value with the time it became known, so a model is trained only on what was known then."
)

if catalogue.empty:
    folder = features_folder(state.settings())
    st.info(
        f"No features are registered yet. Describe them in YAML files under `{folder}/*.yaml` "
        "(one file may hold several entities and features), then register them with `mlops-app features apply` "
        "and compute their values with `mlops-app features materialize`. Or build the demo orchard, "
        "with 13 features, with `mlops-app demo`."
    )
    st.stop()


def _open(name: str | None) -> None:
    """Show ``name`` (or the catalogue) and put it in the address bar."""
    if name:
        st.query_params[QUERY_KEY] = name
    elif QUERY_KEY in st.query_params:
        del st.query_params[QUERY_KEY]
    # A fresh table widget: the old row selection would otherwise reopen the feature.
    st.session_state[TABLE_ROUND] = st.session_state.get(TABLE_ROUND, 0) + 1


def _open_picked(key: str) -> None:
    _open(st.session_state.get(key))


def _open_selected_row(key: str, shown: list[str]) -> None:
    rows = st.session_state[key].selection.rows
    if rows:
        _open(shown[rows[0]])


requested = st.query_params.get(QUERY_KEY)
if requested and requested not in names:
    matches = view.close_matches(requested, names)
    hint = f" Did you mean {' or '.join(f'`{match}`' for match in matches)}?" if matches else ""
    st.warning(
        f"There is no feature named `{view.safe_name(requested)}`.{hint} "
        "Pick one from the catalogue below; the link you followed may be out of date."
    )
    requested = None

if not requested:
    # --- The catalogue ---------------------------------------------------------------------
    status, sentence = view.catalogue_verdict(catalogue)
    theme.status_badge(status)
    st.markdown(sentence)

    options = view.filter_options(catalogue)
    search_column, tag_column, owner_column, entity_column = st.columns([2, 2, 2, 2])
    search = search_column.text_input(
        "Search",
        key="features_search",
        persist_state="page",  # the filters survive a visit to one feature and back
        placeholder="name, description, dataset or tag",
        help="Finds the text anywhere in a feature's name, description, dataset or tags; case is ignored.",
    )
    tags = tag_column.multiselect(
        "Tags", options.tags, key="features_tags", persist_state="page", placeholder="any tag", help="Features with any of these tags."
    )
    owners = owner_column.multiselect(
        "Owner",
        options.owners,
        key="features_owners",
        persist_state="page",
        placeholder="any owner",
        help="The team answering for a feature's definition and values.",
    )
    entities = entity_column.multiselect(
        "Entity",
        options.entities,
        key="features_entities",
        persist_state="page",
        placeholder="any entity",
        help="What a feature describes: it has one value per apple, per orchard block... at any moment.",
    )
    shown = view.filter_catalogue(catalogue, search=search, tags=tags, owners=owners, entities=entities)
    st.markdown(f"**{view.count_sentence(shown, len(catalogue))}**")

    if shown.empty:
        st.info("No feature matches these filters. Clear the search box or remove a filter to see more.")
    else:
        rows = view.catalogue_rows(shown)
        # The status as a coloured label: a one-item list in a read-only multiselect column
        # (measured: a pandas Styler colouring the cells costs 70 ms per 1,000 rows; this, nothing).
        rows["Status"] = rows["Status"].map(lambda label: [label])
        table_key = f"features_table_{st.session_state.get(TABLE_ROUND, 0)}"
        shown_names = shown["name"].tolist()
        st.dataframe(
            rows,
            hide_index=True,
            width="stretch",
            # Every row visible up to about 20; a longer catalogue scrolls inside the table.
            height=min(35 * (len(rows) + 1) + 3, 738),
            key=table_key,
            on_select=lambda: _open_selected_row(table_key, shown_names),
            selection_mode="single-row",
            column_config={
                "Status": st.column_config.MultiselectColumn(
                    "Status",
                    options=[view.status_label(status.word) for status in Status],
                    color=[theme.PALETTE[status.colour] for status in Status],
                    help="Is the newest value as recent as the feature expects? ● Healthy: yes. ▲ Watch: late, "
                    "up to twice the expected time. ■ Act: later still. ○ Not checked: no values computed yet.",
                ),  # fmt: skip
                "Description": st.column_config.TextColumn("Description", width="large"),
                "Computed as": st.column_config.TextColumn(
                    "Computed as", help="A raw value per source row, or an aggregate over a trailing time window."
                ),
                "Tags": st.column_config.ListColumn("Tags"),
                "Newest value": st.column_config.TextColumn("Newest value", help="Time of the newest value (UTC)."),
                "Age": st.column_config.TextColumn("Age", help="How old the newest value is now."),
                "Expected every": st.column_config.TextColumn(
                    "Expected every",
                    help="How often new values should arrive: the feature's freshness_hours, else its dataset's, else 24 hours.",
                ),
            },
        )
        st.caption("Select a row, or pick a name below, to open a feature: its definition, values and the models that use it.")
        picker = "features_open"
        st.session_state[picker] = None
        st.selectbox(
            "Open a feature", shown_names, index=None, key=picker, placeholder="Choose a feature…", on_change=_open_picked, args=(picker,)
        )

    entity_table = state.cached(list_entities, warehouse)
    with st.expander(f"Entities: what the features describe ({len(entity_table)})"):
        st.dataframe(
            [
                {"Entity": row.name, "Key column": row.key_column, "Description": row.description, "Features": int(row.features)}
                for row in entity_table.itertuples(index=False)
            ],
            hide_index=True,
            width="stretch",
        )
        st.caption("Each feature has one value per key of its entity at any moment; a training set looks values up by key and time.")
    st.stop()

# --- One feature -----------------------------------------------------------------------------
overview = state.cached(view.overview, warehouse, registry, requested, now)
info, freshness, lineage, statistics = overview.info, overview.freshness, overview.lineage, overview.statistics
definition = info.definition

back, switch = st.columns([1, 3], vertical_alignment="bottom")
back.button("All features", icon=":material/arrow_back:", key="features_back", on_click=_open, args=(None,))
picker = "features_switch"
st.session_state[picker] = requested
switch.selectbox("Open another feature", names, key=picker, on_change=_open_picked, args=(picker,))

st.header(definition.name, anchor=False)
theme.status_badge(freshness.status)
st.markdown(view.freshness_sentence(freshness, info))
if definition.description:
    st.markdown(definition.description)
owner = definition.owner or "not set"
tags = ", ".join(definition.tags) or "none"
st.caption(f"Owner: {owner} · Tags: {tags} · Entity: {definition.entity} · Type: {definition.value_type}")

st.subheader("Definition")
st.markdown(view.sentence_case(info.summary))
st.code(view.definition_text(info), language="yaml")
st.caption(
    f"Defined in `features/{info.source_file or '?'}` under the home folder; applied by {info.applied_by or 'unknown'} "
    f"on {view.format_time(info.applied_at)}; values last computed {view.format_time(info.materialized_at)}."
)

st.subheader("Values")
if statistics is None:
    st.info(
        f"{definition.name} has no values yet: it is new, or its definition changed. "
        "Compute them with `mlops-app features materialize`; the statistics and charts appear here then."
    )
elif statistics.rows == 0:
    st.info(
        f"{definition.name} was computed, but dataset {definition.dataset} has no rows with a value available yet. "
        "Deliver data with `mlops-app ingest`, then run `mlops-app features materialize`."
    )
else:
    coverage, distribution = view.statistic_tiles(statistics, definition)
    for tiles in (coverage, distribution):
        # Five columns for every row, so tiles line up and long values keep their room.
        for column, tile in zip(st.columns(5), tiles, strict=False):
            column.metric(tile.label, tile.value, help=tile.help)
    st.caption(view.values_caption(statistics, definition))
    histogram_column, trend_column = st.columns(2)
    with histogram_column:
        st.markdown("**Distribution**")
        if overview.histogram is not None and len(overview.histogram):
            st.plotly_chart(feature_charts.histogram_figure(overview.histogram, definition), width="stretch")
        st.caption(
            "How often each value occurs, over every stored value up to the newest one. "
            "A second peak or a long tail can mean a mixed or faulty source."
            if definition.value_type in ("number", "integer")
            else "The most frequent values and their share of all stored values."
        )
    with trend_column:
        st.markdown("**Over time**")
        if overview.trend is not None and len(overview.trend):
            st.plotly_chart(feature_charts.trend_figure(overview.trend, definition), width="stretch")
        st.caption(
            {
                "text": "Values stored per day (UTC). A gap means no data arrived that day.",
                "boolean": "Share of true values per day (UTC). A sudden step means the source or the world changed.",
            }.get(
                definition.value_type,
                "Daily average (line) and the day's smallest to largest value (band), by day in UTC. "
                "A sudden step means the source or the world changed: models trained before it may be off.",
            )
        )

st.subheader("Lineage")
source_column, models_column = st.columns(2)
with source_column:
    st.markdown("**Comes from**")
    navigation.link(
        "data_quality",
        f"Dataset {lineage.dataset}",
        query={"dataset": lineage.dataset},
        help="Open the dataset's deliveries and quality checks.",
    )
    columns = ", ".join(f"`{column}`" for column in lineage.columns)
    st.caption(
        f"Reads columns {columns}. One value per {lineage.entity} (key `{lineage.entity_column}`); "
        f"a row counts from its `{lineage.available_at_column}`."
    )
with models_column:
    st.markdown("**Used by**")
    usages = view.model_usages(lineage.models)
    st.markdown(view.lineage_sentence(usages, definition.name))
    for usage in usages:
        navigation.link("models", usage.model, query={"model": usage.model}, help="Open the model's versions and their results.")
        st.caption(usage.versions.capitalize() + (": serving today." if usage.serving else "."))
