"""Classical anomaly detectors beside a model's scores, on the same scaled rows.

A ROC-AUC alone does not say whether a model is good: 0.9 is poor on a table where every detector
reaches 0.99. ``detection_baselines`` gives the ROC-AUC and average precision of the model's
``score_samples`` beside two references computed on the same rows, scaled by the model's own scaler
(so no raw column in large units dominates them):

- ``"isolation_forest"``: scikit-learn's ``IsolationForest`` with its defaults (``random_state=0``),
  fitted on the scored rows themselves: unsupervised, the labels unused (the setting of ADBench);
- ``"pca"``: minus the squared error of the model's PCA baseline (``n_components`` axes, fitted on the
  model's scaled training rows at fit time), the linear autoencoder of the same width.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from isthmus.errors import DataError
from isthmus.scoring import anomaly_truth, detection_metrics

if TYPE_CHECKING:
    from isthmus.fitted import Fitted

#: reference detectors, in the order they are shown
BASELINES = ("isolation_forest", "pca")


def pca_baseline(
    x: np.ndarray, n_components: int, *, table: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(mean, components, scale or None) float32 of a PCA of ``x``'s flattened samples, at most ``n_components``
    wide. The estimator gives it the scaled rows, as the network sees them: on raw columns, one in dollars
    would own every axis. A table's PCA (``table``) is of its one-hot encoding in the caller's units,
    standardized (``scale``), missing cells at the mean."""
    from sklearn.decomposition import PCA

    flat = x.reshape(len(x), -1)
    scale = None
    if table:
        mean, spread = np.nanmean(flat, axis=0), np.nanstd(flat, axis=0)
        scale = np.where(spread > 0, spread, 1.0).astype(np.float32)
        flat = np.nan_to_num((flat - mean) / scale)
    k = min(n_components, *flat.shape)
    with np.errstate(divide="ignore", invalid="ignore"):  # constant data: zero total variance
        pca = PCA(n_components=k, random_state=0).fit(flat)
    centre = pca.mean_ if scale is None else mean
    return centre.astype(np.float32), pca.components_.astype(np.float32), scale


def is_anomaly_labels(labels: npt.ArrayLike) -> bool:
    """Whether ``labels`` read as anomaly flags: two values, 0/1 or +1/-1, both present."""
    found = set(np.unique(np.asarray(labels)).tolist())
    return found in ({0, 1}, {-1, 1})


def print_rows(result: dict[str, dict[str, float | int]], n_components: int) -> list[str]:
    """Lines of a table: ROC-AUC and average precision of the model and of each baseline."""
    names = {"autoencoder": "autoencoder", "isolation_forest": "IsolationForest", "pca": f"PCA-{n_components}"}
    lines = [f"{'anomaly detection':20}{'ROC-AUC':>10}{'avg. prec.':>12}"]
    for key in ("autoencoder", *BASELINES):
        m = result[key]
        lines.append(f"{names[key]:20}{m['roc_auc']:>10.4f}{m['average_precision']:>12.4f}")
    return lines


def detection_baselines(
    fitted: Fitted, x: np.ndarray, labels: npt.ArrayLike, scores: npt.ArrayLike
) -> dict[str, dict[str, float | int]]:
    """ROC-AUC and average precision of the model's scores and of each baseline on the rows ``x``.

    Parameters
    ----------
    fitted : Fitted
        A fitted model's record (``Fitted.of(model)``): its scaler and PCA baseline are used.
    x : ndarray of shape (n_samples, *sample shape)
        The scored rows, in the caller's units.
    labels : array-like of shape (n_samples,)
        0/1 (1 = anomaly) or +1/-1 (-1 = anomaly).
    scores : array-like of shape (n_samples,)
        The model's ``score_samples`` of ``x``.

    Returns
    -------
    dict
        ``{"autoencoder": m, "isolation_forest": m, "pca": m}``, each ``m`` as
        :func:`isthmus.scoring.detection_metrics` gives it.
    """
    from sklearn.ensemble import IsolationForest

    truth = anomaly_truth(labels)
    if len(truth) != len(x):
        raise DataError(f"{len(truth)} labels for {len(x)} rows; give one label per row")
    scaled = fitted.scale(np.asarray(x, dtype=np.float32)).reshape(len(x), -1)  # (n_samples, n_features)
    forest = IsolationForest(random_state=0).fit(scaled)
    return {
        "autoencoder": detection_metrics(np.asarray(scores, dtype=np.float64), truth),
        "isolation_forest": detection_metrics(forest.score_samples(scaled), truth),
        "pca": detection_metrics(_pca_scores(fitted, np.asarray(x, dtype=np.float32), scaled), truth),
    }


def _pca_scores(fitted: Fitted, x: np.ndarray, scaled: np.ndarray) -> npt.NDArray[np.float64]:
    """Minus the squared scaled error of the PCA baseline, ``(n_samples,)``."""
    mean, axes = fitted.pca_mean.astype(np.float64), fitted.pca_components.astype(np.float64)
    if fitted.resolved.get("pca") == "scaled":
        recon = (scaled - mean) @ axes.T @ axes + mean
    else:  # a file from before: the baseline in the caller's units, its reconstruction scaled here
        flat = x.reshape(len(x), -1).astype(np.float64)
        raw = ((flat - mean) @ axes.T @ axes + mean).astype(np.float32)
        recon = fitted.scale(raw.reshape(x.shape)).reshape(len(x), -1)
    return -np.square(recon - scaled).sum(axis=1)
