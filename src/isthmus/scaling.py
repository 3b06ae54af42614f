"""The scaler fitted on training data and stored with the model: ``scaled = (x - offset) / scale``."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from isthmus.errors import ConfigError


class Scaler(NamedTuple):
    """Per-feature (tabular) or global (image) affine scaling; arrays broadcast to one sample's shape."""

    offset: np.ndarray  # float32, shape of one sample
    scale: np.ndarray  # float32, shape of one sample, never zero

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Caller's units -> the network's units."""
        return ((x - self.offset) / self.scale).astype(np.float32, copy=False)

    def transform_in_place(self, x: np.ndarray) -> np.ndarray:
        """:meth:`transform` into ``x`` itself (float32): no copy of a large array."""
        np.subtract(x, self.offset, out=x)
        np.divide(x, self.scale, out=x)
        return x

    def inverse_transform(self, x: np.ndarray, dtype: type = np.float32) -> np.ndarray:
        """The network's units -> caller's units, computed in ``dtype`` (float64 for a lossless stream's
        exact reconstruction)."""
        return (x * self.scale.astype(dtype) + self.offset.astype(dtype)).astype(dtype, copy=False)


def resolve_scaling(scaling: str, is_image: bool) -> str:
    """``"auto"`` is ``"minmax"`` for images and ``"standard"`` for tabular data."""
    if scaling == "auto":
        return "minmax" if is_image else "standard"
    return scaling


def fit_scaler(x: np.ndarray, scaling: str, *, is_image: bool) -> Scaler:
    """Fit a scaler on ``x`` (n_samples, *sample_shape); images get one global offset and scale."""
    axes = tuple(range(x.ndim)) if is_image else (0,)
    if scaling == "minmax":
        low = x.min(axis=axes, keepdims=True)[0]
        span = x.max(axis=axes, keepdims=True)[0] - low
    elif scaling == "standard":
        low = x.mean(axis=axes, keepdims=True, dtype=np.float64)[0]
        span = x.std(axis=axes, keepdims=True, dtype=np.float64)[0]
    elif scaling == "none":
        low, span = np.zeros(x.shape[1:]), np.ones(x.shape[1:])
    else:
        raise ConfigError(f"scaling={scaling!r} is not allowed; choose one of: auto, minmax, standard, none")
    span = np.where(span > 0, span, 1.0)  # constant features pass through unscaled
    shape = x.shape[1:]
    return Scaler(
        offset=np.broadcast_to(low, shape).astype(np.float32),
        scale=np.broadcast_to(span, shape).astype(np.float32),
    )


def scaler_from_moments(
    low: np.ndarray, high: np.ndarray, mean: np.ndarray, std: np.ndarray, scaling: str, *, is_image: bool
) -> Scaler:
    """The scaler :func:`fit_scaler` would fit, from per-feature statistics gathered in one streaming pass."""
    if is_image:  # one global offset and scale: pool the per-pixel statistics (every pixel has equal count)
        pooled_mean = mean.mean()
        pooled_std = np.sqrt((std**2 + (mean - pooled_mean) ** 2).mean())
        low, high = np.full_like(low, low.min()), np.full_like(high, high.max())
        mean, std = np.full_like(mean, pooled_mean), np.full_like(std, pooled_std)
    if scaling == "minmax":
        offset, span = low, high - low
    elif scaling == "standard":
        offset, span = mean, std
    elif scaling == "none":
        offset, span = np.zeros_like(mean), np.ones_like(mean)
    else:
        raise ConfigError(f"scaling={scaling!r} is not allowed; choose one of: auto, minmax, standard, none")
    span = np.where(span > 0, span, 1.0)
    return Scaler(offset=offset.astype(np.float32), scale=span.astype(np.float32))
