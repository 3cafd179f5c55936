"""Webhook delivery through the outbox, against real HTTP servers on 127.0.0.1 (up, down, failing)."""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from mlops_app import promotion
from mlops_app.config import Settings, load_settings
from mlops_app.webhooks import STALE_CLAIM_SECONDS, deliver_pending, notify, outbox_path, pending_messages
from tests.test_promotion import APPROVER, MODEL, World, apples, fitted, world  # noqa: F401 (fixtures)


class _Recorder(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - the name http.server calls
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append({"path": self.path, "type": self.headers["Content-Type"], "body": json.loads(body)})
        self.send_response(self.server.answer)
        if 300 <= self.server.answer < 400:
            self.send_header("Location", "/elsewhere")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args) -> None:
        pass


@contextmanager
def endpoint(port: int = 0, answer: int = 200) -> Iterator[HTTPServer]:
    server = HTTPServer(("127.0.0.1", port), _Recorder)
    server.received, server.answer = [], answer
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def settings_for(url: str) -> Settings:
    return load_settings().with_overrides(webhook_url=url, webhook_timeout_seconds=3)


EVENT = {"event": "alias_moved", "model": "apple-grader", "version": 3, "text": "apple-grader: version 3 is now champion"}


def test_a_message_is_delivered_to_a_live_endpoint_and_leaves_the_outbox(tmp_path):
    with endpoint() as server:
        settings = settings_for(f"http://127.0.0.1:{server.server_port}/hooks/deploy")
        message_id = notify(settings, EVENT)
    assert message_id is not None
    assert len(server.received) == 1
    received = server.received[0]
    assert received["path"] == "/hooks/deploy" and received["type"] == "application/json"
    assert received["body"] == {"text": EVENT["text"], "id": message_id, "event": EVENT}
    assert pending_messages(settings) == [] and list(outbox_path(settings).iterdir()) == []


def test_a_message_for_an_endpoint_that_is_down_is_kept_and_delivered_when_it_comes_up():
    port = closed_port()
    settings = settings_for(f"http://127.0.0.1:{port}/hook")
    sent_at = datetime.now(UTC)
    message_id = notify(settings, EVENT)
    [waiting] = pending_messages(settings)
    assert (waiting.id, waiting.attempts, waiting.event) == (message_id, 1, EVENT)
    assert "could not be reached" in waiting.last_error and str(port) not in waiting.last_error
    assert timedelta(seconds=25) < waiting.next_try_at - sent_at < timedelta(seconds=40)

    report = deliver_pending(settings)  # too early: the backoff has not passed
    assert (report.delivered, report.not_due, report.waiting) == (0, 1, 1)
    later = waiting.next_try_at + timedelta(seconds=1)
    report = deliver_pending(settings, now=later)  # still down: the wait doubles
    assert (report.delivered, report.failed) == (0, 1) and "could not be reached" in report.errors[0]
    [waiting] = pending_messages(settings)
    assert waiting.attempts == 2 and waiting.next_try_at == later + timedelta(seconds=60)

    with endpoint(port) as server:
        report = deliver_pending(settings, now=waiting.next_try_at)
    assert (report.delivered, report.failed, report.waiting) == (1, 0, 0)
    assert [item["body"]["id"] for item in server.received] == [message_id]
    assert pending_messages(settings) == []


def test_an_endpoint_that_answers_with_an_error_keeps_the_message():
    with endpoint(answer=500) as server:
        settings = settings_for(f"http://127.0.0.1:{server.server_port}/")
        notify(settings, EVENT)
        report = deliver_pending(settings, force=True)
    assert len(server.received) == 2 and report.failed == 1
    [waiting] = pending_messages(settings)
    assert waiting.attempts == 2 and waiting.last_error == "the endpoint answered HTTP 500 Internal Server Error"


def test_without_a_webhook_url_nothing_is_queued_and_other_schemes_are_never_opened(tmp_path):
    settings = load_settings()
    assert notify(settings, EVENT) is None and not outbox_path(settings).exists()
    secret_file = tmp_path / "secret.txt"
    secret_file.write_text("do not send")
    settings = settings_for(f"file://{secret_file}")
    notify(settings, EVENT)
    [waiting] = pending_messages(settings)
    assert waiting.last_error.startswith("webhook_url must start with https://")


def test_a_message_left_mid_delivery_by_a_dead_process_is_taken_over():
    port = closed_port()
    settings = settings_for(f"http://127.0.0.1:{port}/")
    message_id = notify(settings, EVENT)
    folder = outbox_path(settings)
    claimed_at = datetime.now(UTC)
    # What a process killed between claiming and settling leaves behind.
    os.rename(folder / f"{message_id}.json", folder / f"{message_id}.claimed-{int(claimed_at.timestamp() * 1000)}-999999")
    assert pending_messages(settings) == []
    with endpoint(port) as server:
        assert deliver_pending(settings, force=True).delivered == 0  # a fresh claim belongs to its process
        report = deliver_pending(settings, now=claimed_at + timedelta(seconds=STALE_CLAIM_SECONDS + 1), force=True)
    assert report.delivered == 1 and [item["body"]["id"] for item in server.received] == [message_id]
    assert list(folder.iterdir()) == []


def test_an_approval_tells_the_deployment_pipeline_which_version_is_champion(world: World):
    with endpoint() as server:
        world.settings = settings_for(f"http://127.0.0.1:{server.server_port}/deploy")
        version = world.register(0.93)
        request = world.request(version.version)
        promotion.approve(world.settings, world.registry, MODEL, request.id, APPROVER)
    events = [item["body"]["event"] for item in server.received]
    assert [event["event"] for event in events] == ["promotion_requested", "alias_moved"]
    moved = events[1]
    assert (moved["model"], moved["alias"], moved["version"], moved["previous"], moved["approved_by"]) == (MODEL, "champion", 2, 1, APPROVER.email)
    assert server.received[1]["body"]["text"].startswith("grader: version 2 is now champion (was version 1); approved by alan@example.com.")
    assert "/model_review?model=grader&version=2" in server.received[1]["body"]["text"]


@pytest.mark.parametrize("answer", [301, 307])
def test_a_redirect_is_not_a_delivery(answer):
    with endpoint(answer=answer) as server:
        settings = settings_for(f"http://127.0.0.1:{server.server_port}/")
        notify(settings, EVENT)
    assert len(server.received) == 1
    [waiting] = pending_messages(settings)
    assert waiting.last_error.startswith(f"the endpoint answered HTTP {answer}")
