"""Encoder and decoder builders: an MLP whose widths shrink toward the code, and convolutional pairs.

Every builder maps ``(batch, *input_shape)`` to ``(batch, n_out)`` (encoders) or ``(batch, n_in)`` to
``(batch, *input_shape)`` (decoders), but the fully convolutional pairs, whose code is a map of ``n_out``
channels over the image (over time, for ``conv1d``) and which take images of any height and width
(windows of any length). Decoders end without an output activation: the model applies the one matched
to the reconstruction loss.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch.nn.functional as F
from torch import Tensor, nn

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
}


def mlp(widths: Sequence[int], activation: str) -> nn.Sequential:
    """Linear layers through ``widths`` with ``activation`` between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (w_in, w_out) in enumerate(itertools.pairwise(widths)):
        layers.append(nn.Linear(w_in, w_out))
        if i < len(widths) - 2:
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


def mlp_encoder(input_shape: tuple[int, ...], hidden: Sequence[int], n_out: int, activation: str) -> nn.Module:
    """``(batch, *input_shape) -> (batch, n_out)`` through ``hidden`` widths."""
    # a flat input needs no Flatten; Identity keeps the parameter names the same for every input rank
    flatten = nn.Flatten() if len(input_shape) > 1 else nn.Identity()
    return nn.Sequential(flatten, mlp([math.prod(input_shape), *hidden, n_out], activation))


def mlp_decoder(input_shape: tuple[int, ...], hidden: Sequence[int], n_in: int, activation: str) -> nn.Module:
    """``(batch, n_in) -> (batch, *input_shape)`` through the mirrored ``hidden`` widths."""
    body = mlp([n_in, *reversed(hidden), math.prod(input_shape)], activation)
    return nn.Sequential(body, nn.Unflatten(1, input_shape) if len(input_shape) > 1 else nn.Identity())


def _conv_sizes(height: int, width: int, n_layers: int) -> list[tuple[int, int]]:
    # each stride-2, kernel-3, padding-1 convolution maps a size s to ceil(s / 2)
    sizes = [(height, width)]
    for _ in range(n_layers):
        h, w = sizes[-1]
        sizes.append(((h + 1) // 2, (w + 1) // 2))
    return sizes


def conv_encoder(input_shape: tuple[int, ...], hidden: Sequence[int], n_out: int, activation: str) -> nn.Module:
    """``(batch, C, H, W) -> (batch, n_out)``: stride-2 convolutions with ``hidden`` channels, then linear."""
    channels, height, width = input_shape
    sizes = _conv_sizes(height, width, len(hidden))
    layers: list[nn.Module] = []
    for c_in, c_out in zip([channels, *hidden[:-1]], hidden, strict=True):
        layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), ACTIVATIONS[activation]()]
    h, w = sizes[-1]
    layers += [nn.Flatten(), nn.Linear(hidden[-1] * h * w, n_out)]
    return nn.Sequential(*layers)


def conv_decoder(input_shape: tuple[int, ...], hidden: Sequence[int], n_in: int, activation: str) -> nn.Module:
    """``(batch, n_in) -> (batch, C, H, W)``: linear, then stride-2 transposed convolutions back to size."""
    channels, height, width = input_shape
    sizes = _conv_sizes(height, width, len(hidden))
    h, w = sizes[-1]
    layers: list[nn.Module] = [
        nn.Linear(n_in, hidden[-1] * h * w),
        ACTIVATIONS[activation](),
        nn.Unflatten(1, (hidden[-1], h, w)),
    ]
    outs = [*reversed(hidden[:-1]), channels]
    for i, (c_in, c_out) in enumerate(zip(reversed(hidden), outs, strict=True)):
        target_h, target_w = sizes[len(hidden) - 1 - i]
        # a transposed convolution gives 2 * s - 1 + output_padding; pad by one where the target is even
        pad = (1 - target_h % 2, 1 - target_w % 2)
        layers.append(nn.ConvTranspose2d(c_in, c_out, 3, stride=2, padding=1, output_padding=pad))
        if i < len(hidden) - 1:
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


class Residual(nn.Module):
    """``x + activation(conv(x))``: a 3x3, stride-1 convolution that keeps the shape, added to its input."""

    def __init__(self, channels: int, activation: str) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.activation = ACTIVATIONS[activation]()

    def forward(self, x: Tensor) -> Tensor:
        return x + self.activation(self.conv(x))


def residual_conv_decoder(input_shape: tuple[int, ...], hidden: Sequence[int], n_in: int, activation: str) -> nn.Module:
    """:func:`conv_decoder` with a :class:`Residual` block at each hidden resolution, before it is upsampled.

    More depth for the same upsampling, on the decoder's small maps (for 28x28 digits and widths 24-48-96:
    4x4, 7x7 and 14x14). On MNIST compression it buys about 0.7 dB at the same rate and decodes 40% slower
    (bench/mnist_compress.py).
    """
    return _with_residuals(conv_decoder(input_shape, hidden, n_in, activation), activation)


# ---------------------------------------------------------------------------- fully convolutional


