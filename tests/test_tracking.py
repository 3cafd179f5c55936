"""Tracking API: run life cycle, buffered writes, bad input, models, concurrency, git."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import FunctionTransformer

from mlops_app.errors import IntegrityError, InvalidNameError, MlopsError, NotFoundError
from mlops_app.tracking import current_git_commit, load_run_model, start_run
from mlops_app.warehouse import Warehouse

HELPER = Path(__file__).with_name("tracking_helper.py")


@pytest.fixture
def warehouse(tmp_path: Path) -> Warehouse:
    return Warehouse(tmp_path / "home" / "warehouse.duckdb", lock_timeout=30)


def run_row(warehouse: Warehouse, run_id: str) -> dict:
    frame = warehouse.query("SELECT * FROM runs WHERE run_id = $1", [run_id])
    assert len(frame) == 1
    return frame.iloc[0].to_dict()


def count(warehouse: Warehouse, table: str, run_id: str) -> int:
    row = warehouse.query_one(f"SELECT count(*) FROM {table} WHERE run_id = $1", [run_id])
    assert row is not None
    return int(row[0])


def test_a_run_is_running_inside_the_block_and_finished_after_it(warehouse: Warehouse) -> None:
    with start_run("grader", name="first", warehouse=warehouse, author="ana@orchard.example", params={"C": 0.5}) as run:
        assert run_row(warehouse, run.run_id)["status"] == "running"
        run.log_metric("roc_auc", 0.91)
        run.set_tags({"role": "trial"})
        run.log_dataset("500-rows-abc", name="apple_harvest")
    row = run_row(warehouse, run.run_id)
    assert (row["status"], row["name"], row["author"], row["error"]) == ("finished", "first", "ana@orchard.example", None)
    assert row["dataset_fingerprint"] == "500-rows-abc"
    assert row["ended_at"] >= row["started_at"]
    params = dict(warehouse.query("SELECT key, value FROM run_params WHERE run_id = $1", [run.run_id]).values.tolist())
    tags = dict(warehouse.query("SELECT key, value FROM run_tags WHERE run_id = $1", [run.run_id]).values.tolist())
    assert params == {"C": "0.5"}
    assert tags == {"role": "trial", "dataset": "apple_harvest"}
    assert warehouse.query_one("SELECT value FROM run_metrics WHERE run_id = $1", [run.run_id]) == (0.91,)
    assert warehouse.query_one("SELECT description FROM experiments WHERE name = 'grader'") == ("",)


def test_an_exception_in_the_block_marks_the_run_failed_and_keeps_what_was_logged(warehouse: Warehouse) -> None:
    with pytest.raises(ZeroDivisionError):
        with start_run("grader", warehouse=warehouse, flush_points=10_000) as run:
            run.log_metric("loss", 0.7, step=0)
            run.log_metric("loss", 0.5, step=1)
            1 / 0  # noqa: B018
    row = run_row(warehouse, run.run_id)
    assert row["status"] == "failed"
    assert row["error"] == "ZeroDivisionError: division by zero"
    assert count(warehouse, "run_metrics", run.run_id) == 2  # flushed on failure too
    with pytest.raises(MlopsError, match="has ended"):
        run.log_metric("loss", 0.1)


def test_one_thousand_points_are_written_in_a_few_transactions(warehouse: Warehouse) -> None:
    run = start_run("curves", warehouse=warehouse, flush_points=1000, flush_seconds=3600)
    generation = warehouse.generation()
    started = time.perf_counter()
    with run:
        for step in range(999):
            run.log_metric("loss", 1.0 / (step + 1), step=step)
        assert count(warehouse, "run_metrics", run.run_id) == 0  # still buffered
        run.log_metric("loss", 0.0001, step=999)  # the 1,000th value triggers the flush
        assert count(warehouse, "run_metrics", run.run_id) == 1000
    elapsed = time.perf_counter() - started
    # One flush and the final write: each committed transaction bumps the generation once.
    assert warehouse.generation() - generation == 2
    assert warehouse.query_one("SELECT count(DISTINCT step), max(step) FROM run_metrics WHERE run_id = $1", [run.run_id]) == (1000, 999)
    assert elapsed < 5, f"logging 1,000 points took {elapsed:.2f} s"


def test_an_old_buffer_is_written_on_the_next_log_call(warehouse: Warehouse) -> None:
    with start_run("curves", warehouse=warehouse, flush_points=10_000, flush_seconds=0.0) as run:
        run.log_metric("loss", 0.3)
        assert count(warehouse, "run_metrics", run.run_id) == 1
        run.log_metric("loss", 0.2, step=1)
        run.flush()
        assert run.pending == 0
        assert count(warehouse, "run_metrics", run.run_id) == 2


def test_a_run_id_cannot_be_logged_twice(warehouse: Warehouse) -> None:
    with start_run("grader", warehouse=warehouse, run_id="nightly-2026-07-01"):
        pass
    with pytest.raises(MlopsError, match=r"Run nightly-2026-07-01 was already logged \(experiment 'grader', finished"):
        start_run("other", warehouse=warehouse, run_id="nightly-2026-07-01")
    assert warehouse.query_one("SELECT count(*) FROM runs") == (1,)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, np.float64("nan")])
def test_a_nan_or_infinite_metric_is_refused_with_its_name(warehouse: Warehouse, value: float) -> None:
    with start_run("grader", warehouse=warehouse) as run:
        with pytest.raises(ValueError, match=r"Metric 'roc_auc' is -?(nan|inf) at step 3; metrics must be finite"):
            run.log_metrics({"f1": 0.8, "roc_auc": value}, step=3)
        run.log_metric("f1", 0.7)
    # All values of a call are checked before any is kept.
    assert warehouse.query("SELECT key, value FROM run_metrics WHERE run_id = $1", [run.run_id]).values.tolist() == [["f1", 0.7]]
    assert run_row(warehouse, run.run_id)["status"] == "finished"


def test_other_bad_values_are_refused_with_clear_messages(warehouse: Warehouse) -> None:
    with pytest.raises(InvalidNameError, match="Experiment name '../x' is not allowed"):
        start_run("../x", warehouse=warehouse)
    with pytest.raises(InvalidNameError, match="Run id 'a/b' is not allowed"):
        start_run("grader", warehouse=warehouse, run_id="a/b")
    with start_run("grader", warehouse=warehouse, params={"C": 1.0}) as run:
        with pytest.raises(ValueError, match="Param 'C' of run .* is already '1.0'; it cannot become '2.0'"):
            run.log_param("C", 2.0)
        run.log_param("C", 1.0)  # the same value again is fine
        with pytest.raises(ValueError, match="Metric 'loss' is 'low'"):
            run.log_metric("loss", "low")
        with pytest.raises(ValueError, match="step must be a whole number >= 0"):
            run.log_metric("loss", 0.1, step=-1)
        with pytest.raises(ValueError, match="cannot be stored as JSON"):
            run.log_result("holdout", {"auc": math.nan})
    with pytest.raises(MlopsError, match="already ended"):
        run.finish()


def test_a_logged_model_loads_back_and_a_changed_file_is_refused(warehouse: Warehouse) -> None:
    features = np.array([[0.0], [1.0], [2.0], [3.0]])
    model = LogisticRegression().fit(features, [0, 0, 1, 1])
    with start_run("grader", warehouse=warehouse) as run:
        path = run.log_model(model)
    assert path == warehouse.path.parent / "runs" / run.run_id / "model.skops"
    loaded = load_run_model(warehouse, run.run_id)
    assert loaded.predict(features).tolist() == [0, 0, 1, 1]

    path.write_bytes(path.read_bytes() + b"tampered")
    with pytest.raises(IntegrityError, match="does not match its recorded sha256"):
        load_run_model(warehouse, run.run_id)
    with start_run("grader", warehouse=warehouse) as bare:
        pass
    with pytest.raises(NotFoundError, match="logged no model"):
        load_run_model(warehouse, bare.run_id)


def test_a_model_with_untrusted_types_is_not_saved(warehouse: Warehouse) -> None:
    with start_run("grader", warehouse=warehouse) as run:
        with pytest.raises(IntegrityError, match="not on the vetted allow-list .*system"):
            run.log_model(FunctionTransformer(func=os.system))
    assert not (warehouse.path.parent / "runs" / run.run_id / "model.skops").exists()


def test_two_processes_logging_at_once_lose_nothing(warehouse: Warehouse, tmp_path: Path) -> None:
    warehouse.migrate()
    start_file = tmp_path / "go"
    processes = [
        subprocess.Popen(
            [sys.executable, str(HELPER), str(warehouse.path), "shared", name, "400", "25", str(start_file)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("notebook", "trainer")
    ]
    try:
        run_ids = []
        for process in processes:
            assert process.stdout is not None
            line = process.stdout.readline()
            assert line.startswith("ready"), process.stderr.read() if process.stderr else line
            run_ids.append(line.split()[1])
        start_file.touch()
        outputs = [process.communicate(timeout=120) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert [process.returncode for process in processes] == [0, 0], outputs
    for run_id in run_ids:
        assert count(warehouse, "run_metrics", run_id) == 400
        assert run_row(warehouse, run_id)["status"] == "finished"
    # Both really logged at the same time (16 flushes each, taking turns at the lock).
    spans = warehouse.query("SELECT run_id, min(logged_at) AS first, max(logged_at) AS last FROM run_metrics GROUP BY run_id")
    (first_a, last_a), (first_b, last_b) = spans[["first", "last"]].values.tolist()
    assert first_a < last_b and first_b < last_a


def test_the_git_commit_is_recorded_in_a_repository_and_none_outside(warehouse: Warehouse, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    repository, plain = tmp_path / "repo", tmp_path / "plain"
    repository.mkdir()
    plain.mkdir()
    git = ["git", "-c", "user.name=Test", "-c", "user.email=test@example.com"]
    subprocess.run([*git, "init", "-q"], cwd=repository, check=True)
    (repository / "train.py").write_text("print('train')\n")
    subprocess.run([*git, "add", "train.py"], cwd=repository, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "first"], cwd=repository, check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repository, check=True, capture_output=True, text=True).stdout.strip()

    with start_run("grader", warehouse=warehouse, git_cwd=repository) as inside:
        pass
    monkeypatch.chdir(plain)
    with start_run("grader", warehouse=warehouse) as outside:
        pass
    assert run_row(warehouse, inside.run_id)["git_commit"] == head
    assert run_row(warehouse, outside.run_id)["git_commit"] is None
    assert current_git_commit(tmp_path / "missing") is None
