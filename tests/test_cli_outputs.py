"""What the commands write is what they say: model files named .safetensors, 8-bit outputs for 8-bit
images, a warning where a command cannot do what its name promises, and the same metrics from evaluate
and report."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits

import isthmus
from isthmus.errors import OutputError
from test_cli import fails, invoke, tiny


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """300 digits as 8-bit images (n, 1, 8, 8), values 0..240."""
    path = tmp_path_factory.mktemp("images") / "digits8.npy"
    np.save(path, (load_digits().images[:300, None] * 15).astype(np.uint8))
    return path


@pytest.fixture(scope="module")
def model8(images: Path) -> Path:
    model = images.with_name("m8.safetensors")
    invoke("train", images, "-o", model, *tiny(), "--set", "loss=mse")  # a linear output can leave 0..255
    return model


@pytest.mark.parametrize("name", ["model.pt", "model", "model.safetensors.tmp"])
def test_model_outputs_must_end_in_safetensors(capsys: pytest.CaptureFixture[str], tmp_path: Path, name: str) -> None:
    message = fails(capsys, "train", "digits[:50]", "-o", tmp_path / name, *tiny(1))
    assert ".safetensors" in message and name in message
    assert list(tmp_path.iterdir()) == []  # refused before training: no model, checkpoint or log


def test_saving_under_another_suffix_is_refused(
    capsys: pytest.CaptureFixture[str], model8: Path, tmp_path: Path
) -> None:
    assert ".safetensors" in fails(capsys, "export-encoder", model8, "-o", tmp_path / "enc.pt")
    with pytest.raises(OutputError, match=r"must end in \.safetensors"):
        isthmus.load(model8).save(tmp_path / "m.pt")
    assert list(tmp_path.iterdir()) == []


def test_denoise_warns_on_a_model_trained_without_corruption(model8: Path, images: Path, tmp_path: Path) -> None:
    result = invoke("denoise", model8, images, "-o", tmp_path / "clean.npy")
    assert "warning: this model was trained without corruption" in result.output
    with pytest.warns(UserWarning, match="without corruption"):
        isthmus.load(model8).denoise(np.load(images)[:3])


def test_denoise_of_a_denoising_model_does_not_warn(images: Path, tmp_path: Path) -> None:
    model = tmp_path / "dae.safetensors"
    invoke("train", images, "-o", model, *tiny(1), "--preset", "denoising")
    result = invoke("denoise", model, images, "-o", tmp_path / "clean.npy")
    assert "warning" not in result.output


@pytest.mark.parametrize("command", ["reconstruct", "denoise"])
def test_8bit_images_come_back_as_8bit_images(model8: Path, images: Path, tmp_path: Path, command: str) -> None:
    invoke(command, model8, images, "-o", tmp_path / "r.npy")
    out = np.load(tmp_path / "r.npy")
    raw = isthmus.load(model8).reconstruct(np.load(images))
    assert raw.min() < 0 or raw.max() > 255 or not np.array_equal(raw, np.rint(raw))  # the API's floats
    assert out.dtype == np.uint8 and out.shape == (300, 1, 8, 8)
    np.testing.assert_array_equal(out, np.clip(np.rint(raw), 0, 255))
    # a folder of PNG files, as decompress writes them
    invoke(command, model8, images, "-o", tmp_path / "pngs")
    files = sorted((tmp_path / "pngs").iterdir())
    assert [f.name for f in files[:2]] == ["00000.png", "00001.png"] and len(files) == 300
    with Image.open(files[7]) as image:
        np.testing.assert_array_equal(np.asarray(image), out[7, 0])


def test_png_output_needs_a_model_of_8bit_images(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    model = tmp_path / "f.safetensors"
    x = tmp_path / "x.npy"
    np.save(x, np.random.default_rng(0).normal(size=(40, 1, 4, 4)).astype(np.float32))
    invoke("train", x, "-o", model, *tiny(1))
    message = fails(capsys, "reconstruct", model, x, "-o", tmp_path / "pngs")
    assert "8-bit" in message and ".npy" in message
    invoke("reconstruct", model, x, "-o", tmp_path / "r.npy")
    assert np.load(tmp_path / "r.npy").dtype == np.float32  # other data keep their values


def test_evaluate_and_report_show_the_same_numbers(model8: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    data = "digits[300:500]"  # carries its labels: both commands use them without being told
    measured = json.loads(invoke("evaluate", model8, data, "--json").output)
    assert measured["classifiers"]["fit_on"] == "cross_validation"
    invoke("report", model8, data, "-o", tmp_path / "report")
    page = (tmp_path / "report" / "index.html").read_text(encoding="utf-8")
    rows = dict(re.findall(r"<tr><th>(autoencoder|PCA-\d+)</th>(.*?)</tr>", page))
    for name, label in (("autoencoder", "autoencoder"), ("pca", f"PCA-{measured['n_components']}")):
        cells = re.findall(r"<td>(.*?)</td>", rows[label])
        for key in ("knn_accuracy", "probe_accuracy", "mse", "trustworthiness"):
            assert f"{measured[name][key]:.5g}" in cells, (name, key, cells)


def test_report_is_plain_text(model8: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    invoke("report", model8, "digits[300:400]", "-o", tmp_path / "report")
    page = (tmp_path / "report" / "index.html").read_text(encoding="utf-8")
    assert "``" not in page
    assert "<code>score_samples</code>" in page  # the anomaly histogram's caption names the method
