"""Readers for each file format, chosen from the file name through a table.

Each reader turns one path into raw arrays ``(X, y)``: ``X`` in the file's own dtype and shape, ``y``
the labels the file carries or None. Validation and the float32 conversion happen afterwards, once for
all formats, in :func:`isthmus.data.dataset.as_dataset`.
"""

from __future__ import annotations

import fnmatch
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from isthmus.data.idx import labels_beside, read_idx
from isthmus.data.images import IMAGE_SUFFIXES, read_image_folder
from isthmus.errors import DataError

Raw = tuple[npt.NDArray[np.generic], npt.NDArray[np.generic] | None]


class ReadOptions(NamedTuple):
    """What a spec can say beyond the path: an array key (``file.npz:key``) and an image size."""

    key: str | None = None
    image_size: tuple[int, int] | None = None


# Lower-cased file name pattern -> format name. Checked in order; the first match wins.
FILE_FORMATS: tuple[tuple[str, str], ...] = (
    ("*.npy", "npy"),
    ("*.npz", "npz"),
    ("*.csv", "csv"),
    ("*.parquet", "parquet"),
    ("*[-.]idx?-ubyte", "idx"),
    ("*[-.]idx?-ubyte.gz", "idx"),
    ("*.idx", "idx"),
    ("*.idx.gz", "idx"),
)
SUPPORTED = (
    ".npy, .npz (file.npz:key picks an array), .csv (with a header), .parquet, "
    "IDX (*-idx3-ubyte, *-idx1-ubyte, *.idx, each optionally .gz), "
    f"or a folder of {'/'.join(s[1:].upper() for s in IMAGE_SUFFIXES)} images"
)


def file_format(path: Path) -> str | None:
    """The format name of a file from its name, or None when no pattern matches."""
    name = path.name.lower()
    return next((fmt for pattern, fmt in FILE_FORMATS if fnmatch.fnmatchcase(name, pattern)), None)


def read_raw(path: Path, options: ReadOptions) -> Raw:
    """Read ``path`` (a file or an image folder) with the reader its name selects.

    Raises
    ------
    DataError
        If the path does not exist, its format is unknown, a ``:key`` is given for a format without
        keys, or the reader fails.
    """
    if path.is_dir():
        if options.key is not None:
            raise DataError(f"{path}:{options.key} - a ':key' suffix is only for .npz files, not folders")
        return read_image_folder(path, image_size=options.image_size)
    if not path.exists():
        raise DataError(f"no such file: {path}")
    fmt = file_format(path)
    if fmt is None:
        raise DataError(f"{path}: unknown file format {path.suffix or '(no suffix)'!r}; use {SUPPORTED}")
    if options.key is not None and fmt != "npz":
        raise DataError(
            f"{path}:{options.key} - a ':key' suffix picks an array in a .npz file; {path.name} is {fmt}"
        )
    if path.stat().st_size == 0:
        raise DataError(f"{path} is empty (0 bytes)")
    return READERS[fmt](path, options)


def _read_npy(path: Path, options: ReadOptions) -> Raw:
    """A .npy file, memory-mapped so that a row slice reads only those rows."""
    try:
        X = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(f"{path} is not a readable .npy file ({numpy_failure(exc)})") from None
    if not isinstance(X, np.ndarray):
        X.close()
        raise DataError(f"{path} is a .npz archive, not a .npy array; rename it to end in .npz")
    return X, None


def _read_npz(path: Path, options: ReadOptions) -> Raw:
    """An array of a .npz file (the ``key`` or the first), with its ``y`` array as labels."""
    try:
        archive = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path} is not a readable .npz file ({numpy_failure(exc)})") from None
    if isinstance(archive, np.ndarray):  # a .npy file named .npz: it is one array
        return archive, None
    with archive:
        keys = list(archive.files)
        if not keys:
            raise DataError(f"{path} holds no arrays")
        key = options.key if options.key is not None else keys[0]
        if key not in keys:
            raise DataError(f"{path} has no array {key!r}; it holds {', '.join(map(repr, keys))}")
        X = _npz_member(archive, key, path)
        y = _npz_member(archive, "y", path) if "y" in keys and key != "y" else None
    return X, y


