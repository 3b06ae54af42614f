"""CUDA branches, each checked against the CPU. Skipped without a GPU; ``bench/gpu_check.py`` runs them (``-m cuda``).

What a GPU changes: where the weights and batches live, autocast in bfloat16 or float16 (with gradient scaling),
generators on the device (noise, checkpointed for resuming), streamed windows moved to the device, and NCCL.
Every model trained here is also read back on the CPU, where most models are used.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from sklearn.exceptions import ConvergenceWarning

from conftest import QUANTIZED, TINY
from isthmus import Autoencoder, load, model, train
from isthmus.data import open_rows
from isthmus.errors import ConfigError, ModelFileError
from isthmus.model import autocast_dtype
from isthmus.train import resolve_device

CUDA: dict[str, Any] = {**TINY, "n_components": 3, "device": "cuda"}


def gpu(test: Callable[..., None]) -> Callable[..., None]:
    """Marks a test ``cuda`` (``pytest -m cuda`` selects it) and skips it without a GPU."""
    return pytest.mark.cuda(pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")(test))


def _device_of(ae: Autoencoder) -> str:
    return next(ae.net_.parameters()).device.type


def _quiet_fit(ae: Autoencoder, x: Any, **kwargs: Any) -> Autoencoder:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return ae.fit(x, **kwargs)


def test_a_model_trained_in_fp16_encodes_after_loading_on_a_cpu(tabular: np.ndarray, tmp_path: Path) -> None:
    """Runs everywhere: the file of a GPU model trained in fp16 names precision="fp16", which a CPU lacks;
    inference there runs in float32 instead of refusing (training still refuses it)."""
    ae = _quiet_fit(Autoencoder(**{**CUDA, "device": "cpu"}), tabular)
    codes, recon = ae.transform(tabular), ae.reconstruct(tabular)
    ae.set_params(precision="fp16", device="cuda")  # what fit on a GPU with precision="fp16" stores
    ae.save(tmp_path / "fp16.safetensors")
    cpu = load(tmp_path / "fp16.safetensors")
    assert (cpu.precision, _device_of(cpu)) == ("fp16", "cpu")
    np.testing.assert_array_equal(cpu.transform(tabular), codes)
    np.testing.assert_array_equal(cpu.reconstruct(tabular), recon)
    with pytest.raises(ConfigError, match="fp16"):
        Autoencoder(**{**CUDA, "device": "cpu", "precision": "fp16"}).fit(tabular)


@pytest.fixture
def fp16_on_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """float16 autocast and gradient scaling on the CPU, which torch has and isthmus allows on CUDA only: the
    loop's fp16 branch, runnable anywhere."""
    table = model.autocast_dtype

    def with_fp16(device: torch.device, precision: str) -> torch.dtype | None:
        return torch.float16 if precision == "fp16" else table(device, precision)

    monkeypatch.setattr(model, "autocast_dtype", with_fp16)
    monkeypatch.setattr(train, "autocast_dtype", with_fp16)


@pytest.mark.usefixtures("fp16_on_the_cpu")
def test_resuming_fp16_training_continues_with_the_stored_gradient_scale(tabular: np.ndarray, tmp_path: Path) -> None:
    params = {**CUDA, "device": "cpu", "precision": "fp16", "max_iter": 4}
    scales: list[float] = []
    update = torch.amp.GradScaler.update

    def watched(self: torch.amp.GradScaler, *args: Any, **kwargs: Any) -> None:
        update(self, *args, **kwargs)
        scales.append(self.get_scale())

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch.amp.GradScaler, "update", watched)
        straight = _quiet_fit(Autoencoder(**params), tabular)
    assert scales and scales[-1] < 2.0**16  # the loss scale came down from its start: there is state to keep
    ckpt = tmp_path / "run.ckpt"
    with pytest.raises(KeyboardInterrupt):
        Autoencoder(**params).fit(tabular, checkpoint=ckpt, callbacks=[_Interrupt(2)])
    resumed = _quiet_fit(Autoencoder(**params), tabular, resume=ckpt)
    for name, value in straight.net_.state_dict().items():
        assert torch.equal(resumed.net_.state_dict()[name], value), name
    assert resumed.history_ == straight.history_
    with safe_open(str(ckpt), "pt") as fh:
        meta = fh.metadata()
    assert json.loads(meta["grad_scaler"])["scale"] == scales[-1]
    save_file(load_file(ckpt), str(ckpt), metadata={**meta, "grad_scaler": '{"scale": "high"}'})
    with pytest.raises(ModelFileError, match=r"damaged.*grad_scaler"):
        Autoencoder(**params).fit(tabular, resume=ckpt)


