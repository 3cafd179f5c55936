"""Server-side render time of the Features page over a catalogue of 1,000 features.

Builds a home with a harvest of ``--rows`` apples, 1,000 registered features (20 computed:
10 raw per apple and 10 windowed aggregates per orchard block; 980 more registered only)
and a registry of a few model versions listing them, using the generators of
benchmarks/features_benchmark.py. Then renders the page through app/main.py with
Streamlit's AppTest (the server-side script run, no browser), timing only the Features
page's run:

* the catalogue (all 1,000 rows in the table), cold (cache cleared) and warm;
* one feature opened by a deep link (/features?feature=NAME), aggregate and raw, cold and warm;
* one feature opened from the catalogue's picker (the rerun after the choice), cold.

The baseline is a one-line Streamlit script rendered the same way in the same process (a
script run after an untimed first one), so the ratios show what the page itself costs. Target: < 1 s for the catalogue and for
opening a feature, cold.

    .venv/bin/python benchmarks/features_page.py [--rows 1000000] [--runs 5]
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from features_benchmark import ADMIN, _definitions, _harvest, _registry_with_models  # sibling script in benchmarks/

ROOT = Path(__file__).resolve().parents[1]
ENTRY = str(ROOT / "app" / "main.py")
PAGE = "../pages/features.py"
FEATURES = 1000
COMPUTED = 20


def _build_home(home: Path, rows: int) -> list[str]:
    """A home with the harvest, 1,000 registered features (20 computed) and a small registry."""
    from mlops_app import features as F
    from mlops_app.config import load_settings
    from mlops_app.datasets import Dataset, columns_from_frame, create_dataset_table
    from mlops_app.warehouse import Warehouse

    settings = load_settings({"MLOPS_APP_HOME": str(home)})
    warehouse = Warehouse(settings.warehouse_path, lock_timeout=600)
    warehouse.migrate()
    started = time.perf_counter()
    harvest = _harvest(rows)
    roles = {"apple_id": "id", "graded_at": "timestamp"}
    dataset = Dataset("harvest", "bench", "bench", "bench", tuple(columns_from_frame(harvest, roles)),
                      id_column="apple_id", time_column="graded_at", freshness_hours=36)  # fmt: skip
    with warehouse.transaction() as connection:
        create_dataset_table(connection, warehouse, dataset, harvest)
    feature_set = F.definitions_from_yaml(_definitions(extra=FEATURES - COMPUTED))
    F.apply_features(warehouse, feature_set, ADMIN)
    names = [feature.name for feature in feature_set.features if not feature.name.startswith("catalogue_filler_")]
    F.materialize(warehouse, ADMIN, names)
    _registry_with_models(settings.registry_path, names)
    seconds = time.perf_counter() - started
    print(f"home: {rows:,} rows, {len(feature_set.features):,} features ({len(names)} computed), built in {seconds:.1f} s")
    return names


def _page_seconds(runs: int, *, clear_cache: bool, prepare: Callable | None = None, act: Callable | None = None) -> list[float]:
    """Times of the Features page's script run alone (the entry's first run, the overview, is not timed)."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    timings = []
    for _ in range(runs):
        at = AppTest.from_file(ENTRY, default_timeout=120).run()
        if prepare is not None:
            prepare(at)
        if act is not None:  # open the catalogue untimed, then time the interaction's rerun
            at.switch_page(PAGE).run()
        if clear_cache:
            st.cache_data.clear()
        started = time.perf_counter()
        at = act(at) if act is not None else at.switch_page(PAGE).run()
        timings.append(time.perf_counter() - started)
        assert not at.exception, at.exception
        assert at.title[0].value == "Features"
    return timings


def _baseline_seconds(script: Path, runs: int) -> list[float]:
    """A one-line script's run, timed like the page's: after an untimed first run."""
    from streamlit.testing.v1 import AppTest

    timings = []
    for _ in range(runs):
        at = AppTest.from_file(str(script), default_timeout=120).run()
        started = time.perf_counter()
        at = at.run()
        timings.append(time.perf_counter() - started)
        assert not at.exception
    return timings


def _library_seconds(runs: int, work: Callable) -> list[float]:
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        timings.append(time.perf_counter() - started)
    return timings


def _deep_link(name: str) -> Callable:
    def prepare(at) -> None:
        at.query_params["feature"] = name

    return prepare


def _check_catalogue(at) -> None:
    table = next(frame for frame in at.dataframe if frame.key and frame.key.startswith("features_table")).value
    assert len(table) == FEATURES, len(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    logging.disable(logging.WARNING)  # AppTest without a server logs a notice per run and cache use
    with tempfile.TemporaryDirectory() as scratch:
        home = Path(scratch) / "home"
        for name in [name for name in os.environ if name.startswith("MLOPS_APP_")]:
            del os.environ[name]
        os.environ["MLOPS_APP_HOME"] = str(home)
        _build_home(home, args.rows)

        script = Path(scratch) / "baseline.py"
        script.write_text("import streamlit as st\nst.title('baseline')\n")
        results = {"baseline one-line page": _baseline_seconds(script, args.runs)}
        library: dict[str, list[float]] = {}

        from streamlit.testing.v1 import AppTest

        at = AppTest.from_file(ENTRY, default_timeout=120).run().switch_page(PAGE).run()
        _check_catalogue(at)
        results["catalogue of 1,000, cold"] = _page_seconds(args.runs, clear_cache=True)
        results["catalogue of 1,000, warm"] = _page_seconds(args.runs, clear_cache=False)
        for name, kind in (("block_m0_avg_7d", "aggregate"), ("m1", "raw")):
            results[f"deep link to {kind} {name}, cold"] = _page_seconds(args.runs, clear_cache=True, prepare=_deep_link(name))
            results[f"deep link to {kind} {name}, warm"] = _page_seconds(args.runs, clear_cache=False, prepare=_deep_link(name))

        from mlops_app import features_view as view
        from mlops_app.ui import state

        warehouse, registry = state.warehouse(), state.registry()
        for name, kind in (("block_m0_avg_7d", "aggregate"), ("m1", "raw")):
            library[f"feature_overview alone, {kind} {name}"] = _library_seconds(
                args.runs, lambda name=name: view.overview(warehouse, registry, name, view.clock())
            )
        library["list_features alone, 1,000"] = _library_seconds(args.runs, lambda: view.catalogue(warehouse, view.clock()))

        def pick(at):
            return at.selectbox(key="features_open").select("block_m2_high_share_7d").run()

        results["open from the catalogue's picker, cold"] = _page_seconds(args.runs, clear_cache=True, act=pick)

    base = statistics.median(results.pop("baseline one-line page"))
    # Figures on a shared machine drift with its load: say what it was.
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} over the last minute")
    print(f"baseline one-line page render: median {base * 1000:.0f} ms")
    for label, timings in results.items():
        median = statistics.median(timings)
        verdict = "" if "warm" in label else ("  (target < 1 s: met)" if median < 1 else "  (target < 1 s: MISSED)")
        print(f"{label}: median {median * 1000:.0f} ms, max {max(timings) * 1000:.0f} ms, {median / base:.1f}x baseline{verdict}")
    print("the library's share of a cold render (one warehouse unit of work, no Streamlit):")
    for label, timings in library.items():
        print(f"  {label}: median {statistics.median(timings) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
