"""The ``"reconstruction_knn"`` anomaly score: reconstruction error and code-space neighbour distance.

A reconstruction error sees a row that leaves the data's manifold; it misses a row that lies on the
manifold's extension far from any training row, because an autoencoder extrapolates along its code
(a ReLU decoder is linear far out). The distance from a row's code to its ``N_NEIGHBOURS``-th nearest
training code sees exactly those rows, and misses what the code does not describe. The score adds the
two, each on a logarithmic scale (errors and distances are long-tailed, their ratios are what matter)
and standardized by the median and interquartile range of the training rows' values, so that neither
dominates by its units: on a table, the one is in squared scaled units summed over features, the other
in code units.

What the score needs from the training data, the ``score_state`` of the fitted record (stored in the model
file as ``score.*`` tensors):

- ``"codes"``: ``(n_estimators, n_reference, n_components)``: per network, the codes of at most
  ``MAX_REFERENCE`` training rows (a seeded subsample), the neighbours searched;
- ``"center"``, ``"spread"``: ``(n_estimators, 2)``: per network, the medians and interquartile ranges of
  the log error and the log distance on those rows (each row's distance to the others, itself left out).

With an ensemble (``n_estimators`` > 1, Chen et al., "Outlier detection with autoencoder ensembles", SDM
2017), the standardized scores of its networks are averaged: each network's is a robust z-score against
the training rows, so they share units, and the average has less of the variance of one small network
trained on a small table (its seed decides much of what it misses).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from isthmus.columns import row_totals
from isthmus.errors import ModelFileError, NotFittedError

if TYPE_CHECKING:
    from isthmus.fitted import Fitted
    from isthmus.model import AutoencoderNet

#: the neighbour whose distance is the score (as pyod's KNN, method "largest"): a small cluster of up to
#: this many anomalies still lies far from its N_NEIGHBOURS-th neighbour
N_NEIGHBOURS = 10
#: training codes kept for the neighbour search: bounds the model file (n_components floats each) and
#: the search's time; a seeded subsample beyond it
MAX_REFERENCE = 10_000
#: floor on a log value (a squared error or a distance of exactly 0 stays finite)
_TINY = 1e-12
#: floor on a spread: a component that is the same for every training row counts in its own units
_MIN_SPREAD = 1e-6

Scores = npt.NDArray[np.float64]


def _errors(
    fitted: Fitted, net: AutoencoderNet, scaled: npt.NDArray[np.float32]
) -> tuple[Scores, npt.NDArray[np.float32]]:
    """Sums of squared scaled errors ``(n,)`` and codes ``(n, n_components)`` of scaled rows, in one pass.

    For a table with categorical columns or missing cells (``isthmus.columns.TableHead``) the errors are its
    weighted per-column losses on one scale, summed over the observed cells (``columns.row_totals``).
    """
    net.eval()
    codes = fitted.batched(net.encode, scaled).reshape(len(scaled), -1)
    if not net.head.plain:
        return row_totals(fitted.batched(net.cell_losses, scaled).astype(np.float64)), codes
    recon = fitted.batched(net.decode, codes)  # (n, *net shape), scaled units
    error = row_totals(np.square(recon.astype(np.float64) - scaled).reshape(len(scaled), -1))  # NaN: missing
    return error, codes


def _kth_distance(reference: npt.NDArray[np.float32], codes: npt.NDArray[np.float32], skip_self: bool) -> Scores:
    """Distance from each of ``codes`` to its ``N_NEIGHBOURS``-th nearest row of ``reference``."""
    from sklearn.neighbors import NearestNeighbors

    k = min(N_NEIGHBOURS + int(skip_self), len(reference))
    search = NearestNeighbors(n_neighbors=k).fit(reference)
    return search.kneighbors(codes, return_distance=True)[0][:, -1].astype(np.float64)


def _logs(error: Scores, distance: Scores) -> npt.NDArray[np.float64]:
    # (n, 2): the two components on a log scale
    return np.log(np.maximum(np.stack([error, distance], axis=1), _TINY))


def _networks(fitted: Fitted) -> list[AutoencoderNet]:
    return [fitted.net, *(fitted.members or [])]


def fit_state(fitted: Fitted, scaled: npt.NDArray[np.float32], seed: int) -> dict[str, np.ndarray]:
    """The score's state from scaled training rows ``(n_samples, *net shape)``: per network of the
    ensemble, the reference codes, and the center and spread of each log component on them."""
    if len(scaled) > MAX_REFERENCE:
        scaled = scaled[np.sort(np.random.RandomState(seed).choice(len(scaled), MAX_REFERENCE, replace=False))]
    codes, centers, spreads = [], [], []
    for net in _networks(fitted):
        error, code = _errors(fitted, net, scaled)
        logs = _logs(error, _kth_distance(code, code, skip_self=True))
        q1, center, q3 = np.percentile(logs, [25.0, 50.0, 75.0], axis=0)
        codes.append(code)
        centers.append(center)
        spreads.append(np.maximum(q3 - q1, _MIN_SPREAD))
    return {
        "codes": np.stack(codes).astype(np.float32),
        "center": np.stack(centers).astype(np.float32),
        "spread": np.stack(spreads).astype(np.float32),
    }


def reconstruction_knn(fitted: Fitted, scaled: npt.NDArray[np.float32]) -> Scores:
    """Minus the sum of the standardized log reconstruction error and log code-space neighbour distance,
    averaged over the networks of the ensemble."""
    state = fitted.score_state or {}
    if "codes" not in state:
        raise NotFittedError(
            "anomaly_score='reconstruction_knn' needs the training codes that fit stores with it; this model "
            "was fitted with another anomaly_score, so refit it with anomaly_score='reconstruction_knn'"
        )
    nets = _networks(fitted)
    width = fitted.net.config.n_components
    missing = np.zeros((0, 0))
    reference, center, spread = state["codes"], state.get("center", missing), state.get("spread", missing)
    n = len(nets)
    if reference.ndim != 3 or reference.shape[0] != n or reference.shape[1] < 1 or reference.shape[2] != width:
        raise ModelFileError(
            f"the reference codes of anomaly_score='reconstruction_knn' have shape {reference.shape}, not "
            f"({n}, n_reference, {width}); the model file is corrupt, refit the model"
        )
    if center.shape != (n, 2) or spread.shape != (n, 2) or (spread <= 0).any():
        raise ModelFileError(
            f"the center and spread of anomaly_score='reconstruction_knn' must have shape ({n}, 2), the spreads "
            "positive; the model file is corrupt, refit the model"
        )
    total = np.zeros(len(scaled))
    for i, net in enumerate(nets):
        error, codes = _errors(fitted, net, scaled)
        logs = _logs(error, _kth_distance(reference[i], codes, skip_self=False))
        total += ((logs - center[i].astype(np.float64)) / spread[i].astype(np.float64)).sum(axis=1)
    return -total / n
