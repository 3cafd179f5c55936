"""Every registered page loads in headless Chromium without an exception shown."""

from __future__ import annotations

import urllib.request

import pytest

from mlops_app.ui.navigation import PAGES
from mlops_app.testing import EXCEPTION, RENDERED

pytestmark = pytest.mark.e2e


def test_health_endpoint(served_demo):
    with urllib.request.urlopen(served_demo + "/_stcore/health", timeout=5) as response:
        assert response.read().strip() == b"ok"


@pytest.mark.parametrize("spec", PAGES, ids=lambda spec: spec.key or "overview")
def test_page_renders_without_exception(served_demo, page, spec):
    page.goto(f"{served_demo}/{spec.key}", wait_until="commit")
    # The page's own title first (the shell says "notRunning" before its first run), then done.
    page.wait_for_selector(f'h1:has-text("{spec.title}")', timeout=60_000)
    page.wait_for_selector(RENDERED, timeout=60_000)
    exceptions = page.locator(EXCEPTION)
    assert exceptions.count() == 0, exceptions.first.inner_text()


def test_overview_content_a_person_sees(served_demo, page):
    page.goto(served_demo + "/", wait_until="commit")
    # The shell reports "notRunning" before the first run starts: wait for the page's title first.
    page.wait_for_selector('h1:has-text("Overview")', timeout=60_000)
    page.wait_for_selector(RENDERED, timeout=60_000)
    # Elements stream in after the script state flips; wait for the last section's content.
    page.get_by_text("Recent activity").wait_for(timeout=30_000)
    page.get_by_text("apple-grader").first.wait_for(timeout=30_000)
    body = page.locator('[data-testid="stMain"]').inner_text()
    assert "apple-grader" in body and "Bad apples caught" in body
    assert "apple_harvest" in body and "Recent activity" in body
    assert "demo@localhost" in page.locator('[data-testid="stSidebar"]').inner_text()
