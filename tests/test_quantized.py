"""The quantized bottleneck: noisy or straight-through training code, the rate term, tables built in fit."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
import torch

from isthmus import Autoencoder, entropy
from isthmus.bottlenecks import FactorizedDensity, Quantized
from isthmus.config import PRESETS, ModelConfig
from isthmus.errors import ConfigError

SMALL: dict[str, Any] = {"hidden_layer_sizes": (32,), "max_iter": 10, "verbose": 0, "random_state": 0, "device": "cpu"}


def _fit(x: np.ndarray, **params: Any) -> Autoencoder:
    return Autoencoder(**{"n_components": 6, **SMALL, **PRESETS["compress"], **params}).fit(x)


def test_density_is_a_distribution_over_the_integers() -> None:
    torch.manual_seed(0)
    density = FactorizedDensity(3)
    grid = torch.arange(-2000, 2001, dtype=torch.float32)[:, None].expand(-1, 3)  # (4001, 3)
    mass = density.likelihood(grid).sum(dim=0)
    assert torch.allclose(mass, torch.ones(3), atol=1e-3)


@pytest.mark.parametrize("straight_through", [False, True])
def test_training_code_and_rate_term(straight_through: bool) -> None:
    config = ModelConfig(n_components=4, bottleneck="quantized", lmbda=0.5, straight_through=straight_through)
    torch.manual_seed(0)
    bottleneck = Quantized(config).train()
    h = (3 * torch.randn(16, 4)).requires_grad_()
    out = bottleneck(h, generator=torch.Generator().manual_seed(1))
    assert torch.equal(out.mean, torch.round(h))
    assert torch.equal(out.code, torch.round(h)) is straight_through  # uniform noise stands in for rounding
    assert set(out.terms) == {"rate"}
    # the rate is lmbda times the bits per sample of the noisy code
    half = Quantized(dataclasses.replace(config, lmbda=0.25))
    half.load_state_dict(bottleneck.state_dict())
    again = half.train()(h, generator=torch.Generator().manual_seed(1))
    assert again.terms["rate"].item() == pytest.approx(out.terms["rate"].item() / 2, rel=1e-6)
    (out.code.sum() + out.terms["rate"]).backward()
    assert h.grad is not None and torch.all(h.grad != 0)  # gradients reach the encoder either way


def test_tables_are_built_in_fit_and_agree_with_the_learned_rate(digits: np.ndarray) -> None:
    x = digits[:600, 0]
    ae = _fit(x, lmbda=0.05)
    tables = ae.net_.bottleneck.tables
    assert tables is not None  # no separate update step
    entropy.check_cdf_tables(tables)
    code = ae.transform(x)
    index = np.tile(np.arange(6), len(x))
    coded = entropy.information_bits(np.rint(code).astype(np.int64).ravel(), tables, index) / len(x)
    # the rate the model optimizes (its eval-mode estimate on rounded codes) is what the coder pays
    net = ae.net_.eval()
    with torch.no_grad():
        rate = net.loss(torch.from_numpy(ae.scaler_.transform(x)).reshape(len(x), 1, 8, 8))["rate"].item() / 0.05
    assert coded == pytest.approx(rate, rel=0.05)
    assert len(ae.compress(x)) * 8 <= coded * len(x) * 1.02 + 64


def test_a_range_of_lmbda_gives_a_range_of_rates(digits: np.ndarray) -> None:
    x = digits[:600, 0]
    fast = {"max_iter": 10, "learning_rate": 1e-2, "batch_size": 32}  # 10 epochs: 1147 > 944 > 12 bytes
    sizes = [len(_fit(x, lmbda=lmbda, **fast).compress(x)) for lmbda in (0.001, 0.03, 1.0)]
    assert sizes[0] > sizes[1] > sizes[2]


def test_code_constraints_are_refused(digits: np.ndarray) -> None:
    with pytest.raises(ConfigError, match="codes integers"):
        _fit(digits[:50, 0], penalty="topk", sparsity_k=2)
