"""Class labels from a labels file, or from a data spec whose source carries labels.

Labels files, by name: ``.npy``; ``.npz`` (``file.npz:key``, else its ``y`` array); ``.csv`` with one
column and an optional header line; ``.txt`` with one label per line; an IDX labels file. Anything else
is read as a data spec (``digits``, an image folder with class subfolders, ...) and its labels are used.
A row slice ``[start:stop]`` applies as it does to data.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt

from isthmus.data.dataset import as_labels
from isthmus.data.idx import labels_beside, read_idx
from isthmus.data.readers import NpzArchive, file_format, read_npy
from isthmus.data.schema import is_number
from isthmus.data.spec import parse_spec, read_data, take_rows
from isthmus.errors import DataError

_LABEL_FILES = ".npy, .npz, .csv (one column), .txt (one label per line) or an IDX labels file"


def read_labels(spec: str | os.PathLike[str]) -> npt.NDArray[np.int64]:
    """Read class labels.

    Parameters
    ----------
    spec : str or os.PathLike
        A labels file (see the module docstring) or a data spec whose source has labels, optionally
        with a row slice, e.g. ``"labels.txt"``, ``"digits[:1500]"``, ``"t10k-labels-idx1-ubyte.gz"``.

    Returns
    -------
    ndarray of int64
        The labels, shape (n_samples,).

    Raises
    ------
    DataError
        If the file is missing, unreadable or holds values that are not whole numbers, or the data
        spec has no labels.
    """
    parsed = parse_spec(spec)
    source = parsed.source
    reader = LABEL_READERS.get(_labels_format(source)) if isinstance(source, Path) else None
    if isinstance(source, Path) and reader is not None:
        if not source.is_file():
            raise DataError(f"no such file: {source}")
        values = reader(source, parsed.option)
        if parsed.rows is not None:
            values = take_rows(values, None, parsed.rows, parsed.name)[0]
        if values.ndim >= 1 and len(values) == 0:
            raise DataError(f"{parsed.name} holds no labels")
        return as_labels(values, parsed.name)
    labels = read_data(spec).y
    if labels is None:
        raise DataError(
            f"{parsed.name} carries no labels; give a labels file ({_LABEL_FILES}) "
            "or data whose source has labels (a built-in dataset, image class subfolders, .npz with y)"
        )
    return labels


def _labels_format(path: Path) -> str | None:
    """The labels-file format of ``path``: a data format or ``"txt"``; None for folders."""
    if path.is_dir():
        return None
    return "txt" if fnmatch.fnmatchcase(path.name.lower(), "*.txt") else file_format(path)


def _from_npy(path: Path, key: str | None) -> npt.NDArray[np.generic]:
    """Labels saved with ``np.save``."""
    _no_key(path, key)
    return read_npy(path, mmap=False)


def _from_npz(path: Path, key: str | None) -> npt.NDArray[np.generic]:
    """The ``key`` array of a .npz file, else its ``y`` array."""
    name = key if key is not None else "y"
    with NpzArchive(path) as archive:
        if archive.single is not None:
            _no_key(path, key)
            return archive.single
        if name not in archive.keys:
            keys = ", ".join(map(repr, archive.keys))
            raise DataError(f"{path} has no array {name!r}; pick the labels with {path.name}:KEY, KEY one of {keys}")
        return archive.array(name)


def _from_text(path: Path, key: str | None) -> npt.NDArray[np.generic]:
    """One label per line; a first line that is not a number is a header and skipped."""
    _no_key(path, key)
    try:
        lines = [line.strip() for line in path.read_text(encoding="utf-8-sig").splitlines()]
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read labels from {path} ({exc})") from None
    lines = [line.strip('"') for line in lines if line]
    if lines and not is_number(lines[0]):
        lines = lines[1:]  # header
    if not lines:
        raise DataError(f"{path} holds no labels")
    for number, line in enumerate(lines, start=1):
        if "," in line:
            raise DataError(
                f"{path} has {line.count(',') + 1} columns on data line {number}; a labels CSV has exactly one column"
            )
        if not is_number(line):
            raise DataError(f"labels in {path} must be integers; data line {number} holds {line!r}")
    return np.array([float(line) for line in lines])


def _from_idx(path: Path, key: str | None) -> npt.NDArray[np.generic]:
    """An IDX labels file, or the labels file beside an IDX images file."""
    _no_key(path, key)
    return read_idx(labels_beside(path) or path)


LABEL_READERS: dict[str | None, Callable[[Path, str | None], npt.NDArray[np.generic]]] = {
    "csv": _from_text,
    "idx": _from_idx,
    "npy": _from_npy,
    "npz": _from_npz,
    "txt": _from_text,
}


def _no_key(path: Path, key: str | None) -> None:
    """Raise if a ``:key`` suffix was given for a file that has no keys."""
    if key is not None:
        raise DataError(f"{path}:{key} - a ':key' suffix picks an array in a .npz file, not in {path.name}")
