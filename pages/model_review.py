"""Model review: one version's card, results against the champion, gates, history and the decision.

`/model_review?model=NAME&version=N` is the review an approver decides on. With `&share=TOKEN`
(a link from "Create share link") it is shown read-only to anyone holding the link, also
without an account: the token is checked first, and then no action widget is drawn at all.
"""

from __future__ import annotations

import streamlit as st

from mlops_app import models_view as view
from mlops_app import promotion, sharing
from mlops_app.auth import ACTIONS, Identity
from mlops_app.errors import MlopsError
from mlops_app.metric_catalog import metric_info
from mlops_app.status import Status
from mlops_app.ui import navigation, state, theme

FLASH = "model_review_flash"

settings = state.settings()
warehouse, registry = state.warehouse(), state.registry()
model = st.query_params.get("model")
version = st.query_params.get("version")
token = st.query_params.get("share")
shared = token is not None

if shared:
    # A share link opens exactly the review it was made for, read-only; a bad one shows only why.
    try:
        payload = sharing.verify_share_token(settings, token, model or "", version or "", registry=registry)
    except MlopsError as error:
        st.error(str(error))
        st.stop()

st.title("Model review")

if not shared and (not model or not version):
    names = [info.name for info in registry.list_models()]
    if not names:
        st.info(
            "No models are registered yet, so there is nothing to review. Train and register one with "
            "`mlops-app train`, or build the demo orchard with `mlops-app demo`."
        )
        st.stop()
    st.info("Pick a model and a version to review, or open a review from the Models page.")
    left, right = st.columns(2)
    picked_model = left.selectbox("Model", names, index=names.index(model) if model in names else 0, key="model_review_pick_model")
    numbers = [item.version for item in registry.list_versions(picked_model)][::-1]
    picked_version = right.selectbox("Version", numbers, key="model_review_pick_version")
    if st.button("Open the review", key="model_review_open", type="primary", disabled=picked_version is None):
        st.query_params["model"], st.query_params["version"] = picked_model, str(picked_version)
        st.rerun()
    st.stop()

try:
    number = promotion.version_number(version)
    review = state.cached(promotion.build_review, registry, warehouse, model, number)
except MlopsError as error:
    st.error(f"{error} The link may be out of date.")
    if not shared:
        navigation.link("models", "Open the Models page", help="Every model and its versions.")
    st.stop()

# --- Verdict --------------------------------------------------------------------------------
st.header(review.card.title, anchor=False)
theme.status_badge(review.status)
st.markdown(review.verdict)
champion_text = f"version {review.champion.version}" if review.champion else "no champion"
st.caption(
    f"{review.model.description or review.card.summary} Compared with the champion: {champion_text}. Owner: {review.model.owner or 'not set'}."
)
if shared:
    st.info(
        f"Read-only review shared by {payload.issued_by}; this link works until {payload.expires_at:%Y-%m-%d %H:%M} UTC. "
        "Decisions are made by signed-in approvers."
    )
else:
    navigation.link("models", f"All versions of {review.model.name}", query={"model": review.model.name})
    st.caption("To approve, reject or request a promotion, go to Decide at the bottom of this page.")

# --- Model card -----------------------------------------------------------------------------
st.subheader("Model card")
card_column, facts_column = st.columns([3, 2])
with card_column:
    for section in review.card.sections:
        st.markdown(f"**{section.heading}**")
        if section.stated:
            st.markdown(section.text)
        else:
            st.caption(section.text)
with facts_column:
    st.dataframe(
        [{"Fact": name, "Value": value} for name, value in review.card.facts], hide_index=True, width="stretch", key="model_review_facts"
    )
    st.caption("Grey text in the card means the author left that part out; it says what the record shows instead.")

# --- Results --------------------------------------------------------------------------------
st.subheader(f"Holdout results compared with the champion ({champion_text})")
if not review.metrics:
    st.info("No holdout metrics were recorded for this version. Register it with its test results (`mlops-app train` does this).")
else:
    for column, row in zip(st.columns(4), review.metrics[:4], strict=False):
        higher = metric_info(row.key).higher_is_better
        delta = (row.change_text.replace("−", "-") + " vs champion") if row.change_text else None
        target = f" {row.target_text.capitalize()}." if row.target_text else ""
        column.metric(
            row.label, row.value_text, delta=delta, delta_color="normal" if higher else "inverse", help=f"{row.help}{target}".strip()
        )
    st.dataframe(view.metrics_table(review), hide_index=True, width="stretch", key="model_review_metrics")
    st.caption(
        "Measured on the holdout test: data the model never saw in training. ▲ better / ▼ worse says which way each "
        "result moved against the champion, whether higher or lower is the good direction."
    )

