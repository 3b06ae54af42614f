"""AutoencoderNet: corrupt -> encode -> bottleneck -> decode, and a loss made of named terms."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from isthmus.bottlenecks import BOTTLENECKS, Bottleneck, Deterministic
from isthmus.columns import make_head
from isthmus.corruptions import CORRUPTIONS, LEVEL_IN_DATA_UNITS
from isthmus.data.schema import Schema
from isthmus.errors import ConfigError
from isthmus.nets import ARCHITECTURES, Builder, crop_like
from isthmus.penalties import PENALTIES, PenaltyContext, penalty_params, penalty_weight
from isthmus.settings import ModelConfig

#: smallest standard deviation of the learned Gaussian likelihood (scaled units): a constant feature
#: then costs a finite log(MIN_SIGMA) nats instead of driving the likelihood to infinity
MIN_SIGMA = 1e-3
_SOFTPLUS_OF_ONE = math.log(math.expm1(1.0 - MIN_SIGMA))  # raw value whose sigma is 1


def _bce(logits: Tensor, x: Tensor, sigma: Tensor | None) -> Tensor:
    # (batch,) summed over every feature: the Bernoulli negative log-likelihood of x
    return F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)


def _sse(out: Tensor, x: Tensor, sigma: Tensor | None) -> Tensor:
    # (batch,) sum of squared errors
    return (out - x).square().flatten(1).sum(1)


def _gaussian(out: Tensor, x: Tensor, sigma: Tensor | None) -> Tensor:
    # (batch,) Gaussian negative log-likelihood in nats, one learned sigma per feature (*input_shape)
    assert sigma is not None  # the net owns a scale whenever this entry is used
    z = (x.float() - out.float()) / sigma
    return (0.5 * z.square() + sigma.log() + 0.5 * math.log(2 * math.pi)).flatten(1).sum(1)


def _bce_cells(logits: Tensor, x: Tensor, sigma: Tensor | None) -> Tensor:
    # elementwise Bernoulli negative log-likelihood (the loss per value of a table's numeric columns)
    return F.binary_cross_entropy_with_logits(logits, x, reduction="none")


def _sse_cells(out: Tensor, x: Tensor, sigma: Tensor | None) -> Tensor:
    return (out - x).square()


def _gaussian_cells(out: Tensor, x: Tensor, sigma: Tensor | None) -> Tensor:
    assert sigma is not None  # the net owns a scale whenever this entry is used
    z = (x.float() - out.float()) / sigma
    return 0.5 * z.square() + sigma.log() + 0.5 * math.log(2 * math.pi)


def _identity(out: Tensor) -> Tensor:
    # the linear output of the Gaussian likelihoods (a named function, so a network pickles)
    return out


class Reconstruction(NamedTuple):
    """A reconstruction loss: ``loss(decoder output, x, sigma) -> (batch,)``, the same per value
    (``cells``, for tables), the decoder's output activation, and the constant per feature that makes
    ``loss`` a negative log-likelihood in nats."""

    loss: Callable[[Tensor, Tensor, Tensor | None], Tensor]
    cells: Callable[[Tensor, Tensor, Tensor | None], Tensor]
    output: Callable[[Tensor], Tensor]
    nats_per_feature: float = 0.0
    learned_sigma: bool = False


#: reconstruction loss name -> its entry. "bce" is the Bernoulli likelihood; "mse" (sum of squared
#: errors) is the Gaussian one with a fixed variance 1/2 up to the constant log(pi)/2 per feature;
#: "gaussian" learns one standard deviation per feature (at least MIN_SIGMA), all in nats.
RECONSTRUCTION: dict[str, Reconstruction] = {
    "bce": Reconstruction(_bce, _bce_cells, torch.sigmoid),
    "mse": Reconstruction(_sse, _sse_cells, _identity, nats_per_feature=0.5 * math.log(math.pi)),
    "gaussian": Reconstruction(_gaussian, _gaussian_cells, _identity, learned_sigma=True),
}


def trimmed_mean(losses: Tensor, fraction: float) -> Tensor:
    """Mean of ``losses`` ``(batch,)`` without the ``fraction`` largest (the trimmed loss of robust regression).

    Training data screened for anomalies hold them: a network fitted to every row learns to reconstruct
    the anomalies too, and their errors no longer stand out. Leaving each batch's worst-reconstructed
    rows out of the gradient fits the network to the bulk of the data; a row left out in one epoch is
    back in the next if the network now fits it well.
    """
    if fraction <= 0.0 or len(losses) < 2:
        return losses.mean()
    keep = max(1, round(len(losses) * (1.0 - fraction)))
    return torch.topk(losses.float(), keep, largest=False, sorted=False).values.mean()


class AutoencoderNet(nn.Module):
    """An autoencoder assembled from the tables: architecture, bottleneck, penalty, corruption.

    Parameters
    ----------
    config : ModelConfig
        The network's description; ``config.loss`` must be resolved (``"bce"``, ``"mse"`` or
        ``"gaussian"``).
    input_shape : tuple of int
        One sample's shape as the network sees it: ``(n_features,)`` or ``(channels, height, width)``;
        for a table, ``(schema.width,)``.
    schema : Schema, optional
        A table's columns: with ``schema.missing_mask`` the network takes the table head
        (:mod:`isthmus.columns`): missing-cell indicators in, a softmax per categorical column out.
    """

    noise_units: Tensor  # a buffer, registered in __init__

    def __init__(self, config: ModelConfig, input_shape: tuple[int, ...], schema: Schema | None = None) -> None:
        super().__init__()
        if config.loss not in RECONSTRUCTION:
            raise ValueError(f"loss={config.loss!r} must be resolved to one of {sorted(RECONSTRUCTION)}")
        self.config = config
        self.input_shape = tuple(input_shape)
        arch = ARCHITECTURES[config.architecture]
        self.bottleneck = BOTTLENECKS[config.bottleneck](config)
        width = self.bottleneck.encoder_width
        self._rec = RECONSTRUCTION[config.loss]
        options = {"column_weights": config.column_weights, "cell_dropout": config.cell_dropout}
        self.head = make_head(schema, options, self._rec.loss, self._rec.cells, self._rec.output)
        n_in = self.head.n_inputs(math.prod(self.input_shape))
        encoder_shape = self.input_shape if n_in == math.prod(self.input_shape) else (n_in,)
        encoder, decoder = arch.encoder, arch.decoder
        if config.fully_convolutional:  # the code is a map over the image: any height and width (nets.py)
            encoder, decoder = cast(Builder, arch.spatial_encoder), cast(Builder, arch.spatial_decoder)
        self.encoder = encoder(encoder_shape, config.hidden_layer_sizes, width, config.activation)
        self.decoder = decoder(self.input_shape, config.hidden_layer_sizes, config.n_components, config.activation)
        self._penalty = PENALTIES[config.penalty]
        self._penalty_weight = penalty_weight(config)
        self._penalty_params = penalty_params(config)
        self._corrupt = CORRUPTIONS[config.corruption]
        self._reconstruction, self._output = self.head.loss, self.head.output
        # (*input_shape) scaled units per data unit of a noise standard deviation (1 / the scaler's scale),
        # set by set_data_scale; training only, so not saved with the weights
        self.register_buffer("noise_units", torch.ones(self.input_shape), persistent=False)
        self._noise_in_data_units = config.corruption in LEVEL_IN_DATA_UNITS
        # raw per-feature scale of the "gaussian" likelihood; sigma = MIN_SIGMA + softplus(raw)
        self.output_scale = (
            nn.Parameter(torch.full(self.input_shape, _SOFTPLUS_OF_ONE)) if self._rec.learned_sigma else None
        )
        _check_composition(config, self.bottleneck, schema)

    def set_data_scale(self, scale: Tensor) -> None:
        """Tell the network the scaler's per-feature ``scale`` (data units per scaled unit, broadcastable to
        one sample's shape), so that a Gaussian ``noise_level`` given in the data's units is applied as such."""
        units = 1.0 / scale.to(self.noise_units).expand_as(self.noise_units)
        self.noise_units.copy_(units)

    def sigma(self) -> Tensor | None:
        """Per-feature standard deviation ``(*input_shape)`` of a learned Gaussian likelihood, else None."""
        return None if self.output_scale is None else MIN_SIGMA + F.softplus(self.output_scale.float())

    def constrain(self, code: Tensor) -> Tensor:
        """The penalty's constraint on a code ``(batch, n_components)`` (``topk`` keeps k values), else the code."""
        constrain = self._penalty.constrain
        return code if constrain is None else constrain(code, self._penalty_params)

    def output(self, h: Tensor) -> Tensor:
        """The decoder's output activation: its last layer's values ``(batch, *input_shape)`` -> scaled units."""
        return self._output(h)

    def _affine(self) -> tuple[Tensor, Tensor] | None:
        # (weight, bias) when the code before the constraint is one linear map of the flattened input
        leaves = [m for m in self.encoder.modules() if not any(True for _ in m.children())]
        linears = [m for m in leaves if isinstance(m, nn.Linear)]
        plain = all(isinstance(m, (nn.Linear, nn.Flatten, nn.Identity)) for m in leaves)
        if plain and len(linears) == 1 and isinstance(self.bottleneck, Deterministic):
            return linears[0].weight, linears[0].bias
        return None

    def _encode_inputs(self, inputs: Tensor) -> Tensor:
        # the code from the encoder's input (the head's inputs of a batch)
        return self.constrain(self.bottleneck(self.encoder(inputs)).mean)

    def encode(self, x: Tensor) -> Tensor:
        """``(batch, *input_shape) -> (batch, n_components)``: the deterministic code (NaN: a missing value)."""
        return self._encode_inputs(self.head.inputs(x))

    def decode(self, z: Tensor) -> Tensor:
        """``(batch, n_components) -> (batch, *input_shape)`` in scaled units."""
        return self._output(self.decoder(z))

    def forward(self, x: Tensor) -> Tensor:
        """Deterministic reconstruction of ``x``."""
        return crop_like(self.decode(self.encode(x)), x)

    def reconstruction_loss(self, x: Tensor) -> Tensor:
        """``(batch,)`` per-sample reconstruction loss of the deterministic code."""
        return self._reconstruction(crop_like(self.decoder(self.encode(x)), x), x, self.sigma())

    def cell_losses(self, x: Tensor) -> Tensor:
        """``(batch, n_cells)`` the loss of each value (table: each column), NaN where ``x`` is missing."""
        return self.head.cells(self.decoder(self.encode(x)), x, self.sigma())

    def nll(self, x: Tensor, code: Tensor) -> Tensor:
        """``(batch,)`` negative log-likelihood ``-log p(x | code)`` in nats under the reconstruction loss."""
        constant = self._rec.nats_per_feature * math.prod(x.shape[1:])
        return self._reconstruction(crop_like(self.decoder(code), x), x, self.sigma()).float() + constant

    @torch.no_grad()
    def after_fit(self, x: Tensor, batch_size: int = 4096) -> bool:
        """Let a bottleneck that derives coding state from the trained weights build it from the scaled
        training data ``x`` ``(n_samples, *input_shape)``; True when one did (the quantized bottleneck)."""
        if not self.bottleneck.integer_code:
            return False
        self.eval()
        device = next(self.parameters()).device
        parts = (self.head.inputs(x[i : i + batch_size].to(device)) for i in range(0, len(x), batch_size))
        h = torch.cat([self.encoder(part).float() for part in parts])
        self.bottleneck.build_tables(h)
        return True

    def loss(self, x: Tensor, *, generator: torch.Generator | None = None, epoch: int = 0) -> dict[str, Tensor]:
        """Training loss of a batch ``(batch, *input_shape)`` as named, batch-averaged terms.

        ``"loss"`` is the total that is minimized; every other key is one weighted term of it. In
        training mode, ``binarize`` first replaces ``x`` by a Bernoulli draw (input and target alike),
        then the corruption perturbs the encoder's input only.
        """
        if self.training and self.config.binarize:
            x = torch.bernoulli(x.float().clamp(0.0, 1.0), generator=generator).to(x.dtype)
        level = self.config.noise_level * self.noise_units if self._noise_in_data_units else self.config.noise_level
        x_in = self._corrupt(self.head.hide(x, generator), level, generator) if self.training else x
        x_in = self.head.inputs(x_in)  # a table's values and missing-cell indicators
        out = self.bottleneck(self.encoder(x_in), generator=generator, epoch=epoch)
        code = self.constrain(out.code)
        decoded = crop_like(self.decoder(code), x)
        per_row = self._reconstruction(decoded, x, self.sigma())  # (batch,)
        terms = {"reconstruction": trimmed_mean(per_row, self.config.trim_fraction), **out.terms}
        if self._penalty.term is not None:
            ctx = PenaltyContext(
                x=x_in,
                code=code,
                encode=self._encode_inputs,
                config=self.config,
                params=self._penalty_params,
                affine=self._affine(),
            )
            terms["penalty"] = self._penalty_weight * self._penalty.term(ctx)
        total = None
        for term in terms.values():  # a plain sum: one term costs no extra operation, unlike torch.stack
            total = term.float() if total is None else total + term.float()
        terms["loss"] = cast(Tensor, total)
        return terms