def stride_of(hidden: Sequence[int]) -> int:
    """How much a fully convolutional encoder of ``hidden`` channels shrinks each side: 2 per layer."""
    return 2 ** len(hidden)


class PadToStride(nn.Module):
    """Pads ``(batch, C, H, W)`` on the bottom and right (``(batch, C, length)``: at the end), repeating the
    edge, to multiples of ``stride``.

    Every stride-2 convolution then halves a side exactly, and the decoder's output, ``stride`` times the
    code's size, covers the input; :func:`crop_like` cuts it back. Repeating the edge (rather than zeros)
    adds no edge for the code to spend bits on.
    """

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        pads = [-size % self.stride for size in x.shape[2:]]  # per axis after the channels, in order
        if not any(pads):
            return x
        # F.pad lists the last axis first: (end of the last axis, ..., end of the first)
        return F.pad(x, [p for pad in reversed(pads) for p in (0, pad)], mode="replicate")


def crop_like(out: Tensor, x: Tensor) -> Tensor:
    """``out`` cut to ``x``'s height and width (a series window: its length): a fully convolutional
    decoder's output back to the input's size (a no-op for other networks, whose output has the input's
    shape)."""
    if out.ndim == 3 and out.shape[-1] != x.shape[-1]:
        return out[..., : x.shape[-1]]
    if out.ndim == 4 and out.shape[-2:] != x.shape[-2:]:
        return out[..., : x.shape[-2], : x.shape[-1]]
    return out


def fcn_encoder(input_shape: tuple[int, ...], hidden: Sequence[int], n_out: int, activation: str) -> nn.Module:
    """``(batch, C, H, W) -> (batch, n_out, ceil(H / s), ceil(W / s))`` with ``s = 2**len(hidden)``, any H, W.

    The input is padded to multiples of ``s`` (:class:`PadToStride`), then stride-2 convolutions with
    ``hidden`` channels, then a 3x3 convolution to ``n_out`` channels: the code is a map of ``n_out``
    channels, one position per ``s x s`` block of pixels, and no layer depends on the image's size.
    """
    channels = input_shape[0]
    layers: list[nn.Module] = [PadToStride(stride_of(hidden))]
    for c_in, c_out in zip([channels, *hidden[:-1]], hidden, strict=True):
        layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), ACTIVATIONS[activation]()]
    layers.append(nn.Conv2d(hidden[-1], n_out, 3, padding=1))
    return nn.Sequential(*layers)


def fcn_decoder(input_shape: tuple[int, ...], hidden: Sequence[int], n_in: int, activation: str) -> nn.Module:
    """``(batch, n_in, h, w) -> (batch, C, s * h, s * w)``: a 3x3 convolution to the last hidden width, then
    stride-2 transposed convolutions that double each side exactly, back to the input's channels."""
    channels = input_shape[0]
    layers: list[nn.Module] = [nn.Conv2d(n_in, hidden[-1], 3, padding=1), ACTIVATIONS[activation]()]
    outs = [*reversed(hidden[:-1]), channels]
    for i, (c_in, c_out) in enumerate(zip(reversed(hidden), outs, strict=True)):
        layers.append(nn.ConvTranspose2d(c_in, c_out, 3, stride=2, padding=1, output_padding=1))
        if i < len(hidden) - 1:
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


def residual_fcn_decoder(input_shape: tuple[int, ...], hidden: Sequence[int], n_in: int, activation: str) -> nn.Module:
    """:func:`fcn_decoder` with a :class:`Residual` block before each upsampling, as ``resconv`` adds to ``conv``."""
    return _with_residuals(fcn_decoder(input_shape, hidden, n_in, activation), activation)


def _with_residuals(plain: nn.Module, activation: str) -> nn.Sequential:
    """``plain`` with a :class:`Residual` block before each of its transposed convolutions."""
    layers: list[nn.Module] = []
    for layer in plain.children():
        if isinstance(layer, nn.ConvTranspose2d):
            layers.append(Residual(layer.in_channels, activation))
        layers.append(layer)
    return nn.Sequential(*layers)


