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
import tempfile
import time
from pathlib import Path


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

        from page_timing import print_timings, time_page

        from mlops_app.quality import list_batches
        from mlops_app.warehouse import Warehouse

        batches = len(list_batches(Warehouse(home / "warehouse.duckdb"), "apple_harvest"))

        def check(app) -> None:
            assert len(app.dataframe[1].value) == batches, "the deliveries table should list every batch"

        timings = time_page("data_quality", Path(scratch), args.runs, check=check)

    print(f"home: {deliveries} deliveries ingested in {ingest_seconds:.1f} s; {batches} batches listed")
    print_timings("data quality page", timings)


if __name__ == "__main__":
    main()
