"""Data too big for memory: sources read in chunks of rows, and the passes that fit a scaler over them.

A :class:`Rows` source knows its row count and sample shape from the file's header, and reads one chunk
at a time: a run of rows of a ``.npy`` file (positioned reads, so the file lives in the page cache, not
in the process), a row group of a Parquet file, or a run of files of an image folder. Training draws
chunks in a seeded random order and shuffles rows within a window of chunks (see
:class:`isthmus.batches.ChunkSource`), so memory stays bounded by the window, not the data.

``open_rows("big.npy")`` is what ``Autoencoder.fit``, ``transform`` and ``isthmus train --stream`` take.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from isthmus._files import atomic_open
from isthmus.data.dataset import NUMERIC_KINDS, check_finite
from isthmus.data.images import checked_size, common_size, is_gray, list_images, load_image, probe
from isthmus.data.limits import check_allocation
from isthmus.data.readers import file_format, npy_header
from isthmus.data.spec import parse_spec
from isthmus.errors import DataError, OutputError

#: bytes of raw rows per chunk of a .npy file: big enough for fast sequential reads, small enough to shuffle
CHUNK_BYTES = 8 << 20
#: images per chunk of an image folder
CHUNK_IMAGES = 256


class Rows:
    """A source of samples read one chunk of rows at a time.

    Attributes
    ----------
    name : str
        A short human name of the source.
    sample_shape : tuple of int
        One sample's shape: ``(n_features,)`` or ``(channels, height, width)``.
    chunks : list of (start, stop)
        Consecutive row ranges that cover the source; each is read whole by :meth:`read_chunk`.
    """

    name: str
    sample_shape: tuple[int, ...]
    chunks: list[tuple[int, int]]

    def __len__(self) -> int:
        return self.chunks[-1][1] if self.chunks else 0

    def read_chunk(self, index: int) -> npt.NDArray[np.float32]:
        """Rows ``chunks[index]`` as float32 of shape (rows, *sample_shape), checked finite."""
        start, stop = self.chunks[index]
        rows = self._read(start, stop)
        check_finite(rows, f"{self.name} rows {start}..{stop - 1}")
        return rows

    def iter_chunks(self) -> Iterator[npt.NDArray[np.float32]]:
        """Every chunk in order."""
        for index in range(len(self.chunks)):
            yield self.read_chunk(index)

    @property
    def row_bytes(self) -> int:
        """Bytes of one sample as float32."""
        return 4 * math.prod(self.sample_shape)

    def _read(self, start: int, stop: int) -> npt.NDArray[np.float32]:
        raise NotImplementedError


class NpyRows(Rows):
    """A ``.npy`` file in C order, read by positioned reads of whole runs of rows."""

    def __init__(self, path: Path, *, chunk_rows: int | None = None) -> None:
        self.path = path
        self.name = path.name
        with open(path, "rb") as fh:
            shape, fortran, dtype, _ = npy_header(fh, str(path))
            self._offset = fh.tell()
        if dtype.kind not in NUMERIC_KINDS:
            raise DataError(f"{path} holds values of dtype {dtype}; isthmus needs numbers (bool, integer or float)")
        if fortran and len(shape) > 1:
            raise DataError(
                f"{path} is stored in Fortran (column) order, which cannot be read by rows; "
                "save it with np.save(path, np.ascontiguousarray(x))"
            )
        if len(shape) == 3:
            shape = (shape[0], 1, *shape[1:])  # (n, height, width) images gain a channel axis
        if len(shape) not in (2, 4) or shape[0] == 0 or math.prod(shape[1:]) == 0:
            raise DataError(
                f"{path} holds an array of shape {shape}; streaming needs rows: (n_samples, n_features) "
                "or images (n_samples, [channels,] height, width), with at least one row and one feature"
            )
        self._dtype = dtype
        self._row_items = math.prod(shape[1:])
        needed = self._offset + shape[0] * self._row_items * dtype.itemsize
        size = path.stat().st_size
        if size < needed:
            raise DataError(
                f"{path} is truncated: its header promises {shape[0]} rows of shape {shape[1:]} "
                f"({needed:,} bytes), but the file has {size:,} bytes"
            )
        self.sample_shape = tuple(int(s) for s in shape[1:])
        row_bytes = self._row_items * dtype.itemsize
        step = chunk_rows or max(1, CHUNK_BYTES // row_bytes)
        self.chunks = [(start, min(start + step, shape[0])) for start in range(0, shape[0], step)]

    def _read(self, start: int, stop: int) -> npt.NDArray[np.float32]:
        count = (stop - start) * self._row_items
        with open(self.path, "rb") as fh:
            fh.seek(self._offset + start * self._row_items * self._dtype.itemsize)
            raw = np.fromfile(fh, dtype=self._dtype, count=count)
        if raw.size != count:
            raise DataError(f"{self.path} ended early while reading rows {start}..{stop - 1}; the file is truncated")
        with np.errstate(over="ignore"):  # beyond float32 becomes inf, which the finite check reports
            return raw.astype(np.float32, copy=False).reshape(stop - start, *self.sample_shape)


class ParquetRows(Rows):
    """A Parquet file of numeric columns, read one row group at a time (so memory follows the largest)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.name = path.name
        try:
            self._file = pq.ParquetFile(path)
        except (pa.ArrowException, OSError) as exc:
            raise DataError(f"{path} is not a readable Parquet file ({exc})") from None
        schema = self._file.schema_arrow
        text = [
            f.name
            for f in schema
            if not (pa.types.is_integer(f.type) or pa.types.is_floating(f.type) or pa.types.is_boolean(f.type))
        ]
        if text:
            raise DataError(f"{path} has non-numeric columns {', '.join(text[:5])}; isthmus needs numbers")
        if len(schema) == 0:
            raise DataError(f"{path} has no columns; give at least one")
        metadata = self._file.metadata
        sizes = [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]
        bounds = np.cumsum([0, *sizes]).tolist()
        self.chunks = [(int(a), int(b)) for a, b in itertools.pairwise(bounds) if b > a]
        self._group_at = {int(bounds[i]): i for i, n in enumerate(sizes) if n > 0}  # first row -> row group
        self.sample_shape = (len(schema),)
        biggest = max(sizes, default=0)
        check_allocation(
            biggest * len(schema) * 4,
            f"{path}: a row group of {biggest:,} rows x {len(schema)} columns (read whole when streaming)",
            "rewrite the file with smaller row groups, e.g. pyarrow.parquet.write_table(table, path, "
            "row_group_size=65536)",
        )

    def _read(self, start: int, stop: int) -> npt.NDArray[np.float32]:
        try:
            table = self._file.read_row_group(self._group_at[start])
        except (pa.ArrowException, OSError) as exc:
            raise DataError(f"{self.path}: cannot read rows {start}..{stop - 1} ({exc})") from None
        columns = [np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.float32) for col in table.columns]
        return np.stack(columns, axis=1)


