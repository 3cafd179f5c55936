"""mlops-app: a self-hosted MLOps dashboard and its Python library."""

from __future__ import annotations

__version__ = "0.1.0"
