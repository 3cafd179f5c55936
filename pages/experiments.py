"""Experiments: the runs of a search, compared side by side; the winner's holdout results; registering its model.

Deep link: /experiments?experiment=NAME&runs=ID1,ID2. The link is the one record of what is
shown: widgets that change the experiment or the runs write it, then the page reruns.
"""

from __future__ import annotations

import hashlib

import streamlit as st

from mlops_app import experiments_view as view
from mlops_app.errors import MlopsError
from mlops_app.experiments import METRIC_PREFIX, RunFilter, list_experiments, metric_curves, parse_filters, register_run_model
from mlops_app.tracking import RUN_STATUSES
from mlops_app.ui import experiment_charts as charts
from mlops_app.ui import navigation, state, theme

POINTS_LIMIT = 1000  # runs drawn in the overview charts; more lines are unreadable and slow the browser


def _key(*parts: object) -> str:
    """A widget key that changes with ``parts``, so a widget whose default moved starts afresh."""
    return hashlib.sha1(repr(parts).encode()).hexdigest()[:16]


def _set_link(name: str, value: str | None) -> None:
    if value is None:
        if name in st.query_params:
            del st.query_params[name]
    elif st.query_params.get(name) != value:
        st.query_params[name] = value


warehouse, registry = state.warehouse(), state.registry()
user = st.session_state["identity"]
experiments = state.cached(list_experiments, warehouse)

st.title("Experiments")
if experiments.empty:
    st.info(
        "No experiments yet. Run an AutoML search with "
        "`mlops-app train --dataset DATASET --target COLUMN --experiment NAME`, or build the demo with `mlops-app demo`. "
        "Each configuration it tries appears here as a run, and the winner can be registered from this page."
    )
    st.stop()

# --- What the link asks for ---------------------------------------------------------------
link = view.parse_run_ids(st.query_params.get(view.RUNS_PARAM))
picked_explicitly = view.RUNS_PARAM in st.query_params
linked, missing = state.cached(view.compare_existing, warehouse, tuple(link.ids))
names = experiments["name"].tolist()
experiment, experiment_problem = view.choose_experiment(
    names, st.query_params.get(view.EXPERIMENT_PARAM), linked.runs["experiment"].iloc[0] if linked is not None else None
)
for problem in (experiment_problem, view.link_warning(link, missing)):
    if problem:
        st.warning(problem, icon=":material/link_off:")
selected = linked.runs["run_id"].tolist() if linked is not None else []
_set_link(view.EXPERIMENT_PARAM, experiment)
_set_link(view.RUNS_PARAM, view.format_run_ids(selected) if picked_explicitly else None)

chosen = st.selectbox(
    "Experiment",
    names,
    index=names.index(experiment),
    key=_key("experiment", experiment),
    help="An experiment groups the runs of one question, e.g. every model configuration a search tried for the apple grader.",
)
if chosen != experiment:
    _set_link(view.EXPERIMENT_PARAM, chosen)
    _set_link(view.RUNS_PARAM, None)  # the selection belonged to the other experiment
    st.rerun()

# --- Verdict ------------------------------------------------------------------------------
counts = experiments.set_index("name").loc[experiment].to_dict()
summary = state.cached(view.experiment_summary, warehouse, experiment)
keys, winners, winner, metric = summary.keys, summary.winners, summary.winner, summary.metric
# The table's default view: read once, cached, for the verdict here and the table below.
first_page = state.cached(
    view.fetch_runs_page, warehouse, experiment, summary.default_sort, view.best_first(summary.default_sort), (), 1, view.DEFAULT_PAGE_SIZE
)
best = view.best_runs(first_page.rows, metric)
status, sentence = view.experiment_verdict(experiment, counts, metric, best.iloc[0].to_dict() if not best.empty else None, winner)
theme.status_badge(status)
st.markdown(sentence)

