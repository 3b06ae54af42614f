"""Mixed precision: bf16 autocast on CPUs, float32 loss and optimizer state, clear refusals elsewhere."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import TINY
from isthmus import Autoencoder
from isthmus.errors import ConfigError
from isthmus.train import autocast_dtype

CPU = torch.device("cpu")


def test_the_precision_table() -> None:
    assert autocast_dtype(CPU, "auto") is None
    assert autocast_dtype(CPU, "fp32") is None
    assert autocast_dtype(CPU, "bf16") == torch.bfloat16
    assert autocast_dtype(torch.device("cuda"), "fp16") == torch.float16
    with pytest.raises(ConfigError, match=r"precision='fp16' is not available on device 'cpu'.*bf16"):
        autocast_dtype(CPU, "fp16")
    with pytest.raises(ConfigError, match="precision"):
        Autoencoder(precision="fp8").fit(np.zeros((4, 3), np.float32))


def test_bf16_training_keeps_float32_state_and_nearly_the_float32_error(digits: np.ndarray) -> None:
    x = digits[:600].reshape(600, -1)
    params = {**TINY, "n_components": 8, "max_iter": 15, "hidden_layer_sizes": (64,)}
    full = Autoencoder(**params).fit(x)
    half = Autoencoder(**params, precision="bf16").fit(x)
    assert all(p.dtype == torch.float32 for p in half.net_.parameters())
    assert half.history_[-1]["train_loss"] != full.history_[-1]["train_loss"]
    err_full = full.reconstruction_error(x).mean()
    err_half = half.reconstruction_error(x).mean()
    assert err_half < 1.1 * err_full
    assert half.transform(x).dtype == np.float32  # encoding under autocast hands back float32
