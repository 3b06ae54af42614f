"""Readers for each file format, chosen from the file name through a table.

Each reader turns one path into raw arrays ``(X, y)``: ``X`` in the file's own dtype and shape, ``y``
the labels the file carries or None. Validation and the float32 conversion happen afterwards, once for
all formats, in :func:`isthmus.data.dataset.as_dataset`.
"""

from __future__ import annotations

import contextlib
import fnmatch
import math
import tokenize
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import IO, Any, NamedTuple

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from isthmus.data.idx import labels_beside, read_idx
from isthmus.data.images import IMAGE_SUFFIXES, read_image_file, read_image_folder
from isthmus.data.limits import check_allocation
from isthmus.data.schema import is_number
from isthmus.errors import ConfigError, DataError

#: what reading a (possibly compressed, possibly damaged) member of a zip archive can raise
_ZIP_FAILURES = (ValueError, OSError, EOFError, zlib.error, zipfile.BadZipFile)

Raw = tuple[npt.NDArray[np.generic], npt.NDArray[np.generic] | None]

#: texts that mark a missing cell in the CSV files read inside :func:`missing_markers` (``isthmus
#: --na-values``), beyond Arrow's own (an empty cell, NA, N/A, NaN, null, ...)
_MARKERS: ContextVar[tuple[str, ...]] = ContextVar("missing_markers", default=())


@contextlib.contextmanager
def missing_markers(markers: Sequence[str]) -> Iterator[None]:
    """Inside, a CSV cell whose text, spaces stripped, is one of ``markers`` (such as ``"?"``) is missing."""
    token = _MARKERS.set(tuple(marker.strip() for marker in markers))
    try:
        yield
    finally:
        _MARKERS.reset(token)