# ---------------------------------------------------------------------------------------- on a GPU


@gpu
def test_device_auto_trains_on_the_gpu_in_mixed_precision(tabular: np.ndarray) -> None:
    ae = _quiet_fit(Autoencoder(**{**CUDA, "device": "auto"}), tabular)
    assert _device_of(ae) == "cuda"
    assert all(p.dtype == torch.float32 for p in ae.net_.parameters())  # autocast, not half weights
    wanted = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    assert autocast_dtype(resolve_device("auto"), "auto") == wanted
    assert ae.transform(tabular).dtype == np.float32


@gpu
@pytest.mark.parametrize(
    ("kind", "precision", "tol"),
    [
        ("table", "fp32", 1e-4),  # float32 matrix products on both sides
        ("table", "auto", 5e-2),  # the GPU encodes in bfloat16 (or float16), the CPU in float32
        ("images", "fp32", 1e-2),  # cuDNN convolutions use TF32 by default
    ],
)
def test_fit_on_cuda_then_load_on_the_cpu_gives_the_same_codes(
    kind: str, precision: str, tol: float, tabular: np.ndarray, digits: np.ndarray, tmp_path: Path
) -> None:
    if kind == "table":
        x, params = tabular, {**CUDA, "precision": precision}
    else:
        conv = {"architecture": "conv", "hidden_layer_sizes": (8, 16)}
        x, params = digits[:400], {**CUDA, "precision": precision, **conv}
    ae = _quiet_fit(Autoencoder(**params), x)
    assert _device_of(ae) == "cuda"
    codes, recon, errors = ae.transform(x), ae.reconstruct(x), ae.reconstruction_error(x)
    assert codes.dtype == recon.dtype == np.float32
    ae.save(tmp_path / "gpu.safetensors")
    cpu = load(tmp_path / "gpu.safetensors")
    assert _device_of(cpu) == "cpu"
    np.testing.assert_allclose(cpu.transform(x), codes, rtol=0, atol=tol * np.abs(codes).max())
    np.testing.assert_allclose(cpu.reconstruct(x), recon, rtol=0, atol=tol * np.abs(recon).max())
    np.testing.assert_allclose(cpu.reconstruction_error(x), errors, rtol=10 * tol, atol=tol * errors.mean())
    np.testing.assert_allclose(cpu.inverse_transform(codes), recon, rtol=0, atol=tol * np.abs(recon).max())


