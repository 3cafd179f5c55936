"""Data quality: is the data we receive fit to use? Verdict, checks, deliveries, and the tools to dig in."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import streamlit as st

from mlops_app import quality_view as view
from mlops_app import reports
from mlops_app.datasets import list_datasets
from mlops_app.errors import MlopsError, NotFoundError, PermissionDeniedError
from mlops_app.ingest import ingest_file, recheck_dataset
from mlops_app.quality import ChecksConfigError, checks_from_yaml, checks_path, checks_to_yaml, column_profile, load_checks, save_checks
from mlops_app.ui import quality_charts, state, theme

settings, warehouse = state.settings(), state.warehouse()
user = st.session_state["identity"]

st.title("Data quality")

names = list(state.cached(list_datasets, warehouse)["name"])
if not names:
    st.info(
        "No datasets yet, so there is nothing to check. Register one from a sample file with "
        "`mlops-app register-dataset NAME FILE`, then load deliveries with `mlops-app ingest NAME FILE`; "
        "or build the demo orchard with `mlops-app demo`."
    )
    st.stop()

_, warning = view.choose_dataset(st.query_params.get("dataset"), names)
if warning:
    st.warning(warning)
# Bound to ?dataset=..., so a link opens the dataset and picking another updates the link.
dataset = st.selectbox("Dataset", names, key="dataset", bind="query-params", width=420)

checks, checks_error = None, None
try:
    checks = load_checks(settings.home_path, dataset)
except ChecksConfigError as error:
    checks_error = str(error)
data = state.cached(view.load_page_data, warehouse, dataset, checks)
descriptions, labels = data.descriptions, data.batch_labels

# --- Verdict first -------------------------------------------------------------------------------
status, sentence = view.dataset_verdict(
    data.scorecard, data.batches, freshness_hours=data.dataset.freshness_hours, last_event_at=data.last_event_at
)
theme.status_badge(status)
st.markdown(sentence)
st.caption(f"{data.dataset.description} Owner: {data.dataset.owner or 'not set'}. Source: {data.dataset.source or 'not recorded'}.")
if checks_error:
    st.error(f"{checks_error} Until an admin fixes it (Checks file tab below), new deliveries cannot be checked.")

st.subheader("What happened lately")
problems = data.problems
if data.batches.empty:
    st.info(f"No deliveries yet. Load a file in *Load data* below, or run `mlops-app ingest {dataset} FILE`.")
elif not problems:
    st.success(f"Nothing to report: the last {min(len(data.batches), view.PROBLEM_LOOKBACK)} deliveries were loaded without problems.")
for problem in problems:
    st.markdown(
        f":{problem.status.colour}-badge[{theme.STATUS_ICONS[problem.status]} {problem.label}] "
        f"**{view.escape_markdown(view.format_time(problem.received_at))} · {view.escape_markdown(problem.source)}**: "
        f"{view.escape_markdown(problem.sentence)}"
    )

# --- Scorecard -----------------------------------------------------------------------------------
st.subheader("Checks")
if data.scorecard.empty:
    st.info("No checks have run yet: they run on every delivery. Load a file (Load data tab below), or declare checks first (Checks file tab).")
else:
    st.dataframe(
        data.scorecard_rows,
        hide_index=True,
        width="stretch",
        height=38 + 35 * len(data.scorecard),
        column_config={
            "Status": st.column_config.TextColumn("Status", help="Result of the check on the latest data: Pass, Warn (loaded, but worth a look) or Fail (rows set aside or file rejected).", width="small"),
            "Check": st.column_config.TextColumn("Check", help="What the check demands, in the words of the person who declared it.", width="large"),
            "Latest result": st.column_config.TextColumn("Latest result", help="What the check found on the latest delivery: how many rows broke the rule, and their share of the delivery.", width="medium"),
            "Problems lately": st.column_config.TextColumn("Problems lately", help=f"In how many of the last {view.PROBLEM_LOOKBACK} deliveries the check failed or warned."),
            "Ran on": st.column_config.TextColumn("Ran on", help="The delivery (received time and file) the latest result comes from."),
            "Check name": st.column_config.TextColumn("Check name", help="The check's name in the checks file."),
        },
    )
    st.caption(
        "One row per declared check, worst first. **Fail**: an error check found problems, so rows were set aside "
        "(quarantined) or the file was rejected. **Warn**: a warning check found something; the data was loaded. "
        "**Not checked**: the check could not run (for example no earlier data to compare with)."
    )

st.subheader("Trend of each check")
if data.points.empty:
    st.info("The trend appears after the first delivery has been checked.")
else:
    order = [view.check_label(descriptions.get(name) or name) for name in data.scorecard_rows["Check name"]]
    st.plotly_chart(quality_charts.status_strip(data.points, order), width="stretch", config={"displayModeBar": False})
    st.caption(
        f"Each mark is the result of one check (row) on one delivery (column), for the last {data.history.batch_id.nunique()} "
        "runs: green circle pass, amber triangle warn, red cross fail, grey ring not checked. "
        "Hover a mark for the file and the rows affected. A row of crosses means a problem that keeps coming back."
    )

st.subheader("Deliveries")
if data.batches.empty:
    st.info(f"No deliveries yet. Load a file in *Load data* below, or run `mlops-app ingest {dataset} FILE`.")
else:
    st.dataframe(
        data.deliveries,
        hide_index=True,
        width="stretch",
        height=min(38 + 35 * len(data.batches), 420),
        column_config={
            "Received": st.column_config.TextColumn("Received", help="When the file arrived (ISO date and time, with the time zone)."),
            "Rows": st.column_config.NumberColumn("Rows", help="Rows in the file.", format="localized"),
            "Accepted": st.column_config.NumberColumn("Accepted", help="Rows loaded into the dataset and used downstream.", format="localized"),
            "Quarantined": st.column_config.NumberColumn("Quarantined", help="Rows set aside because they failed an error check; see Failing rows below.", format="localized"),
            "Warned": st.column_config.NumberColumn("Warned", help="Rows loaded with a warning flag (they broke only warning checks).", format="localized"),
            "Status": st.column_config.TextColumn("Status", help="Accepted, accepted with warnings, partly quarantined, rejected (nothing loaded) or a duplicate of a file already loaded."),
            "Reason": st.column_config.TextColumn("Reason", width="large"),
        },
    )
    st.caption(f"Newest first; the last {len(data.batches)} deliveries. A rejected file loaded nothing: fix it and send it again.")

# --- Tools to dig in -----------------------------------------------------------------------------
st.subheader("Dig deeper")
drill_batch, focus = None, []
rows_tab, profile_tab, report_tab, load_tab, checks_tab = st.tabs(
    ["Failing rows", "Column profile", "Full data report", "Load data", "Checks file"]
)

with rows_tab:
    choices = data.drilldown
    if not choices:
        st.success(f"No rows broke a row check in the last {view.PROBLEM_LOOKBACK} deliveries, so there is nothing to inspect.")
    else:
        left, right = st.columns(2)
        drill_batch = left.selectbox("Delivery", list(choices), format_func=lambda b: labels.get(b, b), key=f"dq_drill_batch_{dataset}")
        drill_check = right.selectbox(
            "Check", choices[drill_batch], format_func=lambda c: descriptions.get(c) or c, key=f"dq_drill_check_{dataset}_{drill_batch}"
        )
        run = data.history[(data.history.batch_id == drill_batch) & (data.history.check_name == drill_check)].iloc[-1]
        rows = state.cached(view.failing_rows_sample, warehouse, dataset, drill_batch, drill_check)
        card_row = data.scorecard[data.scorecard.check_name == drill_check]
        focus = str(card_row.column_name.iloc[0]).split(", ") if not card_row.empty and card_row.column_name.notna().iloc[0] else []
        shown = f"all {len(rows):,}" if len(rows) >= int(run.failed_rows) else f"the first {len(rows):,}"
        st.markdown(
            view.escape_markdown(view.affected_rows_text(run.failed_rows, run.total_rows, run.status, descriptions.get(drill_check)))
            + f". The table shows {shown}."
        )
        table = view.failing_rows_table(rows, focus)
        st.dataframe(table, hide_index=True, width="stretch", height=min(38 + 35 * len(table), 420))
        st.download_button(
            "Download these rows (CSV)",
            view.csv_for_download(table),
            file_name=f"{dataset}_{drill_check}_{drill_batch}.csv",
            mime="text/csv",
            icon=":material/download:",
            key="dq_download_rows",
        )
        st.caption(
            "**Quarantined (not loaded)**: the row broke an error check and was set aside; it is not used for training or "
            "scoring. **Loaded with a warning**: the row broke only a warning check and is in the dataset, flagged. "
            "Send the corrected rows as a new file to load them."
        )

with profile_tab:
    columns = list(data.column_types)
    if not columns:
        st.info(f"{dataset} has no stored rows yet; a profile appears after the first delivery is loaded.")
    else:
        column_help = {column.name: column.description for column in data.dataset.columns}
        focus_column = focus[0] if focus and focus[0] in columns else columns[0]
        loaded = data.loaded_batches
        left, right = st.columns(2)
        column = left.selectbox(
            "Column", columns, index=columns.index(focus_column), key=f"dq_profile_column_{dataset}",
            format_func=lambda c: f"{c} — {column_help[c]}" if column_help.get(c) else c,
        )
        profile_batch = right.selectbox(
            "Rows", [None, *loaded], key=f"dq_profile_batch_{dataset}",
            format_func=lambda b: "All stored rows" if b is None else "Delivery " + labels.get(b, b),
            help="All rows loaded into the dataset, or one delivery as it arrived (its loaded and quarantined rows).",
        )
        try:
            profile = state.cached(column_profile, warehouse, dataset, column, profile_batch)
        except NotFoundError as error:
            st.warning(str(error))
        else:
            tiles = view.profile_metrics(profile)
            for slot, tile in zip(st.columns(len(tiles)), tiles, strict=True):
                slot.metric(tile.label, tile.value, help=tile.help)
            if profile.histogram.empty and profile.top_values.empty:
                st.caption("No chart for this column type: the tiles above say what there is to know.")
            else:
                st.plotly_chart(quality_charts.histogram(profile, column), width="stretch", config={"displayModeBar": False})
                st.caption(
                    "How the values are spread: each bar counts the rows whose value falls in its range. "
                    "A spike at 0 or at one value usually means a broken sensor; a second hump, a mix-up of units or sources."
                    if not profile.histogram.empty
                    else "The most frequent values and how many rows have each. An unexpected value here is a typo or a new category."
                )

with report_tab:
    st.markdown(
        "Evidently's data summary of one delivery: every column's statistics, missing values and distributions in one "
        "document you can keep or send. It is built on request, from a sample of at most "
        f"{reports.DEFAULT_MAX_ROWS:,} rows, and saved in the home's reports folder."
    )
    loaded = data.loaded_batches
    if not loaded:
        st.info("A report needs a loaded delivery; none is loaded yet.")
    else:
        report_batch = st.selectbox(
            "Delivery", loaded, index=loaded.index(drill_batch) if drill_batch in loaded else 0,
            format_func=lambda b: labels.get(b, b), key=f"dq_report_batch_{dataset}",
        )
        try:
            path = reports.report_path(settings.reports_path, dataset, report_batch)
            saved = reports.saved_report(settings.reports_path, dataset, report_batch)
        except MlopsError as error:
            st.warning(str(error))
            path = None
        if path is not None:
            if saved:
                st.caption(f"Saved on {view.format_time(saved.saved_at)} ({saved.size_bytes / 1e6:.1f} MB); it opens without recomputing.")
            label = "Open the saved report" if saved else "Build the report"
            if st.button(label, icon=":material/description:", key="dq_report_open_button"):
                try:
                    with st.spinner("Building the report: about 10 to 30 seconds the first time..." if not saved else "Opening the report..."):
                        path = reports.data_summary_report(warehouse, dataset, report_batch, settings.reports_path)
                except MlopsError as error:
                    st.error(str(error))
                else:
                    st.session_state["dq_open_report"] = str(path)
                    st.rerun()
            if st.session_state.get("dq_open_report") == str(path) and path.is_file():
                left, right = st.columns([1, 3])
                left.download_button("Download the report (HTML)", path.read_bytes(), file_name=f"{dataset}_{path.name}",
                                     mime="text/html", icon=":material/download:", key="dq_report_download")
                # An open report travels to the browser on every rerun (megabytes), so it can be closed.
                if right.button("Close the report", icon=":material/close:", key="dq_report_close"):
                    del st.session_state["dq_open_report"]
                    st.rerun()
                # Safe to embed: the report's sample cannot carry markup (mlops_app.reports explains).
                st.iframe(path, height=900)

with load_tab:
    # An action's outcome is kept across the rerun that refreshes the page's data.
    if flash := st.session_state.pop("dq_flash_load", None):
        getattr(st, flash[0])(flash[1])
    refusal = view.permission_note(user, "ingest_data", "load deliveries or re-run checks")
    st.markdown(
        f"Load a delivery file (CSV or Parquet, up to {settings.max_upload_mb:,} MB here; bigger files through "
        f"`mlops-app ingest {dataset} FILE`). It is checked like every delivery: rows failing an error check are "
        "quarantined, a file missing required columns is rejected, and the same file sent twice is recognised."
    )
    uploaded = st.file_uploader("Delivery file", type=["csv", "parquet"], disabled=refusal is not None, key=f"dq_upload_{dataset}")
    if refusal:
        st.info(refusal, icon=":material/lock:")
    if st.button("Check and load this file", type="primary", disabled=uploaded is None or refusal is not None, key="dq_ingest"):
        folder = settings.home_path / "uploads"
        folder.mkdir(parents=True, exist_ok=True)
        try:
            with tempfile.TemporaryDirectory(dir=folder) as scratch:
                target = Path(scratch) / view.upload_file_name(uploaded.name)
                with target.open("wb") as handle:
                    shutil.copyfileobj(uploaded, handle)
                result = ingest_file(
                    warehouse, dataset, target, identity=user, home=settings.home_path, source_name=uploaded.name[:200],
                    raise_on_reject=False, max_file_bytes=settings.max_ingest_mb * 1024 * 1024,
                )
        except MlopsError as error:  # PermissionDeniedError included: the library decides, the page explains
            st.error(str(error))
        else:
            st.session_state["dq_flash_load"] = (view.ingest_outcome_level(result.status, result.warned_rows), result.message)
            st.rerun()
    st.divider()
    st.markdown(
        "Re-run the checks on the rows already stored, for example after changing the checks file. "
        "Nothing is moved or deleted; the results appear in the scorecard and the trend as a re-check."
    )
    if st.button("Re-run checks on stored data", icon=":material/refresh:", disabled=refusal is not None, key="dq_recheck"):
        try:
            with st.spinner("Checking the stored rows..."):
                recheck = recheck_dataset(warehouse, dataset, identity=user, home=settings.home_path)
        except MlopsError as error:
            st.error(str(error))
        else:
            st.session_state["dq_flash_load"] = (view.recheck_outcome_level([r.status for r in recheck.results]), recheck.message)
            st.rerun()

with checks_tab:
    if flash := st.session_state.pop("dq_flash_checks", None):
        getattr(st, flash[0])(flash[1])
    editor_refusal = view.permission_note(user, "edit_checks", "edit the checks")
    text = checks_to_yaml(checks) if checks is not None else checks_path(settings.home_path, dataset).read_text(encoding="utf-8")
    st.markdown(
        f"The checks of {dataset}, as declared in `checks/{dataset}.yaml` under the home. They run on every delivery; "
        "`severity: error` quarantines failing rows (or rejects the file), `severity: warn` only flags them."
    )
    if checks is not None and not checks.checks:
        st.info("No checks are declared yet: every delivery is only checked for being readable. An admin can write them here.")
    edited = st.text_area("Checks (YAML)", text, height=420, disabled=editor_refusal is not None, key=f"dq_checks_yaml_{dataset}")
    if editor_refusal:
        st.info(editor_refusal, icon=":material/lock:")
    if st.button("Save checks", type="primary", disabled=editor_refusal is not None, key="dq_save_checks"):
        try:
            saved_to = save_checks(
                settings.home_path, checks_from_yaml(edited, dataset=dataset), identity=user,
                dataset=data.dataset, column_types=data.column_types or None,
            )
        except (ChecksConfigError, PermissionDeniedError) as error:
            st.error(str(error))
        else:
            st.session_state["dq_flash_checks"] = (
                "success",
                f"Saved the checks to {saved_to}. They apply to the next delivery; use *Re-run checks on stored data* "
                "(Load data tab) to judge the stored rows now.",
            )
            st.rerun()
