"""The plain-language logic behind the Models and Model review pages (mlops_app.models_view)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from types import SimpleNamespace

import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from mlops_app import models_view as view
from mlops_app.config import load_settings
from mlops_app.registry import Registry
from mlops_app.status import Status
from mlops_app.warehouse import Warehouse


def _pending(model: str, version: int, *, blocked: bool) -> view.PendingItem:
    return view.PendingItem(model, version, "champion", "req-20260901-120000-abcdef", "rita@example.com", datetime(2026, 9, 1, tzinfo=UTC), blocked, "…")


def _model(name: str, champion: int | None = 1, pending=()) -> view.ModelOverview:
    aliases = {"champion": champion} if champion is not None else {}
    return view.ModelOverview(name, "", "", champion, None, aliases, 2, tuple(pending))


@pytest.mark.parametrize(
    ("models", "status", "start"),
    [
        ([], Status.UNKNOWN, "No models are registered yet."),
        ([_model("a"), _model("b")], Status.HEALTHY, "Nothing waits for a decision. All 2 models have a champion in service."),
        ([_model("a", pending=[_pending("a", 2, blocked=False)])], Status.WATCH, "1 request waits for approval (a version 2 to champion)"),
        ([_model("a", pending=[_pending("a", 2, blocked=True)])], Status.ACT, "Decision needed: the request to make a version 2 champion is blocked"),
        ([_model("a"), _model("b", champion=None)], Status.WATCH, "No request is waiting. 1 of 2 models have a champion in service; b has none yet."),
    ],
)
def test_portfolio_verdict(models, status, start):
    got_status, sentence = view.portfolio_verdict(models)
    assert got_status == status and sentence.startswith(start), sentence


def test_pending_item_words_never_rely_on_colour():
    assert (_pending("a", 2, blocked=True).word, _pending("a", 2, blocked=True).status) == ("Blocked", Status.ACT)
    assert (_pending("a", 2, blocked=False).word, _pending("a", 2, blocked=False).status) == ("Ready for approval", Status.WATCH)


def test_alias_sentence_names_every_alias():
    model = view.ModelOverview("a", "", "", 2, None, {"champion": 2, "shadow": 3}, 3, ())
    assert view.alias_sentence(model) == "Champion (serving): version 2 · Challenger (under evaluation): none · shadow: version 3"


def test_version_status():
    blocked = SimpleNamespace(version=3, status="pending", blocked=True)
    aliases = {"champion": 2, "challenger": 3}
    assert view.version_status(3, aliases, [blocked], {1, 2}) == "Challenger (under evaluation); Request blocked"
    assert view.version_status(2, aliases, [blocked], {1, 2}) == "Champion (serving)"
    assert view.version_status(1, aliases, [], {1, 2}) == "Earlier champion"
    assert view.version_status(4, aliases, [], {1, 2}) == "Registered, not released"


def test_small_formatters():
    assert view.format_iso("2026-08-03T14:05:00+00:00") == "2026-08-03 14:05 UTC"
    assert view.format_iso("2026-08-03T16:05:00+02:00") == "2026-08-03 14:05 UTC"
    assert view.format_iso(None) == "unknown"
    assert view.format_moment(None) == "still today"
    assert (view.better_marker(True), view.better_marker(False), view.better_marker(None)) == ("▲ better", "▼ worse", "—")
    assert view.gate_word("failed") == "✖ Failed" and view.gate_word("odd") == "odd"
    assert view.champion_on_sentence("g", date(2026, 7, 20), 1).startswith("On 2026-07-20 (end of day, UTC) version 1 of g was champion")
    assert "g had no champion" in view.champion_on_sentence("g", date(2026, 7, 20), None)


def test_versions_table_and_history_from_a_real_registry(tmp_path):
    settings = load_settings({"MLOPS_APP_HOME": str(tmp_path / "home")})
    registry = Registry(settings.registry_path)
    estimator = LogisticRegression().fit(pd.DataFrame({"weight": [1.0, 2.0, 3.0, 4.0]}), [1, 1, 0, 0])
    for recall in (0.9, 0.95):
        registry.register_version(
            "g", estimator, actor="rita@example.com", metrics={"recall_bad": recall, "f1": 0.8},
            extra={"key_metric": "f1"}, created_at=datetime(2026, 7, 1, 9, 30, tzinfo=UTC),
        )  # fmt: skip
    registry.set_alias("g", "champion", 1, actor="ada@example.com", reason="first", at=datetime(2026, 7, 2, tzinfo=UTC))
    registry.set_alias("g", "champion", 2, actor="ada@example.com", reason="second", at=datetime(2026, 7, 9, tzinfo=UTC))
    table = view.versions_table(registry, "g")
    assert table.columns.tolist()[:4] == ["Version", "Status", "Registered", "By"]
    assert table["Version"].tolist() == [2, 1]
    assert table["Status"].tolist() == ["Champion (serving)", "Earlier champion"]
    assert table["Registered"].iloc[0] == "2026-07-01 09:30 UTC"
    assert table["Bad apples caught"].tolist() == ["95.0%", "90.0%"]
    periods = view.champion_periods(registry, "g")
    assert periods[["Version", "From", "Until"]].values.tolist() == [
        [2, "2026-07-09 00:00 UTC", "still today"],
        [1, "2026-07-02 00:00 UTC", "2026-07-09 00:00 UTC"],
    ]
    overview = view.model_overviews(registry)
    assert [(item.name, item.champion, item.versions, item.pending) for item in overview] == [("g", 2, 2, ())]
    labels = [label for label, _ in view.metric_columns(registry, "g")]
    assert labels[0] == "F1 score" and "Bad apples caught" in labels


def test_drift_status_says_not_monitored_yet(tmp_path):
    warehouse = Warehouse(tmp_path / "warehouse.duckdb")
    warehouse.migrate()
    status, sentence = view.drift_status(warehouse, "g")
    assert status == Status.UNKNOWN and sentence.startswith("Not monitored yet") and "mlops-app monitor g" in sentence
