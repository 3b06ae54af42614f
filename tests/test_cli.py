"""The command line, in process: every command end to end, resuming, and every user error.

Models are tiny (3 epochs of a 64-16-2 network on 300 digits) so the whole file runs in seconds. The
expected values come from the Python API (``isthmus.load(...).transform``) and from scikit-learn's own
copy of the digits, so the CLI is checked against the library rather than against itself.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from click.testing import CliRunner, Result
from sklearn.datasets import load_digits

import isthmus
from isthmus.cli import cli, main
from isthmus.config import PRESETS


def tiny(max_iter: int = 3) -> tuple[str, ...]:
    """Options for a model that trains in well under a second."""
    settings = (
        f"max_iter={max_iter}",
        "hidden_layer_sizes=[16]",
        "n_components=2",
        "verbose=0",
        "random_state=0",
    )
    return tuple(arg for setting in settings for arg in ("--set", setting))


TINY = tiny()
DATA = "digits[:300]"
N_COMPONENTS = 2


def invoke(*args: str | Path) -> Result:
    """Run the CLI in process and require success."""
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    assert result.exception is None, result.output
    return result


def fails(capsys: pytest.CaptureFixture[str], *args: str | Path, code: int = 1) -> str:
    """Run the CLI both through click and through ``main``; require one clean ``error:`` line."""
    argv = [str(a) for a in args]
    result = CliRunner().invoke(cli, argv)
    assert result.exit_code == code, result.output
    assert isinstance(result.exception, SystemExit), result.exception  # no unexpected exception
    assert "Traceback" not in result.output
    capsys.readouterr()
    assert main(argv) == code
    stderr = capsys.readouterr().err
    assert "Traceback" not in stderr
    if code == 1:
        assert result.output.startswith("error: "), result.output
        assert len(result.output.strip().splitlines()) == 1, result.output
        assert stderr == result.output
    return result.output


def first_digits(n: int) -> np.ndarray:
    """The first ``n`` digits as the CLI reads them: (n, 1, 8, 8) float32, values 0-16."""
    return load_digits().images[:n, np.newaxis].astype(np.float32)


def as_8bit(x: np.ndarray) -> np.ndarray:
    """What the commands write for a model of 8-bit images (the digits' 0..16 are): values rounded to 0..255."""
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def info_json(model: Path) -> dict[str, Any]:
    """What ``info --json`` says about a model file."""
    described: dict[str, Any] = json.loads(invoke("info", model, "--json").output)
    return described


def write_csv(path: Path, rows: np.ndarray, header: str) -> Path:
    """A CSV file with a header line, as users write them."""
    np.savetxt(path, rows, delimiter=",", header=header, comments="")
    return path


def read_back(path: Path) -> np.ndarray:
    """An array written by the CLI, read without the data layer."""
    if path.suffix == ".npy":
        return np.load(path)
    if path.suffix == ".csv":
        assert path.read_text().splitlines()[0] == "c0,c1"
        return np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float32, ndmin=2)
    return np.column_stack([c.to_numpy() for c in pq.read_table(path).columns])


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model trained by the CLI, with its checkpoint and log beside it; tests must not change them."""
    model = tmp_path_factory.mktemp("trained") / "model.safetensors"
    result = invoke("train", DATA, "-o", model, *TINY)
    assert "trained 3 epochs on 300 samples" in result.output
    return model


@pytest.fixture(scope="module")
def encoder(trained: Path) -> Path:
    """The encoder of ``trained`` alone, written by ``export-encoder``."""
    path = trained.with_name("encoder.safetensors")
    invoke("export-encoder", trained, "-o", path)
    return path


# ---------------------------------------------------------------------------------------- end to end


def test_train_writes_model_checkpoint_and_one_log_line_per_epoch(trained: Path) -> None:
    assert trained.stat().st_size > 0
    assert trained.with_suffix(".ckpt").stat().st_size > 0
    lines = trained.with_suffix(".log.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["epoch"] for r in records] == [1, 2, 3]
    assert all(np.isfinite(r["train_loss"]) for r in records)
    model = isthmus.load(trained)
    assert model.n_iter_ == 3
    assert model.n_components == N_COMPONENTS
    assert model.input_shape_ == (1, 8, 8)


def test_train_reports_the_convergence_warning(tmp_path: Path) -> None:
    result = invoke("train", "digits[:100]", "-o", tmp_path / "m.safetensors", *TINY)
    assert "warning: max_iter=3" in result.output


@pytest.mark.parametrize("suffix", [".npy", ".csv", ".parquet"])
def test_encode_writes_the_codes_of_transform_and_decode_reads_them(trained: Path, tmp_path: Path, suffix: str) -> None:
    codes_path = tmp_path / f"codes{suffix}"
    result = invoke("encode", trained, "digits[:40]", "-o", codes_path)
    assert f"wrote {codes_path} (40, {N_COMPONENTS})" in result.output
    model = isthmus.load(trained)
    expected = model.transform(first_digits(40))
    codes = read_back(codes_path)
    assert codes.shape == (40, N_COMPONENTS)
    np.testing.assert_array_equal(codes.astype(np.float32), expected)

    decoded_path = tmp_path / "decoded.npy"
    invoke("decode", trained, codes_path, "-o", decoded_path)
    decoded = np.load(decoded_path)
    assert decoded.shape == (40, 1, 8, 8)
    np.testing.assert_array_equal(decoded, as_8bit(model.inverse_transform(expected)))  # the digits are 8-bit


def test_reconstruct_matches_the_api(trained: Path, tmp_path: Path) -> None:
    out = tmp_path / "recon.npy"
    invoke("reconstruct", trained, "digits[:25]", "-o", out)
    recon = np.load(out)
    assert recon.shape == (25, 1, 8, 8)
    np.testing.assert_array_equal(recon, as_8bit(isthmus.load(trained).reconstruct(first_digits(25))))


def test_encode_reads_tabular_files_with_the_same_features(trained: Path, tmp_path: Path) -> None:
    x = first_digits(10).reshape(10, 64)
    data = write_csv(tmp_path / "x.csv", x, ",".join(f"p{i}" for i in range(64)))
    invoke("encode", trained, data, "-o", tmp_path / "codes.npy")
    np.testing.assert_array_equal(np.load(tmp_path / "codes.npy"), isthmus.load(trained).transform(x))


def test_evaluate_prints_a_table_beside_pca(trained: Path) -> None:
    output = invoke("evaluate", trained, "digits[:50]").output
    assert "MSE" in output and "PSNR" in output
    assert f"PCA-{N_COMPONENTS}" in output
    assert "autoencoder" in output
    assert "50 samples" in output


def test_evaluate_json_has_fixed_keys(trained: Path) -> None:
    result = json.loads(invoke("evaluate", trained, "digits[:50]", "--json").output)
    assert result["n_samples"] == 50
    assert result["n_components"] == N_COMPONENTS
    for name in ("autoencoder", "pca"):
        assert {"mse", "sse_per_sample", "psnr"} <= set(result[name])  # tests/test_metrics.py checks the rest
        metrics = result[name]
        assert metrics["sse_per_sample"] == pytest.approx(64 * metrics["mse"])
        assert metrics["psnr"] == pytest.approx(10 * np.log10(16.0**2 / metrics["mse"]))
    expected = isthmus.evaluate(isthmus.load(trained), first_digits(50))
    assert result["autoencoder"]["mse"] == pytest.approx(expected["autoencoder"]["mse"], rel=1e-5)
    assert result["pca"]["mse"] == pytest.approx(expected["pca"]["mse"], rel=1e-5)


def test_exported_encoder_encodes_like_the_full_model(trained: Path, encoder: Path, tmp_path: Path) -> None:
    invoke("encode", encoder, "digits[:30]", "-o", tmp_path / "codes.npy")
    np.testing.assert_array_equal(np.load(tmp_path / "codes.npy"), isthmus.load(trained).transform(first_digits(30)))
    described = info_json(encoder)
    assert described["encoder_only"] is True
    assert described["n_parameters"] < info_json(trained)["n_parameters"]


@pytest.mark.parametrize("command", ["decode", "reconstruct", "evaluate"])
def test_exported_encoder_cannot_decode(
    capsys: pytest.CaptureFixture[str], encoder: Path, tmp_path: Path, command: str
) -> None:
    codes = tmp_path / "codes.npy"
    np.save(codes, np.zeros((4, N_COMPONENTS), np.float32))
    data = codes if command == "decode" else "digits[:10]"
    extra = () if command == "evaluate" else ("-o", tmp_path / "out.npy")
    message = fails(capsys, command, encoder, data, *extra)
    assert "only the encoder" in message
    assert not (tmp_path / "out.npy").exists()


def test_info_describes_the_model(trained: Path) -> None:
    output = invoke("info", trained).output
    assert "n_iter: 3" in output
    assert "params:" in output
    assert f"  n_components = {N_COMPONENTS}" in output
    assert "input_shape: [1, 8, 8]" in output


def test_info_json(trained: Path) -> None:
    described = info_json(trained)
    assert described["n_iter"] == 3
    assert described["format"] == "isthmus.model"
    assert described["encoder_only"] is False
    assert described["input_shape"] == [1, 8, 8]
    assert described["params"]["n_components"] == N_COMPONENTS
    assert described["params"]["hidden_layer_sizes"] == [16]
    assert described["n_parameters"] == sum(p.numel() for p in isthmus.load(trained).net_.parameters())
    assert described["best_loss"] == pytest.approx(isthmus.load(trained).best_loss_)


def test_info_prints_in_a_stable_order(trained: Path) -> None:
    first, second = invoke("info", trained).output, invoke("info", trained).output
    assert first == second
    keys = [line.split(":")[0] for line in first.splitlines() if not line.startswith(" ")]
    assert keys[-2:] == ["params", "resolved"]  # the blocks come after the one-line keys
    assert keys[:-2] == sorted(keys[:-2])


def test_info_and_encode_survive_malformed_metadata(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from safetensors.torch import save_file

    fake = tmp_path / "odd.safetensors"
    metadata = {"format": "isthmus.model", "format_version": "1", "params": "{not json", "training": "[1]"}
    save_file({"w": torch.zeros(2)}, str(fake), metadata=metadata)
    described = info_json(fake)
    assert described["params"] == "{not json"
    assert described["n_iter"] is None
    assert "odd.safetensors" in fails(capsys, "encode", fake, "digits[:5]", "-o", tmp_path / "c.npy")


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_preset_values_reach_the_model_and_set_overrides_them(tmp_path: Path, preset: str) -> None:
    model = tmp_path / "m.safetensors"
    overrides = {"max_iter": 1, "hidden_layer_sizes": [16], "verbose": 0, "random_state": 0}
    sets = [arg for name, value in overrides.items() for arg in ("--set", f"{name}={value}")]
    data = "digits[:100]"
    if "window" in PRESETS[preset]:  # a series preset reads a series
        data = str(tmp_path / "series.npy")
        np.save(data, np.sin(np.arange(300) / 5.0))
    invoke("train", data, "-o", model, "--preset", preset, *sets)
    params = info_json(model)["params"]
    for name, value in {**PRESETS[preset], **overrides}.items():
        assert params[name] == (list(value) if isinstance(value, tuple) else value), name


TOML_TOP_LEVEL = """
n_components = 3
hidden_layer_sizes = [16, 8]
max_iter = 2
verbose = 0
random_state = 0
learning_rate = 0.005
"""
TOML_TABLE = "[isthmus]\n" + TOML_TOP_LEVEL


@pytest.mark.parametrize("text", [TOML_TOP_LEVEL, TOML_TABLE], ids=["top-level", "isthmus-table"])
def test_config_file(tmp_path: Path, text: str) -> None:
    config = tmp_path / "params.toml"
    config.write_text(text)
    model = tmp_path / "m.safetensors"
    invoke("train", "digits[:100]", "-o", model, "--config", config, "--set", "max_iter=1")
    described = info_json(model)
    assert described["params"]["n_components"] == 3
    assert described["params"]["hidden_layer_sizes"] == [16, 8]
    assert described["params"]["learning_rate"] == 0.005
    assert described["params"]["max_iter"] == 1  # --set wins over the file
    assert described["n_iter"] == 1


@pytest.mark.parametrize("sizes", ["[16, 8]", "[16,8]", "16,8"])
def test_set_parses_lists_and_floats(tmp_path: Path, sizes: str) -> None:
    model = tmp_path / "m.safetensors"
    invoke(
        "train", "digits[:100]", "-o", model, *TINY,
        "--set", f"hidden_layer_sizes={sizes}",
        "--set", "learning_rate=0.005",
        "--set", "tol=1e-3",
        "--set", "target_loss=none",
    )  # fmt: skip
    params = info_json(model)["params"]
    assert params["hidden_layer_sizes"] == [16, 8]
    assert params["learning_rate"] == 0.005
    assert params["tol"] == 0.001
    assert params["target_loss"] is None
    linear_shapes = [tuple(p.shape) for p in isthmus.load(model).net_.parameters() if p.dim() == 2]
    assert (16, 64) in linear_shapes and (8, 16) in linear_shapes


def test_train_creates_the_output_folder(tmp_path: Path) -> None:
    model = tmp_path / "runs" / "first" / "m.safetensors"
    invoke("train", "digits[:50]", "-o", model, *tiny(1))
    assert model.exists() and model.with_suffix(".ckpt").exists()
    assert len(model.with_suffix(".log.jsonl").read_text().splitlines()) == 1


def test_a_reader_that_leaves_early_ends_the_command_quietly(trained: Path) -> None:
    # `isthmus info m | head -3`: the pipe closes before the command writes (it is still importing torch)
    command = [sys.executable, "-m", "isthmus", "info", str(trained)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()
    with process.stderr:
        stderr = process.stderr.read()
    assert process.wait(timeout=120) == 141, stderr
    assert stderr == ""


def test_main_returns_zero_on_success(trained: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(trained), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n_iter"] == 3
    assert main(["--help"]) == 0
    assert main(["--version"]) == 0
    assert isthmus.__version__ in capsys.readouterr().out


def test_python_dash_m_isthmus_help() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "isthmus", "--help"], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    for command in ("train", "encode", "decode", "reconstruct", "evaluate", "export-encoder", "info"):
        assert command in done.stdout


# ---------------------------------------------------------------------------------------- resuming


def test_resume_continues_to_the_same_weights_as_a_straight_run(tmp_path: Path) -> None:
    data = "digits[:200]"
    resumed, straight = tmp_path / "resumed.safetensors", tmp_path / "straight.safetensors"

    invoke("train", data, "-o", resumed, *tiny(2))
    assert len(resumed.with_suffix(".log.jsonl").read_text().splitlines()) == 2
    invoke("train", data, "-o", resumed, "--resume", *tiny(4))
    invoke("train", data, "-o", straight, *tiny(4))

    lines = resumed.with_suffix(".log.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3, 4]
    assert info_json(resumed)["n_iter"] == 4
    invoke("encode", resumed, data, "-o", tmp_path / "resumed.npy")
    invoke("encode", straight, data, "-o", tmp_path / "straight.npy")
    assert np.array_equal(np.load(tmp_path / "resumed.npy"), np.load(tmp_path / "straight.npy"))


@pytest.mark.parametrize(
    ("data", "change", "named"),
    [
        ("digits[:60]", "hidden_layer_sizes=[8]", "different network"),
        ("digits[:70]", "verbose=0", "60 samples"),
    ],
    ids=["other-network", "other-data"],
)
def test_resume_refuses_a_different_run(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, data: str, change: str, named: str
) -> None:
    model = tmp_path / "m.safetensors"
    invoke("train", "digits[:60]", "-o", model, *tiny(1))
    before = model.read_bytes(), model.with_suffix(".log.jsonl").read_text()
    message = fails(capsys, "train", data, "-o", model, "--resume", *tiny(2), "--set", change)
    assert named in message
    assert (model.read_bytes(), model.with_suffix(".log.jsonl").read_text()) == before


def test_resume_without_a_checkpoint_is_an_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    message = fails(capsys, "train", DATA, "-o", tmp_path / "m.safetensors", *TINY, "--resume")
    assert "checkpoint" in message
    assert not (tmp_path / "m.safetensors").exists()


# ---------------------------------------------------------------------------------------- user errors


def test_missing_data_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing = tmp_path / "nothing.npy"
    message = fails(capsys, "train", missing, "-o", tmp_path / "m.safetensors", *TINY)
    assert "nothing.npy" in message
    assert not (tmp_path / "m.safetensors").exists()


def test_unknown_data_format(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    data = tmp_path / "data.xyz"
    data.write_text("1,2,3\n")
    message = fails(capsys, "train", data, "-o", tmp_path / "m.safetensors", *TINY)
    assert ".xyz" in message and ".npy" in message


def test_unknown_set_name(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    message = fails(capsys, "train", DATA, "-o", tmp_path / "m.safetensors", *TINY, "--set", "n_compnents=3")
    assert "n_compnents" in message and "n_components" in message


@pytest.mark.parametrize(
    ("assignment", "named"),
    [
        ("activation=nope", ["activation", "nope", "relu"]),
        ("n_components=0", ["n_components=0", ">= 1"]),
        ("learning_rate=-1.0", ["learning_rate=-1.0"]),
        ("hidden_layer_sizes=[16, 0]", ["hidden_layer_sizes"]),
        ("validation_fraction=2", ["validation_fraction=2"]),
        ("max_iter", ["name=value"]),
    ],
)
def test_bad_set_value(capsys: pytest.CaptureFixture[str], tmp_path: Path, assignment: str, named: list[str]) -> None:
    message = fails(capsys, "train", DATA, "-o", tmp_path / "m.safetensors", *TINY, "--set", assignment)
    for text in named:
        assert text in message


def test_bad_config_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("n_components = \n")
    assert "bad.toml" in fails(capsys, "train", DATA, "-o", tmp_path / "m.safetensors", "--config", config)
    missing = tmp_path / "missing.toml"
    assert "missing.toml" in fails(capsys, "train", DATA, "-o", tmp_path / "m.safetensors", "--config", missing)


def test_n_components_not_below_n_features(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    data = write_csv(tmp_path / "three.csv", np.arange(30.0).reshape(10, 3), "a,b,c")
    message = fails(capsys, "train", data, "-o", tmp_path / "m.safetensors", *TINY, "--set", "n_components=5")
    assert "n_components=5" in message and "n_features=3" in message


@pytest.mark.parametrize("suffix", [".csv", ".npy"])
def test_nan_in_data_names_the_rows(capsys: pytest.CaptureFixture[str], tmp_path: Path, suffix: str) -> None:
    x = np.arange(30.0, dtype=np.float32).reshape(10, 3)
    x[4, 1] = np.nan
    x[7, 0] = np.inf
    data = tmp_path / f"x{suffix}"
    write_csv(data, x, "a,b,c") if suffix == ".csv" else np.save(data, x)
    message = fails(capsys, "train", data, "-o", tmp_path / "m.safetensors", *TINY, "--set", "n_components=1")
    assert "infinite" in message and "7" in message and "4" not in message  # a missing cell (NaN) is allowed


def test_wrong_feature_count_at_encode(capsys: pytest.CaptureFixture[str], trained: Path, tmp_path: Path) -> None:
    data = write_csv(tmp_path / "three.csv", np.ones((4, 3)), "a,b,c")
    message = fails(capsys, "encode", trained, data, "-o", tmp_path / "codes.npy")
    assert "3 features" in message and "64" in message
    assert not (tmp_path / "codes.npy").exists()


def test_wrong_code_width_at_decode(capsys: pytest.CaptureFixture[str], trained: Path, tmp_path: Path) -> None:
    codes = tmp_path / "codes.npy"
    np.save(codes, np.zeros((4, 5), np.float32))
    message = fails(capsys, "decode", trained, codes, "-o", tmp_path / "out.npy")
    assert "5" in message and f"n_components={N_COMPONENTS}" in message


def test_empty_data(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    data = tmp_path / "empty.csv"
    data.write_text("a,b,c\n")
    message = fails(capsys, "train", data, "-o", tmp_path / "m.safetensors", *TINY, "--set", "n_components=1")
    assert "empty.csv" in message and "no rows" in message


def test_unknown_output_format(capsys: pytest.CaptureFixture[str], trained: Path, tmp_path: Path) -> None:
    message = fails(capsys, "encode", trained, "digits[:5]", "-o", tmp_path / "codes.xyz")
    assert ".xyz" in message
    assert list(tmp_path.iterdir()) == []  # no temporary file left behind


@pytest.mark.parametrize("command", ["train", "encode", "decode", "reconstruct", "export-encoder"])
def test_existing_output_needs_overwrite(
    capsys: pytest.CaptureFixture[str], trained: Path, tmp_path: Path, command: str
) -> None:
    codes = tmp_path / "codes.npy"
    np.save(codes, np.zeros((3, N_COMPONENTS), np.float32))
    output = tmp_path / ("out.safetensors" if command in ("train", "export-encoder") else "out.npy")
    output.write_bytes(b"precious")
    args: dict[str, tuple[str | Path, ...]] = {
        "train": ("train", "digits[:50]", "-o", output, *TINY),
        "encode": ("encode", trained, "digits[:5]", "-o", output),
        "decode": ("decode", trained, codes, "-o", output),
        "reconstruct": ("reconstruct", trained, "digits[:5]", "-o", output),
        "export-encoder": ("export-encoder", trained, "-o", output),
    }
    message = fails(capsys, *args[command])
    assert str(output) in message and "--overwrite" in message
    assert output.read_bytes() == b"precious"
    invoke(*args[command], "--overwrite")
    assert output.read_bytes() != b"precious"


@pytest.mark.parametrize(
    "args",
    [
        ("train", DATA, "-o", "m.safetensors", "--preset", "nope"),
        ("train", DATA, "-o", "m.safetensors", "--image-size", "big"),
        ("train", DATA),
        ("frobnicate",),
    ],
    ids=["unknown-preset", "bad-image-size", "missing-output", "unknown-command"],
)
def test_usage_errors_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...]
) -> None:
    monkeypatch.chdir(tmp_path)
    output = fails(capsys, *args, code=2)
    assert "Usage:" in output or "Error:" in output
    assert f"{args[-1]}" in output or "Missing option" in output
    assert list(tmp_path.iterdir()) == []


def test_interrupt_exits_130(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(isthmus.Autoencoder, "fit", interrupted)
    result = CliRunner().invoke(cli, ["train", DATA, "-o", str(tmp_path / "m.safetensors"), *TINY])
    assert result.exit_code == 130
    assert result.output == "error: interrupted\n"
    assert main(["train", DATA, "-o", str(tmp_path / "m.safetensors"), *TINY]) == 130


def test_missing_model_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing = tmp_path / "missing.safetensors"
    assert "missing.safetensors" in fails(capsys, "encode", missing, "digits[:5]", "-o", tmp_path / "c.npy")
    assert "missing.safetensors" in fails(capsys, "info", missing)


@pytest.mark.parametrize("kind", ["csv", "checkpoint", "truncated", "empty"])
@pytest.mark.parametrize("command", ["encode", "info"])
def test_a_file_that_is_not_a_model(
    capsys: pytest.CaptureFixture[str], trained: Path, tmp_path: Path, kind: str, command: str
) -> None:
    fake = tmp_path / "fake.safetensors"
    if kind == "csv":
        write_csv(fake, np.ones((3, 2)), "a,b")
    elif kind == "checkpoint":
        fake.write_bytes(trained.with_suffix(".ckpt").read_bytes())
    elif kind == "truncated":
        fake.write_bytes(trained.read_bytes()[:200])
    else:
        fake.write_bytes(b"")
    args = ("encode", fake, "digits[:5]", "-o", tmp_path / "c.npy") if command == "encode" else ("info", fake)
    assert "fake.safetensors" in fails(capsys, *args)


# ---------------------------------------------------------------------------------------- variants


@pytest.fixture(scope="module")
def vae(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model = tmp_path_factory.mktemp("vae") / "vae.safetensors"
    invoke("train", "digits[:100]", "-o", model, "--preset", "vae", *TINY)
    return model


def test_sample_and_interpolate_shapes(vae: Path, tmp_path: Path) -> None:
    invoke("sample", vae, "-n", "5", "--random-state", "0", "-o", tmp_path / "s.npy")
    samples = np.load(tmp_path / "s.npy")
    assert samples.shape == (5, 1, 8, 8)
    # in the digits' units (0..16), not the network's scaled 0..1
    assert samples.min() >= 0.0 and 1.0 < samples.max() <= 16.0
    invoke("interpolate", vae, "digits[:4]", "--steps", "3", "-o", tmp_path / "i.npy")
    assert np.load(tmp_path / "i.npy").shape == (6, 1, 8, 8)


def test_denoise_writes_the_reconstruction(tmp_path: Path) -> None:
    model = tmp_path / "dae.safetensors"
    invoke("train", DATA, "-o", model, "--preset", "denoising", *TINY)
    invoke("denoise", model, "digits[:10]", "-o", tmp_path / "clean.npy")
    expected = isthmus.load(model).reconstruct(first_digits(10))
    np.testing.assert_array_equal(np.load(tmp_path / "clean.npy"), as_8bit(expected))


def test_generative_commands_refuse_bad_requests(
    capsys: pytest.CaptureFixture[str], trained: Path, vae: Path, tmp_path: Path
) -> None:
    assert "gaussian" in fails(capsys, "sample", trained, "-n", "3", "-o", tmp_path / "s.npy")
    assert "pairs" in fails(capsys, "interpolate", vae, "digits[:3]", "-o", tmp_path / "i.npy")
    fails(capsys, "sample", vae, "-n", "0", "-o", tmp_path / "s.npy", code=2)
