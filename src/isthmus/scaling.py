"""The scaler fitted on training data and stored with the model: ``scaled = (x - offset) / scale``."""

from __future__ import annotations

from collections.abc import Callable
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


#: ``"robust"``: quantile ranges, each divided by its width for a normal distribution (2 * 0.6745, ...), so
#: that robust scaling gives Gaussian columns the units of standard scaling. The interquartile range comes
#: first; where it is 0 (a column that holds one value in most rows, as many of shuttle's do) the next,
#: wider range floors it, so that the column's rare other values get a few units, not an infinite or huge
#: value that would drown every other column. The standard deviation is the last resort. No floor is a
#: fraction of the standard deviation: the anomalies in the column inflate it, which robust scaling avoids.
ROBUST_RANGES = ((25.0, 75.0, 1.3490), (5.0, 95.0, 3.2897), (1.0, 99.0, 4.6527))


def _minmax(x: np.ndarray, axes: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    low = x.min(axis=axes, keepdims=True)[0]
    return low, x.max(axis=axes, keepdims=True)[0] - low


def _standard(x: np.ndarray, axes: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    return x.mean(axis=axes, keepdims=True, dtype=np.float64)[0], x.std(axis=axes, keepdims=True, dtype=np.float64)[0]


def _robust(x: np.ndarray, axes: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    # the median and a quantile range: the anomalies a table holds move neither
    data = x.astype(np.float64, copy=False)
    median = np.percentile(data, 50.0, axis=axes, keepdims=True)[0]
    spread = np.zeros_like(median)
    for low, high, width in ROBUST_RANGES:  # the first range that is not 0, per feature
        q_low, q_high = np.percentile(data, [low, high], axis=axes, keepdims=True)[:, 0]
        spread = np.where(spread > 0, spread, (q_high - q_low) / width)
    return median, np.where(spread > 0, spread, data.std(axis=axes, keepdims=True)[0])


def _none(x: np.ndarray, axes: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros(x.shape[1:]), np.ones(x.shape[1:])


class Scaling(NamedTuple):
    """A table entry: ``fit(x, axes) -> (offset, spread)``, whether per-feature minimum, maximum, mean
    and standard deviation determine it (so that a streamed source needs one pass and no sample), and
    whether its spread is a standard deviation (so that training noise adds to it, :func:`with_noise`)."""

    fit: Callable[[np.ndarray, tuple[int, ...]], tuple[np.ndarray, np.ndarray]]
    from_moments: bool = True
    deviation: bool = False


#: ``scaling`` name -> its entry; ``config.CHOICES["scaling"]`` is ``"auto"`` and these names
SCALINGS: dict[str, Scaling] = {
    "minmax": Scaling(_minmax),
    "standard": Scaling(_standard, deviation=True),
    "robust": Scaling(_robust, from_moments=False, deviation=True),
    "none": Scaling(_none),
}


def _entry(scaling: str) -> Scaling:
    if scaling not in SCALINGS:
        raise ConfigError(f"scaling={scaling!r} is not allowed; choose one of: auto, {', '.join(SCALINGS)}")
    return SCALINGS[scaling]


def with_noise(span: np.ndarray, scaling: str, noise: float) -> np.ndarray:
    """The spread of what a network trained on noisy inputs sees: ``sqrt(span**2 + noise**2)`` for a scaling
    whose spread is a standard deviation, ``span`` unchanged for any other (or ``noise`` 0).

    ``noise`` is the standard deviation of the training noise in the data's units (a Gaussian corruption's
    ``noise_level``), independent of the data, so the variances add. A near-constant feature (a pixel that is
    blank in most images) then gets a scale of about the noise, not its own tiny deviation, which would blow
    the noise up to dozens of units and make the loss weigh that feature thousands of times over the others.
    """
    if noise <= 0 or not _entry(scaling).deviation:
        return span
    return np.sqrt(np.square(span) + noise**2)


def fit_scaler(
    x: np.ndarray, scaling: str, *, is_image: bool, unscaled: np.ndarray | None = None, noise: float = 0.0
) -> Scaler:
    """Fit a scaler on ``x`` (n_samples, *sample_shape); images get one global offset and scale.

    Missing values (NaN, a table's missing cells) are left out of each feature's statistics; features where
    ``unscaled`` (a boolean array of one sample's shape) is True keep offset 0 and scale 1 (a table's
    one-hot levels). ``noise``: the training noise's standard deviation in the data's units (:func:`with_noise`).
    """
    axes = tuple(range(x.ndim)) if is_image else (0,)
    entry = _entry(scaling)
    if not is_image and x.ndim == 2 and np.isnan(x).any():  # each column from its observed values
        parts = [entry.fit(x[~np.isnan(x[:, j]), j][:, None], (0,)) for j in range(x.shape[1])]
        low = np.array([float(np.asarray(p[0]).reshape(-1)[0]) for p in parts])
        span = np.array([float(np.asarray(p[1]).reshape(-1)[0]) for p in parts])
    else:
        low, span = entry.fit(x, axes)
    span = with_noise(span, scaling, noise)
    span = np.where(span > 0, span, 1.0)  # constant features pass through unscaled
    if unscaled is not None:
        low, span = np.where(unscaled, 0.0, low), np.where(unscaled, 1.0, span)
    shape = x.shape[1:]
    return Scaler(
        offset=np.broadcast_to(low, shape).astype(np.float32),
        scale=np.broadcast_to(span, shape).astype(np.float32),
    )


def scaler_from_moments(
    low: np.ndarray,
    high: np.ndarray,
    mean: np.ndarray,
    std: np.ndarray,
    scaling: str,
    *,
    is_image: bool,
    sample: np.ndarray | None = None,
    noise: float = 0.0,
) -> Scaler:
    """The scaler :func:`fit_scaler` would fit, from per-feature statistics gathered in one streaming pass;
    a scaling that moments do not determine (``"robust"``) is fitted on ``sample``, rows drawn from the source."""
    if not _entry(scaling).from_moments:
        if sample is None:
            raise ConfigError(f"scaling={scaling!r} needs a sample of rows, not only their moments")
        return fit_scaler(sample, scaling, is_image=is_image, noise=noise)
    if is_image:  # one global offset and scale: pool the per-pixel statistics (every pixel has equal count)
        pooled_mean = mean.mean()
        pooled_std = np.sqrt((std**2 + (mean - pooled_mean) ** 2).mean())
        low, high = np.full_like(low, low.min()), np.full_like(high, high.max())
        mean, std = np.full_like(mean, pooled_mean), np.full_like(std, pooled_std)
    if scaling == "minmax":
        offset, span = low, high - low
    elif scaling == "standard":
        offset, span = mean, std
    else:  # "none"
        offset, span = np.zeros_like(mean), np.ones_like(mean)
    span = with_noise(span, scaling, noise)
    span = np.where(span > 0, span, 1.0)
    return Scaler(offset=offset.astype(np.float32), scale=span.astype(np.float32))