tiles = st.columns([2, 3, 3, 2])
tiles[0].metric(
    "Runs",
    f"{int(counts['runs']):,}",
    help=f"{int(counts['finished']):,} finished, {int(counts['failed']):,} failed, {int(counts['running']):,} running. "
    "A run is one training attempt with its settings and scores.",
)
if metric:
    label = view.describe_metric(metric)
    reference = winner if winner is not None else (best.iloc[0].to_dict() if not best.empty else {})
    searched = reference.get(METRIC_PREFIX + metric)
    tiles[1].metric(
        f"{label.label} in the search" if winner else f"Best {view.in_sentence(label.label)}",
        view.format_metric(metric, searched),
        help=label.help or "The metric runs are judged by.",
    )
    if winner is not None:
        holdout = winner.get(f"{METRIC_PREFIX}holdout_{metric}")
        tiles[2].metric(
            f"{label.label} on the holdout",
            view.format_metric(metric, holdout),
            delta=view.metric_delta(metric, holdout, searched),
            delta_color="normal" if label.higher_is_better is not False else "inverse",
            help="Measured once, after the search, on the latest data it never saw: the honest estimate for service. "
            "The delta compares it with the score the search chose it on.",
        )
tiles[3].metric("Failed runs", f"{int(counts['failed']):,}", help="Runs that stopped with an error; filter by `status = failed` to read it.")

# --- Runs table ---------------------------------------------------------------------------
st.subheader("Runs")
sort_labels = view.sort_options(keys["params"], keys["metrics"])
left, middle, right, far = st.columns([4, 4, 3, 2], vertical_alignment="bottom")
filter_text = left.text_input(
    "Filter",
    key=f"filter:{experiment}",
    placeholder="e.g. metric.f1 >= 0.9 and param.family = extra_trees",
    help="Conditions joined by `and`: `metric.NAME >= 0.9`, `param.NAME = value` (or `contains`), `tag.role = winner`, "
    "`status = failed`, `date >= 2026-07-01`. Filtering happens in the warehouse, over every run.",
)
statuses = middle.pills(
    "Status", RUN_STATUSES, selection_mode="multi", format_func=view.STATUS_WORDS.get, key=f"status:{experiment}",
    help="Show only runs in these states; none picked shows all.",
)  # fmt: skip
sort_by = right.selectbox(
    "Sort by", list(sort_labels), index=list(sort_labels).index(summary.default_sort), format_func=sort_labels.get,
    key=f"sort:{experiment}", help="Sorted in the warehouse over every run, not only this page. Runs without the value come last.",
)  # fmt: skip
reverse = far.toggle("Reverse", key=f"reverse:{experiment}", help="Best or newest first by default; reverse to see the worst or oldest.")
descending = view.best_first(sort_by) != reverse

filters: tuple[RunFilter, ...] = ()
try:
    filters = tuple(parse_filters(filter_text))
except MlopsError as error:
    st.error(str(error))
if statuses and len(statuses) < len(RUN_STATUSES):
    filters += (RunFilter("status", None, "in", tuple(statuses)),)
page_size = st.session_state.get(f"size:{experiment}", view.DEFAULT_PAGE_SIZE)
page_key = _key("page", experiment, filters, sort_by, descending, page_size)
page = st.session_state.get(page_key, 1)
try:
    result = state.cached(view.fetch_runs_page, warehouse, experiment, sort_by, descending, filters, page, page_size)
except MlopsError as error:  # a filter that reads but cannot apply, e.g. `metric.f1 contains 9`
    st.error(str(error))
    filters = tuple(item for item in filters if item.kind == "status")
    page_key = _key("page", experiment, filters, sort_by, descending, page_size)
    page = 1
    result = state.cached(view.fetch_runs_page, warehouse, experiment, sort_by, descending, filters, page, page_size)