class ImageRows(Rows):
    """A folder of images (see :mod:`isthmus.data.images`), decoded a run of files at a time."""

    def __init__(self, folder: Path, *, image_size: tuple[int, int] | None = None, chunk_rows: int | None = None):
        self.path = folder
        self.name = folder.name or str(folder)
        files, self.labels = list_images(folder)
        self._infos = [probe(path) for path in files]  # headers only: no pixels decoded yet
        self._size = checked_size(image_size) if image_size is not None else common_size(self._infos)
        self._gray = is_gray(self._infos)
        width, height = self._size
        self.sample_shape = (1 if self._gray else 3, height, width)
        step = chunk_rows or CHUNK_IMAGES
        self.chunks = [(start, min(start + step, len(files))) for start in range(0, len(files), step)]

    def _read(self, start: int, stop: int) -> npt.NDArray[np.float32]:
        return np.stack([load_image(info, self._size, self._gray) for info in self._infos[start:stop]])


class ArrayRows(Rows):
    """An array already in memory (or memory-mapped), served in chunks like a file."""

    def __init__(self, array: npt.NDArray[np.generic], name: str = "X", *, chunk_rows: int = 4096) -> None:
        if array.ndim == 3:
            array = array[:, np.newaxis]
        self._array = array
        self.name = name
        self.sample_shape = tuple(int(s) for s in array.shape[1:])
        n = len(array)
        self.chunks = [(start, min(start + chunk_rows, n)) for start in range(0, n, chunk_rows)]

    def _read(self, start: int, stop: int) -> npt.NDArray[np.float32]:
        return np.array(self._array[start:stop], dtype=np.float32)


def open_rows(
    spec: str | os.PathLike[str],
    *,
    image_size: tuple[int, int] | None = None,
    chunk_rows: int | None = None,
) -> Rows:
    """Open ``spec`` for reading in chunks: a ``.npy`` file, a ``.parquet`` file or an image folder.

    Only the header (or the image headers) is read here; nothing is loaded until chunks are read.

    Parameters
    ----------
    spec : str or os.PathLike
        A path. Row slices, ``:key`` suffixes and built-in names are for :func:`read_data`.
    image_size : (int, int) or None
        ``(width, height)`` to resize the images of a folder to.
    chunk_rows : int or None
        Rows per chunk (not for Parquet, whose chunks are its row groups); by default about 8 MiB of
        ``.npy`` rows or 256 images.

    Raises
    ------
    DataError
        If the path names no such file, another format, or a file whose header is unusable.
    """
    parsed = parse_spec(spec)
    if not isinstance(parsed.source, Path) or parsed.option is not None or parsed.rows is not None:
        raise DataError(
            f"{spec}: streaming reads a .npy file, a .parquet file or an image folder by its plain path; "
            "read built-in datasets, .npz keys and row slices into memory instead (drop --stream)"
        )
    path = parsed.source
    if chunk_rows is not None and chunk_rows < 1:
        raise DataError(f"chunk_rows={chunk_rows} must be at least 1")
    if path.is_dir():
        return ImageRows(path, image_size=image_size, chunk_rows=chunk_rows)
    fmt = file_format(path)
    if fmt == "npy":
        return NpyRows(path, chunk_rows=chunk_rows)
    if fmt == "parquet":
        return ParquetRows(path)
    raise DataError(
        f"{path}: streaming reads .npy files, .parquet files and image folders, not {path.suffix or 'this format'}; "
        "convert it (np.save) or read it into memory instead (drop --stream)"
    )


