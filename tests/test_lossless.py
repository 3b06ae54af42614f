"""Lossless streams with causal contexts (docs/format.md, sections 2.6 and 4.6): the pixel model, the
stepwise coder, version-2 streams, and the model files from before the pixel model."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors import safe_open

from conftest import fit_quantized
from isthmus import Autoencoder, codec, load
from isthmus.artifact import fingerprint, safetensors_bytes
from isthmus.codec import BitstreamError, BitstreamVersionError, TruncatedBitstreamError, WrongModelError
from isthmus.entropy import PayloadError, StepDecoder, build_cdf_tables, encode_steps, encode_symbols
from isthmus.errors import DataError, ModelFileError
from isthmus.fitted import Fitted
from isthmus.lossless import (
    PixelModel,
    ReconstructionTables,
    build_pixel_model,
    contexts,
    decode_pixels,
    encode_pixels,
)


@pytest.fixture(scope="module")
def images(digits: np.ndarray) -> np.ndarray:
    return digits[:400, 0]  # (400, 8, 8) float32, integers 0..16


@pytest.fixture(scope="module")
def model(images: np.ndarray) -> Autoencoder:
    return fit_quantized(images)


def _old_tables(ae: Autoencoder, x: np.ndarray) -> Any:
    """The 256 recon-only pixel tables of the first lossless scheme (stream version 1), as fit counted them."""
    recon = codec.contexts(Fitted.of(ae), ae.transform(x))
    pairs = np.bincount(recon * 256 + x.reshape(-1).astype(np.int64), minlength=256 * 256)
    counts = pairs.reshape(256, 256).astype(np.float64) + 0.5
    pmfs = counts / counts.sum(axis=1, keepdims=True)
    return build_cdf_tables(list(pmfs), offsets=np.zeros(256, dtype=np.int64), tail_mass=np.zeros(256))


# ---------------------------------------------------------------------------- the stepwise coder


def test_steps_round_trip_and_check_their_end() -> None:
    tables = build_cdf_tables([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], offsets=[0, 5], tail_mass=[0.0, 0.0])
    index = np.array([[0, 1, 0], [1, 1, 0]])
    values = np.array([[0, 7, 2], [5, 6, 1]])
    data = encode_steps(values, tables, index, tag=77)
    decoder = StepDecoder(data, tables, tag=77)
    np.testing.assert_array_equal([decoder.step(row) for row in index], values)
    decoder.finish()
    short = StepDecoder(data, tables, tag=77)
    short.step(index[0])
    with pytest.raises(PayloadError, match="tag"):
        short.finish()  # a step left unread
    with pytest.raises(ValueError, match="range"):
        encode_steps(np.array([[9]]), tables, np.array([[0]]))  # no escapes


def test_golden_bytes() -> None:
    """Pins a version-2 lossless pixel payload and its container: a change must be made on purpose."""
    x = np.array([[[0, 0, 9], [200, 255, 3]], [[1, 2, 3], [4, 5, 6]]])
    recon = np.array([[[0, 3, 9], [180, 250, 0]], [[0, 0, 0], [9, 9, 9]]])
    pixels = build_pixel_model(recon, x)
    payload = encode_pixels(x, recon, pixels, tag=0xABCDE)
    data = codec.write_stream(payload, dtype=np.uint8, shape=(2, 2, 3), sample_shape=(2, 3), lossless=True, version=2)
    assert data.hex() == GOLDEN
    header, back = codec.read_stream(data, sample_shape=(2, 3))
    assert header == codec.Header(np.dtype(np.uint8), (2, 2, 3), 2, True, 2)
    np.testing.assert_array_equal(decode_pixels(back, recon, pixels, tag=0xABCDE), x)


GOLDEN = "89490250020ade7108fb9918068a110516fc"


# ---------------------------------------------------------------------------- contexts


def test_contexts_are_causal() -> None:
    """A value's context reads only values before it in raster order: changing pixel k changes no context <= k."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (3, 5, 6))
    recon = rng.integers(0, 256, x.shape)
    bins = build_pixel_model(recon, x).bins
    before = contexts(recon, x, bins).reshape(3, -1)
    for k in range(30):
        changed = x.reshape(3, -1).copy()
        changed[:, k] = 255 - changed[:, k]
        after = contexts(recon, changed.reshape(x.shape), bins).reshape(3, -1)
        np.testing.assert_array_equal(after[:, : k + 1], before[:, : k + 1])


