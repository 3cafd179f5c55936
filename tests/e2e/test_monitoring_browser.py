"""The Monitoring page in headless Chromium: its live part picks up a window another process wrote, without a reload."""

from __future__ import annotations

import shutil
from datetime import date

import pytest

from mlops_app.config import load_settings
from mlops_app.demo_monitoring import replay_day
from mlops_app.testing import EXCEPTION, RENDERED, serve_dashboard
from tests.conftest import MONITORED_UNTIL, SMALL_DEMO, SMALL_DEMO_LAST_DAY

pytestmark = pytest.mark.e2e


@pytest.fixture
def served_monitored_copy(monitored_home, tmp_path):
    """A private copy of the monitored demo served with a 2-second refresh; yields (url, home)."""
    home = tmp_path / "home"
    shutil.copytree(monitored_home, home)
    environ = {"MLOPS_APP_HOME": str(home), "MLOPS_APP_MONITORING_REFRESH_SECONDS": "2", **SMALL_DEMO}
    with serve_dashboard(environ, tmp_path / "serve.log") as url:
        yield url, home


def test_a_new_window_appears_without_a_reload(served_monitored_copy, page):
    url, home = served_monitored_copy
    page.goto(url + "/monitoring?model=apple-grader", wait_until="commit")
    page.wait_for_selector('h1:has-text("Monitoring")', timeout=60_000)
    page.wait_for_selector(RENDERED, timeout=60_000)
    main = page.locator('[data-testid="stMain"]')
    main.get_by_text(f"Latest window ({MONITORED_UNTIL:%Y-%m-%d})").wait_for(timeout=30_000)
    main.get_by_text("Full drift report", exact=True).wait_for(timeout=30_000)
    assert page.locator(EXCEPTION).count() == 0
    body = main.inner_text()
    assert "Inputs that drifted" in body and "Share of bad apples caught" in body and "Acknowledge" in body
    assert f"Latest window ({SMALL_DEMO_LAST_DAY:%Y-%m-%d})" not in body and f"In the window {SMALL_DEMO_LAST_DAY:%Y-%m-%d}," not in body
    # A reload would drop this mark: the new window must arrive through the live part's own refresh.
    page.evaluate("window.__sameDocument = true")

    settings = load_settings({"MLOPS_APP_HOME": str(home), **SMALL_DEMO})
    replayed = replay_day(settings, date(2026, 9, 3))
    assert replayed.day == SMALL_DEMO_LAST_DAY and replayed.windows == 1

    main.get_by_text(f"Latest window ({SMALL_DEMO_LAST_DAY:%Y-%m-%d})").wait_for(timeout=60_000)
    # The drift table below follows the latest window too.
    main.get_by_text(f"In the window {SMALL_DEMO_LAST_DAY:%Y-%m-%d},").wait_for(timeout=30_000)
    main.get_by_text(f"Window {SMALL_DEMO_LAST_DAY:%Y-%m-%d}:").first.wait_for(timeout=30_000)
    assert page.evaluate("window.__sameDocument") is True
    assert page.locator(EXCEPTION).count() == 0
