"""Atomic file writes: a temporary file in the same folder, then a rename.

A write that fails - a full disk, an unwritable folder, an error while the data are produced - leaves
no partial file behind and any existing file at the target untouched.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from isthmus.errors import OutputError


def check_output(path: str | os.PathLike[str], *, overwrite: bool) -> None:
    """Raise OutputError if ``path`` exists and ``overwrite`` is False, or if it cannot be created there.

    Cheap checks only, made before any work: an existing file, and a folder on the way that is a file
    or cannot be written to. Whether ``path`` itself may be a folder is left to the writer.
    """
    target = Path(path)
    if target.exists() and not overwrite:
        raise OutputError(f"{target} already exists; pass --overwrite (overwrite=True) to replace it")
    folder = target.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent  # the nearest existing folder on the way, which write() would create below
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"cannot write {target}: {folder} is a file, not a folder; choose another output path")
    if folder.is_dir() and not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {target}: the folder {folder} is not writable; choose another output path")


def check_suffix(path: str | os.PathLike[str], suffix: str, what: str) -> None:
    """Raise OutputError unless ``path`` ends in ``suffix``: a file whose name says another format misleads."""
    target = Path(path)
    if target.suffix.lower() != suffix:
        raise OutputError(
            f"{what} {target} must end in {suffix} (it is written in that format); "
            f"name it {target.with_suffix(suffix).name} instead"
        )


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], *, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``.

    A failure inside the block removes the temporary file and leaves any existing ``path`` as it was;
    an OSError there (a full disk, say) becomes an OutputError naming ``path``.
    """
    target = Path(path)
    check_output(target, overwrite=overwrite)
    if target.is_dir():
        raise OutputError(f"cannot write {target}: it is a folder; give a file name")
    folder = target.parent if str(target.parent) else Path(".")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:  # flush the data before the rename makes it visible
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write {target}: {exc.strerror or exc}; nothing was written") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], *, overwrite: bool = True) -> Iterator[BinaryIO]:
    """Open a binary file for writing that appears at ``path`` only once fully written."""
    with atomic_path(path, overwrite=overwrite) as tmp, open(tmp, "wb") as fh:
        yield fh


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes, *, overwrite: bool = True) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open(path, overwrite=overwrite) as fh:
        fh.write(data)