st.subheader("Results by group (slices)")
slices = view.slices_table(review)
if slices.empty:
    st.info("No per-group results were recorded for this version, so unequal treatment of groups cannot be checked here.")
else:
    label = metric_info(review.metric).label
    st.dataframe(slices, hide_index=True, width="stretch", key="model_review_slices")
    st.caption(
        f"{label} for each group of the holdout (orchard block, variety...). A group far below the overall result is "
        "served worse than the others: a bias the slices gate checks."
    )

# --- Gates ----------------------------------------------------------------------------------
st.subheader("Promotion gates")
failed = [gate for gate in review.gates if gate.status == promotion.FAILED]
if review.gates_are_preview:
    st.caption(
        "No promotion was requested for this version yet (or it was released before gates ran): "
        "these gates ran just now as a preview; nothing was recorded."
    )
if review.gates:
    st.markdown(
        f"**{len(review.gates) - len(failed)} of {len(review.gates)} gates passed.**"
        + (f" Failed: {', '.join(gate.title.lower() for gate in failed)}." if failed else "")
    )
    with st.container(border=True):
        for gate in review.gates:
            # Word and symbol with the colour, never colour alone; the detail carries the numbers.
            colour = view.GATE_COLOURS.get(gate.status, "gray")
            st.markdown(f":{colour}[**{view.gate_word(gate.status)}**] · **{gate.title}.** {gate.detail}")
    st.caption("Gates are the automatic checks a version must pass before it may serve. A failed gate blocks approval unless an admin overrides it with a written reason.")
else:
    st.info("No gates were run for this version.")
request = review.request
if request is not None:
    st.markdown(f"**Request {request.id}:** {request.summary}")
    st.caption(f"Reason given by {request.requested_by} on {view.format_moment(request.requested_at)}: “{request.reason}”")
    if request.override is not None:
        st.caption(f"Override by {request.override.by} on {view.format_moment(request.override.at)}: “{request.override.reason}”")

# --- Live monitoring --------------------------------------------------------------------------
st.subheader("Live monitoring (drift)")
drift_state, drift_sentence = state.cached(view.drift_status, warehouse, review.model.name)
theme.status_badge(drift_state)
st.markdown(drift_sentence)
st.caption("Drift: how far the data the model sees in service moved from what it was trained on. Read-only here; the monitoring job computes it.")
if not shared and drift_state is not Status.UNKNOWN:
    navigation.link(
        "monitoring", f"Open the live monitoring of {review.model.name}", query={"model": review.model.name},
        help="KPIs against their targets, drift per input, and the alerts (with the retraining they started), day by day.",
    )  # fmt: skip

# --- History --------------------------------------------------------------------------------
st.subheader("History")
history = view.timeline_table(review)
if history.empty:
    st.info("Nothing has happened to this version yet.")
else:
    st.dataframe(
        history,
        hide_index=True,
        width="stretch",
        key="model_review_timeline",
        column_config={"What": st.column_config.TextColumn("What", width="large")},
    )
    st.caption("Every step from the audit log, newest first, including refused attempts. Times in UTC.")

# --- Share and export -------------------------------------------------------------------------
st.subheader("Share and export")
if not shared:
    identity: Identity = st.session_state.get("identity") or Identity("anonymous", "Anonymous", "viewer", "share")
    share_key = f"model_review_share_url_{review.model.name}_{number}"
    can_share = identity.can(sharing.SHARE_ACTION)
    if st.button(
        "Create share link",
        key="model_review_share",
        icon=":material/link:",
        disabled=not can_share,
        help=f"A read-only link anyone can open without an account, valid for {settings.share_link_hours} hours. "
        + ("" if can_share else f"Needs the {ACTIONS['share_review']} role; yours is {identity.role}."),
    ):
        try:
            st.session_state[share_key] = sharing.make_share_link(settings, review.model.name, number, identity=identity, registry=registry)
        except MlopsError as error:
            st.error(str(error))
    if share_key in st.session_state:
        st.code(st.session_state[share_key], language=None)
        st.caption("Anyone with this link can read this review until it expires; they cannot act on it. Creating it was logged.")
st.download_button(
    "Download the review (HTML)",
    data=sharing.render_review_html(review),
    file_name=f"{review.model.name}-version-{number}-review.html",
    mime="text/html",
    key="model_review_download",
    icon=":material/download:",
    on_click="ignore",
    help="One self-contained file (no scripts, nothing fetched) to attach to a change ticket; opens offline.",
)

