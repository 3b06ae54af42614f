"""Anomaly detection: scikit-learn's outlier convention, thresholds, per-feature errors, files and the CLI.

The data are a 2-dimensional manifold curved into 10 dimensions; the anomalies are off the manifold
(independent columns with the same means and spreads), so a 2-component code reconstructs the normal
rows and not the anomalies.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open
from sklearn.ensemble import IsolationForest
from sklearn.metrics import average_precision_score, roc_auc_score

import conftest
import isthmus
from conftest import TINY
from isthmus import Autoencoder, artifact
from isthmus.config import CHOICES
from isthmus.errors import ConfigError, DataError, ModelFileError, NotFittedError
from isthmus.fitted import Fitted
from isthmus.scoring import FENCE, SCORES, anomaly_truth, detection_metrics, threshold
from test_cli import fails, invoke, tiny

N_NORMAL, N_ANOMALIES = 300, 40


def fit(x: np.ndarray, **params: object) -> Autoencoder:
    return conftest.fit(x, **{"n_components": 2, "max_iter": 30, **params})


@pytest.fixture(scope="module")
def manifold() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train, held-out normal, anomalies), float32 with 10 columns."""
    rng = np.random.default_rng(0)
    mixing = rng.normal(size=(2, 10))

    def normal(n: int) -> np.ndarray:
        return np.tanh(rng.normal(size=(n, 2)) @ mixing) * 3 + 0.05 * rng.normal(size=(n, 10))

    train, held_out = normal(N_NORMAL), normal(N_NORMAL)
    anomalies = rng.normal(size=(N_ANOMALIES, 10)) * train.std(axis=0) + train.mean(axis=0)
    return train.astype(np.float32), held_out.astype(np.float32), anomalies.astype(np.float32)


@pytest.fixture(scope="module")
def ae(manifold: tuple[np.ndarray, ...]) -> Autoencoder:
    return fit(manifold[0])


@pytest.fixture(scope="module")
def vae(manifold: tuple[np.ndarray, ...]) -> Autoencoder:
    return fit(manifold[0], bottleneck="gaussian", anomaly_score="elbo", max_iter=40)


def auc(model: Autoencoder, manifold: tuple[np.ndarray, ...]) -> float:
    _, held_out, anomalies = manifold
    scores = np.concatenate([model.score_samples(held_out), model.score_samples(anomalies)])
    return float(roc_auc_score(np.r_[np.zeros(len(held_out)), np.ones(len(anomalies))], -scores))


# ---------------------------------------------------------------------------------------- the convention


def test_score_table_and_choices_agree() -> None:
    assert CHOICES["anomaly_score"] == tuple(SCORES)


def test_normal_rows_score_higher_than_off_manifold_rows(ae: Autoencoder, manifold: tuple[np.ndarray, ...]) -> None:
    assert auc(ae, manifold) > 0.9


def test_reconstruction_score_is_minus_the_error_after_the_scaler(
    ae: Autoencoder, manifold: tuple[np.ndarray, ...]
) -> None:
    x = manifold[1]
    per_feature = ae.reconstruction_error(x, per_feature=True)  # caller's units
    expected = -(per_feature / ae.scaler_.scale.astype(np.float64) ** 2).sum(axis=1)
    np.testing.assert_allclose(ae.score_samples(x), expected, rtol=1e-4)
    assert ae.score_samples(x).dtype == np.float64


def test_l4_score_is_minus_the_fourth_powers_of_the_same_errors(
    ae: Autoencoder, manifold: tuple[np.ndarray, ...]
) -> None:
    x = manifold[1]
    scaled_error = ae.reconstruction_error(x, per_feature=True) / ae.scaler_.scale.astype(np.float64) ** 2
    l4 = copy.deepcopy(ae).set_params(anomaly_score="reconstruction_l4")
    np.testing.assert_allclose(l4.score_samples(x), -np.square(scaled_error).sum(axis=1), rtol=1e-4)
    assert auc(l4, manifold) > 0.9


