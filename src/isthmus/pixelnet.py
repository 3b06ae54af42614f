"""The learned pixel model of lossless streams: a small network in integer arithmetic (stream versions 3 and 4).

Each 8-bit value is coded with a 256-way distribution that a small network predicts from integers the
decoder already has (docs/format.md, section 4.6): the rounded reconstruction in a 5x5 window around
the value, the twelve decoded values of a causal window (two rows above, five wide, and two to the
left) and the value's position. The network is trained in floating point at the end of ``fit`` and
then stored and run as an *integer network* (Ballé et al., "Integer networks for data compression with
latent-variable models", 2019): integer weights, activations clipped to 0..255 after a right shift,
integer logits turned into frequencies through a stored table of ``exp``. Every product and sum is an
integer below ``2**53``, so the matrix products may run in float64 on any BLAS, in any order, and
still give the same integers on every machine: decoding stays bit-exact.

The decoder decodes in steps, as for the counted contexts of :mod:`isthmus.lossless`: pixel ``k`` of
every sample at step ``k``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from isthmus.entropy import PRECISION, FrequencyStepDecoder, encode_frequency_steps

#: the reconstruction window's radius: (2 * RADIUS + 1) ** 2 values around the pixel
RADIUS = 2
#: the causal window: rows above, and values either side (and to the left in the pixel's own row)
CAUSAL_ROWS, CAUSAL_HALF = 2, 2
#: inputs of the network: the reconstruction window, the causal window, row and column
N_INPUTS = (2 * RADIUS + 1) ** 2 + CAUSAL_ROWS * (2 * CAUSAL_HALF + 1) + CAUSAL_HALF + 2
#: fractional bits of the weights: a layer's sums are shifted right by SHIFT
SHIFT = 12
#: the logits' step is 1 / 2**LOGIT_BITS (in nats)
LOGIT_BITS = 4
#: an output sum is 2**OUTPUT_SHIFT times its logit: the last layer's weights are scaled by 2**SHIFT * 256 / 255
#: (it reads activations 0..255 for 0..1), its bias by 2**(SHIFT + 8)
OUTPUT_SHIFT = SHIFT + 8
#: the bits of a network's frequencies, by the length of its exp table, ``exp[d] = round(2**bits * exp(-d / 16))``
#: for d = 0 .. length - 1 until it rounds to 0 (12 nats at 16 bits, 18 at 24). A network written since model
#: format 4 has 24-bit frequencies: every value's frequency of at least 1 then takes 256 / 2**24 of a likely
#: value's probability, not 256 / 2**16 (0.4%), and the longer table leaves the unlikely ones less: together
#: 0.0025 bits per MNIST pixel
EXP_LENGTHS = {PRECISION: 2**LOGIT_BITS * 12, 24: 2**LOGIT_BITS * 18}
#: the frequency bits of the networks that ``train_pixel_net`` makes
FREQUENCY_BITS = 24
#: most hidden units per layer and most layers a file may ask for (a forged file cannot make a reader
#: allocate more); with values below 2**31, every sum stays below 2**53
MAX_WIDTH, MAX_LAYERS = 1024, 6
#: the values of a pixel
N_VALUES = 256


#: the model file's tensors of a pixel network: pixelnet.w0, pixelnet.b0, pixelnet.w1, ... and pixelnet.exp
TENSOR_PREFIX = "pixelnet."


@dataclasses.dataclass(frozen=True, eq=False)
class PixelNet:
    """An integer network (tensors ``pixelnet.*``): ``weights[l]`` is ``(out, in)``, ``biases[l]`` ``(out,)``.

    Hidden layer ``l`` maps integers ``a`` (0..255) to ``clip((weights[l] @ a + biases[l]) >> SHIFT, 0, 255)``;
    the last layer gives 256 integer logits ``z``, and the value ``v`` has weight ``exp[min(d_v, len - 1)]``
    with ``d_v = (max(z) - z_v) >> (OUTPUT_SHIFT - LOGIT_BITS)`` (:func:`frequencies`).
    """

    weights: tuple[np.ndarray, ...]
    biases: tuple[np.ndarray, ...]
    exp: np.ndarray

    stream_version: ClassVar[int] = 3

    def __post_init__(self) -> None:
        for name in ("weights", "biases"):
            arrays = tuple(np.array(a, dtype=np.int64, copy=True) for a in getattr(self, name))
            for a in arrays:
                a.setflags(write=False)
            object.__setattr__(self, name, arrays)
        exp = np.array(self.exp, dtype=np.int64, copy=True)
        exp.setflags(write=False)
        object.__setattr__(self, "exp", exp)

    @property
    def format_version(self) -> int:
        """4 for 24-bit frequencies (an exp table of 288), 3 for 16-bit ones."""
        return 4 if frequency_bits(self) == 24 else 3

    def encode(self, x: np.ndarray, recon: np.ndarray, *, tag: int) -> bytes:
        return encode_pixels(x, recon, self, tag=tag)

    def decode(self, data: bytes, recon: np.ndarray, *, tag: int) -> np.ndarray:
        return decode_pixels(data, recon, self, tag=tag)

    def tensors(self) -> dict[str, np.ndarray]:
        out = {}
        for layer, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            out[f"{TENSOR_PREFIX}w{layer}"] = w.astype(np.int32)
            out[f"{TENSOR_PREFIX}b{layer}"] = b.astype(np.int32)
        out[f"{TENSOR_PREFIX}exp"] = self.exp.astype(np.int32)
        return out

    @functools.cached_property
    def float_layers(self) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
        """``(weights.T, bias)`` of each layer in float64: exact, as every entry is an integer below 2**31."""
        return tuple(
            (w.T.astype(np.float64), b.astype(np.float64)) for w, b in zip(self.weights, self.biases, strict=True)
        )


def exp_table(bits: int = FREQUENCY_BITS) -> np.ndarray:
    """``(EXP_LENGTHS[bits],)`` int64: ``round(2**bits * exp(-d / 2**LOGIT_BITS))``, computed once at fit time
    and stored, so that no reader computes ``exp``."""
    d = np.arange(EXP_LENGTHS[bits], dtype=np.float64)
    return np.rint(2.0**bits * np.exp(-d / 2**LOGIT_BITS)).astype(np.int64)


def frequency_bits(net: PixelNet) -> int:
    """The bits of ``net``'s frequencies (16 or 24): ``exp[0] = 2**bits``."""
    return int(net.exp[0]).bit_length() - 1