if shared:
    st.stop()

# --- Decide ---------------------------------------------------------------------------------
st.subheader("Decide")
if FLASH in st.session_state:
    st.success(st.session_state.pop(FLASH))


def _act(call, success: str) -> None:
    """Run a library action; its refusals (already logged by the library) show as an error."""
    try:
        call()
    except MlopsError as error:
        st.error(str(error))
        return
    st.session_state[FLASH] = success
    st.rerun()


role_note = {
    "viewer": "Your role is viewer: you can read this review but not act on it. Reviewers request promotions; approvers decide.",
    "reviewer": "Your role is reviewer: you can request a promotion. Approvers approve or reject; admins override failed gates.",
    "approver": "Your role is approver: you can approve or reject requests. Only admins can override failed gates.",
    "admin": "Your role is admin: you can request, approve, reject, and override failed gates with a written reason.",
}
st.caption(role_note.get(identity.role, ""))
name = review.model.name
if request is not None and request.status == promotion.PENDING:
    can_approve, can_reject, can_override = identity.can("approve_promotion"), identity.can("reject_promotion"), identity.can("override_gate")
    approve_column, reject_column = st.columns(2)
    with approve_column.form("model_review_approve_form"):
        st.markdown("**Approve**")
        if request.blocked:
            st.caption("Blocked: a gate failed. Approving needs an admin's override below (with a written reason), or reject it.")
        comment = st.text_area("Comment (optional)", key="model_review_approve_comment", disabled=not can_approve or request.blocked)
        if st.form_submit_button("Approve", type="primary", disabled=not can_approve or request.blocked, key="model_review_approve"):
            _act(
                lambda: promotion.approve(settings, registry, name, request.id, identity, comment=comment),
                f"Approved: version {request.version} is now {request.alias}.",
            )
    with reject_column.form("model_review_reject_form"):
        st.markdown("**Reject**")
        reject_comment = st.text_area(
            "Comment for the requester (required)", key="model_review_reject_comment", disabled=not can_reject,
            help="Say what must change before asking again.",
        )  # fmt: skip
        if st.form_submit_button("Reject", disabled=not can_reject, key="model_review_reject"):
            _act(
                lambda: promotion.reject(settings, registry, name, request.id, identity, comment=reject_comment),
                f"Rejected the request for version {request.version}; the requester sees your comment.",
            )
    if request.failed_gates and request.override is None:
        with st.form("model_review_override_form"):
            st.markdown("**Override the failed gates (admins)**")
            st.caption(
                "Record why the failed gates are acceptable. The reason is kept in the audit log with your name. "
                "“Override and approve” also moves the alias now; “Override only” leaves the approval to an approver."
            )
            reason = st.text_area("Written reason (required)", key="model_review_override_reason", disabled=not can_override)
            both, only = st.columns(2)
            if both.form_submit_button("Override and approve", type="primary", disabled=not can_override, key="model_review_override_approve"):
                _act(
                    lambda: promotion.approve(settings, registry, name, request.id, identity, override_reason=reason),
                    f"Overridden and approved: version {request.version} is now {request.alias}.",
                )
            if only.form_submit_button("Override only", disabled=not can_override, key="model_review_override_only"):
                _act(
                    lambda: promotion.override_gates(settings, registry, name, request.id, identity, reason=reason),
                    "Override recorded; an approver can now approve the request.",
                )
else:
    can_request = identity.can("request_promotion")
    serving = [alias for alias, held in review.model.aliases.items() if held == number]
    with st.form("model_review_request_form"):
        st.markdown("**Request a promotion**")
        st.caption(
            "The gates run when you ask and are stored with the request; an approver (not you) then decides."
            + (f" This version is already {', '.join(serving)}." if serving else "")
        )
        alias = st.selectbox(
            "Make this version", [promotion.CHAMPION, promotion.CHALLENGER], key="model_review_request_alias", disabled=not can_request,
            format_func=lambda item: view.ALIAS_WORDS.get(item, item),
        )  # fmt: skip
        request_reason = st.text_area(
            "Reason (required)", key="model_review_request_reason", disabled=not can_request,
            help="Why this version should serve: what it does better, what changed.",
        )  # fmt: skip
        if st.form_submit_button("Request promotion", type="primary", disabled=not can_request, key="model_review_request"):
            _act(
                lambda: promotion.request_promotion(settings, registry, warehouse, name, number, alias, identity, reason=request_reason),
                f"Requested: make version {number} {alias}. The gates ran; the result is above.",
            )
