"""The bitstream (docs/format.md, section 4): golden bytes, round trips, and every corruption refused."""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import fit_quantized
from isthmus import Autoencoder, codec, load
from isthmus.codec import (
    BitstreamError,
    BitstreamVersionError,
    CorruptBitstreamError,
    NotABitstreamError,
    TruncatedBitstreamError,
    WrongModelError,
)
from isthmus.entropy import build_cdf_tables, decode_symbols, encode_symbols
from isthmus.errors import ConfigError, DataError, IsthmusError


@pytest.fixture(scope="module")
def images(digits: np.ndarray) -> np.ndarray:
    return digits[:400, 0]  # (400, 8, 8) float32 in 0..16


@pytest.fixture(scope="module")
def model(images: np.ndarray) -> Autoencoder:
    return fit_quantized(images)


@pytest.fixture(scope="module")
def stream(model: Autoencoder, images: np.ndarray) -> bytes:
    return model.compress(images[:3].astype(np.uint8))


# ---------------------------------------------------------------------------- the container alone


def test_golden_bytes() -> None:
    """Pins the container and the payload coding: a change to either must be made on purpose."""
    tables = build_cdf_tables([[0.1, 0.6, 0.3], [0.5, 0.25, 0.125, 0.125]], offsets=[-1, 0], tail_mass=[0.01, 0.01])
    index = np.tile([0, 1], 4)
    values = np.array([0, 1, 1, 3, -1, 0, 40, 2])  # 40 is outside table 1's range 0..3: escaped
    payload = encode_symbols(values, tables, index, tag=0xABCDE)
    data = codec.write_stream(payload, dtype=np.uint8, shape=(4, 2, 1), sample_shape=(2,))
    # magic, version 1, layout (form 3, uint8), shape (3 dims: 4 2 1), payload length 8, payload, CRC-16
    assert data.hex() == "894901300304020108dee250d2bb4e4e01a240"
    header, back = codec.read_stream(data, sample_shape=(2,))
    assert back == payload
    assert header == codec.Header(np.dtype(np.uint8), (4, 2, 1), 4)
    np.testing.assert_array_equal(decode_symbols(back, tables, index, tag=0xABCDE), values)


def test_one_sample_has_seven_bytes_of_overhead() -> None:
    data = codec.write_stream(b"\x01\x02", dtype=np.float32, shape=(1, 28, 28), sample_shape=(28, 28))
    assert len(data) == 7 + 2


@pytest.mark.parametrize(
    ("shape", "form"), [((1, 3, 4), 0), ((7, 3, 4), 1), ((3, 4), 2), ((7, 12), 3), ((2, 3, 4, 1), 3)]
)
def test_shape_forms(shape: tuple[int, ...], form: int) -> None:
    data = codec.write_stream(b"", dtype=np.int16, shape=shape, sample_shape=(3, 4))
    assert (data[3] >> 4) & 3 == form
    header, _ = codec.read_stream(data, sample_shape=(3, 4))
    assert header.shape == shape
    assert header.n_samples == np.prod(shape) // 12


def test_unstorable_shapes_are_refused() -> None:
    for shape in [(0, 3, 4), (5,), (2, 5)]:
        with pytest.raises(DataError, match="whole"):
            codec.write_stream(b"", dtype=np.uint8, shape=shape, sample_shape=(3, 4))


@settings(max_examples=60, deadline=None)
@given(
    payload=st.binary(max_size=300),
    dtype=st.sampled_from(codec.DTYPES),
    shape=st.lists(st.integers(1, 100), min_size=1, max_size=3).map(tuple),
)
def test_container_round_trip(payload: bytes, dtype: np.dtype[Any], shape: tuple[int, ...]) -> None:
    data = codec.write_stream(payload, dtype=dtype, shape=(*shape, 2), sample_shape=(2,))
    header, back = codec.read_stream(data, sample_shape=(2,))
    assert back == payload
    assert header.dtype == dtype
    assert header.shape == (*shape, 2)


def _container() -> bytes:
    return codec.write_stream(b"\x17\x2a\x99", dtype=np.uint8, shape=(5, 2), sample_shape=(2,))


def test_newer_version_foreign_data_and_extra_bytes() -> None:
    data = _container()
    with pytest.raises(BitstreamVersionError, match="upgrade isthmus"):
        codec.read_stream(data[:2] + bytes([codec.FORMAT_VERSION + 1]) + data[3:], sample_shape=(2,))
    with pytest.raises(NotABitstreamError, match="not a stream"):
        codec.read_stream(b"\x89PNG\r\n", sample_shape=(2,))
    for prefix in (b"", b"\x89"):
        with pytest.raises(TruncatedBitstreamError):
            codec.read_stream(prefix, sample_shape=(2,))
    with pytest.raises(CorruptBitstreamError, match="unexpected bytes"):
        codec.read_stream(data + b"\x00", sample_shape=(2,))
    explicit = codec.write_stream(b"", dtype=np.uint8, shape=(3, 4), sample_shape=(2,))  # shape form 3
    with pytest.raises(WrongModelError, match="another model"):
        codec.read_stream(explicit, sample_shape=(5,))