def _conv1d_lengths(window: int, n_layers: int) -> list[int]:
    # each stride-2 convolution with kernel k and padding k // 2 (k odd) maps a length s to ceil(s / 2)
    lengths = [window]
    for _ in range(n_layers):
        lengths.append((lengths[-1] + 1) // 2)
    return lengths


#: kernel of the temporal convolutions: with stride 2, a unit of layer l sees 2**l * (KERNEL_1D - 1) + 1 steps
KERNEL_1D = 7


def conv1d_encoder(input_shape: tuple[int, ...], hidden: Sequence[int], n_out: int, activation: str) -> nn.Module:
    """``(batch, channels, window) -> (batch, n_out)``: stride-2 temporal convolutions, then linear.

    Any window length works: the lengths after each convolution are computed from it (ceil(s / 2) each).
    """
    channels, window = input_shape
    lengths = _conv1d_lengths(window, len(hidden))
    layers: list[nn.Module] = []
    for c_in, c_out in zip([channels, *hidden[:-1]], hidden, strict=True):
        layers += [nn.Conv1d(c_in, c_out, KERNEL_1D, stride=2, padding=KERNEL_1D // 2), ACTIVATIONS[activation]()]
    layers += [nn.Flatten(), nn.Linear(hidden[-1] * lengths[-1], n_out)]
    return nn.Sequential(*layers)


def conv1d_decoder(input_shape: tuple[int, ...], hidden: Sequence[int], n_in: int, activation: str) -> nn.Module:
    """``(batch, n_in) -> (batch, channels, window)``: linear, stride-2 transposed convolutions, a last convolution."""
    channels, window = input_shape
    lengths = _conv1d_lengths(window, len(hidden))
    layers: list[nn.Module] = [
        nn.Linear(n_in, hidden[-1] * lengths[-1]),
        ACTIVATIONS[activation](),
        nn.Unflatten(1, (hidden[-1], lengths[-1])),
    ]
    outs = [*reversed(hidden[:-1]), hidden[0]]
    for i, (c_in, c_out) in enumerate(zip(reversed(hidden), outs, strict=True)):
        target = lengths[len(hidden) - 1 - i]
        # a transposed convolution gives 2 * s - 1 + output_padding; pad by one where the target is even
        pad = KERNEL_1D // 2
        layers += [
            nn.ConvTranspose1d(c_in, c_out, KERNEL_1D, stride=2, padding=pad, output_padding=1 - target % 2),
            ACTIVATIONS[activation](),
        ]
    # a stride-1 convolution to the channels smooths the upsampling's checkerboard, as in Keras's example
    layers.append(nn.Conv1d(hidden[0], channels, KERNEL_1D, padding=KERNEL_1D // 2))
    return nn.Sequential(*layers)


def fcn1d_encoder(input_shape: tuple[int, ...], hidden: Sequence[int], n_out: int, activation: str) -> nn.Module:
    """``(batch, channels, length) -> (batch, n_out, ceil(length / s))`` with ``s = 2**len(hidden)``, any length.

    :func:`conv1d_encoder` without its linear layer: the window is padded to a multiple of ``s``
    (:class:`PadToStride`), stride-2 temporal convolutions with ``hidden`` channels, then a convolution
    to ``n_out`` channels. The code is a map over time, ``n_out`` values per ``s`` timestamps, and no
    layer depends on the window's length, so one network takes windows of any length.
    """
    channels = input_shape[0]
    layers: list[nn.Module] = [PadToStride(stride_of(hidden))]
    for c_in, c_out in zip([channels, *hidden[:-1]], hidden, strict=True):
        layers += [nn.Conv1d(c_in, c_out, KERNEL_1D, stride=2, padding=KERNEL_1D // 2), ACTIVATIONS[activation]()]
    layers.append(nn.Conv1d(hidden[-1], n_out, 3, padding=1))
    return nn.Sequential(*layers)


def fcn1d_decoder(input_shape: tuple[int, ...], hidden: Sequence[int], n_in: int, activation: str) -> nn.Module:
    """``(batch, n_in, l) -> (batch, channels, s * l)``: a convolution to the last hidden width, stride-2
    transposed convolutions that double the length exactly, and a last stride-1 convolution to the channels."""
    channels = input_shape[0]
    layers: list[nn.Module] = [nn.Conv1d(n_in, hidden[-1], 3, padding=1), ACTIVATIONS[activation]()]
    outs = [*reversed(hidden[:-1]), hidden[0]]
    for c_in, c_out in zip(reversed(hidden), outs, strict=True):
        # kernel 7, stride 2, padding 3: 2 * l - 1 + output_padding, so output_padding 1 doubles l exactly
        pad = KERNEL_1D // 2
        layers += [
            nn.ConvTranspose1d(c_in, c_out, KERNEL_1D, stride=2, padding=pad, output_padding=1),
            ACTIVATIONS[activation](),
        ]
    layers.append(nn.Conv1d(hidden[0], channels, KERNEL_1D, padding=KERNEL_1D // 2))
    return nn.Sequential(*layers)


Builder = Callable[[tuple[int, ...], Sequence[int], int, str], nn.Module]


class Architecture(NamedTuple):
    """An encoder builder, its mirrored decoder builder, the input ranks it accepts, and, for convolutional
    networks, the builders of its fully convolutional form (``fully_convolutional=True``), None otherwise."""

    encoder: Builder
    decoder: Builder
    input_ranks: tuple[int, ...]
    spatial_encoder: Builder | None = None
    spatial_decoder: Builder | None = None


ARCHITECTURES: dict[str, Architecture] = {
    "mlp": Architecture(mlp_encoder, mlp_decoder, (1, 2, 3)),
    "conv": Architecture(conv_encoder, conv_decoder, (3,), fcn_encoder, fcn_decoder),
    # the conv encoder, and a decoder with more depth for the same upsampling (compression's high end)
    "resconv": Architecture(conv_encoder, residual_conv_decoder, (3,), fcn_encoder, residual_fcn_decoder),
    # windows of a series (channels, window): temporal convolutions (window=W in the estimator); fully
    # convolutional, a code map over time and windows of any length
    "conv1d": Architecture(conv1d_encoder, conv1d_decoder, (2,), fcn1d_encoder, fcn1d_decoder),
}
