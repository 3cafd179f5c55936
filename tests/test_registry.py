"""The model registry against real folders in tmp_path, real skops files and real processes."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingRegressor, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from mlops_app.errors import ConfigError, IntegrityError, InvalidNameError, MlopsError, NotFoundError
from mlops_app.registry import VETTED_TYPES, Registry, validate_name

HELPER = Path(__file__).with_name("registry_crash_helper.py")
RULE = "lowercase letters, digits, '-' and '_', starting with a letter or digit"
ACTOR = "ada@example.com"


class Doubler(BaseEstimator, TransformerMixin):
    """A harmless custom transformer: a type skops does not know, so it is untrusted."""

    def fit(self, features, target=None):
        return self

    def transform(self, features):
        return np.asarray(features, dtype=float) * 2


DOUBLER_TYPE = f"{Doubler.__module__}.{Doubler.__qualname__}"


@pytest.fixture(scope="module")
def apples() -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(7)
    rows = 200
    frame = pd.DataFrame(
        {
            "weight": rng.normal(200, 30, rows),
            "diameter": rng.normal(7, 1, rows),
            "variety": rng.choice(["gala", "fuji", "braeburn"], rows),
        }
    )
    frame.loc[::13, "diameter"] = np.nan
    return frame, (frame["weight"] > 200).astype(int)


@pytest.fixture(scope="module")
def pipeline(apples) -> Pipeline:
    frame, target = apples
    numeric = Pipeline([("impute", SimpleImputer()), ("scale", StandardScaler())])
    prepare = ColumnTransformer(
        [("numeric", numeric, ["weight", "diameter"]), ("variety", OneHotEncoder(handle_unknown="ignore"), ["variety"])]
    )
    return Pipeline([("prepare", prepare), ("classify", LogisticRegression())]).fit(frame, target)


@pytest.fixture()
def registry(tmp_path) -> Registry:
    return Registry(tmp_path / "registry", lock_timeout=10)


def small_model(seed: int = 0) -> LogisticRegression:
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(30, 2))
    return LogisticRegression().fit(features, (features[:, 0] > 0).astype(int))


def tree_snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every path under folder with its bytes (None for folders), to prove nothing changed."""
    return {
        str(path.relative_to(folder)): (path.read_bytes() if path.is_file() else None)
        for path in sorted(folder.rglob("*"))
    }


def event_lines(registry: Registry, model: str) -> list[dict]:
    return [json.loads(line) for line in registry.path_for(model, "events.jsonl").read_text().splitlines()]


# Registering, finding and aliasing ---------------------------------------------------------


def test_register_list_get_resolve_and_move_aliases(registry, pipeline):
    first = registry.register_version(
        "grader", pipeline, actor=ACTOR, metrics={"recall": 0.96}, params={"C": np.float64(1.0)},
        input_schema=[{"name": "weight", "dtype": "float64"}], run_id="run-1", dataset_fingerprint="abc",
        tags={"team": "orchard"}, created_at=datetime(2025, 6, 1, 8, 30, tzinfo=UTC),
    )  # fmt: skip
    second = registry.register_version("grader", small_model(), actor="bob@example.com", metrics={"recall": 0.97})

    assert (first.version, second.version) == (1, 2)
    assert first.metrics == {"recall": 0.96} and first.params == {"C": 1.0}
    assert first.created_at == "2025-06-01T08:30:00.000+00:00"
    assert datetime.fromisoformat(second.created_at).tzinfo is not None
    assert first.card["features"] == ["weight", "diameter", "variety"]
    assert first.card["artifact_bytes"] == first.artifact_path.stat().st_size
    assert first.author == ACTOR and first.card["run_id"] == "run-1"

    [info] = registry.list_models()
    assert (info.name, info.owner, info.latest_version, info.aliases) == ("grader", ACTOR, 2, {})
    assert [v.version for v in registry.list_versions("grader")] == [1, 2]

    registry.set_alias("grader", "champion", 1, actor=ACTOR, reason="first good model")
    registry.set_alias("grader", "challenger", "2", actor=ACTOR)
    assert registry.resolve("grader@champion").version == 1
    assert registry.resolve("grader/2").version == 2
    assert registry.resolve("grader").version == 2
    assert registry.get_version("grader", "challenger").version == 2

    registry.set_alias("grader", "champion", 2, actor="carol@example.com", reason="better recall")
    registry.remove_alias("grader", "challenger", actor=ACTOR, reason="promoted")
    assert registry.get_model("grader").aliases == {"champion": 2}
    history = registry.alias_history("grader", "champion")
    assert [(h["version"], h["previous"], h["actor"], h["reason"]) for h in history] == [
        (1, None, ACTOR, "first good model"),
        (2, 1, "carol@example.com", "better recall"),
    ]
    assert registry.alias_history("grader", "challenger")[-1]["version"] is None

    # One line per action: created, 2 registered, 3 alias sets, 1 removal.
    lines = event_lines(registry, "grader")
    assert [line["event"] for line in lines] == [
        "model_created", "registered", "registered", "alias_set", "alias_set", "alias_set", "alias_removed",
    ]  # fmt: skip
    assert lines[1]["time"] == "2025-06-01T08:30:00.000+00:00"
    assert [e["event"] for e in registry.events("grader", limit=2, newest_first=True)] == ["alias_removed", "alias_set"]


