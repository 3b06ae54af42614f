"""One prepared GPU run (issue 20): the CUDA tests, training speed beside plain PyTorch, DDP, peak memory.

In order, each part going on whatever the one before it did, and each reporting pass, fail or skipped with
the reason:

1. ``pytest -m cuda``: the suite's CUDA-marked tests, in a subprocess, so that a broken CUDA context
   cannot take the later parts with it.
2. Training throughput of the 784-1000-500-250-30 MLP and the MNIST conv recipe (the ``mnist`` preset:
   conv 32-64-128, code 30) at batch 256 and 1,024, in fp32, bf16 and fp16: ``Autoencoder.fit`` beside a
   plain hand-written loop on the same modules (``isthmus.nets``), with default and with fused Adam,
   measured in the same run on the same rows; the peak GPU memory of each run; the plain loop under
   ``torch.compile`` at the largest batch (whether it pays); the held-out loss of the fp32 and bf16 MLPs.
3. ``torchrun --nproc_per_node=N`` over every visible GPU (NCCL) against one GPU on the conv recipe with
   the same global batch: samples/s, and whether the two models match.
4. One JSON line with every figure, the issue's targets as ratios, and what was skipped and why.

Without CUDA it runs its CPU parts (throughput in fp32 and bf16, DDP with gloo on 2 CPU processes) and
names each part it skipped. ``--smoke`` shrinks every part to about 25 s of CPU time (5 processes, each
importing torch: 70 to 90 s of wall time on a loaded 2-core machine), as
``tests/test_gpu_check.py`` does. The rows are MNIST's when at hand (``--train``/``--test`` or the shared
file), else scikit-learn's digits scaled up to 28x28 (throughput does not depend on pixel values; the
held-out losses then come from 1,500 training images).

    python bench/gpu_check.py --out runs/gpu_check    # on a GPU machine: within 8 minutes
    python bench/gpu_check.py --smoke                 # anywhere, about 25 s of CPU time
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from _common import mnist_splits, parse, parser, pixels, report
from isthmus.config import PRESETS
from isthmus.errors import ConfigError
from isthmus.model import autocast_dtype
from isthmus.nets import ARCHITECTURES
from isthmus.train import resolve_device
from throughput import fit_rate, plain_loop

ROOT = Path(__file__).resolve().parents[1]
PRECISIONS = ("fp32", "bf16", "fp16")
#: the two nets of the issue: the 784-1000-500-250-30 MLP, and the ``mnist`` preset (conv 32-64-128, code 30)
#: without its batch size and epochs
NETS: dict[str, dict[str, Any]] = {
    "mlp": {
        **{"architecture": "mlp", "hidden_layer_sizes": (1000, 500, 250), "n_components": 30},
        **{"scaling": "none", "loss": "bce"},
    },
    "conv": {k: v for k, v in PRESETS["mnist"].items() if k not in ("batch_size", "max_iter")},
}
#: compiled is "worth it" when at least this much faster than the eager loop, once compiled
COMPILE_PAYS = 1.05


class Clock:
    """Seconds since the start, and what is left of the budget."""

    def __init__(self, budget: float) -> None:
        self.start = time.perf_counter()
        self.budget = budget

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def left(self) -> float:
        return self.budget - self.elapsed()


def _status(status: str, reason: str | None = None, **figures: Any) -> dict[str, Any]:
    return {"status": status, "reason": reason, **figures}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_start(device: torch.device) -> int:
    """Reset the peak counter; the bytes already held (the peak of a run is counted above them)."""
    if device.type != "cuda":
        return 0
    _sync(device)
    torch.cuda.reset_peak_memory_stats(device)
    return int(torch.cuda.memory_allocated(device))


def _peak_mib(device: torch.device, base: int) -> float | None:
    if device.type != "cuda":
        return None
    _sync(device)
    return round((torch.cuda.max_memory_allocated(device) - base) / 2**20, 1)


# ---------------------------------------------------------------------------------------- data


def image_data(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray, str]:
    """Training and held-out images ``(n, 1, 28, 28)`` float32 in [0, 1], and the data set's name."""
    if not args.smoke:
        try:
            splits = mnist_splits(args)
            return pixels(splits["x_train"], 1, 28, 28), pixels(splits["x_test"], 1, 28, 28), "mnist"
        except SystemExit as exc:
            print(f"note: {exc}; using scikit-learn's digits scaled up to 28x28 instead", flush=True)
    from sklearn.datasets import load_digits

    small = torch.from_numpy(load_digits().images.astype(np.float32)[:, None] / 16.0)  # (1797, 1, 8, 8)
    big = nn.functional.interpolate(small, size=(28, 28), mode="bilinear", align_corners=False).clamp(0.0, 1.0)
    images = big.numpy()
    return images[:1500], images[1500:], "digits-28x28"


