"""Data-parallel training on PyTorch's own engine: ``torch.distributed`` and DistributedDataParallel.

``torchrun --nproc_per_node=N -m isthmus train ...`` starts N processes with ``RANK``/``WORLD_SIZE`` set;
the command line calls :func:`init_from_env`, and ``Autoencoder.fit`` then trains under DDP in every
process of the group (as it also does when the caller initialized the process group itself). Rank 0
alone writes checkpoints, logs and model files.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from isthmus.batches import Shard
from isthmus.errors import ConfigError


def shard_of_process() -> Shard:
    """This process's rank and the world size; ``Shard(0, 1)`` outside a process group."""
    if dist.is_available() and dist.is_initialized():
        return Shard(dist.get_rank(), dist.get_world_size())
    return Shard()


def is_writer() -> bool:
    """Whether this process writes files: the only one, or rank 0 of a group."""
    return shard_of_process().rank == 0


def init_from_env(device: str = "auto") -> bool:
    """Join the process group that ``torchrun`` describes in the environment; True when it did.

    NCCL when this process trains on a GPU, gloo on CPUs. Outside ``torchrun`` (no ``WORLD_SIZE``, or
    a world of one) nothing happens.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or not dist.is_available() or dist.is_initialized():
        return False
    use_cuda = torch.cuda.is_available() and device in ("auto", "cuda")
    if use_cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend="nccl" if use_cuda else "gloo", timeout=timedelta(minutes=30))
    return True


def close() -> None:
    """Leave the process group, if this process is in one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def all_sum(values: Tensor) -> Tensor:
    """``values`` summed over the ranks (the same tensor on one process)."""
    if shard_of_process().world > 1:
        values = values.clone()
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def broadcast_int(value: int) -> int:
    """Rank 0's ``value`` on every rank (a seed drawn on each, say)."""
    if shard_of_process().world == 1:
        return value
    box = torch.tensor([value], dtype=torch.int64)
    if dist.get_backend() == "nccl":
        box = box.cuda()
    dist.broadcast(box, src=0)
    return int(box.item())


def barrier() -> None:
    """Wait for every rank (nothing on one process)."""
    if shard_of_process().world > 1:
        dist.barrier()


class _LossModule(nn.Module):
    """The network's ``loss`` as ``forward``: DDP synchronizes gradients of what its forward computes."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: Tensor, **kwargs: Any) -> dict[str, Tensor]:
        return self.net.loss(x, **kwargs)  # type: ignore[no-any-return, operator]


def parallel_loss(net: nn.Module, device: torch.device) -> nn.Module:
    """A module whose call is ``net.loss``: wrapped in DDP inside a process group, plain otherwise."""
    module = _LossModule(net)
    if shard_of_process().world == 1:
        return module
    if device.type == "cuda":
        return nn.parallel.DistributedDataParallel(module, device_ids=[device.index or 0])
    if device.type != "cpu":
        raise ConfigError(f"data-parallel training runs on CPUs (gloo) or CUDA GPUs (NCCL), not {device.type}")
    return nn.parallel.DistributedDataParallel(module)
