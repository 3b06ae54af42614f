"""Fully convolutional models: trained on random crops of images of any sizes, applied to any size.

The model is trained once per module, on 24 smooth synthetic images of sizes 32 to 64 pixels a side, in
32x32 crops (stride 4: a code map of 4 channels, one position per 4x4 pixels). Images it is applied to
are of other sizes, not multiples of the stride among them, so padding and cropping back are exercised.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from sklearn.exceptions import ConvergenceWarning

import isthmus
from isthmus import Autoencoder, codec
from isthmus.cli import cli
from isthmus.crops import CropSource, as_images
from isthmus.errors import ConfigError, DataError

FC: dict[str, object] = {
    "architecture": "conv",
    "hidden_layer_sizes": (8, 16),
    "fully_convolutional": True,
    "crop_size": 32,
    "bottleneck": "quantized",
    "loss": "mse",
    "lmbda": 0.01,
    "max_iter": 20,
    "batch_size": 16,
    "learning_rate": 3e-3,
    "verbose": 0,
    "random_state": 0,
}


def smooth(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A smooth 8-bit image (height, width): two plane waves of random frequencies, float32 0..255."""
    yy, xx = np.mgrid[0:height, 0:width]
    f = rng.uniform(0.05, 0.25, 4)
    v = 128 + 55 * np.sin(f[0] * yy + f[1] * xx) + 55 * np.cos(f[2] * yy - f[3] * xx)
    return np.clip(v, 0, 255).round().astype(np.float32)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255.0**2 / np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)))


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [smooth(rng, int(rng.integers(32, 65)), int(rng.integers(32, 65)))[None] for _ in range(24)]


@pytest.fixture(scope="module")
def model(images: list[np.ndarray]) -> Autoencoder:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return Autoencoder(4, **FC).fit(images)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """A held-out 40x56 image, (1, 1, 40, 56) uint8: neither the crop's size nor the training images'."""
    return smooth(np.random.default_rng(5), 40, 56).astype(np.uint8)[None, None]


def _baseline(x: np.ndarray) -> float:
    """PSNR of the image's own mean: what a model that learned nothing would reach."""
    return psnr(np.full(x.shape, x.mean()), x)


def test_compress_decompress_a_40x56_image_of_a_model_trained_on_32x32_crops(
    model: Autoencoder, photo: np.ndarray
) -> None:
    assert model.input_shape_ == (1, 32, 32)
    stream = model.compress(photo)
    out = model.decompress(stream)
    assert out.shape == (1, 1, 40, 56) and out.dtype == np.uint8
    assert psnr(out, photo) > _baseline(photo) + 5.0  # 21.6 dB against 13.4 dB when written
    assert len(stream) < photo.size / 4  # under 2 bits per pixel
    # the stream decodes to the reconstruction of the rounded code map, cut back to 40x56
    code = model.transform(photo)
    assert code.shape == (1, 4, 10, 14)  # one position per 4x4 pixels
    expected = model.inverse_transform(np.rint(code))[..., :40, :56]
    np.testing.assert_array_equal(out, np.clip(np.rint(expected), 0, 255).astype(np.uint8))


def test_reconstruct_and_denoise_keep_any_size(model: Autoencoder) -> None:
    rng = np.random.default_rng(7)
    for height, width in ((40, 56), (37, 29), (20, 24), (64, 33)):  # odd sizes, and smaller than the crop
        x = np.stack([smooth(rng, height, width) for _ in range(2)])  # (2, height, width): no channel axis
        for method in (model.reconstruct, model.denoise):
            out = method(x)
            assert out.shape == x.shape
            assert psnr(out, x) > _baseline(x) + 3.0
    with_channel = smooth(rng, 37, 29)[None, None]
    assert model.reconstruct(with_channel).shape == (1, 1, 37, 29)
    assert model.reconstruction_error(with_channel, per_feature=True).shape == (1, 1, 37, 29)


def test_interpolate_and_score_any_size(model: Autoencoder) -> None:
    rng = np.random.default_rng(11)
    a, b = (smooth(rng, 37, 29)[None, None] for _ in range(2))
    path = model.interpolate(a, b, steps=3)
    assert path.shape == (1, 3, 1, 37, 29)
    np.testing.assert_allclose(path[0, 0], model.reconstruct(a)[0], atol=1e-3)
    np.testing.assert_allclose(path[0, -1], model.reconstruct(b)[0], atol=1e-3)
    scores = model.score_samples(np.concatenate([a, 255 - a]))
    assert scores.shape == (2,) and np.all(np.isfinite(scores))


