"""Checks of a finished fit: a model that learned nothing must not look like one that did.

A run can end normally (its epochs ran out, or the loss stopped improving) with a network that only
predicts the average sample. :func:`constant_predictor_warning` compares the model's reconstruction
with that constant guess, the mean row of the training data, and says so when it is no better.
"""

from __future__ import annotations

import numpy as np

from isthmus.model import AutoencoderNet, batched, device_of

#: training rows reconstructed for the check: enough for a stable mean, cheap beside the training itself
_ROWS = 4096


def constant_predictor_warning(net: AutoencoderNet, scaled: np.ndarray, precision: str = "auto") -> str | None:
    """A warning when ``net`` reconstructs ``scaled`` no better than the mean row does, else None.

    Parameters
    ----------
    net : AutoencoderNet
        The trained network (evaluated in inference mode).
    scaled : ndarray of shape (n_samples, *input_shape)
        Training samples in the network's scaled units; the first ``_ROWS`` are used.
    precision : str
        The inference precision, as in training.

    Returns
    -------
    str or None
        The message, naming both errors (sum of squares per sample, in scaled units).
    """
    x = np.ascontiguousarray(scaled[:_ROWS], dtype=np.float32)
    if len(x) < 2:
        return None
    flat = x.reshape(len(x), -1).astype(np.float64)
    observed = ~np.isnan(flat)  # a table's missing cells count for neither
    if not observed.any(axis=0).all():
        return None
    mean = np.nanmean(flat, axis=0)
    constant = float(np.where(observed, np.square(flat - mean), 0.0).sum(axis=1).mean())  # per sample
    if not np.isfinite(constant) or constant <= 0.0:  # constant data: the mean row is exact, as is any model
        return None
    net.eval()
    recon = batched(net.forward, np.nan_to_num(x), device_of(net), precision)  # (n_samples, *input_shape)
    if recon.size != flat.size:  # a network whose output is not one value per input value
        return None
    errors = np.where(observed, np.square(recon.reshape(len(x), -1).astype(np.float64) - flat), 0.0)
    model = float(errors.sum(axis=1).mean())
    if not np.isfinite(model) or model < constant:
        return None
    return (
        f"the model reconstructs its training data no better than their mean row does (squared error "
        f"{model:.4g} against {constant:.4g} per sample, in scaled units): it learned nothing beyond the "
        "average sample; train longer (max_iter), change learning_rate, or give more data"
    )
