"""The entropy-coding seam: exact integer tables, round trips, rates near the entropy, corrupt payloads refused."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from isthmus import entropy
from isthmus.entropy import CdfTables, PayloadError, build_cdf_tables, decode_symbols, encode_symbols


def _tables(n_tables: int = 3, seed: int = 0) -> CdfTables:
    rng = np.random.default_rng(seed)
    pmfs = [rng.dirichlet(np.ones(int(rng.integers(1, 12)))) * 0.999 for _ in range(n_tables)]
    return build_cdf_tables(pmfs, offsets=rng.integers(-6, 3, size=n_tables))


def test_quantized_pmf_sums_to_total_and_keeps_every_symbol() -> None:
    freq = entropy.quantize_pmf([0.0, 1e-12, 0.5, 0.5 - 1e-12, 0.0], precision=16)
    assert freq.sum() == 2**16
    assert freq.min() >= 1
    assert abs(freq[2] - freq[3]) <= 1


def test_tables_are_valid_and_reject_bad_rows() -> None:
    tables = _tables()
    entropy.check_cdf_tables(tables)
    bad = tables.cdf.copy()
    bad[0, 1] = bad[0, 2]  # a zero frequency
    with pytest.raises(ValueError, match="rise strictly"):
        entropy.check_cdf_tables(dataclasses.replace(tables, cdf=bad))
    with pytest.raises(ValueError, match="length"):
        entropy.check_cdf_tables(dataclasses.replace(tables, lengths=tables.lengths + 100))


def test_coder_sees_exactly_the_integer_table() -> None:
    """A lone symbol coded from the empty ANS state leaves the state at its scaled cumulative frequency."""
    tables = _tables(1)
    for s in range(int(tables.lengths[0]) - 1):
        data = encode_symbols([int(tables.offsets[0]) + s], tables, [0])
        state = int.from_bytes(data, "little")
        assert state == int(tables.cdf[0, s]) << (24 - tables.precision)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    values=st.lists(st.integers(-(2**31) + 1, 2**31 - 1) | st.integers(-9, 9), max_size=60),
)
def test_round_trip(seed: int, values: list[int]) -> None:
    tables = _tables(3, seed)
    index = np.random.default_rng(seed).integers(0, 3, size=len(values))
    data = encode_symbols(np.array(values, dtype=np.int64), tables, index)
    assert not data.endswith(b"\x00")
    np.testing.assert_array_equal(decode_symbols(data, tables, index), values)


def test_empty_message() -> None:
    tables = _tables()
    assert decode_symbols(encode_symbols(np.zeros(0, np.int64), tables, np.zeros(0, np.int64)), tables, []).size == 0


def test_rate_is_close_to_the_entropy() -> None:
    rng = np.random.default_rng(1)
    pmf = np.array([0.02, 0.08, 0.5, 0.3, 0.07, 0.03])
    tables = build_cdf_tables([pmf], offsets=[-2], tail_mass=[1e-4])
    n = 20_000
    values = rng.choice(6, size=n, p=pmf) - 2
    index = np.zeros(n, dtype=np.int64)
    data = encode_symbols(values, tables, index)
    entropy_bits = -n * float(np.sum(pmf * np.log2(pmf)))
    assert len(data) * 8 <= 1.005 * entropy_bits + 64
    assert abs(entropy.information_bits(values, tables, index) - len(data) * 8) < 0.005 * entropy_bits + 64


def test_escaped_values_cost_only_a_few_bits_more() -> None:
    tables = build_cdf_tables([[0.5, 0.5]], offsets=[0], tail_mass=[1e-3])
    values = np.random.default_rng(3).integers(0, 2, size=200)
    values[[5, 50]] = [1000, -(2**31) + 1]
    index = np.zeros(200, np.int64)
    data = encode_symbols(values, tables, index)
    # 200 fair bits, two escapes of -log2(1e-3) bits each, then 2 + 2 * floor(log2(excess + 1)) bits each
    assert entropy.information_bits(values, tables, index) < 198 + 2 * 10 + 2 + 2 * 9 + 2 + 2 * 30 + 1
    assert len(data) * 8 <= entropy.information_bits(values, tables, index) + 32


@settings(max_examples=40, deadline=None)
@given(data=st.binary(max_size=24), n=st.integers(0, 12))
def test_arbitrary_bytes_decode_or_raise_payload_error(data: bytes, n: int) -> None:
    tables = _tables()
    index = np.arange(n) % 3
    try:
        values = decode_symbols(data, tables, index)
    except PayloadError:
        return
    assert values.shape == (n,)
    assert encode_symbols(values, tables, index) == data  # what decodes is canonical: it re-encodes to itself


def test_wrong_length_is_refused() -> None:
    tables = _tables()
    index = np.arange(30) % 3
    values = np.random.default_rng(2).integers(-3, 4, size=30)
    data = encode_symbols(values, tables, index)
    with pytest.raises(PayloadError):
        decode_symbols(data + b"\x07", tables, index)
    with pytest.raises(PayloadError):
        decode_symbols(data, tables, index[:10])
