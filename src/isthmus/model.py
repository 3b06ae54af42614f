"""AutoencoderNet: corrupt -> encode -> bottleneck -> decode, and a loss made of named terms."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from isthmus.bottlenecks import BOTTLENECKS
from isthmus.config import ModelConfig
from isthmus.corruptions import CORRUPTIONS
from isthmus.nets import ARCHITECTURES
from isthmus.penalties import PENALTIES, PenaltyContext


def _bce(logits: Tensor, x: Tensor) -> Tensor:
    # (batch,) summed over every feature: the Bernoulli negative log-likelihood of x
    return F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)


def _sse(out: Tensor, x: Tensor) -> Tensor:
    # (batch,) sum of squared errors
    return (out - x).square().flatten(1).sum(1)


#: reconstruction loss name -> (per-sample loss on decoder outputs, output activation)
RECONSTRUCTION = {
    "bce": (_bce, torch.sigmoid),
    "mse": (_sse, lambda t: t),
}


class AutoencoderNet(nn.Module):
    """An autoencoder assembled from the tables: architecture, bottleneck, penalty, corruption.

    Parameters
    ----------
    config : ModelConfig
        The network's description; ``config.loss`` must be resolved (``"bce"`` or ``"mse"``).
    input_shape : tuple of int
        One sample's shape as the network sees it: ``(n_features,)`` or ``(channels, height, width)``.
    """

    def __init__(self, config: ModelConfig, input_shape: tuple[int, ...]) -> None:
        super().__init__()
        if config.loss not in RECONSTRUCTION:
            raise ValueError(f"loss={config.loss!r} must be resolved to one of {sorted(RECONSTRUCTION)}")
        self.config = config
        self.input_shape = tuple(input_shape)
        arch = ARCHITECTURES[config.architecture]
        self.bottleneck = BOTTLENECKS[config.bottleneck](config)
        width = self.bottleneck.encoder_width
        self.encoder = arch.encoder(self.input_shape, config.hidden_layer_sizes, width, config.activation)
        self.decoder = arch.decoder(
            self.input_shape, config.hidden_layer_sizes, config.n_components, config.activation
        )
        self._penalty = PENALTIES[config.penalty]
        self._corrupt = CORRUPTIONS[config.corruption]
        self._reconstruction, self._output = RECONSTRUCTION[config.loss]

    def _constrain(self, code: Tensor) -> Tensor:
        constrain = self._penalty.constrain
        return code if constrain is None else constrain(code, self.config)

    def encode(self, x: Tensor) -> Tensor:
        """``(batch, *input_shape) -> (batch, n_components)``: the deterministic code."""
        return self._constrain(self.bottleneck(self.encoder(x)).mean)

    def decode(self, z: Tensor) -> Tensor:
        """``(batch, n_components) -> (batch, *input_shape)`` in scaled units."""
        return self._output(self.decoder(z))

    def forward(self, x: Tensor) -> Tensor:
        """Deterministic reconstruction of ``x``."""
        return self.decode(self.encode(x))

    def reconstruction_loss(self, x: Tensor) -> Tensor:
        """``(batch,)`` per-sample reconstruction loss of the deterministic code."""
        return self._reconstruction(self.decoder(self.encode(x)), x)

    def loss(self, x: Tensor, *, generator: torch.Generator | None = None, epoch: int = 0) -> dict[str, Tensor]:
        """Training loss of a batch ``(batch, *input_shape)`` as named, batch-averaged terms.

        ``"loss"`` is the total that is minimized; every other key is one weighted term of it.
        """
        x_in = self._corrupt(x, self.config.noise_level, generator) if self.training else x
        out = self.bottleneck(self.encoder(x_in), generator=generator, epoch=epoch)
        code = self._constrain(out.code)
        terms = {"reconstruction": self._reconstruction(self.decoder(code), x).mean(), **out.terms}
        if self._penalty.term is not None:
            ctx = PenaltyContext(x=x_in, code=code, encode=self.encode, config=self.config)
            terms["penalty"] = self.config.penalty_weight * self._penalty.term(ctx)
        terms["loss"] = torch.stack(list(terms.values())).sum()
        return terms