def _rows(x: np.ndarray, n: int) -> np.ndarray:
    """``n`` rows of ``x``, repeated cyclically where it has fewer."""
    return np.ascontiguousarray(np.resize(x, (n, *x.shape[1:])))


def _shaped(net: str, x: np.ndarray) -> np.ndarray:
    """The MLP takes flat rows, the conv recipe ``(n, 1, 28, 28)`` images."""
    return x.reshape(len(x), -1) if NETS[net]["architecture"] == "mlp" else x


# ---------------------------------------------------------------------------------------- 1. tests


def cuda_tests(args: argparse.Namespace, clock: Clock, workdir: Path) -> dict[str, Any]:
    """``pytest -m cuda`` in a subprocess; counts and reasons read from its JUnit XML."""
    xml = workdir / "cuda-tests.xml"
    paths = ["tests/test_cuda.py"] if args.smoke else ["tests"]  # collecting the whole suite takes 15 s on 2 cores
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-m",
        "cuda",
        *paths,
        "-q",
        "-p",
        "no:cacheprovider",
        f"--junitxml={xml}",
    ]
    timeout = max(10.0, min(args.test_seconds, clock.left() - args.reserve_seconds))
    print(f"$ {' '.join(command[1:])}", flush=True)
    try:
        run = subprocess.run(
            command, cwd=ROOT, env=_child_env(), capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return _status("fail", f"pytest ran past {timeout:.0f} s (--test-seconds)")
    print(run.stdout[-3000:], flush=True)
    if not xml.exists():
        return _status("fail", f"pytest exited {run.returncode} without a report: {(run.stderr or run.stdout)[-500:]}")
    cases = list(ET.parse(xml).getroot().iter("testcase"))
    failed = [f"{c.get('classname')}::{c.get('name')}" for c in cases if c.find("failure") is not None]
    errors = [f"{c.get('classname')}::{c.get('name')}" for c in cases if c.find("error") is not None]
    skips = [c.find("skipped") for c in cases]
    reasons = sorted({(s.get("message") or "").removeprefix("Skipped: ") for s in skips if s is not None})
    counts = {
        "collected": len(cases),
        "passed": len(cases) - len(failed) - len(errors) - sum(s is not None for s in skips),
        "failed": len(failed) + len(errors),
        "skipped": sum(s is not None for s in skips),
        "failures": (failed + errors)[:20],
        "skip_reasons": reasons,
    }
    if run.returncode == 5 or not cases:
        return _status("fail", "no test marked cuda was collected", **counts)
    if counts["failed"] or run.returncode != 0:
        return _status("fail", f"{counts['failed']} failed (pytest exit {run.returncode})", **counts)
    if counts["passed"] == 0:
        return _status("skipped", f"all {counts['skipped']} skipped: {'; '.join(reasons)}", **counts)
    return _status("pass", None, **counts)


def _child_env() -> dict[str, str]:
    # the children import isthmus as this process did (an installed package or PYTHONPATH=src alike)
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}