def test_events_of_all_models_are_merged_by_time(registry):
    registry.create_model("alpha", actor=ACTOR)
    registry.create_model("beta", actor=ACTOR)
    registry.append_event("alpha", "requested", actor=ACTOR, time=datetime(2025, 1, 3, tzinfo=UTC))
    registry.append_event("beta", "approved", actor=ACTOR, time=datetime(2025, 1, 2, tzinfo=UTC))
    timeline = [(e["model"], e["event"]) for e in registry.events()]
    assert timeline[:2] == [("beta", "approved"), ("alpha", "requested")]
    assert len(timeline) == 4


def test_create_model_is_idempotent(registry):
    created = registry.create_model("grader", description="apple grader", owner="ops@example.com", actor=ACTOR)
    again = registry.create_model("grader", description="other", actor="eve@example.com")
    assert again == created and again.description == "apple grader"
    assert [e["event"] for e in registry.events("grader")] == ["model_created"]


def test_loaded_pipeline_predicts_like_the_original(registry, pipeline, apples):
    frame, _ = apples
    registry.register_version("grader", pipeline, actor=ACTOR)
    registry.set_alias("grader", "champion", 1, actor=ACTOR)
    loaded = registry.load_model("grader@champion")
    np.testing.assert_array_equal(loaded.predict(frame), pipeline.predict(frame))
    np.testing.assert_allclose(loaded.predict_proba(frame), pipeline.predict_proba(frame))


def test_vetted_types_cover_common_tabular_models(registry, apples):
    frame, target = apples
    numeric = frame[["weight", "diameter"]].fillna(7.0)
    models = {
        "forest": RandomForestClassifier(n_estimators=3, random_state=0).fit(numeric, target),
        "boosted": GradientBoostingClassifier(n_estimators=3).fit(numeric, target),
        "hist": HistGradientBoostingRegressor(max_iter=3).fit(frame[["weight", "diameter"]], frame["weight"]),
        "calibrated": CalibratedClassifierCV(LogisticRegression(), cv=3).fit(numeric, target),
        "ridge": Ridge().fit(numeric, frame["weight"]),
    }
    for name, model in models.items():
        registry.register_version(name, model, actor=ACTOR)
        data = frame[["weight", "diameter"]] if name == "hist" else numeric
        np.testing.assert_allclose(registry.load_model(name).predict(data), model.predict(data))
    assert "builtins.eval" not in VETTED_TYPES and "functools.partial" not in VETTED_TYPES


def test_missing_things_are_named_with_what_exists(registry):
    registry.register_version("grader", small_model(), actor=ACTOR)
    registry.register_version("sorter", small_model(), actor=ACTOR)
    registry.set_alias("grader", "champion", 1, actor=ACTOR)
    with pytest.raises(NotFoundError, match=r"No model named 'nope'\. Registered models: grader, sorter\."):
        registry.get_model("nope")
    with pytest.raises(NotFoundError, match=r"no version 7\. Versions: 1\."):
        registry.get_version("grader", 7)
    with pytest.raises(NotFoundError, match=r"no alias 'staging'\. Aliases: champion \(v1\)\."):
        registry.resolve("grader@staging")
    with pytest.raises(NotFoundError, match=r"no version 9"):
        registry.set_alias("grader", "champion", 9, actor=ACTOR)
    with pytest.raises(NotFoundError, match=r"No model named 'nope'"):
        registry.append_event("nope", "requested", actor=ACTOR)
    assert not (registry.root / "nope").exists()
    with pytest.raises(ValueError, match="needs an actor"):
        registry.set_alias("grader", "champion", 1, actor="")