@gpu
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_training_on_cuda_nearly_matches_float32(
    precision: str, digits: np.ndarray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bfloat16")
    scaled_steps: list[float] = []
    step = torch.amp.GradScaler.step

    def counted(self: torch.amp.GradScaler, *args: Any, **kwargs: Any) -> Any:
        scaled_steps.append(self.get_scale())
        return step(self, *args, **kwargs)

    monkeypatch.setattr(torch.amp.GradScaler, "step", counted)
    x = digits[:600].reshape(600, -1)
    params = {**CUDA, "n_components": 8, "max_iter": 15, "hidden_layer_sizes": (64,)}
    full = _quiet_fit(Autoencoder(**params, precision="fp32"), x)
    assert not scaled_steps  # float32 steps without a scaler
    half = _quiet_fit(Autoencoder(**params, precision=precision), x)
    # float16 scales every step's loss against underflow; bfloat16 has float32's range and needs none
    assert len(scaled_steps) == (15 * math.ceil(600 / 32) if precision == "fp16" else 0)
    assert all(p.dtype == torch.float32 for p in half.net_.parameters())
    assert half.history_[-1]["train_loss"] != full.history_[-1]["train_loss"]
    err_full, err_half = full.reconstruction_error(x).mean(), half.reconstruction_error(x).mean()
    assert err_half < 1.1 * err_full
    half.save(tmp_path / "half.safetensors")
    cpu = load(tmp_path / "half.safetensors")  # encodes in float32 there, whatever it trained in
    codes = half.transform(x)
    np.testing.assert_allclose(cpu.transform(x), codes, rtol=0, atol=5e-2 * np.abs(codes).max())


@gpu
def test_a_streamed_fit_on_cuda_learns_like_one_in_memory(tabular: np.ndarray, tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", tabular)
    params = {**CUDA, "max_iter": 30, "precision": "fp32"}
    streamed = _quiet_fit(Autoencoder(**params), open_rows(tmp_path / "x.npy", chunk_rows=40))
    in_memory = _quiet_fit(Autoencoder(**params), tabular)
    assert _device_of(streamed) == "cuda"
    err_streamed = streamed.reconstruction_error(tabular).mean()
    baseline = ((tabular - tabular.mean(0)) ** 2).sum(1).mean()
    assert err_streamed < 0.5 * baseline
    assert err_streamed < 2.0 * in_memory.reconstruction_error(tabular).mean()
    np.testing.assert_allclose(
        streamed.transform(open_rows(tmp_path / "x.npy", chunk_rows=7)), streamed.transform(tabular), atol=1e-5
    )


class _Interrupt:
    def __init__(self, at: int) -> None:
        self.at = at

    def __call__(self, epoch: int, record: dict[str, float]) -> None:
        if epoch == self.at:
            raise KeyboardInterrupt


@gpu
@pytest.mark.parametrize(("stream", "precision"), [(False, "fp32"), (True, "fp32"), (False, "fp16")])
def test_resume_on_cuda_continues_the_run(tabular: np.ndarray, tmp_path: Path, stream: bool, precision: str) -> None:
    """The checkpoint holds the device generator's state (the masking noise), the fused Adam state and
    float16's gradient scale."""
    np.save(tmp_path / "x.npy", tabular)
    params = {
        **CUDA,
        **{"max_iter": 6, "early_stopping": True, "n_iter_no_change": 50, "precision": precision},
        **{"corruption": "masking", "noise_level": 0.2, "lr_schedule": "cosine"},
    }

    def data() -> Any:
        return open_rows(tmp_path / "x.npy", chunk_rows=50) if stream else tabular

    straight = Autoencoder(**params).fit(data())
    ckpt = tmp_path / "run.ckpt"
    with pytest.raises(KeyboardInterrupt):
        Autoencoder(**params).fit(data(), checkpoint=ckpt, callbacks=[_Interrupt(3)])
    resumed = Autoencoder(**params).fit(data(), resume=ckpt)
    assert resumed.n_iter_ == straight.n_iter_ == 6
    assert _device_of(resumed) == "cuda"
    for name, value in straight.net_.state_dict().items():
        torch.testing.assert_close(resumed.net_.state_dict()[name], value, rtol=1e-5, atol=1e-6, msg=name)
    for a, b in zip(resumed.history_, straight.history_, strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)


@gpu
def test_lossy_and_lossless_streams_written_on_cuda_decode_on_the_cpu(digits: np.ndarray, tmp_path: Path) -> None:
    images = digits[:300, 0]  # (300, 8, 8) integers 0..16
    gpu = _quiet_fit(Autoencoder(6, random_state=0, **{**QUANTIZED, "device": "cuda"}), images)
    assert _device_of(gpu) == "cuda"
    x = images[:50]
    lossy = gpu.compress(x)
    exact = gpu.compress(x.astype(np.uint8), lossless=True)
    code = gpu.transform(x)  # integers, encoded on the GPU: what the lossy stream carries
    assert np.array_equal(code, np.rint(code))
    gpu.save(tmp_path / "gpu.safetensors")
    cpu = load(tmp_path / "gpu.safetensors")
    assert _device_of(cpu) == "cpu"
    np.testing.assert_array_equal(cpu.decompress(lossy), cpu.inverse_transform(code))
    np.testing.assert_allclose(gpu.decompress(lossy), cpu.decompress(lossy), rtol=0, atol=5e-2 * 16)
    np.testing.assert_array_equal(cpu.decompress(exact), x.astype(np.uint8))
    np.testing.assert_array_equal(gpu.decompress(exact), x.astype(np.uint8))
    # and the other way: a stream the CPU writes decodes on the GPU
    np.testing.assert_array_equal(gpu.decompress(cpu.compress(x.astype(np.uint8), lossless=True)), x.astype(np.uint8))


@pytest.mark.cuda
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 CUDA GPUs")
def test_two_nccl_processes_match_one_gpu_with_the_same_global_batch(tabular: np.ndarray, tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", tabular)
    sets = [
        *("max_iter=4", "random_state=0", "batch_size=64", "verbose=0", "n_components=3"),
        *("hidden_layer_sizes=[16]", "device=cuda", "precision=fp32"),
    ]
    args = ["train", str(tmp_path / "x.npy"), *[a for s in sets for a in ("--set", s)]]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "isthmus"]
    ddp = subprocess.run(
        [*launch, *args, "-o", "ddp.safetensors"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert ddp.returncode == 0, ddp.stderr[-2000:]
    assert "in 2 processes" in ddp.stdout
    one = subprocess.run(
        [sys.executable, "-m", "isthmus", *args, "-o", "one.safetensors"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert one.returncode == 0, one.stderr[-2000:]
    a, b = load_file(tmp_path / "ddp.safetensors"), load_file(tmp_path / "one.safetensors")
    assert a.keys() == b.keys()
    for name in b:
        torch.testing.assert_close(a[name], b[name], rtol=1e-3, atol=1e-4, msg=name)
