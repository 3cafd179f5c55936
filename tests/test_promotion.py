"""Promotion requests, gates, approvals, refusals, rollback and history, on a real registry and warehouse."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from mlops_app import promotion
from mlops_app.auth import Identity
from mlops_app.config import Settings, load_settings
from mlops_app.datasets import BATCH_COLUMN, Dataset, columns_from_frame, register_dataset
from mlops_app.errors import InvalidNameError, MlopsError, NotFoundError, PermissionDeniedError
from mlops_app.promotion import (
    APPROVED,
    FAILED,
    GATE_METRIC,
    GATE_QUALITY,
    GATE_SCHEMA,
    GATE_SLICES,
    GATE_SMOKE,
    PASSED,
    PENDING,
    REJECTED,
    SKIPPED,
    GateConfig,
    approve,
    champion_on,
    evaluate_gates,
    reject,
    request_promotion,
    request_rollback,
)
from mlops_app.quality import CheckResult, record_results
from mlops_app.registry import Registry
from mlops_app.warehouse import Warehouse

HELPER = Path(__file__).with_name("promotion_race_helper.py")
MODEL = "grader"
DATASET = "orchard"
SCHEMA = [{"name": "weight", "dtype": "DOUBLE"}, {"name": "variety", "dtype": "VARCHAR"}]
SLICES = [
    {"column": "variety", "value": "gala", "rows": 120, "metrics": {"recall_bad": 0.89}},
    {"column": "variety", "value": "fuji", "rows": 100, "metrics": {"recall_bad": 0.93}},
    {"column": "variety", "value": "rare", "rows": 5, "metrics": {"recall_bad": 0.10}},
]

VIEWER = Identity("vic@example.com", "Vic", "viewer", "local")
REVIEWER = Identity("rita@example.com", "Rita", "reviewer", "local")
APPROVER = Identity("alan@example.com", "Alan", "approver", "local")
APPROVER_2 = Identity("bea@example.com", "Bea", "approver", "local")
ADMIN = Identity("ada@example.com", "Ada", "admin", "local")


@pytest.fixture(scope="module")
def apples() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    rows = 240
    frame = pd.DataFrame(
        {
            "weight": rng.normal(200, 30, rows).round(1),
            "variety": rng.choice(["gala", "fuji"], rows),
            "graded_at": pd.date_range("2026-08-01", periods=rows, freq="h", tz="UTC"),
        }
    )
    frame["is_bad"] = (frame["weight"] < 185) | (rng.random(rows) < 0.05)
    return frame


@pytest.fixture(scope="module")
def fitted(apples) -> Pipeline:
    prepare = ColumnTransformer([("numbers", StandardScaler(), ["weight"]), ("categories", OneHotEncoder(handle_unknown="ignore"), ["variety"])])
    return Pipeline([("prepare", prepare), ("model", LogisticRegression())]).fit(apples[["weight", "variety"]], apples["is_bad"])


@dataclass
class World:
    settings: Settings
    registry: Registry
    warehouse: Warehouse
    estimator: Pipeline

    def register(self, recall: float = 0.92, *, slices=SLICES, schema=SCHEMA, dataset: str | None = DATASET, extra=None, model=MODEL, metrics=None):
        card_extra = {"key_metric": "recall_bad", "holdout_slices": slices, **({"dataset": dataset} if dataset else {}), **(extra or {})}
        return self.registry.register_version(
            model, self.estimator, actor="rita@example.com", metrics=metrics or {"recall_bad": recall, "false_discard_rate": 0.03},
            input_schema=schema, extra=card_extra, description="A test grader",
        )  # fmt: skip

    def quality(self, *results: tuple[str, str, str], batch: str = "b1", at: datetime | None = None) -> None:
        rows = [
            CheckResult(name, "range", "row", severity, "weight", status, 0 if status == "pass" else 7, 240, {}, f"{name}: {status} (7 rows)", name)
            for name, status, severity in results
        ]
        with self.warehouse.transaction() as con:
            record_results(con, rows, batch_id=batch, dataset=DATASET, checked_at=at or datetime.now(UTC))

    def request(self, version: int, alias: str = "champion", who: Identity = REVIEWER, reason: str = "Better at catching bad apples"):
        return request_promotion(self.settings, self.registry, self.warehouse, MODEL, version, alias, who, reason=reason)

    def events(self, name: str | None = None) -> list[dict]:
        return [event for event in self.registry.events(MODEL) if name is None or event["event"] == name]

    def aliases(self) -> dict[str, int]:
        return self.registry.get_model(MODEL).aliases


@pytest.fixture
def world(apples, fitted) -> World:
    settings = load_settings()
    warehouse = Warehouse.from_settings(settings)
    warehouse.migrate()
    dataset = Dataset(
        DATASET, "Graded apples", "q@example.com", "test",
        columns=tuple(columns_from_frame(apples, {"graded_at": "timestamp", "is_bad": "target"})),
        target="is_bad", time_column="graded_at",
    )  # fmt: skip
    with warehouse.transaction() as con:
        register_dataset(warehouse, dataset, con=con)
        con.register("frame", apples.assign(**{BATCH_COLUMN: "b1"}))
        con.execute(f"CREATE TABLE ds_{DATASET} AS SELECT * FROM frame")
        con.unregister("frame")
    registry = Registry(settings.registry_path, lock_timeout=20)
    result = World(settings, registry, warehouse, fitted)
    result.quality(("weight_range", "pass", "error"), ("weight_drift", "pass", "warn"))
    result.register(0.90)
    registry.set_alias(MODEL, "champion", 1, actor="ada@example.com", reason="first release", at=datetime(2026, 7, 1, tzinfo=UTC))
    return result


def gate(results, name):
    return next(result for result in results if result.name == name)


def save_gates(world: World, **settings) -> None:
    promotion.save_gate_config(world.registry, MODEL, GateConfig(**settings), ADMIN)


# --- Gates --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("recall", "status", "detail"),
    [
        (0.95, PASSED, "Bad apples caught 95.0% vs champion 90.0% (version 1; tolerance 1 point): passed."),
        (0.895, PASSED, "Bad apples caught 89.5% vs champion 90.0% (version 1; tolerance 1 point): passed."),
        (0.88, FAILED, "Bad apples caught 88.0% vs champion 90.0% (version 1; tolerance 1 point): failed."),
    ],
)
def test_metric_gate_compares_with_the_champion_within_the_tolerance(world, recall, status, detail):
    version = world.register(recall)
    result = gate(evaluate_gates(world.registry, world.warehouse, MODEL, version.version), GATE_METRIC)
    assert (result.status, result.detail) == (status, detail)
    assert result.measured["champion_value"] == 0.90


def test_metric_gate_knows_lower_is_better_and_uses_the_configured_tolerance(world):
    save_gates(world, metric="false_discard_rate", tolerance=0.005)
    worse = world.register(metrics={"recall_bad": 0.95, "false_discard_rate": 0.04})  # champion: 3.0%
    result = gate(evaluate_gates(world.registry, world.warehouse, MODEL, worse.version), GATE_METRIC)
    assert result.status == FAILED
    assert result.detail.startswith("Good apples discarded 4.0% vs champion 3.0% (version 1; tolerance 0.5 points): failed")
    better = world.register(metrics={"recall_bad": 0.80, "false_discard_rate": 0.02})
    assert gate(evaluate_gates(world.registry, world.warehouse, MODEL, better.version), GATE_METRIC).status == PASSED


def test_metric_and_schema_gates_are_skipped_for_a_first_release(world):
    world.registry.remove_alias(MODEL, "champion", actor="ada@example.com")
    results = evaluate_gates(world.registry, world.warehouse, MODEL, 1)
    assert gate(results, GATE_METRIC).status == SKIPPED
    assert gate(results, GATE_SCHEMA).status == SKIPPED
    assert "first release" in gate(results, GATE_METRIC).detail


def test_slice_gate_fails_when_a_group_is_much_worse_than_overall(world):
    good = world.register(0.92)
    result = gate(evaluate_gates(world.registry, world.warehouse, MODEL, good.version), GATE_SLICES)
    assert result.status == PASSED
    assert "the weakest, variety = gala, has bad apples caught 89.0% vs 92.0% overall (3 points lower; limit 10 points)" in result.detail
    assert "1 group with under 30 rows not judged" in result.detail  # "rare" at 10% with 5 rows is noise
    biased = world.register(0.92, slices=[*SLICES, {"column": "block", "value": "h", "rows": 80, "metrics": {"recall_bad": 0.70}}])
    result = gate(evaluate_gates(world.registry, world.warehouse, MODEL, biased.version), GATE_SLICES)
    assert result.status == FAILED
    assert result.detail.startswith("1 of 3 groups are more than 10 points worse than overall on bad apples caught (92.0%): block = h 70.0% (22 points lower, 80 rows)")
    assert result.measured["groups_too_low"] == ["block = h"]


def test_slice_gate_fails_without_recorded_slices(world):
    version = world.register(0.92, slices=None)
    result = gate(evaluate_gates(world.registry, world.warehouse, MODEL, version.version), GATE_SLICES)
    assert result.status == FAILED
    assert "recorded no per-group (slice) results" in result.detail


def test_quality_gate_passes_with_warnings_and_fails_on_a_failing_check(world):
    version = world.register(0.92)
    world.quality(("weight_range", "pass", "error"), ("weight_drift", "warn", "warn"), batch="b2")
    result = gate(evaluate_gates(world.registry, world.warehouse, MODEL, version.version), GATE_QUALITY)
    assert result.status == PASSED
    assert "1 gave a warning (weight_drift), which does not block" in result.detail
    world.quality(("weight_range", "fail", "error"), ("weight_drift", "pass", "warn"), batch="b3")
    result = gate(evaluate_gates(world.registry, world.warehouse, MODEL, version.version), GATE_QUALITY)
    assert result.status == FAILED
    assert "1 of 2 checks of orchard fail on the latest data" in result.detail and "weight_range: fail (7 rows)" in result.detail


def test_quality_gate_fails_when_nothing_was_checked_or_no_dataset_is_known(world):
    world.warehouse.execute("DELETE FROM quality_results")
    version = world.register(0.92)
    result = gate(evaluate_gates(world.registry, world.warehouse, MODEL, version.version), GATE_QUALITY)
    assert result.status == FAILED and "No data quality checks have run on orchard yet" in result.detail
    other = world.register(0.92, model="lonely", dataset=None)
    results = evaluate_gates(world.registry, world.warehouse, "lonely", other.version)
    assert gate(results, GATE_QUALITY).status == FAILED
    assert "No dataset is known for version 1" in gate(results, GATE_QUALITY).detail
    assert "No dataset is known" in gate(results, GATE_SMOKE).detail


def test_schema_gate_accepts_compatible_types_and_refuses_new_columns_and_type_changes(world):
    same = world.register(0.92, schema=[{"name": "weight", "dtype": "float64"}, {"name": "variety", "dtype": "str"}])
    result = gate(evaluate_gates(world.registry, world.warehouse, MODEL, same.version), GATE_SCHEMA)
    assert (result.status, result.detail) == (PASSED, "Same 2 input columns as the champion (version 1), with compatible types: passed.")
    changed = world.register(0.92, schema=[{"name": "weight", "dtype": "VARCHAR"}, {"name": "variety", "dtype": "VARCHAR"}, {"name": "sugar", "dtype": "DOUBLE"}])
    result = gate(evaluate_gates(world.registry, world.warehouse, MODEL, changed.version), GATE_SCHEMA)
    assert result.status == FAILED
    assert "it needs columns the champion's callers do not send: sugar; columns changed type: weight (number → text)" in result.detail


def test_smoke_test_predicts_on_real_rows_and_fails_on_missing_columns_or_a_changed_artifact(world):
    version = world.register(0.92)
    result = gate(evaluate_gates(world.registry, world.warehouse, MODEL, version.version), GATE_SMOKE)
    assert result.status == PASSED and result.measured["rows"] == 200
    assert "predicted 200 recent rows of orchard" in result.detail
    wrong = world.register(0.92, schema=[*SCHEMA, {"name": "sugar", "dtype": "DOUBLE"}])
    assert "Dataset orchard lacks the columns sugar and the feature store could not provide them" in gate(evaluate_gates(world.registry, world.warehouse, MODEL, wrong.version), GATE_SMOKE).detail
    version.artifact_path.write_bytes(version.artifact_path.read_bytes() + b"tampered")
    result = gate(evaluate_gates(world.registry, world.warehouse, MODEL, version.version), GATE_SMOKE)
    assert result.status == FAILED and "does not match its recorded sha256" in result.detail


def test_gates_can_be_turned_off_per_model_and_bad_settings_are_refused(world):
    save_gates(world, disabled=["slices"])
    version = world.register(0.92, slices=None)
    result = gate(evaluate_gates(world.registry, world.warehouse, MODEL, version.version), GATE_SLICES)
    assert (result.status, result.detail) == (SKIPPED, "Turned off for this model in its gate settings by an admin.")
    assert world.events("gates_configured")[-1]["actor"] == ADMIN.email
    with pytest.raises(PermissionDeniedError, match="needs the admin role"):
        promotion.save_gate_config(world.registry, MODEL, GateConfig(), APPROVER)
    with pytest.raises(MlopsError, match=r"disabled.0: Input should be 'holdout_metric'"):
        promotion.gate_config_from_yaml("disabled: [everything]")
    with pytest.raises(MlopsError, match="tolerance: Input should be greater than or equal to 0"):
        promotion.gate_config_from_yaml("tolerance: -1")


# --- Requests and approvals -----------------------------------------------------------------------


def test_request_then_approve_moves_the_alias_and_records_every_step(world):
    version = world.register(0.93)
    request = world.request(version.version)
    assert request.status == PENDING and request.gates_passed and len(request.gates) == 5
    assert request.from_version == 1 and request.compared_with == 1
    stored = promotion.get_request(world.registry, MODEL, request.id)
    assert stored == request
    assert world.aliases()["champion"] == 1

    approved = approve(world.settings, world.registry, MODEL, request.id, APPROVER, comment="Looks right")
    assert approved.status == APPROVED and approved.decided_by == APPROVER.email
    assert world.aliases()["champion"] == version.version
    assert promotion.get_request(world.registry, MODEL, request.id).status == APPROVED
    names = [event["event"] for event in world.events()][-4:]
    assert names == ["requested", "gates_evaluated", "alias_set", "approved"]
    assert world.events("approved")[-1]["details"]["request_id"] == request.id
    texts = [entry.text for entry in promotion.timeline(world.registry, MODEL)]
    assert f"rita@example.com asked to make version {version.version} champion: “Better at catching bad apples”" in texts
    assert "alan@example.com approved version 2 as champion: “Looks right”" in texts


def assert_refused_and_unchanged(world: World, before_events: int, aliases: dict, action: str, actor: str, request=None):
    events = world.events()
    assert len(events) == before_events + 1, [event["event"] for event in events[before_events:]]
    assert events[-1]["event"] == "refused"
    assert events[-1]["actor"] == actor and events[-1]["details"]["action"] == action
    assert world.aliases() == aliases
    if request is not None:
        assert promotion.get_request(world.registry, MODEL, request.id) == request


def test_an_approver_role_is_needed_to_approve_and_a_reviewer_role_to_request(world):
    version = world.register(0.93)
    before, aliases = len(world.events()), world.aliases()
    with pytest.raises(PermissionDeniedError, match="vic@example.com has the viewer role, and request promotion needs the reviewer role"):
        world.request(version.version, who=VIEWER)
    assert_refused_and_unchanged(world, before, aliases, "request_promotion", VIEWER.email)
    assert promotion.list_requests(world.registry, MODEL) == []

    request = world.request(version.version)
    before = len(world.events())
    with pytest.raises(PermissionDeniedError, match="rita@example.com has the reviewer role, and approve promotion needs the approver role"):
        approve(world.settings, world.registry, MODEL, request.id, REVIEWER)
    assert_refused_and_unchanged(world, before, aliases, "approve_promotion", REVIEWER.email, request)


def test_the_requester_cannot_approve_their_own_request_unless_allowed(world):
    version = world.register(0.93)
    request = world.request(version.version, who=APPROVER)
    before, aliases = len(world.events()), world.aliases()
    with pytest.raises(PermissionDeniedError, match="alan@example.com requested this change and cannot also approve it"):
        approve(world.settings, world.registry, MODEL, request.id, APPROVER)
    assert_refused_and_unchanged(world, before, aliases, "approve_promotion", APPROVER.email, request)

    relaxed = world.settings.with_overrides(allow_self_approval=True)
    assert approve(relaxed, world.registry, MODEL, request.id, APPROVER).status == APPROVED
    assert world.aliases()["champion"] == version.version


def test_a_failed_gate_blocks_approval_until_an_admin_overrides_with_a_reason(world):
    version = world.register(0.80)  # 10 points below the champion
    request = world.request(version.version)
    assert [gate.name for gate in request.failed_gates] == [GATE_METRIC] and request.blocked
    assert request.summary.startswith("Blocked: rita@example.com asks to make version 2 champion, but 1 of 5 gates failed")
    before, aliases = len(world.events()), world.aliases()

    with pytest.raises(MlopsError, match=r"is blocked: 1 gate\(s\) failed \(holdout result at least the champion's\)"):
        approve(world.settings, world.registry, MODEL, request.id, APPROVER)
    assert_refused_and_unchanged(world, before, aliases, "approve_promotion", APPROVER.email, request)

    with pytest.raises(PermissionDeniedError, match="alan@example.com has the approver role, and override gate needs the admin role"):
        approve(world.settings, world.registry, MODEL, request.id, APPROVER, override_reason="We accept it")
    assert_refused_and_unchanged(world, before + 1, aliases, "approve_promotion", APPROVER.email, request)

    with pytest.raises(MlopsError, match="An override needs a written reason"):
        approve(world.settings, world.registry, MODEL, request.id, ADMIN, override_reason="   ")
    assert_refused_and_unchanged(world, before + 2, aliases, "approve_promotion", ADMIN.email, request)

    approved = approve(world.settings, world.registry, MODEL, request.id, ADMIN, override_reason="Catches new-block rot the old one misses")
    assert approved.override.by == ADMIN.email and approved.override.gates == (GATE_METRIC,)
    assert world.aliases()["champion"] == version.version
    assert [event["event"] for event in world.events()][-3:] == ["gate_overridden", "alias_set", "approved"]


def test_an_admin_override_lets_another_approver_approve(world):
    version = world.register(0.80)
    request = world.request(version.version)
    with pytest.raises(PermissionDeniedError, match="override gate needs the admin role"):
        promotion.override_gates(world.settings, world.registry, MODEL, request.id, APPROVER, reason="fine")
    promotion.override_gates(world.settings, world.registry, MODEL, request.id, ADMIN, reason="Accepted by the quality lead")
    approved = approve(world.settings, world.registry, MODEL, request.id, APPROVER)
    assert approved.status == APPROVED and approved.override.reason == "Accepted by the quality lead"


def test_a_version_that_does_not_exist_is_refused_and_logged(world):
    before, aliases = len(world.events()), world.aliases()
    with pytest.raises(NotFoundError, match="Model 'grader' has no version 9. Versions: 1"):
        world.request(9)
    assert_refused_and_unchanged(world, before, aliases, "request_promotion", REVIEWER.email)
    assert world.events()[-1]["details"]["version_given"] == "9"
    with pytest.raises(NotFoundError, match="No model named 'ghost'"):
        request_promotion(world.settings, world.registry, world.warehouse, "ghost", 1, "champion", REVIEWER, reason="x")


@pytest.mark.parametrize("alias", ["../champion", "Champion", "12", "", "a b", "%2e%2e", "chаmpion"])
def test_an_alias_name_outside_the_rules_is_refused_and_logged(world, alias):
    version = world.register(0.93)
    before, aliases = len(world.events()), world.aliases()
    with pytest.raises(InvalidNameError, match="is not allowed"):
        world.request(version.version, alias=alias)
    assert_refused_and_unchanged(world, before, aliases, "request_promotion", REVIEWER.email)
    assert promotion.list_requests(world.registry, MODEL) == []


def test_a_decided_request_cannot_be_decided_again(world):
    version = world.register(0.93)
    request = world.request(version.version)
    approved = approve(world.settings, world.registry, MODEL, request.id, APPROVER)
    before, aliases = len(world.events()), world.aliases()
    with pytest.raises(MlopsError, match=rf"Request {request.id} was already approved by alan@example.com at 20\d\d-"):
        approve(world.settings, world.registry, MODEL, request.id, APPROVER_2)
    with pytest.raises(MlopsError, match="was already approved by alan@example.com"):
        reject(world.settings, world.registry, MODEL, request.id, APPROVER_2, comment="too late")
    assert len(world.events()) == before + 2 and world.aliases() == aliases
    assert promotion.get_request(world.registry, MODEL, request.id) == approved


def test_reject_needs_a_comment_and_changes_no_alias(world):
    version = world.register(0.93)
    request = world.request(version.version)
    with pytest.raises(MlopsError, match="A rejection needs a comment"):
        reject(world.settings, world.registry, MODEL, request.id, APPROVER, comment=" ")
    rejected = reject(world.settings, world.registry, MODEL, request.id, APPROVER, comment="Retrain with September data")
    assert rejected.status == REJECTED and rejected.comment == "Retrain with September data"
    assert world.aliases()["champion"] == 1
    assert world.events()[-1]["event"] == "rejected"


def test_bad_requests_are_refused(world):
    version = world.register(0.93)
    with pytest.raises(MlopsError, match="a request needs a reason"):
        world.request(version.version, reason="  ")
    with pytest.raises(MlopsError, match="Version 1 of grader is already champion"):
        world.request(1)
    first = world.request(version.version)
    with pytest.raises(MlopsError, match=f"Request {first.id} .* is still pending"):
        world.request(version.version)
    with pytest.raises(InvalidNameError, match="is not a request id"):
        approve(world.settings, world.registry, MODEL, "../../model", APPROVER)
    with pytest.raises(NotFoundError, match="has no request req-20260101-000000-abcdef"):
        approve(world.settings, world.registry, MODEL, "req-20260101-000000-abcdef", APPROVER)
    assert [event["details"]["action"] for event in world.events("refused")] == ["request_promotion"] * 3 + ["approve_promotion"] * 2


def test_approval_is_refused_when_the_alias_moved_since_the_request(world):
    version = world.register(0.93)
    request = world.request(version.version)
    world.register(0.94)
    world.registry.set_alias(MODEL, "champion", 3, actor="ada@example.com", reason="hotfix")
    with pytest.raises(MlopsError, match="The champion alias moved since this request was made \\(it was version 1, now version 3\\)"):
        approve(world.settings, world.registry, MODEL, request.id, APPROVER)
    assert world.aliases()["champion"] == 3


def test_a_withdrawn_request_frees_the_alias_for_a_new_one(world):
    version = world.register(0.93)
    request = world.request(version.version)
    with pytest.raises(PermissionDeniedError, match="needs the approver role"):
        promotion.withdraw(world.settings, world.registry, MODEL, request.id, Identity("tom@example.com", "Tom", "reviewer", "local"))
    assert promotion.withdraw(world.settings, world.registry, MODEL, request.id, REVIEWER).status == "withdrawn"
    assert world.request(version.version).status == PENDING


def test_two_processes_approving_at_once_move_the_alias_exactly_once(world, tmp_path):
    version = world.register(0.93)
    request = world.request(version.version)
    start = tmp_path / "start"
    processes, ready = [], []
    for index, email in enumerate((APPROVER.email, APPROVER_2.email)):
        ready.append(tmp_path / f"ready-{index}")
        processes.append(
            subprocess.Popen(
                [sys.executable, str(HELPER), str(world.settings.home_path), MODEL, request.id, email, str(ready[-1]), str(start)],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )
        )  # fmt: skip
    deadline = time.monotonic() + 60
    while not all(path.exists() for path in ready) and time.monotonic() < deadline:
        time.sleep(0.01)
    start.write_text("go")
    outcomes = []
    for process in processes:
        out, err = process.communicate(timeout=60)
        assert process.returncode == 0, err
        outcomes.append(json.loads(out.strip().splitlines()[-1]))

    winners = [outcome for outcome in outcomes if outcome["ok"]]
    losers = [outcome for outcome in outcomes if not outcome["ok"]]
    assert len(winners) == 1 and len(losers) == 1, outcomes
    assert losers[0]["error"].startswith(f"Request {request.id} was already approved by {winners[0]['by']} at ")
    assert world.aliases()["champion"] == version.version
    moves = [event for event in world.events("alias_set") if event["alias"] == "champion" and event["version"] == version.version]
    assert len(moves) == 1
    assert len(world.events("approved")) == 1 and len(world.events("refused")) == 1
    assert promotion.get_request(world.registry, MODEL, request.id).decided_by == winners[0]["by"]


# --- Rollback and history -----------------------------------------------------------------------


def test_champion_on_a_date_follows_moves_backdated_events_and_a_rollback(world):
    world.register(0.92)
    world.register(0.93)
    # v3 was recorded before v2 in the file, but happened later: times, not file order, decide.
    world.registry.set_alias(MODEL, "champion", 3, actor="ada@example.com", reason="v3", at=datetime(2026, 9, 1, 12, tzinfo=UTC))
    world.registry.set_alias(MODEL, "champion", 2, actor="ada@example.com", reason="v2", at=datetime(2026, 8, 1, tzinfo=UTC))
    world.registry.set_alias(MODEL, "champion", 3, actor="ada@example.com", reason="v3 again", at=datetime(2026, 9, 1, 12, tzinfo=UTC))
    assert champion_on(world.registry, MODEL, datetime(2026, 6, 30, tzinfo=UTC)) is None
    assert champion_on(world.registry, MODEL, date(2026, 7, 1)) == 1
    assert champion_on(world.registry, MODEL, datetime(2026, 7, 31, 23, 59)) == 1  # naive means UTC
    assert champion_on(world.registry, MODEL, datetime(2026, 8, 1, tzinfo=UTC)) == 2
    assert champion_on(world.registry, MODEL, date(2026, 9, 1)) == 3  # a date means the end of that day
    assert champion_on(world.registry, MODEL, datetime(2026, 9, 1, 11, 59, tzinfo=UTC)) == 2
    assert promotion.previous_champion(world.registry, MODEL) == 2

    request = request_rollback(world.settings, world.registry, world.warehouse, MODEL, REVIEWER, reason="Complaints from the packing line")
    assert (request.kind, request.version, request.from_version) == ("rollback", 2, 3)
    assert [gate.status for gate in request.gates] == [SKIPPED, SKIPPED, SKIPPED, SKIPPED, PASSED]
    approve(world.settings, world.registry, MODEL, request.id, APPROVER)
    assert world.aliases()["champion"] == 2
    assert champion_on(world.registry, MODEL, datetime.now(UTC)) == 2
    assert champion_on(world.registry, MODEL, datetime(2026, 10, 1, tzinfo=UTC)) == 3
    history = promotion.champion_history(world.registry, MODEL)
    assert [period.version for period in history] == [1, 2, 3, 3, 2] and history[-1].end is None
    assert any(entry.text == "alan@example.com approved the rollback of champion to version 2." for entry in promotion.timeline(world.registry, MODEL))


def test_rollback_needs_a_previous_champion_and_an_approver_for_the_approval(world):
    with pytest.raises(MlopsError, match="has had only one champion \\(version 1\\); there is no earlier one"):
        request_rollback(world.settings, world.registry, world.warehouse, MODEL, REVIEWER, reason="bad")
    assert world.events()[-1]["event"] == "refused"


def test_timeline_of_one_version_is_in_plain_language(world):
    version = world.register(0.80)
    request = world.request(version.version)
    reject(world.settings, world.registry, MODEL, request.id, APPROVER, comment="Too many bad apples slip through")
    entries = promotion.timeline(world.registry, MODEL, version=version.version)
    assert [entry.kind for entry in entries] == ["info", "request", "gates", "decision"]
    assert entries[2].text == "Gates for version 2: 1 of 5 failed (holdout result at least the champion's)."
    assert entries[3].text == "alan@example.com rejected version 2 as champion: “Too many bad apples slip through”"
    assert entries == sorted(entries, key=lambda entry: entry.time)


def test_model_card_in_plain_language_with_sensible_text_for_missing_fields(world):
    described = world.register(0.92, extra={"predicts": "Whether an apple is bad.", "intended_use": "Sorting on the line.", "limits": "Gala and fuji only."})
    card = promotion.model_card(described, world.registry.get_model(MODEL))
    sections = {section.heading: section for section in card.sections}
    assert sections["What it predicts"].text == "Whether an apple is bad." and sections["What it predicts"].stated
    assert sections["Limits"].text == "Gala and fuji only."
    assert sections["For whom"].text == "Not stated. The model is owned by rita@example.com; ask them who relies on its answers."
    assert not sections["For whom"].stated
    bare = promotion.model_card(world.registry.get_version(MODEL, 1))
    sections = {section.heading: section for section in bare.sections}
    assert sections["What it predicts"].text == (
        "Not described by the author (rita@example.com); ask them before relying on it. It works from 2 inputs (weight, variety)."
    )
    assert sections["Limits"].text == "Not stated by the author."
    assert sections["How it was tested"].text.startswith("Bad apples caught: 90.0% on held-out data.")


def test_review_gathers_gates_metrics_slices_and_verdict(world):
    version = world.register(0.93)
    review = promotion.build_review(world.registry, world.warehouse, MODEL, version.version)
    assert review.gates_are_preview and review.request is None and review.champion.version == 1
    assert review.verdict == "No promotion was requested for version 2 yet. As things stand, all 5 gates would pass."
    first = review.metrics[0]
    assert (first.key, first.value_text, first.champion_text, first.change_text, first.better) == ("recall_bad", "93.0%", "90.0%", "+3 points", True)
    assert [row["value"] for row in review.slices] == ["gala", "fuji", "rare"]
    request = world.request(version.version)
    review = promotion.build_review(world.registry, world.warehouse, MODEL, version.version)
    assert not review.gates_are_preview and review.request == request and review.status.word == "Watch"


def test_install_demo_promotions_gives_the_demo_a_history_and_a_pending_request(demo_home, tmp_path):
    home = tmp_path / "demo-copy"
    shutil.copytree(demo_home, home)
    settings = load_settings({"MLOPS_APP_HOME": str(home)})
    registry, warehouse = Registry(settings.registry_path), Warehouse.from_settings(settings)
    promotion.install_demo_promotions(settings, registry, warehouse)
    promotion.install_demo_promotions(settings, registry, warehouse)  # idempotent

    grader = registry.get_model("apple-grader")
    assert grader.aliases == {"champion": 2, "challenger": 3}
    pending = promotion.list_requests(registry, "apple-grader", status=PENDING)
    assert len(pending) == 1 and pending[0].version == 3 and pending[0].alias == "champion"
    assert pending[0].requested_by == promotion.DEMO_REQUESTER and len(pending[0].gates) == 5
    # The season's winner also uses two feature-store features: scoring looks them up, the smoke test too.
    assert gate(pending[0].gates, GATE_SMOKE).status == PASSED
    assert "feature-store features looked up" in gate(pending[0].gates, GATE_SMOKE).detail
    assert gate(pending[0].gates, GATE_SCHEMA).status == PASSED
    history = promotion.list_requests(registry, "apple-grader", status=APPROVED)
    assert sorted(request.version for request in history) == [1, 2] and all(request.imported for request in history)
    assert [request.version for request in promotion.list_requests(registry, "sugar-estimator")] == [1]
    assert champion_on(registry, "apple-grader", date(2026, 7, 20)) == 1
    assert champion_on(registry, "apple-grader", date(2026, 8, 20)) == 2
