"""What the estimator takes as data besides NumPy arrays: torch tensors, torch Datasets and array-likes.

``as_input`` runs first in every method that reads samples. It turns torch objects into NumPy arrays
and anything without an ``ndim`` (lists, objects that only offer ``__array__``) into an array, and
passes arrays and pandas DataFrames through untouched, so scikit-learn's validation still sees the
DataFrame's column names. A Dataset is read whole into memory (streaming is not supported here).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from sklearn.utils.validation import check_array
from torch.utils.data import Dataset, IterableDataset

from isthmus.data import check_finite
from isthmus.errors import DataError
from isthmus.shapes import any_size_image, describe, mismatch, same_sample


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


def check_shape(
    shape: tuple[int, ...], input_shape: Sequence[int], who: str = "Autoencoder", *, any_size: bool = False
) -> None:
    """DataError unless samples of ``shape`` are samples of the model's ``input_shape`` (:mod:`isthmus.shapes`);
    with ``any_size`` (a fully convolutional model), images of its channels of any height and width."""
    if same_sample(shape, input_shape) or (any_size and any_size_image(shape, input_shape)):
        return
    n_features = math.prod(input_shape)
    if math.prod(shape) == n_features:  # as many values, another shape: never reshaped into it
        raise mismatch(shape, input_shape)
    # the opening words are scikit-learn's own ("X has 1 features, but ... is expecting 4 features as input")
    raise DataError(
        f"X has {math.prod(shape)} features, but {who} is expecting {n_features} features as input: it was "
        f"trained on {describe(input_shape)}, and got {describe(shape)}; pass data like the training data"
    )


def as_samples(X: Any, input_shape: Sequence[int]) -> np.ndarray:
    """``X`` as finite float32 samples ``(n_samples, *input_shape)`` of a model fitted on ``input_shape``,
    or DataError (without the estimator's check of column names, which its own methods make)."""
    x = as_input(X)
    if x.ndim < 2:
        raise DataError(
            f"X must hold samples along its first axis, (n_samples, n_features) or images; got a {x.ndim}-D "
            f"array of shape {tuple(x.shape)}"
        )
    check_shape(tuple(x.shape[1:]), input_shape)
    x = check_array(x, dtype=np.float32, allow_nd=True, ensure_all_finite=False)
    check_finite(x, "X")
    return x.reshape(len(x), *input_shape)


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
