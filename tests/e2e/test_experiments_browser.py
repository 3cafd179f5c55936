"""The Experiments page in headless Chromium, opened from a shared deep link."""

from __future__ import annotations

import pytest

from mlops_app.experiments import RunFilter, runs_page
from mlops_app.testing import EXCEPTION, RENDERED
from mlops_app.warehouse import Warehouse

pytestmark = pytest.mark.e2e


def test_deep_link_opens_the_comparison(served_demo, demo_home, page):
    warehouse = Warehouse(demo_home / "warehouse.duckdb")
    trials = runs_page(warehouse, "apple-grader-search", filters=[RunFilter("tag", "role", "=", "trial")], page_size=2).rows
    ids, names = trials["run_id"].tolist(), trials["name"].tolist()
    page.goto(f"{served_demo}/experiments?experiment=apple-grader-search&runs={ids[0]},{ids[1]}", wait_until="commit")
    page.wait_for_selector(RENDERED, timeout=60_000)
    page.wait_for_selector('h3:has-text("Compare runs")', timeout=30_000)
    exceptions = page.locator(EXCEPTION)
    assert exceptions.count() == 0, exceptions.first.inner_text()
    body = page.locator('[data-testid="stMain"]').inner_text()
    assert "2 runs side by side" in body and "Tested once on the holdout" in body
    assert names[0] in body and names[1] in body
    # The address still names the experiment and the runs, so the link can be passed on.
    assert "experiment=apple-grader-search" in page.url and f"runs={ids[0]}%2C{ids[1]}" in page.url.replace(",", "%2C")
    # The charts drew in the browser, not only on the server.
    assert page.locator('[data-testid="stPlotlyChart"]').count() >= 4
