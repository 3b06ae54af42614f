"""Where the training loop's batches come from: a tensor in memory, or chunks of rows streamed from disk.

Both kinds of source give the same guarantees: every row once per epoch, an order drawn from the run's
seeded generator only (so a resumed run continues the same sequence), full batches but perhaps the last,
and, under data parallelism, each global batch split into one contiguous part per rank, so that N
processes see exactly the batches of one process with the same batch size.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple, Protocol

import numpy as np
import torch
from torch import Tensor

from isthmus.data.stream import Rows

#: bytes of rows a streamed epoch shuffles at once; two windows are in memory at a time (the one training
#: and the next one loading)
WINDOW_BYTES = 32 << 20


class Shard(NamedTuple):
    """This process's place among the data-parallel ranks."""

    rank: int = 0
    world: int = 1


def shard(batch: Tensor, part: Shard) -> Tensor | None:
    """This rank's contiguous part of a global batch; None (on every rank alike) when it is too small to split."""
    if part.world == 1:
        return batch
    if len(batch) < part.world:
        return None
    return batch.tensor_split(part.world)[part.rank]


class BatchSource(Protocol):
    """What the loop asks of training or validation data."""

    def __len__(self) -> int: ...

    def to(self, device: torch.device) -> BatchSource:
        """The same source, yielding batches on ``device``."""
        ...

    def shuffled(self, generator: torch.Generator, batch_size: int, part: Shard) -> Iterator[Tensor]:
        """One epoch of this rank's parts of shuffled global batches."""
        ...

    def ordered(self, batch_size: int, part: Shard) -> Iterator[Tensor]:
        """This rank's parts of consecutive global batches, in row order."""
        ...


class TensorSource:
    """Samples already in one tensor, ``(n_samples, *input_shape)``."""

    def __init__(self, x: Tensor) -> None:
        self.x = x

    def __len__(self) -> int:
        return len(self.x)

    def to(self, device: torch.device) -> TensorSource:
        return TensorSource(self.x.to(device))

    def shuffled(self, generator: torch.Generator, batch_size: int, part: Shard) -> Iterator[Tensor]:
        order = torch.randperm(len(self.x), generator=generator).to(self.x.device)
        for start in range(0, len(order), batch_size):
            idx = shard(order[start : start + batch_size], part)
            if idx is not None:
                yield self.x[idx]

    def ordered(self, batch_size: int, part: Shard) -> Iterator[Tensor]:
        for start in range(0, len(self.x), batch_size):
            batch = shard(self.x[start : start + batch_size], part)
            if batch is not None:
                yield batch