def check_pixel_net(net: PixelNet) -> None:
    """Raise ``ValueError`` unless ``net`` obeys docs/format.md, section 2.6 (``pixelnet.*``)."""
    if not 1 <= len(net.weights) <= MAX_LAYERS or len(net.biases) != len(net.weights):
        raise ValueError(f"the network needs 1 to {MAX_LAYERS} layers, each with weights and a bias")
    fan_in = N_INPUTS
    for layer, (w, b) in enumerate(zip(net.weights, net.biases, strict=True)):
        out = N_VALUES if layer == len(net.weights) - 1 else w.shape[0] if w.ndim == 2 else -1
        if w.shape != (out, fan_in) or b.shape != (out,) or not 1 <= out <= max(MAX_WIDTH, N_VALUES):
            raise ValueError(
                f"layer {layer} must have weights ({out if out > 0 else 'width'}, {fan_in}) and a bias of its width "
                f"(at most {MAX_WIDTH}; the last layer has {N_VALUES}), got {w.shape} and {b.shape}"
            )
        fan_in = out
    exp = net.exp
    shapes = {(n,): 2**bits for bits, n in EXP_LENGTHS.items()}
    if shapes.get(exp.shape) != (exp[0] if exp.size else None) or np.any(exp < 0) or np.any(np.diff(exp) > 0):
        raise ValueError(
            "exp must be non-increasing integers >= 0, (192,) starting at 2**16 or (288,) starting at 2**24"
        )