def _npz_member(archive: np.lib.npyio.NpzFile, key: str, path: Path) -> npt.NDArray[np.generic]:
    """One array of an open .npz archive, with a DataError when it cannot be decoded."""
    try:
        return archive[key]
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: array {key!r} is not readable ({numpy_failure(exc)})") from None


def _read_csv(path: Path, options: ReadOptions) -> Raw:
    """A CSV file with a header line; every column is a feature."""
    try:
        table = pa_csv.read_csv(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"{path} is not a readable CSV file ({_first_line(exc)})") from None
    _check_header(table.column_names, path)
    return table_to_array(table, path), None


def _read_parquet(path: Path, options: ReadOptions) -> Raw:
    """A Parquet file; every column is a feature."""
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{path} is not a readable Parquet file ({_first_line(exc)})") from None
    return table_to_array(table, path), None


def _read_idx(path: Path, options: ReadOptions) -> Raw:
    """An IDX file, with the labels file beside it when it is an images file."""
    labels = labels_beside(path)
    return read_idx(path), None if labels is None else read_idx(labels)


READERS: dict[str, Callable[[Path, ReadOptions], Raw]] = {
    "csv": _read_csv,
    "idx": _read_idx,
    "npy": _read_npy,
    "npz": _read_npz,
    "parquet": _read_parquet,
}


def table_to_array(table: pa.Table, path: Path) -> npt.NDArray[np.float64]:
    """The columns of an Arrow table as a (n_rows, n_columns) float64 array; nulls become NaN.

    Raises
    ------
    DataError
        If the table has no rows, no columns, or a column that is not numeric.
    """
    if table.num_columns == 0:
        raise DataError(f"{path} has no columns")
    if table.num_rows == 0:
        raise DataError(f"{path} has a header but no rows; give at least one row of data")
    non_numeric = [f"{field.name!r} ({field.type})" for field in table.schema if not _is_numeric(field.type)]
    if non_numeric:
        raise DataError(
            f"{path} has non-numeric columns {', '.join(non_numeric)}; isthmus reads numbers only - "
            "drop those columns or encode them as numbers"
        )
    out = np.empty((table.num_rows, table.num_columns), dtype=np.float64)
    for j, column in enumerate(table.columns):
        as_float = pc.cast(column, pa.float64(), safe=False)
        out[:, j] = pc.fill_null(as_float, float("nan")).to_numpy()
    return out


def _is_numeric(kind: pa.DataType) -> bool:
    """Whether an Arrow column type holds numbers (booleans count as 0 and 1)."""
    return bool(
        pa.types.is_integer(kind)
        or pa.types.is_floating(kind)
        or pa.types.is_boolean(kind)
        or pa.types.is_decimal(kind)
    )


def _check_header(names: list[str], path: Path) -> None:
    """Raise if the first line of a CSV file looks like data rather than column names.

    Numeric names are taken as data unless they are exactly 0, 1, 2, ..., the header pandas writes.
    """
    try:
        [float(name) for name in names]
    except ValueError:
        return
    if names != [str(i) for i in range(len(names))]:
        raise DataError(
            f"{path} has no header: its first line ({', '.join(names[:4])}...) is numbers; "
            "add a first line of column names, e.g. c0,c1,..."
        )


def numpy_failure(exc: BaseException) -> str:
    """Why NumPy refused a file; its pickle message invites unsafe loading, so it is replaced."""
    if "pickle" in str(exc):
        return "it is not a NumPy file, or it holds Python objects, which isthmus never unpickles"
    return _first_line(exc)


def _first_line(exc: BaseException) -> str:
    """The first line of an exception's message, for one-line errors."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
