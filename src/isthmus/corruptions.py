"""Denoising corruptions: noise applied to the input during training only; the target stays clean.

Each entry maps ``(x, level, generator) -> corrupted x`` on scaled data of any shape.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

Corruption = Callable[[Tensor, float, "torch.Generator | None"], Tensor]


def _uniform_like(x: Tensor, generator: torch.Generator | None) -> Tensor:
    return torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def none(x: Tensor, level: float, generator: torch.Generator | None) -> Tensor:
    """No corruption: a plain autoencoder."""
    return x


def gaussian(x: Tensor, level: float, generator: torch.Generator | None) -> Tensor:
    """Add zero-mean Gaussian noise with standard deviation ``level``."""
    return x + level * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def masking(x: Tensor, level: float, generator: torch.Generator | None) -> Tensor:
    """Set each value to zero with probability ``level``."""
    return x * (_uniform_like(x, generator) >= level)


def salt_pepper(x: Tensor, level: float, generator: torch.Generator | None) -> Tensor:
    """Set each value with probability ``level`` to the batch minimum or maximum, half each."""
    u = _uniform_like(x, generator)
    low, high = x.min(), x.max()
    x = torch.where(u < level / 2, low, x)
    return torch.where((u >= level / 2) & (u < level), high, x)


CORRUPTIONS: dict[str, Corruption] = {
    "none": none,
    "gaussian": gaussian,
    "masking": masking,
    "salt_pepper": salt_pepper,
}
