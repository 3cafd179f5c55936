"""Demo build time and server-side render time of the Overview page.

Builds the full default demo in a temporary home, then renders the overview with
Streamlit's AppTest (the server-side script run, no browser): cold (empty cache) and warm
(cached by the warehouse generation). The baseline is a one-line Streamlit script rendered
the same way in the same process, so the ratio shows what the page itself costs.

    .venv/bin/python benchmarks/overview_render.py [--days 150] [--apples-per-day 1500] [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _render_seconds(script: str, runs: int, *, clear_cache: bool) -> list[float]:
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    timings = []
    for _ in range(runs):
        if clear_cache:
            st.cache_data.clear()
        started = time.perf_counter()
        at = AppTest.from_file(script, default_timeout=120).run()
        timings.append(time.perf_counter() - started)
        assert not at.exception, at.exception
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=150)
    parser.add_argument("--apples-per-day", type=int, default=1500)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        os.environ["MLOPS_APP_HOME"] = str(Path(scratch) / "home")
        os.environ["MLOPS_APP_DEMO_DAYS"] = str(args.days)
        os.environ["MLOPS_APP_DEMO_APPLES_PER_DAY"] = str(args.apples_per_day)
        from mlops_app.auth import local_identity
        from mlops_app.config import load_settings
        from mlops_app.demo import build_demo

        settings = load_settings()
        started = time.perf_counter()
        summary = build_demo(settings, local_identity(settings))
        build_seconds = time.perf_counter() - started

        baseline_script = Path(scratch) / "baseline.py"
        baseline_script.write_text("import streamlit as st\nst.title('baseline')\n")
        baseline = _render_seconds(str(baseline_script), args.runs, clear_cache=False)
        entry = str(ROOT / "app" / "main.py")
        cold = _render_seconds(entry, args.runs, clear_cache=True)
        warm = _render_seconds(entry, args.runs, clear_cache=False)

    base = statistics.median(baseline)
    print(f"demo build: {build_seconds:.1f} s for {summary.rows:,} rows, {summary.days} days, {len(summary.models)} models")
    print(f"baseline one-line page render: median {base * 1000:.0f} ms")
    for name, timings in (("overview cold (cache cleared)", cold), ("overview warm (cached)", warm)):
        median = statistics.median(timings)
        print(f"{name}: median {median * 1000:.0f} ms, max {max(timings) * 1000:.0f} ms, {median / base:.1f}x baseline")


if __name__ == "__main__":
    main()