def test_every_truncation_and_every_byte_change_of_a_container_is_refused() -> None:
    data = _container()
    for n in range(len(data)):
        with pytest.raises(TruncatedBitstreamError):
            codec.read_stream(data[:n], sample_shape=(2,))
    for pos in range(len(data)):
        for flip in range(1, 256):
            changed = data[:pos] + bytes([data[pos] ^ flip]) + data[pos + 1 :]
            with pytest.raises(BitstreamError):
                codec.read_stream(changed, sample_shape=(2,))


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=40))
def test_arbitrary_bytes_never_crash_the_reader(data: bytes) -> None:
    with contextlib.suppress(BitstreamError):
        codec.read_stream(data, sample_shape=(2,))


# ---------------------------------------------------------------------------- a model's streams


def test_stream_decodes_to_the_quantized_code(model: Autoencoder, images: np.ndarray) -> None:
    x = images[:50]
    data = model.compress(x)
    out = model.decompress(data)
    assert out.dtype == np.float32
    assert out.shape == x.shape
    np.testing.assert_array_equal(out, model.inverse_transform(model.transform(x)))
    code = model.transform(x)
    assert np.array_equal(code, np.rint(code))  # the code is integers


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.float64, np.bool_])
def test_dtype_and_shape_come_back(model: Autoencoder, images: np.ndarray, dtype: Any) -> None:
    for x in (images[0], images[:1], images[:4], images[:4].reshape(4, 64)):
        out = model.decompress(model.compress(x.astype(dtype)))
        assert out.dtype == np.dtype(dtype)
        assert out.shape == x.shape


def test_one_image_stream_is_small(model: Autoencoder, images: np.ndarray) -> None:
    data = model.compress(images[:1].astype(np.uint8))
    assert len(data) <= 11 + 6 * 2  # header and checksum, then at most a couple of bytes per code channel


def test_wrong_model_is_refused(model: Autoencoder, images: np.ndarray, stream: bytes) -> None:
    other = fit_quantized(images, seed=1)
    with pytest.raises(WrongModelError, match="decode it with the model that compressed it"):
        other.decompress(stream)


def test_every_truncation_and_byte_change_of_a_model_stream_is_refused(model: Autoencoder, stream: bytes) -> None:
    for n in range(len(stream)):
        with pytest.raises(TruncatedBitstreamError):
            model.decompress(stream[:n])
    for pos in range(len(stream)):
        for flip in (0x01, 0x80, 0xFF, 0x5A):
            changed = stream[:pos] + bytes([stream[pos] ^ flip]) + stream[pos + 1 :]
            with pytest.raises(BitstreamError):
                model.decompress(changed)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pos=st.integers(0, 10_000), flip=st.integers(1, 255), cut=st.integers(0, 10_000))
def test_corrupted_streams_raise_the_library_error(
    model: Autoencoder, stream: bytes, pos: int, flip: int, cut: int
) -> None:
    pos %= len(stream)
    changed = stream[:pos] + bytes([stream[pos] ^ flip]) + stream[pos + 1 :]
    with pytest.raises(BitstreamError):
        model.decompress(changed)
    with pytest.raises(TruncatedBitstreamError):
        model.decompress(stream[: cut % len(stream)])


def test_forged_payload_with_a_valid_checksum_is_refused(model: Autoencoder, stream: bytes) -> None:
    """A stream rebuilt with a fresh checksum around a changed payload still fails the payload's own checks
    (intact bytes that do not decode can only come from another model, or a forger)."""
    header, payload = codec.read_stream(stream, sample_shape=(8, 8))
    for forged_payload in (payload + b"\x01", payload + b"\x00", b"\x01\x00\x00\x00\x00\x00\x00\x00\x01"):
        forged = codec.write_stream(forged_payload, dtype=header.dtype, shape=header.shape, sample_shape=(8, 8))
        with pytest.raises(WrongModelError, match="does not decode with this model"):
            model.decompress(forged)


def test_saved_model_decodes_and_encoder_only_compresses(model: Autoencoder, stream: bytes, tmp_path: Any) -> None:
    model.save(tmp_path / "m.safetensors")
    loaded = load(tmp_path / "m.safetensors")
    assert loaded.fingerprint_ == model.fingerprint_
    np.testing.assert_array_equal(loaded.decompress(stream), model.decompress(stream))
    model.export_encoder(tmp_path / "e.safetensors")
    encoder = load(tmp_path / "e.safetensors")
    x = model.decompress(stream)
    assert encoder.compress(x) == model.compress(x)
    with pytest.raises(IsthmusError):
        encoder.decompress(stream)


def test_other_bottlenecks_cannot_compress(digits: np.ndarray) -> None:
    plain = Autoencoder(3, hidden_layer_sizes=(8,), max_iter=1, verbose=0, random_state=0).fit(digits[:50, 0])
    with pytest.raises(ConfigError, match="quantized"):
        plain.compress(digits[:2, 0])