pages = view.page_count(result.total, page_size)
if page > pages:  # the runs shrank under a remembered page number
    page = st.session_state[page_key] = pages
    result = state.cached(view.fetch_runs_page, warehouse, experiment, sort_by, descending, filters, page, page_size)

# Compared: the runs the link names, or until the user picks some, the best few trials.
compared = selected if picked_explicitly else view.default_comparison(best)
frame, columns = view.runs_table(result.rows, metric)
page_ids = frame["run_id"].tolist()
event = st.dataframe(
    frame,
    key=_key("table", experiment, filters, sort_by, descending, page, page_size, compared),
    on_select="rerun",
    selection_mode="multi-row",
    selection_default={"selection": {"rows": [i for i, run_id in enumerate(page_ids) if run_id in compared]}},
    hide_index=True,
    column_order=[column.column for column in columns],
    column_config=charts.runs_column_config(columns),
    placeholder="",
    height=charts.table_height(len(frame), most=15),
    width="stretch",
)
ticked = view.merge_selection(compared, page_ids, [page_ids[i] for i in event.selection.rows])
if ticked != compared:
    _set_link(view.RUNS_PARAM, view.format_run_ids(ticked))
    st.rerun()
pager, caption, sizes = st.columns([3, 4, 2], vertical_alignment="center")
with pager:
    st.pagination(pages, key=page_key)
caption.caption(
    f"{view.page_caption(page, page_size, result.total)} · tick rows to compare them below. "
    "Metric columns show each run's final value."
)
sizes.selectbox("Runs per page", view.PAGE_SIZES, index=view.PAGE_SIZES.index(page_size), key=f"size:{experiment}")
if result.total == 0 and filters:
    st.info("No run matches these filters. Loosen the filter text or the status, or clear them to see every run.")

# --- Comparison ---------------------------------------------------------------------------
st.subheader("Compare runs")
comparison, _ = state.cached(view.compare_existing, warehouse, tuple(compared)) if compared else (None, ())
names_by_id = dict(zip(frame["run_id"], frame["name"], strict=True))
if comparison is not None:
    names_by_id.update(view.run_labels(comparison.runs))
options = compared + [run_id for run_id in page_ids if run_id not in compared]
picked = st.multiselect(
    "Runs to compare",
    options,
    default=compared,
    format_func=lambda run_id: names_by_id.get(run_id, run_id),
    key=_key("picker", experiment, compared, page_ids),
    help="Add runs from this page of the table, or remove them; the link in the address bar follows, so it can be shared.",
)
if picked != compared:
    _set_link(view.RUNS_PARAM, view.format_run_ids(picked))
    st.rerun()
if not picked_explicitly and compared:
    st.caption(f"Until you pick runs, the best {len(compared)} trials on {view.in_sentence(view.describe_metric(metric).label)} are compared.")

if comparison is None:
    st.info(
        "Pick runs to compare: tick rows in the table above or choose them here. "
        "A link ending in `?runs=ID1,ID2` opens a comparison directly."
    )
else:
    labels = view.run_labels(comparison.runs)
    st.markdown(view.comparison_sentence(comparison, labels, metric))
    only_differing = st.toggle("Only settings that differ", key=f"differing:{experiment}")
    params = view.params_table(comparison, labels, only_differing)
    st.dataframe(charts.style_params(params), height=charts.table_height(len(params)), width="stretch")
    st.caption(
        "Settings (hyperparameters) of each run; rows marked ≠ and tinted amber differ between the runs. "
        f"'{view.NOT_SET}': the run's model has no such setting."
    )
    table = view.metrics_table(comparison, labels, metric)
    st.dataframe(charts.style_metrics(table.text, table.best), height=charts.table_height(len(table.text)), width="stretch")
    st.caption(
        "Final value of each metric. ★ and green mark the best value among these runs, judged by the direction in the "
        "row name. Plain names are measured on the validation period; (holdout) once on data no run saw; "
        "(cross-validation) as the mean over folds of the training period."
    )

    st.markdown("#### How the metric grew during training")
    curve_metric = st.selectbox(
        "Metric over steps",
        view.metric_order(keys["metrics"], first=metric),
        format_func=lambda key: view.describe_metric(key).label,
        key=f"curve:{experiment}",
    )
    curves = state.cached(metric_curves, warehouse, tuple(labels), curve_metric)
    if curves.empty or curves.groupby("run_id")["step"].nunique().max() < 2:
        st.info(
            f"These runs logged {view.in_sentence(view.describe_metric(curve_metric).label)} once, not step by step. "
            "A search logs its selection metric as the model grows; pick that one to see curves."
        )
    else:
        st.plotly_chart(charts.curves_figure(curves, curve_metric, labels), key=f"curves:{experiment}")
        st.caption(
            "Each point is the score after the model had grown to that size (trees, boosting rounds). "
            "A curve still climbing at the right edge suggests a bigger model could do better; one that falls means it started to overfit."
        )

