"""mlops-app: a self-hosted MLOps dashboard and its Python library."""

from __future__ import annotations

__version__ = "0.1.0"


def __getattr__(name: str):
    # Lazy, so `import mlops_app` stays cheap: serving code calls mlops_app.load_model("NAME@champion").
    if name == "load_model":
        from mlops_app.serving import load_model

        return load_model
    raise AttributeError(f"module 'mlops_app' has no attribute {name!r}")
