"""The Features page as a person sees it, in headless Chromium."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from mlops_app.testing import EXCEPTION, RENDERED

pytestmark = pytest.mark.e2e


def _main_text(page) -> str:
    return page.locator('[data-testid="stMain"]').inner_text()


def test_deep_link_shows_the_feature_and_its_definition(served_demo, page):
    page.goto(served_demo + "/features?feature=block_bad_share_14d", wait_until="commit")
    page.wait_for_selector(RENDERED, timeout=60_000)
    page.wait_for_selector('h2:has-text("block_bad_share_14d")', timeout=30_000)
    # The header comes first in the script: wait for the whole run and for the charts to draw.
    page.wait_for_selector(RENDERED, timeout=60_000)
    expect(page.locator(".js-plotly-plot")).to_have_count(2, timeout=30_000)
    assert page.locator(EXCEPTION).count() == 0, page.locator(EXCEPTION).first.inner_text()
    body = _main_text(page)
    assert "the newest value is" in body and "expected at least every 7 days" in body
    assert "Share of rows where is_bad is true, over the 14 days" in body
    assert "aggregation: share" in page.locator('[data-testid="stCode"]').inner_text()
    assert "Values recorded" in body and "Dataset apple_harvest" in body
    assert "feature=block_bad_share_14d" in page.url


def test_selecting_a_row_opens_the_feature_and_updates_the_address(served_demo, page):
    page.goto(served_demo + "/features", wait_until="commit")
    page.wait_for_selector(RENDERED, timeout=60_000)
    page.wait_for_selector('[data-testid="stDataFrame"]', timeout=30_000)
    assert "13 features" in _main_text(page)
    grid = page.locator('[data-testid="stDataFrame"]').first
    box = grid.bounding_box()
    # The grid is a canvas: click the selection cell of the first data row (blemish_area_mm2).
    page.mouse.click(box["x"] + 15, box["y"] + 35 + 17)
    page.wait_for_selector('h2:has-text("blemish_area_mm2")', timeout=30_000)
    page.wait_for_url(re.compile(r".*feature=blemish_area_mm2"), timeout=10_000)
    page.wait_for_selector(RENDERED, timeout=30_000)
    assert page.locator(EXCEPTION).count() == 0
    page.get_by_role("button", name="All features").click()
    page.wait_for_selector('h2:has-text("blemish_area_mm2")', state="detached", timeout=30_000)
    page.wait_for_selector(RENDERED, timeout=30_000)
    assert "feature=" not in page.url and "13 features" in _main_text(page)
