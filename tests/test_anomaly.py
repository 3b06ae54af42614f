"""Screening tables: robust scaling, the trimmed loss, the neighbour score, the preset, held-out thresholds,
and the baselines printed beside a model's scores."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import roc_auc_score

import isthmus
from conftest import TINY
from isthmus import PRESETS, Autoencoder
from isthmus.baselines import detection_baselines
from isthmus.data import open_rows
from isthmus.errors import ConfigError, NotFittedError
from isthmus.fitted import Fitted
from isthmus.metrics import pca_reconstruct
from isthmus.model import trimmed_mean
from isthmus.neighbours import feature_weights
from isthmus.scaling import ROBUST_RANGES, fit_scaler
from test_cli import invoke, tiny


def fit(x: np.ndarray, **params: object) -> Autoencoder:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return Autoencoder(**{**TINY, "n_components": 2, **params}).fit(x)


@pytest.fixture(scope="module")
def table() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train with 8% anomalies, held-out rows, their 0/1 labels), 8 columns: normal rows lie on a plane,
    in two clusters; half the anomalies lie off the plane, half on it between the clusters, where a
    reconstruction error cannot see them."""
    rng = np.random.default_rng(1)
    mixing = rng.normal(size=(2, 8))
    centers = np.array([[2.5, 0.0], [-2.5, 0.0]])

    def normal(n: int) -> np.ndarray:
        z = centers[rng.integers(0, 2, n)] + 0.4 * rng.normal(size=(n, 2))
        return z @ mixing + 0.05 * rng.normal(size=(n, 8))

    def anomalies(n: int) -> np.ndarray:
        off = rng.normal(size=(n // 2, 8)) * 2.0  # off the plane
        between = (0.3 * rng.normal(size=(n - n // 2, 2))) @ mixing + 0.05 * rng.normal(size=(n - n // 2, 8))
        return np.concatenate([off, between])

    train = np.concatenate([normal(460), anomalies(40)])
    test = np.concatenate([normal(300), anomalies(30)])
    labels = np.r_[np.zeros(300, int), np.ones(30, int)]
    return train.astype(np.float32), test.astype(np.float32), labels


# ---------------------------------------------------------------------------------------- robust scaling


def test_robust_scaling_ignores_the_outliers_a_column_holds() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(5.0, 2.0, size=(1000, 2)).astype(np.float32)
    x[:50, 0] = 1e4  # 5% gross outliers in the first column
    robust, standard = fit_scaler(x, "robust", is_image=False), fit_scaler(x, "standard", is_image=False)
    np.testing.assert_allclose(robust.offset, [5.0, 5.0], atol=0.3)
    np.testing.assert_allclose(robust.scale, [2.0, 2.0], rtol=0.15)  # the IQR in normal standard deviations
    assert standard.scale[0] > 1000  # what the outliers do to standard scaling


def test_robust_scaling_floors_the_spread_of_a_nearly_constant_column() -> None:
    x = np.zeros((1000, 1), np.float32)
    x[:30] = 10.0  # 3% of rows differ: the interquartile range and the 5-95% range are 0
    scaler = fit_scaler(x, "robust", is_image=False)
    assert scaler.scale[0] == pytest.approx(10.0 / ROBUST_RANGES[-1][2], rel=1e-5)  # the 1-99% range
    assert scaler.transform(x).max() == pytest.approx(ROBUST_RANGES[-1][2], rel=1e-5)  # a few units, not 1e9


def test_robust_scaling_of_a_stream_is_fitted_on_its_sample(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 6)).astype(np.float32) * [1, 2, 3, 4, 5, 6]
    np.save(tmp_path / "x.npy", x)
    streamed = fit(open_rows(tmp_path / "x.npy"), scaling="robust", max_iter=1)
    in_memory = fit_scaler(x, "robust", is_image=False)
    np.testing.assert_allclose(streamed.scaler_.scale, in_memory.scale, rtol=1e-5)


# ---------------------------------------------------------------------------------------- trimmed loss


def test_trimmed_mean_leaves_out_the_largest_losses() -> None:
    losses = torch.tensor([1.0, 2.0, 3.0, 4.0, 100.0, 200.0, 5.0, 6.0, 7.0, 8.0])
    assert trimmed_mean(losses, 0.2).item() == pytest.approx(4.5)  # 100 and 200 left out
    assert trimmed_mean(losses, 0.0).item() == pytest.approx(losses.mean().item())


def test_trim_fraction_must_be_below_one() -> None:
    with pytest.raises(ConfigError, match=r"trim_fraction=1.0 must be a number in \[0, 1\)"):
        Autoencoder(trim_fraction=1.0).fit(np.zeros((10, 3)))


def test_trimmed_training_leaves_a_cluster_of_anomalies_unreconstructed() -> None:
    # normal rows on a plane in 8 columns; 8% anomalies in a tight cluster off it, which a network with a
    # spare code unit learns to reconstruct when it trains on every row
    rng = np.random.default_rng(0)
    mixing = rng.normal(size=(2, 8))
    normal = rng.normal(size=(460, 2)) @ mixing + 0.05 * rng.normal(size=(460, 8))
    cluster = 4.0 * rng.normal(size=8) + 0.05 * rng.normal(size=(40, 8))
    x = np.concatenate([normal, cluster]).astype(np.float32)
    is_anomaly = np.r_[np.zeros(460, bool), np.ones(40, bool)]
    aucs = {}
    for trim in (0.0, 0.2):
        model = fit(x, n_components=3, trim_fraction=trim, max_iter=40, hidden_layer_sizes=(32, 16))
        aucs[trim] = roc_auc_score(is_anomaly, -model.score_samples(x))
    assert aucs[0.2] > aucs[0.0] + 0.1, aucs


# ---------------------------------------------------------------------------------------- the neighbour score


def test_reconstruction_knn_finds_anomalies_on_and_off_the_manifold(table: tuple) -> None:
    train, test, labels = table
    aucs = {}
    for score in ("reconstruction", "reconstruction_knn"):
        model = fit(train, anomaly_score=score, max_iter=40, hidden_layer_sizes=(32, 16), trim_fraction=0.2)
        aucs[score] = roc_auc_score(labels, -model.score_samples(test))
    assert aucs["reconstruction_knn"] > aucs["reconstruction"]
    assert aucs["reconstruction_knn"] > 0.95


def test_reconstruction_knn_state_survives_the_model_file(table: tuple, tmp_path: Path) -> None:
    train, test, _ = table
    model = fit(train, anomaly_score="reconstruction_knn", max_iter=3)
    assert model.score_state_["codes"].shape == (1, len(train), 2)
    model.save(tmp_path / "m.safetensors")
    loaded = isthmus.load(tmp_path / "m.safetensors")
    np.testing.assert_array_equal(loaded.score_samples(test), model.score_samples(test))
    assert loaded.offset_ == model.offset_


def test_reconstruction_knn_needs_its_state(table: tuple) -> None:
    model = fit(table[0], max_iter=1)
    model.set_params(anomaly_score="reconstruction_knn")  # changed after fit: no training codes were kept
    with pytest.raises(NotFittedError, match="refit it with anomaly_score='reconstruction_knn'"):
        model.score_samples(table[1])


def test_reconstruction_knn_input_state_survives_the_model_file(table: tuple, tmp_path: Path) -> None:
    train, test, _ = table
    model = fit(train, anomaly_score="reconstruction_knn_input", n_estimators=2, max_iter=3)
    state = model.score_state_
    assert state["codes"].shape == (2, len(train), 2)
    assert state["rows"].shape == (len(train), 8)  # the scaled training rows, the input distance's reference
    assert state["weights"].shape == (2, 8) and state["center"].shape == state["spread"].shape == (2, 3)
    model.save(tmp_path / "m.safetensors")
    loaded = isthmus.load(tmp_path / "m.safetensors")
    np.testing.assert_array_equal(loaded.score_samples(test), model.score_samples(test))
    model.set_params(anomaly_score="reconstruction_knn")  # the other score's state has no input rows
    model.score_state_ = {k: v for k, v in state.items() if k not in ("rows", "weights")}
    with pytest.raises(NotFittedError, match="refit it with anomaly_score='reconstruction_knn_input'"):
        model.set_params(anomaly_score="reconstruction_knn_input").score_samples(test)


def test_feature_weights_count_each_error_against_its_features_typical_error(rng: np.random.Generator) -> None:
    # a feature the network cannot reconstruct (errors 100x the others) counts like the others after the
    # weights; one almost always reconstructed exactly is floored at the typical feature's error, not blown up
    cells = np.square(rng.normal(size=(400, 1))) * np.array([1.0, 1.0, 1.0, 100.0, 1e-9])
    typical = np.median(cells, axis=0)
    weights = feature_weights(cells)
    np.testing.assert_allclose(weights[:4] * typical[:4], 1.0)
    assert weights[4] == pytest.approx(weights[0])


# ---------------------------------------------------------------------------------------- the preset


def test_anomaly_preset_screens_a_small_table(table: tuple) -> None:
    # 500 rows, 4 batches an epoch: the preset's budget is counted in gradient steps (max_steps), so a table
    # this small trains as long as a large one; a fixed 10 epochs (40 steps) scored it at chance (0.51)
    train, test, labels = table
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = Autoencoder(**PRESETS["anomaly"], random_state=0, verbose=0).fit(train)
    assert roc_auc_score(labels, -model.score_samples(test)) > 0.95


# ---------------------------------------------------------------------------------------- thresholds


def test_threshold_from_held_out_rows_flags_about_contamination_of_new_digits() -> None:
    # a network that fits its 640 training digits far better than new ones: a quantile of the training rows'
    # scores flagged 36% of new digits at contamination=0.05; the held-out rows' quantile flags about 5%
    digits = load_digits().data.astype(np.float32)
    order = np.random.default_rng(0).permutation(len(digits))
    train, new = digits[order[:800]], digits[order[800:]]
    params = {"n_components": 16, "hidden_layer_sizes": (128,), "max_iter": 150, "validation_fraction": 0.2}
    model = fit(train, **params, contamination=0.05)
    flagged = float(np.mean(model.predict(new) == -1))
    assert 0.025 <= flagged <= 0.10, flagged


# ---------------------------------------------------------------------------------------- baselines


def test_pca_baseline_lives_in_the_scaled_space(rng: np.random.Generator) -> None:
    x = rng.normal(size=(300, 5)).astype(np.float32) * [1, 1, 1, 1, 4000]  # one column in large units
    model = fit(x, max_iter=1)
    scaled = model.scaler_.transform(x)
    expected = PCA(n_components=2).fit(scaled)
    recon = model.scaler_.inverse_transform(expected.inverse_transform(expected.transform(scaled)))
    np.testing.assert_allclose(pca_reconstruct(model, x), recon, rtol=1e-3, atol=1e-2)


def test_detection_baselines_score_the_same_scaled_rows(table: tuple) -> None:
    train, test, labels = table
    model = fit(train, max_iter=5)
    result = detection_baselines(Fitted.of(model), test, labels, model.score_samples(test))
    assert result["autoencoder"]["roc_auc"] == roc_auc_score(labels, -model.score_samples(test))
    assert set(result) == {"autoencoder", "isolation_forest", "pca"}
    assert result["isolation_forest"]["roc_auc"] > 0.7  # a real detector, not chance


def test_cli_evaluate_with_anomaly_labels_prints_the_baselines(table: tuple, tmp_path: Path) -> None:
    train, test, labels = table
    np.save(tmp_path / "train.npy", train)
    np.save(tmp_path / "test.npy", test)
    np.savetxt(tmp_path / "labels.txt", labels, fmt="%d")
    invoke("train", tmp_path / "train.npy", "-o", tmp_path / "m.safetensors", *tiny(3))
    result = invoke("evaluate", tmp_path / "m.safetensors", tmp_path / "test.npy", "--labels", tmp_path / "labels.txt")
    model = isthmus.load(tmp_path / "m.safetensors")
    expected = detection_baselines(Fitted.of(model), test, labels, model.score_samples(test))
    lines = {" ".join(line.split()[:-2]): line.split()[-2] for line in result.output.splitlines() if line.strip()}
    assert lines["autoencoder"] == f"{expected['autoencoder']['roc_auc']:.4f}"
    assert lines["IsolationForest"] == f"{expected['isolation_forest']['roc_auc']:.4f}"
    assert lines["PCA-2"] == f"{expected['pca']['roc_auc']:.4f}"


# ---------------------------------------------------------------------------------------- ensembles


def test_an_ensemble_averages_its_networks_and_survives_the_model_file(table: tuple, tmp_path: Path) -> None:
    train, test, _ = table
    params = {"anomaly_score": "reconstruction_knn", "max_iter": 10}
    ensemble = fit(train, n_estimators=3, **params)
    assert len(ensemble.members_) == 2
    assert ensemble.score_state_["codes"].shape == (3, len(train), 2)
    # each network alone is the score of a one-network model with that network and its state
    alone = []
    for i, net in enumerate([ensemble.net_, *ensemble.members_]):
        single = fit(train, **{**params, "max_iter": 1})
        single.net_ = net
        single.score_state_ = {k: v[i : i + 1] for k, v in ensemble.score_state_.items()}
        alone.append(single.score_samples(test))
    np.testing.assert_allclose(ensemble.score_samples(test), np.mean(alone, axis=0), rtol=1e-10)
    assert not np.allclose(alone[0], alone[1])  # different seeds, different networks
    ensemble.save(tmp_path / "e.safetensors")
    loaded = isthmus.load(tmp_path / "e.safetensors")
    np.testing.assert_array_equal(loaded.score_samples(test), ensemble.score_samples(test))


class _Interrupt:
    def __call__(self, epoch: int, record: dict[str, float]) -> None:
        if epoch == 2:
            raise KeyboardInterrupt


def test_a_resumed_ensemble_equals_an_uninterrupted_one(table: tuple, tmp_path: Path) -> None:
    # the checkpoint holds the first network; the others are retrained from their seeds on resume, so the
    # resumed ensemble is the same as one fitted straight through, every member and the scores
    train, test, _ = table
    params = {"anomaly_score": "reconstruction_knn", "n_estimators": 3, "max_iter": 4}
    straight = fit(train, **params)
    ckpt = tmp_path / "run.ckpt"
    with pytest.raises(KeyboardInterrupt):
        Autoencoder(**{**TINY, "n_components": 2, **params}).fit(train, checkpoint=ckpt, callbacks=[_Interrupt()])
    resumed = _resume(train, params, ckpt)
    assert resumed.n_iter_ == straight.n_iter_ == 4
    for a, b in zip([straight.net_, *straight.members_], [resumed.net_, *resumed.members_], strict=True):
        for name, value in a.state_dict().items():
            assert torch.equal(value, b.state_dict()[name]), name
    np.testing.assert_array_equal(resumed.score_samples(test), straight.score_samples(test))


def _resume(x: np.ndarray, params: dict[str, object], ckpt: Path) -> Autoencoder:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return Autoencoder(**{**TINY, "n_components": 2, **params}).fit(x, resume=ckpt)


def test_an_ensemble_needs_a_score_that_averages_it(table: tuple) -> None:
    with pytest.raises(ConfigError, match="n_estimators=3 trains an ensemble, but anomaly_score='reconstruction'"):
        fit(table[0], n_estimators=3, max_iter=1)
