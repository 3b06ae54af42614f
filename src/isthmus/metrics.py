"""Dimensionality reduction, measured: the autoencoder beside PCA with the same number of components.

Both are fitted on the same training data (the PCA baseline is fitted in ``Autoencoder.fit`` and stored
in the model file). For each, :func:`evaluate` reports

- reconstruction: MSE per value, per-sample sum of squared errors, PSNR for the training data's range,
  and explained variance ``1 - SSE / SST`` (SST: squared deviations of the evaluated data from their own
  mean), all in the caller's units;
- trustworthiness of the codes (scikit-learn's ``trustworthiness``, ``N_NEIGHBORS`` neighbours): how far
  neighbours in code space are also neighbours in the data, 1 being perfect; on a seeded subsample of at
  most ``TRUSTWORTHINESS_MAX_ROWS`` rows (it needs all pairwise distances);
- with labels: the accuracy of a ``N_NEIGHBORS``-nearest-neighbour classifier and of a logistic-regression
  probe (on standardized codes) that read the codes. Both are fitted on the codes of labelled training
  data when it is given, and scored on the evaluated data; without it they are scored by
  ``N_SPLITS``-fold stratified cross-validation on the evaluated data (each row predicted by classifiers
  fitted on the other folds). The result says which (``"classifiers"``).
"""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from isthmus.data.schema import is_table
from isthmus.errors import DataError
from isthmus.fitted import Fitted, check_fitted
from isthmus.inputs import as_input, as_samples

if TYPE_CHECKING:
    from isthmus.estimator import Autoencoder

#: neighbours of the kNN classifier and of trustworthiness
N_NEIGHBORS = 5
#: folds of the cross-validated accuracies when no training data is given
N_SPLITS = 5
#: trustworthiness is computed on at most this many rows (a seeded subsample): it is quadratic in memory
TRUSTWORTHINESS_MAX_ROWS = 5000
#: the keys of each method's dict in :func:`evaluate`, always all present (None when not measured)
METRICS = (
    "mse",
    "sse_per_sample",
    "psnr",
    "explained_variance",
    "trustworthiness",
    "knn_accuracy",
    "probe_accuracy",
)


def reconstruction_metrics(x: np.ndarray, x_hat: np.ndarray, data_range: float) -> dict[str, float | None]:
    """MSE per value, mean per-sample SSE, PSNR (dB) for peak ``data_range``, and explained variance.

    Explained variance is ``1 - SSE / SST`` over all values, SST the squared deviations of ``x`` from
    its per-feature mean (None when ``x`` is constant).
    """
    flat = x.reshape(len(x), -1).astype(np.float64)
    err = np.square(x_hat.reshape(len(x), -1).astype(np.float64) - flat)
    mse = float(err.mean())
    psnr = math.inf if mse == 0 else 10.0 * math.log10(data_range**2 / mse)
    total = float(np.square(flat - flat.mean(axis=0)).sum())
    explained = None if total == 0 else 1.0 - float(err.sum()) / total
    return {"mse": mse, "sse_per_sample": float(err.sum(axis=1).mean()), "psnr": psnr, "explained_variance": explained}


def _pca_scaled(ae: Autoencoder) -> bool:
    # the baseline lives in the scaled space (files written before it was lived in the caller's units)
    return bool(ae.resolved_.get("pca") == "scaled")


def pca_transform(ae: Autoencoder, x: np.ndarray) -> np.ndarray:
    """Codes ``(n_samples, k)`` of ``x`` (n_samples, *sample shape) under the PCA baseline fitted on the
    model's scaled training data. For a table the baseline is PCA of the one-hot table standardized
    (``pca_scale_``), a missing cell at its column's mean."""
    scale = getattr(ae, "pca_scale_", None)
    if scale is not None:
        return np.nan_to_num((x.reshape(len(x), -1) - ae.pca_mean_) / scale) @ ae.pca_components_.T
    if _pca_scaled(ae):
        x = ae.scaler_.transform(x.reshape(len(x), *ae.input_shape_))
    return (x.reshape(len(x), -1) - ae.pca_mean_) @ ae.pca_components_.T


