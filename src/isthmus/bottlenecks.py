"""Bottlenecks: what sits between the encoder's output and the decoder's input.

A bottleneck says how wide the encoder's output must be (``encoder_width``), turns that output into
the code the decoder sees in training (``code``), the deterministic code ``transform`` returns
(``mean``), and any loss terms of its own, already weighted (``terms``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor, nn

from isthmus.config import ModelConfig


class BottleneckOut(NamedTuple):
    """The bottleneck's outputs for one batch."""

    code: Tensor  # (batch, n_components): the decoder's input in training
    mean: Tensor  # (batch, n_components): the deterministic code
    terms: dict[str, Tensor]  # named, weighted, batch-averaged loss terms


class Deterministic(nn.Module):
    """The plain bottleneck: the code is the encoder's output."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.encoder_width = config.n_components

    def forward(self, h: Tensor, *, generator: torch.Generator | None = None, epoch: int = 0) -> BottleneckOut:
        return BottleneckOut(code=h, mean=h, terms={})


BOTTLENECKS: dict[str, Callable[[ModelConfig], nn.Module]] = {
    "deterministic": Deterministic,
}