# ---------------------------------------------------------------------------- the command line


def test_cli_compress_and_decompress(
    model: Autoencoder, images: np.ndarray, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from PIL import Image

    from isthmus.cli import main

    model.save(tmp_path / "m.safetensors")
    x = (images[:5] * 15).astype(np.uint8)
    np.save(tmp_path / "x.npy", x)
    assert (
        main(["compress", str(tmp_path / "m.safetensors"), str(tmp_path / "x.npy"), "-o", str(tmp_path / "x.isth")])
        == 0
    )
    assert (tmp_path / "x.isth").read_bytes() == model.compress(x)
    m, s = str(tmp_path / "m.safetensors"), str(tmp_path / "x.isth")
    assert main(["decompress", m, s, "-o", str(tmp_path / "y.npy")]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), model.decompress(model.compress(x)))
    assert main(["decompress", m, s, "-o", str(tmp_path / "pngs")]) == 0
    assert sorted(p.name for p in (tmp_path / "pngs").iterdir()) == [f"{i:05d}.png" for i in range(5)]
    # a folder of PNGs appears whole or not at all, and an old one survives a failed overwrite
    saved = Image.Image.save
    calls = []

    def failing_save(self: Image.Image, *args: object, **kwargs: object) -> None:
        calls.append(1)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        saved(self, *args, **kwargs)

    old = {p.name: p.read_bytes() for p in (tmp_path / "pngs").iterdir()}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Image.Image, "save", failing_save)
        assert main(["decompress", m, s, "-o", str(tmp_path / "new"), "--overwrite"]) == 1
        calls.clear()
        assert main(["decompress", m, s, "-o", str(tmp_path / "pngs"), "--overwrite"]) == 1
    assert "No space left" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()
    assert {p.name: p.read_bytes() for p in (tmp_path / "pngs").iterdir()} == old
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert main(["decompress", m, s, "-o", str(tmp_path / "pngs"), "--overwrite"]) == 0
    Image.fromarray(x[0]).save(tmp_path / "one.png")
    assert main(["compress", m, str(tmp_path / "one.png"), "-o", str(tmp_path / "one.isth")]) == 0
    assert main(["decompress", m, str(tmp_path / "one.isth"), "-o", str(tmp_path / "back.png")]) == 0
    assert np.asarray(Image.open(tmp_path / "back.png")).shape == (8, 8)
    capsys.readouterr()
    other = fit_quantized(images, seed=2)
    other.save(tmp_path / "other.safetensors")
    assert main(["decompress", str(tmp_path / "other.safetensors"), s, "-o", str(tmp_path / "z.npy")]) == 1
    assert "error: the stream is intact but does not decode with this model" in capsys.readouterr().err
    (tmp_path / "cut.isth").write_bytes((tmp_path / "x.isth").read_bytes()[:-3])
    assert main(["decompress", m, str(tmp_path / "cut.isth"), "-o", str(tmp_path / "z.npy")]) == 1
    assert "truncated" in capsys.readouterr().err


# ---------------------------------------------------------------------------- lossless streams


def test_lossless_stream_gives_the_data_back_bit_for_bit(model: Autoencoder, images: np.ndarray) -> None:
    x = images[:20].astype(np.uint8)  # digits: integers 0..16, so the model has pixel tables
    data = model.compress(x, lossless=True)
    assert data[3] & 0x40  # the lossless flag
    back = model.decompress(data)
    assert back.dtype == np.uint8
    np.testing.assert_array_equal(back, x)
    np.testing.assert_array_equal(model.decompress(model.compress(x[0], lossless=True)), x[0])
    # a lossless stream costs more than the lossy one, but less than the raw 4-bit values
    assert len(model.compress(x)) < len(data) < x.size / 2


def test_lossless_streams_are_refused_when_corrupt_or_not_8_bit(model: Autoencoder, images: np.ndarray) -> None:
    data = model.compress(images[:2].astype(np.uint8), lossless=True)
    for pos in range(len(data)):
        with pytest.raises(BitstreamError):
            model.decompress(data[:pos] + bytes([data[pos] ^ 0x21]) + data[pos + 1 :])
    with pytest.raises(DataError, match="uint8"):
        model.compress(images[:2], lossless=True)
    with pytest.raises(WrongModelError):
        fit_quantized(images, seed=3).decompress(data)
    scaled = fit_quantized(images / 7.0)  # not 8-bit data: no pixel tables
    assert scaled.lossless_tables_ is None
    with pytest.raises(ConfigError, match="8-bit"):
        scaled.compress(images[:2].astype(np.uint8), lossless=True)


def test_saved_model_keeps_its_pixel_tables(model: Autoencoder, images: np.ndarray, tmp_path: Any) -> None:
    x = images[:3].astype(np.uint8)
    model.save(tmp_path / "m.safetensors")
    np.testing.assert_array_equal(load(tmp_path / "m.safetensors").decompress(model.compress(x, lossless=True)), x)