def _check_composition(config: ModelConfig, bottleneck: Bottleneck, schema: Schema | None = None) -> None:
    """Reject combinations of table entries that contradict each other."""
    if schema is not None and schema.missing_mask and bottleneck.integer_code:
        raise ConfigError(
            f"bottleneck={config.bottleneck!r} codes arrays of numbers, but this table has categorical columns or "
            "missing cells; use bottleneck='deterministic' or 'gaussian' for it"
        )
    if PENALTIES[config.penalty].constrain is not None and bottleneck.integer_code:
        raise ConfigError(
            f"penalty={config.penalty!r} constrains the code, but bottleneck={config.bottleneck!r} codes integers "
            "that must reach the decoder unchanged; use penalty='none' or 'l1' with it"
        )
    if PENALTIES[config.penalty].constrain is not None and bottleneck.variational:
        raise ConfigError(
            f"penalty={config.penalty!r} constrains the code, but bottleneck={config.bottleneck!r} samples it "
            "from a posterior whose density the constraint would break; use penalty='none' or 'l1' with it, "
            "or bottleneck='deterministic'"
        )
    if config.binarize and config.loss != "bce":
        raise ConfigError(
            f"binarize=True draws binary pixels from values in [0, 1] and needs the Bernoulli loss 'bce', but "
            f"loss resolved to {config.loss!r}; scale the data into [0, 1] (scaling='minmax') or set loss='bce'"
        )


