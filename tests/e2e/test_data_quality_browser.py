"""The Data quality page as a person sees it in headless Chromium (read-only: the demo home is shared)."""

from __future__ import annotations

import pytest

from mlops_app.testing import EXCEPTION, RENDERED

pytestmark = pytest.mark.e2e


def test_data_quality_page_shows_verdict_problems_and_scorecard(served_demo, page):
    page.goto(served_demo + "/data_quality?dataset=apple_harvest", wait_until="commit")
    # The app shell says "notRunning" before its first run starts too: wait for the page's own
    # title (the run has begun), then for the run to end, then for the last grid to be drawn.
    page.wait_for_selector('h1:has-text("Data quality")', timeout=60_000)
    page.wait_for_selector(RENDERED, timeout=60_000)
    page.locator('[data-testid="stDataFrame"]').nth(2).wait_for(timeout=30_000)
    assert page.locator(EXCEPTION).count() == 0
    main = page.locator('[data-testid="stMain"]')
    body = main.inner_text()
    # Verdict first, then the problems in words.
    assert "Act" in body and "was rejected because the file lacks 1 required column: sugar_brix" in body
    assert "Quarantined" in body and "Duplicate caught" in body and "Firmness must be between 15 and 120 N" in body
    # The scorecard, the deliveries and the failing rows are real grids, and the trend is a chart.
    assert page.locator('[data-testid="stDataFrame"]').count() >= 3
    scorecard = page.locator('[data-testid="stDataFrame"]').first
    scorecard.scroll_into_view_if_needed()
    assert scorecard.is_visible()
    assert page.locator('[data-testid="stPlotlyChart"]').count() >= 1
    # Picking a tab shows the column profile's explained metrics without an error.
    page.get_by_role("tab", name="Column profile").click()
    page.wait_for_selector('[data-testid="stMetric"]:has-text("Middle 90%")', timeout=30_000)
    assert page.locator(EXCEPTION).count() == 0
