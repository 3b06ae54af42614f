"""Lossless streams with a pixel network (docs/format.md, sections 2.6 and 4.6, stream versions 3 and 4):
the integer network's exactness, the stepwise coder with per-value frequencies (16 and 24 bits), what
the trained network learns, the estimator's ``pixel_model="net"``, and model files."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from safetensors import safe_open

from conftest import QUANTIZED
from isthmus import Autoencoder, codec, load
from isthmus.codec import BitstreamError, BitstreamVersionError, WrongModelError
from isthmus.entropy import FrequencyStepDecoder, PayloadError, encode_frequency_steps
from isthmus.errors import ConfigError, ModelFileError
from isthmus.fitted import Fitted
from isthmus.lossless import PixelModel
from isthmus.pixelnet import (
    N_INPUTS,
    PixelNet,
    _inputs,
    _padded,
    _quiet,
    check_pixel_net,
    decode_pixels,
    encode_pixels,
    exp_table,
    frequencies,
    frequency_bits,
    information_bits,
    inputs_at,
    logits,
    predict,
    train_pixel_net,
)
from test_lossless import _rewrite


def _random_net(
    rng: np.random.Generator, widths: tuple[int, ...] = (16, 8), scale: int = 3000, bits: int = 24
) -> PixelNet:
    shapes = list(zip((*widths, 256), (N_INPUTS, *widths), strict=True))
    weights = tuple(rng.integers(-scale, scale, shape) for shape in shapes)
    biases = tuple(rng.integers(-scale * 100, scale * 100, out) for out, _ in shapes)
    return PixelNet(weights, biases, exp_table(bits))


@pytest.fixture(scope="module")
def images(digits: np.ndarray) -> np.ndarray:
    return digits[:300, 0]  # (300, 8, 8) float32, integers 0..16


@pytest.fixture(scope="module")
def model(images: np.ndarray) -> Autoencoder:
    return Autoencoder(6, random_state=0, pixel_model="net", **QUANTIZED).fit(images)


# ---------------------------------------------------------------------------- the integer network


def test_logits_are_the_exact_integer_network() -> None:
    """The float64 products equal the network computed in int64, at the largest weights a file may hold."""
    rng = np.random.default_rng(0)
    net = _random_net(rng, scale=2**31 - 1)
    u = rng.integers(0, 256, (64, N_INPUTS))
    a = u.astype(np.int64)
    for w, b in zip(net.weights[:-1], net.biases[:-1], strict=True):
        a = np.clip((a @ w.T + b) >> 12, 0, 255)
    expected = a @ net.weights[-1].T + net.biases[-1]
    np.testing.assert_array_equal(logits(net, u), expected.astype(np.float64))
    assert np.all(np.abs(expected) < 2**53)


@pytest.mark.parametrize("bits", [16, 24])
def test_frequencies_are_valid_and_follow_the_logits(bits: int) -> None:
    rng = np.random.default_rng(1)
    net = _random_net(rng, bits=bits)
    assert frequency_bits(net) == bits
    z = logits(net, rng.integers(0, 256, (200, N_INPUTS)))
    freq = frequencies(net, z)
    assert freq.min() >= 1 and np.all(freq.sum(axis=1) == 2**bits)
    np.testing.assert_array_equal(np.argmax(freq, axis=1), np.argmax(z, axis=1))
    flat = frequencies(net, np.zeros((1, 256)))  # equal logits: (almost) uniform
    assert flat.max() - flat.min() <= 1


def test_24_bit_frequencies_cost_a_confident_value_less() -> None:
    """A value the network is sure of costs about 256 / 2**bits of its probability: 24 bits lose 256 times less."""
    z = np.zeros((1, 256))
    z[0, 7] = 40 * 2.0**20  # 40 nats above every other value
    cost = {
        bits: float(bits - np.log2(frequencies(_random_net(np.random.default_rng(0), bits=bits), z)[0, 7]))
        for bits in (16, 24)
    }
    assert cost[16] == pytest.approx(-np.log2(1 - 255 / 2**16), rel=0.01)  # 0.0056 bits
    assert cost[24] < cost[16] / 200


def test_the_exp_table_and_a_bad_network_are_checked() -> None:
    for bits, length in ((16, 192), (24, 288)):
        table = exp_table(bits)
        assert table.shape == (length,) and table[0] == 2**bits and np.all(np.diff(table) <= 0) and table[-1] == 0
    assert exp_table()[0] == 2**24  # what a trained network gets
    with pytest.raises(ValueError, match="exp"):  # a 24-bit start on a 16-bit table's length
        check_pixel_net(PixelNet((np.zeros((256, N_INPUTS), int),), (np.zeros(256, int),), exp_table(16) * 256))
    net = _random_net(np.random.default_rng(2))
    check_pixel_net(net)
    with pytest.raises(ValueError, match="layer 1"):
        check_pixel_net(PixelNet(net.weights[:1] + net.weights[2:], net.biases[:1] + net.biases[2:], net.exp))
    with pytest.raises(ValueError, match="exp"):
        check_pixel_net(PixelNet(net.weights, net.biases, net.exp[::-1]))


# ---------------------------------------------------------------------------- the coder


def test_frequency_steps_round_trip_and_check_their_end() -> None:
    rng = np.random.default_rng(3)
    net = _random_net(rng)
    steps = [(rng.integers(0, 256, 5), frequencies(net, logits(net, rng.integers(0, 256, (5, N_INPUTS)))))]
    steps.append((rng.integers(0, 256, 5), frequencies(net, logits(net, rng.integers(0, 256, (5, N_INPUTS))))))
    data = encode_frequency_steps(lambda k: steps[k], len(steps), tag=99, precision=24)
    decoder = FrequencyStepDecoder(data, tag=99, precision=24)
    for values, freq in steps:
        np.testing.assert_array_equal(decoder.step(freq), values)
    decoder.finish()
    short = FrequencyStepDecoder(data, tag=99, precision=24)
    short.step(steps[0][1])
    with pytest.raises(PayloadError, match="tag"):
        short.finish()
    with pytest.raises(ValueError, match="sum"):
        encode_frequency_steps(lambda k: (np.zeros(1, dtype=np.int64), np.ones((1, 256), dtype=np.int64)), 1)
    with pytest.raises(ValueError, match="sum"):  # 16-bit rows read as 24-bit ones
        FrequencyStepDecoder(data, tag=99, precision=16).step(steps[0][1])


@pytest.mark.parametrize("bits", [16, 24])
def test_pixels_round_trip_and_cost_their_information(bits: int) -> None:
    rng = np.random.default_rng(4)
    net = _random_net(rng, bits=bits)
    x = rng.integers(0, 256, (7, 5, 6))
    recon = rng.integers(0, 256, (7, 5, 6))
    data = encode_pixels(x, recon, net, tag=0xABCDE)
    np.testing.assert_array_equal(decode_pixels(data, recon, net, tag=0xABCDE), x)
    assert abs(len(data) * 8 - information_bits(x, recon, net)) <= 40  # the coder's overhead: a few bytes
    with pytest.raises(PayloadError):
        decode_pixels(data, recon, net, tag=0xABCDF)


def test_inputs_are_causal() -> None:
    """Pixel k's inputs read only values before it in raster order (and the reconstruction)."""
    rng = np.random.default_rng(5)
    x = rng.integers(0, 256, (1, 6, 7))
    recon = rng.integers(0, 256, (1, 6, 7))
    base = inputs_at(recon, x)
    for k in (0, 9, 20, 34):
        changed = x.copy()
        changed.reshape(-1)[k] ^= 0x55
        differ = np.flatnonzero(np.any(inputs_at(recon, changed) != base, axis=1))
        assert differ.size and differ.min() > k
    step = 23  # the coder's inputs of one step are the same rows
    i, j = divmod(step, 7)
    np.testing.assert_array_equal(_inputs(*_padded(recon, x), i, j, 6, 7), base[step::42])


