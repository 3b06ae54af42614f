"""Image sizes: a model of fixed input size refuses samples of another size, naming both sizes, and never
reshapes a batch into samples it does not hold; single image files are read (and resized) like folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from conftest import fit_quantized
from isthmus import Autoencoder
from isthmus.cli import cli
from isthmus.data import read_data
from isthmus.errors import ConfigError, DataError
from isthmus.shapes import same_sample, samples_in


@pytest.fixture(scope="module")
def model8(digits: np.ndarray) -> Autoencoder:
    """A quantized model of fixed 8x8 grayscale input, (1, 8, 8) samples, 8-bit training data."""
    return fit_quantized(digits[:400] * 15)


def _png(path: Path, height: int, width: int, seed: int = 0) -> Path:
    pixels = np.random.default_rng(seed).integers(0, 256, size=(height, width), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def test_an_image_of_another_size_with_as_many_values_is_refused_naming_both_sizes(model8: Autoencoder) -> None:
    # 16x4 holds 64 values, as 8x8 does: the old check (equal totals) took it for an 8x8 image
    odd = np.zeros((1, 1, 16, 4), np.float32)
    for call in (model8.transform, model8.reconstruct, model8.compress):
        with pytest.raises(DataError, match=r"4x16 images.*fixed input size: 8x8 images"):
            call(odd)


def test_a_larger_image_is_never_split_into_samples(model8: Autoencoder) -> None:
    # a 16x16 image holds four 8x8 images' worth of values; compress coded it as 4 samples before
    big = np.zeros((1, 1, 16, 16), np.uint8)
    with pytest.raises(DataError, match=r"16x16 images.*fixed input size: 8x8 images"):
        model8.compress(big)
    with pytest.raises(DataError, match=r"16x16 images.*8x8 images"):
        model8.compress(big[0, 0])  # one image without its axes


def test_the_forms_of_samples_a_fixed_model_takes(model8: Autoencoder, digits: np.ndarray) -> None:
    x = (digits[:3] * 15).astype(np.uint8)  # (3, 1, 8, 8)
    expected = model8.decompress(model8.compress(x))
    for same in (x[:, 0], x.reshape(3, 64), x.reshape(1, 3, 1, 8, 8)):  # no channel axis, flat rows, two batch axes
        assert np.array_equal(model8.decompress(model8.compress(same)).reshape(3, 1, 8, 8), expected)
    assert samples_in((5, 1, 8, 8), (8, 8)) == 5
    assert samples_in((8, 8), (1, 8, 8)) == 1
    assert not same_sample((3, 8, 8), (1, 8, 8))
    assert same_sample((784,), (28, 28)) and same_sample((28, 28), (784,))


def test_cli_compress_of_a_larger_image_file_names_both_sizes(model8: Autoencoder, tmp_path: Path) -> None:
    model = tmp_path / "m.safetensors"
    model8.save(model)
    image = _png(tmp_path / "big.png", 16, 16)
    result = CliRunner().invoke(cli, ["compress", str(model), str(image), "-o", str(tmp_path / "a.isth")])
    assert result.exit_code == 1, result.output
    assert result.output.startswith("error: ") and "16x16" in result.output and "8x8" in result.output
    assert not (tmp_path / "a.isth").exists()
    # --image-size is honoured for a single file: resized to the model's size, it is one sample
    ok = CliRunner().invoke(
        cli, ["compress", str(model), str(image), "-o", str(tmp_path / "b.isth"), "--image-size", "8x8"]
    )
    assert ok.exit_code == 0, ok.output
    assert "1 samples" in ok.output


def test_cli_compress_of_a_folder_of_larger_images_names_both_sizes(model8: Autoencoder, tmp_path: Path) -> None:
    model = tmp_path / "m.safetensors"
    model8.save(model)
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(2):
        _png(folder / f"{i}.png", 16, 16, seed=i)
    for command in ("compress", "reconstruct"):
        out = tmp_path / f"{command}.npy"
        result = CliRunner().invoke(cli, [command, str(model), str(folder), "-o", str(out)])
        assert result.exit_code == 1, result.output
        assert "16x16" in result.output and "8x8" in result.output, result.output


def test_a_single_image_file_is_read_and_resized(tmp_path: Path) -> None:
    image = _png(tmp_path / "one.png", 5, 7)
    data = read_data(image)
    assert data.X.shape == (1, 1, 5, 7)
    assert read_data(image, image_size=(4, 3)).X.shape == (1, 1, 3, 4)  # (width, height)


def test_an_image_size_is_refused_for_data_that_are_not_images(tmp_path: Path) -> None:
    path = tmp_path / "x.npy"
    np.save(path, np.zeros((3, 4), np.float32))
    with pytest.raises(ConfigError, match=r"x\.npy is a npy file, which is not resized"):
        read_data(path, image_size=(2, 2))
    with pytest.raises(ConfigError, match="built-in dataset"):
        read_data("digits[:10]", image_size=(2, 2))


def test_colour_images_are_never_read_as_several_grey_ones(model8: Autoencoder) -> None:
    with pytest.raises(DataError, match="8x8 images"):
        model8.compress(np.zeros((1, 3, 8, 8), np.uint8))  # before: three grey 8x8 samples


def test_which_arrays_hold_images_of_any_size() -> None:
    from isthmus.shapes import spatial_samples

    colour = (3, 64, 64)
    assert spatial_samples((1, 3, 160, 296), colour) == (1, (3, 160, 296))
    assert spatial_samples((3, 160, 296), colour) == (1, (3, 160, 296))
    assert spatial_samples((2, 5, 3, 7, 9), colour) == (10, (3, 7, 9))
    grey = (1, 32, 32)
    assert spatial_samples((4, 1, 40, 56), grey) == (4, (40, 56))
    assert spatial_samples((40, 56), grey) == (1, (40, 56))
    for shape, sample in (((1, 4, 160, 296), colour), ((160, 296), colour), ((1, 3, 40, 56), grey), ((0, 8), grey)):
        with pytest.raises(DataError, match="does not hold images"):
            spatial_samples(shape, sample)