def read_csv(path: Path) -> pa.Table:
    """A CSV file as Arrow reads it, with the cells that :func:`missing_markers` names made null.

    A column that held numbers and markers only becomes a column of numbers.
    """
    table = pa_csv.read_csv(path)
    markers = _MARKERS.get()
    if not markers:
        return table
    marked = pa.array(markers, pa.string())
    columns = []
    for column in table.columns:
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            trimmed = pc.utf8_trim_whitespace(column)
            hit = pc.is_in(trimmed, value_set=marked)
            if pc.any(hit).as_py():
                blank = pa.scalar(None, column.type)
                try:  # numbers and markers: numbers
                    column = pc.cast(pc.if_else(hit, blank, trimmed), pa.float64())
                except pa.ArrowInvalid:  # text and markers: the text as it was
                    column = pc.if_else(hit, blank, column)
        columns.append(column)
    return pa.table(columns, names=table.column_names)


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
    *((f"*{suffix}", "image") for suffix in IMAGE_SUFFIXES),
)
SUPPORTED = (
    ".npy, .npz (file.npz:key picks an array), .csv (with a header), .parquet, "
    "IDX (*-idx3-ubyte, *-idx1-ubyte, *.idx, each optionally .gz), "
    f"one {'/'.join(s[1:].upper() for s in IMAGE_SUFFIXES)} image or a folder of them"
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
        raise DataError(f"{path}:{options.key} - a ':key' suffix picks an array in a .npz file; {path.name} is {fmt}")
    if path.stat().st_size == 0:
        raise DataError(f"{path} is empty (0 bytes)")
    if options.image_size is not None and fmt != "image":
        raise ConfigError(
            f"an image size resizes images, but {path.name} is a {fmt} file, which is not resized; "
            "drop the image size (--image-size) or resize the data yourself"
        )
    return READERS[fmt](path, options)


def _read_npy(path: Path, options: ReadOptions) -> Raw:
    """A .npy file, memory-mapped so that a row slice reads only those rows."""
    return read_npy(path, mmap=True), None


def _read_npz(path: Path, options: ReadOptions) -> Raw:
    """An array of a .npz file (the ``key`` or the first), with its ``y`` array as labels."""
    with NpzArchive(path) as archive:
        if archive.single is not None:  # a .npy file named .npz: it is one array
            if options.key is not None:
                raise DataError(f"{path} is a .npy array, not a .npz archive; drop ':{options.key}'")
            return archive.single, None
        key = options.key if options.key is not None else archive.keys[0]
        X = archive.array(key)
        y = archive.array("y") if "y" in archive.keys and key != "y" else None
    return X, y


def npy_header(fh: IO[bytes], name: str) -> tuple[tuple[int, ...], bool, np.dtype[Any], int]:
    """``(shape, fortran_order, dtype, data_bytes)`` from the header at the start of an open .npy stream.

    Raises
    ------
    DataError
        If the stream is not a .npy file, or holds Python objects (which isthmus never unpickles).
    """
    try:
        version = np.lib.format.read_magic(fh)
        if version not in ((1, 0), (2, 0), (3, 0)):
            raise ValueError(f"unknown .npy format version {version[0]}.{version[1]}")
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(fh)
    except (*_ZIP_FAILURES, SyntaxError, TypeError, tokenize.TokenError) as exc:  # NumPy tokenizes the header
        raise DataError(f"{name} is not a readable .npy array ({numpy_failure(exc)})") from None
    if dtype.hasobject:
        raise DataError(f"{name} holds Python objects (dtype {dtype}), which isthmus never unpickles; save numbers")
    return tuple(int(s) for s in shape), bool(fortran), dtype, math.prod(shape) * dtype.itemsize


def read_npy(path: Path, *, mmap: bool) -> npt.NDArray[np.generic]:
    """A .npy file whose header is checked against the file's size first, memory-mapped or read whole.

    Raises
    ------
    DataError
        If the file is not a .npy file, is shorter than its header says, or (read whole) would not fit
        in memory.
    """
    with open(path, "rb") as fh:
        shape, _, dtype, nbytes = npy_header(fh, str(path))
        offset = fh.tell()
    held = path.stat().st_size - offset
    if held < nbytes:
        raise DataError(
            f"{path} is truncated: its header gives shape {shape} {dtype} ({nbytes:,} bytes of data) "
            f"but only {held:,} bytes follow; copy or save the file again"
        )
    if not mmap:
        check_allocation(nbytes, f"{path} (shape {shape} {dtype})", "give a smaller file")
    try:
        X = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(f"{path} is not a readable .npy file ({numpy_failure(exc)})") from None
    return X  # type: ignore[no-any-return]


class NpzArchive:
    """A .npz file opened to read its arrays one at a time, each checked before it is allocated.

    ``keys`` are the array names in the archive's order. A .npy file named .npz is taken as one
    array: ``single`` holds it (memory-mapped) and ``keys`` is empty.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.single: npt.NDArray[np.generic] | None = None
        self.keys: list[str] = []
        self._zip: zipfile.ZipFile | None = None
        with open(path, "rb") as fh:
            start = fh.read(8)
        if start.startswith(b"\x93NUMPY"):
            self.single = read_npy(path, mmap=True)
            return
        if not start.startswith((b"PK\x03\x04", b"PK\x05\x06")):
            raise DataError(
                f"{path} is not a .npz file: it starts with {describe_start(start)}, not a zip archive's "
                "bytes; give the file the suffix of its format"
            )
        try:
            self._zip = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as exc:
            raise DataError(
                f"{path} is a damaged or truncated zip archive ({_first_line(exc)}); save the file again"
            ) from None
        self._members = {name.removesuffix(".npy"): name for name in self._zip.namelist() if name.endswith(".npy")}
        self.keys = list(self._members)
        if not self.keys:
            self.close()
            raise DataError(f"{path} holds no arrays")

    def __enter__(self) -> NpzArchive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()

    def array(self, key: str) -> npt.NDArray[np.generic]:
        """The array ``key``, after its header has been checked against the archive and the memory limit."""
        if key not in self._members or self._zip is None:
            raise DataError(f"{self.path} has no array {key!r}; it holds {', '.join(map(repr, self.keys))}")
        name = f"{self.path}: array {key!r}"
        info = self._zip.getinfo(self._members[key])
        try:
            with self._zip.open(info) as fh:
                shape, _, dtype, nbytes = npy_header(fh, name)
                offset = fh.tell()
            held = info.file_size - offset
            if held != nbytes:
                raise DataError(
                    f"{name} is {'truncated' if held < nbytes else 'corrupt'}: its header gives shape {shape} "
                    f"{dtype} ({nbytes:,} bytes) but the archive holds {held:,} bytes for it; save the file again"
                )
            check_allocation(nbytes, f"{name} (shape {shape} {dtype})", "save a smaller array")
            with self._zip.open(info) as fh:
                return np.lib.format.read_array(fh, allow_pickle=False)
        except DataError:
            raise
        except (*_ZIP_FAILURES, RuntimeError, NotImplementedError) as exc:  # RuntimeError: an encrypted member
            raise DataError(f"{name} is not readable ({numpy_failure(exc)})") from None


def describe_start(start: bytes) -> str:
    """What the first bytes of a file look like, for messages about mislabeled files."""
    known = {b"\x93NUMPY": ".npy", b"PK": "zip (.npz)", b"PAR1": "Parquet", b"\x89PNG": "PNG", b"\x89HDF": "HDF5"}
    for magic, kind in known.items():
        if start.startswith(magic):
            return f"the bytes of a {kind} file"
    if start and all(32 <= b < 127 or b in b"\t\r\n" for b in start):
        return f"text ({start.decode('ascii')!r}...)"
    return f"bytes {start.hex(' ') or '(none)'}"


def _read_csv(path: Path, options: ReadOptions) -> Raw:
    """A CSV file with a header line; every column is a feature."""
    return table_to_array(_csv_table(path), path), None


def _csv_table(path: Path) -> pa.Table:
    """A CSV file with a header line as an Arrow table: empty cells and NA, NaN, null... are missing."""
    try:
        table = read_csv(path)
        names = table.column_names  # decoded from UTF-8 only now
    except (pa.ArrowInvalid, OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path} is not a readable CSV file ({_first_line(exc)}); save it as UTF-8 text") from None
    _check_header(names, path)
    return table


def read_table(path: Path) -> pa.Table:
    """A CSV or Parquet file as an Arrow table with its column names and types (text, categories, numbers).

    Raises
    ------
    DataError
        If the file does not exist, is not CSV or Parquet, is unreadable, or has no rows or columns.
    """
    if not path.exists():
        raise DataError(f"no such file: {path}")
    fmt = file_format(path)
    if fmt not in ("csv", "parquet"):
        raise DataError(f"{path}: a table must be a .csv file (with a header) or a .parquet file")
    if path.stat().st_size == 0:
        raise DataError(f"{path} is empty (0 bytes)")
    table = _csv_table(path) if fmt == "csv" else _parquet_table(path)
    if table.num_columns == 0:
        raise DataError(f"{path} has no columns")
    if table.num_rows == 0:
        raise DataError(f"{path} has a header but no rows; give at least one row of data")
    return table


def _read_parquet(path: Path, options: ReadOptions) -> Raw:
    """A Parquet file; every column is a feature."""
    return table_to_array(_parquet_table(path), path), None


def _parquet_table(path: Path) -> pa.Table:
    """A Parquet file as an Arrow table. Its metadata's size is checked before any row is read."""
    try:
        with pq.ParquetFile(path) as parquet:
            rows, columns = parquet.metadata.num_rows, parquet.metadata.num_columns
            # the float64 result, plus the Arrow table it is converted from (at most as many bytes again)
            check_allocation(
                16 * rows * columns,
                f"{path} ({rows:,} rows of {columns:,} columns, by its metadata)",
                "read it in row groups (streaming) or write a smaller file",
            )
            table = parquet.read()
    except (pa.ArrowException, OSError, ValueError) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(f"{path} is not a readable Parquet file ({_first_line(exc)})") from None
    return table


def _read_idx(path: Path, options: ReadOptions) -> Raw:
    """An IDX file, with the labels file beside it when it is an images file."""
    labels = labels_beside(path)
    return read_idx(path), None if labels is None else read_idx(labels)


READERS: dict[str, Callable[[Path, ReadOptions], Raw]] = {
    "csv": _read_csv,
    "idx": _read_idx,
    "image": lambda path, options: read_image_file(path, image_size=options.image_size),
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
    non_numeric = [
        _describe_column(field, column)
        for field, column in zip(table.schema, table.columns, strict=True)
        if not _is_numeric(field.type)
    ]
    if non_numeric:
        raise DataError(
            f"{path} has non-numeric columns {', '.join(non_numeric)}; this command reads numbers only - "
            "drop those columns or encode them as numbers (train, encode, reconstruct, impute, score, evaluate "
            "and report read them as categories)"
        )
    out = np.empty((table.num_rows, table.num_columns), dtype=np.float64)
    for j, column in enumerate(table.columns):
        as_float = pc.cast(column, pa.float64(), safe=False)
        out[:, j] = pc.fill_null(as_float, float("nan")).to_numpy()
    return out


def _describe_column(field: pa.Field, column: pa.ChunkedArray) -> str:
    """A non-numeric column for messages: its name, type and, for text, the first value that is no number."""
    if pa.types.is_string(field.type) or pa.types.is_large_string(field.type):
        for row, value in enumerate(column.to_pylist()):
            if value is not None and not is_number(value):
                return f"{field.name!r} ({field.type}, e.g. {value[:40]!r} in row {row}, counting from 0)"
    return f"{field.name!r} ({field.type})"


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