def test_list_models_skips_stray_folders(registry):
    registry.register_version("grader", small_model(), actor=ACTOR)
    (registry.root / "Bad Name").mkdir()
    (registry.root / "no-model-json" / "versions").mkdir(parents=True)
    (registry.root / ".tmp-123").mkdir()
    (registry.path_for("grader", "versions", ".tmp-abc")).mkdir()
    (registry.path_for("grader", "versions", "notes")).mkdir()
    assert [m.name for m in registry.list_models()] == ["grader"]
    assert [v.version for v in registry.list_versions("grader")] == [1]


# Hostile names -----------------------------------------------------------------------------

HOSTILE_NAMES = [
    "../x", "..", "a/b", "a\\b", "/etc/passwd", "C:\\x", "%2e%2e", "%2e%2e%2fx", "%252e%252e", "%61",
    "", "A", "x" * 65, "mod\u0435l", "\uff4dodel", "a\x00b", " a", "a ", "a\n", "a.b", "-a", "_a",
]  # fmt: skip


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_model_names_are_refused_and_nothing_is_written(tmp_path, name):
    registry = Registry(tmp_path / "registry")
    registry.register_version("grader", small_model(), actor=ACTOR)
    before = tree_snapshot(tmp_path)

    attempts = [
        lambda: registry.register_version(name, small_model(), actor=ACTOR),
        lambda: registry.create_model(name, actor=ACTOR),
        lambda: registry.get_model(name),
        lambda: registry.path_for(name),
        lambda: registry.path_for(name, "model.json"),
        lambda: registry.list_versions(name),
        lambda: registry.get_version(name, 1),
        lambda: registry.load_model(name, 1),
        lambda: registry.set_alias(name, "champion", 1, actor=ACTOR),
        lambda: registry.append_event(name, "requested", actor=ACTOR),
        lambda: registry.events(name),
        lambda: validate_name(name),
    ]
    for attempt in attempts:
        with pytest.raises(InvalidNameError, match=RULE):
            attempt()
    with pytest.raises(InvalidNameError):
        registry.resolve(name)

    assert tree_snapshot(tmp_path) == before


def test_name_messages_explain_decoding_and_look_alikes():
    with pytest.raises(InvalidNameError, match=r"Model name '%252e%252e' \(it decodes to '\.\.'\) is not allowed"):
        validate_name("%252e%252e")
    with pytest.raises(InvalidNameError, match=r"look-alike characters\) is not allowed"):
        validate_name("\uff4dodel")
    assert validate_name("apple-grader_2") == "apple-grader_2"
    assert validate_name("x" * 64) == "x" * 64


@pytest.mark.parametrize("alias", [*HOSTILE_NAMES, "3"])
def test_hostile_alias_names_are_refused(tmp_path, alias):
    registry = Registry(tmp_path / "registry")
    registry.register_version("grader", small_model(), actor=ACTOR)
    before = tree_snapshot(tmp_path)
    expected = "only digits" if alias == "3" else RULE
    with pytest.raises(InvalidNameError, match=expected):
        registry.set_alias("grader", alias, 1, actor=ACTOR)
    with pytest.raises(InvalidNameError, match=expected):
        registry.remove_alias("grader", alias, actor=ACTOR)
    with pytest.raises(InvalidNameError):
        registry.resolve(f"grader@{alias}")
    assert tree_snapshot(tmp_path) == before


@pytest.mark.parametrize("parts", [("..",), ("../x",), ("a/b",), ("/etc",), ("",), (-1,), ("versions", "..", ".."), (".",)])
def test_path_for_refuses_hostile_parts(registry, parts):
    with pytest.raises(InvalidNameError, match="Path part"):
        registry.path_for("grader", *parts)


