"""Reconstruction metrics of the autoencoder beside PCA with the same number of components."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from isthmus.estimator import Autoencoder


def reconstruction_metrics(x: np.ndarray, x_hat: np.ndarray, data_range: float) -> dict[str, float]:
    """MSE per value, mean per-sample sum of squared errors, and PSNR (dB) for peak ``data_range``."""
    err = np.square(x_hat.reshape(len(x), -1).astype(np.float64) - x.reshape(len(x), -1))
    mse = float(err.mean())
    psnr = math.inf if mse == 0 else 10.0 * math.log10(data_range**2 / mse)
    return {"mse": mse, "sse_per_sample": float(err.sum(axis=1).mean()), "psnr": psnr}


def pca_reconstruct(ae: Autoencoder, x: np.ndarray) -> np.ndarray:
    """Project flattened ``x`` onto the PCA baseline fitted on the model's training data, and back."""
    flat = x.reshape(len(x), -1)
    codes = (flat - ae.pca_mean_) @ ae.pca_components_.T  # (n_samples, k)
    return codes @ ae.pca_components_ + ae.pca_mean_


def evaluate(ae: Autoencoder, X: Any) -> dict[str, Any]:
    """Metrics of ``ae`` and of its PCA baseline on ``X``, with fixed keys.

    Returns
    -------
    dict
        ``{"n_samples", "n_components", "autoencoder": {...}, "pca": {...}}`` where each inner dict has
        ``mse``, ``sse_per_sample`` and ``psnr``.
    """
    x = ae._validate(X, reset=False)
    return {
        "n_samples": len(x),
        "n_components": int(ae.n_components),
        "autoencoder": reconstruction_metrics(x, ae.reconstruct(x), ae.data_range_),
        "pca": reconstruction_metrics(x, pca_reconstruct(ae, x), ae.data_range_),
    }