def test_causal_contexts_beat_reconstruction_contexts(model: Autoencoder, images: np.ndarray) -> None:
    """Measured on held-out digits: the pixel model codes in fewer bytes than the 256 recon-only tables."""
    train, test = images[:300].astype(np.uint8), images[300:].astype(np.uint8)
    old = _old_tables(model, train.astype(np.float32))
    recon = codec.contexts(Fitted.of(model), model.transform(test.astype(np.float32)))
    old_bytes = len(encode_symbols(test.reshape(-1).astype(np.int64), old, recon, tag=1))
    pixels = build_pixel_model(
        codec.contexts(Fitted.of(model), model.transform(train)).reshape(train.shape), train.astype(np.int64)
    )
    new_bytes = len(encode_pixels(test.astype(np.int64), recon.reshape(test.shape), pixels, tag=1))
    assert new_bytes < 0.95 * old_bytes


# ---------------------------------------------------------------------------- version-2 streams


def test_round_trip_whole_set_and_one_image(model: Autoencoder, images: np.ndarray) -> None:
    assert isinstance(model.lossless_tables_, PixelModel)
    x = images[:50].astype(np.uint8)
    data = model.compress(x, lossless=True)
    assert data[2] == 4 and data[3] & 0x40  # version 4, the lossless flag
    np.testing.assert_array_equal(model.decompress(data), x)
    one = model.compress(x[7], lossless=True)
    np.testing.assert_array_equal(model.decompress(one), x[7])
    assert len(model.compress(x[7])) < len(one)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(1, 4), st.integers(0, 2**32 - 1))
def test_random_8_bit_arrays_round_trip(model: Autoencoder, m: int, seed: int) -> None:
    x = np.random.default_rng(seed).integers(0, 256, (m, 8, 8)).astype(np.uint8)
    np.testing.assert_array_equal(model.decompress(model.compress(x, lossless=True)), x)


def test_corrupt_truncated_or_foreign_streams_are_refused(model: Autoencoder, images: np.ndarray) -> None:
    data = model.compress(images[:2].astype(np.uint8), lossless=True)
    for pos in range(len(data)):
        with pytest.raises(BitstreamError):
            model.decompress(data[:pos] + bytes([data[pos] ^ 0x5A]) + data[pos + 1 :])
    for cut in (1, 5, len(data) - 1):
        with pytest.raises(TruncatedBitstreamError):
            model.decompress(data[:cut])
    with pytest.raises(WrongModelError):
        fit_quantized(images, seed=4).decompress(data)


def test_a_version_1_reader_refuses_version_2(model: Autoencoder, images: np.ndarray, monkeypatch: Any) -> None:
    data = model.compress(images[:2].astype(np.uint8), lossless=True)
    monkeypatch.setattr(codec, "FORMAT_VERSION", 1)
    with pytest.raises(BitstreamVersionError, match="upgrade"):
        model.decompress(data)


def test_lossy_streams_stay_version_1(model: Autoencoder, images: np.ndarray) -> None:
    assert model.compress(images[:2].astype(np.uint8))[2] == 1
    with pytest.raises(ValueError, match="lossless"):
        codec.write_stream(b"\x01", dtype=np.uint8, shape=(8, 8), sample_shape=(8, 8), version=2)


# ---------------------------------------------------------------------------- model files


def test_model_file_with_a_pixel_model_is_version_2(model: Autoencoder, images: np.ndarray, tmp_path: Any) -> None:
    model.save(tmp_path / "m.safetensors")
    with safe_open(str(tmp_path / "m.safetensors"), "pt") as fh:
        assert fh.metadata()["format_version"] == "2"
        assert "pixels.bins" in fh.keys() and "lossless.cdf" not in fh.keys()  # noqa: SIM118
    x = images[:3].astype(np.uint8)
    np.testing.assert_array_equal(load(tmp_path / "m.safetensors").decompress(model.compress(x, lossless=True)), x)
    lossy = fit_quantized(images / 7.0)  # not 8-bit: no pixel model, version 1
    lossy.save(tmp_path / "l.safetensors")
    with safe_open(str(tmp_path / "l.safetensors"), "pt") as fh:
        assert fh.metadata()["format_version"] == "1"


def _rewrite(path: Any, out: Any, change: Any) -> None:
    with safe_open(str(path), "pt") as fh:
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118
        metadata = dict(fh.metadata())
    change(tensors, metadata)
    out.write_bytes(safetensors_bytes(tensors, metadata))


