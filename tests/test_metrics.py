"""Dimensionality reduction, measured: evaluate() beside PCA, against scikit-learn computed directly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.manifold import trustworthiness
from sklearn.neighbors import KNeighborsClassifier

import isthmus
from conftest import fit
from isthmus import Autoencoder, evaluate, metrics
from isthmus.errors import DataError
from isthmus.metrics import METRICS, pca_transform
from test_cli import fails, first_digits, invoke, tiny


@pytest.fixture(scope="module")
def blobs() -> tuple[np.ndarray, np.ndarray]:
    """Three well-separated clusters in 12 columns, 60 rows each: (x float32, y int64)."""
    rng = np.random.default_rng(0)
    centers = rng.normal(scale=6.0, size=(3, 12))
    y = np.repeat(np.arange(3), 60)
    x = centers[y] + rng.normal(size=(len(y), 12))
    return x.astype(np.float32), y


@pytest.fixture(scope="module")
def model(blobs: tuple[np.ndarray, np.ndarray]) -> Autoencoder:
    return fit(blobs[0], n_components=2, max_iter=20)


def test_every_method_has_the_same_fixed_keys(model: Autoencoder, blobs: tuple[np.ndarray, np.ndarray]) -> None:
    result = evaluate(model, blobs[0])
    assert set(result) == {"n_samples", "n_components", "classifiers", "columns", "autoencoder", "pca"}
    assert result["classifiers"] is None
    for name in ("autoencoder", "pca"):
        assert tuple(result[name]) == METRICS
        assert result[name]["knn_accuracy"] is None and result[name]["probe_accuracy"] is None
    # the codes keep the clusters' neighbourhoods: far more trustworthy than a random embedding of the same width
    random_codes = np.random.default_rng(0).normal(size=(len(blobs[0]), 2))
    chance = metrics.trustworthiness(_standard(blobs[0]), random_codes)
    assert chance is not None and chance < 0.7
    for name in ("autoencoder", "pca"):
        assert result[name]["trustworthiness"] > chance + 0.2, (name, result[name]["trustworthiness"], chance)


def test_pca_explained_variance_on_its_training_data_is_sklearns(blobs: tuple[np.ndarray, np.ndarray]) -> None:
    x = blobs[0]
    ae = fit(x, n_components=3, max_iter=1)
    result = evaluate(ae, x)
    z = _standard(x)  # a table is measured standardized, as its PCA baseline sees it
    reference = PCA(n_components=3).fit(z)
    assert result["pca"]["explained_variance"] == pytest.approx(reference.explained_variance_ratio_.sum(), rel=1e-4)
    for name in ("autoencoder", "pca"):
        m = result[name]
        sst = np.square(z - z.mean(axis=0)).sum()
        assert m["explained_variance"] == pytest.approx(1 - m["sse_per_sample"] * len(x) / sst, rel=1e-4)
        assert m["sse_per_sample"] == pytest.approx(12 * m["mse"])


def _standard(x: np.ndarray) -> np.ndarray:
    return (x - x.mean(axis=0, dtype=np.float64)) / x.std(axis=0, dtype=np.float64)


def test_constant_data_have_no_explained_variance() -> None:
    x = np.ones((8, 3), np.float32)
    assert metrics.reconstruction_metrics(x, x, 1.0)["explained_variance"] is None


def test_trustworthiness_is_sklearns(model: Autoencoder, blobs: tuple[np.ndarray, np.ndarray]) -> None:
    x = blobs[0]
    result = evaluate(model, x)
    for name, codes in (("autoencoder", model.transform(x)), ("pca", pca_transform(model, x))):
        expected = trustworthiness(_standard(x), codes, n_neighbors=5)
        assert result[name]["trustworthiness"] == pytest.approx(expected, rel=1e-5)


def test_trustworthiness_uses_a_seeded_subsample_of_large_data(
    model: Autoencoder, blobs: tuple[np.ndarray, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(metrics, "TRUSTWORTHINESS_MAX_ROWS", 50)
    x = blobs[0]
    first, second = evaluate(model, x), evaluate(model, x)
    assert first["pca"]["trustworthiness"] == second["pca"]["trustworthiness"]
    # 50 of the 180 rows: not the whole data's figure, but an estimate of it
    whole = trustworthiness(_standard(x), pca_transform(model, x), n_neighbors=5)
    assert first["pca"]["trustworthiness"] != whole
    assert first["pca"]["trustworthiness"] == pytest.approx(whole, abs=0.1)
    assert metrics.trustworthiness(x[:10], x[:10, :2]) is None  # too few rows for 5 neighbours


def test_accuracies_with_training_data_are_those_of_classifiers_fitted_on_its_codes(
    model: Autoencoder, blobs: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = blobs
    train, test = np.arange(0, len(x), 2), np.arange(1, len(x), 2)
    result = evaluate(model, x[test], y[test], X_train=x[train], y_train=y[train])
    assert result["classifiers"] == {"fit_on": "train", "n_train": len(train), "n_splits": None, "n_neighbors": 5}
    knn = KNeighborsClassifier(5).fit(model.transform(x[train]), y[train])
    expected = np.mean(knn.predict(model.transform(x[test])) == y[test])
    assert result["autoencoder"]["knn_accuracy"] == pytest.approx(expected)
    for name in ("autoencoder", "pca"):
        assert result[name]["knn_accuracy"] >= 0.95  # well-separated clusters stay apart in 2 dimensions
        assert result[name]["probe_accuracy"] >= 0.95


def test_accuracies_without_training_data_are_cross_validated(
    model: Autoencoder, blobs: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = blobs
    result = evaluate(model, x, y)
    assert result["classifiers"] == {"fit_on": "cross_validation", "n_train": None, "n_splits": 5, "n_neighbors": 5}
    assert result["pca"]["knn_accuracy"] >= 0.95
    shuffled = np.random.default_rng(0).permutation(y)  # labels unrelated to the data: chance level
    assert evaluate(model, x, shuffled)["pca"]["knn_accuracy"] < 0.6


def test_cross_validation_uses_fewer_folds_for_rare_classes(
    model: Autoencoder, blobs: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = blobs
    rows = np.r_[np.flatnonzero(y == 0)[:3], np.flatnonzero(y == 1)[:20]]
    result = evaluate(model, x[rows], y[rows])
    assert result["classifiers"]["n_splits"] == 3


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"y": np.zeros(5)}, "y has 5 labels but X has 180 samples; give one label per sample"),
        ({"y": np.zeros(180)}, "y holds a single class"),
        ({"y": np.r_[np.zeros(179), 1]}, "a class has only 1 labelled row"),
        ({"y": np.arange(180) % 3, "X_train": np.zeros((4, 12))}, "give X_train and y_train together"),
        (
            {"y": np.arange(180) % 3, "X_train": np.zeros((4, 12)), "y_train": np.arange(5)},
            "y_train has 5 labels but X_train has 4 samples",
        ),
    ],
)
def test_label_errors_name_the_counts(
    model: Autoencoder, blobs: tuple[np.ndarray, np.ndarray], kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(DataError, match=message):
        evaluate(model, blobs[0], **kwargs)


# ---------------------------------------------------------------------------------------- the command line


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model = tmp_path_factory.mktemp("evaluate") / "model.safetensors"
    invoke("train", "digits[:300]", "-o", model, *tiny())
    return model


def test_cli_evaluate_with_labels_reports_every_metric_for_both(trained: Path) -> None:
    result = json.loads(invoke("evaluate", trained, "digits[300:400]", "--labels", "digits[300:400]", "--json").output)
    assert result["classifiers"]["fit_on"] == "cross_validation"
    for name in ("autoencoder", "pca"):
        assert tuple(result[name]) == METRICS
        # ten digit classes: chance is 0.1, and even a 2-D code of a tiny model separates some of them
        assert result[name]["knn_accuracy"] > 0.3 and result[name]["probe_accuracy"] > 0.3, result[name]
        assert result[name]["trustworthiness"] > 0.6, result[name]
    assert result["pca"]["explained_variance"] > 0.1  # two axes of held-out digits explain a share of their variance
    direct = evaluate(isthmus.load(trained), first_digits(400)[300:], load_digits().target[300:400])
    assert result["pca"]["knn_accuracy"] == pytest.approx(direct["pca"]["knn_accuracy"])


def test_cli_evaluate_fits_the_classifiers_on_train(trained: Path, tmp_path: Path) -> None:
    labels = tmp_path / "labels.npy"
    np.save(labels, np.arange(100) % 2)
    out = invoke("evaluate", trained, "digits[300:400]", "--labels", labels, "--train", "digits[:300]", "--json").output
    result = json.loads(out)
    assert result["classifiers"] == {"fit_on": "train", "n_train": 300, "n_splits": None, "n_neighbors": 5}
    text = invoke("evaluate", trained, "digits[300:400]", "--labels", "digits[300:400]", "--train", "digits[:300]")
    assert "kNN-5 and probe fitted on the codes of digits[:300] (300 rows), scored on digits[300:400]" in text.output
    assert "trustw." in text.output and "probe" in text.output


def test_cli_evaluate_text_says_how_accuracies_were_measured(trained: Path, tmp_path: Path) -> None:
    output = invoke("evaluate", trained, "digits[300:400]", "--labels", "digits[300:400]").output
    assert "kNN-5 and probe accuracies: 5-fold cross-validation on digits[300:400]" in output
    assert invoke("evaluate", trained, "digits[300:400]").output == output  # the labels DATA carries by default
    np.save(tmp_path / "x.npy", first_digits(100))
    without = invoke("evaluate", trained, tmp_path / "x.npy").output
    assert "kNN-5" in without and "cross-validation" not in without  # the columns are there, empty


def test_cli_evaluate_refuses_labels_of_another_length(capsys: pytest.CaptureFixture[str], trained: Path) -> None:
    output = fails(capsys, "evaluate", trained, "digits[300:400]", "--labels", "digits[:10]")
    assert "digits[:10] has 10 labels but digits[300:400] has 100 rows; give one label per row" in output


def test_cli_evaluate_train_without_labels(capsys: pytest.CaptureFixture[str], trained: Path, tmp_path: Path) -> None:
    np.save(tmp_path / "train.npy", first_digits(50))
    fails(capsys, "evaluate", trained, tmp_path / "train.npy", "--train", "digits[:300]", code=2)  # no labels
    output = fails(
        capsys, "evaluate", trained, "digits[300:400]", "--labels", "digits[300:400]", "--train", tmp_path / "train.npy"
    )
    assert "train.npy carries no labels; give them with --train-labels" in output