# --- Every run at a glance ----------------------------------------------------------------
if metric:
    st.subheader("What drives the score")
    points = state.cached(view.fetch_points, warehouse, experiment, tuple(keys["params"]), tuple(keys["metrics"]), POINTS_LIMIT)
    colour_metric = st.selectbox(
        "Score to explain",
        view.metric_order(keys["metrics"], first=metric),
        format_func=lambda key: view.describe_metric(key).label,
        key=f"colour:{experiment}",
        help="The last axis and the colour of the lines.",
    )
    axes = st.multiselect(
        "Settings shown as axes",
        keys["params"],
        default=view.varying_params(points, keys["params"]),
        key=f"axes:{experiment}",
        help="By default the settings that take more than one value among the runs.",
    )
    st.plotly_chart(charts.parallel_figure(points, axes, colour_metric), key=f"parallel:{experiment}")
    st.caption(
        "One line per run, through its settings to its score (darker blue is better). Drag along an axis to keep only "
        f"the runs in a range. '{view.NOT_SET}' marks runs whose model has no such setting."
        + (f" Showing the {POINTS_LIMIT:,} most recent runs." if int(counts["runs"]) > POINTS_LIMIT else "")
    )
    x_default, y_default = view.default_scatter_axes(keys["metrics"], metric)
    metric_choices = view.metric_order(keys["metrics"], first=metric)
    x_column, y_column = st.columns(2)
    x_metric = x_column.selectbox(
        "Horizontal axis", metric_choices, index=metric_choices.index(x_default),
        format_func=lambda key: view.describe_metric(key).label, key=f"x:{experiment}",
    )  # fmt: skip
    y_metric = y_column.selectbox(
        "Vertical axis", metric_choices, index=metric_choices.index(y_default),
        format_func=lambda key: view.describe_metric(key).label, key=f"y:{experiment}",
    )  # fmt: skip
    st.plotly_chart(charts.scatter_figure(points, x_metric, y_metric, compared, names_by_id), key=f"scatter:{experiment}")
    st.caption(
        "Every run as a point; the runs being compared are coloured and named in the legend, the others grey. "
        "With the cross-validation score across and the validation score up, a run far above the others' trend "
        "did better in the search than over time: trust its lead less."
    )

# --- Holdout results of a run -------------------------------------------------------------
st.subheader("Holdout results")
candidates = winners["run_id"].tolist() + [run_id for run_id in compared if run_id not in set(winners["run_id"])]
if not candidates:
    st.info(
        "No run of this experiment was tested on a holdout. `mlops-app train` tests the winner of its search once, "
        "on the latest data, and stores per-group results, a confusion matrix and feature importance here."
    )
    st.stop()
