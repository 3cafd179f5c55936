"""A share link opened as a stakeholder does: a fresh browser context, a real server, headless Chromium.

The server runs over a tiny home of its own: making a link writes the share secret and an
audit event, and the shared demo home must stay untouched.
"""

from __future__ import annotations

import pytest

from mlops_app import sharing
from mlops_app.config import load_settings
from mlops_app.testing import EXCEPTION, RENDERED, serve_dashboard
from tests.pages.test_model_review_page import MODEL, REVIEWER, build_tiny_home

pytestmark = pytest.mark.e2e

WAIT_MS = 90_000
MAIN = '[data-testid="stMain"]'


@pytest.fixture(scope="module")
def served_tiny(tmp_path_factory):
    home = tmp_path_factory.mktemp("share") / "home"
    build_tiny_home(home)
    with serve_dashboard({"MLOPS_APP_HOME": str(home)}, home.parent / "serve.log") as url:
        yield url, home


def _open(browser, url: str):
    context = browser.new_context()  # no cookies, no session: a visitor who never signed in
    page = context.new_page()
    page.goto(url, wait_until="commit")
    page.wait_for_selector(RENDERED, timeout=WAIT_MS)
    return context, page


def test_share_link_opens_the_review_read_only(served_tiny, browser):
    base, home = served_tiny
    link = sharing.make_share_link(load_settings({"MLOPS_APP_HOME": str(home)}), MODEL, 2, identity=REVIEWER)
    context, page = _open(browser, base + link[link.index("/model_review") :])
    try:
        page.wait_for_selector('h2:has-text("grader version 2")', timeout=WAIT_MS)
        page.wait_for_selector(RENDERED, timeout=WAIT_MS)
        assert page.locator(EXCEPTION).count() == 0, page.locator(EXCEPTION).first.inner_text()
        body = page.locator(MAIN).inner_text()
        assert "Read-only review shared by rita@example.com" in body
        assert "Model card" in body and "Promotion gates" in body and "History" in body
        for label in ("Approve", "Reject", "Override and approve", "Override only", "Request promotion", "Create share link"):
            assert page.get_by_role("button", name=label, exact=True).count() == 0, label
        assert page.locator('[data-testid="stForm"]').count() == 0 and page.locator("textarea").count() == 0
    finally:
        context.close()


def test_tampered_share_link_shows_only_the_error(served_tiny, browser):
    base, home = served_tiny
    link = sharing.make_share_link(load_settings({"MLOPS_APP_HOME": str(home)}), MODEL, 2, identity=REVIEWER)
    context, page = _open(browser, base + link[link.index("/model_review") :][:-4] + "AAAA")
    try:
        page.wait_for_selector('[data-testid="stAlertContentError"]', timeout=WAIT_MS)
        body = page.locator(MAIN).inner_text()
        assert "This share link is not valid" in body
        assert "Model card" not in body and page.locator(EXCEPTION).count() == 0
    finally:
        context.close()
