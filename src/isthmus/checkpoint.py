"""Training checkpoints: everything a run needs to continue bit for bit, in one safetensors file.

Weights, the best weights so far, the optimizer's state, both generators and the loop's counters; the
format is specified in ``docs/format.md`` (section 3). Files are written atomically, so a run killed at
any moment leaves the previous checkpoint or the new one.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, NamedTuple

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from isthmus._files import atomic_path
from isthmus.errors import ModelFileError

CHECKPOINT_FORMAT = "isthmus.checkpoint"
CHECKPOINT_VERSION = 1


class Run(NamedTuple):
    """The live objects of a run whose state a checkpoint captures."""

    net: nn.Module
    optimizer: torch.optim.Optimizer
    shuffle_gen: torch.Generator
    noise_gen: torch.Generator


class State:
    """Everything a checkpoint must hold to continue a run bit for bit."""

    def __init__(self) -> None:
        self.epoch = 0
        self.history: list[dict[str, float]] = []
        self.best_loss = math.inf
        self.bad_epochs = 0
        self.best_weights: dict[str, Tensor] | None = None
        self.lr_scale = 1.0  # halved by each restart after a divergence
        self.grad_scaler: dict[str, Any] | None = None  # float16's loss scale: GradScaler.state_dict()


def checkpoint_seed(path: str | os.PathLike[str]) -> int | None:
    """The seed a checkpoint's run was started with, so a resumed run splits its data the same way."""
    try:
        with safe_open(str(path), framework="pt") as fh:
            seed = (fh.metadata() or {}).get("seed")
        return None if seed is None else int(seed)
    except (SafetensorError, OSError, ValueError):
        return None  # the checkpoint's own loader reports what is wrong with it


def save_checkpoint(
    path: str | os.PathLike[str],
    run: Run,
    state: State,
    n_train: int,
    seed: int,
) -> None:
    net, optimizer, shuffle_gen, noise_gen = run
    tensors = {f"net.{k}": v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    if state.best_weights is not None:
        tensors.update({f"best.{k}": v.cpu().contiguous() for k, v in state.best_weights.items()})
    opt = optimizer.state_dict()
    plain: dict[str, dict[str, Any]] = {}
    for index, slots in opt["state"].items():
        for key, value in slots.items():
            if isinstance(value, Tensor):
                tensors[f"optim.{index}.{key}"] = value.detach().cpu().contiguous()
            else:
                plain.setdefault(str(index), {})[key] = value
    tensors["rng.shuffle"] = shuffle_gen.get_state()
    tensors["rng.noise"] = noise_gen.get_state().cpu()
    meta = {
        "format": CHECKPOINT_FORMAT,
        "format_version": str(CHECKPOINT_VERSION),
        "epoch": str(state.epoch),
        "n_train": str(n_train),
        "seed": str(seed),
        "best_loss": json.dumps(state.best_loss),
        "bad_epochs": str(state.bad_epochs),
        "lr_scale": json.dumps(state.lr_scale),
        "history": json.dumps(state.history),
        "optim_groups": json.dumps(opt["param_groups"]),
        "optim_plain": json.dumps(plain),
    }
    if state.grad_scaler is not None:
        meta["grad_scaler"] = json.dumps(state.grad_scaler)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)


def load_checkpoint(
    path: str | os.PathLike[str],
    run: Run,
    state: State,
    n_train: int,
) -> None:
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ModelFileError(f"checkpoint {path} is unreadable ({exc}); delete it to start over") from None
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise ModelFileError(f"{path} is not an isthmus checkpoint")
    try:
        _restore(path, meta, tensors, run, state, n_train)
    except (KeyError, ValueError, TypeError, RuntimeError, IndexError) as exc:
        raise ModelFileError(
            f"checkpoint {path} is damaged ({type(exc).__name__}: {exc}); delete it to start over"
        ) from None


def _restore(
    path: str | os.PathLike[str],
    meta: dict[str, str],
    tensors: dict[str, Tensor],
    run: Run,
    state: State,
    n_train: int,
) -> None:
    net, optimizer, shuffle_gen, noise_gen = run
    if int(meta["format_version"]) > CHECKPOINT_VERSION:
        raise ModelFileError(f"checkpoint {path} was written by a newer isthmus; upgrade isthmus to resume it")
    int(meta["seed"])  # the estimator split the data with it; it must be readable
    if int(meta["n_train"]) != n_train:
        raise ModelFileError(
            f"checkpoint {path} was trained on {meta['n_train']} samples, this run has {n_train}; "
            "resume with the same data and parameters"
        )
    weights = {k[4:]: v for k, v in tensors.items() if k.startswith("net.")}
    try:
        net.load_state_dict(weights)
    except RuntimeError:
        raise ModelFileError(
            f"checkpoint {path} holds a different network than these parameters describe; "
            "resume with the parameters of the stopped run"
        ) from None
    params = list(net.parameters())
    device = params[0].device
    slots: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            i = int(index)
            if value.dim() and value.shape != params[i].shape:
                raise ValueError(f"optimizer slot {key} has shape {tuple(value.shape)}, not {tuple(params[i].shape)}")
            slots.setdefault(i, {})[name] = value.to(device) if value.dim() else value
    for index, extra in json.loads(meta["optim_plain"]).items():
        slots.setdefault(int(index), {}).update(extra)
    if slots and sorted(slots) != list(range(len(params))):
        raise ValueError(f"optimizer state covers parameters {sorted(slots)}, the network has {len(params)}")
    optimizer.load_state_dict({"state": slots, "param_groups": json.loads(meta["optim_groups"])})
    shuffle_gen.set_state(tensors["rng.shuffle"])
    noise_gen.set_state(tensors["rng.noise"])
    best = {k[5:]: v.to(device) for k, v in tensors.items() if k.startswith("best.")}
    if best:
        net.load_state_dict(net.state_dict() | best)  # validates names and shapes, then restores current ones
        net.load_state_dict(weights)
    state.best_weights = best or None
    state.epoch = int(meta["epoch"])
    state.history = json.loads(meta["history"])
    state.best_loss = float(json.loads(meta["best_loss"]))
    state.bad_epochs = int(meta["bad_epochs"])
    state.lr_scale = float(json.loads(meta.get("lr_scale", "1.0")))
    scaler = json.loads(meta["grad_scaler"]) if "grad_scaler" in meta else None
    if scaler is not None and not (
        isinstance(scaler, dict) and "scale" in scaler and all(type(v) in (int, float) for v in scaler.values())
    ):
        raise ValueError(f"grad_scaler is {meta['grad_scaler'][:80]}, not a gradient scaler's numbers")
    state.grad_scaler = scaler
