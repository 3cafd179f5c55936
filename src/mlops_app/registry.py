"""The file-based model registry: the one owner of the registry folder.

Layout under the root (see ARCHITECTURE.md, "The model registry (files)")::

    <root>/<model>/model.json                 description, owner, created_at, aliases
    <root>/<model>/versions/<n>/model.skops   the fitted estimator, saved with skops
    <root>/<model>/versions/<n>/card.json     metrics, params, schema, sha256 of the artifact...
    <root>/<model>/events.jsonl               append-only audit log, one JSON object a line
    <root>/<model>/.lock                      serialises writers of one model

Three rules keep it safe:

* every path comes from :meth:`Registry.path_for`, which validates the decoded name and
  checks that the resolved path stays inside the model folder;
* writes are atomic: files are replaced with ``os.replace`` and a version folder is
  published by renaming its temporary folder into place last, so a crash leaves the
  old state or the new one;
* artifacts are loaded with skops against a vetted allow-list of types, after their
  sha256 is checked against the card.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import re
import shutil
import unicodedata
import urllib.parse
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import filelock
import skops
import skops.io
import sklearn

from mlops_app.errors import ConfigError, IntegrityError, InvalidNameError, MlopsError, NotFoundError

logger = logging.getLogger(__name__)

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
ALIAS_PATTERN = NAME_PATTERN
NAME_RULE = "use 1-64 characters, lowercase letters, digits, '-' and '_', starting with a letter or digit"

MODEL_FILE = "model.json"
CARD_FILE = "card.json"
ARTIFACT_FILE = "model.skops"
EVENTS_FILE = "events.jsonl"
LOCK_FILE = ".lock"
VERSIONS_DIR = "versions"
TEMP_PREFIX = ".tmp-"

EVENT_MODEL_CREATED = "model_created"
EVENT_REGISTERED = "registered"
EVENT_ALIAS_SET = "alias_set"
EVENT_ALIAS_REMOVED = "alias_removed"

# Types skops does not trust by default but that fitted scikit-learn models are made of.
# Built by dumping fitted models with skops 0.16 / scikit-learn 1.9 and collecting
# skops.io.get_untrusted_types(): Pipeline(ColumnTransformer(SimpleImputer, StandardScaler,
# OneHotEncoder(handle_unknown="ignore"), OrdinalEncoder, MinMaxScaler), LogisticRegression
# or DecisionTreeClassifier), RandomForest/ExtraTrees/GradientBoosting classifiers and
# regressors, IsolationForest, HistGradientBoosting classifier and regressor, Ridge,
# LinearRegression, SVC, SGDClassifier, TargetEncoder, KBinsDiscretizer, CalibratedClassifierCV
# (sigmoid and isotonic), StackingClassifier, KNeighborsClassifier, MLPClassifier and
# FunctionTransformer(numpy.log1p). Only data-holding scikit-learn internals and numpy.dtype
# made the list. Reported but deliberately left out: functools.partial and
# sklearn.utils.validation.check_array (HistGradientBoosting with categorical_features=
# "from_dtype" stores them): a trusted partial can wrap any callable, which is how skops
# artifacts run code. Never add callables (builtins.eval, os.system, ...) here.
VETTED_TYPES: frozenset[str] = frozenset(
    {
        "numpy.dtype",
        "sklearn.calibration._CalibratedClassifier",
        "sklearn.calibration._SigmoidCalibration",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.metrics._dist_metrics.EuclideanDistance64",
        "sklearn.neighbors._kd_tree.KDTree",
        "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
        "sklearn.tree._tree.Tree",
        "sklearn.utils._bunch.Bunch",
    }
)

# Modules whose members can run code or touch the system when skops rebuilds them; a
# setting that names one is almost certainly a mistake, so it is refused outright.
_NEVER_TRUSTED_MODULES = (
    "builtins", "os", "posix", "nt", "sys", "subprocess", "shutil", "socket", "importlib",
    "functools", "operator", "pickle", "marshal", "runpy", "code", "codeop", "ctypes", "pty",
    "webbrowser", "io", "pathlib", "types", "inspect",
)  # fmt: skip

_MAX_DECODE_ROUNDS = 10


def validate_name(name: str, kind: str = "model name") -> str:
    """Check a model or alias name against the naming rule.

    The name is percent-decoded until stable first, so ``%2e%2e`` is judged as ``..``,
    and look-alike unicode characters (fullwidth letters, Cyrillic ``е``) are refused.

    Args:
        name: the name as given by a user, URL or file.
        kind: what the name is, for the message ("model name", "alias").

    Returns:
        The name, unchanged.

    Raises:
        InvalidNameError: the name breaks the rule; the message states the rule.
    """
    label = kind[:1].upper() + kind[1:]
    if not isinstance(name, str):
        raise InvalidNameError(f"{label} must be a string, got {type(name).__name__}: {NAME_RULE}.")
    decoded = name
    for _ in range(_MAX_DECODE_ROUNDS):
        step = urllib.parse.unquote(decoded)
        if step == decoded:
            break
        decoded = step
    if decoded == name and unicodedata.normalize("NFKC", name) == name and name.isascii() and NAME_PATTERN.fullmatch(name):
        return name
    problem = ""
    if decoded != name:
        problem = f" (it decodes to {decoded!r})"
    elif not name.isascii() or unicodedata.normalize("NFKC", name) != name:
        problem = " (it contains non-ASCII or look-alike characters)"
    raise InvalidNameError(f"{label} {name!r}{problem} is not allowed: {NAME_RULE}.")


def _validate_alias(alias: str) -> str:
    validate_name(alias, "alias")
    if alias.isdigit():
        raise InvalidNameError(
            f"Alias {alias!r} is not allowed: an alias cannot be only digits, it would be read as a version number."
        )
    return alias


# Path parts are chosen by this module (file names, version numbers, temp folders), never by
# users, but they are still checked so a bug cannot turn into a traversal.
_PART_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,128}")


def _validate_part(part: str | int) -> str:
    if isinstance(part, int) and not isinstance(part, bool):
        if part < 0:
            raise InvalidNameError(f"Path part {part!r} is not allowed: numbers must not be negative.")
        return str(part)
    if not isinstance(part, str) or not _PART_PATTERN.fullmatch(part) or part in {".", ".."}:
        raise InvalidNameError(
            f"Path part {part!r} is not allowed: use one file or folder name of letters, digits, '.', '-' and '_', not '.' or '..'."
        )
    return part


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    # Naive datetimes are taken as UTC so that every stored time carries a zone.
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def _json_default(value: Any) -> Any:
    # numpy scalars and arrays show up in params and tags; store them as plain JSON.
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", None) == 0:
        return value.item()
    if hasattr(value, "tolist") and callable(value.tolist):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _to_json_bytes(data: Any, what: str) -> bytes:
    try:
        text = json.dumps(data, indent=2, sort_keys=False, default=_json_default, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise ValueError(f"Cannot store {what} as JSON: {error}. Use numbers, strings, lists and dicts.") from None
    return (text + "\n").encode("utf-8")


def _fsync_dir(path: Path) -> None:
    # A rename is only durable once the folder holding it is flushed.
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_synced(path: Path, data: bytes) -> None:
    """Write a new file and flush it to disk (for files inside a not-yet-published folder)."""
    with open(path, "xb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``: readers see the old bytes or the new, never a mix."""
    temp = path.with_name(f"{TEMP_PREFIX}{uuid.uuid4().hex}-{path.name}")
    try:
        _write_synced(temp, data)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _format_choices(items: Iterable[str], empty: str) -> str:
    items = list(items)
    return ", ".join(items) if items else empty


