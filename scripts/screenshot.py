"""Take the README's screenshots: the overview page (docs/overview.png) or another page.

Builds the demo in a temporary home (or uses MLOPS_APP_HOME if it holds one), serves the
dashboard on a free loopback port and photographs it in headless Chromium.

    .venv/bin/python scripts/screenshot.py [--out docs/overview.png]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

from mlops_app.auth import local_identity
from mlops_app.config import load_settings
from mlops_app.demo import build_demo, is_demo_home
from mlops_app.testing import CHROMIUM, CHROMIUM_ARGS, RENDERED, serve_dashboard

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "overview.png")
    parser.add_argument("--path", default="/", help="page to photograph, e.g. / or /data_quality")
    parser.add_argument("--max-height", type=int, default=4000, help="cut the picture at this many pixels (1600 for the README's Monitoring page)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        environ = {k: v for k, v in os.environ.items() if k.startswith("MLOPS_APP_")}
        settings = load_settings()
        if not is_demo_home(settings.home_path):
            environ["MLOPS_APP_HOME"] = str(Path(scratch) / "home")
            settings = load_settings(environ)
            build_demo(settings, local_identity(settings))
        with serve_dashboard(environ, Path(scratch) / "serve.log") as url, sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000}, device_scale_factor=1)
            page.goto(url + args.path, wait_until="commit")
            page.wait_for_selector(RENDERED, timeout=60_000)
            page.wait_for_timeout(1500)  # let the fonts and the badges settle
            # Streamlit scrolls inside its main block, so grow the window to the content instead.
            height = page.evaluate("document.querySelector('[data-testid=stMainBlockContainer]').scrollHeight")
            height = min(int(height) + 120, args.max_height)
            page.set_viewport_size({"width": 1400, "height": height})
            page.wait_for_timeout(500)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(args.out), clip={"x": 0, "y": 0, "width": 1400, "height": height})
            browser.close()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
