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
import torch

from isthmus.columns import row_totals
from isthmus.errors import DataError, ModelFileError, NotFittedError
from isthmus.nets import crop_like

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

#: numbers of the reference rows kept for the input distance (``"reconstruction_knn_input"``): bounds the model
#: file (10,000 rows of 200 features; fewer rows of wider ones) and the search's time
MAX_ROW_VALUES = 2_000_000

Scores = npt.NDArray[np.float64]
Cells = npt.NDArray[np.float64]
Codes = npt.NDArray[np.float32]


def _cells(fitted: Fitted, net: AutoencoderNet, scaled: npt.NDArray[np.float32]) -> tuple[Cells, Codes]:
    """Per-cell errors ``(n, n_cells)`` (squared scaled errors; a table's weighted column losses, NaN where a
    cell is missing) and codes ``(n, n_components)`` of scaled rows, in one pass."""
    net.eval()
    code = fitted.batched(net.encode, scaled)  # (n, n_components), or a code map of a fully convolutional net
    codes = code.reshape(len(scaled), -1)
    if not net.head.plain:
        return fitted.batched(net.cell_losses, scaled).astype(np.float64), codes
    # (n, *net shape), scaled units; a fully convolutional decoder covers the input padded to its stride
    recon = crop_like(torch.from_numpy(fitted.batched(net.decode, code)), torch.from_numpy(scaled)).numpy()
    return np.square(recon.astype(np.float64) - scaled).reshape(len(scaled), -1), codes


def _kth_distance(reference: npt.NDArray[np.float32], queries: npt.NDArray[np.float32], skip_self: bool) -> Scores:
    """Distance from each of ``queries`` to its ``N_NEIGHBOURS``-th nearest row of ``reference``."""
    from sklearn.neighbors import NearestNeighbors

    k = min(N_NEIGHBOURS + int(skip_self), len(reference))
    search = NearestNeighbors(n_neighbors=k).fit(reference)
    return search.kneighbors(queries, return_distance=True)[0][:, -1].astype(np.float64)


def _log(values: Scores) -> Scores:
    return np.log(np.maximum(values, _TINY))


def _networks(fitted: Fitted) -> list[AutoencoderNet]:
    return [fitted.net, *(fitted.members or [])]


def _subsample(scaled: npt.NDArray[np.float32], rows: int, seed: int) -> npt.NDArray[np.float32]:
    if len(scaled) <= rows:
        return scaled
    return scaled[np.sort(np.random.RandomState(seed).choice(len(scaled), rows, replace=False))]