def test_scores_of_any_size_are_on_the_scale_of_the_training_crops(model: Autoencoder) -> None:
    """offset_ is set on 32x32 crops: a larger image like the training ones must not score as an anomaly
    because it has more pixels to sum errors over."""
    rng = np.random.default_rng(17)
    mean_score = {}
    for side in (32, 64, 128):
        x = np.stack([smooth(rng, side, side)[None] for _ in range(6)])  # (6, 1, side, side)
        mean_score[side] = float(model.score_samples(x).mean())
        assert np.mean(model.predict(x) == 1) >= 0.5, side
    for side in (64, 128):  # a sum over 4 or 16 times the pixels, were it not per crop
        assert 0.5 < mean_score[side] / mean_score[32] < 2.0, mean_score
    odd = np.stack([smooth(rng, 37, 29)[None] for _ in range(2)])
    parts = model.score_contributions(odd)
    assert parts.shape == odd.shape
    np.testing.assert_allclose(parts.reshape(2, -1).sum(axis=1), -model.score_samples(odd), rtol=1e-6)


def test_early_stopping_holds_out_whole_images(images: list[np.ndarray]) -> None:
    settings_ = {**FC, "max_iter": 2, "early_stopping": True, "validation_fraction": 0.25}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ae = Autoencoder(4, **settings_).fit(images)  # type: ignore[arg-type]
    assert "val_loss" in ae.history_[-1]


def test_a_list_of_images_of_their_own_sizes_is_one_stream(model: Autoencoder, photo: np.ndarray) -> None:
    other = smooth(np.random.default_rng(9), 33, 47).astype(np.uint8)  # (33, 47)
    stream = model.compress([photo[0], other])
    out = model.decompress(stream)
    assert isinstance(out, list) and [a.shape for a in out] == [(1, 40, 56), (33, 47)]
    np.testing.assert_array_equal(out[0], model.decompress(model.compress(photo))[0])
    np.testing.assert_array_equal(out[1], model.decompress(model.compress(other)))


def test_a_saved_model_decodes_the_same_stream(model: Autoencoder, photo: np.ndarray, tmp_path: Path) -> None:
    path = tmp_path / "fc.safetensors"
    model.save(path)
    loaded = isthmus.load(path)
    assert loaded.fully_convolutional and loaded.crop_size == 32
    stream = model.compress(photo)
    assert loaded.compress(photo) == stream
    np.testing.assert_array_equal(loaded.decompress(stream), model.decompress(stream))


def test_streams_of_the_two_kinds_of_model_do_not_mix(
    model: Autoencoder, photo: np.ndarray, digits: np.ndarray
) -> None:
    from conftest import fit_quantized

    fixed = fit_quantized(digits[:200] * 15)
    with pytest.raises(codec.WrongModelError, match="fully convolutional"):
        fixed.decompress(model.compress(photo))
    with pytest.raises(codec.WrongModelError, match="fixed input size"):
        model.decompress(fixed.compress((digits[:2] * 15).astype(np.uint8)))


def test_what_a_fully_convolutional_model_refuses(model: Autoencoder, photo: np.ndarray) -> None:
    with pytest.raises(DataError, match=r"\(height, width\)"):
        model.compress(np.zeros((1, 3, 40, 56), np.uint8))  # three channels for a grayscale model
    with pytest.raises(ConfigError, match="lossless"):
        model.compress(photo, lossless=True)
    with pytest.raises(ConfigError, match="search"):
        model.compress(photo, search=1)


def test_settings_that_contradict_each_other_are_refused() -> None:
    with pytest.raises(ConfigError, match="fully_convolutional=True"):
        Autoencoder(crop_size=32).fit(np.zeros((4, 1, 32, 32)))
    with pytest.raises(ConfigError, match="architecture='mlp'"):
        Autoencoder(fully_convolutional=True).fit(np.zeros((4, 1, 32, 32)))
    with pytest.raises(ConfigError, match="penalty='l1'"):
        Autoencoder(architecture="conv", fully_convolutional=True, penalty="l1").fit(np.zeros((4, 1, 8, 8)))
    with pytest.raises(ConfigError, match="bottleneck='gaussian'"):
        Autoencoder(architecture="conv", fully_convolutional=True, bottleneck="gaussian").fit(np.zeros((4, 1, 8, 8)))


