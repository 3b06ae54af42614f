"""Defaults that do what they say: a penalty chosen by name applies at a weight that works, noise is
stated in the data's own units, near-constant features do not blow up the scaling, and a denoising
model with the defaults denoises."""

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


def test_scaling_floors_near_constant_spreads() -> None:
    from isthmus.scaling import SPREAD_FLOOR, fit_scaler

    rng = np.random.default_rng(0)
    rare = np.zeros(1000)
    rare[:3] = 1.0  # a pixel lit in 3 images of 1000: standard deviation 0.055
    normal = rng.normal(5.0, 2.0, size=1000)
    x = np.column_stack([rare, normal, np.full(1000, 7.0)]).astype(np.float32)
    scaler = fit_scaler(x, "standard", is_image=False)
    assert scaler.scale[0] == pytest.approx(SPREAD_FLOOR * 1.0)  # its range is 1
    # a Gaussian column keeps its deviation unless its range is wider than 1 / SPREAD_FLOOR deviations
    gaussian = max(float(x[:, 1].std()), SPREAD_FLOOR * float(np.ptp(x[:, 1])))
    assert scaler.scale[1] == pytest.approx(gaussian, rel=1e-5)
    assert scaler.scale[1] < 1.2 * x[:, 1].std()
    assert scaler.scale[2] == 1.0  # a constant column passes through
    assert np.abs(scaler.transform(x)).max() < 1.0 / SPREAD_FLOOR + 1e-3
    assert fit_scaler(x, "none", is_image=False).scale.tolist() == [1.0, 1.0, 1.0]


def test_denoising_with_the_defaults_gains_3_db_on_the_digits() -> None:
    """The issue's case: digits in [0, 1], Gaussian noise of 0.3 in training and on the test rows."""
    x = (load_digits().data / 16.0).astype(np.float32)  # (1797, 64)
    order = np.random.default_rng(0).permutation(len(x))
    train, test = x[order[:1500]], x[order[1500:]]
    noisy = (test + 0.3 * np.random.default_rng(1).normal(size=test.shape)).astype(np.float32)
    torch.set_num_threads(1)
    ae = fit(train, corruption="gaussian", noise_level=0.3)

    def psnr(estimate: np.ndarray) -> float:
        return float(10 * np.log10(1.0 / np.mean(np.square(estimate - test))))

    gain = psnr(ae.denoise(noisy)) - psnr(noisy)
    assert gain >= 3.0, f"denoise gained {gain:.2f} dB"