def _positions(rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """``(rows * cols,)`` each of the row and column inputs, in 0..255."""
    i, j = np.divmod(np.arange(rows * cols, dtype=np.int64), cols)
    return (255 * i) // max(rows - 1, 1), (255 * j) // max(cols - 1, 1)


def _padded(recon: np.ndarray, x: np.ndarray, dtype: Any = np.float64) -> tuple[np.ndarray, np.ndarray]:
    """The reconstruction with RADIUS zeros on every side; the values with zeros above and either side."""
    m, rows, cols = x.shape
    rp = np.zeros((m, rows + 2 * RADIUS, cols + 2 * RADIUS), dtype=dtype)
    rp[:, RADIUS:-RADIUS, RADIUS:-RADIUS] = recon
    return rp, _causally_padded(x, dtype)


def _causally_padded(x: np.ndarray, dtype: Any) -> np.ndarray:
    """``x`` ``(m, rows, columns)`` with CAUSAL_ROWS zero rows above and CAUSAL_HALF zero columns either side."""
    m, rows, cols = x.shape
    xp = np.zeros((m, rows + CAUSAL_ROWS, cols + 2 * CAUSAL_HALF), dtype=dtype)
    xp[:, CAUSAL_ROWS:, CAUSAL_HALF:-CAUSAL_HALF] = x
    return xp


def _inputs(rp: np.ndarray, xp: np.ndarray, i: int, j: int, rows: int, cols: int) -> np.ndarray:
    """``(m, N_INPUTS)`` float64 integers: the inputs of pixel ``(i, j)`` of every sample."""
    window = rp[:, i : i + 2 * RADIUS + 1, j : j + 2 * RADIUS + 1].reshape(len(rp), -1)
    above = xp[:, i : i + CAUSAL_ROWS, j : j + 2 * CAUSAL_HALF + 1].reshape(len(xp), -1)
    left = xp[:, i + CAUSAL_ROWS, j : j + CAUSAL_HALF]
    here = [(255 * i) // max(rows - 1, 1), (255 * j) // max(cols - 1, 1)]  # as _positions gives them
    position = np.broadcast_to(np.array(here, dtype=np.float64), (len(rp), 2))
    return np.concatenate([window, above, left, position], axis=1)


#: (row, column) offsets of the causal inputs, in input order, into the values padded as :func:`_padded` pads them
_CAUSAL = tuple((dy, dx) for dy in range(CAUSAL_ROWS) for dx in range(2 * CAUSAL_HALF + 1)) + tuple(
    (CAUSAL_ROWS, dx) for dx in range(CAUSAL_HALF)
)


def _quiet(x: np.ndarray) -> np.ndarray:
    """``x.shape`` bool: the pixels of ``x`` ``(m, rows, columns)`` whose causal window holds only zeros."""
    rows, cols = x.shape[1:]
    xp = _causally_padded(x != 0, bool)
    busy = np.zeros(x.shape, dtype=bool)
    for dy, dx in _CAUSAL:
        busy |= xp[:, dy : dy + rows, dx : dx + cols]
    return ~busy


def inputs_at(recon: np.ndarray, x: np.ndarray, flat_index: np.ndarray | None = None) -> np.ndarray:
    """``(n, N_INPUTS)`` uint8: the inputs of the pixels ``flat_index`` (into ``x.reshape(-1)``; default all),
    for training and for measuring; coding takes a step at a time (:func:`_inputs`)."""
    rows, cols = x.shape[1:]
    index = np.arange(x.size) if flat_index is None else np.asarray(flat_index, dtype=np.int64)
    sample, pixel = np.divmod(index, rows * cols)
    i, j = np.divmod(pixel, cols)
    rp, xp = _padded(recon, x, np.uint8)
    out = np.empty((len(index), N_INPUTS), dtype=np.uint8)
    offsets = [(rp, dy, dx) for dy in range(2 * RADIUS + 1) for dx in range(2 * RADIUS + 1)]
    offsets += [(xp, dy, dx) for dy, dx in _CAUSAL]
    for k, (padded, dy, dx) in enumerate(offsets):
        out[:, k] = padded[sample, i + dy, j + dx]
    row, col = _positions(rows, cols)
    out[:, -2], out[:, -1] = row[pixel], col[pixel]
    return out


def logits(net: PixelNet, inputs: np.ndarray) -> np.ndarray:
    """``(n, 256)`` float64 holding integers: the logits of ``inputs`` ``(n, N_INPUTS)``, integers 0..255.

    The products run in float64 on exact integers: every partial sum is an integer below 2**53, so the
    result is exact whatever the BLAS and its order of summation; the right shifts are divisions by
    powers of two, exact too.
    """
    a = np.asarray(inputs, dtype=np.float64)
    for w, b in net.float_layers[:-1]:
        a = np.clip(np.floor((a @ w + b) * 2.0**-SHIFT), 0, 255)
    w, b = net.float_layers[-1]
    return a @ w + b


def frequencies(net: PixelNet, z: np.ndarray) -> np.ndarray:
    """``(n, 256)`` int64 frequencies, each row >= 1 and summing to ``2**bits`` (:func:`frequency_bits`), from
    logits ``z``.

    In float64 on integers, exactly: a quotient ``a / b`` of integers below 2**48 (``a < 2**24 * 2**24``)
    is never rounded across an integer, so ``floor`` gives the integer quotient on every machine.
    """
    top = z.max(axis=1, keepdims=True)
    d = np.minimum(np.floor((top - z) * 2.0 ** (LOGIT_BITS - OUTPUT_SHIFT)), len(net.exp) - 1).astype(np.intp)
    w = net.exp.astype(np.float64)[d]  # (n, 256): exp[0] = 2**bits at the largest logit
    total = int(net.exp[0])
    freq = 1 + np.floor(w * (total - N_VALUES) / w.sum(axis=1, keepdims=True)).astype(np.int64)
    freq[np.arange(len(z)), np.argmax(z, axis=1)] += total - freq.sum(axis=1)
    return freq


#: rows the network runs on at a time: its activations and the frequency rows stay in the CPU's cache
_BLOCK = 1024


def predict(net: PixelNet, inputs: np.ndarray) -> np.ndarray:
    """``(n, 256)`` int64: the frequencies of ``inputs`` ``(n, N_INPUTS)``, :func:`frequencies` of :func:`logits`
    computed ``_BLOCK`` rows at a time (about a sixth faster than all at once for 2,000 rows)."""
    u = np.asarray(inputs)
    out = np.empty((len(u), N_VALUES), dtype=np.int64)
    for start in range(0, len(u), _BLOCK):
        out[start : start + _BLOCK] = frequencies(net, logits(net, u[start : start + _BLOCK]))
    return out


def encode_pixels(x: np.ndarray, recon: np.ndarray, net: PixelNet, *, tag: int) -> bytes:
    """The pixel payload of ``x``, ``(m, rows, columns)`` integers 0..255, given its rounded reconstruction."""
    rows, cols = x.shape[1:]
    rp, xp = _padded(recon, x)

    def step(k: int) -> tuple[np.ndarray, np.ndarray]:
        i, j = divmod(k, cols)
        return x[:, i, j].astype(np.int64), predict(net, _inputs(rp, xp, i, j, rows, cols))

    return encode_frequency_steps(step, rows * cols, tag=tag, precision=frequency_bits(net))


def decode_pixels(data: bytes, recon: np.ndarray, net: PixelNet, *, tag: int) -> np.ndarray:
    """``(m, rows, columns)`` int64: what :func:`encode_pixels` coded, decoded in raster order.

    Raises
    ------
    PayloadError
        If ``data`` does not decode with this network and this reconstruction, or does not end in ``tag``.
    """
    rows, cols = recon.shape[1:]
    rp, xp = _padded(recon, np.zeros(recon.shape, dtype=np.float64))
    decoder = FrequencyStepDecoder(data, tag=tag, precision=frequency_bits(net))
    for i in range(rows):
        for j in range(cols):
            freq = predict(net, _inputs(rp, xp, i, j, rows, cols))
            xp[:, i + CAUSAL_ROWS, j + CAUSAL_HALF] = decoder.step(freq)
    decoder.finish()
    return xp[:, CAUSAL_ROWS:, CAUSAL_HALF:-CAUSAL_HALF].astype(np.int64)


def information_bits(x: np.ndarray, recon: np.ndarray, net: PixelNet) -> float:
    """Ideal code length in bits of ``x`` ``(m, rows, columns)`` under the network (what the payload costs)."""
    inputs = inputs_at(recon, x)
    bits = 0.0
    flat = x.reshape(-1).astype(np.int64)
    for start in range(0, len(flat), 65536):
        freq = predict(net, inputs[start : start + 65536])
        picked = freq[np.arange(len(freq)), flat[start : start + 65536]]
        bits += float(np.sum(frequency_bits(net) - np.log2(picked)))
    return bits


def train_pixel_net(
    recon: np.ndarray,
    x: np.ndarray,
    *,
    hidden: tuple[int, ...] = (128, 128),
    max_pixels: int = 8_000_000,
    steps: int | None = None,
    batch_size: int = 4096,
    learning_rate: float = 1e-2,
    quiet_keep: float = 0.1,
    seed: int = 0,
    progress: bool = False,
    device: str | None = None,
) -> PixelNet:
    """Train the pixel network on ``x`` given ``recon`` (``(m, rows, columns)`` integers 0..255) and make it integer.

    The sample: every pixel whose causal window is not all zeros, and a seeded ``quiet_keep`` of the
    *quiet* ones (all zeros above and to the left: two thirds of an MNIST digit's pixels, and a fortieth
    of its bits), weighted ``1 / quiet_keep`` so that the loss is still the mean over every pixel; then
    at most ``max_pixels`` of these, drawn with the seed. Adam at ``learning_rate`` with a one-cycle
    schedule over ``steps`` batches (default: 6 passes over the sample, 100 to 12,000 batches; a batch
    is at most a sixteenth of the sample), minimizing the cross-entropy of the 256-way softmax.

    The float network has the integer network's shape, hidden activations clipped to [0, 1] (the
    integer network's 0..255). It reads its inputs centred, ``value / 255 - 1/2``, which trains
    markedly better than ``value / 255``; the centring is then folded into the first layer's biases,
    so the integer network reads the values as they are. ``progress`` shows a progress bar of the
    batches. ``device`` (a torch device, default the CPU) trains there: the sample and the batches are
    drawn on the CPU with the seed, so only the float arithmetic differs, and the integer network a
    file keeps decodes the same everywhere. A GPU trains wide networks in minutes: 512-512-512 for
    60,000 batches of 8,192 took 152 s on an H100 and codes MNIST in 0.998 bits per pixel (README).
    The integer network has 24-bit frequencies (:data:`FREQUENCY_BITS`).
    """
    import torch
    from tqdm.auto import tqdm

    if not 0.0 < quiet_keep <= 1.0:
        raise ValueError(f"quiet_keep must be in (0, 1], got {quiet_keep}")
    rng = np.random.default_rng(seed)
    quiet = _quiet(x).reshape(-1)
    index = np.flatnonzero(~quiet | (rng.random(x.size) < quiet_keep))
    if len(index) > max_pixels:
        index = np.sort(rng.choice(index, size=max_pixels, replace=False))
    inputs = inputs_at(recon, x, index)
    values = x.reshape(-1)[index].astype(np.int64)
    weights = np.where(quiet[index], 1.0 / quiet_keep, 1.0).astype(np.float32)
    generator = torch.Generator().manual_seed(seed)
    where = torch.device(device or "cpu")
    u = torch.from_numpy(inputs).to(where)
    y = torch.from_numpy(values).to(where)
    weight = torch.from_numpy(weights).to(where)
    linears: list[torch.nn.Linear] = []
    fan_in = N_INPUTS
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        for width in (*hidden, N_VALUES):
            linears.append(torch.nn.Linear(fan_in, width, dtype=torch.float32))
            fan_in = width
    layers = torch.nn.ModuleList(linears).to(where)

    def forward(batch: torch.Tensor) -> torch.Tensor:
        a = batch.float() / 255.0 - 0.5
        for layer in layers[:-1]:
            a = torch.clamp(layer(a), 0.0, 1.0)
        return layers[-1](a)

    batch = max(1, min(batch_size, max(256, len(y) // 16), len(y)))
    if steps is None:
        steps = min(12_000, max(100, math.ceil(6 * len(y) / batch)))
    optimizer = torch.optim.Adam(layers.parameters(), lr=learning_rate)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, learning_rate, total_steps=steps)
    for _ in tqdm(range(steps), desc="pixel network", unit="batch", leave=False, disable=not progress):
        idx = torch.randint(len(y), (batch,), generator=generator).to(where)
        w = weight[idx]
        loss = (torch.nn.functional.cross_entropy(forward(u[idx]), y[idx], reduction="none") * w).sum() / w.sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    with torch.no_grad():  # the centring, folded in: W (v / 255 - 1/2) + b = W v / 255 + (b - W 1 / 2)
        linears[0].bias.sub_(0.5 * linears[0].weight.sum(dim=1))
    return _integer(list(layers.cpu()))


def _integer(layers: Sequence[Any]) -> PixelNet:
    """The integer network of a trained float network: hidden weights scaled by 2**SHIFT and biases by
    255 * 2**SHIFT (activations 0..255 stand for 0..1), the last layer's by 2**OUTPUT_SHIFT / 255 and
    2**OUTPUT_SHIFT. A hidden bias also holds half a step, so that the right shift rounds to nearest.
    """
    weights, biases = [], []
    limit = 2**31 - 1
    for n, layer in enumerate(layers):
        w = layer.weight.detach().double().numpy()
        b = layer.bias.detach().double().numpy()
        if n == len(layers) - 1:
            w, b = w * 2.0**OUTPUT_SHIFT / 255, b * 2.0**OUTPUT_SHIFT
        else:
            w, b = w * 2.0**SHIFT, b * 255 * 2.0**SHIFT + 2 ** (SHIFT - 1)
        weights.append(np.clip(np.rint(w), -limit, limit).astype(np.int64))
        biases.append(np.clip(np.rint(b), -limit, limit).astype(np.int64))
    net = PixelNet(tuple(weights), tuple(biases), exp_table())
    check_pixel_net(net)
    return net
