"""The training loop. It knows no variant by name: it calls ``net.loss(batch)`` and steps.

It owns batching, the optimizer, the learning-rate schedule, early stopping, the JSON-lines log,
atomic checkpoints and resuming from them, the progress bar and device placement.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple, cast

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from tqdm.auto import tqdm

from isthmus._files import atomic_path
from isthmus.config import TrainConfig
from isthmus.errors import ModelFileError, TrainingError

CHECKPOINT_FORMAT = "isthmus.checkpoint"
CHECKPOINT_VERSION = 1

#: Called after every epoch with the epoch number (1-based) and its record of named metrics.
Callback = Callable[[int, dict[str, float]], None]


class TrainResult(NamedTuple):
    """What a finished run learned about itself."""

    history: list[dict[str, float]]  # one record per epoch: "epoch", "lr", "train_<term>", "val_<term>"
    n_iter: int  # epochs run
    best_loss: float  # best monitored loss (validation loss with early stopping, else training loss)
    converged: bool  # stopped by early stopping or target_loss rather than by running out of epochs


def resolve_device(name: str) -> torch.device:
    """``"auto"`` picks CUDA, then MPS, then the CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    return torch.device(name)


def autocast(device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """Mixed precision on CUDA (bfloat16 where supported, else float16); full precision elsewhere."""
    if device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    return contextlib.nullcontext()


def _loss(net: nn.Module) -> Callable[..., dict[str, Tensor]]:
    """The network's ``loss`` method: the one thing the loop asks of a model."""
    return cast(Callable[..., dict[str, Tensor]], net.loss)


def batches(x: Tensor, batch_size: int) -> Iterator[Tensor]:
    """Consecutive slices of ``x`` along its first dimension."""
    for start in range(0, len(x), batch_size):
        yield x[start : start + batch_size]


class _Run(NamedTuple):
    """The live objects of a run whose state a checkpoint captures."""

    net: nn.Module
    optimizer: torch.optim.Optimizer
    shuffle_gen: torch.Generator
    noise_gen: torch.Generator


class _State:
    """Everything a checkpoint must hold to continue a run bit for bit."""

    def __init__(self) -> None:
        self.epoch = 0
        self.history: list[dict[str, float]] = []
        self.best_loss = math.inf
        self.bad_epochs = 0
        self.best_weights: dict[str, Tensor] | None = None


def train(
    net: nn.Module,
    x_train: Tensor,
    x_val: Tensor | None,
    config: TrainConfig,
    *,
    seed: int,
    checkpoint: str | os.PathLike[str] | None = None,
    resume: bool = False,
    log: str | os.PathLike[str] | None = None,
    callbacks: Sequence[Callback] = (),
    settle_epochs: int = 0,
) -> TrainResult:
    """Train ``net`` in place on scaled data and return its history.

    Parameters
    ----------
    net : nn.Module
        Any module with ``loss(batch, generator=..., epoch=...) -> dict`` holding a ``"loss"`` key.
    x_train, x_val : Tensor
        Scaled training and (optional) validation samples, ``(n_samples, *input_shape)``.
    config : TrainConfig
        Optimizer, batches, stopping rules.
    seed : int
        Seeds the shuffling and the noise generators.
    checkpoint : path, optional
        Written atomically after every epoch; with ``resume=True`` the run continues from it.
    log : path, optional
        Per-epoch metrics appended as JSON lines.
    callbacks : sequence of callables
        Called as ``callback(epoch, record)`` after each epoch.
    settle_epochs : int
        Epochs during which the objective itself still changes (a loss-weight warm-up): stopping rules
        and the best loss start counting only after them.
    """
    device = resolve_device(config.device)
    net.to(device)
    x_train = x_train.to(device)
    x_val = None if x_val is None else x_val.to(device)
    optimizer = make_optimizer(net, config, device)
    shuffle_gen = torch.Generator().manual_seed(seed)
    noise_gen = torch.Generator(device=device).manual_seed(seed + 1)
    state = _State()
    run = _Run(net, optimizer, shuffle_gen, noise_gen)
    if resume:
        if checkpoint is None or not Path(checkpoint).exists():
            raise ModelFileError(f"cannot resume: checkpoint {checkpoint} does not exist; train without --resume")
        _load_checkpoint(checkpoint, run, state, len(x_train))
    monitor = "val_loss" if x_val is not None else "train_loss"
    converged = False
    bar = tqdm(total=config.max_iter, initial=state.epoch, disable=config.verbose == 0, unit="epoch", leave=False)
    try:
        while state.epoch < config.max_iter and not converged:
            epoch = state.epoch + 1
            lr = _learning_rate(config, epoch)
            for group in optimizer.param_groups:
                group["lr"] = lr
            record: dict[str, float] = {"epoch": float(epoch), "lr": lr}
            record.update(_run_epoch(net, optimizer, x_train, config, shuffle_gen, noise_gen, epoch, device))
            if x_val is not None:
                record.update(_evaluate(net, x_val, config.batch_size, device, epoch))
            current = record[monitor]
            if not math.isfinite(current):
                raise TrainingError(
                    f"training diverged at epoch {epoch}: {monitor} is {current}; lower learning_rate "
                    f"(now {config.learning_rate}) or scale the data (scaling='standard' or 'minmax')"
                )
            if epoch <= settle_epochs:  # the objective is still changing: nothing to compare with yet
                state.best_loss = math.inf
            if current < state.best_loss - config.tol:
                state.bad_epochs = 0
                if x_val is not None:
                    state.best_weights = {k: v.detach().clone() for k, v in net.state_dict().items()}
            else:
                state.bad_epochs += 1
            state.best_loss = min(state.best_loss, current)
            state.epoch = epoch
            state.history.append(record)
            converged = (epoch > settle_epochs and state.bad_epochs >= config.n_iter_no_change) or (
                config.target_loss is not None and current <= config.target_loss
            )
            if log is not None:
                with open(log, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps(record) + "\n")
            if checkpoint is not None:
                _save_checkpoint(checkpoint, run, state, len(x_train), seed)
            # postfix first without a redraw; update() redraws at most every mininterval seconds
            shown = {k: f"{v:.4g}" for k, v in record.items() if k in ("train_loss", "val_loss")}
            bar.set_postfix(shown, refresh=False)
            bar.update(1)
            for callback in callbacks:
                callback(epoch, record)
    finally:
        bar.close()
    if config.early_stopping and state.best_weights is not None:
        net.load_state_dict(state.best_weights)
    net.eval()
    return TrainResult(state.history, state.epoch, state.best_loss, converged)


def make_optimizer(net: nn.Module, config: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    """Adam; the fused kernel where the device has one (several times faster than the per-tensor loop)."""
    fused = device.type in ("cpu", "cuda")
    return torch.optim.Adam(
        net.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay, fused=fused or None
    )


def checkpoint_seed(path: str | os.PathLike[str]) -> int | None:
    """The seed a checkpoint's run was started with, so a resumed run splits its data the same way."""
    try:
        with safe_open(str(path), framework="pt") as fh:
            seed = (fh.metadata() or {}).get("seed")
        return None if seed is None else int(seed)
    except (SafetensorError, OSError, ValueError):
        return None  # the checkpoint's own loader reports what is wrong with it


def _learning_rate(config: TrainConfig, epoch: int) -> float:
    if config.lr_schedule == "cosine":
        return config.learning_rate * 0.5 * (1.0 + math.cos(math.pi * (epoch - 1) / config.max_iter))
    return config.learning_rate


def _run_epoch(
    net: nn.Module,
    optimizer: torch.optim.Optimizer,
    x: Tensor,
    config: TrainConfig,
    shuffle_gen: torch.Generator,
    noise_gen: torch.Generator,
    epoch: int,
    device: torch.device,
) -> dict[str, float]:
    net.train()
    order = torch.randperm(len(x), generator=shuffle_gen).to(device)
    logged: list[list[Tensor]] = []  # per batch, the detached terms; summed once per epoch
    names: list[str] = []
    for idx in batches(order, config.batch_size):
        batch = x[idx]
        with autocast(device):
            terms = _loss(net)(batch, generator=noise_gen, epoch=epoch)
        optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        optimizer.step()
        names = list(terms)
        logged.append([value.detach() for value in terms.values()])
    return _epoch_means(names, logged, len(x), config.batch_size, "train_")


def _epoch_means(
    names: list[str], logged: list[list[Tensor]], n: int, batch_size: int, prefix: str
) -> dict[str, float]:
    """Sample-weighted means of per-batch terms (every batch is full but perhaps the last)."""
    if not logged:
        return {}
    values = torch.stack([torch.stack(row).float() for row in logged])  # (n_batches, n_terms)
    weights = torch.full((len(logged), 1), float(batch_size), device=values.device)
    weights[-1] = n - batch_size * (len(logged) - 1)
    totals = (values * weights).sum(dim=0) / n
    return {f"{prefix}{name}": float(total) for name, total in zip(names, totals.tolist(), strict=True)}


@torch.no_grad()
def _evaluate(net: nn.Module, x: Tensor, batch_size: int, device: torch.device, epoch: int) -> dict[str, float]:
    net.eval()
    logged: list[list[Tensor]] = []
    names: list[str] = []
    for batch in batches(x, batch_size):
        with autocast(device):
            terms = _loss(net)(batch, epoch=epoch)
        names = list(terms)
        logged.append(list(terms.values()))
    return _epoch_means(names, logged, len(x), batch_size, "val_")


def _save_checkpoint(
    path: str | os.PathLike[str],
    run: _Run,
    state: _State,
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
        "history": json.dumps(state.history),
        "optim_groups": json.dumps(opt["param_groups"]),
        "optim_plain": json.dumps(plain),
    }
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)


def _load_checkpoint(
    path: str | os.PathLike[str],
    run: _Run,
    state: _State,
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
    run: _Run,
    state: _State,
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
