"""Entropy coding behind a small seam: integers in, bytes out, and back.

:func:`encode_symbols` and :func:`decode_symbols` code values in one go; :func:`encode_steps` and
:class:`StepDecoder` code them in steps, for a decoder that computes each step's tables from the values
of the steps before (the causal contexts of lossless streams); :func:`encode_frequency_steps` and
:class:`FrequencyStepDecoder` code each value of a step with its own frequency row (a pixel network's).
They alone touch the coder (``constriction``'s ANS coder underneath). All see *integer* frequencies
only: the floating-point probabilities of a model are quantized once, by :func:`build_cdf_tables`,
when the model is fitted, and stored with it (:class:`CdfTables`), or computed in exact integer
arithmetic (:mod:`isthmus.pixelnet`). Decoding therefore gives the same integers on every machine.

Each table codes the integers ``offset, offset + 1, ..., offset + length - 2`` as the symbols
``0 .. length - 2``; its last symbol, ``length - 1``, is an escape: a value outside the table's range
is coded as the escape followed, at the end of the payload, by the value itself in Exp-Golomb bits.
Any int32 can thus be coded with any table; values the model expects cost their information content.

The byte layout of a payload is specified in ``docs/format.md`` (section "Entropy-coded payload").
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence

import constriction
import numpy as np
from numpy.typing import ArrayLike

from isthmus.errors import DataError

#: bits of the stored frequency tables: every symbol has a frequency of at least 1 out of 2**PRECISION
PRECISION = 16
#: the precision of constriction's categorical models; stored frequencies are scaled up to it exactly
_CODER_PRECISION = 24
#: largest magnitude of a coded value (int32)
_VALUE_LIMIT = 2**31
#: Exp-Golomb prefixes longer than this cannot come from an int32 and mark a corrupt payload
_MAX_PREFIX = 33


class PayloadError(DataError):
    """An entropy-coded payload does not decode: it is corrupt or was coded with other tables."""


@dataclasses.dataclass(frozen=True, eq=False)
class CdfTables:
    """Integer cumulative frequency tables, one row per coding context (e.g. per code channel).

    ``cdf[t, :lengths[t] + 1]`` rises strictly from 0 to ``2**precision``: symbol ``s`` of table
    ``t`` has frequency ``cdf[t, s + 1] - cdf[t, s]`` (at least 1), and stands for the integer
    ``offsets[t] + s``, except the last symbol ``lengths[t] - 1``, the escape. Entries past
    ``lengths[t]`` repeat ``2**precision``. The arrays are read-only copies, so that the coder's
    models, built once per table on first use, always match them.
    """

    cdf: np.ndarray  # (n_tables, max_length + 1) int32
    lengths: np.ndarray  # (n_tables,) int32, symbols per table including the escape, >= 2
    offsets: np.ndarray  # (n_tables,) int32, the integer that symbol 0 stands for
    precision: int = PRECISION

    def __post_init__(self) -> None:
        for name in ("cdf", "lengths", "offsets"):
            array = np.array(getattr(self, name), copy=True)
            array.setflags(write=False)
            object.__setattr__(self, name, array)

    @functools.cached_property
    def models(self) -> list[constriction.stream.model.Categorical | None]:
        """The coder's model of each table, built on first use (``None`` until then)."""
        return [None] * len(self.cdf)


def quantize_pmf(pmf: ArrayLike, precision: int = PRECISION) -> np.ndarray:
    """Integer frequencies ``(n,)`` summing to ``2**precision``, each >= 1, close to ``pmf``.

    Every symbol first gets 1, the rest is shared in proportion to ``pmf`` (rounded down), and what
    rounding left over goes one unit each to the largest remainders (ties to the lower index).
    """
    p = np.asarray(pmf, dtype=np.float64).ravel()
    n = len(p)
    total = 2**precision
    if n < 2 or n > total // 2:
        raise ValueError(f"a table needs 2 to {total // 2} symbols at precision {precision}, got {n}")
    if not np.all(np.isfinite(p)) or np.any(p < 0) or p.sum() <= 0:
        raise ValueError("pmf must be finite, non-negative and not all zero")
    share = p / p.sum() * (total - n)  # (n,) real-valued shares of the free weight
    freq = 1 + np.floor(share).astype(np.int64)
    left = total - int(freq.sum())
    order = np.argsort(-(share - np.floor(share)), kind="stable")
    if left > 0:
        np.add.at(freq, order[np.arange(left) % n], 1)
    while left < 0:  # only from float rounding: take from the largest frequency
        freq[int(np.argmax(freq))] -= 1
        left += 1
    return freq


