"""Rate-distortion (isthmus.rd and ``isthmus rd``): real bytes, PSNR on 8-bit outputs, matched-PSNR ratios.

The images are synthetic 16x16 blobs (8-bit), the model a tiny quantized network trained for 3 epochs; the
classical codecs are restricted to a few fast ones except where a test is about the codec table.
"""

from __future__ import annotations

import csv
import io
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from isthmus import Autoencoder, rd
from isthmus.cli import cli, main
from isthmus.errors import ConfigError, DataError
from isthmus.rd import RDRow, bytes_at, classical_codecs, mosaic, rate_distortion, ratios, untile

FAST = ("png", "jpeg")


def _blobs(n: int, seed: int = 0) -> np.ndarray:
    """(n, 16, 16) uint8: one Gaussian blob per image on a dark background, with a little noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:16, 0:16]
    centre = rng.uniform(4, 12, size=(n, 2, 1, 1))
    width = rng.uniform(1.5, 3.5, size=(n, 1, 1))
    blob = np.exp(-((yy - centre[:, 0]) ** 2 + (xx - centre[:, 1]) ** 2) / (2 * width**2))
    x = 230 * blob + rng.normal(0, 4, size=blob.shape) + 10
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return _blobs(300)


@pytest.fixture(scope="module")
def model(images: np.ndarray) -> Autoencoder:
    params = {"hidden_layer_sizes": (32,), "max_iter": 3, "batch_size": 64, "verbose": 0, "device": "cpu"}
    return Autoencoder(4, bottleneck="quantized", loss="mse", lmbda=0.02, random_state=0, **params).fit(images)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, images: np.ndarray, model: Autoencoder) -> dict[str, Path]:
    """A model file, the images as .npy, float data that are not 8-bit, and a model that does not quantize."""
    folder = tmp_path_factory.mktemp("rd")
    paths = {name: folder / name for name in ("m.safetensors", "x.npy", "floats.npy", "plain.safetensors")}
    model.save(paths["m.safetensors"])
    np.save(paths["x.npy"], images[:40])
    np.save(paths["floats.npy"], images[:40].astype(np.float32) / 255.0)
    Autoencoder(4, hidden_layer_sizes=(16,), max_iter=1, verbose=0, random_state=0).fit(images).save(
        paths["plain.safetensors"]
    )
    return paths


@pytest.fixture(scope="module")
def result(model: Autoencoder, images: np.ndarray) -> rd.RateDistortion:
    return rate_distortion({"m": model}, images[:40], codecs=FAST, limit=12, lossless=True)


# ---------------------------------------------------------------------------- the API


def test_rows_cover_every_mode_model_and_setting(result: rd.RateDistortion) -> None:
    rows = result.rows
    assert all(isinstance(r, RDRow) for r in rows)
    assert {(r.mode, r.codec, r.setting) for r in rows if r.kind == "model"} == {
        (mode, "m", setting) for mode in rd.MODES for setting in ("lossy", "lossless")
    }
    available, _ = classical_codecs(FAST)
    for mode in rd.MODES:
        for codec in available.values():
            assert [r.setting for r in rows if r.mode == mode and r.codec == codec.name] == list(codec.settings)
    assert {r.n_images for r in rows if r.mode == "per_image"} == {12}
    assert {r.n_images for r in rows if r.mode == "whole_set"} == {40}
    for r in rows:
        assert r.bits_per_pixel == pytest.approx(8 * r.bytes / (r.n_images * 16 * 16))
        assert r.encode_images_per_s > 0 and r.decode_images_per_s > 0


def test_bytes_are_real_file_sizes(result: rd.RateDistortion, model: Autoencoder, images: np.ndarray) -> None:
    rows = {(r.mode, r.codec, r.setting): r for r in result.rows}
    per_image = sum(len(model.compress(images[i : i + 1])) for i in range(12))
    assert rows["per_image", "m", "lossy"].bytes == per_image
    assert rows["whole_set", "m", "lossy"].bytes == len(model.compress(images[:40]))
    assert rows["whole_set", "m", "lossless"].bytes == len(model.compress(images[:40], lossless=True))
    jpeg = classical_codecs(["jpeg"])[0]["jpeg"]
    assert rows["per_image", "jpeg", "50"].bytes == sum(len(jpeg.encode(im, "50")) for im in images[:12])
    assert rows["whole_set", "jpeg", "50"].bytes == len(jpeg.encode(mosaic(images[:40]), "50"))


def test_psnr_of_lossless_points_is_inf(result: rd.RateDistortion, model: Autoencoder, images: np.ndarray) -> None:
    exact = [r for r in result.rows if r.setting == "lossless"]
    assert exact and all(r.psnr == math.inf for r in exact)
    lossy = [r for r in result.rows if r.codec == "jpeg"]
    assert all(math.isfinite(r.psnr) and r.psnr > 10 for r in lossy)
    back = model.decompress(model.compress(images[:40]))
    row = next(r for r in result.rows if r.mode == "whole_set" and r.codec == "m" and r.setting == "lossy")
    assert row.psnr == pytest.approx(rd.psnr(images[:40], back))


def test_ratios_at_matched_psnr(result: rd.RateDistortion) -> None:
    found = {(q.mode, q.setting): q for q in ratios(result.rows)}
    assert set(found) == {(mode, s) for mode in rd.MODES for s in ("lossy", "lossless")}
    for (mode, setting), q in found.items():
        if setting == "lossless":  # only PNG is exact among png and jpeg
            png = next(r for r in result.rows if r.mode == mode and r.codec == "png")
            assert q.codec == "png" and q.codec_bytes_per_image == png.bytes_per_image
        if math.isfinite(q.codec_bytes_per_image):
            assert q.ratio == pytest.approx(q.bytes_per_image / q.codec_bytes_per_image)
        else:
            assert q.codec == "none" and math.isnan(q.ratio)


def test_bytes_at_interpolates_in_log_bytes() -> None:
    curve = [(20.0, 100.0), (30.0, 400.0), (math.inf, 1000.0)]
    assert bytes_at(curve, 25.0) == pytest.approx(200.0)  # half way in PSNR: the geometric mean
    assert bytes_at(curve, 10.0) == 100.0  # below the sweep: its smallest file
    assert bytes_at(curve, 35.0) == 1000.0  # only the lossless file gets there
    assert bytes_at(curve, math.inf) == 1000.0
    assert math.isnan(bytes_at(curve[:2], 35.0))


@pytest.mark.parametrize("shape", [(7, 5, 3), (10, 4, 6, 3)])
def test_mosaic_round_trip(shape: tuple[int, ...]) -> None:
    x = np.random.default_rng(0).integers(0, 256, size=shape, dtype=np.uint8)
    tiles = mosaic(x)
    assert tiles.ndim == x.ndim - 1 and tiles.size >= x.size
    np.testing.assert_array_equal(untile(tiles, len(x), x.shape[1:3]), x)


def test_csv_and_plot(result: rd.RateDistortion, tmp_path: Path) -> None:
    rd.write_csv(result.rows, tmp_path / "rd.csv")
    with open(tmp_path / "rd.csv", newline="") as fh:
        read = list(csv.DictReader(fh))
    assert list(read[0]) == list(RDRow._fields)
    assert len(read) == len(result.rows)
    assert [float(r["psnr"]) for r in read] == [r.psnr for r in result.rows]  # inf written as "inf"
    assert [int(r["bytes"]) for r in read] == [r.bytes for r in result.rows]
    rd.plot(result.rows, tmp_path / "rd.png")
    with Image.open(tmp_path / "rd.png") as image:
        image.load()
        assert image.format == "PNG" and image.width > image.height > 100


def test_cli_codec_names_match_the_table() -> None:
    from isthmus.cli.coding import CODEC_NAMES

    assert tuple(rd.CODECS) == CODEC_NAMES


def test_every_installed_codec_round_trips(images: np.ndarray) -> None:
    """Each codec's files decode to images of the input's shape (the codecs that are not installed are named)."""
    available, skipped = classical_codecs()
    assert set(available) | set(skipped) == set(rd.CODECS)
    assert {"png", "jpeg"} <= set(available)
    for codec in available.values():
        for setting in (codec.settings[0], codec.settings[-1]):
            data = codec.encode(images[0], setting)
            back = codec.decode(data, True)
            assert back.shape == images[0].shape and back.dtype == np.uint8
            if setting == "lossless":
                np.testing.assert_array_equal(back, images[0])


def test_codec_without_imagecodecs_is_skipped(monkeypatch: pytest.MonkeyPatch, images: np.ndarray) -> None:
    monkeypatch.setitem(sys.modules, "imagecodecs", None)  # import imagecodecs now raises ImportError
    found = rate_distortion({}, images[:5], codecs=["png", "jpegxl"], modes=["per_image"])
    assert "imagecodecs" in found.skipped["jpegxl"]
    assert {r.codec for r in found.rows} == {"png"}


def test_failing_codec_is_skipped_not_fatal(monkeypatch: pytest.MonkeyPatch, images: np.ndarray) -> None:
    def broken(image: np.ndarray, setting: str) -> bytes:
        raise OSError("encoder refuses this size")

    jpeg = classical_codecs(["jpeg"])[0]["jpeg"]
    monkeypatch.setitem(rd.CODECS, "jpeg", lambda: jpeg._replace(encode=broken))
    found = rate_distortion({}, images[:5], codecs=["png", "jpeg"])
    assert {r.codec for r in found.rows} == {"png"}
    assert "encoder refuses this size" in found.skipped["jpeg (per_image)"]


def test_bad_inputs_raise_the_library_errors(model: Autoencoder, images: np.ndarray) -> None:
    with pytest.raises(DataError, match=r"integers 0\.\.255"):
        rate_distortion({}, images[:5] / 255.0, codecs=FAST)
    with pytest.raises(DataError, match="images"):
        rate_distortion({}, images[:5].reshape(5, -1), codecs=FAST)
    with pytest.raises(DataError, match="shape"):
        rate_distortion({"m": model}, images[:5, :8, :8], codecs=FAST)
    with pytest.raises(ConfigError, match="unknown codec"):
        rate_distortion({}, images[:5], codecs=["gif"])
    with pytest.raises(ConfigError, match="modes"):
        rate_distortion({}, images[:5], modes=["all"])
    flat = rate_distortion({"m": model}, images[:5].reshape(5, -1), codecs=["png"], modes=["whole_set"])
    assert {r.codec for r in flat.rows} == {"m", "png"}  # flat rows take the model's image shape


# ---------------------------------------------------------------------------- the command


def test_cli_writes_csv_plot_and_prints_ratios(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    argv = ["rd", files["m.safetensors"], files["x.npy"], "-o", out, "--limit", "6", "--codec", "png", "--codec",
            "jpeg"]  # fmt: skip
    assert main([str(a) for a in argv]) == 0
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    assert len(lines) == 2  # one model, two modes
    assert all(" m (lossy): " in line and "ratio" in line and "images/s" in line for line in lines)
    assert "wrote" in captured.err
    with open(out / "rd.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["codec"] for r in rows} == {"m", "png", "jpeg"}
    with Image.open(io.BytesIO((out / "rd.png").read_bytes())) as image:
        image.load()
    # an existing output is kept without --overwrite
    assert main([str(a) for a in argv]) == 1
    assert "--overwrite" in capsys.readouterr().err


def test_cli_notes_a_missing_codec(
    files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(rd.CODECS, "jpeg", lambda: "this Pillow was built without JPEG")
    argv = ["rd", files["m.safetensors"], files["x.npy"], "-o", tmp_path, "--mode", "whole_set", "--codec", "png",
            "--codec", "jpeg"]  # fmt: skip
    assert main([str(a) for a in argv]) == 0
    err = capsys.readouterr().err
    assert "note: jpeg skipped: this Pillow was built without JPEG" in err


@pytest.mark.parametrize(
    ("model_name", "data_name", "message"),
    [
        ("m.safetensors", "floats.npy", "integers 0..255"),
        ("plain.safetensors", "x.npy", "bottleneck='quantized'"),
        ("m.safetensors", "missing.npy", "missing.npy"),
    ],
)
def test_cli_bad_input_is_one_error_line(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], model_name: str, data_name: str,
    message: str,
) -> None:  # fmt: skip
    folder = files["x.npy"].parent
    argv = ["rd", str(folder / model_name), str(folder / data_name), "-o", str(tmp_path / "out"), "--codec", "png"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    assert message in err
    result = CliRunner().invoke(cli, argv)
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert not (tmp_path / "out").exists()


def test_cli_usage_errors_exit_2(files: dict[str, Path], tmp_path: Path) -> None:
    base = ["rd", str(files["m.safetensors"]), str(files["x.npy"])]
    assert CliRunner().invoke(cli, [*base, "-o", str(tmp_path), "--codec", "gif"]).exit_code == 2
    assert CliRunner().invoke(cli, base).exit_code == 2  # no -o