# ---------------------------------------------------------------------------------------- 2. throughput


def plain_net(net: str, shape: tuple[int, ...]) -> nn.Module:
    """The same encoder and decoder modules isthmus builds (``isthmus.nets``), seeded, for the plain loop."""
    params = NETS[net]
    arch = ARCHITECTURES[params["architecture"]]
    hidden, code = params["hidden_layer_sizes"], params["n_components"]
    torch.manual_seed(0)
    return nn.Sequential(arch.encoder(shape, hidden, code, "relu"), arch.decoder(shape, hidden, code, "relu"))


def heldout_loss(ae: Any, x: np.ndarray) -> float:
    """Mean training loss (reconstruction, in nats per sample) of held-out rows ``x``, computed in float32."""
    scaled = ae.scaler_.transform(x.reshape(len(x), *ae.input_shape_)).reshape(len(x), *x.shape[1:])
    device = next(ae.net_.parameters()).device
    total = 0.0
    with torch.inference_mode():
        for start in range(0, len(x), 4096):
            batch = torch.from_numpy(np.ascontiguousarray(scaled[start : start + 4096])).to(device)
            total += float(ae.net_.reconstruction_loss(batch).double().sum())
    return total / len(x)


def throughput(
    args: argparse.Namespace, clock: Clock, device: torch.device, x_train: np.ndarray, x_test: np.ndarray
) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, str], dict[str, float]]:
    """Every (net, batch, precision): isthmus, the plain loop with default Adam and with fused Adam."""
    rows: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    losses: dict[str, float] = {}
    errors: list[str] = []
    data = _rows(x_train, args.rows)
    for batch in sorted(args.batch_sizes, reverse=True):  # the targets' batch first, should time run short
        for net in NETS:
            x = _shaped(net, data)
            for precision in args.precisions:
                name = f"{net}/batch{batch}/{precision}"
                try:
                    autocast_dtype(device, precision)
                except ConfigError as exc:
                    skipped[name] = str(exc).split(";")[0]
                    continue
                if clock.left() < args.reserve_seconds:
                    skipped[name] = f"time budget: {clock.elapsed():.0f} s of --budget {args.budget:.0f} s spent"
                    continue
                try:
                    row, ae = _one_config(args, device, net, x, batch, precision)
                    if net == "mlp" and batch == max(args.batch_sizes) and precision in ("fp32", "bf16"):
                        losses[precision] = heldout_loss(ae, _shaped(net, x_test))
                        row["heldout_loss"] = round(losses[precision], 4)
                    del ae
                except Exception as exc:  # one broken configuration must not hide the others
                    traceback.print_exc()
                    errors.append(f"{name}: {type(exc).__name__}: {exc}")
                    continue
                rows.append(row)
                print(
                    f"{name}: isthmus {row['isthmus']:.0f}/s, plain {row['plain']:.0f}/s, plain+fused Adam "
                    f"{row['plain_fused']:.0f}/s (isthmus x{row['isthmus_vs_plain_fused']:.2f} of it)"
                    + (f", peak {row['peak_mib']} MiB" if row["peak_mib"] else ""),
                    flush=True,
                )
                if device.type == "cuda":
                    torch.cuda.empty_cache()
    status = _status("fail", "; ".join(errors)) if errors else _status("pass" if rows else "skipped")
    if not rows and not errors:
        status["reason"] = "every configuration was skipped"
    return status, rows, skipped, losses