def test_a_trained_network_learns_what_predicts_a_value() -> None:
    """Black or white rows, the left neighbour predicts all but a row's first value: the network learns
    it, far below the 1 bit per value that the values alone cost (and than the 256-way start)."""
    rng = np.random.default_rng(6)

    def rows(m: int) -> np.ndarray:
        return np.repeat(255 * rng.integers(0, 2, (m, 8, 1)), 8, axis=2)  # (m, 8, 8)

    x = rows(400)
    net = train_pixel_net(np.zeros_like(x), x, hidden=(64,), steps=400, seed=0)
    held = rows(50)
    bits = information_bits(held, np.zeros_like(held), net) / held.size
    assert bits < 0.35  # a row's first value costs its 1 bit, the other 7 little


def test_quiet_pixels_sampled_sparsely_still_code_at_their_entropy() -> None:
    """Sparse dots (2% of values are 200): the quiet pixels (all zeros above and to the left, as the
    network's inputs show them) are sampled at a twentieth, and the network still codes them at about
    their entropy, 0.14 bits (a uniform start costs 8)."""
    rng = np.random.default_rng(8)

    def dots(m: int) -> np.ndarray:
        return 200 * (rng.random((m, 8, 8)) < 0.02).astype(np.int64)

    x, held = dots(3000), dots(500)
    quiet = _quiet(held).reshape(-1)
    np.testing.assert_array_equal(quiet, inputs_at(np.zeros_like(held), held)[:, 25:37].max(axis=1) == 0)
    net = train_pixel_net(np.zeros_like(x), x, hidden=(32,), steps=300, quiet_keep=0.05, seed=0)
    freq = predict(net, inputs_at(np.zeros_like(held), held))
    bits = frequency_bits(net) - np.log2(freq[np.arange(len(freq)), held.reshape(-1)])
    assert quiet.mean() > 0.7 and bits[quiet].mean() < 0.2
    with pytest.raises(ValueError, match="quiet_keep"):
        train_pixel_net(np.zeros_like(x), x, quiet_keep=0.0)


