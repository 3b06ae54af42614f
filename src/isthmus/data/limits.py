"""Refuse up front what would exhaust memory: readers state what they are about to allocate, first.

A file's header (a .npy shape, an IDX shape, a .npz member's size, Parquet metadata, an image's
width and height) can claim any size; a reader that believed it would allocate terabytes, or be killed
by the kernel halfway through. Every reader therefore checks the bytes it is about to allocate against
:func:`memory_limit` before allocating them, and files whose headers promise more bytes than they hold
are refused as truncated before anything is read.
"""

from __future__ import annotations

import contextlib
import os
import resource
from pathlib import Path

from isthmus.errors import DataError

_CGROUP_LIMIT = Path("/sys/fs/cgroup/memory.max")


def memory_limit() -> int:
    """Bytes this process may allocate at most: physical memory, or a lower cgroup or address-space limit."""
    limits = []
    with contextlib.suppress(ValueError, OSError, AttributeError):  # not every system names these
        limits.append(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY and soft > 0:
        limits.append(soft)
    try:
        text = _CGROUP_LIMIT.read_text().strip()
    except OSError:
        text = "max"
    if text.isdigit():
        limits.append(int(text))
    return min(limits, default=2**63)


def check_allocation(nbytes: int, what: str, advice: str) -> None:
    """Raise DataError if allocating ``nbytes`` for ``what`` would exceed :func:`memory_limit`.

    Parameters
    ----------
    nbytes : int
        The bytes about to be allocated.
    what : str
        What they hold, for the message, e.g. ``"train.npz: array 'x' of shape (10**12, 3) float32"``.
    advice : str
        What to do instead, ending the message.
    """
    limit = memory_limit()
    if nbytes > limit:
        raise DataError(
            f"{what} needs {human_bytes(nbytes)} of memory, more than this machine has ({human_bytes(limit)}); {advice}"
        )


def human_bytes(n: int) -> str:
    """A byte count as a short human string: ``12.0 TB``, ``512 bytes``."""
    units = ("bytes", "kB", "MB", "GB", "TB", "PB", "EB")
    value, i = float(n), 0
    while value >= 1000 and i < len(units) - 1:
        value, i = value / 1000, i + 1
    return f"{n} bytes" if i == 0 else f"{value:.1f} {units[i]}"