def test_crops_of_a_streamed_source_are_refused(tmp_path: Path) -> None:
    from isthmus.data import open_rows

    path = tmp_path / "x.npy"
    np.save(path, np.zeros((4, 1, 40, 40), np.float32))
    with pytest.raises(ConfigError, match="drop --stream"):
        Autoencoder(4, **FC).fit(open_rows(path))  # type: ignore[arg-type]


def test_an_image_smaller_than_the_crop_is_refused_naming_its_size() -> None:
    images = [np.zeros((1, 40, 40), np.float32), np.zeros((1, 20, 50), np.float32)]
    with pytest.raises(DataError, match=r"image 1 is 50x20 pixels, smaller than crop_size=32"):
        Autoencoder(4, architecture="conv", fully_convolutional=True, crop_size=32, verbose=0).fit(images)


def test_crops_cover_each_image_by_its_area_and_are_drawn_afresh() -> None:
    images = [torch.arange(64 * 64, dtype=torch.float32).reshape(1, 64, 64), torch.zeros(1, 32, 48)]
    source = CropSource(images, 32)
    assert len(source) == 4 + 2  # one crop per 32x32 pixels of each image, rounded
    from isthmus.batches import Shard

    g = torch.Generator().manual_seed(0)
    first = torch.cat(list(source.shuffled(g, 4, Shard())))
    second = torch.cat(list(source.shuffled(g, 4, Shard())))
    assert first.shape == (6, 1, 32, 32)
    assert not torch.equal(first, second)  # new positions every epoch
    fixed = [torch.cat(list(source.ordered(4, Shard()))) for _ in range(2)]
    assert torch.equal(fixed[0], fixed[1])  # validation crops stay put
    # a crop of the first image is a contiguous window of it: rows 64 apart, columns 1 apart
    crop = next(c for c in first if c.sum() > 0)[0]
    assert torch.equal(crop[1:] - crop[:-1], torch.full((31, 32), 64.0))
    assert torch.equal(crop[:, 1:] - crop[:, :-1], torch.ones(32, 31))


def test_as_images_takes_arrays_and_lists() -> None:
    assert [a.shape for a in as_images(np.zeros((2, 5, 6)))] == [(1, 5, 6), (1, 5, 6)]
    assert [a.shape for a in as_images([np.zeros((5, 6)), np.zeros((1, 7, 8))])] == [(1, 5, 6), (1, 7, 8)]
    with pytest.raises(DataError, match="same number of channels"):
        as_images([np.zeros((1, 5, 6)), np.zeros((3, 5, 6))])


def test_cli_trains_on_crops_of_a_folder_of_mixed_sizes_and_round_trips_it(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(6):
        Image.fromarray(smooth(rng, int(rng.integers(32, 50)), int(rng.integers(32, 50))).astype(np.uint8)).save(
            photos / f"{i}.png"
        )
    model = tmp_path / "m.safetensors"
    settings_ = ["architecture=conv", "fully_convolutional=true", "hidden_layer_sizes=8,16", "n_components=4"]
    settings_ += ["bottleneck=quantized", "loss=mse", "max_iter=2", "verbose=0", "random_state=0"]
    args = ["train", str(photos), "-o", str(model), "--crop", "32"]
    refused = CliRunner().invoke(cli, args)
    assert refused.exit_code == 1 and "fully_convolutional=True" in refused.output
    trained = CliRunner().invoke(cli, [*args, *(a for s in settings_ for a in ("--set", s))])
    assert trained.exit_code == 0, trained.output
    stream = tmp_path / "all.isth"
    assert CliRunner().invoke(cli, ["compress", str(model), str(photos), "-o", str(stream)]).exit_code == 0
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["decompress", str(model), str(stream), "-o", str(out)])
    assert result.exit_code == 0, result.output
    for i in range(6):
        with Image.open(photos / f"{i}.png") as a, Image.open(out / f"{i:05d}.png") as b:
            assert a.size == b.size
    npy = CliRunner().invoke(cli, ["decompress", str(model), str(stream), "-o", str(tmp_path / "x.npy")])
    assert npy.exit_code == 1 and "give a folder" in npy.output


def _mixed_folder(tmp_path: Path) -> tuple[Path, list[np.ndarray]]:
    """Three 8-bit PNGs of three sizes, none the crop's, and their pixels (height, width) in sorted name order."""
    rng = np.random.default_rng(13)
    folder = tmp_path / "mixed"
    folder.mkdir()
    pixels = [smooth(rng, h, w).astype(np.uint8) for h, w in ((40, 56), (37, 29), (20, 24))]
    for name, image in zip("abc", pixels, strict=True):
        Image.fromarray(image).save(folder / f"{name}.png")
    return folder, pixels