def build_cdf_tables(
    pmfs: Sequence[ArrayLike],
    offsets: ArrayLike,
    tail_mass: ArrayLike | None = None,
    precision: int = PRECISION,
) -> CdfTables:
    """Quantize float probability tables into integer :class:`CdfTables`, once, at fit time.

    Parameters
    ----------
    pmfs : sequence of 1-d arrays
        ``pmfs[t][k]``: probability of the integer ``offsets[t] + k`` under table ``t``.
    offsets : array-like of int, shape (n_tables,)
        The integer that the first entry of each pmf stands for.
    tail_mass : array-like of float, shape (n_tables,), optional
        Probability of a value outside each table's range, given to the escape symbol. Default:
        whatever the pmf leaves of 1 (at least the smallest frequency).
    precision : int, default=PRECISION
        Bits of the frequencies, at most 24.

    Returns
    -------
    CdfTables
    """
    if not 2 <= precision <= _CODER_PRECISION:
        raise ValueError(f"precision={precision} must be between 2 and {_CODER_PRECISION}")
    offsets_arr = np.asarray(offsets, dtype=np.int64).ravel()
    if len(offsets_arr) != len(pmfs) or len(pmfs) == 0:
        raise ValueError(f"got {len(pmfs)} pmfs and {len(offsets_arr)} offsets; pass one offset per pmf (>= 1)")
    tails = None if tail_mass is None else np.asarray(tail_mass, dtype=np.float64).ravel()
    freqs = []
    for t, pmf in enumerate(pmfs):
        p = np.clip(np.asarray(pmf, dtype=np.float64).ravel(), 0.0, None)
        tail = max(0.0, 1.0 - float(p.sum())) if tails is None else float(tails[t])
        freqs.append(quantize_pmf(np.append(p, tail), precision))
    lengths = np.array([len(f) for f in freqs], dtype=np.int32)
    cdf = np.full((len(freqs), int(lengths.max()) + 1), 2**precision, dtype=np.int32)
    for t, f in enumerate(freqs):
        cdf[t, : len(f) + 1] = np.concatenate([[0], np.cumsum(f)])
    if np.any(np.abs(offsets_arr) >= _VALUE_LIMIT):
        raise ValueError("offsets must fit in int32")
    tables = CdfTables(cdf, lengths, offsets_arr.astype(np.int32), precision)
    check_cdf_tables(tables)
    return tables


