"""Alerts on real homes: opened once, acknowledged by role, sent to a real HTTP endpoint (also when it was down),
resolved, and the whole loop drift -> alert -> retrain -> challenger -> review on the demo orchard."""

from __future__ import annotations

import json
import shutil
import socket
import threading
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pandas as pd
import pytest

from mlops_app.alerts import MONITOR_IDENTITY, acknowledge_alert, get_alert, list_alerts
from mlops_app.auth import Identity
from mlops_app.config import load_settings
from mlops_app.demo_monitoring import GRADER_MONITORING_YAML, replay_day, withdraw_seeded_request
from mlops_app.errors import MlopsError, PermissionDeniedError
from mlops_app.monitoring import model_status, run_monitor
from mlops_app.promotion import PENDING, approve, list_requests, reject
from mlops_app.registry import Registry
from mlops_app.scoring import record_labels, score_frame
from mlops_app.status import Status
from mlops_app.warehouse import Warehouse
from mlops_app.webhooks import deliver_pending, pending_messages
from tests.conftest import SMALL_DEMO
from tests.monitoring_helper import ANA, FIRST_DAY, MODEL, MONITORING_YAML, VIEWER, build_home, score_days

ADMIN = Identity("ada@orchard.example", "Ada", "admin", "local")


class Receiver:
    """A real local HTTP endpoint that records the JSON bodies POSTed to it."""

    def __init__(self, port: int = 0) -> None:
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    endpoint = Receiver()
    yield endpoint
    endpoint.close()


def day(offset: int) -> date:
    return FIRST_DAY + timedelta(days=offset)


def midnight(value: date) -> datetime:
    return datetime(value.year, value.month, value.day, tzinfo=UTC)


def test_a_drift_alert_opens_once_reaches_the_webhook_is_acknowledged_by_role_and_resolves(tmp_path, receiver):
    home = build_home(tmp_path / "home", webhook_url=receiver.url)
    score_days(home, [(day(0), 0.0), (day(1), 1.5), (day(2), 1.5), (day(3), 1.5)], rows=600)
    run_monitor(home.settings, MODEL, until=midnight(day(4)), retrain=False)

    alerts = list_alerts(home.warehouse, MODEL)
    assert len(alerts) == 1  # three windows in breach, one alert
    alert = get_alert(home.warehouse, alerts["alert_id"][0])
    assert (alert.kind, alert.severity, alert.status, alert.occurrences) == ("drift", "watch", "open", 3)
    assert alert.link == "http://127.0.0.1:8501/monitoring?model=fruit-grader" and alert.notified_at is not None
    assert alert.message.startswith(f"3 of 3 features moved away from the training data on {day(1):%Y-%m-%d}")
    assert len(receiver.received) == 1
    body = receiver.received[0]
    assert body["event"]["event"] == "alert_opened" and body["event"]["alert_id"] == alert.alert_id
    assert body["text"].startswith("⚠️ Watch: fruit-grader: 3 of 3 features") and body["text"].endswith(alert.link)

    with pytest.raises(PermissionDeniedError, match="acknowledge alert needs the reviewer role"):
        acknowledge_alert(home.warehouse, alert.alert_id, VIEWER)
    acknowledged = acknowledge_alert(home.warehouse, alert.alert_id, ANA)
    assert (acknowledged.status, acknowledged.acknowledged_by) == ("acknowledged", ANA.email)

    # Two calm days in a row (resolve_after_windows: 2) resolve it; no new alert, no new message.
    score_days(home, [(day(4), 0.0), (day(5), 0.0)], rows=600)
    run_monitor(home.settings, MODEL, until=midnight(day(6)), retrain=False)
    resolved = get_alert(home.warehouse, alert.alert_id)
    assert resolved.status == "resolved" and resolved.resolved_at is not None
    assert len(list_alerts(home.warehouse, MODEL)) == 1 and len(receiver.received) == 1
    with pytest.raises(MlopsError, match="already resolved"):
        acknowledge_alert(home.warehouse, alert.alert_id, ANA)


