"""ONNX export: the encoder and the decoder, run in onnxruntime, match the estimator within 1e-5 for every
architecture, bottleneck (the posterior mean for a VAE) and penalty (sigmoid and top-k codes) in the
tables, at a batch size other than the one traced; and the command line writes the same files.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import isthmus
from conftest import fit
from isthmus import Autoencoder
from isthmus.bottlenecks import BOTTLENECKS
from isthmus.errors import ConfigError, EncoderOnlyError
from isthmus.export import export_onnx
from isthmus.nets import ARCHITECTURES
from isthmus.penalties import PENALTIES
from test_cli import DATA, fails, first_digits, invoke, tiny

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

TOLERANCE = {"rtol": 1e-5, "atol": 1e-5}


def run(path: Path, name: str, value: np.ndarray) -> np.ndarray:
    """Run an ONNX file on one input in onnxruntime, on the CPU."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == [name]
    out: np.ndarray = session.run(None, {name: np.ascontiguousarray(value, dtype=np.float32)})[0]
    return out


def check_matches(ae: Autoencoder, x: np.ndarray, folder: Path) -> None:
    """Export both parts, validate the files, and match ``transform`` / ``inverse_transform`` on 37 rows."""
    encoder, decoder = folder / "encoder.onnx", folder / "decoder.onnx"
    export_onnx(ae, encoder)
    export_onnx(ae, decoder, part="decoder")
    for path in (encoder, decoder):
        onnx.checker.check_model(onnx.load(str(path)))
    batch = x[:37]  # traced with 2 rows: the batch axis is free
    code = run(encoder, "x", batch)
    assert code.shape == (37, ae.n_components)
    np.testing.assert_allclose(code, ae.transform(batch), **TOLERANCE)
    decoded = run(decoder, "code", code)
    assert decoded.shape == batch.shape
    np.testing.assert_allclose(decoded, ae.inverse_transform(code), **TOLERANCE)


# every table entry is exported, so a new architecture, bottleneck or penalty is tested without new code
@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
def test_every_architecture_exports(architecture: str, digits: np.ndarray, tmp_path: Path) -> None:
    if architecture == "conv1d":  # windows of a series only: test_a_series_model_exports_its_windows
        pytest.skip("conv1d takes a series; exported by test_a_series_model_exports_its_windows")
    ae = fit(digits[:200], n_components=3, architecture=architecture, hidden_layer_sizes=(4, 8))
    check_matches(ae, digits, tmp_path)


@pytest.mark.parametrize("architecture", ["conv1d", "mlp"])
def test_a_series_model_exports_its_windows(architecture: str, tmp_path: Path) -> None:
    from isthmus.series import cut

    series = (np.sin(np.arange(300) / 7.0) * 50 + 100).astype(np.float32)
    ae = fit(series, n_components=3, architecture=architecture, window=16, hidden_layer_sizes=(4, 8))
    encoder, decoder = tmp_path / "encoder.onnx", tmp_path / "decoder.onnx"
    export_onnx(ae, encoder)
    export_onnx(ae, decoder, part="decoder")
    windows = np.ascontiguousarray(cut(series[:, None], 16, 1).x)  # (n_windows, 1, 16), as transform cuts them
    code = run(encoder, "x", windows)
    np.testing.assert_allclose(code, ae.transform(series), **TOLERANCE)
    np.testing.assert_allclose(run(decoder, "code", code), ae.inverse_transform(code), **TOLERANCE)


@pytest.mark.parametrize("bottleneck", sorted(BOTTLENECKS))
def test_every_bottleneck_exports(bottleneck: str, digits: np.ndarray, tmp_path: Path) -> None:
    check_matches(fit(digits[:200], n_components=3, bottleneck=bottleneck), digits, tmp_path)


@pytest.mark.parametrize("penalty", sorted(PENALTIES))
def test_every_penalty_exports(penalty: str, tabular: np.ndarray, tmp_path: Path) -> None:
    ae = fit(tabular[:200], n_components=6, penalty=penalty, sparsity_k=2)  # top-k keeps 2 of 6
    check_matches(ae, tabular, tmp_path)


def test_variational_encoder_gives_the_posterior_mean(digits: np.ndarray, tmp_path: Path) -> None:
    ae = fit(digits[:200], n_components=3, bottleneck="gaussian")
    export_onnx(ae, tmp_path / "e.onnx")
    first, again = run(tmp_path / "e.onnx", "x", digits[:20]), run(tmp_path / "e.onnx", "x", digits[:20])
    np.testing.assert_array_equal(first, again)  # no sampling noise
    mean = ae.net_.bottleneck.posterior(ae.net_.encoder(_scaled(ae, digits[:20])))[0].detach().numpy()
    np.testing.assert_allclose(first, mean, **TOLERANCE)


def _scaled(ae: Autoencoder, x: np.ndarray) -> object:
    import torch

    return torch.from_numpy(ae.scaler_.transform(x))


def test_cli_export_onnx(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "m.safetensors"
    invoke("train", DATA, "-o", model, *tiny())
    encoder, decoder = tmp_path / "encoder.onnx", tmp_path / "decoder.onnx"
    invoke("export-onnx", model, "-o", encoder)
    invoke("export-onnx", model, "-o", decoder, "--part", "decoder")
    ae, x = isthmus.load(model), first_digits(50)
    code = run(encoder, "x", x)
    np.testing.assert_allclose(code, ae.transform(x), **TOLERANCE)
    np.testing.assert_allclose(run(decoder, "code", code), ae.inverse_transform(code), **TOLERANCE)

    assert "already exists" in fails(capsys, "export-onnx", model, "-o", encoder)
    fails(capsys, "export-onnx", model, "-o", encoder, "--part", "middle", code=2)
    invoke("export-encoder", model, "-o", tmp_path / "enc.safetensors")
    message = fails(capsys, "export-onnx", tmp_path / "enc.safetensors", "-o", tmp_path / "d.onnx", "--part", "decoder")
    assert "holds only the encoder" in message
    invoke("export-onnx", tmp_path / "enc.safetensors", "-o", tmp_path / "e2.onnx")  # its encoder still exports
    np.testing.assert_allclose(run(tmp_path / "e2.onnx", "x", x), code, **TOLERANCE)


def test_errors_name_the_problem(
    tabular: np.ndarray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ae = fit(tabular, n_components=3)
    with pytest.raises(ConfigError, match="part='middle' is not allowed; choose one of: encoder, decoder"):
        export_onnx(ae, tmp_path / "x.onnx", part="middle")
    with pytest.raises(EncoderOnlyError):
        ae.encoder_only_ = True
        export_onnx(ae, tmp_path / "x.onnx", part="decoder")
    ae.encoder_only_ = False
    model = tmp_path / "m.safetensors"
    ae.save(model)
    monkeypatch.setitem(sys.modules, "onnx", None)
    message = fails(capsys, "export-onnx", model, "-o", tmp_path / "x.onnx")
    assert "needs onnx, which is not installed" in message and "isthmus[onnx]" in message
    assert not (tmp_path / "x.onnx").exists()