def pca_reconstruct(ae: Autoencoder, x: np.ndarray) -> np.ndarray:
    """Project ``x`` onto the PCA baseline and back: ``(n_samples, n_features)`` in the caller's units."""
    scale = getattr(ae, "pca_scale_", None)
    if scale is not None:
        return (pca_transform(ae, x) @ ae.pca_components_) * scale + ae.pca_mean_
    recon = pca_transform(ae, x) @ ae.pca_components_ + ae.pca_mean_
    if _pca_scaled(ae):
        recon = ae.scaler_.inverse_transform(recon.reshape(len(x), *ae.input_shape_)).reshape(len(x), -1)
    return recon


def trustworthiness(x: np.ndarray, codes: np.ndarray, *, random_state: int = 0) -> float | None:
    """scikit-learn's trustworthiness of ``codes`` for ``x`` (None for fewer than 2 * N_NEIGHBORS + 1 rows)."""
    from sklearn.manifold import trustworthiness as sk_trustworthiness

    if len(x) <= 2 * N_NEIGHBORS:
        return None
    rows = np.arange(len(x))
    if len(x) > TRUSTWORTHINESS_MAX_ROWS:
        rows = np.sort(np.random.RandomState(random_state).choice(len(x), TRUSTWORTHINESS_MAX_ROWS, replace=False))
    flat = x.reshape(len(x), -1)[rows].astype(np.float64)
    return float(sk_trustworthiness(flat, codes[rows].astype(np.float64), n_neighbors=N_NEIGHBORS))


def _classifiers() -> dict[str, Any]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return {
        "knn_accuracy": KNeighborsClassifier(n_neighbors=N_NEIGHBORS),
        "probe_accuracy": make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)),
    }


def code_accuracies(
    codes: np.ndarray,
    y: npt.NDArray[np.int64],
    train_codes: np.ndarray | None = None,
    y_train: npt.NDArray[np.int64] | None = None,
    *,
    random_state: int = 0,
) -> dict[str, float]:
    """``{"knn_accuracy", "probe_accuracy"}`` of classifiers reading ``codes``: fitted on ``train_codes``
    when given, else cross-validated on ``codes`` (``N_SPLITS`` stratified folds)."""
    from sklearn.base import clone
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for name, classifier in _classifiers().items():
            if train_codes is not None:
                k = min(N_NEIGHBORS, len(train_codes))
                if name == "knn_accuracy":
                    classifier.set_params(n_neighbors=k)
                predicted = clone(classifier).fit(train_codes, y_train).predict(codes)
            else:
                folds = StratifiedKFold(n_splits=_n_splits(y), shuffle=True, random_state=random_state)
                if name == "knn_accuracy":
                    smallest_fold = len(y) - math.ceil(len(y) / folds.n_splits)
                    classifier.set_params(n_neighbors=min(N_NEIGHBORS, smallest_fold))
                predicted = cross_val_predict(classifier, codes, y, cv=folds)
            out[name] = float(np.mean(predicted == y))
    return out


def _n_splits(y: npt.NDArray[np.int64]) -> int:
    """Folds for cross-validation: N_SPLITS, fewer when the rarest class has fewer rows."""
    smallest = int(np.unique(y, return_counts=True)[1].min())
    if smallest < 2:
        raise DataError(
            f"a class has only {smallest} labelled row, too few to cross-validate the kNN and probe accuracies; "
            "give labelled training data (X_train, y_train; --train on the command line) or more rows"
        )
    return min(N_SPLITS, smallest)


