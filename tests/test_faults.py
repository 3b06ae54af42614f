"""Runs that go wrong: a diverging loss, and a process killed with SIGKILL at a random moment."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from conftest import TINY
from isthmus import Autoencoder, estimator
from isthmus.cli import main
from isthmus.errors import TrainingError
from isthmus.model import AutoencoderNet, build_net
from isthmus.train import MAX_RETRIES

PARAMS = {**TINY, "n_components": 3, "max_iter": 6}


@pytest.fixture
def nets(monkeypatch: pytest.MonkeyPatch) -> list[AutoencoderNet]:
    """The networks that fit builds, as it builds them: the callbacks below poison their weights."""
    built: list[AutoencoderNet] = []

    def build(*args: Any, **kwargs: Any) -> AutoencoderNet:
        built.append(build_net(*args, **kwargs))
        return built[-1]

    monkeypatch.setattr(estimator, "build_net", build)
    return built


class _Poison:
    """Sets every weight to NaN once, after the given epoch, as an overflow would."""

    def __init__(self, nets: list[AutoencoderNet], epoch: int) -> None:
        self.nets, self.epoch, self.done = nets, epoch, False

    def __call__(self, epoch: int, record: dict[str, float]) -> None:
        if epoch == self.epoch and not self.done:
            self.done = True
            with torch.no_grad():
                for p in self.nets[-1].parameters():
                    p.fill_(float("nan"))


def test_divergence_stops_naming_the_epoch_and_keeps_the_last_good_checkpoint(
    tabular: np.ndarray, tmp_path: Path, nets: list[AutoencoderNet]
) -> None:
    ckpt = tmp_path / "run.ckpt"
    ae = Autoencoder(**PARAMS)
    with pytest.raises(TrainingError, match=r"diverged at epoch 3: train_loss is nan.*learning_rate.*retry.*epoch 2"):
        ae.fit(tabular, checkpoint=ckpt, callbacks=[_Poison(nets, 2)])
    with safe_open(str(ckpt), "pt") as fh:
        assert fh.metadata()["epoch"] == "2"
    assert all(torch.isfinite(t).all() for k, t in load_file(ckpt).items() if k.startswith("net."))
    resumed = Autoencoder(**PARAMS).fit(tabular, resume=ckpt)  # the kept checkpoint is good to go on from
    assert resumed.n_iter_ == 6 and np.isfinite(resumed.history_[-1]["train_loss"])


def test_retry_restarts_from_the_last_good_epoch_with_half_the_learning_rate(
    tabular: np.ndarray, nets: list[AutoencoderNet]
) -> None:
    ae = Autoencoder(**PARAMS, on_divergence="retry")
    ae.fit(tabular, callbacks=[_Poison(nets, 2)])
    lrs = [h["lr"] for h in ae.history_]
    assert [h["epoch"] for h in ae.history_] == [1, 2, 3, 4, 5, 6]
    assert lrs[:2] == [1e-3, 1e-3] and lrs[2:] == [5e-4] * 4
    assert all(np.isfinite(h["train_loss"]) for h in ae.history_)
    assert np.isfinite(ae.transform(tabular)).all()


class _AlwaysPoisonAfter:
    """Poisons the weights after every epoch from ``epoch`` on, so every restart diverges again."""

    def __init__(self, nets: list[AutoencoderNet], epoch: int) -> None:
        self.nets, self.epoch = nets, epoch

    def __call__(self, epoch: int, record: dict[str, float]) -> None:
        if epoch >= self.epoch:
            with torch.no_grad():
                for p in self.nets[-1].parameters():
                    p.fill_(float("inf"))


def test_retry_gives_up_after_its_restarts(tabular: np.ndarray, nets: list[AutoencoderNet]) -> None:
    ae = Autoencoder(**PARAMS, on_divergence="retry")
    with pytest.raises(TrainingError, match=f"after {MAX_RETRIES} restarts"):
        ae.fit(tabular, callbacks=[_AlwaysPoisonAfter(nets, 2)])


_TRAIN = """
import sys
import numpy as np
from isthmus.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _args(data: Path, model: Path, *extra: str) -> list[str]:
    sets = [
        "max_iter=3",  # killed in the second or third epoch: what resuming restores is the same with more
        "random_state=0",
        "hidden_layer_sizes=[64,32]",
        "n_components=4",
        "batch_size=16",
        "verbose=0",
        "device=cpu",
    ]
    return ["train", str(data), "-o", str(model), *[a for s in sets for a in ("--set", s)], *extra]


def _train(data: Path, model: Path, *extra: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen(
        [sys.executable, "-c", _TRAIN, *_args(data, model, *extra)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def test_sigkill_mid_epoch_leaves_a_checkpoint_that_resumes_to_identical_weights(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    data = tmp_path / "x.npy"
    np.save(data, (rng.normal(size=(20000, 40)) @ rng.normal(size=(40, 40))).astype(np.float32))
    straight = tmp_path / "straight.safetensors"
    # the uninterrupted run in this process (one thread, as the children): each child costs seconds of imports
    assert main(_args(data, straight)) == 0

    killed = tmp_path / "killed.safetensors"
    ckpt = killed.with_suffix(".ckpt")
    proc = _train(data, killed)
    deadline = time.monotonic() + 300
    while not ckpt.exists():  # the first epoch's checkpoint is on disk: now kill somewhere in a later epoch
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.stderr else ""
        time.sleep(0.01)
    time.sleep(float(rng.uniform(0.0, 0.5)))
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the run ended before it was killed; make the epochs longer"
    assert not killed.exists()
    load_file(ckpt)  # whole: the previous checkpoint or the new one, never a torn file

    assert _train(data, killed, "--resume").wait(timeout=300) == 0
    a, b = load_file(straight), load_file(killed)
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