def test_decision_function_is_score_minus_offset_and_predict_its_sign(
    ae: Autoencoder, manifold: tuple[np.ndarray, ...]
) -> None:
    x = np.concatenate(manifold[1:])
    decision = ae.decision_function(x)
    np.testing.assert_array_equal(decision, ae.score_samples(x) - ae.offset_)
    np.testing.assert_array_equal(ae.predict(x), np.where(decision < 0, -1, 1))
    assert set(np.unique(ae.predict(x))) == {-1, 1}


@pytest.mark.parametrize("contamination", [0.05, 0.2])
def test_contamination_flags_that_fraction_of_the_held_out_rows(
    manifold: tuple[np.ndarray, ...], contamination: float
) -> None:
    train = manifold[0]
    model = fit(train, contamination=contamination, max_iter=5)
    # the rows fit held out: validation_fraction of them, drawn as the early-stopping split draws them
    seed = np.random.RandomState(0).randint(2**31 - 2)
    order = np.random.RandomState(seed).permutation(len(train))
    held_out = train[order[: round(model.validation_fraction * len(train))]]
    flagged = float(np.mean(model.predict(held_out) == -1))
    assert abs(flagged - contamination) <= 1 / len(held_out)
    assert model.offset_ == pytest.approx(np.percentile(model.score_samples(held_out), 100 * contamination))


def test_auto_offset_is_tukeys_fence_on_the_log_errors(ae: Autoencoder, manifold: tuple[np.ndarray, ...]) -> None:
    log_error = np.log(-ae.score_samples(manifold[0]))
    q1, q3 = np.percentile(log_error, [25, 75])
    assert ae.offset_ == pytest.approx(-np.exp(q3 + FENCE * (q3 - q1)))
    assert 0 < np.mean(ae.predict(manifold[0]) == -1) < 0.1  # few training rows, as the rule intends


def test_auto_offset_of_log_density_scores_is_tukeys_lower_fence() -> None:
    scores = np.random.default_rng(0).normal(size=10_000)
    offset = threshold(scores, "auto")
    q1, q3 = np.percentile(scores, [25, 75])
    assert offset == pytest.approx(q1 - FENCE * (q3 - q1))
    assert np.mean(scores < offset) == pytest.approx(0.0035, abs=0.002)  # normal: 0.35% below the fence


def test_exact_reconstructions_keep_the_fence_defined() -> None:
    scores = np.zeros(100)  # minus the errors: 0 is an exact reconstruction
    scores[:10] = -1.0
    offset = threshold(scores, "auto", negative_error=True)
    assert -1e-300 < offset <= 0  # most rows exact: any error is an outlier
    scores[:70] = -1.0
    assert threshold(scores, "auto", negative_error=True) == -np.inf  # a spread without bound: nothing flagged


def test_fit_predict_is_fit_then_predict_and_the_transformer_still_works(manifold: tuple[np.ndarray, ...]) -> None:
    train = manifold[0]
    flags = fit(train, max_iter=3).fit_predict(train)
    np.testing.assert_array_equal(flags, fit(train, max_iter=3).predict(train))
    assert fit(train, max_iter=3).fit_transform(train).shape == (len(train), 2)


@pytest.mark.parametrize("value", [0, 0.0, 0.6, -0.1, True, "high", None])
def test_contamination_must_be_auto_or_a_fraction(value: object) -> None:
    with pytest.raises(ConfigError, match=r"contamination=.* must be 'auto' or a number in \(0, 0.5\]"):
        Autoencoder(contamination=value).fit(np.zeros((10, 3), np.float32))


def test_unknown_anomaly_score_is_refused() -> None:
    with pytest.raises(ConfigError, match="anomaly_score='mahalanobis' is not allowed; choose one of"):
        Autoencoder(anomaly_score="mahalanobis").fit(np.zeros((10, 3), np.float32))