def test_an_alert_is_never_lost_when_the_run_stops_before_sending_or_the_endpoint_is_down(tmp_path):
    with socket.socket() as probe:  # a port nobody listens on yet
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    home = build_home(tmp_path / "home", webhook_url=f"http://127.0.0.1:{port}/hook")
    score_days(home, [(day(0), 1.5)], rows=300)

    # A run that stops after committing the window (as if killed) leaves the alert unsent...
    run_monitor(home.settings, MODEL, until=midnight(day(1)), retrain=False, notify=False)
    alert = get_alert(home.warehouse, list_alerts(home.warehouse, MODEL)["alert_id"][0])
    assert alert.notified_at is None and pending_messages(home.settings) == []
    # ...and the next run hands it to the outbox; the endpoint is down, so it waits there.
    run_monitor(home.settings, MODEL, until=midnight(day(1)), retrain=False)
    waiting = pending_messages(home.settings)
    assert len(waiting) == 1 and waiting[0].attempts == 1 and "could not be reached" in waiting[0].last_error
    assert get_alert(home.warehouse, alert.alert_id).notified_at is not None

    endpoint = Receiver(port)  # the endpoint comes back
    try:
        assert deliver_pending(home.settings, force=True).delivered == 1
    finally:
        endpoint.close()
    assert [body["event"]["alert_id"] for body in endpoint.received] == [alert.alert_id]
    assert pending_messages(home.settings) == []


def test_an_alert_retrains_a_challenger_for_review_and_the_next_alert_waits_for_that_review(tmp_path):
    retraining = MONITORING_YAML.replace("retrain:\n  enabled: false\n", "retrain:\n  trials: 1\n  max_rows: 1000\n")
    home = build_home(tmp_path / "home", monitoring_yaml=retraining)
    score_days(home, [(day(0), 1.5)], rows=300)
    report = run_monitor(home.settings, MODEL, until=midnight(day(1)))
    drift = get_alert(home.warehouse, report.runs[0].opened_alerts[0])
    assert (drift.kind, drift.retrain_status, drift.challenger_version) == ("drift", "done", 2)
    assert home.registry.get_model(MODEL).aliases == {"champion": 1, "challenger": 2}
    [request] = list_requests(home.registry, MODEL, status=PENDING)
    assert (request.id, request.version, request.requested_by) == (drift.promotion_request_id, 2, MONITOR_IDENTITY.email)
    assert list(home.warehouse.query("SELECT DISTINCT experiment FROM runs")["experiment"]) == [f"{MODEL}-retrain"]

    # Labels show the grader missed every bad fruit: a KPI alert, whose retraining waits for the pending review.
    logged = home.warehouse.query("SELECT entity_id, prediction FROM predictions")
    record_labels(home.warehouse, home.registry, MODEL, pd.DataFrame({"fruit_id": logged["entity_id"], "is_bad": logged["prediction"] == "false"}), ANA)
    report = run_monitor(home.settings, MODEL, until=midnight(day(1)))
    kpi = [get_alert(home.warehouse, alert_id) for alert_id in report.runs[0].opened_alerts]
    assert {alert.kind for alert in kpi} == {"kpi"} and {alert.retrain_status for alert in kpi} == {"skipped"}
    assert f"version 2 already waits for review to become champion (request {request.id}" in kpi[0].retrain_detail
    # A skipped alert points at the review that holds it back, so the page can link it.
    assert {(alert.challenger_version, alert.promotion_request_id) for alert in kpi} == {(2, request.id)}
    assert len(home.registry.list_versions(MODEL)) == 2

    # The approver turns version 2 down: the next run retrains once, for the newest alert still waiting.
    reject(home.settings, home.registry, MODEL, request.id, ADMIN, comment="Trained before the labels showed the misses.")
    run_monitor(home.settings, MODEL, until=midnight(day(1)))
    after = {alert.alert_id: get_alert(home.warehouse, alert.alert_id) for alert in kpi}
    newest = max(kpi, key=lambda alert: (alert.opened_at, alert.alert_id)).alert_id
    assert after[newest].retrain_status == "done" and after[newest].challenger_version == 3
    assert {after[alert_id].challenger_version for alert_id in after if alert_id != newest} == {2}  # still what held them
    assert all(alert.retrain_status == "skipped" for alert_id, alert in after.items() if alert_id != newest)
    [second] = list_requests(home.registry, MODEL, status=PENDING)
    assert (second.version, second.id) == (3, after[newest].promotion_request_id)
    run_monitor(home.settings, MODEL, until=midnight(day(1)))  # nothing new to do: no third challenger
    assert len(home.registry.list_versions(MODEL)) == 3


