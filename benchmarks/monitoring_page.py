"""Server-side render time of the Monitoring page from stored results.

Uses ``--home`` (for example the full demo after `mlops-app demo --no-serve`: 86 daily
windows, alerts and a retrained challenger) or builds a small demo home with its monitoring
history in a temporary folder. Renders ``/monitoring?model=apple-grader`` with Streamlit's
AppTest (the script run on the server, no browser): cold (cache cleared, so every read
opens the warehouse) and warm (cached by the warehouse generation, as when the live
fragment refreshes and nothing new landed). The baseline is a one-line Streamlit script
rendered the same way in the same process. Target: under 1 s.

    .venv/bin/python benchmarks/monitoring_page.py [--home PATH] [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

MODEL = "apple-grader"
SMALL_DEMO = {"MLOPS_APP_DEMO_DAYS": "95", "MLOPS_APP_DEMO_APPLES_PER_DAY": "300", "MLOPS_APP_DEMO_TRIALS": "4"}


def _build_home(home: Path) -> float:
    from mlops_app.auth import local_identity
    from mlops_app.config import load_settings
    from mlops_app.demo import build_demo
    from mlops_app.demo_monitoring import build_monitoring_history

    os.environ.update(SMALL_DEMO)
    settings = load_settings()
    started = time.perf_counter()
    build_demo(settings, local_identity(settings))
    build_monitoring_history(settings)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, help="A home with monitoring results (default: build a small demo).")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        home = args.home.resolve() if args.home else Path(scratch) / "home"
        os.environ["MLOPS_APP_HOME"] = str(home)
        built = None if args.home else _build_home(home)

        from page_timing import print_timings, time_page

        from mlops_app.monitoring import window_history
        from mlops_app.warehouse import Warehouse

        windows = len(window_history(Warehouse(home / "warehouse.duckdb"), MODEL))

        def check(app) -> None:
            assert app.title[0].value == "Monitoring"
            assert app.get("plotly_chart"), "the page should chart the stored windows"

        timings = time_page("monitoring", Path(scratch), args.runs, query={"model": MODEL}, check=check)

    print(f"home: {home if args.home else 'small demo'}; {windows} monitoring windows of {MODEL}" + (f"; built in {built:.0f} s" if built else ""))
    print_timings("monitoring page", timings)


if __name__ == "__main__":
    main()