def check_cdf_tables(tables: CdfTables) -> None:
    """Raise ``ValueError`` unless ``tables`` obey every rule of :class:`CdfTables`."""
    cdf, lengths, offsets, precision = tables.cdf, tables.lengths, tables.offsets, tables.precision
    if not isinstance(precision, int) or not 2 <= precision <= _CODER_PRECISION:
        raise ValueError(f"precision={precision!r} must be an integer between 2 and {_CODER_PRECISION}")
    if cdf.ndim != 2 or lengths.shape != (len(cdf),) or offsets.shape != (len(cdf),) or len(cdf) == 0:
        raise ValueError(
            f"cdf must be (n_tables, max_length + 1) with lengths and offsets (n_tables,); got shapes "
            f"{cdf.shape}, {lengths.shape}, {offsets.shape}"
        )
    for name, arr in (("cdf", cdf), ("lengths", lengths), ("offsets", offsets)):
        if not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"{name} must hold integers, got dtype {arr.dtype}")
    total = 2**precision
    if np.any(lengths < 2) or np.any(lengths > cdf.shape[1] - 1) or np.any(lengths > total // 2):
        raise ValueError(f"every length must be between 2 and min({cdf.shape[1] - 1}, {total // 2})")
    if np.any(np.abs(offsets.astype(np.int64)) >= _VALUE_LIMIT) or np.any(
        offsets.astype(np.int64) + lengths - 2 >= _VALUE_LIMIT
    ):
        raise ValueError("every table's range of values must fit in int32")
    cols = np.arange(cdf.shape[1])
    inside = cols[None, :] <= lengths[:, None]  # (n_tables, max_length + 1)
    steps = np.diff(cdf.astype(np.int64), axis=1)  # (n_tables, max_length)
    if np.any(cdf[:, 0] != 0) or np.any(steps[inside[:, 1:]] < 1) or np.any(cdf[~inside] != total):
        raise ValueError(f"each cdf row must rise strictly from 0 to {total} and then repeat {total}")
    if np.any(cdf[np.arange(len(cdf)), lengths] != total):
        raise ValueError(f"each cdf row must reach {total} at its length")


def _model(tables: CdfTables, t: int) -> constriction.stream.model.Categorical:
    model = tables.models[t]
    if model is None:
        # constriction's fast quantization maps these exact integers (scale 1.0) to cdf * 2**(24 - precision)
        freq = np.diff(tables.cdf[t, : tables.lengths[t] + 1].astype(np.int64))
        weights = freq * (1 << (_CODER_PRECISION - tables.precision))
        model = constriction.stream.model.Categorical((weights - 1).astype(np.float64), perfect=False)
        tables.models[t] = model
    return model


def _groups(sorted_index: np.ndarray) -> list[tuple[int, int, int]]:
    """(table, start, stop) of each run of equal tables in a sorted table index."""
    if sorted_index.size == 0:
        return []
    starts = np.flatnonzero(np.r_[True, sorted_index[1:] != sorted_index[:-1]])
    stops = np.r_[starts[1:], sorted_index.size]
    return [(int(sorted_index[a]), int(a), int(b)) for a, b in zip(starts, stops, strict=True)]


def _coder(tag: int) -> constriction.stream.stack.AnsCoder:
    if not 0 <= tag < 2**32:
        raise ValueError(f"tag={tag} must satisfy 0 <= tag < 2**32")
    initial = np.array([tag] if tag else [], dtype=np.uint32)  # the state's only word; none when zero
    return constriction.stream.stack.AnsCoder(initial)


def _binary_model() -> constriction.stream.model.Categorical:
    half = 2 ** (_CODER_PRECISION - 1)
    return constriction.stream.model.Categorical(np.array([half - 1, half - 1], dtype=np.float64), perfect=False)


def _exp_golomb(u: int) -> list[int]:
    # order-0 Exp-Golomb bits of u >= 0: (n zeros) then the n + 1 bits of u + 1, most significant first
    v = u + 1
    n = v.bit_length() - 1
    return [0] * n + [(v >> k) & 1 for k in range(n, -1, -1)]


def _check_index(tables: CdfTables, table_index: np.ndarray) -> np.ndarray:
    index = np.asarray(table_index)
    if index.ndim != 1 or not (index.size == 0 or np.issubdtype(index.dtype, np.integer)):
        raise ValueError("table_index must be a 1-d integer array")
    if index.size and (index.min() < 0 or index.max() >= len(tables.cdf)):
        raise ValueError(f"table_index values must lie in [0, {len(tables.cdf)})")
    return index.astype(np.int64)


def encode_symbols(values: ArrayLike, tables: CdfTables, table_index: ArrayLike, *, tag: int = 0) -> bytes:
    """Entropy-code integers, each with the table that ``table_index`` names.

    Parameters
    ----------
    values : array-like of int, shape (n,)
        The integers to code, each within int32.
    tables : CdfTables
    table_index : array-like of int, shape (n,)
        Which table codes each value.
    tag : int, default=0
        The coder's initial state, ``0 <= tag < 2**32``: the decoder must end in it, so it checks that
        the payload was decoded with the tables and tag it was coded with. Up to about 20 bits of tag
        cost (almost) nothing, as they fill bits that a coder starting empty would waste.

    Returns
    -------
    bytes
        The payload; :func:`decode_symbols` with the same tables, ``table_index`` and ``tag`` returns
        ``values``.
    """
    x = np.asarray(values)
    index = _check_index(tables, np.asarray(table_index))
    if x.shape != index.shape or not (x.size == 0 or np.issubdtype(x.dtype, np.integer)):
        raise ValueError(f"values must be integers of the same shape as table_index {index.shape}, got {x.shape}")
    x = x.astype(np.int64)
    if x.size and (x.min() <= -_VALUE_LIMIT or x.max() >= _VALUE_LIMIT):
        raise ValueError("values must fit in int32")
    escape = tables.lengths[index].astype(np.int64) - 1  # (n,)
    symbols = x - tables.offsets[index]
    outside = (symbols < 0) | (symbols >= escape)
    symbols = np.where(outside, escape, symbols)
    order = np.argsort(index, kind="stable")  # the payload's order: by table, then by position
    bits: list[int] = []
    for pos in order[outside[order]]:  # escaped values, in payload order: sign, then Exp-Golomb of the excess
        lo, value = int(tables.offsets[index[pos]]), int(x[pos])
        below = value < lo
        bits += [1, *_exp_golomb(lo - 1 - value)] if below else [0, *_exp_golomb(value - lo - int(escape[pos]))]
    coder = _coder(tag)
    if bits:
        coder.encode_reverse(np.array(bits, dtype=np.int32), _binary_model())
    grouped = symbols[order].astype(np.int32)
    for t, start, stop in reversed(_groups(index[order])):  # a stack: the group decoded first is pushed last
        coder.encode_reverse(grouped[start:stop], _model(tables, t))
    return _payload_bytes(coder)


def decode_symbols(data: bytes, tables: CdfTables, table_index: ArrayLike, *, tag: int = 0) -> np.ndarray:
    """Decode what :func:`encode_symbols` wrote: ``(n,)`` int64, ``n = len(table_index)``.

    Raises
    ------
    PayloadError
        If ``data`` is not a complete, canonical payload for these tables, this ``table_index`` and
        this ``tag``: the coder must end in the state ``tag`` right after the last value, and the
        payload must not end with a zero byte.
    """
    index = _check_index(tables, np.asarray(table_index))
    _coder(tag)  # checks the tag's range
    words = _payload_words(data)
    try:
        coder = constriction.stream.stack.AnsCoder(words)
        order = np.argsort(index, kind="stable")
        grouped = np.empty(index.shape, dtype=np.int64)
        for t, start, stop in _groups(index[order]):
            grouped[start:stop] = coder.decode(_model(tables, t), stop - start)
        symbols = np.empty(index.shape, dtype=np.int64)
        symbols[order] = grouped
        values = symbols + tables.offsets[index]
        escape = tables.lengths[index].astype(np.int64) - 1
        outside = symbols == escape
        if np.any(outside):
            binary = _binary_model()
            for pos in order[outside[order]]:
                below = int(coder.decode(binary)) == 1
                excess = _read_exp_golomb(coder, binary)
                lo = int(tables.offsets[index[pos]])
                values[pos] = lo - 1 - excess if below else lo + int(escape[pos]) + excess
        rest = coder.get_compressed()
    except PayloadError:
        raise
    except Exception as exc:  # constriction's own refusal of impossible data (a Python exception, not a panic)
        raise PayloadError(f"the payload does not decode ({exc})") from None
    if [int(w) for w in rest] != ([tag] if tag else []):
        raise PayloadError("the payload does not end in its tag; it is corrupt, or coded with other tables or tag")
    if values.size and (values.min() <= -_VALUE_LIMIT or values.max() >= _VALUE_LIMIT):
        raise PayloadError("the payload decodes to values outside int32; it is corrupt")
    return values


def _payload_bytes(coder: constriction.stream.stack.AnsCoder) -> bytes:
    """The coder's words as the payload: 4 bytes little-endian each, without the last word's zero high bytes."""
    words = coder.get_compressed().astype("<u4")
    return words.tobytes().rstrip(b"\x00") if len(words) else b""


def _payload_words(data: bytes) -> np.ndarray:
    raw = bytes(data)
    if raw.endswith(b"\x00"):
        raise PayloadError("the payload ends with a zero byte, which no encoder writes; it is corrupt")
    return np.frombuffer(raw + b"\x00" * (-len(raw) % 4), dtype="<u4").astype(np.uint32)


def encode_steps(values: ArrayLike, tables: CdfTables, table_index: ArrayLike, *, tag: int = 0) -> bytes:
    """Entropy-code integers in steps, for a decoder that needs step ``k``'s values to name step ``k + 1``'s tables.

    Parameters
    ----------
    values : array-like of int, shape (n_steps, n)
        Row ``k``: the values of step ``k``, each within its table's range (no escapes).
    tables : CdfTables
    table_index : array-like of int, shape (n_steps, n)
        Which table codes each value.
    tag : int, default=0
        The coder's initial and final state, as in :func:`encode_symbols`.

    Returns
    -------
    bytes
        The payload: step after step, each step's values grouped by table (ascending) and, within a
        table, by position; :class:`StepDecoder` reads it back one step at a time.
    """
    x = np.asarray(values)
    index = np.asarray(table_index)
    if x.ndim != 2 or x.shape != index.shape or not (x.size == 0 or np.issubdtype(x.dtype, np.integer)):
        raise ValueError(f"values must be integers of the same 2-d shape as table_index {index.shape}, got {x.shape}")
    flat_index = _check_index(tables, index.ravel())
    symbols = x.ravel().astype(np.int64) - tables.offsets[flat_index]
    if symbols.size and (symbols.min() < 0 or np.any(symbols >= tables.lengths[flat_index] - 1)):
        raise ValueError("every value must lie in its table's range: encode_steps codes no escapes")
    steps = np.repeat(np.arange(x.shape[0], dtype=np.int64), x.shape[1])
    key = steps * len(tables.cdf) + flat_index  # (n_steps * n,) step-major, then table
    order = np.argsort(key, kind="stable")  # then by position: the decoding order
    grouped = symbols[order].astype(np.int32)
    coder = _coder(tag)
    for k, start, stop in reversed(_groups(key[order])):  # a stack: the group decoded first is pushed last
        coder.encode_reverse(grouped[start:stop], _model(tables, k % len(tables.cdf)))
    return _payload_bytes(coder)


class _StepReader:
    """A payload read in steps: the coder started from its words, and the final check against the tag."""

    def __init__(self, data: bytes, *, tag: int) -> None:
        _coder(tag)  # checks the tag's range
        self.tag = tag
        try:
            self._coder = constriction.stream.stack.AnsCoder(_payload_words(data))
        except PayloadError:
            raise
        except Exception as exc:
            raise PayloadError(f"the payload does not decode ({exc})") from None

    def finish(self) -> None:
        """Check that the coder ends in the tag: the payload held exactly the steps read, with these models."""
        if [int(w) for w in self._coder.get_compressed()] != ([self.tag] if self.tag else []):
            raise PayloadError("the payload does not end in its tag; it is corrupt, or coded with other tables or tag")


class StepDecoder(_StepReader):
    """Reads a payload of :func:`encode_steps` one step at a time: ``step(table_index)`` for each step, in
    order, then ``finish()``.

    Raises
    ------
    PayloadError
        From any call, if the payload is not a complete, canonical payload for these tables, these
        table indices and this tag.
    """

    def __init__(self, data: bytes, tables: CdfTables, *, tag: int = 0) -> None:
        super().__init__(data, tag=tag)
        self.tables = tables

    def step(self, table_index: ArrayLike) -> np.ndarray:
        """``(n,)`` int64: the next step's values, value ``i`` coded with table ``table_index[i]``."""
        index = _check_index(self.tables, np.asarray(table_index))
        order = np.argsort(index, kind="stable")
        grouped = np.empty(index.shape, dtype=np.int64)
        try:
            for t, start, stop in _groups(index[order]):
                grouped[start:stop] = self._coder.decode(_model(self.tables, t), stop - start)
        except Exception as exc:  # constriction's own refusal of impossible data
            raise PayloadError(f"the payload does not decode ({exc})") from None
        symbols = np.empty(index.shape, dtype=np.int64)
        symbols[order] = grouped
        if np.any(symbols >= self.tables.lengths[index] - 1):
            raise PayloadError("the payload decodes to an escape, which a stepwise payload never holds; it is corrupt")
        return symbols + self.tables.offsets[index]


def _frequency_weights(freq: np.ndarray, precision: int = PRECISION) -> np.ndarray:
    """The coder's batched categorical weights of frequency rows ``(n, k)`` out of ``2**precision``, checked,
    as in :func:`_model`: with ``perfect=False``, constriction gives symbol ``i`` exactly ``freq[i]``
    scaled to 24 bits."""
    f = np.asarray(freq)
    if f.ndim != 2 or f.shape[1] < 2 or not np.issubdtype(f.dtype, np.integer):
        raise ValueError(f"frequencies must be a 2-d integer array with >= 2 columns, got {f.shape} {f.dtype}")
    if f.size and (f.min() < 1 or np.any(f.sum(axis=1) != 2**precision)):
        raise ValueError(f"every frequency must be >= 1 and every row must sum to {2**precision}")
    return (f.astype(np.int64) * (1 << (_CODER_PRECISION - precision)) - 1).astype(np.float64)


def encode_frequency_steps(
    step: Callable[[int], tuple[np.ndarray, np.ndarray]], n_steps: int, *, tag: int = 0, precision: int = PRECISION
) -> bytes:
    """Entropy-code values in steps, each value with its own frequency row (a learned pixel model's).

    ``step(k)`` returns step ``k``'s values ``(n,)`` (symbols ``0 .. K - 1``) and their frequencies
    ``(n, K)``: integers >= 1, each row summing to ``2**precision`` (16 to 24). It is called for ``k = n_steps - 1``
    down to 0 (the coder is a stack), so that a caller never holds more than one step's rows.
    :class:`FrequencyStepDecoder` reads the payload back one step at a time, in order.
    """
    coder = _coder(tag)
    family = constriction.stream.model.Categorical(perfect=False)
    for k in reversed(range(n_steps)):
        values, freq = step(k)
        weights = _frequency_weights(freq, precision)
        symbols = np.asarray(values, dtype=np.int64)
        if symbols.shape != (len(weights),) or (
            symbols.size and (symbols.min() < 0 or symbols.max() >= weights.shape[1])
        ):
            raise ValueError(f"step {k}: values must be ({len(weights)},) symbols below {weights.shape[1]}")
        if symbols.size:
            coder.encode_reverse(symbols.astype(np.int32), family, weights)
    return _payload_bytes(coder)


class FrequencyStepDecoder(_StepReader):
    """Reads a payload of :func:`encode_frequency_steps`: ``step(freq)`` for each step, in order, then ``finish()``.

    Raises
    ------
    PayloadError
        From any call, if the payload is not a complete, canonical payload for these frequencies and tag.
    """

    def __init__(self, data: bytes, *, tag: int = 0, precision: int = PRECISION) -> None:
        super().__init__(data, tag=tag)
        self._family = constriction.stream.model.Categorical(perfect=False)
        self._precision = precision

    def step(self, freq: np.ndarray) -> np.ndarray:
        """``(n,)`` int64: the next step's values, value ``i`` coded with the frequency row ``freq[i]``."""
        weights = _frequency_weights(freq, self._precision)
        if not len(weights):
            return np.zeros(0, dtype=np.int64)
        try:
            return np.asarray(self._coder.decode(self._family, weights), dtype=np.int64)
        except Exception as exc:  # constriction's own refusal of impossible data
            raise PayloadError(f"the payload does not decode ({exc})") from None


def _read_exp_golomb(coder: constriction.stream.stack.AnsCoder, binary: constriction.stream.model.Categorical) -> int:
    n = 0
    while int(coder.decode(binary)) == 0:
        n += 1
        if n > _MAX_PREFIX:
            raise PayloadError("an escaped value's prefix is too long for an int32; the payload is corrupt")
    v = 1
    for _ in range(n):
        v = (v << 1) | int(coder.decode(binary))
    return v - 1


def value_bits(values: ArrayLike, tables: CdfTables, table_index: ArrayLike) -> np.ndarray:
    """Ideal code length in bits of each value under its table, escapes counted with their extra bits.

    ``values`` and ``table_index`` have the same shape (any); so has the result, float64.
    """
    x = np.asarray(values, dtype=np.int64)
    index = np.asarray(table_index, dtype=np.int64)
    _check_index(tables, index.ravel())
    escape = tables.lengths[index].astype(np.int64) - 1
    lo = tables.offsets[index].astype(np.int64)
    symbols = x - lo
    outside = (symbols < 0) | (symbols >= escape)
    symbols = np.where(outside, escape, symbols)
    freq = tables.cdf[index, symbols + 1].astype(np.int64) - tables.cdf[index, symbols]
    bits = tables.precision - np.log2(freq)
    excess = np.where(x < lo, lo - 1 - x, x - (lo + escape))
    return np.where(outside, bits + 2 + 2 * np.floor(np.log2(np.maximum(excess, 0) + 1.0)), bits)


def information_bits(values: ArrayLike, tables: CdfTables, table_index: ArrayLike) -> float:
    """Ideal code length in bits of ``values`` under ``tables`` (escapes counted with their extra bits)."""
    return float(np.sum(value_bits(values, tables, table_index)))
