"""Bottlenecks: what sits between the encoder's output and the decoder's input.

A bottleneck says how wide the encoder's output must be (``encoder_width``), turns that output into
the code the decoder sees in training (``code``), the deterministic code ``transform`` returns
(``mean``), and any loss terms of its own, already weighted (``terms``).

Every bottleneck is a :class:`Bottleneck`, which declares what the rest of isthmus may ask of it.
One with ``variational = True`` has ``posterior(h) -> (mean, log_var)``, which the generative uses
(``generative.py``: sampling, importance-weighted likelihoods) and the likelihood scores need; the prior
is always the standard normal. One with ``integer_code = True`` codes integers: ``fit`` calls its
``build_tables(h)`` once training ends (``AutoencoderNet.after_fit``), which turns its learned density
into the integer tables of the entropy coder (``tables``), and no code constraint may follow it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import ClassVar, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from isthmus.entropy import CdfTables, build_cdf_tables
from isthmus.settings import ModelConfig

#: log-variances are kept in this range so that exp() neither underflows to a zero scale nor overflows
LOG_VAR_RANGE = (-30.0, 20.0)
#: seed of the noise drawn when no generator is passed (evaluation): deterministic, global RNG untouched
EVAL_SEED = 0


class BottleneckOut(NamedTuple):
    """The bottleneck's outputs for one batch."""

    code: Tensor  # (batch, n_components): the decoder's input in training
    mean: Tensor  # (batch, n_components): the deterministic code
    terms: dict[str, Tensor]  # named, weighted, batch-averaged loss terms


class Bottleneck(nn.Module):
    """What every bottleneck is: its capabilities are declared here, never guessed from its attributes."""

    #: has ``posterior``: a probabilistic code with a standard normal prior
    variational: ClassVar[bool] = False
    #: codes integers with entropy tables that ``build_tables`` makes after training
    integer_code: ClassVar[bool] = False
    #: the encoder's output width it needs
    encoder_width: int
    #: the entropy coder's tables of an ``integer_code`` bottleneck, once built (or loaded); else None
    tables: CdfTables | None = None

    def forward(self, h: Tensor, *, generator: torch.Generator | None = None, epoch: int = 0) -> BottleneckOut:
        """Encoder output ``(batch, encoder_width)`` -> the code, the deterministic code and loss terms."""
        raise NotImplementedError

    def posterior(self, h: Tensor) -> tuple[Tensor, Tensor]:
        """Encoder output -> posterior ``(mean, log_var)``, each ``(batch, n_components)``; variational only."""
        raise TypeError(f"{type(self).__name__} has no posterior (variational=False)")

    def build_tables(self, h: Tensor) -> CdfTables | None:
        """Build ``tables`` from the encoder's output on the training data; None: nothing to build."""
        return None


class Deterministic(Bottleneck):
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


class Gaussian(Bottleneck):
    """The variational bottleneck: a diagonal Gaussian posterior sampled by reparameterization.

    The encoder outputs ``2 * n_components`` values, the posterior mean and log-variance. In the loss
    the code is ``mean + exp(log_var / 2) * eps`` with ``eps ~ N(0, I)`` drawn from the loop's
    generator, and the term ``"kl"`` is ``kl_weight(epoch) * sum_j max(free_bits, KL_j)``, where
    ``KL_j`` is dimension j's batch-averaged KL to the standard normal prior. With ``beta=1``,
    ``kl_warmup=0`` and ``free_bits=0``, reconstruction + kl is the negative ELBO. ``mean`` (what
    ``transform`` returns) is the posterior mean, never a sample.
    """

    variational = True

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


#: likelihoods are kept above this, so that a value the density has not seen costs a finite rate
LIKELIHOOD_BOUND = 1e-9
#: most symbols a channel's coding table may have; codes beyond its range are escaped (entropy.py)
MAX_TABLE_SYMBOLS = 4096


