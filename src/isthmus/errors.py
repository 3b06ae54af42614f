"""The one exception tree of isthmus.

Every error a user can cause is an :class:`IsthmusError`; the command line prints its message as
``error: <message>`` and exits with status 1. Errors that are also a wrong *value* derive from
:class:`ValueError` too, so scikit-learn's conventions (``except ValueError``) keep working::

    IsthmusError
    ├── ConfigError        (ValueError)  a parameter value is not allowed
    ├── DataError          (ValueError)  input data cannot be read or is not usable
    │   └── DownloadError               a named dataset could not be fetched or verified
    ├── ModelFileError     (ValueError)  a model or checkpoint file is corrupt, foreign or incompatible
    ├── EncoderOnlyError                a model holding only the encoder was asked to decode
    ├── NotFittedError     (ValueError, AttributeError)  the estimator was used before ``fit``
    ├── TrainingError                   training diverged (NaN or inf loss)
    ├── OutputError                     a result cannot be written
    └── DependencyError    (ImportError)  an optional extra (report, onnx) is not installed
"""

from __future__ import annotations

from typing import Any


class IsthmusError(Exception):
    """Base class of every error isthmus raises on purpose."""


class ConfigError(IsthmusError, ValueError):
    """A parameter value is not allowed; the message names it and what is allowed."""


class DataError(IsthmusError, ValueError):
    """Input data cannot be read, parsed or used (format, NaN/inf, shape, emptiness)."""


class DownloadError(DataError):
    """A named dataset is missing and could not be downloaded or failed its checksum."""


class ModelFileError(IsthmusError, ValueError):
    """A model or checkpoint file is unreadable, not an isthmus file, or does not match its config."""


class EncoderOnlyError(IsthmusError):
    """A model file holding only the encoder was asked to decode or reconstruct."""


class TrainingError(IsthmusError):
    """Training cannot go on, for example because the loss became NaN or infinite."""


class OutputError(IsthmusError):
    """A result cannot be written (unwritable path, existing file without overwrite)."""


class DependencyError(IsthmusError, ImportError):
    """A feature needs an optional dependency that is not installed; the message names the extra."""


def _not_fitted_error() -> type:
    """NotFittedError, made on first use: its scikit-learn base costs a second to import, and the command
    line's ``--help`` must not pay for it."""
    from sklearn.exceptions import NotFittedError as _SklearnNotFittedError

    class NotFittedError(IsthmusError, _SklearnNotFittedError):
        """The estimator was used before ``fit`` (also scikit-learn's ``NotFittedError``)."""

    NotFittedError.__module__ = __name__
    NotFittedError.__qualname__ = "NotFittedError"  # so that pickle finds it again
    return NotFittedError


def __getattr__(name: str) -> Any:
    if name == "NotFittedError":
        cls = globals()["NotFittedError"] = _not_fitted_error()  # made once, then a plain module attribute
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