names_by_id.update(dict(zip(winners["run_id"], winners["name"], strict=True)))
result_run = st.selectbox(
    "Run",
    candidates,
    format_func=lambda run_id: names_by_id.get(run_id, run_id),
    key=f"results_run:{experiment}",
    help="The winners of this experiment's searches (latest first), then the runs being compared.",
)
detail, results = state.cached(view.run_detail, warehouse, result_run)
holdout_metrics = (results.get("holdout") or {}).get("metrics") or {}
if not holdout_metrics:
    st.info("This run has no holdout results: a search tests only its winner, once, after choosing it.")
else:
    st.markdown(view.holdout_sentence(results, metric))
    shown = view.metric_order(holdout_metrics, first=metric)[:6]
    for column, key in zip(st.columns(3) * 2, shown, strict=False):
        label = view.describe_metric(key)
        column.metric(label.label, view.format_metric(key, holdout_metrics[key]), help=label.help or None)

    slice_metric = metric if metric in holdout_metrics else shown[0]
    slices = view.slices_table(results, slice_metric)
    st.markdown("#### By group")
    st.markdown(view.slices_sentence(slices, slice_metric))
    if not slices.empty:
        left, right = st.columns(2)
        left.plotly_chart(charts.slices_figure(slices, slice_metric), key=f"slices:{result_run}")
        right.dataframe(
            charts.style_slices(slices.assign(value=[view.format_metric(slice_metric, value) for value in slices["value"]])),
            hide_index=True,
            column_order=["Group", "Rows", "value", "Verdict"],
            column_config=charts.slices_column_config(slice_metric),
            height=charts.table_height(len(slices), most=14),
            width="stretch",
        )

    target = (results.get("model_inputs") or {}).get("target")
    left, right = st.columns(2)
    if results.get("confusion_matrix"):
        left.markdown("#### Decisions against reality")
        left.plotly_chart(charts.confusion_figure(results["confusion_matrix"], target), key=f"confusion:{result_run}")
        left.caption(view.confusion_sentence(results["confusion_matrix"], target))
    if results.get("calibration", {}).get("bins"):
        area = right if results.get("confusion_matrix") else left
        area.markdown("#### Can the scores be taken at face value?")
        area.plotly_chart(charts.calibration_figure(results["calibration"]), key=f"calibration:{result_run}")
        area.caption(view.calibration_caption(results))
    if results.get("feature_importance", {}).get("features"):
        st.markdown("#### What the model looks at")
        st.plotly_chart(charts.importance_figure(results["feature_importance"]), key=f"importance:{result_run}")
        st.caption(view.importance_caption(results["feature_importance"]))

# --- Register -----------------------------------------------------------------------------
st.subheader("Register this run's model")
registered_as = detail["tags"].get("registered_as")
if "model.path" not in detail["tags"]:
    st.info("This run saved no model, so there is nothing to register. A search saves the model of its winner only.")
    st.stop()
if registered_as:
    st.caption(f"Already registered as **{registered_as}**. Registering again adds another version.")
may_register = view.may_register(user)
model_name = st.text_input(
    "Model name",
    value=view.default_model_name(experiment),
    key=f"model_name:{result_run}",
    help="Lowercase letters, digits, '-' and '_'. An existing model gets a new version; a new name creates the model.",
)
if not may_register:
    st.caption(
        f":material/lock: You are signed in as a **{user.role}**: registering a model needs the reviewer role or higher. "
        "Ask an admin to add you to the reviewers."
    )
if st.button(
    "Register this run's model",
    key="register_run_model",
    type="primary",
    disabled=not may_register,
    help="Saves the run's model, its holdout metrics and settings as the next version in the model registry. "
    "It does not put the model into service: promotion is a separate, reviewed step.",
):
    try:
        version = register_run_model(warehouse, registry, result_run, model_name.strip(), user)
    except MlopsError as error:  # PermissionDeniedError included: the library checks the role, not this button
        st.error(str(error))
    else:
        st.success(f"Registered **{version.model}** version **{version.version}** from run {detail['run']['name']}.")
        navigation.link("models", f"Open {version.model} in the model registry", query={"model": version.model})
