"""Server-side render time of the Experiments page over 10,000 runs x 20 params x 10 metrics.

Fills a fresh home with the data of ``experiments_benchmark.py`` (its fill function,
imported), then renders the page with Streamlit's AppTest (the server-side script run, no
browser) in two states:

* the runs table: ``/experiments?experiment=bench`` (first page of 50 sorted by the
  selection metric, the default comparison of the best 3 runs, the charts over the
  2,000 most recent runs, the winner's results);
* a 50-run comparison: ``?experiment=bench&runs=<50 ids>`` (the 100-step runs, so the
  curves chart draws 50 x 100 points).

Each is timed cold (cache cleared: every read opens the warehouse) and warm (cached by the
warehouse generation, what a second visitor or a rerun pays). The baseline is a one-line
Streamlit script rendered the same way in the same process; the target is < 1 s.

    .venv/bin/python benchmarks/experiments_page.py [--runs 10000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from experiments_benchmark import _fill  # noqa: E402  (benchmarks/ is a folder of scripts, not a package)

ENTRY = str(ROOT / "app" / "main.py")
PAGE = "../pages/experiments.py"
TARGET_SECONDS = 1.0


def _render_page(query: dict[str, str], *, clear_cache: bool) -> float:
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(ENTRY, default_timeout=120).run()  # the entry lands on the overview first
    for name, value in query.items():
        at.query_params[name] = value
    if clear_cache:
        st.cache_data.clear()
    started = time.perf_counter()
    at.switch_page(PAGE).run()
    seconds = time.perf_counter() - started
    assert not at.exception, at.exception
    assert at.title[0].value == "Experiments" and not at.warning, [w.value for w in at.warning]
    return seconds


def _render_script(script: str) -> float:
    from streamlit.testing.v1 import AppTest

    started = time.perf_counter()
    at = AppTest.from_file(script, default_timeout=120).run()
    seconds = time.perf_counter() - started
    assert not at.exception, at.exception
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        home = Path(scratch) / "home"
        os.environ["MLOPS_APP_HOME"] = str(home)
        from mlops_app.warehouse import Warehouse

        warehouse = Warehouse(home / "warehouse.duckdb")
        warehouse.migrate()
        started = time.perf_counter()
        _fill(warehouse, args.runs)
        fill_seconds = time.perf_counter() - started
        ids = warehouse.query("SELECT DISTINCT run_id FROM run_metrics WHERE step > 0 ORDER BY run_id LIMIT 50")["run_id"].tolist()

        baseline_script = Path(scratch) / "baseline.py"
        baseline_script.write_text("import streamlit as st\nst.title('baseline')\n")
        _render_script(str(baseline_script))  # the first AppTest run pays Streamlit's own imports
        baseline = statistics.median(_render_script(str(baseline_script)) for _ in range(args.repeat))

        scenarios = {
            "runs table": {"experiment": "bench"},
            f"{len(ids)}-run comparison": {"experiment": "bench", "runs": ",".join(ids)},
        }
        _render_page(scenarios["runs table"], clear_cache=True)  # imports plotly, pages and the library once
        timings = {}
        for name, query in scenarios.items():
            timings[f"{name}, cold (cache cleared)"] = [_render_page(query, clear_cache=True) for _ in range(args.repeat)]
            timings[f"{name}, warm (cached)"] = [_render_page(query, clear_cache=False) for _ in range(args.repeat)]

    print(f"filled {args.runs:,} runs x 20 params x 10 metrics in {fill_seconds:.1f} s")
    print(f"baseline one-line page render: median {baseline * 1000:.0f} ms")
    for name, values in timings.items():
        median = statistics.median(values)
        verdict = "ok" if median < TARGET_SECONDS else f"over the {TARGET_SECONDS:.0f} s target"
        print(
            f"experiments page, {name:<40} median {median * 1000:6.0f} ms, max {max(values) * 1000:6.0f} ms, "
            f"{median / baseline:5.1f}x baseline ({verdict})"
        )


if __name__ == "__main__":
    main()
