"""Datasets known by name: a table from name to loader.

A loader takes the option after the colon in a spec (``"mnist:test"`` gives ``"test"``; a bare name gives
None) and returns a :class:`Dataset`. Adding a dataset is one function and one table line.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sklearn.datasets import load_digits

from isthmus.data.dataset import Dataset, as_dataset
from isthmus.data.download import fetch_idx
from isthmus.errors import DataError


def _digits(option: str | None) -> Dataset:
    """scikit-learn's 1,797 handwritten digits as (1797, 1, 8, 8) images with values 0-16."""
    if option is not None:
        raise DataError(f"digits has no splits, but 'digits:{option}' asks for one; use 'digits'")
    bunch = load_digits()
    return as_dataset(bunch.images[:, np.newaxis], bunch.target, "digits")


def _fashion_mnist(option: str | None) -> Dataset:
    """Fashion-MNIST from the data home (downloaded when missing); option is the split."""
    return fetch_idx("fashion-mnist", split=option or "train")


def _mnist(option: str | None) -> Dataset:
    """MNIST from the data home (downloaded when missing); option is the split."""
    return fetch_idx("mnist", split=option or "train")


BUILTINS: dict[str, Callable[[str | None], Dataset]] = {
    "digits": _digits,
    "fashion-mnist": _fashion_mnist,
    "mnist": _mnist,
}
