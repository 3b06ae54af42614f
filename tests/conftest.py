"""Shared fixtures: a seeded generator and tiny data sets (no files, no network).

Hypothesis draws the same examples on every run (profile ``repeatable``), so the suite passes or fails
the same way on every machine; ``HYPOTHESIS_PROFILE=explore`` draws new ones each run, as the longer
fuzzing in ``bench/fuzz.py`` does.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import settings
from sklearn.datasets import load_digits
from threadpoolctl import threadpool_limits

from isthmus import Autoencoder

settings.register_profile("repeatable", derandomize=True, database=None)
settings.register_profile("explore")
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))

# tiny networks run fastest on one thread, and pytest-xdist runs one worker per core; so do numpy's and
# scipy's BLAS and OpenMP pools, whose idle threads otherwise spin on the other worker's core
torch.set_num_threads(1)
threadpool_limits(1)

#: Small, fast settings for a network that still learns something in a few epochs.
TINY = {"hidden_layer_sizes": (32,), "max_iter": 5, "verbose": 0, "random_state": 0, "batch_size": 32}

#: A small compressive model (bottleneck="quantized") for the bitstream tests.
QUANTIZED: dict[str, Any] = {
    **{"hidden_layer_sizes": (32,), "max_iter": 8, "batch_size": 64, "verbose": 0, "device": "cpu"},
    **{"bottleneck": "quantized", "loss": "mse", "lmbda": 0.02},
}


def fit(x: Any, **params: Any) -> Autoencoder:
    """An ``Autoencoder`` of the ``TINY`` settings, overridden by ``params``, fitted on ``x``.

    A few epochs are the point of a test, so the ConvergenceWarning they end with is ignored
    (``pyproject.toml``'s ``filterwarnings``); a test that wants it uses ``pytest.warns``.
    """
    return Autoencoder(**{**TINY, **params}).fit(x)


def fit_quantized(x: np.ndarray, seed: int = 0) -> Autoencoder:
    """A 6-channel ``QUANTIZED`` model fitted on ``x`` with seed ``seed``."""
    return Autoencoder(6, random_state=seed, **QUANTIZED).fit(x)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture
def tabular(rng: np.random.Generator) -> np.ndarray:
    """(240, 12) float32: 3 latent factors mixed into 12 columns with distinct scales, plus noise."""
    latent = rng.normal(size=(240, 3))
    mixing = rng.normal(size=(3, 12))
    x = np.tanh(latent @ mixing) * rng.uniform(1, 50, size=12) + rng.uniform(-20, 20, size=12)
    return (x + 0.05 * rng.normal(size=x.shape)).astype(np.float32)


@pytest.fixture(scope="session")
def digits() -> np.ndarray:
    """scikit-learn's digits as images, (1797, 1, 8, 8) float32 in 0..16."""
    return load_digits().images.astype(np.float32)[:, None]