class Moments(NamedTuple):
    """Per-feature statistics of a whole source, from one pass."""

    minimum: npt.NDArray[np.float64]  # (*sample_shape)
    maximum: npt.NDArray[np.float64]
    mean: npt.NDArray[np.float64]
    std: npt.NDArray[np.float64]
    n_rows: int


def moments(rows: Rows) -> Moments:
    """Minimum, maximum, mean and standard deviation of every feature, in one pass over the chunks.

    Chunk means and squared deviations are merged with Chan et al.'s pairwise update in float64, which
    stays accurate where a running sum of squares would cancel.
    """
    shape = rows.sample_shape
    low = np.full(shape, np.inf)
    high = np.full(shape, -np.inf)
    mean = np.zeros(shape)
    m2 = np.zeros(shape)  # sum of squared deviations from the mean
    count = 0
    for chunk in rows.iter_chunks():
        n = len(chunk)
        if n == 0:
            continue
        c = chunk.astype(np.float64)
        low = np.minimum(low, c.min(axis=0))
        high = np.maximum(high, c.max(axis=0))
        c_mean = c.mean(axis=0)
        c_m2 = ((c - c_mean) ** 2).sum(axis=0)
        delta = c_mean - mean
        total = count + n
        mean = mean + delta * (n / total)
        m2 = m2 + c_m2 + delta**2 * (count * n / total)
        count = total
    if count == 0:
        raise DataError(f"{rows.name} has no rows; give at least one sample")
    return Moments(low, high, mean, np.sqrt(m2 / count), count)


def sample_rows(rows: Rows, n: int, seed: int) -> npt.NDArray[np.float32]:
    """Up to ``n`` rows from seeded random chunks, for what needs a sample rather than every row."""
    order = np.random.RandomState(seed).permutation(len(rows.chunks))
    taken: list[npt.NDArray[np.float32]] = []
    have = 0
    for index in order:
        if have >= n:
            break
        chunk = rows.read_chunk(int(index))[: n - have]
        taken.append(chunk)
        have += len(chunk)
    return np.concatenate(taken)


def write_npy_chunks(
    path: str | os.PathLike[str],
    chunks: Iterator[npt.NDArray[np.generic]],
    n_rows: int,
    *,
    overwrite: bool = True,
) -> tuple[int, ...]:
    """Write ``n_rows`` rows arriving in chunks to a ``.npy`` file, one chunk in memory at a time.

    The header is written for the final shape as soon as the first chunk shows the trailing shape and
    dtype; the file appears at ``path`` only once every row is written (atomically, like every output).

    Returns
    -------
    tuple of int
        The shape written.

    Raises
    ------
    OutputError
        If ``path`` is not a ``.npy`` file, exists and ``overwrite`` is False, or cannot be written.
    DataError
        If the chunks disagree in shape or dtype, or hold other than ``n_rows`` rows in all.
    """
    if Path(path).suffix.lower() != ".npy":
        raise OutputError(f"{path}: streamed output is written as .npy; name the file with a .npy suffix")
    with atomic_open(path, overwrite=overwrite) as fh:
        shape: tuple[int, ...] | None = None
        dtype: np.dtype[Any] | None = None
        written = 0
        for chunk in chunks:
            chunk = np.ascontiguousarray(chunk)
            if shape is None:
                shape, dtype = (n_rows, *chunk.shape[1:]), chunk.dtype
                header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape}
                np.lib.format.write_array_header_2_0(fh, header)
            elif chunk.shape[1:] != shape[1:] or chunk.dtype != dtype:
                raise DataError(f"chunk of shape {chunk.shape} and dtype {chunk.dtype} does not continue {shape}")
            written += len(chunk)
            if written > n_rows:
                break
            fh.write(chunk.tobytes())
        if shape is None or written != n_rows:
            raise DataError(f"{path}: {written} rows arrived where {n_rows} were announced; nothing was written")
    return shape


__all__ = [
    "ArrayRows",
    "ImageRows",
    "Moments",
    "NpyRows",
    "ParquetRows",
    "Rows",
    "moments",
    "open_rows",
    "sample_rows",
    "write_npy_chunks",
]