def test_path_for_refuses_links_that_leave_the_model_folder(registry, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    registry.create_model("grader", actor=ACTOR)
    (registry.path_for("grader") / "versions").symlink_to(outside)
    with pytest.raises(InvalidNameError, match="outside the registry folder"):
        registry.path_for("grader", "versions", 1)
    with pytest.raises(InvalidNameError, match="outside the registry folder"):
        registry.register_version("grader", small_model(), actor=ACTOR)
    assert list(outside.iterdir()) == []


# Integrity and trusted types ---------------------------------------------------------------


def test_tampered_artifact_is_refused(registry):
    version = registry.register_version("grader", small_model(), actor=ACTOR)
    data = bytearray(version.artifact_path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    version.artifact_path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=r"grader' version 1 does not match its recorded sha256.*re-register"):
        registry.load_model("grader/1")


def test_artifact_with_an_untrusted_type_loads_only_when_that_type_is_trusted(tmp_path, apples):
    frame, target = apples
    numeric = frame[["weight"]]
    registry = Registry(tmp_path / "registry")
    version = registry.register_version("grader", small_model(), actor=ACTOR)
    # Swap in, by hand, an artifact holding a custom class, with a matching sha256, as an
    # attacker with write access to the folder could.
    custom = Pipeline([("double", Doubler()), ("classify", LogisticRegression())]).fit(numeric, target)
    data = skops.io.dumps(custom)
    assert DOUBLER_TYPE in skops.io.get_untrusted_types(data=data)
    version.artifact_path.write_bytes(data)
    card = dict(version.card, artifact_sha256=hashlib.sha256(data).hexdigest(), artifact_bytes=len(data))
    (version.path / "card.json").write_text(json.dumps(card))

    with pytest.raises(IntegrityError, match=rf"not on the vetted allow-list: {DOUBLER_TYPE}\..*trusted_model_types"):
        registry.load_model("grader", 1)

    trusting = Registry(tmp_path / "registry", extra_trusted_types=[DOUBLER_TYPE])
    loaded = trusting.load_model("grader", 1)
    np.testing.assert_array_equal(loaded.predict(numeric), custom.predict(numeric))


@pytest.mark.parametrize(
    ("make_estimator", "type_name"),
    [
        (lambda: Pipeline([("double", Doubler()), ("classify", LogisticRegression())]), DOUBLER_TYPE),
        # Never fitted or called: only its reference to os.system is serialised.
        (lambda: FunctionTransformer(func=os.system), "system"),
    ],
)
def test_register_refuses_untrusted_types_and_leaves_nothing(registry, make_estimator, type_name):
    registry.register_version("grader", small_model(), actor=ACTOR)
    before = tree_snapshot(registry.root)
    with pytest.raises(IntegrityError, match=rf"cannot be registered: it contains types .*{type_name}"):
        registry.register_version("grader", make_estimator(), actor=ACTOR)
    with pytest.raises(IntegrityError, match="cannot be registered"):
        registry.register_version("newcomer", make_estimator(), actor=ACTOR)
    assert tree_snapshot(registry.root) == before
    assert [e["event"] for e in registry.events("grader")].count("registered") == 1


def test_register_accepts_a_custom_type_once_trusted(tmp_path, apples):
    frame, target = apples
    registry = Registry(tmp_path / "registry", extra_trusted_types=[DOUBLER_TYPE])
    custom = Pipeline([("double", Doubler()), ("classify", LogisticRegression())]).fit(frame[["weight"]], target)
    assert registry.register_version("grader", custom, actor=ACTOR).version == 1
    assert isinstance(registry.load_model("grader").steps[0][1], Doubler)


@pytest.mark.parametrize("type_name", ["builtins.eval", "os.system", "posix.system", "functools.partial", "eval"])
def test_dangerous_extra_trusted_types_are_refused(tmp_path, type_name):
    with pytest.raises(ConfigError, match="trusted_model_types"):
        Registry(tmp_path, extra_trusted_types=[type_name])


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -np.inf, "high", None])
def test_bad_metrics_are_refused_before_anything_is_written(registry, tmp_path, value):
    with pytest.raises(ValueError, match=r"Metric 'recall' is .*Nothing was registered"):
        registry.register_version("grader", small_model(), actor=ACTOR, metrics={"recall": value})
    assert list(tmp_path.iterdir()) == []


# Locks, crashes and concurrency ------------------------------------------------------------


def test_lock_timeout_gives_a_clear_error(tmp_path):
    import filelock

    registry = Registry(tmp_path / "registry", lock_timeout=0.2)
    registry.register_version("grader", small_model(), actor=ACTOR)
    with filelock.FileLock(registry.path_for("grader", ".lock")):
        with pytest.raises(MlopsError, match=r"Model 'grader' is locked by another process \(waited 0.2 s"):
            registry.set_alias("grader", "champion", 1, actor=ACTOR)
    assert registry.get_model("grader").aliases == {}


