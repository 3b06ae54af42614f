"""Data specs - what users type to name data - and :func:`read_data`, which turns one into a Dataset.

A spec is a path or a built-in name, with optional suffixes::

    train.csv                 a file (format from its name) or a folder of images
    data.npz:images           an array of a .npz file
    digits, mnist:test        a built-in dataset, optionally with a split
    digits[:1500]             any of the above, then a row slice [start:stop]

A path that exists always wins over a reading with suffixes or a built-in name. ``os.PathLike``
objects are always plain paths; only strings are parsed.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from isthmus.data.builtins import BUILTINS
from isthmus.data.dataset import Dataset, as_dataset
from isthmus.data.readers import ReadOptions, file_format, read_raw, read_table
from isthmus.errors import ConfigError, DataError

_ROW_SLICE = re.compile(r"(?P<body>.+)\[(?P<inner>[^\[\]]*)\]")
_START_STOP = re.compile(r"\s*(?P<start>-?\d+)?\s*:\s*(?P<stop>-?\d+)?\s*")


class Spec(NamedTuple):
    """A parsed data spec."""

    source: Path | str  # a file or folder (Path), or a key of BUILTINS (str)
    option: str | None  # after the colon: a .npz array key, or a built-in's split
    rows: slice | None  # the row slice, start and stop only
    name: str  # short human name: file name or built-in name, with the suffixes as given


def parse_spec(spec: str | os.PathLike[str]) -> Spec:
    """Parse a data spec (see the module docstring).

    Raises
    ------
    DataError
        If the row slice is malformed, or the spec is neither an existing path nor a built-in name.
    """
    if not isinstance(spec, str):
        path = Path(spec)
        return Spec(path, None, None, _short(path))
    if Path(spec).exists():
        return Spec(Path(spec), None, None, _short(Path(spec)))
    body, rows, rows_text = _split_rows(spec)
    if Path(body).exists():
        return Spec(Path(body), None, rows, _short(Path(body)) + rows_text)
    base, colon, key = body.rpartition(":")
    if colon and base and Path(base).exists():
        return Spec(Path(base), key, rows, f"{_short(Path(base))}:{key}{rows_text}")
    name, colon, option = body.partition(":")
    if name in BUILTINS:
        return Spec(name, option if colon else None, rows, body + rows_text)
    raise DataError(f"no such file: {body} (the built-in datasets are {', '.join(sorted(BUILTINS))})")


def read_data(spec: str | os.PathLike[str], *, image_size: tuple[int, int] | None = None) -> Dataset:
    """Read a data spec into a :class:`Dataset`.

    Parameters
    ----------
    spec : str or os.PathLike
        A path (.npy, .npz, .csv, .parquet, IDX, or a folder of PNG/JPEG images) or a built-in name
        (``digits``, ``mnist``, ``fashion-mnist``), optionally with ``:key`` or ``:split`` and a row
        slice ``[start:stop]``, e.g. ``"digits[:1500]"``, ``"mnist:test"``, ``"data.npz:X[1000:]"``.
    image_size : (int, int) or None
        ``(width, height)`` to resize an image file, or the images of an image folder, to; needed when
        a folder's sizes differ. Other sources are not resized: an image size for them is refused.

    Returns
    -------
    Dataset
        ``X`` as float32 with raw values (not scaled), shape (n_samples, n_features) or
        (n_samples, channels, height, width); ``y`` as int64 labels when the source has them.

    Raises
    ------
    DataError
        If the spec names nothing, the format is unknown, the file is empty, corrupt or truncated,
        a column is not numeric, values are NaN or infinite, or the row slice leaves no rows.
    DownloadError
        If a built-in dataset must be downloaded and cannot be.
    """
    parsed = parse_spec(spec)
    if isinstance(parsed.source, Path):
        X, y = read_raw(parsed.source, ReadOptions(key=parsed.option, image_size=image_size))
    else:
        if image_size is not None:
            raise ConfigError(
                f"an image size resizes image files and folders, but {parsed.name} is a built-in dataset, which "
                "is not resized; drop the image size (--image-size)"
            )
        builtin = BUILTINS[parsed.source](parsed.option)
        X, y = builtin.X, builtin.y
    if parsed.rows is not None:
        X, y = take_rows(X, y, parsed.rows, parsed.name)
    return as_dataset(X, y, parsed.name)


def read_table_data(spec: str | os.PathLike[str], *, image_size: tuple[int, int] | None = None) -> Dataset:
    """Like :func:`read_data`, but a CSV or Parquet file keeps its columns: ``X`` is then an Arrow table
    with the column names and types (text and categories included, missing cells as nulls), for a model
    that reads tables (:mod:`isthmus.data.schema`). Other sources give :func:`read_data`'s arrays."""
    parsed = parse_spec(spec)
    if (
        not isinstance(parsed.source, Path)
        or parsed.option is not None
        or file_format(parsed.source)
        not in (
            "csv",
            "parquet",
        )
    ):
        return read_data(spec, image_size=image_size)
    table = read_table(parsed.source)
    if parsed.rows is not None:
        rows = range(table.num_rows)[parsed.rows]
        if len(rows) == 0:
            raise DataError(
                f"{parsed.name} selects no rows: the source has {table.num_rows} rows; choose start and stop "
                f"within 0..{table.num_rows}"
            )
        table = table.slice(rows.start, len(rows))
    return Dataset(table, None, parsed.name)  # type: ignore[arg-type]


def take_rows(
    X: npt.NDArray[np.generic], y: npt.NDArray[np.generic] | None, rows: slice, name: str
) -> tuple[npt.NDArray[np.generic], npt.NDArray[np.generic] | None]:
    """Apply a row slice to samples and labels; raise if it leaves none of a non-empty source."""
    if X.ndim == 0 or len(X) == 0:
        return X, y  # as_dataset reports the shape or the emptiness of the source itself
    if y is not None and len(y) != len(X):
        raise DataError(f"{name} has {len(X)} samples but {len(y)} labels; give one label per sample")
    taken = X[rows]
    if len(taken) == 0:
        raise DataError(
            f"{name} selects no rows: the source has {len(X)} rows; choose start and stop within 0..{len(X)}"
        )
    return taken, None if y is None else y[rows]


def _split_rows(spec: str) -> tuple[str, slice | None, str]:
    """Split ``"body[start:stop]"`` into the body, the slice and the slice text."""
    match = _ROW_SLICE.fullmatch(spec)
    if match is None:
        return spec, None, ""
    numbers = _START_STOP.fullmatch(match["inner"])
    if numbers is None:
        raise DataError(
            f"row slice [{match['inner']}] in {spec!r} is not allowed; "
            "use [start:stop] with integers, e.g. [:1000] or [1000:]"
        )
    start, stop = (None if v is None else int(v) for v in numbers.group("start", "stop"))
    return match["body"], slice(start, stop), f"[{match['inner']}]"


def _short(path: Path) -> str:
    """A short name for a path: its last part (the whole path when it has none, like ``.``)."""
    return path.name or str(path)