def _one_error_line(result: object, *needles: str) -> None:
    output = result.output.strip()  # type: ignore[attr-defined]
    assert result.exit_code == 1, output  # type: ignore[attr-defined]
    assert output.startswith("error: ") and "\n" not in output and "Traceback" not in output, output
    for needle in needles:
        assert needle in output, (needle, output)


def test_cli_maps_a_folder_of_mixed_sizes_one_image_at_a_time(model: Autoencoder, tmp_path: Path) -> None:
    folder, pixels = _mixed_folder(tmp_path)
    path = tmp_path / "fc.safetensors"
    model.save(path)
    for command in ("reconstruct", "denoise"):
        out = tmp_path / command
        result = CliRunner().invoke(cli, [command, str(path), str(folder), "-o", str(out)])
        assert result.exit_code == 0, result.output
        assert sorted(p.name for p in out.iterdir()) == ["00000.png", "00001.png", "00002.png"]
        for i, image in enumerate(pixels):
            with Image.open(out / f"{i:05d}.png") as written:
                got = np.asarray(written)
            assert got.shape == image.shape  # each image at its own size
            expected = np.clip(np.rint(model.reconstruct(image[None, None].astype(np.float32))[0, 0]), 0, 255)
            np.testing.assert_array_equal(got, expected)  # the model's own reconstruction of that image
            assert psnr(got, image) > _baseline(image) + 3.0
    model_, data = str(path), str(folder)
    array_file = CliRunner().invoke(cli, ["reconstruct", model_, data, "-o", str(tmp_path / "x.npy")])
    _one_error_line(array_file, "differ in size", "give a folder")
    one_png = CliRunner().invoke(cli, ["denoise", model_, data, "-o", str(tmp_path / "x.png")])
    _one_error_line(one_png, "give a folder")
    streamed = CliRunner().invoke(cli, ["reconstruct", model_, data, "-o", str(tmp_path / "s.npy"), "--stream"])
    _one_error_line(streamed, "3 sizes", "--stream")
    codes = CliRunner().invoke(cli, ["encode", model_, data, "-o", str(tmp_path / "codes.npy")])
    _one_error_line(codes, "a.png is 56x40", "code", "--image-size")
    scores = CliRunner().invoke(cli, ["score", model_, data, "-o", str(tmp_path / "scores.csv")])
    assert scores.exit_code == 0, scores.output
    table = np.loadtxt(tmp_path / "scores.csv", delimiter=",", skiprows=1)  # (3, 2): score, flag
    expected = [model.score_samples(image[None, None].astype(np.float32))[0] for image in pixels]
    np.testing.assert_allclose(table[:, 0], expected, rtol=1e-5)
    explained = CliRunner().invoke(cli, ["score", model_, data, "-o", str(tmp_path / "e.csv"), "--explain", "2"])
    _one_error_line(explained, "3 sizes", "--explain", "--image-size")
    resized = CliRunner().invoke(
        cli, ["reconstruct", model_, data, "-o", str(tmp_path / "r.npy"), "--image-size", "32x24"]
    )
    assert resized.exit_code == 0, resized.output
    assert np.load(tmp_path / "r.npy").shape == (3, 1, 24, 32)
    stream = tmp_path / "all.isth"
    assert CliRunner().invoke(cli, ["compress", model_, data, "-o", str(stream)]).exit_code == 0
    decoded = CliRunner().invoke(cli, ["decompress", model_, str(stream), "-o", str(tmp_path / "decoded")])
    assert decoded.exit_code == 0, decoded.output
    for i, image in enumerate(pixels):
        with Image.open(tmp_path / "decoded" / f"{i:05d}.png") as written:
            assert np.asarray(written).shape == image.shape


