"""Every stop says why: early stopping, target_loss, epochs run out, in ``stop_reason_`` and on the command
line; and a model no better than the mean row is called out."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

import isthmus
from conftest import TINY
from isthmus import Autoencoder
from test_cli import invoke, tiny


def fit(x: np.ndarray, **params: object) -> Autoencoder:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return Autoencoder(**{**TINY, "n_components": 3, **params}).fit(x)


def test_early_stopping_names_the_epoch_the_best_epoch_and_the_patience(tabular: np.ndarray) -> None:
    # a tolerance no epoch can beat: the first epoch is the best, and patience 2 stops the run at epoch 3
    ae = fit(tabular, early_stopping=True, n_iter_no_change=2, tol=1e9, max_iter=20)
    assert ae.n_iter_ == 3
    assert ae.stop_reason_.startswith("early stopping at epoch 3: val_loss has not improved by tol=1e+09")
    assert "n_iter_no_change=2 epochs since its best epoch 1" in ae.stop_reason_
    assert "the weights of that epoch were kept" in ae.stop_reason_


def test_no_improvement_without_a_validation_split_names_the_training_loss(tabular: np.ndarray) -> None:
    ae = fit(tabular, n_iter_no_change=3, tol=1e9, max_iter=20)
    assert ae.stop_reason_.startswith("early stopping at epoch 4: train_loss has not improved")
    assert "best epoch 1" in ae.stop_reason_ and "kept" not in ae.stop_reason_


def test_target_loss_reached(tabular: np.ndarray) -> None:
    ae = fit(tabular, target_loss=1e9, max_iter=20)
    assert ae.n_iter_ == 1
    assert ae.stop_reason_.startswith("train_loss=") and "reached target_loss=1e+09 at epoch 1" in ae.stop_reason_


def test_epochs_running_out(tabular: np.ndarray) -> None:
    ae = fit(tabular, max_iter=2, tol=0.0)
    assert ae.stop_reason_.startswith("max_iter=2 epochs ran out while train_loss was still improving")
    assert "last at epoch 2" in ae.stop_reason_


def test_stop_reason_survives_saving(tabular: np.ndarray, tmp_path: Path) -> None:
    ae = fit(tabular, target_loss=1e9)
    ae.save(tmp_path / "m.safetensors")
    assert isthmus.load(tmp_path / "m.safetensors").stop_reason_ == ae.stop_reason_


def test_train_prints_why_it_stopped(tmp_path: Path) -> None:
    result = invoke(
        "train", "digits[:100]", "-o", tmp_path / "m.safetensors", *tiny(20),
        "--set", "early_stopping=True", "--set", "n_iter_no_change=2", "--set", "tol=1e9",
    )  # fmt: skip
    assert "stopped: early stopping at epoch 3: val_loss has not improved" in result.output
    assert "best epoch 1" in result.output
    described = invoke("info", tmp_path / "m.safetensors").output
    assert "stop_reason: early stopping at epoch 3" in described


def test_a_model_no_better_than_the_mean_row_is_called_out(tabular: np.ndarray) -> None:
    # a learning rate that moves nothing: the network stays at its random start
    with pytest.warns(UserWarning, match=r"no better than their mean row does \(squared error .* against"):
        fit(tabular, learning_rate=1e-30, max_iter=1)


def test_a_model_that_learned_is_not_called_out(tabular: np.ndarray) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # the mean-row warning would fail the fit
        ae = fit(tabular, max_iter=30)
    assert ae.score(tabular) > -float(np.square(tabular - tabular.mean(axis=0)).sum(axis=1).mean())