def _check_labels(y: Any, n_samples: int, what: str, name: str) -> npt.NDArray[np.int64]:
    labels = np.asarray(y).reshape(-1)
    if len(labels) != n_samples:
        raise DataError(
            f"{name} has {len(labels)} labels but {what} has {n_samples} samples; give one label per sample"
        )
    if len(np.unique(labels)) < 2:
        raise DataError(f"{name} holds a single class; kNN and probe accuracies need at least two classes")
    return labels.astype(np.int64, copy=False)


def _rows(ae: Autoencoder, X: Any) -> np.ndarray:
    """``X`` as the network's rows in the caller's units: a table's encoding (NaN for missing cells), matched
    to the model's columns by name, or samples of the model's shape."""
    schema = getattr(ae, "schema_", None)
    if schema is None:
        return as_samples(X, ae.input_shape_)
    return schema.encode(schema.align(X if is_table(X) else as_input(X)))


def _standardized(ae: Autoencoder, wide: np.ndarray) -> np.ndarray:
    """A table's encoding standardized as its PCA baseline sees it (training means and deviations), 0 for missing."""
    return np.nan_to_num((wide.reshape(len(wide), -1) - ae.pca_mean_) / ae.pca_scale_)


def table_reconstruction_metrics(ae: Autoencoder, x: np.ndarray, x_hat: np.ndarray) -> dict[str, float | None]:
    """MSE per observed value, mean per-row SSE and explained variance of a table's reconstruction, all in
    the one-hot table standardized with the training means and deviations; missing cells are left out."""
    observed = ~np.isnan(x)
    z, z_hat = _standardized(ae, x), _standardized(ae, x_hat)
    err = np.where(observed, np.square(z_hat - z), 0.0)
    counts = observed.sum(axis=0)
    means = np.where(observed, z, 0.0).sum(axis=0) / np.maximum(counts, 1)
    total = float(np.where(observed, np.square(z - means), 0.0).sum())
    return {
        "mse": float(err.sum() / max(int(observed.sum()), 1)),
        "sse_per_sample": float(err.sum(axis=1).mean()),
        "psnr": None,
        "explained_variance": None if total == 0 else 1.0 - float(err.sum()) / total,
    }


