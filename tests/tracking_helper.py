"""A second process for the concurrent-logging test (run with sys.executable).

Usage: python tracking_helper.py DATABASE EXPERIMENT RUN_NAME POINTS FLUSH_POINTS START_FILE

Starts a run, prints "ready <run_id>", waits until START_FILE exists, then logs POINTS
values of the metric ``loss`` (steps 0..POINTS-1), flushing every FLUSH_POINTS values,
ends the run and prints "done".
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from mlops_app.tracking import start_run
from mlops_app.warehouse import Warehouse


def main(argv: list[str]) -> int:
    database, experiment, name, points, flush_points, start_file = argv
    warehouse = Warehouse(database, lock_timeout=60)
    with start_run(experiment, name=name, warehouse=warehouse, flush_points=int(flush_points), flush_seconds=3600) as run:
        print(f"ready {run.run_id}", flush=True)
        while not Path(start_file).exists():
            time.sleep(0.005)
        for step in range(int(points)):
            run.log_metric("loss", 1.0 / (step + 1), step=step)
        run.log_param("process", name)
    print("done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