def _flat_rows(scaled: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    # (n, n_values): a missing cell (NaN) at its column's centre, 0 after the scaler, for the input distance
    return np.nan_to_num(scaled.reshape(len(scaled), -1).astype(np.float32))


def feature_weights(cells: Cells) -> npt.NDArray[np.float64]:
    """``(n_cells,)`` per-feature weights of the errors ``(n_rows, n_cells)`` of training rows: one over each
    feature's median error, that median floored at the median over the features.

    A feature that the network cannot reconstruct (noise, a column unrelated to the others) has a large error
    on every row and would rank rows by its noise; divided by its typical error, a feature counts by how
    unusual a row's error is *for that feature*. The floor keeps a feature that is almost always
    reconstructed exactly (a column that is nearly constant, a pixel nearly always blank) from counting its
    rare small errors as huge.
    """
    with np.errstate(all="ignore"):
        typical = np.nan_to_num(np.nanmedian(cells, axis=0))  # (n_cells,); a column never observed: 0
    floor = max(float(np.median(typical)), _TINY)
    return 1.0 / np.maximum(typical, floor)


def _input_log(
    state: dict[str, np.ndarray], scaled: npt.NDArray[np.float32], training: bool
) -> npt.NDArray[np.float64] | None:
    """``(n,)`` log input distances where the state holds reference rows (the same for every network), else None."""
    if "rows" not in state:
        return None
    return _log(_kth_distance(state["rows"], _flat_rows(scaled), skip_self=training))


def _components(
    fitted: Fitted,
    net: AutoencoderNet,
    scaled: npt.NDArray[np.float32],
    state: dict[str, np.ndarray],
    index: int,
    training: bool,
    input_log: npt.NDArray[np.float64] | None,
) -> npt.NDArray[np.float64]:
    """``(n, n_parts)`` log components of one network: the error, the code distance and, where given, the input
    distance. ``training``: the rows are the reference rows themselves (each row's distance to the others,
    itself left out)."""
    cells, codes = _cells(fitted, net, scaled)
    if codes.shape[1] != state["codes"].shape[2]:
        raise DataError(
            f"this anomaly score compares codes with the training samples' codes of {state['codes'].shape[2]} "
            f"values, but these samples give code maps of {codes.shape[1]}; score samples of the training size, "
            "or use anomaly_score='reconstruction'"
        )
    if "weights" in state:
        cells = cells * state["weights"][index].astype(np.float64)
    parts = [_log(row_totals(cells)), _log(_kth_distance(state["codes"][index], codes, skip_self=training))]
    if input_log is not None:
        parts.append(input_log)
    return np.stack(parts, axis=1)


def _fit(fitted: Fitted, scaled: npt.NDArray[np.float32], seed: int, *, inputs: bool) -> dict[str, np.ndarray]:
    scaled = _subsample(scaled, MAX_REFERENCE, seed)
    state: dict[str, np.ndarray] = {}
    if inputs:  # the reference rows of the input distance: at most MAX_ROW_VALUES numbers
        n_values = int(np.prod(scaled.shape[1:]))
        state["rows"] = _flat_rows(_subsample(scaled, max(N_NEIGHBOURS + 1, MAX_ROW_VALUES // n_values), seed))
    nets = _networks(fitted)
    codes, weights, centers, spreads = [], [], [], []
    for net in nets:
        cells, code = _cells(fitted, net, scaled)
        codes.append(code)
        if inputs:
            weights.append(feature_weights(cells))
    state["codes"] = np.stack(codes).astype(np.float32)
    if inputs:
        state["weights"] = np.stack(weights).astype(np.float32)
    input_log = _input_log(state, scaled, training=True)
    for i, net in enumerate(nets):
        # the training rows' own components, each row's distances to the others (itself left out; with rows
        # wider than MAX_ROW_VALUES / MAX_REFERENCE the input reference is a subsample, and a row outside it
        # skips one true neighbour: a slightly larger input distance, on the side of flagging less)
        logs = _components(fitted, net, scaled, state, i, training=True, input_log=input_log)
        q1, center, q3 = np.percentile(logs, [25.0, 50.0, 75.0], axis=0)
        centers.append(center)
        spreads.append(np.maximum(q3 - q1, _MIN_SPREAD))
    state["center"] = np.stack(centers).astype(np.float32)
    state["spread"] = np.stack(spreads).astype(np.float32)
    return state


def fit_state(fitted: Fitted, scaled: npt.NDArray[np.float32], seed: int) -> dict[str, np.ndarray]:
    """The state of ``"reconstruction_knn"`` from scaled training rows ``(n_samples, *net shape)``: per network
    of the ensemble, the reference codes, and the center and spread of each log component on them."""
    return _fit(fitted, scaled, seed, inputs=False)


def fit_state_input(fitted: Fitted, scaled: npt.NDArray[np.float32], seed: int) -> dict[str, np.ndarray]:
    """The state of ``"reconstruction_knn_input"``: that of ``"reconstruction_knn"``, with per-feature error
    weights per network and the reference rows of the input distance."""
    return _fit(fitted, scaled, seed, inputs=True)


def _score(fitted: Fitted, scaled: npt.NDArray[np.float32], name: str, n_parts: int) -> Scores:
    state = fitted.score_state or {}
    if "codes" not in state or (n_parts == 3) != ("rows" in state):
        raise NotFittedError(
            f"anomaly_score={name!r} needs the training state that fit stores with it; this model was fitted "
            f"with another anomaly_score, so refit it with anomaly_score={name!r}"
        )
    nets = _networks(fitted)
    width = fitted.net.config.n_components
    missing = np.zeros((0, 0))
    reference, center, spread = state["codes"], state.get("center", missing), state.get("spread", missing)
    n = len(nets)
    # a fully convolutional network's codes are maps, flattened: n_components values per position
    wrong_width = reference.shape[-1] % width if fitted.spatial else reference.shape[-1] != width
    if reference.ndim != 3 or reference.shape[0] != n or reference.shape[1] < 1 or wrong_width:
        raise ModelFileError(
            f"the reference codes of anomaly_score={name!r} have shape {reference.shape}, not "
            f"({n}, n_reference, {width}); the model file is corrupt, refit the model"
        )
    if center.shape != (n, n_parts) or spread.shape != (n, n_parts) or (spread <= 0).any():
        raise ModelFileError(
            f"the center and spread of anomaly_score={name!r} must have shape ({n}, {n_parts}), the spreads "
            "positive; the model file is corrupt, refit the model"
        )
    if n_parts == 3:
        rows, weights = state["rows"], state.get("weights", missing)
        n_values = int(np.prod(scaled.shape[1:]))
        if rows.ndim != 2 or rows.shape[1] != n_values or len(rows) < 1 or weights.ndim != 2 or len(weights) != n:
            raise ModelFileError(
                f"the reference rows {rows.shape} or feature weights {weights.shape} of anomaly_score={name!r} "
                f"do not fit {n} networks and rows of {n_values} values; the model file is corrupt, refit the model"
            )
    total = np.zeros(len(scaled))
    input_log = _input_log(state, scaled, training=False)
    for i, net in enumerate(nets):
        logs = _components(fitted, net, scaled, state, i, training=False, input_log=input_log)
        total += ((logs - center[i].astype(np.float64)) / spread[i].astype(np.float64)).sum(axis=1)
    return -total / n


def reconstruction_knn(fitted: Fitted, scaled: npt.NDArray[np.float32]) -> Scores:
    """Minus the sum of the standardized log reconstruction error and log code-space neighbour distance,
    averaged over the networks of the ensemble."""
    return _score(fitted, scaled, "reconstruction_knn", 2)


def reconstruction_knn_input(fitted: Fitted, scaled: npt.NDArray[np.float32]) -> Scores:
    """Minus the sum of the standardized log per-feature-normalized reconstruction error, log code-space
    neighbour distance and log input-space neighbour distance, averaged over the networks of the ensemble."""
    return _score(fitted, scaled, "reconstruction_knn_input", 3)
