"""What the estimator takes as data besides NumPy arrays: torch tensors, torch Datasets and array-likes.

``as_input`` runs first in every method that reads samples. It turns torch objects into NumPy arrays
and anything without an ``ndim`` (lists, objects that only offer ``__array__``) into an array, and
passes arrays and pandas DataFrames through untouched, so scikit-learn's validation still sees the
DataFrame's column names. A Dataset is read whole into memory (streaming is not supported here).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset

from isthmus.errors import DataError


def as_input(X: Any, name: str = "X") -> Any:
    """``X`` as something with ``ndim`` and ``shape``: an array, or a DataFrame as given.

    Parameters
    ----------
    X : array-like, pandas DataFrame, torch.Tensor or torch.utils.data.Dataset
        A Dataset's items are tensors (or arrays) of one sample's shape, or tuples such as ``(x, y)``
        whose first element is the sample; the rest of each tuple is ignored.
    name : str
        What to call ``X`` in error messages.

    Returns
    -------
    ndarray or DataFrame
        Samples along the first axis; tensors become float32 arrays on the CPU.
    """
    if isinstance(X, torch.Tensor):
        return _tensor_to_numpy(X)
    if isinstance(X, Dataset):
        return _stack_dataset(X, name)
    if hasattr(X, "ndim") and hasattr(X, "shape"):
        return X  # ndarray, DataFrame, sparse matrix: scikit-learn's validation takes it from here
    return np.asarray(X)


def _tensor_to_numpy(t: torch.Tensor) -> np.ndarray:
    """A detached float32 CPU copy (bfloat16 and half have no exact NumPy twin, float32 is used anyway)."""
    return t.detach().to("cpu", torch.float32).numpy()


def _stack_dataset(dataset: Dataset[Any], name: str) -> np.ndarray:
    """Every sample of ``dataset`` stacked into one float32 array (n_samples, *sample shape)."""
    if isinstance(dataset, IterableDataset) or not hasattr(dataset, "__len__"):
        items: Any = iter(dataset)
    else:
        items = (dataset[i] for i in range(len(dataset)))
    samples = []
    for index, item in enumerate(items):
        sample = item[0] if isinstance(item, (tuple, list)) and len(item) > 0 else item
        if isinstance(sample, torch.Tensor):
            samples.append(_tensor_to_numpy(sample))
            continue
        try:
            samples.append(np.asarray(sample, dtype=np.float32))
        except (TypeError, ValueError):
            raise DataError(
                f"{name} is a torch Dataset whose item {index} is a {type(item).__name__}; each item must be a "
                "tensor or array of one sample, or a tuple (sample, ...) such as (x, y)"
            ) from None
    if not samples:
        raise DataError(f"{name} is an empty torch Dataset; it must yield at least one sample")
    first = samples[0].shape
    for index, sample in enumerate(samples):
        if sample.shape != first:
            raise DataError(
                f"{name} is a torch Dataset whose samples differ in shape: item 0 is {first}, item {index} is "
                f"{sample.shape}; every sample must have the same shape"
            )
    return np.stack(samples)
