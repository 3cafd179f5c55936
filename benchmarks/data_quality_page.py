"""Server-side render time of the Data quality page for a dataset with 200 checked deliveries.

Builds a home in a temporary folder: the demo's apple harvest, registered from its first
day, then 200 daily CSV deliveries ingested through the real checks (the demo's planted
problems included: quarantined rows, a warned batch, a re-sent duplicate, a rejected old
export). Renders the page with Streamlit's AppTest (the script run on the server, no
browser): cold (cache cleared, so every read opens the warehouse) and warm (cached by
the warehouse generation). The baseline is a one-line Streamlit script rendered the same
way in the same process, so the ratio shows what the page itself costs. Target: < 1 s.

    .venv/bin/python benchmarks/data_quality_page.py [--days 200] [--apples-per-day 300] [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = "../pages/data_quality.py"


def _build_home(home: Path, days: int, apples_per_day: int) -> tuple[int, float]:
    from mlops_app.auth import local_identity
    from mlops_app.config import load_settings
    from mlops_app.demo import generate_harvest
    from mlops_app.demo_quality import DATASET, ingest_recent_days
    from mlops_app.ingest import register_dataset_from_file
    from mlops_app.warehouse import Warehouse

    settings = load_settings()
    identity = local_identity(settings)
    warehouse = Warehouse.from_settings(settings)
    warehouse.migrate()
    frame = generate_harvest(days=days, apples_per_day=apples_per_day)
    sample = home / "first-day.csv"
    home.mkdir(parents=True, exist_ok=True)
    frame[frame.harvest_date == frame.harvest_date.min()].to_csv(sample, index=False)
    register_dataset_from_file(
        warehouse, DATASET, sample, identity=identity, description="Graded apples (benchmark)", id_column="apple_id",
        time_column="graded_at", target="is_bad", freshness_hours=36,
        types={"is_bad": "BOOLEAN", "label_received_at": "TIMESTAMP WITH TIME ZONE", "harvest_date": "DATE"},
    )
    started = time.perf_counter()
    results = ingest_recent_days(warehouse, home, frame, identity, seed=7, apples_per_day=apples_per_day)
    return len(results), time.perf_counter() - started


def _median_ms(timings: list[float]) -> str:
    return f"median {statistics.median(timings) * 1000:.0f} ms, max {max(timings) * 1000:.0f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=200)
    parser.add_argument("--apples-per-day", type=int, default=300)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        home = Path(scratch) / "home"
        os.environ["MLOPS_APP_HOME"] = str(home)
        deliveries, ingest_seconds = _build_home(home, args.days, args.apples_per_day)

        import streamlit as st
        from streamlit.testing.v1 import AppTest

        from mlops_app.quality import list_batches
        from mlops_app.warehouse import Warehouse

        batches = len(list_batches(Warehouse(home / "warehouse.duckdb"), "apple_harvest"))
        baseline_script = Path(scratch) / "baseline.py"
        baseline_script.write_text("import streamlit as st\nst.title('baseline')\n")
        baseline_app = AppTest.from_file(str(baseline_script), default_timeout=120)
        baseline = []
        for _ in range(args.runs):
            started = time.perf_counter()
            baseline_app.run()
            baseline.append(time.perf_counter() - started)

        # Open the page once (the entry script renders the overview first), then time reruns of it.
        app = AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=120).run()
        started = time.perf_counter()
        app.switch_page(PAGE).run()
        first = time.perf_counter() - started
        assert not app.exception, app.exception
        assert len(app.dataframe[1].value) == batches, "the deliveries table should list every batch"
        cold, warm = [], []
        for timings, clear in ((cold, True), (warm, False)):
            for _ in range(args.runs):
                if clear:
                    st.cache_data.clear()
                started = time.perf_counter()
                app.run()
                timings.append(time.perf_counter() - started)
                assert not app.exception, app.exception

    base = statistics.median(baseline)
    print(f"home: {deliveries} deliveries ingested in {ingest_seconds:.1f} s; {batches} batches listed")
    print(f"baseline one-line page: {_median_ms(baseline)}")
    print(f"data quality page, first open in a session: {first * 1000:.0f} ms")
    for name, timings in (("data quality page cold (cache cleared)", cold), ("data quality page warm (cached)", warm)):
        median = statistics.median(timings)
        verdict = "within" if median < 1.0 else "OVER"
        print(f"{name}: {_median_ms(timings)}, {median / base:.1f}x baseline, {verdict} the 1 s target")


if __name__ == "__main__":
    main()
