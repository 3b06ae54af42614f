"""The training loop. It knows no variant by name: it calls ``net.loss(batch)`` and steps.

It owns the optimizer, the learning-rate schedule, mixed precision, early stopping, divergence
handling, the JSON-lines log, when to checkpoint and resume (the file itself is
:mod:`isthmus.checkpoint`), the progress bar and device placement. Batches come from
:mod:`isthmus.batches` (in memory or streamed); inside a process group the loss runs under
DistributedDataParallel (:mod:`isthmus.distributed`) and rank 0 writes the files.
"""

from __future__ import annotations

import copy
import json
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple, cast

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from isthmus import distributed
from isthmus.batches import BatchSource, Shard, TensorSource
from isthmus.checkpoint import Run, State, load_checkpoint, save_checkpoint
from isthmus.errors import ModelFileError, TrainingError
from isthmus.model import autocast, autocast_dtype
from isthmus.settings import TrainConfig

#: restarts from the last good epoch, each with half the learning rate, before a diverging run gives up
MAX_RETRIES = 3

#: Called after every epoch with the epoch number (1-based) and its record of named metrics.
Callback = Callable[[int, dict[str, float]], None]


class TrainResult(NamedTuple):
    """What a finished run learned about itself."""

    history: list[dict[str, float]]  # one record per epoch: "epoch", "lr", "train_<term>", "val_<term>"
    n_iter: int  # epochs run
    best_loss: float  # best monitored loss (validation loss with early stopping, else training loss)
    converged: bool  # stopped by early stopping or target_loss rather than by running out of epochs
    stop_reason: str = ""  # why the run stopped, in words (stop_reason() below)
    spent_steps: bool = False  # what ran out was the max_steps budget (epoch_budget), not max_iter


def resolve_device(name: str) -> torch.device:
    """``"auto"`` picks CUDA, then MPS, then the CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    if name == "cuda" and torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())  # this rank's GPU under torchrun
    return torch.device(name)


def _loss(net: nn.Module) -> Callable[..., dict[str, Tensor]]:
    """The network's ``loss`` method: the one thing the loop asks of a model."""
    return cast(Callable[..., dict[str, Tensor]], net.loss)


class _Step(NamedTuple):
    """What one optimizer step needs besides the batch."""

    loss: nn.Module  # calls net.loss; DistributedDataParallel inside a process group
    optimizer: torch.optim.Optimizer
    grad_scaler: torch.amp.GradScaler | None  # float16 only: scales the loss against gradient underflow
    device: torch.device
    precision: str
    part: Shard


