"""The training loop: resuming, checkpoints, logs, schedules, divergence."""

from __future__ import annotations

import itertools
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning

from conftest import TINY
from isthmus import Autoencoder
from isthmus.config import ModelConfig, TrainConfig
from isthmus.errors import ModelFileError, TrainingError
from isthmus.model import AutoencoderNet
from isthmus.train import train

PARAMS = {
    **TINY,
    "n_components": 3,
    "max_iter": 6,
    "early_stopping": True,
    "n_iter_no_change": 50,
    "corruption": "masking",
    "noise_level": 0.2,
    "lr_schedule": "cosine",
}


class _Interrupt:
    def __init__(self, at: int) -> None:
        self.at = at

    def __call__(self, epoch: int, record: dict[str, float]) -> None:
        if epoch == self.at:
            raise KeyboardInterrupt


def _weights(ae: Autoencoder) -> dict[str, torch.Tensor]:
    return ae.net_.state_dict()


@pytest.mark.parametrize("stop_at", [1, 4])
def test_resume_equals_uninterrupted_run(tabular: np.ndarray, tmp_path: Path, stop_at: int) -> None:
    straight = Autoencoder(**PARAMS).fit(tabular)
    ckpt = tmp_path / "run.ckpt"
    with pytest.raises(KeyboardInterrupt):
        Autoencoder(**PARAMS).fit(tabular, checkpoint=ckpt, callbacks=[_Interrupt(stop_at)])
    resumed = Autoencoder(**PARAMS).fit(tabular, resume=ckpt)
    assert resumed.n_iter_ == straight.n_iter_ == 6
    for name, value in _weights(straight).items():
        assert torch.equal(value, _weights(resumed)[name]), name
    assert resumed.history_ == straight.history_


def test_resume_with_random_state_none_uses_the_stored_seed(tabular: np.ndarray, tmp_path: Path) -> None:
    params = {**PARAMS, "random_state": None}
    ckpt = tmp_path / "run.ckpt"
    with pytest.raises(KeyboardInterrupt):
        Autoencoder(**params).fit(tabular, checkpoint=ckpt, callbacks=[_Interrupt(2)])
    resumed = Autoencoder(**params).fit(tabular, resume=ckpt)
    assert resumed.n_iter_ == 6
    assert [h["epoch"] for h in resumed.history_] == [1, 2, 3, 4, 5, 6]


def test_resume_can_extend_max_iter(tabular: np.ndarray, tmp_path: Path) -> None:
    ckpt = tmp_path / "run.ckpt"
    params = {**PARAMS, "lr_schedule": "constant"}
    Autoencoder(**{**params, "max_iter": 3}).fit(tabular, checkpoint=ckpt)
    longer = Autoencoder(**params).fit(tabular, resume=ckpt)
    straight = Autoencoder(**params).fit(tabular)
    np.testing.assert_array_equal(longer.transform(tabular), straight.transform(tabular))


def test_resume_refuses_other_data_or_missing_checkpoint(tabular: np.ndarray, tmp_path: Path) -> None:
    ckpt = tmp_path / "run.ckpt"
    with pytest.raises(ModelFileError, match="does not exist"):
        Autoencoder(**PARAMS).fit(tabular, resume=ckpt)
    Autoencoder(**{**PARAMS, "max_iter": 1}).fit(tabular, checkpoint=ckpt)
    with pytest.raises(ModelFileError, match="samples"):
        Autoencoder(**PARAMS).fit(tabular[:100], resume=ckpt)
    with pytest.raises(ModelFileError, match="different network"):
        Autoencoder(**{**PARAMS, "hidden_layer_sizes": (7,)}).fit(tabular, resume=ckpt)


def test_checkpoint_and_log_are_written_each_epoch(tabular: np.ndarray, tmp_path: Path) -> None:
    ckpt, log = tmp_path / "run.ckpt", tmp_path / "run.log.jsonl"
    seen: list[int] = []

    def check(epoch: int, record: dict[str, float]) -> None:
        seen.append(epoch)
        assert ckpt.exists()
        assert len(log.read_text().splitlines()) == epoch

    ae = Autoencoder(**PARAMS).fit(tabular, checkpoint=ckpt, log=log, callbacks=[check])
    assert seen == [1, 2, 3, 4, 5, 6]
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert records == ae.history_
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.ckpt", "run.log.jsonl"]  # no temp files left


def test_cosine_schedule_decays_to_near_zero(tabular: np.ndarray) -> None:
    ae = Autoencoder(**PARAMS).fit(tabular)
    lrs = [h["lr"] for h in ae.history_]
    assert lrs[0] == pytest.approx(PARAMS.get("learning_rate", 1e-3))
    assert all(a > b for a, b in itertools.pairwise(lrs))
    assert lrs[-1] < 0.1 * lrs[0]


def test_max_steps_counts_gradient_steps_whatever_the_table_size(tabular: np.ndarray) -> None:
    # 240 rows in batches of 32: 8 steps an epoch. A budget of 20 steps runs 3 epochs (the last in full)
    # on 240 rows and 20 on 12 rows (one batch an epoch), where max_iter alone would give both the same
    params = {**PARAMS, "early_stopping": False, "max_iter": 100, "max_steps": 20}
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)  # the budget the caller chose is no failure
        whole = Autoencoder(**params).fit(tabular)
    assert whole.n_iter_ == 3
    assert whole.stop_reason_.startswith("max_steps=20 gradient steps (3 epochs) ran out")
    few = Autoencoder(**params).fit(tabular[:12])
    assert few.n_iter_ == 20
    lrs = [h["lr"] for h in few.history_]  # the cosine schedule anneals over the run's own budget
    assert lrs[-1] < 0.1 * lrs[0]
    with pytest.warns(ConvergenceWarning, match="max_iter=5 epochs ran out"):  # whichever budget comes first
        capped = Autoencoder(**{**params, "max_iter": 5}).fit(tabular[:12])
    assert capped.n_iter_ == 5
    assert capped.stop_reason_.startswith("max_iter=5 epochs ran out")


def test_divergence_names_the_epoch_and_the_cause() -> None:
    net = AutoencoderNet(ModelConfig(n_components=2, hidden_layer_sizes=(8,), loss="mse"), (4,))
    x = torch.full((32, 4), 1e30)  # unscaled, absurdly large data overflows the squared error
    with pytest.raises(TrainingError, match=r"epoch 1.*learning_rate.*scal"):
        train(net, x, None, TrainConfig(max_iter=3, verbose=0, device="cpu"), seed=0)


class _Rising(torch.nn.Module):
    """A model whose loss grows with the epoch, like a loss whose KL weight is warming up."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(1))

    def loss(self, x: torch.Tensor, *, generator: object = None, epoch: int = 0) -> dict[str, torch.Tensor]:
        total = self.w.square().sum() * 0 + float(epoch)
        return {"loss": total}


@pytest.mark.parametrize(("settle", "expected"), [(0, 3), (5, 7)])
def test_stopping_rules_wait_for_the_objective_to_settle(settle: int, expected: int) -> None:
    config = TrainConfig(max_iter=20, n_iter_no_change=2, verbose=0, device="cpu")
    result = train(_Rising(), torch.zeros(8, 1), None, config, seed=0, settle_epochs=settle)
    assert result.n_iter == expected


def test_vae_warm_up_is_not_cut_short(digits: np.ndarray) -> None:
    params = {**TINY, "n_components": 2, "bottleneck": "gaussian", "kl_warmup": 6, "n_iter_no_change": 1, "max_iter": 9}
    assert Autoencoder(**params).fit(digits[:200]).n_iter_ > 6
