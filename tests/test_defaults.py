"""Defaults that do what they say: a penalty chosen by name applies at a weight that works, and noise is
stated in the data's own units."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning

from isthmus import Autoencoder
from isthmus.config import ModelConfig
from isthmus.errors import ConfigError
from isthmus.penalties import PENALTIES, penalty_weight


def fit(x: np.ndarray, **params: object) -> Autoencoder:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return Autoencoder(**{"verbose": 0, "random_state": 0, **params}).fit(x)


def test_auto_weight_is_each_penalty_s_own() -> None:
    for name, entry in PENALTIES.items():
        assert penalty_weight(ModelConfig(penalty=name, n_components=16)) == entry.weight
        assert (entry.weight > 0) == (entry.term is not None), name  # a term needs a weight, a constraint none
    assert penalty_weight(ModelConfig(penalty="l1", penalty_weight=0.5)) == 0.5
    with pytest.raises(ConfigError, match=r"penalty_weight='heavy' must be 'auto' or a number >= 0"):
        ModelConfig(penalty_weight="heavy")


def test_kl_sparsity_by_name_reaches_its_target_on_the_digits() -> None:
    """The issue's case: penalty and target named, every other setting the default."""
    x = load_digits().data.astype(np.float32)  # (1797, 64)
    torch.set_num_threads(1)
    ae = fit(x, n_components=100, penalty="kl_sparsity", sparsity_target=0.05)
    mean_activation = float(ae.transform(x).mean())
    assert abs(mean_activation - 0.05) <= 0.02, mean_activation


def test_noise_level_is_in_the_data_s_own_units() -> None:
    """The training noise, seen in the data's units, has standard deviation noise_level in every feature."""
    from isthmus.model import AutoencoderNet

    config = ModelConfig(n_components=2, hidden_layer_sizes=(8,), corruption="gaussian", noise_level=0.5, loss="mse")
    net = AutoencoderNet(config, (3,))
    scale = torch.tensor([0.01, 1.0, 50.0])  # data units per scaled unit, as a scaler would store
    net.set_data_scale(scale)
    seen: list[torch.Tensor] = []
    net.encoder.register_forward_hook(lambda module, args, out: seen.append(args[0].detach()))
    x = torch.zeros(20000, 3)
    net.train()
    net.loss(x, generator=torch.Generator().manual_seed(0))
    noise_in_data_units = seen[0] * scale  # (20000, 3)
    np.testing.assert_allclose(noise_in_data_units.std(dim=0).numpy(), 0.5, rtol=0.03)
    masking = AutoencoderNet(ModelConfig(n_components=2, corruption="masking", noise_level=0.5, loss="mse"), (3,))
    masking.set_data_scale(scale)  # a probability has no units: unchanged
    assert masking._noise_in_data_units is False


def test_denoise_with_the_defaults_gains_3_db_on_the_digits() -> None:
    """The issue's case: digits in [0, 1], a Gaussian corruption of sd 0.3 named, every other setting the
    default (standard scaling, a 2-D code), held-out digits with noise of the same sd. The scaler makes room
    for the noise (scaling.with_noise): blank-border pixels would otherwise blow it up to dozens of units."""
    from sklearn.model_selection import train_test_split

    x = load_digits().data.astype(np.float32) / 16.0  # (1797, 64)
    train, test = train_test_split(x, test_size=0.25, random_state=0)
    torch.set_num_threads(1)
    ae = fit(train, corruption="gaussian", noise_level=0.3)
    noisy = test + np.random.default_rng(0).normal(0.0, 0.3, test.shape).astype(np.float32)

    def psnr(y: np.ndarray) -> float:
        return float(10 * np.log10(1.0 / np.mean(np.square(y - test))))

    gain = psnr(ae.denoise(noisy)) - psnr(noisy)
    assert gain >= 3.0, gain