def train(
    net: nn.Module,
    x_train: Tensor | BatchSource,
    x_val: Tensor | BatchSource | None,
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
    x_train, x_val : Tensor or BatchSource
        Scaled training and (optional) validation samples, ``(n_samples, *input_shape)``, in memory or
        streamed (:class:`isthmus.batches.ChunkSource`).
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
    part = distributed.shard_of_process()
    writer = part.rank == 0
    net.to(device)
    train_data = _source(x_train).to(device)
    val_data = None if x_val is None else _source(x_val).to(device)
    optimizer = make_optimizer(net, config, device)
    shuffle_gen = torch.Generator().manual_seed(seed)
    noise_gen = torch.Generator(device=device).manual_seed(seed + 1 + part.rank)  # each rank its own noise
    use_scaler = autocast_dtype(device, config.precision) == torch.float16
    step = _Step(
        distributed.parallel_loss(net, device),
        optimizer,
        torch.amp.GradScaler(device.type) if use_scaler else None,
        device,
        config.precision,
        part,
    )
    state = State()
    run = Run(net, optimizer, shuffle_gen, noise_gen)
    if resume:
        if checkpoint is None or not Path(checkpoint).exists():
            raise ModelFileError(f"cannot resume: checkpoint {checkpoint} does not exist; train without --resume")
        load_checkpoint(checkpoint, run, state, len(train_data))
        if step.grad_scaler is not None and state.grad_scaler is not None:
            step.grad_scaler.load_state_dict(state.grad_scaler)  # a fresh scale would skip steps anew
    monitor = "val_loss" if val_data is not None else "train_loss"
    epochs = epoch_budget(config, len(train_data))
    converged = False
    retry = config.on_divergence == "retry"
    good = _snapshot(run, state) if retry else None  # the last good epoch, to restart from
    retries = 0
    bar = tqdm(total=epochs, initial=state.epoch, disable=config.verbose == 0 or not writer, unit="epoch", leave=False)
    try:
        while state.epoch < epochs and not converged:
            epoch = state.epoch + 1
            lr = _learning_rate(config, epoch, epochs) * state.lr_scale
            for group in optimizer.param_groups:
                group["lr"] = lr
            record: dict[str, float] = {"epoch": float(epoch), "lr": lr}
            record.update(_run_epoch(step, train_data, config.batch_size, shuffle_gen, noise_gen, epoch))
            if val_data is not None:
                record.update(_evaluate(net, val_data, config.batch_size, step, epoch))
            current = record[monitor]
            if not math.isfinite(current):
                if good is not None and retries < MAX_RETRIES:
                    retries += 1
                    _restore_snapshot(good, run, state)
                    state.lr_scale /= 2.0
                    if writer and config.verbose:
                        bar.write(
                            f"warning: {monitor} is {current} at epoch {epoch}; restarting from epoch "
                            f"{state.epoch} with learning rate x{state.lr_scale:g} (retry {retries} of {MAX_RETRIES})"
                        )
                    continue
                tried = f" after {retries} restarts with lower learning rates" if retries else ""
                kept = f"; checkpoint {checkpoint} holds epoch {state.epoch}, the last good one" if checkpoint else ""
                hint = "" if retry else ", or set on_divergence='retry'"
                raise TrainingError(
                    f"training diverged at epoch {epoch}{tried}: {monitor} is {current}; lower learning_rate "
                    f"(now {lr:g}) or scale the data (scaling='standard' or 'minmax'){hint}{kept}"
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
            if log is not None and writer:
                with open(log, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps(record) + "\n")
            if checkpoint is not None and writer:
                if step.grad_scaler is not None:
                    state.grad_scaler = step.grad_scaler.state_dict()
                save_checkpoint(checkpoint, run, state, len(train_data), seed)
            if good is not None:
                good = _snapshot(run, state)
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
    reason = stop_reason(config, state, monitor, settle_epochs, epochs)
    spent_steps = not converged and epochs < config.max_iter
    return TrainResult(state.history, state.epoch, state.best_loss, converged, reason, spent_steps)


def epoch_budget(config: TrainConfig, n_samples: int) -> int:
    """Epochs to run on ``n_samples`` training samples: ``max_iter``, or fewer where ``max_steps`` gradient
    steps (one per batch of ``batch_size``) come first; whole epochs, the last one counted in full."""
    if config.max_steps is None:
        return config.max_iter
    per_epoch = max(1, math.ceil(n_samples / config.batch_size))
    return max(1, min(config.max_iter, math.ceil(config.max_steps / per_epoch)))


def stop_reason(
    config: TrainConfig, state: State, monitor: str, settle_epochs: int = 0, epochs: int | None = None
) -> str:
    """Why a run that ended after ``state.epoch`` epochs stopped, in one sentence that names the numbers.

    ``epochs`` is the run's budget (:func:`epoch_budget`), ``max_iter`` when not given.

    A diverging run does not get here: it raises TrainingError, whose message is its reason.
    """
    if not state.history:
        return "no epoch ran"
    epoch = state.epoch
    current = state.history[-1].get(monitor, math.nan)
    if config.target_loss is not None and current <= config.target_loss:
        return f"{monitor}={current:.6g} reached target_loss={config.target_loss:g} at epoch {epoch}"
    if epoch > settle_epochs and state.bad_epochs >= config.n_iter_no_change:
        best = epoch - state.bad_epochs  # the last epoch that improved on the best by more than tol
        kept = "; the weights of that epoch were kept" if config.early_stopping and best >= 1 else ""
        return (
            f"early stopping at epoch {epoch}: {monitor} has not improved by tol={config.tol:g} for "
            f"n_iter_no_change={config.n_iter_no_change} epochs since its best epoch {best} "
            f"({monitor}={state.best_loss:.6g}){kept}"
        )
    budget = f"max_iter={config.max_iter} epochs"
    if epochs is not None and epochs < config.max_iter:  # the step budget came first
        budget = f"max_steps={config.max_steps} gradient steps ({epochs} epochs)"
    return (
        f"{budget} ran out while {monitor} was still improving (by more than "
        f"tol={config.tol:g} last at epoch {epoch - state.bad_epochs}, {monitor}={state.best_loss:.6g})"
    )


def make_optimizer(net: nn.Module, config: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    """Adam; the fused kernel where the device has one (several times faster than the per-tensor loop)."""
    fused = device.type in ("cpu", "cuda")
    return torch.optim.Adam(
        net.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay, fused=fused or None
    )


def _learning_rate(config: TrainConfig, epoch: int, epochs: int) -> float:
    if config.lr_schedule == "cosine":  # annealed over the run's budget of epochs
        return config.learning_rate * 0.5 * (1.0 + math.cos(math.pi * (epoch - 1) / epochs))
    return config.learning_rate


def _source(x: Tensor | BatchSource) -> BatchSource:
    return TensorSource(x) if isinstance(x, Tensor) else x


def _run_epoch(
    step: _Step,
    data: BatchSource,
    batch_size: int,
    shuffle_gen: torch.Generator,
    noise_gen: torch.Generator,
    epoch: int,
) -> dict[str, float]:
    step.loss.train()
    logged: list[list[Tensor]] = []  # per batch, the detached terms; summed once per epoch
    sizes: list[int] = []
    names: list[str] = []
    for batch in data.shuffled(shuffle_gen, batch_size, step.part):
        with autocast(step.device, step.precision):
            terms = step.loss(batch, generator=noise_gen, epoch=epoch)
        step.optimizer.zero_grad(set_to_none=True)
        if step.grad_scaler is None:  # the hot path: no scaler calls at full precision or in bf16
            terms["loss"].backward()
            step.optimizer.step()
        else:
            step.grad_scaler.scale(terms["loss"]).backward()
            step.grad_scaler.step(step.optimizer)
            step.grad_scaler.update()
        names = list(terms)
        logged.append([value.detach() for value in terms.values()])
        sizes.append(len(batch))
    return _epoch_means(names, logged, sizes, step.device, "train_")


def _epoch_means(
    names: list[str], logged: list[list[Tensor]], sizes: list[int], device: torch.device, prefix: str
) -> dict[str, float]:
    """Sample-weighted means of per-batch terms, over every rank's batches."""
    if not logged:
        values = torch.zeros((0, len(names)), device=device)
    else:
        values = torch.stack([torch.stack(row).float() for row in logged])  # (n_batches, n_terms)
    weights = torch.tensor(sizes, dtype=torch.float32, device=values.device)[:, None]
    totals = torch.cat([(values * weights).sum(dim=0), weights.sum().reshape(1)])  # (n_terms + 1,)
    totals = distributed.all_sum(totals)
    means = (totals[:-1] / totals[-1]).tolist()
    return {f"{prefix}{name}": float(mean) for name, mean in zip(names, means, strict=True)}


@torch.no_grad()
def _evaluate(net: nn.Module, data: BatchSource, batch_size: int, step: _Step, epoch: int) -> dict[str, float]:
    net.eval()
    logged: list[list[Tensor]] = []
    sizes: list[int] = []
    names: list[str] = []
    for batch in data.ordered(batch_size, step.part):
        with autocast(step.device, step.precision):
            terms = _loss(net)(batch, epoch=epoch)
        names = list(terms)
        logged.append(list(terms.values()))
        sizes.append(len(batch))
    return _epoch_means(names, logged, sizes, step.device, "val_")


def _snapshot(run: Run, state: State) -> dict[str, Any]:
    """A deep copy of everything a restart needs: weights, optimizer, generators, loop state."""
    net, optimizer, shuffle_gen, noise_gen = run
    return copy.deepcopy(
        {
            "net": net.state_dict(),
            "optimizer": optimizer.state_dict(),
            "shuffle": shuffle_gen.get_state(),
            "noise": noise_gen.get_state(),
            "state": vars(state),
        }
    )


def _restore_snapshot(snapshot: dict[str, Any], run: Run, state: State) -> None:
    net, optimizer, shuffle_gen, noise_gen = run
    snapshot = copy.deepcopy(snapshot)  # it may be restored again
    net.load_state_dict(snapshot["net"])
    optimizer.load_state_dict(snapshot["optimizer"])
    shuffle_gen.set_state(snapshot["shuffle"])
    noise_gen.set_state(snapshot["noise"])
    vars(state).update(snapshot["state"])
