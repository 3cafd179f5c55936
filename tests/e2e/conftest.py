"""A real `mlops-app serve` on a free loopback port, and Debian's Chromium driven by Playwright."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlops_app.testing import CHROMIUM, CHROMIUM_ARGS, serve_dashboard
from tests.conftest import SMALL_DEMO


@pytest.fixture(scope="session")
def served_demo(demo_home, tmp_path_factory):
    """The dashboard served over the shared demo home; yields its base url."""
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with serve_dashboard({"MLOPS_APP_HOME": str(demo_home), **SMALL_DEMO}, log) as url:
        yield url


@pytest.fixture(scope="session")
def browser_type_launch_args():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium is not installed at {CHROMIUM}; `apt-get install chromium` (scripts/test.sh does it).")
    return {"executable_path": CHROMIUM, "args": CHROMIUM_ARGS, "headless": True}
