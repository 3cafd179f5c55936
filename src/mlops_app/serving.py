"""Loading registered models in serving code: ``mlops_app.load_model("apple-grader@champion")``.

Serving code needs one call that returns the fitted estimator the registry currently names,
with the registry's safety checks (sha256 against the card, skops with the vetted type
allow-list). The registry is the one in the settings' home (``MLOPS_APP_HOME``), so the same
code finds the right model in development, in CI and in production.
"""

from __future__ import annotations

from typing import Any

from mlops_app.config import Settings, load_settings, parse_list
from mlops_app.registry import ModelVersion, Registry


def _registry(settings: Settings | None) -> Registry:
    settings = settings or load_settings()
    return Registry(
        settings.registry_path,
        lock_timeout=settings.lock_timeout_seconds,
        extra_trusted_types=parse_list(settings.trusted_model_types),
    )


def resolve_model(uri: str, *, settings: Settings | None = None) -> ModelVersion:
    """The registered version a URI names (``name@alias``, ``name/3`` or ``name`` for the latest)."""
    return _registry(settings).resolve(uri)


def load_model(uri: str, *, settings: Settings | None = None) -> Any:
    """Load the fitted estimator a URI names, e.g. ``"apple-grader@champion"`` or ``"apple-grader/3"``.

    The alias is resolved at call time: after a promotion or rollback, the next call loads the
    new version (long-running services reload on the ``alias_moved`` webhook).

    Args:
        settings: where the registry is; default the environment's settings.

    Raises:
        InvalidNameError: the URI breaks the naming rules.
        NotFoundError: no such model, alias or version; the message lists what exists.
        IntegrityError: the artifact changed since registration or holds untrusted types.
    """
    return _registry(settings).load_model(uri)
