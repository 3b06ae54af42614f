"""The pixel model of lossless streams: causal contexts, tables counted at fit time, stepwise coding.

A lossless stream codes every 8-bit value of its array given a *context* (docs/format.md, section 4.6):
the model's rounded reconstruction of the value, binned, and the quantized levels of four neighbours
that the decoder already has, left, up, up-left and up-right, in each sample's row-major order. The
decoder therefore decodes in steps, pixel ``k`` of every sample at step ``k``, and computes each step's
contexts from the pixels decoded before it; the encoder knows every pixel, so it computes all contexts
at once. Every context is integer arithmetic on integers, so decoding is exact on any machine (given
the same rounded reconstruction).

The tables are counted on the training data at the end of ``fit``: one table per context, its counts
smoothed toward the table of its reconstruction bin alone, so that rare contexts still code well.
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar, Protocol

import numpy as np

from isthmus.entropy import (
    CdfTables,
    StepDecoder,
    build_cdf_tables,
    check_cdf_tables,
    decode_symbols,
    encode_steps,
    encode_symbols,
)

#: edges of the reconstruction bins for data reaching 255: bin ``R[v]`` is the number of edges ``<= v``
#: (fine near 0 and the top); data with a smaller maximum get them scaled to it
RECON_EDGES = (1, 8, 32, 64, 96, 128, 160, 192, 224, 248, 255)
#: edges of a neighbour's levels, scaled alike: 0, faint (1..191), bright (192..255)
LEVEL_EDGES = (1, 192)
#: weight of the reconstruction bin's table in each context's counts
SMOOTHING = 32.0
#: most contexts a pixel model may have (a forged ``pixels.bins`` cannot make a reader allocate more)
MAX_CONTEXTS = 2**16
#: symbols of a pixel table: the values 0..255 and the escape, never used
N_SYMBOLS = 257


#: the model file's tensors of a counted pixel model: context quantizers, then its tables (entropy.CdfTables)
PIXEL_TENSORS = ("pixels.bins", "pixels.cdf", "pixels.lengths", "pixels.offsets")
#: the model file's tensors of the 256 pixel tables of the first scheme (read, no longer written by fit)
RECONSTRUCTION_TENSORS = ("lossless.cdf", "lossless.lengths", "lossless.offsets")


class PixelCoder(Protocol):
    """What a pixel model of lossless streams is to the codec and the model file (docs/format.md, 2.6, 4.6).

    ``x`` and ``recon`` are ``(m, rows, columns)`` integers 0..255: the values and their rounded
    reconstruction from the code. ``tag`` is what the coder starts from and must end in.
    """

    #: the stream version that named this kind of pixel model before version 4
    stream_version: ClassVar[int]

    @property
    def format_version(self) -> int:
        """The lowest model format version that holds this pixel model."""
        ...

    def encode(self, x: np.ndarray, recon: np.ndarray, *, tag: int) -> bytes:
        """The pixel payload of ``x`` given ``recon``."""
        ...

    def decode(self, data: bytes, recon: np.ndarray, *, tag: int) -> np.ndarray:
        """``(m, rows, columns)`` int64 values that ``encode`` coded; PayloadError if ``data`` does not decode."""
        ...

    def tensors(self) -> dict[str, np.ndarray]:
        """Its tensors in the model file, by name (int32 arrays)."""
        ...


def _int32(tables: CdfTables, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    arrays = (tables.cdf, tables.lengths, tables.offsets)
    return {name: np.array(a, dtype=np.int32) for name, a in zip(names, arrays, strict=True)}


@dataclasses.dataclass(frozen=True, eq=False)
class ReconstructionTables:
    """The 256 pixel tables of the first lossless scheme (files from before the pixel model, tensors
    ``lossless.*``): each value is coded with the table of its rounded reconstruction alone."""

    tables: CdfTables  # (256) tables of N_SYMBOLS symbols

    stream_version: ClassVar[int] = 1
    format_version: ClassVar[int] = 1  # type: ignore[misc]

    def encode(self, x: np.ndarray, recon: np.ndarray, *, tag: int) -> bytes:
        return encode_symbols(x.reshape(-1).astype(np.int64), self.tables, recon.reshape(-1), tag=tag)

    def decode(self, data: bytes, recon: np.ndarray, *, tag: int) -> np.ndarray:
        return decode_symbols(data, self.tables, recon.reshape(-1), tag=tag).reshape(recon.shape)

    def tensors(self) -> dict[str, np.ndarray]:
        return _int32(self.tables, RECONSTRUCTION_TENSORS)


@dataclasses.dataclass(frozen=True, eq=False)
class PixelModel:
    """The context quantizers and the pixel tables of lossless streams (tensors ``pixels.*``).

    ``bins[0, v]`` is the bin of a reconstruction ``v``, ``bins[1, v]`` the level of a neighbour's value
    ``v``; table ``c`` of ``tables`` codes the values of context ``c`` (:func:`contexts`).
    """

    bins: np.ndarray  # (2, 256) int32: R, Q
    tables: CdfTables  # (n_bins * n_levels**4) tables of N_SYMBOLS symbols

    stream_version: ClassVar[int] = 2
    format_version: ClassVar[int] = 2  # type: ignore[misc]

    def __post_init__(self) -> None:
        bins = np.array(self.bins, dtype=np.int64, copy=True)
        bins.setflags(write=False)
        object.__setattr__(self, "bins", bins)

    @property
    def n_bins(self) -> int:
        return int(self.bins[0].max()) + 1

    @property
    def n_levels(self) -> int:
        return int(self.bins[1].max()) + 1

    @property
    def n_contexts(self) -> int:
        return context_count(self.bins)

    def encode(self, x: np.ndarray, recon: np.ndarray, *, tag: int) -> bytes:
        return encode_pixels(x.astype(np.int64), recon, self, tag=tag)

    def decode(self, data: bytes, recon: np.ndarray, *, tag: int) -> np.ndarray:
        return decode_pixels(data, recon, self, tag=tag)

    def tensors(self) -> dict[str, np.ndarray]:
        return {PIXEL_TENSORS[0]: np.array(self.bins, dtype=np.int32), **_int32(self.tables, PIXEL_TENSORS[1:])}


def context_count(bins: np.ndarray) -> int:
    """Contexts that ``bins`` (2, 256) name: reconstruction bins x neighbour levels ** 4, in Python ints
    (a forged file's bins cannot overflow)."""
    return (int(bins[0].max()) + 1) * (int(bins[1].max()) + 1) ** 4


def check_pixel_model(model: PixelModel) -> None:
    """Raise ``ValueError`` unless ``model`` obeys docs/format.md, section 2.6 (``pixels.*``)."""
    bins = model.bins
    if bins.shape != (2, 256) or bins.min() < 0:
        raise ValueError(f"bins must be (2, 256) non-negative integers, got shape {bins.shape}")
    n_contexts = model.n_contexts
    if n_contexts > MAX_CONTEXTS:
        raise ValueError(f"bins name {n_contexts} contexts; at most {MAX_CONTEXTS} are allowed")
    tables = model.tables
    check_cdf_tables(tables)
    if len(tables.cdf) != n_contexts:
        raise ValueError(f"bins name {n_contexts} contexts, but there are {len(tables.cdf)} pixel tables")
    if np.any(tables.lengths != N_SYMBOLS) or np.any(tables.offsets != 0):
        raise ValueError(f"every pixel table must have {N_SYMBOLS} symbols (lengths) and offset 0")


def image_shape(input_shape: tuple[int, ...]) -> tuple[int, int]:
    """``(rows, columns)`` that a sample of ``input_shape`` is read as: its last axis is a row."""
    width = int(input_shape[-1])
    return math.prod(input_shape) // width, width


def _padded(x: np.ndarray) -> np.ndarray:
    """``(m, rows + 1, columns + 2)`` int64: ``x`` with a zero row above and a zero column either side."""
    m, rows, cols = x.shape
    out = np.zeros((m, rows + 1, cols + 2), dtype=np.int64)
    out[:, 1:, 1:-1] = x
    return out


def contexts(recon: np.ndarray, x: np.ndarray, bins: np.ndarray) -> np.ndarray:
    """``(m, rows, columns)`` int64: every value's context, from its reconstruction and its decoded neighbours.

    ``recon`` and ``x`` are ``(m, rows, columns)`` integers 0..255: the rounded reconstruction and the
    true values (only the neighbours of each value are read: left, up, up-left, up-right).
    """
    p = _padded(x)
    rows, cols = x.shape[1:]
    q = bins[1]
    n = int(q.max()) + 1
    c = bins[0][recon]
    for dy, dx in ((1, 0), (0, 1), (0, 0), (0, 2)):  # left, up, up-left, up-right, in padded coordinates
        c = c * n + q[p[:, dy : dy + rows, dx : dx + cols]]
    return c


def _lut(edges: tuple[int, ...], top: int) -> np.ndarray:
    """``(256,)`` the bin of each value under ``edges`` scaled from 255 to ``top`` (merged where they meet)."""
    scaled = np.unique(np.maximum(1, np.rint(np.asarray(edges) * max(top, 1) / 255))).astype(np.int64)
    return np.searchsorted(scaled, np.arange(256), side="right")


def build_pixel_model(recon: np.ndarray, x: np.ndarray) -> PixelModel:
    """Count the pixel tables on training data: ``recon`` and ``x`` are ``(m, rows, columns)`` integers 0..255.

    Table ``c`` is ``(n(c, v) + SMOOTHING * p_b(v)) / (n(c) + SMOOTHING)``, where ``n`` counts value ``v``
    in context ``c`` and ``p_b`` is the distribution of the values whose reconstruction falls in the bin
    ``b`` of context ``c`` (with half a count added to every value, so that none is impossible). The
    quantizers are :data:`RECON_EDGES` and :data:`LEVEL_EDGES`, scaled to the largest value of ``x``.
    """
    top = int(x.max(initial=0))
    bins = np.stack([_lut(RECON_EDGES, top), _lut(LEVEL_EDGES, top)])
    n_bins, n_levels = int(bins[0].max()) + 1, int(bins[1].max()) + 1
    n_contexts = n_bins * n_levels**4
    values = x.reshape(-1).astype(np.int64)
    ctx = contexts(recon, x, bins).reshape(-1)
    counts = np.bincount(ctx * 256 + values, minlength=n_contexts * 256).reshape(n_contexts, 256).astype(np.float64)
    per_bin = counts.reshape(n_bins, -1, 256).sum(axis=1) + 0.5  # (n_bins, 256): contexts are bin-major
    prior = np.repeat(per_bin / per_bin.sum(axis=1, keepdims=True), n_contexts // n_bins, axis=0)
    pmfs = (counts + SMOOTHING * prior) / (counts.sum(axis=1, keepdims=True) + SMOOTHING)
    tables = build_cdf_tables(list(pmfs), offsets=np.zeros(n_contexts, dtype=np.int64), tail_mass=np.zeros(n_contexts))
    return PixelModel(bins, tables)


def encode_pixels(x: np.ndarray, recon: np.ndarray, model: PixelModel, *, tag: int) -> bytes:
    """The pixel payload of ``x``, ``(m, rows, columns)`` integers 0..255, given its rounded reconstruction."""
    ctx = contexts(recon, x, model.bins).reshape(len(x), -1)  # (m, n_features)
    return encode_steps(x.reshape(len(x), -1).T, model.tables, ctx.T, tag=tag)  # step k: pixel k of every sample


def decode_pixels(data: bytes, recon: np.ndarray, model: PixelModel, *, tag: int) -> np.ndarray:
    """``(m, rows, columns)`` int64: what :func:`encode_pixels` coded, decoded in raster order.

    Raises
    ------
    PayloadError
        If ``data`` does not decode with these tables and this reconstruction, or does not end in ``tag``.
    """
    m, rows, cols = recon.shape
    decoder = StepDecoder(data, model.tables, tag=tag)
    p = np.zeros((m, rows + 1, cols + 2), dtype=np.int64)  # decoded values, padded as in _padded
    r_bin, q = model.bins[0][recon], model.bins[1]
    n = model.n_levels
    for i in range(rows):
        above, here = p[:, i], p[:, i + 1]  # (m, cols + 2): the decoded row above, the row being decoded
        partial = r_bin[:, i] * n**4 + q[above[:, 1:-1]] * n**2  # (m, cols): the bin and up, known for the row
        for j in range(cols):
            c = partial[:, j] + q[here[:, j]] * n**3 + q[above[:, j]] * n + q[above[:, j + 2]]
            here[:, j + 1] = decoder.step(c)
    decoder.finish()
    return p[:, 1:, 1:-1]
