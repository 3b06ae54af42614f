"""bench/gpu_check.py --smoke: every part runs or says why not, and the last line holds every figure.

GPU time is short: this runs the script's whole path on the CPU (its pytest run, both nets in fp32 and
bf16 beside the plain loops, torchrun with gloo) so that the GPU run finds nothing to fix in the script.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import runpy
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The script run as ``__main__`` in this process (its pytest run and torchrun stay child processes):
    one interpreter fewer, whose imports of torch, scikit-learn and torch._dynamo cost seconds."""
    out = tmp_path_factory.mktemp("gpu_check")
    script = ROOT / "bench" / "gpu_check.py"
    stdout = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(stdout), pytest.raises(SystemExit) as exited:
        mp.setenv("OMP_NUM_THREADS", "1")  # for its children, as this process runs one thread (conftest)
        mp.setattr(sys, "argv", [str(script), "--smoke", "--out", str(out)])
        mp.syspath_prepend(str(script.parent))  # as python puts a script's folder first
        runpy.run_path(str(script), run_name="__main__")
    assert exited.value.code == 0, stdout.getvalue()[-3000:]
    figures: dict[str, Any] = json.loads(stdout.getvalue().strip().splitlines()[-1])
    assert json.loads((out / "gpu_check.json").read_text()) == figures  # also kept as a file in --out
    return figures


def test_every_part_reports_a_status_and_off_a_gpu_says_what_it_skipped(smoke: dict[str, Any]) -> None:
    parts = smoke["parts"]
    assert list(parts) == ["cuda_tests", "throughput", "compile", "memory", "ddp"]
    assert all(part["status"] in ("pass", "skipped") for part in parts.values()), parts
    assert parts["compile"] == {**parts["compile"], "status": "skipped", "reason": "--smoke"}
    tests = smoke["cuda_tests"]
    assert tests["collected"] >= 10 and tests["failed"] == 0
    if torch.cuda.is_available():
        assert parts["cuda_tests"]["status"] == parts["memory"]["status"] == "pass"
        return
    assert parts["cuda_tests"]["status"] == "skipped"
    assert "needs a CUDA GPU" in parts["cuda_tests"]["reason"]
    assert tests["passed"] == 0 and tests["skipped"] == tests["collected"]
    skipped = smoke["skipped"]
    for net in ("mlp", "conv"):
        assert "fp16" in skipped[f"{net}/batch64/fp16"] and "cpu" in skipped[f"{net}/batch64/fp16"]
    assert "CUDA" in skipped["memory"] and "gloo" in skipped["ddp_nccl"]
    assert {"cuda_tests", "compile", "memory"} <= skipped.keys()


def test_throughput_measures_isthmus_beside_both_plain_loops(smoke: dict[str, Any]) -> None:
    rows = {(r["net"], r["precision"]): r for r in smoke["throughput"]}
    precisions = ("fp32", "bf16", "fp16") if torch.cuda.is_available() else ("fp32", "bf16")
    assert set(rows) == {(net, p) for net in ("mlp", "conv") for p in precisions}
    for row in rows.values():
        assert row["batch_size"] == 64
        assert min(row["isthmus"], row["plain"], row["plain_fused"]) > 0
        assert row["isthmus_vs_plain_fused"] == pytest.approx(row["isthmus"] / row["plain_fused"], rel=1e-2)
        assert (row["peak_mib"] is None) == (not torch.cuda.is_available())
    losses = smoke["heldout_loss_mlp"]
    assert rows["mlp", "fp32"]["heldout_loss"] == pytest.approx(losses["fp32"], rel=1e-3)
    assert 0 < losses["bf16"] < 784 * math.log(2)  # nats per image: better than predicting 0.5 everywhere


def test_ddp_under_torchrun_matches_one_process_and_the_targets_are_ratios(smoke: dict[str, Any]) -> None:
    ddp = smoke["ddp"]
    assert smoke["parts"]["ddp"]["status"] == "pass"
    assert ddp["processes"] == 2 and ddp["match"]
    assert ddp["train_loss_rel_diff"] <= ddp["match_tolerance"]
    assert ddp["efficiency"] == pytest.approx(ddp["samples_per_s_ddp"] / (2 * ddp["samples_per_s_one"]), rel=1e-2)
    targets = smoke["targets"]
    mlp = {r["precision"]: r for r in smoke["throughput"] if r["net"] == "mlp"}
    bf16 = targets["bf16_vs_fp32_mlp"]
    assert bf16["speedup"] == pytest.approx(mlp["bf16"]["isthmus"] / mlp["fp32"]["isthmus"], rel=1e-2)
    assert bf16["heldout_loss_rel_diff"] == pytest.approx(
        (bf16["heldout_loss_bf16"] - bf16["heldout_loss_fp32"]) / bf16["heldout_loss_fp32"], abs=1e-3
    )
    assert targets["isthmus_vs_plain_fused"]["mlp_fp32"] == mlp["fp32"]["isthmus_vs_plain_fused"]
    assert targets["ddp_efficiency_conv"]["efficiency"] == ddp["efficiency"]
    if not torch.cuda.is_available():  # the targets are a GPU's: measured here, judged there
        assert all(target["met"] is None for name, target in targets.items() if name != "batch_size")
