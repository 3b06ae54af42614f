"""Series: values over time, read from NumPy, pandas, CSV or Parquet, with their timestamps.

A series is ``(n_timestamps, n_channels)`` float32 values in time order, with the timestamps when the
source has them (``datetime64[ns]``, else ``None``: the positions 0, 1, 2 ... stand for time).

- CSV and Parquet: the timestamp column is ``time_column`` when given, else the one column whose type is
  a date or time, or whose text values all parse as ISO 8601 timestamps (``2014-01-01 00:05:00``); every
  other column is a value column and must be numeric. Rows are sorted by time (a stable sort, so equal
  timestamps keep their file order).
- pandas: a DataFrame with a ``DatetimeIndex``, or with a datetime column (found as in a file); a Series.
- NumPy: ``(n_timestamps,)`` or ``(n_timestamps, n_channels)``; no timestamps.

The spacing of the timestamps is checked: :func:`gap_report` describes steps longer than the usual one
(missing stretches), which windows silently join, and :func:`read_series` warns with it.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from isthmus.data.readers import read_csv
from isthmus.data.spec import parse_spec
from isthmus.errors import DataError

#: a step longer than this many times the median step is a gap
GAP_FACTOR = 1.5

#: file suffixes read as series tables
_TABLES = (".csv", ".parquet")


class SeriesData(NamedTuple):
    """A series in time order.

    Attributes
    ----------
    values : ndarray of shape (n_timestamps, n_channels), float32
    timestamps : ndarray of shape (n_timestamps,), datetime64[ns], or None
    columns : tuple of str
        The channels' names (``"x0"``, ``"x1"`` ... for arrays without names).
    time_column : str or None
        The name of the timestamp column it was read from (``None`` without timestamps or from an index).
    name : str
        A short name for messages.
    """

    values: npt.NDArray[np.float32]
    timestamps: npt.NDArray[np.datetime64] | None
    columns: tuple[str, ...]
    time_column: str | None
    name: str


def read_series(
    spec: str | os.PathLike[str],
    *,
    time_column: str | None = None,
    until: str | np.datetime64 | None = None,
) -> SeriesData:
    """Read a series from a CSV or Parquet file (or a .npy array), optionally sliced by rows or by time.

    Parameters
    ----------
    spec : str or os.PathLike
        A path, with an optional row slice applied after sorting by time: ``"series.csv[:4000]"``.
    time_column : str, optional
        The timestamp column; by default the one column of dates/times or of ISO 8601 text.
    until : str or datetime64, optional
        Keep only the rows with a timestamp before this one (``"2014-01-01"``).

    Returns
    -------
    SeriesData

    Raises
    ------
    DataError
        If the file cannot be read, ``time_column`` is missing or not timestamps, several columns could be
        the timestamps, a value column is not numeric, values are NaN or infinite, or nothing is left.
    """
    parsed = parse_spec(spec)
    path = parsed.source
    if not isinstance(path, Path) or not path.is_file():
        raise DataError(f"no such series file: {spec}; give a .csv or .parquet file (or .npy)")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        data = as_series(np.load(path, allow_pickle=False), name=parsed.name)
    elif suffix in _TABLES:
        data = _from_table(_read_table(path, suffix), time_column, parsed.name)
    else:
        raise DataError(f"{path} is not a series file; give a .csv or .parquet file (a timestamp column and values)")
    if parsed.rows is not None:
        data = _take(data, parsed.rows, parsed.name)
    if until is not None:
        data = take_until(data, until)
    report = gap_report(data.timestamps)
    if report:
        warnings.warn(f"{data.name}: {report}", UserWarning, stacklevel=2)
    return data


def as_series(X: Any, *, time_column: str | None = None, name: str = "X") -> SeriesData:
    """Any supported series input as :class:`SeriesData` (a path is read with :func:`read_series`).

    Parameters
    ----------
    X : array-like (n_timestamps,) or (n_timestamps, n_channels), pandas DataFrame or Series, or a path
    time_column : str, optional
        The datetime column of a DataFrame (or file); found automatically when there is one.
    name : str
        What to call ``X`` in messages.
    """
    if isinstance(X, SeriesData):
        return X
    if isinstance(X, (str, os.PathLike)):
        return read_series(X, time_column=time_column)
    if _is_pandas(X):
        return _from_pandas(X, time_column, name)
    if hasattr(X, "detach"):  # a torch tensor
        X = X.detach().cpu().numpy()
    values = np.asarray(X)
    if values.dtype.kind not in "biuf":
        raise DataError(f"{name} has dtype {values.dtype}; a series holds numbers (float or integer)")
    if values.ndim == 1:
        values = values[:, None]
    if values.ndim != 2:
        raise DataError(f"{name} has shape {values.shape}; a series is (n_timestamps,) or (n_timestamps, n_channels)")
    columns = tuple(f"x{j}" for j in range(values.shape[1]))
    return _checked(values, None, columns, None, name)


def take_until(data: SeriesData, until: str | np.datetime64) -> SeriesData:
    """The rows of ``data`` with a timestamp strictly before ``until``."""
    if data.timestamps is None:
        raise DataError(f"{data.name} has no timestamps, so it cannot be cut by time; cut it by rows instead")
    try:
        limit = np.datetime64(until, "ns")  # type: ignore[call-overload]  # numpy's stubs: str or datetime64 apart
    except ValueError:
        raise DataError(
            f"--train-until {until!r} is not a date or time; write it as 2014-01-01 or 2014-01-01T12:00"
        ) from None
    keep = int(np.searchsorted(data.timestamps, limit, side="left"))
    if keep == 0:
        raise DataError(f"{data.name} has no rows before {until} (it starts at {data.timestamps[0]})")
    return data._replace(values=data.values[:keep], timestamps=data.timestamps[:keep])


def gap_report(timestamps: npt.NDArray[np.datetime64] | None) -> str:
    """A one-line description of irregular spacing (gaps, repeated timestamps), or ``""`` when regular."""
    if timestamps is None or len(timestamps) < 3:
        return ""
    steps = np.diff(timestamps).astype(np.int64)  # nanoseconds
    usual = int(np.median(steps))
    parts = []
    repeated = int((steps == 0).sum())
    if repeated:
        parts.append(f"{repeated} repeated timestamps")
    if usual > 0:
        gaps = np.flatnonzero(steps > GAP_FACTOR * usual)
        if len(gaps):
            widest = int(gaps[np.argmax(steps[gaps])])
            parts.append(
                f"{len(gaps)} gaps longer than the usual step of {_duration(usual)} (the widest, "
                f"{_duration(int(steps[widest]))}, after {np.datetime_as_string(timestamps[widest], unit='s')}); "
                "windows join the two sides of a gap"
            )
    return "; ".join(parts)


def median_step(timestamps: npt.NDArray[np.datetime64] | None) -> np.timedelta64 | None:
    """The usual spacing of ``timestamps`` (their median step), or None without timestamps."""
    if timestamps is None or len(timestamps) < 2:
        return None
    return np.timedelta64(int(np.median(np.diff(timestamps).astype(np.int64))), "ns")


# ---------------------------------------------------------------------------------------- tables


def _read_table(path: Path, suffix: str) -> pa.Table:
    try:
        if suffix == ".csv":
            return read_csv(path)
        return pq.read_table(path)
    except (pa.ArrowException, OSError, UnicodeDecodeError) as exc:
        kind = "CSV" if suffix == ".csv" else "Parquet"
        line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path} is not a readable {kind} file ({line})") from None


def _from_table(table: pa.Table, time_column: str | None, name: str) -> SeriesData:
    if table.num_rows == 0:
        raise DataError(f"{name} has a header but no rows; give at least one row of data")
    names = list(table.column_names)
    times = _time_column(table, names, time_column, name)
    stamps = _as_datetimes(table.column(times), times, name) if times is not None else None
    value_names = [n for n in names if n != times]
    if not value_names:
        raise DataError(f"{name} has no value column besides the timestamps {times!r}")
    bad = [n for n in value_names if not _numeric(table.column(n).type)]
    if bad:
        raise DataError(
            f"{name}: column {bad[0]!r} ({table.column(bad[0]).type}) is not numeric; a series holds a timestamp "
            "column and numeric value columns - drop the others, or name the timestamps with --time-column"
        )
    values = np.column_stack(
        [pc.fill_null(pc.cast(table.column(n), pa.float64(), safe=False), float("nan")).to_numpy() for n in value_names]
    )
    return _checked(values, stamps, tuple(value_names), times, name)


def _time_column(table: pa.Table, names: list[str], time_column: str | None, name: str) -> str | None:
    if time_column is not None:
        if time_column not in names:
            raise DataError(f"{name} has no column {time_column!r}; its columns are {', '.join(names)}")
        return time_column
    found = [n for n in names if _temporal(table.column(n))]
    if len(found) > 1:
        raise DataError(
            f"{name} has several timestamp columns ({', '.join(found)}); pick one with --time-column "
            "(time_column=...), and drop the others"
        )
    return found[0] if found else None


def _temporal(column: pa.ChunkedArray) -> bool:
    kind = column.type
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        return True
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        return False
    try:
        pc.strptime(column.slice(0, 100), format="%Y-%m-%dT%H:%M:%S", unit="ns", error_is_null=False)
    except pa.ArrowException:
        return _iso_text(column)
    return True


def _iso_text(column: pa.ChunkedArray) -> bool:
    sample = [v for v in column.slice(0, 100).to_pylist() if v is not None]
    try:
        return bool(sample) and all(np.datetime64(v.replace(" ", "T", 1)) is not None for v in sample)
    except ValueError:
        return False


def _as_datetimes(column: pa.ChunkedArray, label: str, name: str) -> npt.NDArray[np.datetime64]:
    kind = column.type
    if column.null_count:
        raise DataError(
            f"{name}: the timestamp column {label!r} has {column.null_count} empty cells; fill or drop those rows"
        )
    try:
        if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
            return np.asarray(
                pc.cast(column, pa.timestamp("ns")).to_numpy(zero_copy_only=False), dtype="datetime64[ns]"
            )
        if pa.types.is_string(kind) or pa.types.is_large_string(kind):
            return np.array([v.replace(" ", "T", 1) for v in column.to_pylist()], dtype="datetime64[ns]")
    except (ValueError, pa.ArrowException) as exc:
        raise DataError(f"{name}: the column {label!r} holds values that are not ISO 8601 timestamps ({exc})") from None
    raise DataError(
        f"{name}: the column {label!r} ({kind}) is not timestamps; name the timestamp column with --time-column"
    )


def _numeric(kind: pa.DataType) -> bool:
    return bool(
        pa.types.is_integer(kind)
        or pa.types.is_floating(kind)
        or pa.types.is_boolean(kind)
        or pa.types.is_decimal(kind)
    )


# ---------------------------------------------------------------------------------------- pandas


def _is_pandas(X: Any) -> bool:
    return type(X).__module__.startswith("pandas") and hasattr(X, "to_numpy")


def _from_pandas(X: Any, time_column: str | None, name: str) -> SeriesData:
    import pandas as pd

    if isinstance(X, pd.Series):
        X = X.to_frame(name=str(X.name) if X.name is not None else "x0")
    stamps = None
    times = None
    frame = X
    if time_column is not None:
        if time_column not in frame.columns:
            raise DataError(
                f"{name} has no column {time_column!r}; its columns are {', '.join(map(str, frame.columns))}"
            )
        times = time_column
    else:
        found = [c for c in frame.columns if pd.api.types.is_datetime64_any_dtype(frame[c])]
        if len(found) > 1:
            raise DataError(
                f"{name} has several datetime columns ({', '.join(map(str, found))}); pick one with time_column="
            )
        times = found[0] if found else None
    if times is not None:
        try:
            stamps = pd.to_datetime(frame[times]).to_numpy(dtype="datetime64[ns]")
        except (ValueError, TypeError) as exc:
            raise DataError(f"{name}: the column {times!r} is not timestamps ({exc})") from None
        frame = frame.drop(columns=[times])
    elif isinstance(frame.index, pd.DatetimeIndex):
        stamps = frame.index.to_numpy(dtype="datetime64[ns]")
    non_numeric = [str(c) for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    if non_numeric:
        raise DataError(f"{name}: column {non_numeric[0]!r} is not numeric; a series holds numeric value columns")
    if frame.shape[1] == 0:
        raise DataError(f"{name} has no value column besides the timestamps")
    values = frame.to_numpy(dtype=np.float64, na_value=np.nan)
    return _checked(values, stamps, tuple(str(c) for c in frame.columns), None if times is None else str(times), name)


# ---------------------------------------------------------------------------------------- checks


def _checked(
    values: npt.NDArray[Any],
    stamps: npt.NDArray[np.datetime64] | None,
    columns: tuple[str, ...],
    time_column: str | None,
    name: str,
) -> SeriesData:
    """Sorted by time, float32 and finite, or DataError naming the first bad cell."""
    if len(values) == 0:
        raise DataError(f"{name} has no rows; a series needs values")
    if stamps is not None:
        if np.isnat(stamps).any():
            raise DataError(f"{name}: timestamp {int(np.flatnonzero(np.isnat(stamps))[0])} is missing (NaT)")
        order = np.argsort(stamps, kind="stable")
        if (np.diff(order) != 1).any():
            values, stamps = values[order], stamps[order]
    bad = ~np.isfinite(values)
    if bad.any():
        row, col = (int(v) for v in np.argwhere(bad)[0])
        where = f"at {stamps[row]}" if stamps is not None else f"in row {row}"
        raise DataError(
            f"{name} has {int(bad.sum())} missing or infinite values (the first {where}, column {columns[col]!r}); "
            "fill them (interpolate) or drop those rows"
        )
    return SeriesData(values.astype(np.float32), stamps, columns, time_column, name)


def _take(data: SeriesData, rows: slice, name: str) -> SeriesData:
    values = data.values[rows]
    if len(values) == 0:
        raise DataError(f"{name} selects no rows: the series has {len(data.values)}; choose start and stop within it")
    stamps = None if data.timestamps is None else data.timestamps[rows]
    return data._replace(values=values, timestamps=stamps)


def _duration(nanoseconds: int) -> str:
    seconds = nanoseconds / 1e9
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:g} {unit}"
    return f"{seconds:g} s"


def write_series_table(
    path: str | os.PathLike[str],
    timestamps: npt.NDArray[np.datetime64] | None,
    columns: dict[str, npt.NDArray[Any]],
    *,
    time_column: str = "timestamp",
    overwrite: bool = True,
) -> None:
    """Write per-timestamp columns beside their timestamps to a .csv or .parquet file, atomically.

    Without timestamps the first column holds the positions 0, 1, 2, ...; in a CSV file timestamps are
    ISO 8601 text (``2014-01-01T00:05:00``), in Parquet a timestamp column.
    """
    from isthmus._files import atomic_open, atomic_path
    from isthmus.errors import OutputError

    target = Path(path)
    suffix = target.suffix.lower()
    if suffix not in _TABLES:
        raise OutputError(f"{path}: per-timestamp results are written as .csv or .parquet; name the output so")
    n = len(next(iter(columns.values())))
    if timestamps is None:
        stamps: pa.Array = pa.array(np.arange(n, dtype=np.int64))
    elif suffix == ".csv":
        stamps = pa.array(np.datetime_as_string(timestamps, unit="s"))
    else:
        stamps = pa.array(timestamps)
    table = pa.table({time_column: stamps, **{k: pa.array(v) for k, v in columns.items()}})
    if suffix == ".csv":
        with atomic_open(target, overwrite=overwrite) as fh:
            pa_csv.write_csv(table, fh)
    else:
        with atomic_path(target, overwrite=overwrite) as tmp:
            pq.write_table(table, tmp)