@pytest.mark.parametrize("score", ["elbo", "log_likelihood"])
def test_variational_scores_need_a_variational_model_before_training(
    manifold: tuple[np.ndarray, ...], score: str
) -> None:
    ae = Autoencoder(**{**TINY, "anomaly_score": score})
    with pytest.raises(ConfigError, match=f"anomaly_score='{score}' needs a variational model"):
        ae.fit(manifold[0])
    assert not hasattr(ae, "history_")  # refused before any epoch ran


# ---------------------------------------------------------------------------------------- per-feature errors


def test_per_feature_errors_sum_to_the_per_sample_error(ae: Autoencoder, manifold: tuple[np.ndarray, ...]) -> None:
    x = manifold[1]
    per_feature = ae.reconstruction_error(x, per_feature=True)
    assert per_feature.shape == x.shape
    np.testing.assert_allclose(per_feature.sum(axis=1), ae.reconstruction_error(x), rtol=1e-5)


def test_per_feature_errors_keep_the_image_shape(digits: np.ndarray) -> None:
    model = fit(digits[:200], n_components=4, max_iter=2)
    per_feature = model.reconstruction_error(digits[:7], per_feature=True)
    assert per_feature.shape == (7, 1, 8, 8)
    np.testing.assert_allclose(per_feature.sum(axis=(1, 2, 3)), model.reconstruction_error(digits[:7]), rtol=1e-5)


def test_per_feature_errors_point_at_the_broken_column(ae: Autoencoder, manifold: tuple[np.ndarray, ...]) -> None:
    x = manifold[1][:20].copy()
    x[:, 6] += 10 * manifold[0][:, 6].std()  # one column far off in every row
    assert (ae.reconstruction_error(x, per_feature=True).argmax(axis=1) == 6).all()
    assert (ae.predict(x) == -1).all()


# ---------------------------------------------------------------------------------------- variational scores


def test_variational_scores_are_repeatable_and_rank_anomalies_low(
    vae: Autoencoder, manifold: tuple[np.ndarray, ...]
) -> None:
    x = manifold[1]
    for score in ("elbo", "log_likelihood"):
        vae.set_params(anomaly_score=score)
        first = vae.score_samples(x)
        assert np.isfinite(first).all()
        np.testing.assert_array_equal(first, vae.score_samples(x))
        assert auc(vae, manifold) > 0.9, score
    vae.set_params(anomaly_score="elbo")


def test_log_likelihood_score_is_the_importance_weighted_estimate(
    vae: Autoencoder, manifold: tuple[np.ndarray, ...]
) -> None:
    x = manifold[1]
    vae.set_params(anomaly_score="log_likelihood")
    ll = vae.score_samples(x)
    vae.set_params(anomaly_score="elbo")
    np.testing.assert_array_equal(ll, vae.log_likelihood(x, random_state=0))
    assert ll.mean() >= vae.score_samples(x).mean()  # the importance-weighted bound is above the ELBO


def test_elbo_offset_comes_from_the_elbo(vae: Autoencoder, manifold: tuple[np.ndarray, ...]) -> None:
    assert vae.offset_ == pytest.approx(threshold(vae.score_samples(manifold[0]), "auto"))


# ---------------------------------------------------------------------------------------- model files


