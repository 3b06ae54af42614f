"""Bottlenecks: what sits between the encoder's output and the decoder's input.

A bottleneck says how wide the encoder's output must be (``encoder_width``), turns that output into
the code the decoder sees in training (``code``), the deterministic code ``transform`` returns
(``mean``), and any loss terms of its own, already weighted (``terms``).

A bottleneck with a probabilistic code also has ``posterior(h) -> (mean, log_var)`` and the
generative uses (``generative.py``: sampling, importance-weighted likelihoods) look for that method
rather than for a class; the prior is always the standard normal.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor, nn

from isthmus.config import ModelConfig

#: log-variances are kept in this range so that exp() neither underflows to a zero scale nor overflows
LOG_VAR_RANGE = (-30.0, 20.0)
#: seed of the noise drawn when no generator is passed (evaluation): deterministic, global RNG untouched
EVAL_SEED = 0


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


def gaussian_kl(mean: Tensor, log_var: Tensor) -> Tensor:
    """``(batch, n_components)`` KL(N(mean, exp(log_var)) || N(0, 1)) of each latent dimension, in nats."""
    return 0.5 * (mean.square() + log_var.exp() - 1.0 - log_var)


def kl_weight(config: ModelConfig, epoch: int) -> float:
    """``beta``, ramped linearly from ``beta / kl_warmup`` at epoch 1 to ``beta`` at epoch ``kl_warmup``."""
    if config.kl_warmup == 0:
        return float(config.beta)
    return float(config.beta) * min(1.0, max(epoch, 0) / config.kl_warmup)


class Gaussian(nn.Module):
    """The variational bottleneck: a diagonal Gaussian posterior sampled by reparameterization.

    The encoder outputs ``2 * n_components`` values, the posterior mean and log-variance. In the loss
    the code is ``mean + exp(log_var / 2) * eps`` with ``eps ~ N(0, I)`` drawn from the loop's
    generator, and the term ``"kl"`` is ``kl_weight(epoch) * sum_j max(free_bits, KL_j)``, where
    ``KL_j`` is dimension j's batch-averaged KL to the standard normal prior. With ``beta=1``,
    ``kl_warmup=0`` and ``free_bits=0``, reconstruction + kl is the negative ELBO. ``mean`` (what
    ``transform`` returns) is the posterior mean, never a sample.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder_width = 2 * config.n_components

    def posterior(self, h: Tensor) -> tuple[Tensor, Tensor]:
        """Encoder output ``(batch, 2 * n_components)`` -> posterior ``(mean, log_var)``, each
        ``(batch, n_components)``."""
        mean, log_var = h.float().chunk(2, dim=1)  # float32 even under autocast: exp() and the KL need it
        return mean, log_var.clamp(*LOG_VAR_RANGE)

    def forward(self, h: Tensor, *, generator: torch.Generator | None = None, epoch: int = 0) -> BottleneckOut:
        mean, log_var = self.posterior(h)
        if generator is None:  # evaluation: an unbiased draw all the same, but reproducible
            generator = torch.Generator(device=mean.device).manual_seed(EVAL_SEED)
        eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        code = mean + (0.5 * log_var).exp() * eps  # (batch, n_components)
        kl = gaussian_kl(mean, log_var).mean(dim=0)  # (n_components,) batch-averaged, per dimension
        if self.config.free_bits > 0:
            # free bits (Kingma et al., 2016): no pressure on a dimension below free_bits nats
            kl = kl.clamp_min(self.config.free_bits)
        return BottleneckOut(code=code, mean=mean, terms={"kl": kl_weight(self.config, epoch) * kl.sum()})


BOTTLENECKS: dict[str, Callable[[ModelConfig], nn.Module]] = {
    "deterministic": Deterministic,
    "gaussian": Gaussian,
}