def test_bad_pixel_models_are_refused(model: Autoencoder, tmp_path: Any) -> None:
    model.save(tmp_path / "m.safetensors")

    def bins_too_many(t: dict[str, torch.Tensor], meta: dict[str, str]) -> None:
        t["pixels.bins"] = t["pixels.bins"].clone()
        t["pixels.bins"][0, 3] = 9000

    def bins_overflow(t: dict[str, torch.Tensor], meta: dict[str, str]) -> None:  # found by test_fuzz in CI
        t["pixels.bins"] = t["pixels.bins"].clone()
        t["pixels.bins"][1, 7] = 2**31 - 1  # (b + 1) ** 4 overflows int64

    def both(t: dict[str, torch.Tensor], meta: dict[str, str]) -> None:
        t["lossless.cdf"] = t["entropy.cdf"]

    def float_bins(t: dict[str, torch.Tensor], meta: dict[str, str]) -> None:
        t["pixels.bins"] = t["pixels.bins"].float()

    cases = ((bins_too_many, "contexts"), (bins_overflow, "contexts"), (both, "both"), (float_bins, "I32"))
    for change, match in cases:
        _rewrite(tmp_path / "m.safetensors", tmp_path / "bad.safetensors", change)
        with pytest.raises(ModelFileError, match=match):
            load(tmp_path / "bad.safetensors")


def test_old_model_files_keep_their_scheme(
    model: Autoencoder, images: np.ndarray, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file with the 256 tables lossless.* codes with them: in version-4 streams, and it still reads the
    version-1 streams it wrote before."""
    x = images[:10].astype(np.uint8)
    new_stream = model.compress(x, lossless=True)
    old = fit_quantized(images)  # the same weights (same seed), given the tables of the first scheme
    old.lossless_tables_ = ReconstructionTables(_old_tables(old, images))
    old.fingerprint_ = fingerprint(Fitted.of(old))
    old.save(tmp_path / "old.safetensors")
    with safe_open(str(tmp_path / "old.safetensors"), "pt") as fh:
        assert fh.metadata()["format_version"] == "1" and "lossless.cdf" in fh.keys()  # noqa: SIM118
    old = load(tmp_path / "old.safetensors")
    data = old.compress(x, lossless=True)
    assert data[2] == 4
    np.testing.assert_array_equal(old.decompress(data), x)
    with monkeypatch.context() as m:  # written as isthmus wrote it before version 4
        m.setattr(codec, "LOSSLESS_VERSION", 1)
        before = old.compress(x, lossless=True)
    assert before[2] == 1
    np.testing.assert_array_equal(old.decompress(before), x)
    with pytest.raises(WrongModelError):
        old.decompress(new_stream)  # another model's
    with pytest.raises(WrongModelError):
        model.decompress(before)  # version 1 needs the 256 tables
    # counted afresh, the old model codes with causal contexts, in fewer bytes
    old.fit_pixel_model(images.astype(np.uint8))
    assert isinstance(old.lossless_tables_, PixelModel)
    fresh = old.compress(x, lossless=True)
    assert fresh[2] == 4 and len(fresh) < len(data)
    np.testing.assert_array_equal(old.decompress(fresh), x)
    with pytest.raises(DataError, match="8-bit"):
        old.fit_pixel_model(images / 7.0)


def _pixel_coders(recon: np.ndarray, x: np.ndarray) -> list[Any]:
    """One pixel model of each kind, built on ``(m, rows, columns)`` values and reconstructions."""
    counted = build_pixel_model(recon, x)
    pmfs = np.bincount(recon.ravel() * 256 + x.ravel(), minlength=256 * 256).reshape(256, 256) + 0.5
    old = build_cdf_tables(
        list(pmfs / pmfs.sum(1, keepdims=True)), offsets=np.zeros(256, np.int64), tail_mass=np.zeros(256)
    )
    network = codec.PIXEL_MODELS["net"](recon, x, hidden=(8,), steps=20)
    return [ReconstructionTables(old), counted, network]


def test_every_pixel_model_codes_through_one_protocol() -> None:
    """Each kind of pixel model round-trips through encode/decode, names its own tensors and versions: the
    codec and the model file ask these, never the class."""
    rng = np.random.default_rng(0)
    recon = rng.integers(0, 256, size=(3, 5, 6))
    x = np.clip(recon + rng.integers(-3, 4, size=recon.shape), 0, 255)
    coders = _pixel_coders(recon, x)
    assert sorted(c.stream_version for c in coders) == [1, 2, 3]
    names: set[str] = set()
    for coder in coders:
        data = coder.encode(x.astype(np.uint8), recon, tag=5)
        np.testing.assert_array_equal(coder.decode(data, recon, tag=5), x)
        with pytest.raises(PayloadError):
            coder.decode(data, recon, tag=6)
        tensors = coder.tensors()
        assert tensors and all(v.dtype == np.int32 for v in tensors.values())
        assert not names & set(tensors)  # each kind its own tensors
        names |= set(tensors)
        assert coder.format_version >= coder.stream_version