def test_the_loop_drift_alert_retrain_challenger_review_on_the_demo(demo_home, tmp_path):
    home = tmp_path / "home"
    shutil.copytree(demo_home, home)
    settings = load_settings({"MLOPS_APP_HOME": str(home), **SMALL_DEMO})
    warehouse, registry = Warehouse.from_settings(settings), Registry(settings.registry_path)
    versions_before = [version.version for version in registry.list_versions("apple-grader")]
    # The demo's settings, with a drift limit the ripening alone breaks (the small demo has few
    # apples a day) and a quick search, so the loop runs on the first replayed day.
    text = GRADER_MONITORING_YAML.replace("drift_share_threshold: 0.8", "drift_share_threshold: 0.5")
    text = text.replace("trials: 4", "trials: 2").replace("max_rows: 10000", "max_rows: 1500").replace("min_labelled_rows: 200", "min_labelled_rows: 30")
    (home / "monitoring").mkdir()
    (home / "monitoring" / "apple-grader.yaml").write_text(text, encoding="utf-8")

    # The demo build left the season's AutoML challenger (v3) waiting for review; the replay withdraws it first.
    assert withdraw_seeded_request(settings, registry) is not None
    # That challenger reads two block features from the feature store: scoring finds them itself.
    apples = warehouse.query("SELECT * EXCLUDE (is_bad, label_received_at, _batch_id, _warnings) FROM ds_apple_harvest LIMIT 5")
    scored = score_frame(warehouse, registry, "apple-grader@challenger", apples, ANA)
    assert scored.rows == 5 and warehouse.query_one("SELECT count(*) FROM predictions WHERE version = $1", [scored.version])[0] == 5
    warehouse.execute("DELETE FROM predictions")  # keep the replay's history clean

    first = replay_day(settings, date(2026, 8, 14))
    assert first.scored > 0 and first.windows == 1 and first.alerts_opened == 1
    alert = get_alert(warehouse, list_alerts(warehouse, "apple-grader")["alert_id"][0])
    assert alert.kind == "drift" and alert.retrain_status == "done"
    new_version = alert.challenger_version
    assert new_version == max(versions_before) + 1
    assert alert.retrain_detail.startswith(f"Challenger v{new_version} registered") and "waits for an approver" in alert.retrain_detail
    model = registry.get_model("apple-grader")
    assert model.aliases["challenger"] == new_version and model.aliases["champion"] == 2
    card = registry.get_version("apple-grader", new_version).card
    assert card["author"] == MONITOR_IDENTITY.email and alert.alert_id in card["description"]
    # What people wrote on the champion's card carries over; the training period is the new one's own.
    champion_card = registry.get_version("apple-grader", 2).card["extra"]
    for key in ("predicts", "intended_use", "targets", "key_metric"):
        assert card["extra"][key] == champion_card[key], key
    assert "limits" not in card["extra"] and card["extra"]["split"]["until"].startswith("2026-08-15T00:00")
    [request] = list_requests(registry, "apple-grader", status=PENDING)
    assert (request.id, request.version, request.requested_by) == (alert.promotion_request_id, new_version, MONITOR_IDENTITY.email)
    assert model_status(warehouse, "apple-grader")[0] in (Status.WATCH, Status.ACT)

    # A human reviews: an admin approves (overriding failed gates with a reason, if any).
    approve(
        settings, registry, "apple-grader", request.id, ADMIN, comment="Retrained on the season; reviewed the holdout.",
        override_reason="Accepted in the loop test" if request.blocked else None,
    )  # fmt: skip
    assert registry.get_model("apple-grader").aliases["champion"] == new_version
    second = replay_day(settings, date(2026, 8, 15))
    assert second.version == new_version  # the next day is scored by the reviewed challenger
    logged = warehouse.query("SELECT DISTINCT version FROM predictions WHERE batch_id = 'demo-day-20260815'")
    assert list(logged["version"]) == [new_version]
    assert pd.Timestamp(alert.window_start) == pd.Timestamp("2026-08-14", tz="UTC")