class ChunkSource:
    """Chunks of a :class:`~isthmus.data.stream.Rows` source, transformed into the network's units on load.

    An epoch visits the chunks in a seeded random order, a window of about ``window_rows`` rows at a
    time; rows are shuffled across the window and batches run on across window boundaries. The next
    window is read by a background thread while the current one trains, so reading overlaps compute.
    ``keep(chunk)``, when given, picks the chunk's rows that belong to this source (a boolean mask):
    that is how training and validation rows share chunks.
    """

    def __init__(
        self,
        rows: Rows,
        chunk_ids: list[int],
        transform: Callable[[np.ndarray], np.ndarray],
        *,
        keep: Callable[[int], np.ndarray] | None = None,
        window_rows: int | None = None,
        device: torch.device | None = None,
    ) -> None:
        self.rows = rows
        self.chunk_ids = chunk_ids
        self.transform = transform
        self.keep = keep
        self.window_rows = window_rows or max(1, WINDOW_BYTES // rows.row_bytes)
        self.device = device or torch.device("cpu")
        self._sizes = {i: self._count(i) for i in chunk_ids}

    def __len__(self) -> int:
        return sum(self._sizes.values())

    def to(self, device: torch.device) -> ChunkSource:
        return ChunkSource(
            self.rows, self.chunk_ids, self.transform, keep=self.keep, window_rows=self.window_rows, device=device
        )

    def shuffled(self, generator: torch.Generator, batch_size: int, part: Shard) -> Iterator[Tensor]:
        order = torch.randperm(len(self.chunk_ids), generator=generator).tolist()
        windows = self._windows([self.chunk_ids[i] for i in order])
        # the row order within each window comes from the generator too, drawn here in the main thread;
        # batches gather their rows through it, as TensorSource does (no shuffled copy of the window)
        blocks = (
            (block, torch.randperm(len(block), generator=generator).to(block.device))
            for block in self._load_all(windows)
        )
        yield from _rebatch(blocks, batch_size, part)

    def ordered(self, batch_size: int, part: Shard) -> Iterator[Tensor]:
        blocks = ((block, None) for block in self._load_all(self._windows(self.chunk_ids)))
        yield from _rebatch(blocks, batch_size, part)

    def _count(self, chunk: int) -> int:
        start, stop = self.rows.chunks[chunk]
        return stop - start if self.keep is None else int(self.keep(chunk).sum())

    def _size(self, chunk: int) -> int:
        return self._sizes[chunk]

    def _windows(self, chunk_order: list[int]) -> list[list[int]]:
        """Consecutive groups of chunks holding about ``window_rows`` rows each (at least one chunk)."""
        windows: list[list[int]] = []
        held = 0
        for chunk in chunk_order:
            if not windows or held + self._size(chunk) > self.window_rows:
                windows.append([])
                held = 0
            windows[-1].append(chunk)
            held += self._size(chunk)
        return windows

    def _load(self, window: list[int]) -> Tensor:
        """The window's rows, read chunk by chunk into one array and transformed there."""
        out = np.empty((sum(self._size(i) for i in window), *self.rows.sample_shape), dtype=np.float32)
        filled = 0
        for chunk in window:
            part = self.rows.read_chunk(chunk)
            if self.keep is not None:
                part = part[self.keep(chunk)]
            out[filled : filled + len(part)] = part
            filled += len(part)
        return torch.from_numpy(np.ascontiguousarray(self.transform(out), dtype=np.float32)).to(self.device)

    def _load_all(self, windows: list[list[int]]) -> Iterator[Tensor]:
        """Each window's rows, the next one read ahead on a background thread."""
        if not windows:
            return
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="isthmus-read") as pool:
            ahead = pool.submit(self._load, windows[0])
            for following in [*windows[1:], None]:
                block = ahead.result()
                if following is not None:
                    ahead = pool.submit(self._load, following)
                yield block


def _rebatch(blocks: Iterator[tuple[Tensor, Tensor | None]], batch_size: int, part: Shard) -> Iterator[Tensor]:
    """Full batches across a stream of blocks, each read in the given row order (None: as it lies).

    The rows left at the end of a block start the next block's first batch.
    """
    pending: Tensor | None = None  # fewer than batch_size rows carried over

    def rows(block: Tensor, order: Tensor | None, a: int, b: int) -> Tensor:
        return block[a:b] if order is None else block[order[a:b]]

    for block, order in blocks:
        start = 0
        if pending is not None:
            start = min(batch_size - len(pending), len(block))
            pending = torch.cat([pending, rows(block, order, 0, start)])  # a small copy: at most one batch
            if len(pending) < batch_size:  # the block was smaller than what was missing
                continue
            batch = shard(pending, part)
            pending = None
            if batch is not None:
                yield batch
        full = start + (len(block) - start) // batch_size * batch_size
        for first in range(start, full, batch_size):
            batch = shard(rows(block, order, first, first + batch_size), part)
            if batch is not None:
                yield batch
        if full < len(block):
            pending = rows(block, order, full, len(block)).clone()  # not a view: the block itself can go
    if pending is not None:
        batch = shard(pending, part)
        if batch is not None:
            yield batch
