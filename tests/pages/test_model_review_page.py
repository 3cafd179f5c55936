"""The Model review page (pages/model_review.py) run by AppTest over real homes.

Reads use the shared demo home; actions and share links (which write the audit log and the
share secret) use a tiny home of their own, built with the real registry and promotion code.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from streamlit.testing.v1 import AppTest

from mlops_app import promotion, sharing
from mlops_app.auth import Identity
from mlops_app.config import load_settings
from mlops_app.errors import PermissionDeniedError
from mlops_app.registry import Registry
from mlops_app.warehouse import Warehouse
from tests.pages.apptest import open_page

MODEL = "grader"
REVIEWER = Identity("rita@example.com", "Rita", "reviewer", "local")
ADMIN = Identity("ada@example.com", "Ada", "admin", "local")
VIEWER = Identity("vic@example.com", "Vic", "viewer", "local")
ACTION_BUTTONS = {"Approve", "Reject", "Override and approve", "Override only", "Request promotion", "Create share link"}


def build_tiny_home(home: Path) -> None:
    """A warehouse and a registry: version 1 champion, version 2 asked for with a failed gate (blocked)."""
    settings = load_settings({"MLOPS_APP_HOME": str(home)})
    warehouse = Warehouse.from_settings(settings)
    warehouse.migrate()
    registry = Registry(settings.registry_path, lock_timeout=20)
    estimator = LogisticRegression().fit(pd.DataFrame({"weight": [150.0, 160.0, 240.0, 250.0]}), [1, 1, 0, 0])
    slices = [{"column": "variety", "value": "gala", "rows": 120, "metrics": {"recall_bad": 0.85}}]
    for recall in (0.92, 0.80):
        registry.register_version(
            MODEL, estimator, actor=REVIEWER.email, metrics={"recall_bad": recall, "false_discard_rate": 0.03},
            input_schema=[{"name": "weight", "dtype": "DOUBLE"}], description="A test grader",
            extra={"key_metric": "recall_bad", "holdout_slices": slices, "targets": {"recall_bad": {"min": 0.9}}},
        )  # fmt: skip
    registry.set_alias(MODEL, promotion.CHAMPION, 1, actor=ADMIN.email, reason="first release", at=datetime(2026, 7, 1, tzinfo=UTC))
    promotion.request_promotion(settings, registry, warehouse, MODEL, 2, promotion.CHAMPION, REVIEWER, reason="Cheaper to run")


@pytest.fixture
def tiny_home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "tiny"
    build_tiny_home(home)
    monkeypatch.setenv("MLOPS_APP_HOME", str(home))
    return home


def _open(model: str | None, version: str | None, share: str | None = None) -> AppTest:
    return open_page("model_review", {"model": model, "version": version, "share": share})


def _text(at: AppTest) -> str:
    kinds = ("markdown", "caption", "info", "warning", "error", "success", "header", "subheader")
    return "\n".join(element.value for kind in kinds for element in getattr(at, kind))


def _buttons(at: AppTest) -> dict[str, bool]:
    """Button label -> enabled."""
    return {button.label: not button.disabled for button in at.button}


def _frame(at: AppTest, column: str) -> pd.DataFrame:
    """The first table with ``column`` (plain st.dataframe tables carry no key in AppTest)."""
    return next(frame.value for frame in at.dataframe if column in frame.value.columns)


def _registry(home: Path) -> Registry:
    return Registry(load_settings({"MLOPS_APP_HOME": str(home)}).registry_path)


def test_review_shows_verdict_card_results_gates_and_timeline(use_demo_home):
    at = _open("apple-grader", "3")
    assert at.title[0].value == "Model review" and at.header[0].value == "apple-grader version 3"
    text = _text(at)
    # Verdict first: the badge and the request's sentence open the page.
    assert at.markdown[0].value.endswith("Act]") and at.markdown[1].value.startswith("Blocked:")
    for heading in ("What it predicts", "For whom", "Intended use", "Limits", "How it was tested"):
        assert f"**{heading}**" in text
    metrics = _frame(at, "Compared with the champion")
    assert list(metrics.columns[:3]) == ["Metric", "This version", "Champion (version 2)"]
    caught = metrics[metrics["Metric"] == "Bad apples caught"].iloc[0]
    assert caught["Compared with the champion"] == "▼ worse" and caught["This version"].endswith("%")
    gates = [block.value for block in at.markdown if "[**✔ Passed**]" in block.value or "[**✖ Failed**]" in block.value]
    assert len(gates) == 5 and sum("✖ Failed" in gate for gate in gates) == 1
    failed = next(gate for gate in gates if "✖ Failed" in gate)
    assert failed.startswith(":red[") and "Holdout result at least the champion's" in failed and "vs champion" in failed
    assert "4 of 5 gates passed." in text
    assert not _frame(at, "Grouped by").empty
    timeline = _frame(at, "When")
    assert any("asked to make version 3 champion" in what for what in timeline["What"])
    assert "Not monitored yet" in text
    labels = {metric.label for metric in at.metric}
    assert "Bad apples caught" in labels
    # The local demo identity is an admin: a blocked request cannot simply be approved, only overridden.
    buttons = _buttons(at)
    assert buttons["Approve"] is False and buttons["Reject"] and buttons["Override and approve"]
    assert at.get("download_button")[0].proto.label == "Download the review (HTML)"


def test_review_of_the_champion_offers_a_request_and_missing_version_errors(use_demo_home):
    at = _open("apple-grader", "2")
    assert at.markdown[0].value.endswith("Healthy]")
    assert "Request promotion" in _buttons(at)
    at = _open("apple-grader", "99")
    assert "version 99" in at.error[0].value.lower() or "99" in at.error[0].value
    at = _open(None, None)
    assert "Pick a model and a version" in at.info[0].value


def test_admin_override_and_approve_moves_the_champion(tiny_home):
    at = _open(MODEL, "2")
    assert at.markdown[0].value.endswith("Act]")
    # Without a written reason the library refuses, and the page says why.
    at.button(key="model_review_override_approve").click().run()
    assert "written reason" in at.error[0].value
    assert _registry(tiny_home).get_model(MODEL).aliases["champion"] == 1
    at.text_area(key="model_review_override_reason").input("Cheaper to run; the drop is within noise for this season.")
    at.button(key="model_review_override_approve").click().run()
    assert not at.exception, at.exception
    assert _registry(tiny_home).get_model(MODEL).aliases["champion"] == 2
    assert "Overridden and approved: version 2 is now champion." in at.success[0].value
    assert at.markdown[0].value.endswith("Healthy]")
    events = [event["event"] for event in _registry(tiny_home).events(MODEL)]
    assert "gate_overridden" in events and "approved" in events


def test_reject_needs_a_comment_and_then_records_it(tiny_home):
    at = _open(MODEL, "2")
    at.button(key="model_review_reject").click().run()
    assert "needs a comment" in at.error[0].value
    at.text_area(key="model_review_reject_comment").input("Recall dropped 12 points; retrain first.")
    at.button(key="model_review_reject").click().run()
    assert "Rejected the request" in at.success[0].value
    request = promotion.list_requests(_registry(tiny_home), MODEL, version=2)[0]
    assert request.status == promotion.REJECTED and request.comment.startswith("Recall dropped")
    # With no pending request left, the same review offers a new request instead.
    assert "Request promotion" in _buttons(at)


def test_viewer_sees_no_enabled_action_and_a_forced_call_is_refused(tiny_home, monkeypatch):
    monkeypatch.setenv("MLOPS_APP_LOCAL_USER_ROLE", "viewer")
    at = _open(MODEL, "2")
    buttons = _buttons(at)
    assert ACTION_BUTTONS - {"Request promotion"} <= set(buttons)
    assert not any(enabled for label, enabled in buttons.items() if label in ACTION_BUTTONS)
    assert all(area.disabled for area in at.text_area)
    assert "Your role is viewer" in _text(at)
    settings = load_settings()
    registry = Registry(settings.registry_path)
    request = promotion.list_requests(registry, MODEL, status=promotion.PENDING)[0]
    with pytest.raises(PermissionDeniedError, match="viewer"):
        promotion.approve(settings, registry, MODEL, request.id, VIEWER, override_reason="let me")
    refused = [event for event in registry.events(MODEL) if event["event"] == "refused"]
    assert refused and refused[-1]["actor"] == VIEWER.email
    assert registry.get_model(MODEL).aliases["champion"] == 1


def test_create_share_link_shows_the_url(tiny_home):
    at = _open(MODEL, "2")
    at.button(key="model_review_share").click().run()
    code = at.code[0].value
    assert "/model_review?model=grader&version=2&share=" in code
    assert any(event["event"] == sharing.EVENT_SHARE_LINK_CREATED for event in _registry(tiny_home).events(MODEL))


def test_valid_share_link_shows_the_review_read_only(tiny_home):
    settings = load_settings()
    url = sharing.make_share_link(settings, MODEL, 2, identity=REVIEWER)
    token = url.split("share=")[1]
    at = _open(MODEL, "2", share=token)
    assert at.header[0].value == "grader version 2"
    text = _text(at)
    assert "Read-only review shared by rita@example.com" in text and "Model card" in text
    assert not ACTION_BUTTONS & set(_buttons(at)), _buttons(at)
    assert not at.text_area and not at.get("form")
    assert not _frame(at, "Compared with the champion").empty and not _frame(at, "When").empty
    assert "gates passed" in text


def test_tampered_or_foreign_share_link_shows_only_the_error(tiny_home):
    settings = load_settings()
    token = sharing.make_share_link(settings, MODEL, 2, identity=REVIEWER).split("share=")[1]
    tampered = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    at = _open(MODEL, "2", share=tampered)
    assert "This share link is not valid" in at.error[0].value
    assert not at.title and not at.header and not at.dataframe and not at.button
    at = _open(MODEL, "1", share=token)
    assert "opens the review of grader version 2, not grader version 1" in at.error[0].value
    assert not at.dataframe


def test_review_of_a_retrained_challenger_links_its_alert_and_the_live_monitoring(use_monitored_home):
    at = _open("apple-grader", "4")
    text = _text(at)
    assert "Retrained automatically after alert alert-" in text  # why this version exists (the request's reason)
    assert "Not monitored yet" not in text and "alert" in text
    links = {(link.proto.label, link.proto.page) for link in at.get("page_link")}
    assert ("Open the live monitoring of apple-grader", "monitoring") in links, links
