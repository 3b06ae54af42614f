"""Write an array to a file whose format is chosen by its extension through a table; writes are atomic."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from isthmus._files import atomic_open, atomic_path
from isthmus.errors import DataError, OutputError


def write_array(
    path: str | os.PathLike[str],
    array: npt.ArrayLike | pa.Table,
    *,
    overwrite: bool = True,
    columns: Sequence[str] | None = None,
) -> None:
    """Write a numeric array to ``.npy``, ``.csv`` or ``.parquet``, chosen by the extension.

    Parameters
    ----------
    path : str or os.PathLike
        The file to write; it appears only once completely written.
    array : array_like, Arrow table or pandas DataFrame
        Numeric values, or a table with named columns of numbers and text (written with its names).
        ``.npy`` keeps the shape; ``.csv`` and ``.parquet`` write rows of
        shape (n_rows, n_columns): a 1-D array is one column, trailing axes beyond the second
        are flattened into columns.
    overwrite : bool
        Replace an existing file; when False an existing file is an error and is left untouched.
    columns : sequence of str or None
        Column names for ``.csv`` and ``.parquet`` (default ``c0, c1, ...``); not used for ``.npy``.

    Raises
    ------
    OutputError
        If the extension is not one of the writable ones, the file exists and ``overwrite`` is
        False, or the file cannot be written.
    DataError
        If ``array`` is not numeric, or ``columns`` does not give one distinct name per column.
    """
    target = Path(path)
    writer = WRITERS.get(target.suffix.lower())
    if writer is None:
        raise OutputError(
            f"cannot write {target}: unknown extension {target.suffix or '(none)'!r}; "
            f"use one of {', '.join(sorted(WRITERS))}"
        )
    if isinstance(array, pa.Table) or type(array).__name__ == "DataFrame":
        _write_table(target, array, overwrite)
        return
    values = np.asarray(array)
    if values.dtype.kind not in "biuf":
        raise DataError(f"cannot write an array of dtype {values.dtype} to {target}; give numbers")
    writer(target, values, overwrite, columns)


def _write_npy(path: Path, array: npt.NDArray[np.generic], overwrite: bool, columns: object) -> None:
    """NumPy's own format, shape and dtype kept."""
    with atomic_open(path, overwrite=overwrite) as fh:
        np.save(fh, array, allow_pickle=False)


def _write_csv(path: Path, array: npt.NDArray[np.generic], overwrite: bool, columns: Sequence[str] | None) -> None:
    """A header line, then one line per row."""
    table = _to_table(array, columns)
    header = io.StringIO()
    csv.writer(header, lineterminator="\n").writerow(table.column_names)  # quotes names only when needed
    options = pa_csv.WriteOptions(include_header=False, quoting_style="needed")
    with atomic_open(path, overwrite=overwrite) as fh:
        fh.write(header.getvalue().encode("utf-8"))
        pa_csv.write_csv(table, fh, write_options=options)


def _write_parquet(path: Path, array: npt.NDArray[np.generic], overwrite: bool, columns: Sequence[str] | None) -> None:
    """One Parquet column per array column."""
    table = _to_table(array, columns)
    with atomic_path(path, overwrite=overwrite) as tmp:
        pq.write_table(table, tmp)


def _write_table(path: Path, table: Any, overwrite: bool) -> None:
    """A table with named columns of numbers or text (a DataFrame or an Arrow table) to .csv or .parquet;
    to .npy only when every column is numeric."""
    if not isinstance(table, pa.Table):
        table = pa.Table.from_pandas(table, preserve_index=False)
    if path.suffix.lower() == ".npy":
        numeric = all(pa.types.is_floating(t) or pa.types.is_integer(t) for t in table.schema.types)
        if not numeric:
            raise OutputError(f"cannot write {path}: the table has text columns; write .csv or .parquet")
        values = np.column_stack([c.to_numpy(zero_copy_only=False) for c in table.columns])
        _write_npy(path, values, overwrite, None)
        return
    if path.suffix.lower() == ".parquet":
        with atomic_path(path, overwrite=overwrite) as tmp:
            pq.write_table(table, tmp)
        return
    header = io.StringIO()
    csv.writer(header, lineterminator="\n").writerow(table.column_names)
    options = pa_csv.WriteOptions(include_header=False, quoting_style="needed")
    with atomic_open(path, overwrite=overwrite) as fh:
        fh.write(header.getvalue().encode("utf-8"))
        pa_csv.write_csv(table, fh, write_options=options)


WRITERS: dict[str, Callable[[Path, npt.NDArray[np.generic], bool, Sequence[str] | None], None]] = {
    ".csv": _write_csv,
    ".npy": _write_npy,
    ".parquet": _write_parquet,
}


def _to_table(array: npt.NDArray[np.generic], columns: Sequence[str] | None) -> pa.Table:
    """An Arrow table with one column per column of ``array`` seen as (n_rows, n_columns)."""
    if array.ndim == 0:
        raise DataError("cannot write a scalar as a table; give a 1-D or 2-D array")
    rows = array.reshape(len(array), -1)  # (n_rows,) or (n_rows, ...) -> (n_rows, n_columns)
    names = list(columns) if columns is not None else [f"c{j}" for j in range(rows.shape[1])]
    if len(names) != rows.shape[1] or len(set(names)) != len(names):
        raise DataError(
            f"columns has {len(names)} names ({len(set(names))} distinct) for {rows.shape[1]} columns; "
            "give one distinct name per column"
        )
    return pa.table({name: np.ascontiguousarray(rows[:, j]) for j, name in enumerate(names)})