def net_shape(input_shape: Sequence[int]) -> tuple[int, ...]:
    """One sample's shape as the network sees it: a lone (height, width) image gains a channel axis."""
    shape = tuple(int(s) for s in input_shape)
    return (1, *shape) if len(shape) == 2 else shape


def build_net(
    config: ModelConfig, input_shape: Sequence[int], seed: int, schema: Schema | None = None
) -> AutoencoderNet:
    """Construct a network whose initial weights depend only on ``seed`` (global RNG untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        # a window of a series (n_channels, window) is a sample as it is, not a lone image
        return AutoencoderNet(
            config, tuple(input_shape) if config.window is not None else net_shape(input_shape), schema
        )


# ---------------------------------------------------------------------------------------- inference

#: rows per forward pass at inference, by device type. On a CPU, small batches keep a convolutional
#: net's activations in cache: decoding 10,000 MNIST digits with conv 24-48-96 on one thread runs at
#: 10,500/s in batches of 512 and 6,800/s in batches of 4,096, while a 784-1000-500-250-30 MLP is as fast
#: at 512 as at 4,096 (and a third slower at 256). A GPU wants large batches.
INFERENCE_BATCH = {"cpu": 512}
INFERENCE_BATCH_DEFAULT = 4096


def autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """The dtype matrix products run in under ``precision`` on ``device``; None for full float32."""
    if precision == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if precision == "fp32":
        return None
    if precision == "bf16" and device.type in ("cpu", "cuda"):
        return torch.bfloat16
    if precision == "fp16" and device.type == "cuda":
        return torch.float16
    raise ConfigError(
        f"precision={precision!r} is not available on device {device.type!r}; use bf16 on CPUs and CUDA, "
        "fp16 on CUDA only, or fp32"
    )


def autocast(device: torch.device, precision: str = "auto") -> contextlib.AbstractContextManager[Any]:
    """Autocast for ``precision`` (see :func:`autocast_dtype`); a no-op in full precision."""
    dtype = autocast_dtype(device, precision)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def device_of(net: nn.Module) -> torch.device:
    """The device of ``net``'s weights."""
    return next(net.parameters()).device


def batched(fn: Callable[[Tensor], Tensor], x: np.ndarray, device: torch.device, precision: str) -> np.ndarray:
    """``fn`` over the rows of ``x`` in inference batches on ``device`` under ``precision``: float32 NumPy out.

    Where ``device`` lacks ``precision`` it runs in float32: a model trained in fp16 on a GPU still encodes
    after loading on a CPU (training refuses such a pair before its first step).
    """
    try:
        autocast_dtype(device, precision)
    except ConfigError:
        precision = "fp32"
    out = []
    with torch.inference_mode(), autocast(device, precision):
        size = INFERENCE_BATCH.get(device.type, INFERENCE_BATCH_DEFAULT)
        for start in range(0, len(x), size):
            chunk = np.require(x[start : start + size], np.float32, ("C", "W"))  # writable for torch
            batch = torch.from_numpy(chunk).to(device)
            out.append(fn(batch).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0,), np.float32)


def seeded_generator(random_state: Any, device: torch.device) -> torch.Generator:
    """A torch generator on ``device`` seeded from ``random_state`` (int, RandomState or None)."""
    from sklearn.utils import check_random_state

    seed = int(check_random_state(random_state).randint(2**31 - 1))
    return torch.Generator(device=device).manual_seed(seed)