# ---------------------------------------------------------------------------- the estimator and its files


def test_estimator_writes_version_4_streams_that_round_trip(model: Autoencoder, images: np.ndarray) -> None:
    assert isinstance(model.lossless_tables_, PixelNet) and frequency_bits(model.lossless_tables_) == 24
    x = images[:40].astype(np.uint8)
    data = model.compress(x, lossless=True)
    assert data[2] == 4 and data[3] & 0x40
    np.testing.assert_array_equal(model.decompress(data), x)
    one = model.compress(x[3], lossless=True)
    np.testing.assert_array_equal(model.decompress(one), x[3])
    noise = np.random.default_rng(7).integers(0, 256, (2, 8, 8)).astype(np.uint8)
    np.testing.assert_array_equal(model.decompress(model.compress(noise, lossless=True)), noise)


def test_lossless_streams_do_not_hang_on_the_machines_arithmetic(
    model: Autoencoder, images: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Since version 4 the pixels' contexts read the reconstruction in float64, on the CPU: the same model
    computing in bfloat16 (as it does on a GPU, standing in here for another machine) rounds its own
    reconstruction differently, but not the exact one, and decodes what it wrote in float32."""
    x = images[:100].astype(np.uint8)
    code = model.transform(images[:100]).round()
    data = model.compress(x, lossless=True)
    exact, own = codec.exact_reconstruction(Fitted.of(model), code), Fitted.of(model).decode(code)
    assert exact.dtype == np.float64 and np.abs(exact - own).max() < 1e-4
    with monkeypatch.context() as m:
        m.setattr(model, "precision", "bf16")
        assert np.any(np.rint(Fitted.of(model).decode(code)) != np.rint(own))
        np.testing.assert_array_equal(codec.exact_reconstruction(Fitted.of(model), code), exact)
        np.testing.assert_array_equal(model.decompress(data), x)


def test_the_exact_reconstruction_does_not_depend_on_threads_or_batches(
    model: Autoencoder, images: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    code = model.transform(images[:120]).round()
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = codec.exact_reconstruction(Fitted.of(model), code)
        torch.set_num_threads(2)
        monkeypatch.setattr(codec, "_EXACT_BATCH", 7)
        two = codec.exact_reconstruction(Fitted.of(model), code)
    finally:
        torch.set_num_threads(threads)
    assert np.abs(one - two).max() < 1e-12
    np.testing.assert_array_equal(np.rint(one), np.rint(two))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_gpu_models_lossless_stream_decodes_on_the_cpu(images: np.ndarray, tmp_path: Any) -> None:
    """The check that found version 4 needed: fitted and compressed on a GPU (bfloat16 autocast), read
    back on the CPU from the saved file."""
    gpu = Autoencoder(6, random_state=0, pixel_model="net", **{**QUANTIZED, "device": "cuda"}).fit(images)
    x = images[:50].astype(np.uint8)
    data = gpu.compress(x, lossless=True)
    gpu.save(tmp_path / "gpu.safetensors")
    np.testing.assert_array_equal(load(tmp_path / "gpu.safetensors").decompress(data), x)
    np.testing.assert_array_equal(gpu.decompress(data), x)


def test_corrupt_or_foreign_version_4_streams_are_refused(
    model: Autoencoder, images: np.ndarray, monkeypatch: Any
) -> None:
    data = model.compress(images[:1].astype(np.uint8), lossless=True)
    for pos in range(0, len(data), 3):
        with pytest.raises(BitstreamError):
            model.decompress(data[:pos] + bytes([data[pos] ^ 0x5A]) + data[pos + 1 :])
    counts = Autoencoder(6, random_state=0, **QUANTIZED)
    counts.fit(images)
    assert isinstance(counts.lossless_tables_, PixelModel)
    with pytest.raises(WrongModelError):
        counts.decompress(data)
    with pytest.raises(WrongModelError):
        model.decompress(counts.compress(images[:1].astype(np.uint8), lossless=True))
    with pytest.raises(WrongModelError, match="pixel network"):  # a version-2 stream's pixels, to a pixel network
        codec._decode_pixels(Fitted.of(model), b"", np.zeros((1, 6), dtype=np.float32), model.lossless_tables_, 2)
    monkeypatch.setattr(codec, "FORMAT_VERSION", 3)
    with pytest.raises(BitstreamVersionError, match="upgrade"):
        model.decompress(data)


def test_model_file_with_a_pixel_network_is_version_4(model: Autoencoder, images: np.ndarray, tmp_path: Any) -> None:
    model.save(tmp_path / "m.safetensors")
    with safe_open(str(tmp_path / "m.safetensors"), "pt") as fh:
        assert fh.metadata()["format_version"] == "4"  # 24-bit frequencies: its exp table is 288 long
        assert fh.get_tensor("pixelnet.exp").shape == (288,)
        names = set(fh.keys())
    assert {"pixelnet.w0", "pixelnet.b2", "pixelnet.exp"} <= names and "pixels.bins" not in names
    x = images[:5].astype(np.uint8)
    again = load(tmp_path / "m.safetensors")
    assert again.fingerprint_ == model.fingerprint_
    np.testing.assert_array_equal(again.decompress(model.compress(x, lossless=True)), x)


def test_bad_pixel_networks_are_refused(model: Autoencoder, tmp_path: Any) -> None:
    model.save(tmp_path / "m.safetensors")

    def missing_bias(t: dict[str, torch.Tensor], meta: dict[str, str]) -> None:
        del t["pixelnet.b1"]

    def wide_input(t: dict[str, torch.Tensor], meta: dict[str, str]) -> None:
        t["pixelnet.w0"] = torch.zeros((t["pixelnet.w0"].shape[0], N_INPUTS + 1), dtype=torch.int32)

    def float_weights(t: dict[str, torch.Tensor], meta: dict[str, str]) -> None:
        t["pixelnet.w1"] = t["pixelnet.w1"].float()

    def rising_exp(t: dict[str, torch.Tensor], meta: dict[str, str]) -> None:
        t["pixelnet.exp"] = t["pixelnet.exp"].flip(0).contiguous()

    def both(t: dict[str, torch.Tensor], meta: dict[str, str]) -> None:
        t["lossless.cdf"] = t["entropy.cdf"]

    cases = (
        (missing_bias, "pixelnet.b1"),
        (wide_input, "layer 0"),
        (float_weights, "I32"),
        (rising_exp, "exp"),
        (both, "both"),
    )
    for change, match in cases:
        _rewrite(tmp_path / "m.safetensors", tmp_path / "bad.safetensors", change)
        with pytest.raises(ModelFileError, match=match):
            load(tmp_path / "bad.safetensors")


def test_fit_pixel_model_gives_a_counted_model_a_network(images: np.ndarray) -> None:
    ae = Autoencoder(6, random_state=0, **QUANTIZED).fit(images)
    before = ae.fingerprint_
    with pytest.raises(ConfigError, match="pixel_model='net'"):
        ae.fit_pixel_model(images.astype(np.uint8), steps=50)  # options of a network, for counted tables
    ae.set_params(pixel_model="net")
    ae.fit_pixel_model(images.astype(np.uint8), steps=50)
    assert isinstance(ae.lossless_tables_, PixelNet) and ae.fingerprint_ != before
    x = images[:4].astype(np.uint8)
    np.testing.assert_array_equal(ae.decompress(ae.compress(x, lossless=True)), x)


@pytest.mark.parametrize(
    ("bits", "version", "golden"),
    [
        (16, 3, "89490350020fde7e042de9c60209916600316881096c62"),
        (24, 4, "89490450020fa29a043471d402b7db74000e034f09dc26"),
    ],
)
def test_golden_bytes(bits: int, version: int, golden: str) -> None:
    """Pins lossless pixel payloads and their container: a network's 16-bit frequencies in a version-3
    stream (as written before version 4), its 24-bit ones in a version-4 stream. A change must be made
    on purpose."""

    def fixed(*shape: int) -> np.ndarray:  # no random generator: its stream may change with numpy
        return (np.arange(np.prod(shape)).reshape(shape) * 7919) % 1001 - 500

    net = PixelNet((fixed(4, N_INPUTS), fixed(256, 4)), (fixed(4) * 64, fixed(256) * 64), exp_table(bits))
    x = np.array([[[0, 0, 9], [200, 255, 3]], [[1, 2, 3], [4, 5, 6]]])
    recon = np.array([[[0, 3, 9], [180, 250, 0]], [[0, 0, 0], [9, 9, 9]]])
    payload = encode_pixels(x, recon, net, tag=0xABCDE)
    data = codec.write_stream(
        payload, dtype=np.uint8, shape=(2, 2, 3), sample_shape=(2, 3), lossless=True, version=version
    )
    assert data.hex() == golden
    header, back = codec.read_stream(data, sample_shape=(2, 3))
    assert header == codec.Header(np.dtype(np.uint8), (2, 2, 3), 2, True, version)
    np.testing.assert_array_equal(decode_pixels(back, recon, net, tag=0xABCDE), x)


def test_cli_trains_a_pixel_network_and_codes_exactly(tmp_path: Any) -> None:
    from isthmus.cli import main

    m = str(tmp_path / "m.safetensors")
    settings = ("pixel_model=net", "max_iter=3", "n_components=4", "hidden_layer_sizes=[16]", "verbose=0")
    args = ["train", "digits[:200]", "-o", m, "--preset", "compress"]
    assert main([*args, *(a for s in settings for a in ("--set", s))]) == 0
    assert isinstance(load(m).lossless_tables_, PixelNet)
    x = load_digits_uint8()[:6].reshape(6, 1, 8, 8)
    np.save(tmp_path / "x.npy", x)
    assert main(["compress", m, str(tmp_path / "x.npy"), "-o", str(tmp_path / "x.isth"), "--lossless"]) == 0
    assert (tmp_path / "x.isth").read_bytes()[2] == 4
    assert main(["decompress", m, str(tmp_path / "x.isth"), "-o", str(tmp_path / "y.npy")]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), x)


def load_digits_uint8() -> np.ndarray:
    """scikit-learn's digits, (n, 64) integers 0..16 as uint8."""
    from sklearn.datasets import load_digits

    return load_digits().data.astype(np.uint8)
