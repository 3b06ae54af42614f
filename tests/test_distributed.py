"""Data-parallel training: two CPU processes with gloo on loopback, under torchrun, against one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
from safetensors.torch import load_file

from isthmus.cli import main

SETS = [
    "max_iter=4",
    "random_state=0",
    "batch_size=64",
    "verbose=0",
    "n_components=3",
    "hidden_layer_sizes=[16]",
    "early_stopping=true",
    "n_iter_no_change=50",
    "device=cpu",
]

pytestmark = pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs gloo")


@pytest.fixture
def data(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path / "x.npy"
    np.save(path, (rng.normal(size=(600, 10)) @ rng.normal(size=(10, 10))).astype(np.float32))
    return path


def _torchrun(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "isthmus",
        *args,
    ]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _same_run(tmp_path: Path, ddp: str, one: str) -> None:
    """The model files and the per-epoch logs of a data-parallel run and of one process agree."""
    a, b = load_file(tmp_path / f"{ddp}.safetensors"), load_file(tmp_path / f"{one}.safetensors")
    assert a.keys() == b.keys()
    for name in b:
        torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=1e-5, msg=name)
    # one log line per epoch (rank 0 only), the same losses as the single process within rounding
    logs = [[json.loads(line) for line in (tmp_path / f"{m}.log.jsonl").read_text().splitlines()] for m in (ddp, one)]
    assert len(logs[0]) == len(logs[1]) == 4
    for x, y in zip(*logs, strict=True):
        assert x["train_loss"] == pytest.approx(y["train_loss"], rel=1e-4)
        assert x["val_loss"] == pytest.approx(y["val_loss"], rel=1e-4)


def test_two_gloo_processes_match_one_process_with_the_same_global_batch(data: Path, tmp_path: Path) -> None:
    sets = [a for s in SETS for a in ("--set", s)]
    run = _torchrun("train", str(data), "-o", "ddp.safetensors", *sets, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "in 2 processes" in run.stdout
    assert run.stdout.count("saved ddp.safetensors") == 1  # rank 0 alone writes and reports
    assert main(["train", str(data), "-o", str(tmp_path / "one.safetensors"), *sets]) == 0
    _same_run(tmp_path, "ddp", "one")


def test_an_error_on_every_rank_is_one_clear_line_and_a_failed_launch(data: Path, tmp_path: Path) -> None:
    run = _torchrun("train", str(data), "-o", "m.safetensors", "--set", "n_components=99", cwd=tmp_path)
    assert run.returncode != 0
    assert "error: n_components=99 must be smaller than n_features=10" in run.stderr
    assert "isthmus/" not in run.stderr  # torchrun reports the failed launch; isthmus shows no traceback
    assert not (tmp_path / "m.safetensors").exists()


_FIT = """
import sys
import numpy as np
import torch.distributed as dist
from isthmus import Autoencoder
from isthmus.cli import main

dist.init_process_group("gloo")  # the caller's own group: the command and fit train under DDP inside it
data, out, sets = sys.argv[1], sys.argv[2], sys.argv[3:]
assert main(["train", data, "-o", f"{out}/ddp.safetensors", "--stream", *sets]) == 0
x = np.load(data)
# no random_state: each process draws its own seed, and only a fit that joins the group agrees on rank 0's
ae = Autoencoder(n_components=3, hidden_layer_sizes=(16,), max_iter=3, batch_size=64, verbose=0, device="cpu")
ae.fit(x)
ae.save(f"{out}/rank{dist.get_rank()}.safetensors")
dist.destroy_process_group()
"""


def test_a_stream_and_a_fit_train_data_parallel_inside_a_process_group_the_caller_started(
    data: Path, tmp_path: Path
) -> None:
    # one launch for both (each launch starts three interpreters): a streamed command that matches one
    # process, and an estimator whose ranks agree on rank 0's seed
    script = tmp_path / "fit.py"
    script.write_text(_FIT)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    sets = [a for s in SETS for a in ("--set", s)]
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        str(script),
        str(data),
        str(tmp_path),
        *sets,
    ]
    run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.count("saved") == 1  # rank 0 alone writes and reports
    assert main(["train", str(data), "-o", str(tmp_path / "one.safetensors"), "--stream", *sets]) == 0
    _same_run(tmp_path, "ddp", "one")
    ranks = [load_file(tmp_path / f"rank{r}.safetensors") for r in (0, 1)]
    for name, value in ranks[0].items():
        assert torch.equal(ranks[1][name], value), name  # one seed, one model, in sync