def _one_config(
    args: argparse.Namespace, device: torch.device, net: str, x: np.ndarray, batch: int, precision: str
) -> tuple[dict[str, Any], Any]:
    peaks: dict[str, float | None] = {}
    rates: dict[str, float] = {}
    for key, fused in (("plain", False), ("plain_fused", True)):
        base = _peak_start(device)
        xt = torch.from_numpy(x).to(device)  # in the measured region: isthmus holds its rows there too
        module = plain_net(net, tuple(x.shape[1:])).to(device)
        rates[key] = plain_loop(module, xt, batch, args.epochs, fused, precision).samples_per_s
        del xt, module
        peaks[key] = _peak_mib(device, base)
    base = _peak_start(device)
    params = {**NETS[net], "batch_size": batch, "precision": precision, "device": device.type}
    rates["isthmus"], ae = fit_rate(x, params, args.epochs)
    peaks["isthmus"] = _peak_mib(device, base)
    row = {
        "net": net,
        "batch_size": batch,
        "precision": precision,
        **{key: round(rate, 1) for key, rate in rates.items()},
        "isthmus_vs_plain": round(rates["isthmus"] / rates["plain"], 3),
        "isthmus_vs_plain_fused": round(rates["isthmus"] / rates["plain_fused"], 3),
        "peak_mib": peaks["isthmus"],
        "peak_mib_plain_fused": peaks["plain_fused"],
    }
    return row, ae