@dataclass(frozen=True)
class ModelVersion:
    """One registered version: its card (as stored in card.json) and its folder."""

    model: str
    version: int
    card: dict
    path: Path

    @property
    def metrics(self) -> dict[str, float]:
        return dict(self.card.get("metrics") or {})

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.card.get("params") or {})

    @property
    def created_at(self) -> str:
        """ISO 8601 time in UTC, with its zone."""
        return self.card.get("created_at", "")

    @property
    def author(self) -> str:
        return self.card.get("author", "")

    @property
    def artifact_path(self) -> Path:
        return self.path / ARTIFACT_FILE

    @property
    def uri(self) -> str:
        """The ``name/version`` form that :meth:`Registry.resolve` accepts."""
        return f"{self.model}/{self.version}"


@dataclass(frozen=True)
class ModelInfo:
    """A registered model: what model.json says plus its latest version number."""

    name: str
    description: str
    owner: str
    aliases: dict[str, int]
    created_at: str
    latest_version: int | None


class Registry:
    """The registry folder. All reads and writes of registry files go through here.

    Writers of one model are serialised by a file lock in the model folder, so several
    processes (the dashboard, the CLI, a training job) can share one registry. Readers take
    no lock: every file they read is replaced atomically or published by a rename.
    """

    def __init__(
        self,
        root: Path | str,
        *,
        lock_timeout: float = 60.0,
        extra_trusted_types: Iterable[str] = (),
    ) -> None:
        """Open a registry; nothing is written until the first write.

        Args:
            root: the registry folder (``<home>/registry``); created on the first write.
            lock_timeout: seconds to wait for another writer of the same model.
            extra_trusted_types: fully qualified type names to trust on top of
                :data:`VETTED_TYPES` (the ``trusted_model_types`` setting).

        Raises:
            ConfigError: an extra trusted type is malformed or lives in a module whose
                members can run code (``builtins``, ``os``, ``functools``, ...).
        """
        self.root = Path(root).expanduser().resolve()
        self.lock_timeout = float(lock_timeout)
        extra = {name.strip() for name in extra_trusted_types if name.strip()}
        for type_name in sorted(extra):
            module = type_name.split(".", 1)[0]
            if "." not in type_name or not all(part.isidentifier() for part in type_name.split(".")):
                raise ConfigError(
                    f"Trusted model type {type_name!r} is not a fully qualified type name like "
                    "'package.module.ClassName'. Fix the setting `trusted_model_types`."
                )
            if module in _NEVER_TRUSTED_MODULES:
                raise ConfigError(
                    f"Trusted model type {type_name!r} is refused: members of {module!r} can run code when "
                    "a model is loaded. Remove it from the setting `trusted_model_types`."
                )
        self.trusted_types: frozenset[str] = VETTED_TYPES | extra

    # Paths ---------------------------------------------------------------------------------

    def path_for(self, model: str, *parts: str | int) -> Path:
        """Build the path of a model folder or of a file inside it.

        The one path builder of the registry: it validates the model name (after
        percent-decoding), each part, and that the resolved path stays inside the model
        folder, so neither a hostile name nor a symlink can lead outside the root.

        Args:
            model: the model name.
            parts: folder and file names below the model folder; ints become version folders.

        Returns:
            The resolved absolute path (it may not exist yet).

        Raises:
            InvalidNameError: the name or a part breaks the rule, or the path leaves the root.
        """
        validate_name(model)
        clean_parts = [_validate_part(part) for part in parts]
        model_dir = self.root / model
        path = model_dir.joinpath(*clean_parts).resolve()
        if not path.is_relative_to(model_dir) or not model_dir.resolve().is_relative_to(self.root):
            raise InvalidNameError(
                f"Path {path} for model {model!r} is outside the registry folder {self.root}; "
                "a link inside the registry points elsewhere. Remove it."
            )
        return path

    # Locking -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self, model: str, *, create: bool = False) -> Iterator[Path]:
        """Hold the model's writer lock; with ``create``, make the model folder first."""
        model_dir = self.path_for(model)
        if create:
            model_dir.mkdir(parents=True, exist_ok=True)
        elif not (model_dir / MODEL_FILE).is_file():
            raise self._no_model_error(model)
        lock = filelock.FileLock(self.path_for(model, LOCK_FILE), timeout=self.lock_timeout)
        try:
            lock.acquire()
        except filelock.Timeout:
            raise MlopsError(
                f"Model {model!r} is locked by another process (waited {self.lock_timeout:g} s for "
                f"{lock.lock_file}). Another registration or promotion is running; try again when it "
                "finishes, or raise the setting `lock_timeout_seconds`."
            ) from None
        try:
            yield model_dir
        finally:
            lock.release()

    # Models --------------------------------------------------------------------------------

    def _read_json(self, path: Path) -> dict:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise IntegrityError(f"{path} is not valid JSON ({error}); it was edited by hand or damaged.") from None
        if not isinstance(data, dict):
            raise IntegrityError(f"{path} should hold a JSON object; it was edited by hand or damaged.")
        return data

    def _version_numbers(self, model: str) -> list[int]:
        versions_dir = self.path_for(model, VERSIONS_DIR)
        if not versions_dir.is_dir():
            return []
        # Half-written versions live in .tmp-* folders until renamed, so digits-only names
        # are exactly the published versions.
        return sorted(
            int(entry.name)
            for entry in versions_dir.iterdir()
            if entry.name.isdigit() and entry.is_dir() and (entry / CARD_FILE).is_file()
        )

    def _model_names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        names = []
        for entry in sorted(self.root.iterdir()):
            try:
                validate_name(entry.name)
                if (self.path_for(entry.name) / MODEL_FILE).is_file():
                    names.append(entry.name)
            except InvalidNameError:
                continue
        return names

    def _no_model_error(self, model: str) -> NotFoundError:
        known = _format_choices(self._model_names(), "none yet")
        return NotFoundError(f"No model named {model!r}. Registered models: {known}.")

    def _info(self, model: str, data: dict) -> ModelInfo:
        numbers = self._version_numbers(model)
        return ModelInfo(
            name=model,
            description=str(data.get("description", "")),
            owner=str(data.get("owner", "")),
            aliases={str(k): int(v) for k, v in (data.get("aliases") or {}).items()},
            created_at=str(data.get("created_at", "")),
            latest_version=numbers[-1] if numbers else None,
        )

    def _read_model(self, model: str) -> dict:
        path = self.path_for(model, MODEL_FILE)
        if not path.is_file():
            raise self._no_model_error(model)
        return self._read_json(path)

    def _create_model_locked(
        self, name: str, description: str, owner: str, actor: str, at: datetime | None = None
    ) -> dict:
        path = self.path_for(name, MODEL_FILE)
        if path.is_file():
            return self._read_json(path)
        created = _iso(at or _now())
        data = {"name": name, "description": description, "owner": owner, "created_at": created, "aliases": {}}
        write_atomic(path, _to_json_bytes(data, "the model description"))
        self._append_event_locked(name, EVENT_MODEL_CREATED, actor=actor, details={"owner": owner}, time=created)
        return data

    def create_model(
        self, name: str, *, description: str = "", owner: str = "", actor: str, at: datetime | None = None
    ) -> ModelInfo:
        """Create a model (no versions yet). If it exists, return it unchanged.

        Args:
            at: when it happened, for importing history kept elsewhere; now by default.

        Raises:
            InvalidNameError: the name breaks the naming rule.
        """
        validate_name(name)
        _check_actor(actor)
        self.root.mkdir(parents=True, exist_ok=True)
        with self._locked(name, create=True):
            data = self._create_model_locked(name, description, owner or actor, actor, at)
            return self._info(name, data)

    def list_models(self) -> list[ModelInfo]:
        """Every model, sorted by name. Stray folders (bad names, no model.json) are skipped."""
        infos = []
        for name in self._model_names():
            try:
                infos.append(self._info(name, self._read_model(name)))
            except (IntegrityError, NotFoundError) as error:
                logger.warning("Skipping model folder %s: %s", name, error)
        return infos

    def get_model(self, model: str) -> ModelInfo:
        """Raises: InvalidNameError for a bad name, NotFoundError listing the models."""
        validate_name(model)
        return self._info(model, self._read_model(model))

    # Versions ------------------------------------------------------------------------------

    def _load_version(self, model: str, number: int) -> ModelVersion:
        folder = self.path_for(model, VERSIONS_DIR, number)
        return ModelVersion(model, number, self._read_json(folder / CARD_FILE), folder)

    def list_versions(self, model: str) -> list[ModelVersion]:
        """Published versions, oldest first. Raises NotFoundError for an unknown model."""
        self._read_model(model)
        return [self._load_version(model, number) for number in self._version_numbers(model)]

    def get_version(self, model: str, version: int | str) -> ModelVersion:
        """One version, by number (``3`` or ``"3"``) or by alias (``"champion"``).

        Raises:
            InvalidNameError: the model or alias name breaks the rule.
            NotFoundError: no such model, version or alias; the message lists what exists.
        """
        data = self._read_model(model)
        if isinstance(version, bool) or not isinstance(version, (int, str)):
            raise TypeError(f"version must be a number or an alias name, got {version!r}")
        if isinstance(version, str) and not version.isdigit():
            _validate_alias(version)
            aliases = data.get("aliases") or {}
            if version not in aliases:
                known = _format_choices((f"{a} (v{v})" for a, v in sorted(aliases.items())), "none")
                raise NotFoundError(f"Model {model!r} has no alias {version!r}. Aliases: {known}.")
            number = int(aliases[version])
        else:
            number = int(version)
        numbers = self._version_numbers(model)
        if number not in numbers:
            known = _format_choices(map(str, numbers), "none registered yet")
            raise NotFoundError(f"Model {model!r} has no version {number}. Versions: {known}.")
        return self._load_version(model, number)

    def resolve(self, uri: str) -> ModelVersion:
        """Find a version from ``name@alias``, ``name/3`` or ``name`` (the latest version).

        Raises:
            InvalidNameError: a part of the URI breaks the naming rule.
            NotFoundError: the model, alias or version does not exist.
        """
        if not isinstance(uri, str):
            raise InvalidNameError(f"Model URI must be a string like 'name@alias', 'name/3' or 'name', got {uri!r}.")
        if "@" in uri:
            model, alias = uri.split("@", 1)
            validate_name(model)
            return self.get_version(model, _validate_alias(alias))
        if "/" in uri:
            model, number = uri.split("/", 1)
            validate_name(model)
            if not number.isdigit() or not number.isascii():
                raise InvalidNameError(
                    f"Model URI {uri!r} is not allowed: after '/' comes a version number, e.g. '{model}/3'."
                )
            return self.get_version(model, int(number))
        validate_name(uri)
        self._read_model(uri)
        numbers = self._version_numbers(uri)
        if not numbers:
            raise NotFoundError(f"Model {uri!r} has no versions yet. Register one with Registry.register_version.")
        return self._load_version(uri, numbers[-1])

    def _check_trusted(self, data: bytes, what: str, remedy: str) -> None:
        untrusted = sorted(set(skops.io.get_untrusted_types(data=data)) - self.trusted_types)
        if untrusted:
            raise IntegrityError(
                f"{what} contains types that are not on the vetted allow-list: {', '.join(untrusted)}. "
                f"Loading unknown types could run arbitrary code. {remedy}"
            )

    def register_version(
        self,
        model: str,
        estimator: Any,
        *,
        actor: str,
        metrics: Mapping[str, float] | None = None,
        params: Mapping[str, Any] | None = None,
        input_schema: list[dict] | None = None,
        run_id: str | None = None,
        dataset_fingerprint: str | None = None,
        features: list[str] | None = None,
        description: str = "",
        tags: Mapping[str, Any] | None = None,
        extra: Mapping[str, Any] | None = None,
        created_at: datetime | None = None,
    ) -> ModelVersion:
        """Save a fitted estimator as the next version of ``model``.

        The model is created (owner: ``actor``) when missing. Everything is checked before
        anything is written: names, metrics, JSON-ability of the card, and that the skops
        dump contains only trusted types and loads back.

        Args:
            model: the model name.
            estimator: a fitted scikit-learn estimator or pipeline.
            actor: who registers (stored as the card's author and in the audit log).
            metrics: evaluation metrics; each must be a finite number.
            input_schema: ``[{"name": ..., "dtype": ...}, ...]`` of the input columns.
            features: input feature names; defaults to the estimator's ``feature_names_in_``.
            created_at: when the version was made (default now; naive means UTC). Also
                the time of the "registered" event, so backfilled histories read right.

        Returns:
            The new version.

        Raises:
            InvalidNameError: the model name breaks the rule.
            ValueError: a metric is not a finite number, or a field cannot be stored as JSON.
            IntegrityError: the estimator contains types outside the allow-list.
            MlopsError: another writer held the model lock longer than ``lock_timeout``.
        """
        validate_name(model)
        _check_actor(actor)
        clean_metrics = _clean_metrics(metrics)
        schema = _clean_schema(input_schema)
        if features is None and hasattr(estimator, "feature_names_in_"):
            features = [str(name) for name in estimator.feature_names_in_]
        created = _iso(created_at or _now())
        # Checked now, with a placeholder version, so a bad field fails before anything is written.
        card: dict[str, Any] = {
            "model": model,
            "version": 0,
            "created_at": created,
            "author": actor,
            "run_id": run_id,
            "description": description,
            "metrics": clean_metrics,
            "params": dict(params or {}),
            "input_schema": schema,
            "dataset_fingerprint": dataset_fingerprint,
            "features": list(features or []),
            "tags": dict(tags or {}),
            "artifact_sha256": "",
            "artifact_bytes": 0,
            "sklearn_version": sklearn.__version__,
            "skops_version": skops.__version__,
            "extra": dict(extra or {}),
        }
        _to_json_bytes(card, f"the card of model {model!r}")

        artifact = skops.io.dumps(estimator)
        self._check_trusted(
            artifact,
            f"The estimator for model {model!r} cannot be registered: it",
            "Use standard scikit-learn components, or add reviewed types to the setting `trusted_model_types`.",
        )
        # A dump that does not load back would only fail later, on the dashboard.
        try:
            skops.io.loads(artifact, trusted=sorted(self.trusted_types))
        except Exception as error:
            raise IntegrityError(
                f"The estimator for model {model!r} cannot be registered: skops cannot load it back ({error})."
            ) from error
        card["artifact_sha256"] = _sha256(artifact)
        card["artifact_bytes"] = len(artifact)

        self.root.mkdir(parents=True, exist_ok=True)
        with self._locked(model, create=True):
            self._create_model_locked(model, "", actor, actor)
            versions_dir = self.path_for(model, VERSIONS_DIR)
            versions_dir.mkdir(exist_ok=True)
            self._remove_stale_temp_dirs(versions_dir)
            numbers = self._version_numbers(model)
            number = numbers[-1] + 1 if numbers else 1
            card["version"] = number
            if created_at is None:
                card["created_at"] = created = _iso(_now())
            temp_dir = self.path_for(model, VERSIONS_DIR, f"{TEMP_PREFIX}{uuid.uuid4().hex}")
            temp_dir.mkdir()
            try:
                _write_synced(temp_dir / ARTIFACT_FILE, artifact)
                _write_synced(temp_dir / CARD_FILE, _to_json_bytes(card, "the card"))
                _fsync_dir(temp_dir)
                # Publish last: until this rename, readers see no trace of the version.
                os.rename(temp_dir, self.path_for(model, VERSIONS_DIR, number))
            except BaseException:
                shutil.rmtree(temp_dir, ignore_errors=True)
                raise
            _fsync_dir(versions_dir)
            self._append_event_locked(
                model,
                EVENT_REGISTERED,
                actor=actor,
                version=number,
                reason=description,
                details={"run_id": run_id, "metrics": clean_metrics, "artifact_sha256": card["artifact_sha256"]},
                time=created,
            )
            return self._load_version(model, number)

    def _remove_stale_temp_dirs(self, versions_dir: Path) -> None:
        # Temp folders are only made while holding the model lock, which we hold now, so
        # any that exist were left by a writer that crashed.
        for entry in versions_dir.iterdir():
            if entry.name.startswith(TEMP_PREFIX) and entry.is_dir() and not entry.is_symlink():
                logger.warning("Removing %s, left by an interrupted registration", entry)
                shutil.rmtree(entry, ignore_errors=True)

    def load_model(self, model_or_uri: str, version: int | str | None = None) -> Any:
        """Load a version's estimator after checking its sha256 and its types.

        Args:
            model_or_uri: a model name, or a URI for :meth:`resolve` when ``version`` is None.
            version: a version number or alias; None means what the URI says (or the latest).

        Returns:
            The fitted estimator.

        Raises:
            NotFoundError: no such model, version or alias.
            IntegrityError: the artifact is missing, changed since registration, or contains
                types outside the allow-list.
        """
        found = self.resolve(model_or_uri) if version is None else self.get_version(model_or_uri, version)
        label = f"model {found.model!r} version {found.version}"
        try:
            # Read once and check the same bytes we load, so the file cannot change in between.
            data = found.artifact_path.read_bytes()
        except FileNotFoundError:
            raise IntegrityError(
                f"The artifact of {label} is missing ({found.artifact_path}); re-register the version."
            ) from None
        expected = found.card.get("artifact_sha256", "")
        actual = _sha256(data)
        if actual != expected:
            raise IntegrityError(
                f"The artifact of {label} does not match its recorded sha256 (expected {expected}, "
                f"found {actual}): it was changed after registration; re-register the version."
            )
        self._check_trusted(
            data,
            f"The artifact of {label}",
            "If you have reviewed these types and trust them, add them to the setting "
            "`trusted_model_types` (MLOPS_APP_TRUSTED_MODEL_TYPES).",
        )
        return skops.io.loads(data, trusted=sorted(self.trusted_types))

    # Aliases -------------------------------------------------------------------------------

    def set_alias(
        self, model: str, alias: str, version: int | str, *, actor: str, reason: str = "", at: datetime | None = None
    ) -> None:
        """Point ``alias`` at a version (an existing alias moves) and record it in the audit log.

        Args:
            at: when it happened, for importing history kept elsewhere; now by default.

        Raises:
            InvalidNameError: the alias breaks the naming rule or is only digits.
            NotFoundError: the model or version does not exist.
        """
        validate_name(model)
        _validate_alias(alias)
        _check_actor(actor)
        with self._locked(model):
            data = self._read_model(model)
            number = self.get_version(model, version).version
            aliases = dict(data.get("aliases") or {})
            previous = aliases.get(alias)
            aliases[alias] = number
            data["aliases"] = dict(sorted(aliases.items()))
            write_atomic(self.path_for(model, MODEL_FILE), _to_json_bytes(data, "the model description"))
            self._append_event_locked(
                model, EVENT_ALIAS_SET, actor=actor, version=number, alias=alias, reason=reason,
                details={"previous": previous}, time=at,
            )  # fmt: skip

    def remove_alias(self, model: str, alias: str, *, actor: str, reason: str = "") -> None:
        """Remove an alias and record it. Raises NotFoundError when the alias is not set."""
        validate_name(model)
        _validate_alias(alias)
        _check_actor(actor)
        with self._locked(model):
            data = self._read_model(model)
            aliases = dict(data.get("aliases") or {})
            if alias not in aliases:
                known = _format_choices(sorted(aliases), "none")
                raise NotFoundError(f"Model {model!r} has no alias {alias!r}. Aliases: {known}.")
            previous = aliases.pop(alias)
            data["aliases"] = aliases
            write_atomic(self.path_for(model, MODEL_FILE), _to_json_bytes(data, "the model description"))
            self._append_event_locked(
                model, EVENT_ALIAS_REMOVED, actor=actor, version=None, alias=alias, reason=reason,
                details={"previous": previous},
            )  # fmt: skip

    def alias_history(self, model: str, alias: str) -> list[dict]:
        """Every move of an alias, oldest first.

        Returns:
            ``[{"time", "event", "version", "previous", "actor", "reason"}, ...]``;
            ``version`` is None where the alias was removed.
        """
        _validate_alias(alias)
        return [
            {
                "time": event.get("time"),
                "event": event.get("event"),
                "version": event.get("version"),
                "previous": (event.get("details") or {}).get("previous"),
                "actor": event.get("actor"),
                "reason": event.get("reason", ""),
            }
            for event in self.events(model)
            if event.get("event") in (EVENT_ALIAS_SET, EVENT_ALIAS_REMOVED) and event.get("alias") == alias
        ]

    # Audit log -----------------------------------------------------------------------------

    def append_event(
        self,
        model: str,
        event: str,
        *,
        actor: str,
        version: int | None = None,
        alias: str | None = None,
        reason: str = "",
        details: Mapping[str, Any] | None = None,
        time: datetime | str | None = None,
    ) -> dict:
        """Append one event to the model's audit log (under the model lock).

        Args:
            event: what happened, e.g. "requested", "approved", "promoted".
            time: when it happened; default now.

        Returns:
            The event as written.

        Raises:
            NotFoundError: the model does not exist.
            ValueError: the event or actor is empty, or details cannot be stored as JSON.
        """
        validate_name(model)
        with self._locked(model):
            return self._append_event_locked(
                model, event, actor=actor, version=version, alias=alias, reason=reason, details=details, time=time
            )

    def _append_event_locked(
        self,
        model: str,
        event: str,
        *,
        actor: str,
        version: int | None = None,
        alias: str | None = None,
        reason: str = "",
        details: Mapping[str, Any] | None = None,
        time: datetime | str | None = None,
    ) -> dict:
        if not isinstance(event, str) or not event.strip():
            raise ValueError("An event needs a name, e.g. 'registered' or 'approved'.")
        _check_actor(actor)
        record = {
            "time": time if isinstance(time, str) else _iso(time or _now()),
            "event": event,
            "actor": actor,
            "model": model,
            "version": version,
            "alias": alias,
            "reason": reason or "",
            "details": dict(details or {}),
        }
        line = json.dumps(record, default=_json_default, allow_nan=False, separators=(",", ":")) + "\n"
        path = self.path_for(model, EVENTS_FILE)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            payload = line.encode("utf-8")
            # A writer killed mid-line leaves a torn tail; end it so this event starts a
            # fresh line and stays readable (readers skip the torn one).
            if os.fstat(fd).st_size > 0 and not _ends_with_newline(path):
                payload = b"\n" + payload
            while payload:
                written = os.write(fd, payload)
                payload = payload[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        return record

    def _read_events(self, model: str) -> list[dict]:
        path = self.path_for(model, EVENTS_FILE)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return []
        records = []
        for number, line in enumerate(raw.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError):
                record = None
            if isinstance(record, dict):
                records.append(record)
            else:
                logger.warning("Skipping unreadable line %d of %s (a write was interrupted)", number, path)
        return records

    def events(self, model: str | None = None, *, limit: int | None = None, newest_first: bool = False) -> list[dict]:
        """Audit events of one model (in the order they were written), or of all models merged by time.

        Args:
            model: a model name; None for every model.
            limit: keep only the newest ``limit`` events.
            newest_first: order newest first (default oldest first).

        Raises:
            NotFoundError: ``model`` is given but does not exist.
        """
        if model is not None:
            self._read_model(model)
            # File order is the order of the writes, even when a caller backdated a time.
            records = self._read_events(model)
        else:
            records = [record for name in self._model_names() for record in self._read_events(name)]
            records.sort(key=_event_sort_key)
        if limit is not None:
            records = records[-limit:] if limit > 0 else []
        if newest_first:
            records.reverse()
        return records


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"


def _event_sort_key(record: dict) -> datetime:
    try:
        moment = datetime.fromisoformat(str(record.get("time")))
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _check_actor(actor: str) -> None:
    if not isinstance(actor, str) or not actor.strip():
        raise ValueError("Every registry change needs an actor (who made it), e.g. an e-mail address.")


def _clean_metrics(metrics: Mapping[str, float] | None) -> dict[str, float]:
    clean: dict[str, float] = {}
    for name, value in (metrics or {}).items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"Metric names must be non-empty strings, got {name!r}. Nothing was registered.")
        try:
            if isinstance(value, bool):
                raise TypeError
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(
                f"Metric {name!r} is {value!r}; metrics must be numbers. Nothing was registered."
            ) from None
        if not math.isfinite(number):
            raise ValueError(
                f"Metric {name!r} is {number}; metrics must be finite numbers (no NaN or infinity). "
                "Fix the evaluation that produced it. Nothing was registered."
            )
        clean[name] = number
    return clean


def _clean_schema(input_schema: list[dict] | None) -> list[dict]:
    clean = []
    for column in input_schema or []:
        if not isinstance(column, Mapping) or not isinstance(column.get("name"), str) or "dtype" not in column:
            raise ValueError(
                f"Each input_schema entry must be {{'name': str, 'dtype': str}}, got {column!r}. Nothing was registered."
            )
        clean.append({"name": column["name"], "dtype": str(column["dtype"])})
    return clean