def column_metrics(ae: Autoencoder, x: np.ndarray, recons: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """Per column of a table, how well each method reconstructs it from its code, on the observed cells:
    R² for a numeric column (1 - SSE / SST, in the caller's units), accuracy of the most likely level for a
    categorical one. ``[{"name", "kind", "metric": "r2" or "accuracy", "n_observed", "autoencoder", "pca"}]``."""
    schema = ae.schema_
    assert schema is not None  # only called for a model fitted on a table
    out = []
    for column, start in zip(schema.columns, schema.starts(), strict=True):
        entry: dict[str, Any] = {"name": column.name, "kind": column.kind}
        if column.kind == "numeric":
            truth = x[:, start]
            seen = ~np.isnan(truth)
            total = float(np.square(truth[seen] - truth[seen].mean()).sum()) if seen.any() else 0.0
            entry["metric"] = "r2"
            for name, recon in recons.items():
                sse = float(np.square(recon[seen, start] - truth[seen]).sum())
                entry[name] = None if total == 0 else 1.0 - sse / total
        else:
            block = x[:, start : start + column.width]
            seen = ~np.isnan(block[:, 0])
            level = block[seen].argmax(axis=1)
            entry["metric"] = "accuracy"
            for name, recon in recons.items():
                guess = recon[seen, start : start + column.width].argmax(axis=1)
                entry[name] = float(np.mean(guess == level)) if seen.any() else None
        entry["n_observed"] = int(seen.sum())
        out.append(entry)
    return out


def evaluate(
    ae: Autoencoder,
    X: Any,
    y: Any = None,
    *,
    X_train: Any = None,
    y_train: Any = None,
    random_state: int = 0,
) -> dict[str, Any]:
    """Metrics of ``ae`` and of its PCA baseline (same ``n_components``, same training data) on ``X``.

    Parameters
    ----------
    ae : Autoencoder
        A fitted model with its decoder.
    X : array-like of shape (n_samples, *sample shape)
        The data to evaluate, in the caller's units.
    y : array-like of shape (n_samples,), optional
        Class labels of ``X``: adds the kNN and probe accuracies of the codes.
    X_train, y_train : array-like, optional
        Labelled data whose codes the kNN classifier and the probe are fitted on (typically the
        training data). Without them, the accuracies are cross-validated on ``X``.
    random_state : int, default=0
        Seeds the cross-validation folds and the trustworthiness subsample.

    Returns
    -------
    dict
        ``{"n_samples", "n_components", "classifiers", "columns", "autoencoder": {...}, "pca": {...}}``.
        For a model fitted on a table, PCA is fitted on the one-hot table standardized with the training
        means and deviations (missing cells at the mean); the reconstruction metrics are measured in that
        standardized table, on the observed cells, ``psnr`` is None, and ``columns`` lists per column the
        R² (numeric) or accuracy (categorical) of each method (:func:`column_metrics`); else ``columns``
        is None. Each inner
        dict has the keys of ``METRICS``: ``mse``, ``sse_per_sample``, ``psnr``, ``explained_variance``,
        ``trustworthiness``, ``knn_accuracy``, ``probe_accuracy`` (the last two None without labels).
        ``classifiers`` is None without labels, else ``{"fit_on": "train" or "cross_validation",
        "n_train": rows fitted on (train) or None, "n_splits": folds (cross-validation) or None,
        "n_neighbors": N_NEIGHBORS}``.

    Raises
    ------
    DataError
        If ``y`` or ``y_train`` does not give one label per sample, holds a single class, or (without
        training data) a class has fewer than two rows; if ``X_train`` is given without ``y_train``.
    """
    check_fitted(ae)
    table = getattr(ae, "schema_", None) is not None
    x = _rows(ae, X)
    n = len(x)
    labels = None if y is None else _check_labels(y, n, "X", "y")
    if (X_train is None) != (y_train is None):
        raise DataError("give X_train and y_train together (labelled data to fit the kNN and probe on), or neither")
    train = None if X_train is None else _rows(ae, X_train)
    train_labels = None if train is None else _check_labels(y_train, len(train), "X_train", "y_train")

    # a table goes to transform as given (its columns are matched by name); x is its encoding, NaN where missing
    codes = {"autoencoder": ae.transform(X if table else x), "pca": pca_transform(ae, x)}
    recons = {"autoencoder": Fitted.of(ae).decode(codes["autoencoder"]), "pca": pca_reconstruct(ae, x)}
    result: dict[str, Any] = {"n_samples": n, "n_components": int(ae.n_components), "classifiers": None}
    result["columns"] = column_metrics(ae, x, recons) if table else None
    if labels is not None:
        result["classifiers"] = {
            "fit_on": "cross_validation" if train is None else "train",
            "n_train": None if train is None else len(train),
            "n_splits": _n_splits(labels) if train is None else None,
            "n_neighbors": N_NEIGHBORS,
        }
    for name in ("autoencoder", "pca"):
        metrics: dict[str, Any] = dict.fromkeys(METRICS)
        if table:  # in the standardized one-hot table, missing cells left out; no PSNR, which means nothing here
            metrics.update(table_reconstruction_metrics(ae, x, recons[name]))
            metrics["trustworthiness"] = trustworthiness(_standardized(ae, x), codes[name], random_state=random_state)
        else:
            metrics.update(reconstruction_metrics(x, recons[name], ae.data_range_))
            metrics["trustworthiness"] = trustworthiness(x, codes[name], random_state=random_state)
        if labels is not None:
            train_codes = None
            if train is not None:
                encoded = ae.transform(X_train if table else train)
                train_codes = encoded if name == "autoencoder" else pca_transform(ae, train)
            metrics.update(code_accuracies(codes[name], labels, train_codes, train_labels, random_state=random_state))
        result[name] = metrics
    return result
