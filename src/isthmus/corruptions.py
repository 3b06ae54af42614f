"""Denoising corruptions: noise applied to the input during training only; the target stays clean.

Each entry maps ``(x, level, generator) -> corrupted x`` on scaled data of any shape; ``level`` is
``noise_level``: a probability, or, for the entries in ``LEVEL_IN_DATA_UNITS``, a standard deviation that
the user states in the data's own units and the model converts to scaled units per feature (a float or
a tensor of one sample's shape). The model applies the entry in training only and takes the
reconstruction loss against the clean ``x``, so a trained network maps corrupted inputs to clean ones
and ``Autoencoder.denoise`` is its plain reconstruction.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

Corruption = Callable[[Tensor, "float | Tensor", "torch.Generator | None"], Tensor]


def _uniform_like(x: Tensor, generator: torch.Generator | None) -> Tensor:
    return torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def none(x: Tensor, level: float | Tensor, generator: torch.Generator | None) -> Tensor:
    """No corruption: a plain autoencoder."""
    return x


def gaussian(x: Tensor, level: float | Tensor, generator: torch.Generator | None) -> Tensor:
    """Add zero-mean Gaussian noise with standard deviation ``level``."""
    return x + level * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def gaussian_clipped(x: Tensor, level: float | Tensor, generator: torch.Generator | None) -> Tensor:
    """Gaussian noise, then clipped to the clean batch's range: noisy pixels stay valid pixels."""
    return gaussian(x, level, generator).clamp(x.min(), x.max())


def masking(x: Tensor, level: float | Tensor, generator: torch.Generator | None) -> Tensor:
    """Set each value to zero with probability ``level``."""
    return x * (_uniform_like(x, generator) >= level)


def salt_pepper(x: Tensor, level: float | Tensor, generator: torch.Generator | None) -> Tensor:
    """Set each value with probability ``level`` to the batch minimum or maximum, half each."""
    u = _uniform_like(x, generator)
    low, high = x.min(), x.max()
    x = torch.where(u < level / 2, low, x)
    return torch.where((u >= level / 2) & (u < level), high, x)


CORRUPTIONS: dict[str, Corruption] = {
    "none": none,
    "gaussian": gaussian,
    "gaussian_clipped": gaussian_clipped,
    "masking": masking,
    "salt_pepper": salt_pepper,
}

#: the corruptions whose ``noise_level`` is a standard deviation in the data's units (not a probability)
LEVEL_IN_DATA_UNITS = frozenset({"gaussian", "gaussian_clipped"})