def test_save_and_load_keep_the_offset(ae: Autoencoder, manifold: tuple[np.ndarray, ...], tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    ae.save(path)
    with safe_open(str(path), framework="pt") as fh:
        assert json.loads(fh.metadata()["offset"]) == ae.offset_
    loaded = isthmus.load(path)
    assert loaded.offset_ == ae.offset_
    np.testing.assert_array_equal(loaded.predict(manifold[1]), ae.predict(manifold[1]))


def _rewrite(ae: Autoencoder, path: Path, **metadata: str | None) -> None:
    meta = artifact.model_metadata(Fitted.of(ae), encoder_only=False)
    meta.update({k: v for k, v in metadata.items() if v is not None})
    for key in [k for k, v in metadata.items() if v is None]:
        del meta[key]
    path.write_bytes(artifact.safetensors_bytes(artifact.model_tensors(Fitted.of(ae), encoder_only=False), meta))


def test_a_file_without_offset_scores_rows_but_cannot_predict(
    ae: Autoencoder, manifold: tuple[np.ndarray, ...], tmp_path: Path
) -> None:
    path = tmp_path / "old.safetensors"
    _rewrite(ae, path, offset=None)
    loaded = isthmus.load(path)
    np.testing.assert_array_equal(loaded.score_samples(manifold[1]), ae.score_samples(manifold[1]))
    with pytest.raises(NotFittedError, match="no offset_"):
        loaded.predict(manifold[1])
    loaded.offset_ = ae.offset_  # the way out the message gives
    np.testing.assert_array_equal(loaded.predict(manifold[1]), ae.predict(manifold[1]))


@pytest.mark.parametrize("text", ['"high"', "NaN", "[1]", "true", "{"])
def test_a_malformed_offset_is_refused(ae: Autoencoder, tmp_path: Path, text: str) -> None:
    path = tmp_path / "bad.safetensors"
    _rewrite(ae, path, offset=text)
    with pytest.raises(ModelFileError, match=r"metadata offset=.* must be a number"):
        isthmus.load(path)


# ---------------------------------------------------------------------------------------- metrics helpers


@pytest.mark.parametrize(
    ("labels", "anomalous"), [([0, 1, 0, 0], [False, True, False, False]), ([1, -1, 1, 1], [False, True, False, False])]
)
def test_anomaly_labels_follow_both_conventions(labels: list[int], anomalous: list[bool]) -> None:
    np.testing.assert_array_equal(anomaly_truth(np.array(labels)), anomalous)


@pytest.mark.parametrize(
    ("labels", "message"),
    [([0, 1, 2], "anomaly labels must be 0/1"), ([0, 0, 0], "marks no row"), ([-1, -1], "marks every row")],
)
def test_anomaly_labels_are_checked(labels: list[int], message: str) -> None:
    with pytest.raises(DataError, match=message):
        anomaly_truth(np.array(labels))


def test_detection_metrics_rank_low_scores_as_anomalies() -> None:
    scores = np.array([5.0, 4.0, -1.0, 3.0, -2.0, 0.5])
    truth = np.array([0, 0, 1, 0, 1, 1], bool)
    m = detection_metrics(scores, truth)
    assert m == {
        "roc_auc": pytest.approx(roc_auc_score(truth, -scores)),
        "average_precision": pytest.approx(average_precision_score(truth, -scores)),
        "n_anomalies": 3,
    }
    assert m["roc_auc"] == 1.0


# ---------------------------------------------------------------------------------------- the command line


@pytest.fixture(scope="module")
def cli_model(tmp_path_factory: pytest.TempPathFactory, manifold: tuple[np.ndarray, ...]) -> Path:
    folder = tmp_path_factory.mktemp("score")
    np.save(folder / "train.npy", manifold[0])
    model = folder / "m.safetensors"
    settings = ("contamination=0.1", "batch_size=32", "hidden_layer_sizes=[32]")  # as the API's fixture
    invoke("train", folder / "train.npy", "-o", model, *tiny(30), *(a for s in settings for a in ("--set", s)))
    return model


@pytest.fixture(scope="module")
def mixed(cli_model: Path, manifold: tuple[np.ndarray, ...]) -> tuple[Path, Path, np.ndarray]:
    """Held-out normal rows then anomalies (.npy), and their 0/1 labels (.txt)."""
    x = np.concatenate(manifold[1:])
    labels = np.r_[np.zeros(N_NORMAL, int), np.ones(N_ANOMALIES, int)]
    np.save(cli_model.with_name("mixed.npy"), x)
    np.savetxt(cli_model.with_name("labels.txt"), labels, fmt="%d")
    return cli_model.with_name("mixed.npy"), cli_model.with_name("labels.txt"), labels


def test_cli_score_writes_a_score_and_a_flag_per_row(
    cli_model: Path, mixed: tuple[Path, Path, np.ndarray], tmp_path: Path
) -> None:
    data, _, _ = mixed
    out = tmp_path / "scores.csv"
    result = invoke("score", cli_model, data, "-o", out)
    assert f"wrote {out} ({N_NORMAL + N_ANOMALIES}, 2)" in result.output
    assert out.read_text().splitlines()[0] == "score,flag"
    written = np.loadtxt(out, delimiter=",", skiprows=1)
    model = isthmus.load(cli_model)
    assert model.contamination == 0.1
    np.testing.assert_allclose(written[:, 0], model.score_samples(np.load(data)), rtol=1e-6)
    np.testing.assert_array_equal(written[:, 1], model.predict(np.load(data)))
    assert f"flagged {int((written[:, 1] == -1).sum())} of {len(written)} rows" in result.output


def test_cli_score_with_labels_prints_roc_auc_and_average_precision(
    cli_model: Path, mixed: tuple[Path, Path, np.ndarray], tmp_path: Path
) -> None:
    data, labels_file, labels = mixed
    result = invoke("score", cli_model, data, "-o", tmp_path / "s.npy", "--labels", labels_file)
    scores = np.load(tmp_path / "s.npy")[:, 0]
    expected_auc = roc_auc_score(labels, -scores)
    assert expected_auc > 0.9
    own = f"autoencoder {expected_auc:.4f} {average_precision_score(labels, -scores):.4f}"
    assert own in " ".join(result.output.split())
    assert f"{N_ANOMALIES} anomalies in {N_NORMAL + N_ANOMALIES} rows" in result.output
    # the baselines beside it, on the rows scaled by the model's scaler
    model = isthmus.load(cli_model)
    scaled = model.scaler_.transform(np.load(data))
    forest = IsolationForest(random_state=0).fit(scaled).score_samples(scaled)
    assert f"IsolationForest {roc_auc_score(labels, -forest):.4f}" in " ".join(result.output.split())
    assert "PCA-2 " in result.output


def test_cli_score_refuses_labels_of_another_length(
    capsys: pytest.CaptureFixture[str], cli_model: Path, mixed: tuple[Path, Path, np.ndarray], tmp_path: Path
) -> None:
    data, _, labels = mixed
    np.savetxt(tmp_path / "short.txt", labels[:10], fmt="%d")
    output = fails(capsys, "score", cli_model, data, "-o", tmp_path / "s.npy", "--labels", tmp_path / "short.txt")
    assert f"short.txt has 10 labels but {data} has {len(labels)} rows; give one label per row" in output
    assert not (tmp_path / "s.npy").exists()


def test_cli_score_refuses_class_labels(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    trained = tmp_path / "digits.safetensors"
    invoke("train", "digits[:100]", "-o", trained, *tiny(1))
    output = fails(capsys, "score", trained, "digits[:100]", "-o", tmp_path / "s.npy", "--labels", "digits[:100]")
    assert "anomaly labels must be 0/1 (1 = anomaly) or +1/-1" in output


def test_cli_score_needs_the_decoder(capsys: pytest.CaptureFixture[str], cli_model: Path, tmp_path: Path) -> None:
    encoder = tmp_path / "encoder.safetensors"
    invoke("export-encoder", cli_model, "-o", encoder)
    output = fails(capsys, "score", encoder, cli_model.with_name("train.npy"), "-o", tmp_path / "s.npy")
    assert "holds only the encoder" in output


def test_cli_train_refuses_a_bad_contamination(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    output = fails(capsys, "train", "digits[:50]", "-o", tmp_path / "m.safetensors", "--set", "contamination=0.9")
    assert "contamination=0.9 must be 'auto' or a number in (0, 0.5]" in output