class FactorizedDensity(nn.Module):
    """One learned density per code channel, the "non-parametric" model of Ballé et al. (2018, app. 6.1).

    Channel ``c``'s cumulative distribution is ``sigmoid(f_c(y))``, where ``f_c`` is a small network
    from one input to one output whose weights are positive (``softplus``) and whose nonlinearities
    ``x + tanh(a) * tanh(x)`` are increasing, so ``f_c`` is monotone. The probability of the integer
    ``k`` (the mass of ``[k - 1/2, k + 1/2]``) is what the rate is computed from, and, quantized to
    integers at the end of ``fit``, what the coder uses.
    """

    def __init__(self, channels: int, filters: tuple[int, ...] = (3, 3, 3), init_scale: float = 10.0) -> None:
        super().__init__()
        widths = (1, *filters, 1)
        scale = init_scale ** (1.0 / (len(widths) - 1))
        self.matrices = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.factors = nn.ParameterList()
        for i, (w_in, w_out) in enumerate(itertools.pairwise(widths)):
            init = math.log(math.expm1(1.0 / scale / w_out))
            self.matrices.append(nn.Parameter(torch.full((channels, w_out, w_in), init)))
            self.biases.append(nn.Parameter(torch.rand(channels, w_out, 1) - 0.5))
            if i < len(widths) - 2:
                self.factors.append(nn.Parameter(torch.zeros(channels, w_out, 1)))

    def logits_cdf(self, y: Tensor) -> Tensor:
        """``(channels, 1, n)`` values -> ``(channels, 1, n)`` logits of their cumulative probability."""
        logits = y
        for i, (matrix, bias) in enumerate(zip(self.matrices, self.biases, strict=True)):
            logits = torch.matmul(F.softplus(matrix), logits) + bias  # (channels, w_out, n)
            if i < len(self.factors):
                logits = logits + torch.tanh(self.factors[i]) * torch.tanh(logits)
        return logits

    def likelihood(self, y: Tensor) -> Tensor:
        """``(batch, channels, *positions)`` values -> the probability of the unit interval around each, same
        shape (no positions for a flat code; a map's height and width for a fully convolutional one)."""
        last = y.float().movedim(1, -1)  # (batch, *positions, channels)
        v = last.reshape(-1, last.shape[-1]).t().unsqueeze(1)  # (channels, 1, values per channel)
        lower, upper = self.logits_cdf(v - 0.5), self.logits_cdf(v + 0.5)
        # evaluate the difference of sigmoids on the side where it does not cancel to zero in float32
        sign = -torch.sign(lower + upper).detach()
        mass = (torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower)).abs()
        return mass.squeeze(1).t().reshape(last.shape).movedim(-1, 1).clamp_min(LIKELIHOOD_BOUND)


class Quantized(Bottleneck):
    """The compressive bottleneck (Ballé et al., 2017): an integer code with a learned entropy model.

    The code is the encoder's output rounded to integers. In training, uniform noise in
    ``[-1/2, 1/2)`` stands in for rounding (or, with ``straight_through=True``, the decoder sees the
    rounded code and the gradient passes through the rounding unchanged); the term ``"rate"`` is
    ``lmbda`` times the bits per sample, ``-log2`` of the learned factorized density of the noisy code.
    ``mean`` (what ``transform`` returns and what ``compress`` codes) is always the rounded code.

    At the end of ``fit``, :meth:`build_tables` quantizes the density into the integer tables the
    entropy coder uses (``tables``); they are saved in the model file, so there is no separate update
    step.
    """

    integer_code = True  # the code must reach the decoder unchanged: no code constraint may follow

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder_width = config.n_components
        self.density = FactorizedDensity(config.n_components)
        self.tables: CdfTables | None = None  # set by build_tables; not a buffer, its shape depends on the data

    def forward(self, h: Tensor, *, generator: torch.Generator | None = None, epoch: int = 0) -> BottleneckOut:
        h = h.float()
        rounded = torch.round(h)  # (batch, n_components)
        if self.training:
            noise = torch.rand(h.shape, generator=generator, device=h.device, dtype=h.dtype) - 0.5
            noisy = h + noise
            code = h + (rounded - h).detach() if self.config.straight_through else noisy
        else:
            noisy = code = rounded
        bits = -torch.log2(self.density.likelihood(noisy)).flatten(1).sum(dim=1)  # (batch,)
        return BottleneckOut(code=code, mean=rounded, terms={"rate": self.config.lmbda * bits.mean()})

    @torch.no_grad()
    def build_tables(self, h: Tensor) -> CdfTables:
        """Quantize the learned density into integer coding tables over the range of ``round(h)``.

        ``h`` is the encoder's output on the training data, ``(n_samples, n_components)``. Each channel's
        table covers the integers its rounded codes span (at most ``MAX_TABLE_SYMBOLS``, centred on the
        median); the density's mass outside that range goes to the escape symbol.
        """
        q = torch.round(h.float()).cpu().movedim(1, -1)  # a code map's positions are values of its channels
        q = q.reshape(-1, q.shape[-1])  # (values per channel, n_components)
        lo, hi = q.min(dim=0).values, q.max(dim=0).values
        median = q.median(dim=0).values
        half = MAX_TABLE_SYMBOLS // 2 - 1
        lo = torch.maximum(lo, median - half).long()
        hi = torch.minimum(hi, median + half - 1).long()
        device = next(self.density.parameters()).device
        pmfs, tails = [], []
        for c in range(len(lo)):
            grid = torch.arange(int(lo[c]), int(hi[c]) + 2, dtype=torch.float32, device=device) - 0.5
            logits = self.density.logits_cdf(grid.view(1, 1, -1).expand(len(lo), 1, -1))[c, 0].double()
            edges = torch.sigmoid(logits).cpu()  # (n + 1,) cumulative probability at k - 1/2, k + 1/2 ...
            pmfs.append(torch.diff(edges).clamp_min(0.0).numpy())
            tails.append(float(torch.sigmoid(logits[0]) + torch.sigmoid(-logits[-1])))
        self.tables = build_cdf_tables(pmfs, offsets=lo.numpy(), tail_mass=tails)
        return self.tables


BOTTLENECKS: dict[str, Callable[[ModelConfig], Bottleneck]] = {
    "deterministic": Deterministic,
    "gaussian": Gaussian,
    "quantized": Quantized,
}
