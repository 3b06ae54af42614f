"""Anomaly scores and thresholds, in scikit-learn's outlier convention (as in ``IsolationForest``).

``Autoencoder.score_samples`` is higher for normal rows; ``offset_``, set at the end of ``fit`` from the
training rows' scores, is the threshold; ``decision_function = score_samples - offset_`` is negative for
anomalies, and ``predict`` gives +1 (normal) or -1 (anomaly).

Scores, by the ``anomaly_score`` parameter (the table ``SCORES`` at the end): each maps the fitted
estimator and scaled samples ``(n_samples, *net shape)`` to ``(n_samples,)`` float64 scores.

- ``"reconstruction"``: minus the sum of squared reconstruction errors, measured after the fitted scaler
  (the units the network was trained in), so that every feature counts as the scaler weighs it rather
  than by its raw units: for tabular data with standard scaling a column in dollars does not drown a
  column in years. For images (one global scale) it is the caller-unit error divided by scale**2. The
  per-feature errors in the caller's units are ``Autoencoder.reconstruction_error(X, per_feature=True)``.
  A table with categorical columns or missing cells puts its columns on one scale (``isthmus.columns``):
  a numeric cell's squared error in standard deviations, a categorical cell's Brier score (the squared
  error of its probabilities against the one-hot block; a cross-entropy over the training entropy of the
  levels in models written before), each times its column's weight; missing cells count nothing and
  the row's sum is scaled by columns / observed columns. ``Autoencoder.score_contributions`` gives each
  column's part. A fully convolutional model's sums are taken per training crop: times the crop's area over
  the image's, so that images of every size are on the scale of the crops ``offset_`` was set on.
- ``"reconstruction_l4"``: minus the sum of the fourth powers of the same scaled errors. It weighs a
  few large errors (a stroke missing or added) above many small ones (a stroke drawn a little
  thicker or shifted), which is what tells an image of another kind from a sloppy one: on one-class
  MNIST (``bench/mnist_oneclass.py``) the mean ROC-AUC rises from 0.967 to 0.971 with the same
  networks, most on the digits that share strokes with others (8: 0.893 to 0.911, 2: 0.940 to 0.959).
- ``"elbo"``: the evidence lower bound of a variational model, in nats, averaged over ``ELBO_SAMPLES``
  posterior draws.
- ``"log_likelihood"``: the importance-weighted estimate of log p(x) with ``LL_IMPORTANCE`` samples, equal
  to ``Autoencoder.log_likelihood(X, random_state=SEED)``.
- ``"reconstruction_knn"``: the log reconstruction error plus the log distance from the row's code to its
  10th nearest training code, each a robust z-score against the training rows, averaged over the networks
  of an ensemble (``n_estimators``); see ``isthmus.neighbours``. Its state (the training codes) is fitted
  at the end of ``fit`` (the entry's ``fit``) and stored in the model file.
- ``"reconstruction_knn_input"``: the same with the reconstruction error normalized per feature (each
  feature's squared error over its median on the training rows, ``neighbours.feature_weights``) and a
  third component, the log distance from the scaled row itself to its 10th nearest training row (what
  pyod's KNN detector measures): three detectors that fail on different tables, so that their average
  is rarely far from the best of them (the ``anomaly`` preset's score).

The Monte-Carlo scores draw from a generator seeded with ``SEED`` on every call, so scoring the same
rows twice gives the same numbers. Both are densities of ``X`` in the caller's units (as
``log_likelihood`` documents); a constant shift of all scores does not change any ranking.

Thresholds, by the ``contamination`` parameter:

- a number ``c`` in (0, 0.5]: ``offset_`` is the ``c`` quantile of the scores of held-out rows, so that a
  fraction ``c`` of new rows like the training data is flagged: ``fit`` holds out ``validation_fraction`` of
  the rows (the early-stopping split) and trains on the others. Scores of the training rows themselves are
  optimistic (the network has seen them): a quantile of those flags more new normal rows than ``c``;
- ``"auto"``: Tukey's fence (the box-plot rule for outliers) on a logarithmic scale, which assumes no
  contamination rate: a row is an anomaly when its log reconstruction error lies more than 1.5
  interquartile ranges above the upper quartile of the training rows' log errors, or, for the scores
  that are logarithms already (``"elbo"``, ``"log_likelihood"``), when its score lies more than 1.5
  interquartile ranges below their lower quartile. It flags 0.35% of normally distributed values; on
  the log scale, squared errors (long-tailed) are close to that, where a fence on the raw errors
  flags their whole tail (several percent to over 10% of training rows in our tests).

With ``"auto"``, the fence is put on the held-out rows with ``early_stopping``, else on the training rows,
whose optimistic scores make held-out normal data flagged somewhat more often than the training rows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import numpy.typing as npt
import torch

from isthmus import generative, neighbours
from isthmus.columns import row_totals
from isthmus.errors import ConfigError, DataError, NotFittedError
from isthmus.model import AutoencoderNet

if TYPE_CHECKING:
    from isthmus.fitted import Fitted

#: seed of the posterior draws of the Monte-Carlo scores (fixed, so that scores are repeatable)
SEED = 0
#: posterior draws averaged in the "elbo" score
ELBO_SAMPLES = 16
#: importance samples of the "log_likelihood" score (the default of ``Autoencoder.log_likelihood``)
LL_IMPORTANCE = 100
#: the Monte-Carlo scores set ``offset_`` from at most this many training rows (a seeded subsample)
MAX_OFFSET_ROWS = 10_000
#: Tukey's fence: a score this many interquartile ranges below the lower quartile is an outlier
FENCE = 1.5

Scores = npt.NDArray[np.float64]


class Score(NamedTuple):
    """A table entry: the score, whether it needs a posterior, the training rows ``offset_`` uses, and
    whether the score is minus an error (so that ``"auto"`` puts its fence on the error's logarithm)."""

    compute: Callable[[Fitted, npt.NDArray[np.float32]], Scores]
    variational: bool = False
    offset_rows: int | None = None  # None: every training row
    negative_error: bool = False
    # what the score learns from the scaled training rows at the end of fit (the record's score_state, stored
    # in the model file): named arrays, given the rows and a seed
    fit: Callable[[Fitted, npt.NDArray[np.float32], int], dict[str, np.ndarray]] | None = None
    # averages over every network of an ensemble (n_estimators > 1); the other scores read the first alone
    ensemble: bool = False


def check_score(net: AutoencoderNet, name: str) -> None:
    """Raise ConfigError if the score ``name`` needs a posterior that ``net`` does not have."""
    if SCORES[name].variational and not net.bottleneck.variational:
        raise ConfigError(
            f"anomaly_score={name!r} needs a variational model, but bottleneck={net.config.bottleneck!r} has no "
            "posterior; use anomaly_score='reconstruction' or bottleneck='gaussian' (e.g. preset 'vae')"
        )
    if net.config.n_estimators > 1 and not SCORES[name].ensemble:
        averaging = ", ".join(repr(k) for k, v in SCORES.items() if v.ensemble)
        raise ConfigError(
            f"n_estimators={net.config.n_estimators} trains an ensemble, but anomaly_score={name!r} reads one "
            f"network; use n_estimators=1, or a score that averages the ensemble: {averaging}"
        )


def score_samples(fitted: Fitted, scaled: npt.NDArray[np.float32], name: str) -> Scores:
    """``(n_samples,)`` float64 scores ``name`` of scaled samples ``(n_samples, *net shape)``; higher is normal."""
    fitted.check_decoder(f"compute anomaly_score={name!r}")
    check_score(fitted.net, name)
    fitted.net.eval()
    return SCORES[name].compute(fitted, scaled)


def threshold(scores: Scores, contamination: float | str, *, negative_error: bool = False) -> float:
    """The ``offset_`` for training ``scores``: the ``contamination`` quantile, or Tukey's fence for ``"auto"``
    (on ``log(-scores)`` when ``negative_error``, else on the scores)."""
    if not isinstance(contamination, str):
        return float(np.percentile(scores, 100.0 * contamination))
    # "auto", the only string the config allows
    if negative_error:
        log_error = np.log(np.maximum(-scores, np.finfo(np.float64).tiny))  # exact reconstructions stay finite
        q1, q3 = np.percentile(log_error, [25.0, 75.0])
        with np.errstate(over="ignore"):  # mostly exact reconstructions: an infinite fence flags nothing
            return -float(np.exp(q3 + FENCE * (q3 - q1)))
    q1, q3 = np.percentile(scores, [25.0, 75.0])
    return float(q1 - FENCE * (q3 - q1))


def fit_state(fitted: Fitted, scaled: npt.NDArray[np.float32], seed: int, name: str) -> dict[str, np.ndarray]:
    """The ``score_state`` of the score ``name`` from scaled training rows (empty for most scores)."""
    fit = SCORES[name].fit
    if fit is None:
        return {}
    fitted.net.eval()
    return fit(fitted, scaled, seed)


def offset(fitted: Fitted) -> float:
    """The threshold ``offset_``, or NotFittedError for a model loaded from a file written before thresholds."""
    if fitted.offset is None:
        raise NotFittedError(
            "this model has no offset_ (its file was written before isthmus stored anomaly thresholds); "
            "refit it, or set model.offset_ to a threshold on score_samples, e.g. a low quantile of the "
            "training rows' scores"
        )
    return float(fitted.offset)


def training_offset(
    fitted: Fitted, scaled: npt.NDArray[np.float32], seed: int, name: str, contamination: float | str
) -> float:
    """``offset_`` for the score ``name`` from scaled samples (a seeded subsample for the Monte-Carlo scores):
    the rows the fit held out where it has them, else its training rows."""
    entry = SCORES[name]
    if entry.offset_rows is not None and len(scaled) > entry.offset_rows:
        scaled = scaled[np.sort(np.random.RandomState(seed).choice(len(scaled), entry.offset_rows, replace=False))]
    return threshold(score_samples(fitted, scaled, name), contamination, negative_error=entry.negative_error)


# ---------------------------------------------------------------------------------------- evaluating


def anomaly_truth(labels: npt.ArrayLike, name: str = "labels") -> npt.NDArray[np.bool_]:
    """Which rows are anomalies: labels 0/1 (1 = anomaly) or +1/-1 (-1 = anomaly, as ``predict`` gives)."""
    values = np.asarray(labels)
    found = set(np.unique(values).tolist())
    if found <= {0, 1}:
        truth = values == 1
    elif found <= {-1, 1}:
        truth = values == -1
    else:
        shown = ", ".join(str(v) for v in sorted(found)[:6]) + (", ..." if len(found) > 6 else "")
        raise DataError(
            f"{name} holds the values {shown}; anomaly labels must be 0/1 (1 = anomaly) or +1/-1 "
            "(-1 = anomaly, as predict gives)"
        )
    if truth.all() or not truth.any():
        which = "every" if truth.all() else "no"
        raise DataError(
            f"{name} marks {which} row as an anomaly; ROC-AUC and average precision need both normal and anomalous rows"
        )
    return truth


def detection_metrics(scores: npt.ArrayLike, is_anomaly: npt.ArrayLike) -> dict[str, float | int]:
    """How well low ``scores`` find the anomalies: ``{"roc_auc", "average_precision", "n_anomalies"}``.

    Both metrics rank rows by ``-scores`` with the anomalies as the positive class; 0.5 and the anomaly
    rate are what a random ranking gets.
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    truth = np.asarray(is_anomaly, dtype=bool)
    ranking = -np.asarray(scores, dtype=np.float64)
    return {
        "roc_auc": float(roc_auc_score(truth, ranking)),
        "average_precision": float(average_precision_score(truth, ranking)),
        "n_anomalies": int(truth.sum()),
    }


# ---------------------------------------------------------------------------------------- the scores


def _log_scale(fitted: Fitted) -> float:
    return generative.log_jacobian(fitted.scaler.scale, fitted.resolved["loss"])


def cell_errors(fitted: Fitted, scaled: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    """``(n_samples, n_cells)`` float64 errors that the reconstruction scores add up, NaN where missing.

    Squared errors after the scaler per value; for a table with categorical columns or missing cells
    (``isthmus.columns.TableHead``), each column's weighted loss: squared error for a numeric column,
    the schema's ``categorical_loss`` for a categorical one (one scale for both).
    """
    if fitted.net.head.plain:
        recon = fitted.batched(fitted.net, scaled)  # (n_samples, *net shape), scaled units
        return np.square(recon.astype(np.float64) - scaled).reshape(len(scaled), -1)
    return fitted.batched(fitted.net.cell_losses, scaled).astype(np.float64)


def contributions(fitted: Fitted, scaled: npt.NDArray[np.float32], name: str) -> npt.NDArray[np.float64]:
    """``(n_samples, n_cells)``: what each value (table: each column) adds to minus the score ``name``, NaN
    where missing.

    Each row's contributions add up to ``-score_samples`` of that row (``nansum``). Only the reconstruction
    scores are sums over cells; the variational scores are refused with a ConfigError.
    """
    fitted.check_decoder(f"compute anomaly_score={name!r}")
    if name not in ("reconstruction", "reconstruction_l4"):
        raise ConfigError(
            f"anomaly_score={name!r} is not a sum over cells, so it has no per-cell contributions; "
            "explain the scores of a model with anomaly_score='reconstruction' or 'reconstruction_l4'"
        )
    fitted.net.eval()
    errors = cell_errors(fitted, scaled)
    if name == "reconstruction_l4":
        errors = np.square(errors)
    missing = np.isnan(errors)
    if missing.any():
        errors = errors * (errors.shape[1] / np.maximum((~missing).sum(axis=1), 1))[:, None]
    return errors * per_crop(fitted, scaled)


def per_crop(fitted: Fitted, scaled: npt.NDArray[np.float32]) -> float:
    """1, or for a fully convolutional model the training crop's area over the area of the images ``scaled``
    ``(n, ..., height, width)``: a sum of errors over a 512x512 image would otherwise be 256 times a 32x32
    crop's, and every large image an anomaly against the threshold set on crops."""
    if not fitted.spatial:
        return 1.0
    return (fitted.input_shape[-2] * fitted.input_shape[-1]) / (scaled.shape[-2] * scaled.shape[-1])


def _reconstruction(fitted: Fitted, scaled: npt.NDArray[np.float32]) -> Scores:
    return -row_totals(cell_errors(fitted, scaled)) * per_crop(fitted, scaled)


def _reconstruction_l4(fitted: Fitted, scaled: npt.NDArray[np.float32]) -> Scores:
    return -row_totals(np.square(cell_errors(fitted, scaled))) * per_crop(fitted, scaled)


def _elbo(fitted: Fitted, scaled: npt.NDArray[np.float32]) -> Scores:
    x = torch.from_numpy(np.ascontiguousarray(scaled)).to(fitted.device)
    generator = fitted.generator(SEED)
    rows = max(1, generative.MAX_ROWS // ELBO_SAMPLES)  # data rows per call: bounds decoder rows in memory
    with torch.inference_mode():
        # log_weights: (ELBO_SAMPLES, rows); their mean over the draws estimates the ELBO of each row
        parts = [
            generative.log_weights(fitted.net, x[start : start + rows], ELBO_SAMPLES, generator=generator)
            .double()
            .mean(0)
            for start in range(0, len(x), rows)
        ]
    elbo = torch.cat(parts).cpu().numpy() if parts else np.zeros(0)
    return elbo - _log_scale(fitted)


def _log_likelihood(fitted: Fitted, scaled: npt.NDArray[np.float32]) -> Scores:
    x = torch.from_numpy(np.ascontiguousarray(scaled)).to(fitted.device)
    with torch.inference_mode():
        ll = generative.log_likelihood(fitted.net, x, LL_IMPORTANCE, generator=fitted.generator(SEED))
    return ll.double().cpu().numpy() - _log_scale(fitted)


#: ``anomaly_score`` name -> its entry; ``config.CHOICES["anomaly_score"]`` lists the same names
SCORES: dict[str, Score] = {
    "reconstruction": Score(_reconstruction, negative_error=True),
    "reconstruction_l4": Score(_reconstruction_l4, negative_error=True),
    "elbo": Score(_elbo, variational=True, offset_rows=MAX_OFFSET_ROWS),
    "log_likelihood": Score(_log_likelihood, variational=True, offset_rows=MAX_OFFSET_ROWS),
    "reconstruction_knn": Score(neighbours.reconstruction_knn, fit=neighbours.fit_state, ensemble=True),
    "reconstruction_knn_input": Score(
        neighbours.reconstruction_knn_input, fit=neighbours.fit_state_input, ensemble=True
    ),
}
