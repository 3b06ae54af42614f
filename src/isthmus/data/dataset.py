"""The in-memory dataset every reader returns, and the checks that make an array usable.

Every source (a file, an image folder, a built-in name) ends in :func:`as_dataset`, so the rules are
the same everywhere: samples along the first axis, float32 features, no NaN or infinity, integer labels
of matching length.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt

import isthmus.data.limits as limits
from isthmus.errors import DataError

NUMERIC_KINDS = "biuf"  # bool, signed and unsigned integers, floats
_MAX_ROWS_NAMED = 5


class Dataset(NamedTuple):
    """Samples, optional labels and the name of their source.

    Attributes
    ----------
    X : ndarray of float32
        Tabular data of shape (n_samples, n_features) or images of shape
        (n_samples, channels, height, width). Raw values, not scaled.
    y : ndarray of int64 or None
        Class labels of shape (n_samples,) when the source has them, else None.
    name : str
        A short human name of the source, such as ``"digits"`` or ``"train.csv"``.
    """

    X: npt.NDArray[np.float32]
    y: npt.NDArray[np.int64] | None
    name: str


def check_finite(X: npt.NDArray[np.generic], name: str) -> None:
    """Raise if ``X`` holds NaN or infinite values, naming the first offending rows.

    Parameters
    ----------
    X : ndarray
        Samples along the first axis, any number of trailing axes.
    name : str
        What ``X`` is, for the message (a file name, ``"X"``).

    Raises
    ------
    DataError
        If any value is NaN or infinite; the message gives up to five row indices.
    """
    if X.dtype.kind != "f" or X.size == 0:
        return
    # A float64 sum of float32 values cannot overflow, so it is finite exactly when every value is.
    with np.errstate(invalid="ignore", over="ignore"):  # inf - inf is NaN: reported below, not warned about
        if np.isfinite(np.sum(X, dtype=np.float64)):
            return
    bad_rows = np.flatnonzero(~np.isfinite(X.reshape(len(X), -1)).all(axis=1))
    shown = ", ".join(str(int(row)) for row in bad_rows[:_MAX_ROWS_NAMED])
    more = len(bad_rows) - _MAX_ROWS_NAMED
    extra = f" (and {more} more)" if more > 0 else ""
    raise DataError(
        f"{name} has NaN or infinite values in rows {shown}{extra} (counting from 0); "
        "remove or impute those rows before using the data"
    )


def as_labels(labels: npt.NDArray[np.generic], name: str) -> npt.NDArray[np.int64]:
    """Return ``labels`` as a 1-D int64 array, or raise if they are not whole numbers.

    A column vector of shape (n, 1) is accepted and flattened.
    """
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise DataError(f"labels in {name} have shape {labels.shape}; labels must be 1-D, one integer per sample")
    if labels.dtype.kind not in NUMERIC_KINDS:
        raise DataError(f"labels in {name} have dtype {labels.dtype}; labels must be integers")
    if labels.dtype.kind == "f":
        floats = labels.astype(np.float64, copy=False)
        whole = np.isfinite(floats) & (floats == np.round(floats))
        if not whole.all():
            row = int(np.flatnonzero(~whole)[0])
            raise DataError(f"labels in {name} must be whole numbers; row {row} holds {labels[row]!r}")
    return np.ascontiguousarray(labels, dtype=np.int64)


def as_dataset(X: npt.NDArray[np.generic], y: npt.NDArray[np.generic] | None, name: str) -> Dataset:
    """Validate raw arrays from a source and return them as a :class:`Dataset`.

    Parameters
    ----------
    X : ndarray
        Numeric samples: 2-D (n_samples, n_features), 3-D (n_samples, height, width) images, which
        gain a channel axis, or 4-D (n_samples, channels, height, width) images.
    y : ndarray or None
        Labels, one per sample.
    name : str
        The source name, used in messages and kept in the result.

    Returns
    -------
    Dataset
        ``X`` as C-contiguous float32, ``y`` as int64.

    Raises
    ------
    DataError
        If ``X`` is not numeric, has the wrong number of axes, has no rows or no features, holds NaN
        or infinity, or if ``y`` does not give one whole number per sample.
    """
    if X.dtype.kind not in NUMERIC_KINDS:
        raise DataError(f"{name} holds values of dtype {X.dtype}; isthmus needs numbers (bool, integer or float)")
    if X.ndim == 3:
        X = X[:, np.newaxis]  # (n_samples, height, width) -> (n_samples, 1, height, width)
    if X.ndim not in (2, 4):
        raise DataError(
            f"{name} holds a {X.ndim}-D array of shape {X.shape}; isthmus needs 2-D (n_samples, "
            "n_features) data or images (n_samples, [channels,] height, width); "
            "reshape it, for example with x.reshape(len(x), -1)"
        )
    if X.shape[0] == 0:
        raise DataError(f"{name} has no rows; give at least one sample")
    if X.size == 0:
        raise DataError(f"{name} has shape {X.shape} with no features; give at least one column")
    if X.dtype != np.float32 or not X.flags.c_contiguous:  # a copy is made: it must fit
        rows = max(1, limits.memory_limit() // (4 * (X.size // len(X))))
        limits.check_allocation(
            4 * X.size,
            f"{name} (shape {X.shape} as float32)",
            f"read fewer rows, e.g. {name}[:{rows}], or stream the file",
        )
    with np.errstate(over="ignore"):  # values beyond float32 become inf, which check_finite reports
        features = np.ascontiguousarray(X, dtype=np.float32)
    # a table's missing cells (NaN) are allowed (isthmus.data.schema); images and infinity are refused
    check_finite(np.where(np.isnan(features), np.float32(0.0), features) if features.ndim == 2 else features, name)
    labels = None
    if y is not None:
        labels = as_labels(y, name)
        if len(labels) != len(features):
            raise DataError(f"{name} has {len(features)} samples but {len(labels)} labels; give one label per sample")
    return Dataset(features, labels, name)