def test_cli_refuses_a_folder_of_mixed_sizes_for_a_fixed_size_model(tmp_path: Path) -> None:
    folder, _ = _mixed_folder(tmp_path)
    rng = np.random.default_rng(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # one epoch: what it learned does not matter here, only its input size
        fixed = Autoencoder(2, hidden_layer_sizes=(8,), max_iter=1, verbose=0, random_state=0)
        fixed.fit(np.stack([smooth(rng, 12, 16)[None] for _ in range(40)]))  # (40, 1, 12, 16)
    path = tmp_path / "fixed.safetensors"
    fixed.save(path)
    for command in ("reconstruct", "denoise", "encode", "compress", "score", "interpolate"):
        out = tmp_path / f"{command}.npy"
        result = CliRunner().invoke(cli, [command, str(path), str(folder), "-o", str(out)])
        _one_error_line(result, "3 sizes", "a.png is 56x40", "fixed input size", "--image-size 16x12", "--crop")
        assert not out.exists()
    resized = CliRunner().invoke(
        cli, ["reconstruct", str(path), str(folder), "-o", str(tmp_path / "r"), "--image-size", "16x12"]
    )
    assert resized.exit_code == 0, resized.output
    assert len(list((tmp_path / "r").iterdir())) == 3


# ------------------------------------------------------------------------------ the version-5 stream


def test_golden_bytes() -> None:
    """Pins the version-5 container: a change must be made on purpose, with docs/format.md, section 4.9."""
    data = codec.write_spatial_stream(b"\x01\x02\x03", dtype=np.uint8, arrays=[(1, 40, 56), (33, 47)], listed=True)
    # magic, version 5, layout (form 1: a list; uint8), 2 arrays: (3 dims: 1 40 56), (2 dims: 33 47),
    # payload length 3, payload, CRC-16
    assert data.hex() == "89490510020301283802212f03010203a1a8"
    header, payload = codec.read_stream(data, sample_shape=(1, 32, 32))
    assert payload == b"\x01\x02\x03"
    assert header.arrays == ((1, 40, 56), (33, 47)) and header.listed and header.n_samples == 2


_SHAPES = st.lists(
    st.tuples(st.integers(1, 3), st.integers(1, 300), st.integers(1, 300)).map(
        lambda t: (t[0], 1, t[1], t[2]) if t[0] > 1 else (t[1], t[2])
    ),
    min_size=1,
    max_size=4,
)
FUZZ = settings(deadline=None, suppress_health_check=list(HealthCheck), database=None, max_examples=200)


@FUZZ
@given(shapes=_SHAPES, listed=st.booleans(), code=st.integers(0, len(codec.DTYPES) - 1), payload=st.binary(max_size=40))
def test_spatial_container_round_trip(shapes: list[tuple[int, ...]], listed: bool, code: int, payload: bytes) -> None:
    arrays = shapes if listed else shapes[:1]
    data = codec.write_spatial_stream(payload, dtype=codec.DTYPES[code], arrays=arrays, listed=listed)
    header, back = codec.read_stream(data, sample_shape=(1, 8, 8))
    assert back == payload
    assert header.arrays == tuple(arrays) and header.listed == listed and header.dtype == codec.DTYPES[code]


@FUZZ
@given(
    edit=st.one_of(
        st.tuples(st.just("flip"), st.integers(0, 10**6), st.integers(1, 255)),
        st.tuples(st.just("cut"), st.integers(0, 10**6), st.just(0)),
        st.tuples(st.just("insert"), st.integers(0, 10**6), st.integers(0, 255)),
    )
)
def test_a_corrupted_spatial_stream_raises_the_library_error(
    model: Autoencoder, photo: np.ndarray, edit: tuple[str, int, int]
) -> None:
    stream = bytearray(model.compress([photo[0], photo[0, 0, :33, :47]]))
    how, where, value = edit
    at = where % len(stream)
    if how == "flip":
        stream[at] ^= value
    elif how == "cut":
        del stream[at:]
    else:
        stream.insert(at, value)
    with pytest.raises(codec.BitstreamError):
        model.decompress(bytes(stream))


@FUZZ
@given(
    shapes=st.lists(st.lists(st.integers(0, 2**21), min_size=0, max_size=5), min_size=1, max_size=3),
    form=st.integers(0, 3),
    layout=st.integers(0, 255),
    payload=st.binary(max_size=30),
)
def test_a_forged_spatial_header_decodes_or_raises_the_library_error(
    model: Autoencoder, shapes: list[list[int]], form: int, layout: int, payload: bytes
) -> None:
    """Header fields rewritten with a correct checksum, as a forger could: never another exception."""
    fields = [len(shapes)] if form == 1 else []
    for shape in shapes if form == 1 else shapes[:1]:
        fields += [len(shape), *shape]
    body = codec.MAGIC + codec._varint(5) + bytes([(layout & 0xCF) | form << 4])
    body += b"".join(codec._varint(v) for v in fields) + codec._varint(len(payload)) + payload
    data = body + codec.crc16(body).to_bytes(2, "little")
    try:
        out = model.decompress(data)
    except isthmus.errors.IsthmusError:
        return
    assert isinstance(out, (list, np.ndarray))