def compiled(
    args: argparse.Namespace, clock: Clock, device: torch.device, x_train: np.ndarray, eager: list[dict[str, Any]]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The fused plain loop under ``torch.compile`` at the largest batch, against the same loop eager."""
    if args.smoke or args.no_compile:
        return _status("skipped", "--smoke" if args.smoke else "--no-compile"), []
    batch = max(args.batch_sizes)
    rows: list[dict[str, Any]] = []
    errors: list[str] = []
    late: list[str] = []  # skipped for lack of time
    data = _rows(x_train, args.rows)
    for reference in [r for r in eager if r["batch_size"] == batch and r["precision"] in ("fp32", "bf16")]:
        name = f"{reference['net']}/batch{batch}/{reference['precision']}"
        if clock.left() < args.reserve_seconds + args.compile_seconds:
            late.append(f"{name}: skipped, time budget")
            continue
        try:
            torch.compiler.reset()  # each net compiles from scratch: the compile time is its own
            x = _shaped(reference["net"], data)
            xt = torch.from_numpy(x).to(device)
            module = plain_net(reference["net"], tuple(x.shape[1:])).to(device)
            run = plain_loop(module, xt, batch, args.epochs, True, reference["precision"], compile=True)
        except Exception as exc:
            traceback.print_exc()
            errors.append(f"{name}: {type(exc).__name__}: {str(exc)[:300]}")
            continue
        speedup = run.samples_per_s / reference["plain_fused"]
        rows.append(
            {
                "net": reference["net"],
                "batch_size": batch,
                "precision": reference["precision"],
                "plain_fused_compiled": round(run.samples_per_s, 1),
                "plain_fused_eager": reference["plain_fused"],
                "speedup": round(speedup, 3),
                "first_epoch_s": round(run.first_epoch_s, 1),
                "pays": speedup >= COMPILE_PAYS,
            }
        )
        print(f"{name} compiled: x{speedup:.2f} the eager fused loop, first epoch {run.first_epoch_s:.0f} s")
    if errors:
        return _status("fail", "; ".join(errors + late)), rows
    if late:
        return _status("pass" if rows else "skipped", "; ".join(late)), rows
    return _status("pass" if rows else "skipped", None if rows else "no eager run to compare with"), rows


# ---------------------------------------------------------------------------------------- 3. DDP


def ddp_fit(spec: dict[str, Any]) -> dict[str, Any]:
    """Fit the conv recipe as ``spec`` says, inside the process group torchrun describes (if any); rank 0
    saves the model and returns the figures."""
    from isthmus import distributed

    distributed.init_from_env(spec["params"]["device"])
    try:
        x = np.load(spec["data"])
        rate, ae = fit_rate(x, spec["params"], spec["epochs"])
        result = {
            "samples_per_s": rate,
            "train_loss": ae.history_[-1]["train_loss"],
            "processes": distributed.shard_of_process().world,
        }
        if distributed.is_writer():
            ae.save(spec["model"])
            Path(spec["result"]).write_text(json.dumps(result))
        return result
    finally:
        distributed.close()


def ddp(
    args: argparse.Namespace, clock: Clock, device: torch.device, x_train: np.ndarray, workdir: Path
) -> tuple[dict[str, Any], dict[str, Any]]:
    """torchrun over every visible GPU (NCCL), or over 2 CPU processes (gloo) without CUDA, against one."""
    from safetensors.torch import load_file

    if device.type == "cuda":
        n, backend = torch.cuda.device_count(), "nccl"
        if n < 2:
            return _status("skipped", f"{n} visible GPU: NCCL wants a GPU per process, scaling needs 2 or more"), {}
    elif device.type == "cpu":
        n, backend = 2, "gloo"
    else:
        return _status("skipped", f"data-parallel training runs on CUDA (NCCL) or CPUs (gloo), not {device.type}"), {}
    if clock.left() < args.ddp_seconds / 2:
        return _status("skipped", f"time budget: {clock.elapsed():.0f} s of --budget {args.budget:.0f} s spent"), {}
    data = workdir / "ddp-rows.npy"
    np.save(data, _rows(x_train, args.ddp_rows))
    params = {
        **NETS["conv"],
        "batch_size": args.ddp_batch * n,  # the same global batch in both runs: the models must agree
        "precision": args.ddp_precision,
        "device": device.type,
    }
    specs = {
        key: {
            "data": str(data),
            "params": params,
            "epochs": args.ddp_epochs,
            "model": str(workdir / f"ddp-{key}.safetensors"),
            "result": str(workdir / f"ddp-{key}.json"),
        }
        for key in ("one", "many")
    }
    for spec in specs.values():
        Path(spec["result"]).with_suffix(".spec.json").write_text(json.dumps(spec))
    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(1)  # as each gloo worker (OMP_NUM_THREADS=1): one core per process on both sides
    try:
        one = ddp_fit(specs["one"])
    finally:
        torch.set_num_threads(threads)
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={n}",
        str(Path(__file__).resolve()),
        "--ddp-worker",
        str(Path(specs["many"]["result"]).with_suffix(".spec.json")),
    ]
    timeout = max(10.0, min(args.ddp_seconds, clock.left() - 5))
    print(f"$ torchrun --nproc_per_node={n} ({backend}) ...", flush=True)
    env = {**_child_env(), "OMP_NUM_THREADS": "1"} if device.type == "cpu" else _child_env()
    try:
        run = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return _status("fail", f"torchrun ran past {timeout:.0f} s (--ddp-seconds)"), {}
    if run.returncode != 0 or not Path(specs["many"]["result"]).exists():
        return _status("fail", f"torchrun exited {run.returncode}: {run.stderr[-1500:]}"), {}
    many = json.loads(Path(specs["many"]["result"]).read_text())
    a, b = load_file(specs["one"]["model"]), load_file(specs["many"]["model"])
    weight_diff = max(float((a[k].double() - b[k].double()).abs().max()) for k in a if a[k].is_floating_point())
    loss_diff = abs(many["train_loss"] - one["train_loss"]) / abs(one["train_loss"])
    # float32 steps agree to rounding; mixed precision rounds each rank's half-batch products on its own
    tolerance = 1e-4 if args.ddp_precision == "fp32" or device.type == "cpu" else 1e-2
    figures = {
        "backend": backend,
        "processes": many["processes"],
        "global_batch": params["batch_size"],
        "precision": args.ddp_precision,
        "rows": args.ddp_rows,
        "epochs": args.ddp_epochs,
        "samples_per_s_one": round(one["samples_per_s"], 1),
        "samples_per_s_ddp": round(many["samples_per_s"], 1),
        "speedup": round(many["samples_per_s"] / one["samples_per_s"], 3),
        "efficiency": round(many["samples_per_s"] / (n * one["samples_per_s"]), 3),
        "train_loss_one": one["train_loss"],
        "train_loss_ddp": many["train_loss"],
        "train_loss_rel_diff": loss_diff,
        "max_weight_diff": weight_diff,
        "match": loss_diff <= tolerance and many["processes"] == n,
        "match_tolerance": tolerance,
    }
    print(
        f"DDP on {n} ({backend}): {figures['samples_per_s_ddp']:.0f}/s against {figures['samples_per_s_one']:.0f}/s "
        f"on one (efficiency {figures['efficiency']:.2f}); losses differ by {loss_diff:.2e}, weights by "
        f"{weight_diff:.2e}",
        flush=True,
    )
    if not figures["match"]:
        return _status(
            "fail", f"the {n}-process model does not match one process's (loss differs by {loss_diff:.2e})"
        ), figures
    return _status("pass"), figures


# ---------------------------------------------------------------------------------------- 4. targets


def targets(
    device: torch.device,
    rows: list[dict[str, Any]],
    losses: dict[str, float],
    ddp_figures: dict[str, Any],
    tests: dict[str, Any],
    batch: int,
) -> dict[str, Any]:
    """The issue's targets as ratios; ``met`` is null off a GPU (the targets are a GPU's) or when unmeasured."""
    on_gpu = device.type == "cuda"

    def find(net: str, precision: str) -> dict[str, Any] | None:
        return next((r for r in rows if (r["net"], r["batch_size"], r["precision"]) == (net, batch, precision)), None)

    vs_plain = {
        f"{net}_{precision}": row["isthmus_vs_plain_fused"]
        for net in NETS
        for precision in PRECISIONS
        if (row := find(net, precision)) is not None
    }
    fp32_pair = [vs_plain.get(f"{net}_fp32") for net in NETS]
    out: dict[str, Any] = {
        "batch_size": batch,
        "isthmus_vs_plain_fused": {
            **vs_plain,
            "target": 1.0,
            "met": (all(v >= 1.0 for v in fp32_pair) if None not in fp32_pair else None) if on_gpu else None,
        },
    }
    fp32, bf16 = find("mlp", "fp32"), find("mlp", "bf16")
    if fp32 and bf16 and "fp32" in losses and "bf16" in losses:
        speedup = bf16["isthmus"] / fp32["isthmus"]
        diff = (losses["bf16"] - losses["fp32"]) / losses["fp32"]
        out["bf16_vs_fp32_mlp"] = {
            "speedup": round(speedup, 3),
            "heldout_loss_fp32": round(losses["fp32"], 4),
            "heldout_loss_bf16": round(losses["bf16"], 4),
            "heldout_loss_rel_diff": round(diff, 4),
            "target": "speedup >= 1.5, |loss difference| <= 0.02",
            "met": (speedup >= 1.5 and abs(diff) <= 0.02) if on_gpu else None,
        }
    else:
        out["bf16_vs_fp32_mlp"] = {"met": None, "reason": "fp32 or bf16 MLP not measured"}
    if ddp_figures:
        out["ddp_efficiency_conv"] = {
            "processes": ddp_figures["processes"],
            "backend": ddp_figures["backend"],
            "efficiency": ddp_figures["efficiency"],
            "match": ddp_figures["match"],
            "target": 0.8,
            "met": (ddp_figures["efficiency"] >= 0.8 and ddp_figures["match"]) if on_gpu else None,
        }
    else:
        out["ddp_efficiency_conv"] = {"met": None, "reason": "DDP not measured"}
    out["cuda_tests"] = {
        "passed": tests.get("passed", 0),
        "failed": tests.get("failed", 0),
        "skipped": tests.get("skipped", 0),
        "met": (tests.get("status") == "pass") if on_gpu else None,
    }
    return out


# ---------------------------------------------------------------------------------------- main


def _run_part(name: str, figures: dict[str, Any], fn: Callable[[], Any]) -> Any:
    """Run one part; an exception becomes its failure, with the traceback printed, and the run goes on."""
    start = time.perf_counter()
    print(f"--- {name}", flush=True)
    try:
        result = fn()
    except Exception as exc:
        traceback.print_exc()
        result = _status("fail", f"{type(exc).__name__}: {exc}")
    status = result[0] if isinstance(result, tuple) else result
    status["seconds"] = round(time.perf_counter() - start, 1)
    figures["parts"][name] = status
    print(f"--- {name}: {status['status']}" + (f" ({status['reason']})" if status["reason"] else ""), flush=True)
    return result


def arguments() -> argparse.Namespace:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="tiny sizes, no compiling: about 25 s of CPU time")
    p.add_argument("--budget", type=float, default=450.0, help="seconds the whole run may take (default 7.5 min)")
    p.add_argument("--rows", type=int, default=None, help="training rows per epoch (default 49,152; smoke 192)")
    p.add_argument("--epochs", type=int, default=None, help="epochs per run, the first untimed (default 6; smoke 2)")
    p.add_argument("--batch-sizes", nargs="+", type=int, default=None, help="default 256 1024; smoke 64")
    p.add_argument("--precisions", nargs="+", default=list(PRECISIONS), choices=PRECISIONS)
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile runs")
    p.add_argument("--compile-seconds", type=float, default=45.0, help="time to keep free for each compile")
    p.add_argument("--test-seconds", type=float, default=150.0, help="limit of the pytest part")
    p.add_argument("--ddp-seconds", type=float, default=120.0, help="limit of the torchrun launch")
    p.add_argument("--ddp-rows", type=int, default=None, help="rows of the DDP runs (default 49,152; smoke 128)")
    p.add_argument("--ddp-epochs", type=int, default=None, help="epochs of the DDP runs (default 4; smoke 2)")
    p.add_argument("--ddp-batch", type=int, default=None, help="batch per process (default 1024; smoke 32)")
    p.add_argument("--ddp-precision", default="auto", help="precision of the DDP runs (default: what fit picks)")
    p.add_argument("--ddp-worker", type=Path, default=None, help=argparse.SUPPRESS)  # one rank, under torchrun
    args = parse(p)
    big = not args.smoke
    defaults = {
        "rows": 49152 if big else 192,
        "epochs": 6 if big else 2,
        "batch_sizes": [256, 1024] if big else [64],
        "ddp_rows": 49152 if big else 128,
        "ddp_epochs": 4 if big else 2,
        "ddp_batch": 1024 if big else 32,
    }
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    # time kept free for the DDP part while the earlier parts run
    args.reserve_seconds = args.ddp_seconds if big else 0.0
    if args.epochs < 2 or args.ddp_epochs < 2:
        p.error("--epochs and --ddp-epochs must be at least 2 (the first epoch is not timed)")
    return args


def main() -> int:
    args = arguments()
    if args.ddp_worker is not None:
        ddp_fit(json.loads(args.ddp_worker.read_text()))
        return 0
    clock = Clock(args.budget)
    device = resolve_device(args.device)
    if device.type == "cuda" and torch.cuda.device_count() < 2:
        args.reserve_seconds = 0.0  # the DDP part has nothing to run on one GPU
    figures: dict[str, Any] = {
        "smoke": args.smoke,
        "device": device.type,
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "visible_gpus": torch.cuda.device_count(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "threads": torch.get_num_threads(),
        "parts": {},
        "skipped": {},
    }
    print(f"gpu_check on {figures['gpu'] or device.type}, torch {torch.__version__}, budget {args.budget:.0f} s")
    work = Path(tempfile.mkdtemp(prefix="gpu_check-"))  # rows, models, reports: out of --out, which stays small
    out = args.out or work
    out.mkdir(parents=True, exist_ok=True)

    tests = _run_part("cuda_tests", figures, lambda: cuda_tests(args, clock, work))
    figures["cuda_tests"] = {k: v for k, v in tests.items() if k not in ("status", "reason", "seconds")}

    x_train, x_test, data_name = image_data(args)
    figures.update({"data": data_name, "rows": args.rows, "epochs": args.epochs})
    speed = _run_part("throughput", figures, lambda: throughput(args, clock, device, x_train, x_test))
    rows, skipped, losses = (speed[1], speed[2], speed[3]) if isinstance(speed, tuple) else ([], {}, {})
    figures["throughput"] = rows
    figures["skipped"].update(skipped)
    figures["heldout_loss_mlp"] = losses
    fast = _run_part("compile", figures, lambda: compiled(args, clock, device, x_train, rows))
    figures["compile"] = fast[1] if isinstance(fast, tuple) else []

    if device.type == "cuda":
        figures["parts"]["memory"] = _status("pass" if rows else "skipped", None if rows else "no run measured")
        figures["peak_mib"] = {f"{r['net']}/batch{r['batch_size']}/{r['precision']}": r["peak_mib"] for r in rows}
    else:
        figures["parts"]["memory"] = _status("skipped", "no CUDA: peak memory is the GPU allocator's")

    parallel = _run_part("ddp", figures, lambda: ddp(args, clock, device, x_train, work))
    figures["ddp"] = parallel[1] if isinstance(parallel, tuple) else {}
    if device.type != "cuda" and figures["parts"]["ddp"]["status"] != "skipped":
        figures["skipped"]["ddp_nccl"] = "no CUDA: ran gloo on 2 CPU processes instead"

    for name, part in figures["parts"].items():
        if part["status"] == "skipped":
            figures["skipped"][name] = part["reason"]
    figures["targets"] = targets(
        device,
        rows,
        losses,
        figures["ddp"],
        figures["parts"]["cuda_tests"] | figures["cuda_tests"],
        max(args.batch_sizes),
    )
    figures["seconds"] = round(clock.elapsed(), 1)
    (out / "gpu_check.json").write_text(json.dumps(figures, indent=1))
    failed = [name for name, part in figures["parts"].items() if part["status"] == "fail"]
    summary = ", ".join(f"{name} {part['status']}" for name, part in figures["parts"].items())
    print(f"parts: {summary}; figures in {out}")
    report(figures, headline(figures), None if args.smoke else args)  # a smoke run only prints
    return 1 if failed else 0


def headline(figures: dict[str, Any]) -> dict[str, str]:
    """What ``docs/results.md`` shows for a run: the targets' ratios, or what was not measured."""
    t = figures["targets"]
    plain = t["isthmus_vs_plain_fused"]
    bf16, ddp = t["bf16_vs_fp32_mlp"], t["ddp_efficiency_conv"]

    def ratio(key: str) -> str:
        return f"x{plain[key]:.2f}" if key in plain else "not measured"

    parts = [
        f"isthmus/plain MLP {ratio('mlp_fp32')}, conv {ratio('conv_fp32')}",
        f"bf16/fp32 MLP x{bf16['speedup']:.2f} (held-out loss {bf16['heldout_loss_rel_diff']:+.1%})"
        if "speedup" in bf16
        else "bf16/fp32 not measured",
        f"DDP efficiency {ddp['efficiency']:.2f} on {ddp['processes']}" if "efficiency" in ddp else "DDP not measured",
        f"CUDA tests {t['cuda_tests']['passed']} passed, {t['cuda_tests']['failed']} failed",
    ]
    return {
        "what": f"GPU check on {figures['gpu'] or figures['device']}, batch {t['batch_size']}, fp32 unless named",
        "figure": "; ".join(parts),
        "baseline": "a plain PyTorch loop on the same modules with fused Adam, in the same run",
    }


if __name__ == "__main__":
    sys.exit(main())
