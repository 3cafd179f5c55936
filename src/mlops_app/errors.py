"""Errors a person reads: each says what was wrong and how to fix it."""

from __future__ import annotations


class MlopsError(Exception):
    """Base class for every error mlops-app raises on purpose.

    The message is written for the person who caused it (a CLI user, a page visitor,
    a notebook author): what was wrong, then what to do about it.
    """


class ConfigError(MlopsError):
    """A setting has a value outside its rules."""


class InvalidNameError(MlopsError, ValueError):
    """A name that becomes a path or an identifier breaks the naming rule."""


class NotFoundError(MlopsError, LookupError):
    """A model, version, dataset or run that was asked for does not exist."""


class WarehouseBusyError(MlopsError, TimeoutError):
    """Another process held the warehouse longer than the lock timeout."""


class IntegrityError(MlopsError):
    """Stored bytes do not match what was recorded (sha256, schema, types)."""


class PermissionDeniedError(MlopsError, PermissionError):
    """The signed-in user's role does not allow the action."""