def run_helper(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(HELPER), *args], stderr=subprocess.PIPE, text=True)


def kill_when_signalled(process: subprocess.Popen, signal_file: Path) -> None:
    deadline = time.monotonic() + 30
    while not signal_file.exists():
        if process.poll() is not None:
            pytest.fail(f"helper exited early with {process.returncode}: {process.stderr.read()}")
        assert time.monotonic() < deadline, "helper never reached the stall point"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    process.stderr.close()


def test_kill_during_registration_leaves_only_published_versions(tmp_path):
    root = tmp_path / "registry"
    registry = Registry(root)
    originals = [registry.register_version("grader", small_model(seed), actor=ACTOR) for seed in (1, 2)]
    signal_file = tmp_path / "stalled"

    kill_when_signalled(run_helper("register-stall", str(root), "grader", str(signal_file)), signal_file)

    fresh = Registry(root)
    leftovers = [p.name for p in (root / "grader" / "versions").iterdir() if p.name.startswith(".tmp-")]
    assert len(leftovers) == 1, "the killed writer should have left its unpublished folder"
    assert [v.version for v in fresh.list_versions("grader")] == [1, 2]
    probe = np.array([[0.5, -1.0], [-2.0, 0.3]])
    for original in originals:
        expected = small_model(original.version).predict(probe)
        np.testing.assert_array_equal(fresh.load_model("grader", original.version).predict(probe), expected)

    third = fresh.register_version("grader", small_model(3), actor=ACTOR)
    assert third.version == 3
    assert fresh.load_model("grader").predict(probe).shape == (2,)
    assert not any(p.name.startswith(".tmp-") for p in (root / "grader" / "versions").iterdir())
    assert [e["version"] for e in fresh.events("grader") if e["event"] == "registered"] == [1, 2, 3]


def test_kill_during_event_append_leaves_a_readable_log(tmp_path):
    root = tmp_path / "registry"
    registry = Registry(root)
    registry.register_version("grader", small_model(), actor=ACTOR)
    signal_file = tmp_path / "torn"

    kill_when_signalled(run_helper("append-stall", str(root), "grader", str(signal_file)), signal_file)

    log = registry.path_for("grader", "events.jsonl").read_bytes()
    assert not log.endswith(b"\n"), "the killed writer should have left half a line"
    assert [e["event"] for e in Registry(root).events("grader")] == ["model_created", "registered"]

    registry.append_event("grader", "approved", actor=ACTOR, version=1, reason="looks good")
    assert [e["event"] for e in registry.events("grader")] == ["model_created", "registered", "approved"]


def test_two_processes_registering_at_once_get_distinct_consecutive_versions(tmp_path):
    root = tmp_path / "registry"
    start = tmp_path / "start"
    workers = [run_helper("register-many", str(root), "grader", str(start), "5") for _ in range(2)]
    start.touch()
    for worker in workers:
        assert worker.wait(timeout=60) == 0, worker.stderr.read()
        worker.stderr.close()

    registry = Registry(root)
    versions = registry.list_versions("grader")
    assert [v.version for v in versions] == list(range(1, 11))
    assert len({v.author for v in versions}) == 2
    registered = [e for e in registry.events("grader") if e["event"] == "registered"]
    assert sorted(e["version"] for e in registered) == list(range(1, 11))
    assert [e["event"] for e in registry.events("grader")].count("model_created") == 1


def test_history_can_be_imported_with_its_own_times(tmp_path):
    from datetime import UTC, datetime

    from sklearn.dummy import DummyClassifier

    registry = Registry(tmp_path / "registry")
    registry.create_model("imported", actor="a@x.example", at=datetime(2026, 7, 1, tzinfo=UTC))
    registry.register_version(
        "imported", DummyClassifier().fit([[0], [1]], [0, 1]), actor="a@x.example", created_at=datetime(2026, 7, 2, tzinfo=UTC)
    )
    registry.set_alias("imported", "champion", 1, actor="a@x.example", at=datetime(2026, 7, 3, tzinfo=UTC))
    times = [event["time"][:10] for event in registry.events("imported")]
    assert times == ["2026-07-01", "2026-07-02", "2026-07-03"]
    assert registry.get_model("imported").created_at.startswith("2026-07-01")
    assert registry.alias_history("imported", "champion")[0]["time"].startswith("2026-07-03")
