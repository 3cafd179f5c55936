"""Shared timing of a page's server-side render with Streamlit's AppTest, against a one-line baseline.

Used by the page benchmarks (`data_quality_page.py`, `monitoring_page.py`): each builds or
opens a home, then calls :func:`time_page` and :func:`print_timings`. The baseline is a
one-line Streamlit script rendered the same way in the same process, so the ratio shows
what the page itself costs. Cold runs clear Streamlit's data cache (every read opens the
warehouse); warm runs keep it (as when a visitor reruns and nothing new landed).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_SECONDS = 1.0


@dataclass
class PageTimings:
    baseline: list[float]
    first: float  # the first open of the page in a session (after the entry script ran once)
    cold: list[float]
    warm: list[float]


def _median_ms(timings: list[float]) -> str:
    return f"median {statistics.median(timings) * 1000:.0f} ms, max {max(timings) * 1000:.0f} ms"


def time_page(
    page: str, scratch: Path, runs: int, query: Mapping[str, str] | None = None, check: Callable[[object], None] | None = None
) -> PageTimings:
    """Render `pages/<page>.py` through `app/main.py`: once, then `runs` times cold and `runs` times warm.

    `check(app)` runs after the first open (to prove the page shows what it should); any
    exception on the page fails the benchmark rather than timing an error page.
    """
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    baseline_script = scratch / "baseline.py"
    baseline_script.write_text("import streamlit as st\nst.title('baseline')\n")
    baseline_app = AppTest.from_file(str(baseline_script), default_timeout=120)
    baseline = []
    for _ in range(runs):
        started = time.perf_counter()
        baseline_app.run()
        baseline.append(time.perf_counter() - started)

    app = AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=120).run()
    for name, value in (query or {}).items():
        app.query_params[name] = value
    started = time.perf_counter()
    app.switch_page(f"../pages/{page}.py").run()
    first = time.perf_counter() - started
    assert not app.exception, app.exception
    if check is not None:
        check(app)
    cold, warm = [], []
    for timings, clear in ((cold, True), (warm, False)):
        for _ in range(runs):
            if clear:
                st.cache_data.clear()
            started = time.perf_counter()
            app.run()
            timings.append(time.perf_counter() - started)
            assert not app.exception, app.exception
    return PageTimings(baseline, first, cold, warm)


def print_timings(title: str, timings: PageTimings) -> None:
    base = statistics.median(timings.baseline)
    print(f"baseline one-line page: {_median_ms(timings.baseline)}")
    print(f"{title}, first open in a session: {timings.first * 1000:.0f} ms")
    for name, values in ((f"{title} cold (cache cleared)", timings.cold), (f"{title} warm (cached)", timings.warm)):
        median = statistics.median(values)
        verdict = "within" if median < TARGET_SECONDS else "OVER"
        print(f"{name}: {_median_ms(values)}, {median / base:.1f}x baseline, {verdict} the {TARGET_SECONDS:g} s target")
