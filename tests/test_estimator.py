"""The estimator: shapes, units, determinism, scaling, stopping rules, errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from torch import nn

from conftest import TINY, fit
from isthmus import Autoencoder, evaluate, fitting
from isthmus.config import TrainConfig
from isthmus.errors import ConfigError, DataError, NotFittedError
from isthmus.nets import Residual, residual_conv_decoder


def test_transform_and_inverse_shapes_tabular(tabular: np.ndarray) -> None:
    ae = fit(tabular, n_components=3)
    z = ae.transform(tabular)
    assert z.shape == (len(tabular), 3) and z.dtype == np.float32
    x_hat = ae.inverse_transform(z)
    assert x_hat.shape == tabular.shape
    assert ae.n_features_in_ == 12
    assert list(ae.get_feature_names_out()) == ["autoencoder0", "autoencoder1", "autoencoder2"]


def test_images_keep_their_shape(digits: np.ndarray) -> None:
    ae = fit(digits[:200], n_components=4)
    assert ae.reconstruct(digits[:5]).shape == (5, 1, 8, 8)
    lone = digits[:200, 0]  # (n, 8, 8): gains a channel axis inside, keeps the caller's shape outside
    ae2 = fit(lone, n_components=4)
    assert ae2.reconstruct(lone[:5]).shape == (5, 8, 8)


@pytest.mark.parametrize("architecture", ["conv", "resconv"])
def test_conv_architecture_reconstructs_odd_sizes(architecture: str, rng: np.random.Generator) -> None:
    x = rng.uniform(size=(64, 3, 7, 9)).astype(np.float32)
    ae = fit(x, n_components=4, architecture=architecture, hidden_layer_sizes=(4, 8), max_iter=2)
    assert ae.reconstruct(x).shape == x.shape


def test_resconv_decoder_has_a_residual_block_at_each_hidden_resolution() -> None:
    decoder = residual_conv_decoder((1, 28, 28), (4, 8, 16), 6, "gelu")
    seen: list[tuple[int, ...]] = []
    for block in decoder:
        if isinstance(block, Residual):
            block.register_forward_hook(lambda _m, _i, out: seen.append(tuple(out.shape[1:])))
    assert decoder(torch.zeros(2, 6)).shape == (2, 1, 28, 28)
    assert seen == [(16, 4, 4), (8, 7, 7), (4, 14, 14)]
    # a block whose convolution gives zero passes its input through
    block = Residual(3, "relu")
    nn.init.zeros_(block.conv.weight), nn.init.zeros_(block.conv.bias)
    x = torch.randn(2, 3, 5, 5)
    assert torch.equal(block(x), x)


def test_transform_is_deterministic(tabular: np.ndarray) -> None:
    ae = fit(tabular, n_components=3, corruption="gaussian", noise_level=0.3)
    assert np.array_equal(ae.transform(tabular), ae.transform(tabular))


def test_same_seed_gives_bit_identical_weights(tabular: np.ndarray) -> None:
    a, b = fit(tabular, n_components=3), fit(tabular, n_components=3)
    for (name, pa), (_, pb) in zip(a.net_.state_dict().items(), b.net_.state_dict().items(), strict=True):
        assert torch.equal(pa, pb), name
    c = fit(tabular, n_components=3, random_state=1)
    assert not np.array_equal(a.transform(tabular), c.transform(tabular))


def test_fit_leaves_global_rng_alone(tabular: np.ndarray) -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    fit(tabular, n_components=3, max_iter=1)
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("scaling", ["minmax", "standard"])
def test_scaler_fitted_on_training_data(tabular: np.ndarray, scaling: str) -> None:
    ae = fit(tabular, n_components=3, scaling=scaling)
    scaled = ae.scaler_.transform(tabular)
    if scaling == "minmax":
        assert scaled.min(axis=0) == pytest.approx(np.zeros(12), abs=1e-6)
        assert scaled.max(axis=0) == pytest.approx(np.ones(12), abs=1e-6)
        assert ae.resolved_["loss"] == "bce"
    else:
        assert scaled.mean(axis=0) == pytest.approx(np.zeros(12), abs=1e-4)
        assert scaled.std(axis=0) == pytest.approx(np.ones(12), abs=1e-3)
        assert ae.resolved_["loss"] == "mse"
    np.testing.assert_allclose(ae.scaler_.inverse_transform(scaled), tabular, rtol=1e-5, atol=1e-4)


def test_images_default_to_global_minmax(digits: np.ndarray) -> None:
    ae = fit(digits[:100], n_components=4)
    # the digits' values are integers 0..16: 8-bit images, which the command line writes back as such
    assert ae.resolved_ == {"loss": "bce", "scaling": "minmax", "pca": "scaled", "dtype": "uint8"}
    assert "dtype" not in fit(digits[:100] / 16.0, n_components=4).resolved_
    assert np.unique(ae.scaler_.scale).size == 1  # one scale for every pixel


def test_outputs_are_in_callers_units(tabular: np.ndarray) -> None:
    ae = fit(tabular, n_components=3, max_iter=40)
    x_hat = ae.reconstruct(tabular)
    # columns live on very different scales; a reconstruction in scaled units would be far off. Each
    # column's error is measured against the column mean's (about 0.9 standard deviations here)
    column_err = np.abs(x_hat - tabular).mean(axis=0)
    mean_err = np.abs(tabular - tabular.mean(axis=0)).mean(axis=0)
    assert (column_err < 0.4 * mean_err).all(), column_err / mean_err


def test_constant_columns_do_not_break_scaling(tabular: np.ndarray) -> None:
    x = tabular.copy()
    x[:, 0] = 7.0
    ae = fit(x, n_components=3)
    assert np.isfinite(ae.reconstruct(x)).all()
    assert np.isfinite(ae.history_[-1]["train_loss"])


def test_beats_pca_on_nonlinear_data(tabular: np.ndarray) -> None:
    ae = fit(tabular, n_components=3, hidden_layer_sizes=(64, 32), max_iter=150, learning_rate=3e-3, batch_size=60)
    result = evaluate(ae, tabular)
    assert result["autoencoder"]["mse"] < result["pca"]["mse"]
    # a table's baseline is PCA of the standardized table, and its errors are measured there (no PSNR)
    z = (tabular - tabular.mean(axis=0)) / tabular.std(axis=0)
    pca = PCA(3).fit(z)
    direct = np.square(pca.inverse_transform(pca.transform(z)) - z).mean()
    assert result["pca"]["mse"] == pytest.approx(direct, rel=1e-3)
    assert result["autoencoder"]["psnr"] is None
    assert [c["metric"] for c in result["columns"]] == ["r2"] * tabular.shape[1]


def test_accepts_dataframes_and_tensors(tabular: np.ndarray) -> None:
    frame = pd.DataFrame(tabular, columns=[f"f{i}" for i in range(12)])
    from_frame = fit(frame, n_components=3)
    from_tensor = fit(torch.from_numpy(tabular), n_components=3)
    np.testing.assert_array_equal(from_frame.transform(frame), from_tensor.transform(torch.from_numpy(tabular)))
    assert list(from_frame.feature_names_in_) == list(frame.columns)


def test_history_and_learned_attributes(tabular: np.ndarray) -> None:
    ae = fit(tabular, n_components=3, max_iter=4)
    assert ae.n_iter_ == 4 and len(ae.history_) == 4
    assert {"epoch", "train_loss", "train_reconstruction"} <= set(ae.history_[0])
    assert ae.history_[-1]["train_loss"] < ae.history_[0]["train_loss"]
    assert ae.best_loss_ == min(h["train_loss"] for h in ae.history_)


def test_convergence_warning_when_epochs_run_out(tabular: np.ndarray) -> None:
    with pytest.warns(ConvergenceWarning, match="max_iter=2"):
        Autoencoder(**{**TINY, "max_iter": 2}, n_components=3).fit(tabular)


def test_early_stopping_restores_best_weights(tabular: np.ndarray) -> None:
    params = {"n_components": 3, "max_iter": 300, "early_stopping": True, "n_iter_no_change": 3}
    ae = fit(tabular, **params, learning_rate=0.05, tol=0.0)
    assert ae.n_iter_ < 300
    val = [h["val_loss"] for h in ae.history_]
    assert {"val_loss", "val_reconstruction"} <= set(ae.history_[0])
    assert ae.best_loss_ == pytest.approx(min(val))
    assert min(val) < val[-1]  # the last epochs did not improve: restoring matters
    # the restored weights are the best epoch's: evaluated on the held-out rows, their loss is the minimum
    seed = int(np.random.RandomState(TINY["random_state"]).randint(2**31 - 2))  # fit's seed
    config = TrainConfig(early_stopping=True, validation_fraction=ae.validation_fraction)
    _, held_out = fitting.split_rows(ae.scaler_.transform(tabular), config, seed)
    assert held_out is not None
    ae.net_.eval()
    with torch.no_grad():
        restored = ae.net_.loss(torch.from_numpy(held_out))["loss"].item()
    assert restored == pytest.approx(min(val), rel=1e-5)


def test_target_loss_stops_early(tabular: np.ndarray) -> None:
    first = fit(tabular, n_components=3, max_iter=1).history_[0]["train_loss"]
    ae = fit(tabular, n_components=3, max_iter=200, target_loss=first * 0.5, learning_rate=3e-3)
    assert ae.n_iter_ < 200
    assert ae.history_[-1]["train_loss"] <= first * 0.5


def test_clone_keeps_params() -> None:
    ae = Autoencoder(n_components=7, hidden_layer_sizes=(5, 4), learning_rate=0.1)
    assert clone(ae).get_params() == ae.get_params()


def test_errors_name_the_problem(tabular: np.ndarray) -> None:
    with pytest.raises(ConfigError, match=r"n_components=12 must be smaller than n_features=12"):
        Autoencoder(n_components=12, verbose=0).fit(tabular)
    with pytest.raises(ConfigError, match="activation='nope'"):
        Autoencoder(activation="nope").fit(tabular)
    with pytest.raises(ConfigError, match="needs image data"):
        Autoencoder(architecture="conv", verbose=0).fit(tabular)
    bad = tabular.copy()
    bad[[4, 9], 2] = np.inf  # missing cells (NaN) are allowed, infinity is not
    with pytest.raises(DataError, match=r"4.*9"):
        Autoencoder(verbose=0).fit(bad)
    with pytest.raises(ValueError):
        Autoencoder(verbose=0).fit(tabular[:0])
    with pytest.raises(NotFittedError):
        Autoencoder().transform(tabular)
    ae = fit(tabular, n_components=3, max_iter=1)
    with pytest.raises(DataError, match=r"5 features.*expecting 12 features"):
        ae.transform(tabular[:, :5])
    with pytest.raises(DataError, match="n_components=3"):
        ae.inverse_transform(np.zeros((2, 4)))
