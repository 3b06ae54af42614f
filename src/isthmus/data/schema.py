"""The column schema of a table: which columns, in which order, of which kind, with which levels.

A table reaches isthmus as a pandas DataFrame, an Arrow table (a CSV or Parquet file is read into one),
or a 2-D NumPy array (numbers, or objects such as strings). :func:`infer_schema` reads the kind of each
column from its type:

- numbers (integers, floats, decimals) are **numeric**;
- text, pandas ``category``, Arrow dictionaries and booleans are **categorical**, with the levels seen
  in training (text stripped of surrounding spaces);
- ``categorical_features=[names]`` makes the named columns categorical whatever their type (numbers
  become levels written as text: ``3.0`` is the level ``"3"``).

Missing cells (NaN, None, null, an empty or blank text cell) are allowed in every column.

:meth:`Schema.encode` turns a table into the network's numeric input, one row per row: a numeric column
is one value, a categorical column one value per level (a one-hot block); a missing cell is NaN (every
value of its block for a categorical one). :meth:`Schema.decode` turns such rows back into columns with
the original names: numbers, and levels for the categorical columns (the level of highest value).

Later tables are matched to the schema by column name (:meth:`Schema.align`): columns in another order
are reordered, a missing column is refused naming it, and extra columns are dropped with a warning
(a label column such as ``income`` left in a file to score is the usual case). Tables without names
(NumPy arrays) are matched by position. A level not seen in training is read as a missing cell, with a
``UserWarning`` naming the column, the levels and how many cells: a rare level that the training rows
lacked (a country seen once) must not stop the scoring of a whole file, and the model has nothing to
say about a level it never saw; ``impute`` fills such a cell with a known level.

The schema is stored in the model file as JSON (docs/format.md, section 2.2, key ``columns``).
pandas is optional: DataFrames are read by duck typing, and outputs come back as the kind of table
given (a DataFrame for a DataFrame, an Arrow table for an Arrow table, an array for an array).
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from isthmus.errors import DataError

#: the column kinds; ``columns.HEADS`` and the model's loss have one entry per kind
KINDS = ("numeric", "categorical")
#: how the table head measures a categorical cell (``columns.CATEGORICAL_LOSSES`` has one entry per name).
#: A schema records its own: ``"cross_entropy"`` for files written before the name was stored (the key is
#: then absent), :data:`CATEGORICAL_LOSS` for every schema inferred now
CATEGORICAL_LOSSES = ("cross_entropy", "brier")
CATEGORICAL_LOSS = "brier"
#: most levels a categorical column may have: more is almost always an identifier or free text
MAX_LEVELS = 1000
#: a text column whose cells are numbers of more than this many distinct values, but for a few cells of
#: text (at most ``STRAY_SHARE`` of them: a "n/d" marker, a typo), is refused as ambiguous rather than read
#: as a categorical column of that many levels, one per number
NUMBER_LEVELS = 20
STRAY_SHARE = 0.1
#: version of the JSON form (``Schema.to_json``)
SCHEMA_VERSION = 1
_ROWS_NAMED = 5


@dataclass(frozen=True)
class Column:
    """One column: its name, kind, the type it was read with, and (categorical) its levels and their counts."""

    name: str
    kind: str
    dtype: str
    levels: tuple[str, ...] = ()
    counts: tuple[int, ...] = ()  # training rows per level, in the order of ``levels``

    @property
    def width(self) -> int:
        """Values of this column in the network's input: 1, or one per level."""
        return 1 if self.kind == "numeric" else len(self.levels)

    def entropy(self) -> float:
        """Entropy in nats of the training distribution of the levels (0 for a numeric column)."""
        total = sum(self.counts)
        if self.kind == "numeric" or total == 0:
            return 0.0
        return -sum(c / total * math.log(c / total) for c in self.counts if c > 0)


@dataclass(frozen=True)
class Schema:
    """The columns of a table, in order.

    Attributes
    ----------
    columns : tuple of Column
    named : bool
        The names came from the data (a DataFrame, an Arrow table, a file's header), so later tables are
        matched by name; otherwise the names are ``x0, x1, ...`` and tables are matched by position.
    missing_mask : bool
        The network sees which cells are missing (set at fit time: a categorical column, or a missing
        cell in the training data).
    categorical_loss : str
        How the network's loss measures a categorical cell, one of ``CATEGORICAL_LOSSES``
        (:mod:`isthmus.columns`): :data:`CATEGORICAL_LOSS` for a schema inferred now, ``"cross_entropy"``
        for one read from a file written before the name was stored.
    """

    columns: tuple[Column, ...]
    named: bool
    missing_mask: bool = False
    categorical_loss: str = "cross_entropy"

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def width(self) -> int:
        """Values per row of the network's input (:meth:`encode`)."""
        return sum(c.width for c in self.columns)

    @property
    def categorical(self) -> bool:
        """Whether any column is categorical."""
        return any(c.kind == "categorical" for c in self.columns)

    def starts(self) -> list[int]:
        """The position of each column's first value in the network's input."""
        out, at = [], 0
        for column in self.columns:
            out.append(at)
            at += column.width
        return out

    def level_positions(self) -> npt.NDArray[np.bool_]:
        """``(width,)``: True at the values of categorical columns (the one-hot blocks)."""
        flags = np.zeros(self.width, dtype=bool)
        for column, start in zip(self.columns, self.starts(), strict=True):
            if column.kind == "categorical":
                flags[start : start + column.width] = True
        return flags

    # ---------------------------------------------------------------------------------------- using

    def align(self, X: Any, name: str = "X") -> list[RawColumn]:
        """The columns of ``X`` in this schema's order, matched by name when both have names.

        Raises
        ------
        DataError
            If a column of the schema is missing from ``X``, or (matching by position) ``X`` has another
            number of columns. Extra named columns are dropped with a ``UserWarning``.
        """
        given = read_columns(X, name)
        given_names = [c.name for c in given]
        if self.named and given_names[0] is not None:
            by_name = {c.name: c for c in given}
            missing = [n for n in self.names if n not in by_name]
            if missing:
                shown = ", ".join(map(repr, missing[:5])) + (", ..." if len(missing) > 5 else "")
                raise DataError(
                    f"{name} lacks the column(s) {shown} that the model was trained on; its columns are "
                    f"{_shorten(given_names)}; give every training column (in any order), with missing cells "
                    "left empty"
                )
            extra = [n for n in given_names if n not in set(self.names)]
            if extra:
                warnings.warn(
                    f"{name} has column(s) {_shorten(extra)} that the model was not trained on; they are ignored",
                    UserWarning,
                    stacklevel=3,
                )
            return [by_name[n] for n in self.names]
        if len(given) != len(self.columns):
            raise DataError(
                f"X has {len(given)} features, but the model is expecting {len(self.columns)} features as input: "
                f"it was trained on the columns {_shorten(self.names)}; pass data like the training data"
            )
        return given

    def encode(self, columns: Sequence[RawColumn], name: str = "X") -> npt.NDArray[np.float32]:
        """``(n_rows, width)`` float32: the network's input for aligned columns, NaN for missing cells.

        Raises
        ------
        DataError
            If a numeric column holds text or infinity, or a row has every cell missing (a level not seen
            in training is a missing cell, with a warning).
        """
        n = len(columns[0].values)
        out = np.empty((n, self.width), dtype=np.float32)
        missing = np.ones(n, dtype=bool)  # rows with every cell missing so far
        for column, raw, start in zip(self.columns, columns, self.starts(), strict=True):
            if column.kind == "numeric":
                values = raw.as_numbers(name)
                out[:, start] = values
                missing &= np.isnan(values)
                continue
            index = _level_index(raw.as_levels(), column, name)  # (n,), -1 for missing
            block = out[:, start : start + column.width]
            block[:] = 0.0
            block[index < 0] = np.nan
            seen = np.flatnonzero(index >= 0)
            block[seen, index[seen]] = 1.0
            missing &= index < 0
        check_rows(missing, name)
        return out

    def decode(self, wide: npt.NDArray[np.floating[Any]]) -> dict[str, npt.NDArray[Any]]:
        """Columns by name from ``(n_rows, width)`` values: numbers, and for a categorical column the level
        of the highest value of its block (an object array of text, or of booleans for a boolean column)."""
        out: dict[str, npt.NDArray[Any]] = {}
        for column, start in zip(self.columns, self.starts(), strict=True):
            if column.kind == "numeric":
                out[column.name] = wide[:, start]
                continue
            block = wide[:, start : start + column.width]
            levels = np.array(_typed_levels(column), dtype=object)
            out[column.name] = levels[np.argmax(np.nan_to_num(block, nan=-np.inf), axis=1)]
        return out

    def errors(self, wide: npt.NDArray[np.float32], x: npt.NDArray[np.float32]) -> dict[str, npt.NDArray[np.float32]]:
        """Per column, the error of the reconstruction ``wide`` of the encoded rows ``x`` (both ``(n, width)``):
        the squared error of a numeric value, ``-log p`` (nats) of a categorical cell's level under the
        reconstruction's probabilities; NaN where ``x`` is missing."""
        out: dict[str, npt.NDArray[np.float32]] = {}
        tiny = np.finfo(np.float32).tiny
        for column, start in zip(self.columns, self.starts(), strict=True):
            if column.kind == "numeric":
                out[column.name] = np.square(wide[:, start] - x[:, start])
                continue
            block, truth = wide[:, start : start + column.width], x[:, start : start + column.width]
            p = np.nansum(block * np.nan_to_num(truth, nan=0.0), axis=1)  # probability of the given level
            out[column.name] = np.where(np.isnan(truth[:, 0]), np.nan, -np.log(np.maximum(p, tiny))).astype(np.float32)
        return out

    def fill(self, columns: Sequence[RawColumn], wide: npt.NDArray[np.float32]) -> dict[str, npt.NDArray[Any]]:
        """The aligned ``columns`` with each missing cell taken from the reconstruction ``wide`` ``(n, width)``."""
        decoded = self.decode(wide)
        out: dict[str, npt.NDArray[Any]] = {}
        for column, raw in zip(self.columns, columns, strict=True):
            if column.kind == "numeric":
                given = raw.as_numbers("X")
                out[column.name] = np.where(np.isnan(given), decoded[column.name], given)
                continue
            texts = raw.as_levels()
            typed = dict(zip(column.levels, _typed_levels(column), strict=True))
            values = decoded[column.name].copy()
            for row, text in enumerate(texts):
                if text is not None:
                    values[row] = typed.get(text, text)
            out[column.name] = values
        return out

    # ---------------------------------------------------------------------------------------- files

    def to_json(self) -> str:
        """The JSON form stored in the model file (docs/format.md, section 2.2)."""
        columns = []
        for c in self.columns:
            entry: dict[str, Any] = {"name": c.name, "kind": c.kind, "dtype": c.dtype}
            if c.kind == "categorical":
                entry["levels"] = list(c.levels)
                entry["counts"] = list(c.counts)
            columns.append(entry)
        body: dict[str, Any] = {"version": SCHEMA_VERSION, "named": self.named, "missing_mask": self.missing_mask}
        if self.categorical_loss != "cross_entropy":  # absent: the loss of files written before it was stored
            body["categorical_loss"] = self.categorical_loss
        body["columns"] = columns
        return json.dumps(body, ensure_ascii=True, separators=(", ", ": "))

    @staticmethod
    def from_json(text: str) -> Schema:
        """Parse :meth:`to_json`'s form; ValueError naming what is wrong."""
        body = json.loads(text)
        if not isinstance(body, dict) or body.get("version") != SCHEMA_VERSION:
            raise ValueError(f"it must be an object with version {SCHEMA_VERSION}")
        named, mask, raw = body.get("named"), body.get("missing_mask"), body.get("columns")
        if not isinstance(named, bool) or not isinstance(mask, bool) or not isinstance(raw, list) or not raw:
            raise ValueError('it needs "named" and "missing_mask" (booleans) and a non-empty list "columns"')
        columns = []
        for entry in raw:
            if not isinstance(entry, dict) or entry.get("kind") not in KINDS:
                raise ValueError(f"each column needs a kind, one of {', '.join(KINDS)}")
            name, dtype = entry.get("name"), entry.get("dtype")
            if not isinstance(name, str) or not isinstance(dtype, str):
                raise ValueError("each column needs a text name and dtype")
            levels, counts = entry.get("levels", []), entry.get("counts", [])
            if entry["kind"] == "categorical" and not (
                isinstance(levels, list)
                and isinstance(counts, list)
                and 1 <= len(levels) <= MAX_LEVELS
                and len(counts) == len(levels)
                and all(isinstance(v, str) for v in levels)
                and len(set(levels)) == len(levels)
                and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in counts)
            ):
                raise ValueError(
                    f"column {name!r}: levels must be 1 to {MAX_LEVELS} distinct texts, counts as many integers >= 0"
                )
            columns.append(Column(name, entry["kind"], dtype, tuple(levels), tuple(counts)))
        if len({c.name for c in columns}) != len(columns):
            raise ValueError("column names must be distinct")
        loss = body.get("categorical_loss", "cross_entropy")
        if loss not in CATEGORICAL_LOSSES:
            raise ValueError(f"categorical_loss must be one of {', '.join(CATEGORICAL_LOSSES)}")
        return Schema(tuple(columns), named, mask, loss)


def check_rows(missing: npt.NDArray[np.bool_], name: str = "X") -> None:
    """Refuse rows with every cell missing (``missing``: ``(n_rows,)`` True for such a row), naming them."""
    if missing.any():
        rows = np.flatnonzero(missing)
        shown = ", ".join(str(int(r)) for r in rows[:_ROWS_NAMED]) + (" ..." if len(rows) > _ROWS_NAMED else "")
        raise DataError(
            f"{name} has rows with every cell missing: {shown} (counting from 0); there is nothing to "
            "encode in them, so drop those rows"
        )


def numeric_schema(n_features: int) -> Schema:
    """The schema of an unnamed all-numeric table (a model file written before schemas were stored)."""
    return Schema(tuple(Column(f"x{j}", "numeric", "float32") for j in range(n_features)), named=False)


# ---------------------------------------------------------------------------------------- reading columns


@dataclass(frozen=True)
class RawColumn:
    """A column as read from the caller's table: float64 numbers (NaN missing), or texts (None missing)."""

    name: str | None
    kind: str  # the kind its type suggests
    dtype: str
    values: npt.NDArray[Any]  # float64 for "numeric", object (str or None) for "categorical"

    def as_numbers(self, table: str) -> npt.NDArray[np.float64]:
        """The values as float64, NaN for missing; texts must be numbers."""
        if self.kind == "numeric":
            values = self.values
        else:
            values = np.empty(len(self.values), dtype=np.float64)
            for row, text in enumerate(self.values):
                try:
                    values[row] = np.nan if text is None else float(text)
                except ValueError:
                    raise DataError(
                        f"{table}: column {self.name!r} is numeric in the model, but row {row} holds {text[:40]!r}; "
                        "give numbers (an empty cell for a missing one)"
                    ) from None
        if np.isinf(values).any():
            row = int(np.flatnonzero(np.isinf(values))[0])
            raise DataError(f"{table}: column {self.name!r} holds an infinite value in row {row}; give finite numbers")
        return values

    def as_levels(self) -> npt.NDArray[np.object_]:
        """The values as level texts, None for missing (numbers written without a trailing ``.0``)."""
        if self.kind == "categorical":
            return self.values
        return np.array([None if math.isnan(v) else _number_text(v) for v in self.values], dtype=object)


def read_columns(X: Any, name: str = "X") -> list[RawColumn]:
    """The columns of a DataFrame, an Arrow table or a 2-D array, each as a :class:`RawColumn`.

    Raises
    ------
    DataError
        If ``X`` has no rows or no columns, duplicate column names, or a column of a type that is neither
        numbers, text, categories nor booleans.
    """
    if isinstance(X, pa.Table):
        columns = [_arrow_column(n, c, name) for n, c in zip(X.column_names, X.columns, strict=True)]
    elif _is_dataframe(X):
        columns = [_pandas_column(str(n), X.iloc[:, j], name) for j, n in enumerate(X.columns)]
    else:
        array = np.asarray(X)
        if array.ndim != 2:
            raise DataError(f"{name} must be a table (n_rows, n_columns); got an array of shape {array.shape}")
        columns = [_array_column(array[:, j]) for j in range(array.shape[1])]
    if not columns:
        raise DataError(f"{name} has no columns; give at least one")
    if len(columns[0].values) == 0:
        raise DataError(f"{name} has 0 sample(s) (shape (0, {len(columns)})); give at least one row")
    names = [c.name for c in columns]
    if names[0] is not None and len(set(names)) != len(names):
        twice = sorted({str(n) for n in names if names.count(n) > 1})
        raise DataError(f"{name} has the column name(s) {_shorten(twice)} more than once; give distinct names")
    return columns


def numeric_table(X: Any) -> npt.NDArray[np.float32]:
    """A table whose every column is numeric as a float32 array ``(n_rows, n_columns)``, NaN for missing."""
    return np.column_stack([c.as_numbers("X") for c in read_columns(X)]).astype(np.float32)


def is_table(X: Any) -> bool:
    """Whether ``X`` is a DataFrame or an Arrow table (a table with named, typed columns)."""
    return isinstance(X, pa.Table) or _is_dataframe(X)


def needs_schema_path(X: Any) -> bool:
    """Whether ``X`` must be read column by column: a DataFrame or Arrow table with a column that is not
    numbers, or a 2-D array of texts or other objects that are not all numbers."""
    if isinstance(X, pa.Table):
        return True
    if _is_dataframe(X):
        return not all(getattr(dtype, "kind", "O") in "iuf" for dtype in X.dtypes)
    if isinstance(X, np.ndarray) and X.dtype.kind in "OUS":
        try:
            np.asarray(X, dtype=np.float64)
        except ValueError:  # text that is no number: categorical columns (a TypeError stays scikit-learn's)
            return True
    return False


def infer_schema(columns: Sequence[RawColumn], categorical_features: Sequence[str] | None = None) -> Schema:
    """The schema of training columns: kinds from their types, ``categorical_features`` forced categorical.

    Raises
    ------
    DataError
        If a column has no value at all, or a categorical column more than ``MAX_LEVELS`` levels.
    ConfigError
        If ``categorical_features`` names a column the data does not have.
    """
    from isthmus.errors import ConfigError

    named = columns[0].name is not None
    names = [str(c.name) if named else f"x{j}" for j, c in enumerate(columns)]
    forced = list(categorical_features or ())
    unknown = [f for f in forced if f not in names]
    if unknown:
        raise ConfigError(
            f"categorical_features names {_shorten(unknown)}, which the data does not have; its columns are "
            f"{_shorten(names)}"
        )
    out = []
    for column_name, raw in zip(names, columns, strict=True):
        kind = "categorical" if column_name in forced else raw.kind
        if kind == "numeric":
            values = raw.as_numbers("the training data")
            if np.isnan(values).all():
                raise DataError(f"column {column_name!r} has no value in the training data; drop it")
            out.append(Column(column_name, "numeric", raw.dtype))
            continue
        texts = raw.as_levels()
        present = np.array([t for t in texts if t is not None], dtype=object)
        if len(present) == 0:
            raise DataError(f"column {column_name!r} has no value in the training data; drop it")
        levels, counts = np.unique(present.astype(str), return_counts=True)
        if column_name not in forced and raw.dtype == "string":
            _refuse_stray_text(column_name, texts, levels, counts)
        if len(levels) > MAX_LEVELS:
            raise DataError(
                f"column {column_name!r} has {len(levels)} distinct values, more than the {MAX_LEVELS} levels a "
                "categorical column may have; it looks like an identifier or free text: drop it, or give "
                "numbers if it is numeric"
            )
        out.append(Column(column_name, "categorical", raw.dtype, tuple(levels.tolist()), tuple(counts.tolist())))
    return Schema(tuple(out), named=named, categorical_loss=CATEGORICAL_LOSS)


def _refuse_stray_text(
    name: str, texts: npt.NDArray[np.object_], levels: npt.NDArray[np.str_], counts: npt.NDArray[np.int64]
) -> None:
    """Refuse a text column of numbers with a few cells of text, which would become one level per number."""
    number = np.array([is_number(level) for level in levels], dtype=bool)
    stray = int(counts[~number].sum())
    if number.sum() <= NUMBER_LEVELS or stray == 0 or stray > STRAY_SHARE * counts.sum():
        return
    words = set(levels[~number].tolist())
    row = next(i for i, text in enumerate(texts) if text is not None and str(text) in words)
    raise DataError(
        f"column {name!r} holds numbers but for {stray} cell(s) of text ({_shorten(sorted(words))}, first in row "
        f"{row}): make those cells empty if they mark missing values, or name the column in categorical_features "
        "if its values are codes rather than numbers"
    )


def is_number(text: str) -> bool:
    """Whether ``text`` parses as a float."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def as_output(columns: dict[str, npt.NDArray[Any]], like: Any, schema: Schema) -> Any:
    """Per-column results as the kind of table ``like`` is: a DataFrame (with ``like``'s index), an Arrow
    table, or an array (float32 when every column is numeric, else objects). With no ``like`` (decoded
    codes): a table when the schema has names or categories (a DataFrame when pandas is installed, else an
    Arrow table), else an array."""
    if like is None and (schema.named or schema.categorical):
        try:
            import pandas as pd
        except ImportError:
            like = pa.table({})
        else:
            return pd.DataFrame(columns)
    if _is_dataframe(like):
        import pandas as pd

        return pd.DataFrame(columns, index=like.index)
    if isinstance(like, pa.Table):
        return pa.table({n: pa.array(v, from_pandas=True) for n, v in columns.items()})
    values = list(columns.values())
    if all(v.dtype.kind == "f" for v in values):
        return np.column_stack(values).astype(np.float32, copy=False)
    return np.column_stack([v.astype(object) for v in values])


# ---------------------------------------------------------------------------------------- helpers


def _is_dataframe(X: Any) -> bool:
    return type(X).__name__ == "DataFrame" and hasattr(X, "iloc") and hasattr(X, "dtypes")


def _shorten(names: Sequence[str | None], most: int = 8) -> str:
    shown = ", ".join(repr(n) for n in names[:most])
    return shown + (f", ... ({len(names)} in all)" if len(names) > most else "")


def _number_text(value: float) -> str:
    """A number as a level: ``3.0`` -> ``"3"``, ``2.5`` -> ``"2.5"``."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _clean_texts(values: Sequence[Any]) -> npt.NDArray[np.object_]:
    """Texts stripped of surrounding spaces; None, NaN and blank texts become None (missing)."""
    out = np.empty(len(values), dtype=object)
    for row, value in enumerate(values):
        if value is None or (isinstance(value, float) and math.isnan(value)):
            out[row] = None
        elif isinstance(value, (bool, np.bool_)):
            out[row] = str(bool(value))
        elif isinstance(value, (int, float, np.integer, np.floating)):
            out[row] = _number_text(float(value))
        else:
            text = str(value).strip()
            out[row] = text or None
    return out


def _level_index(texts: npt.NDArray[np.object_], column: Column, table: str) -> npt.NDArray[np.int64]:
    """Each text's position among ``column.levels`` (sorted), -1 for missing; DataError for an unseen level."""
    index = np.full(len(texts), -1, dtype=np.int64)
    present = np.flatnonzero(np.array([t is not None for t in texts], dtype=bool))
    if len(present) == 0:
        return index
    values = texts[present].astype(str)
    levels = np.array(column.levels, dtype=str)
    at = np.searchsorted(levels, values).clip(0, len(levels) - 1)
    unseen = levels[at] != values
    if unseen.any():  # read as missing cells: the model has no level to give them, and says so
        rows = present[np.flatnonzero(unseen)]
        found = sorted(set(values[unseen].tolist()))
        warnings.warn(
            f"{table}: column {column.name!r} holds level(s) not seen in training: {_shorten(found, 5)} "
            f"({len(rows)} cell(s), first in row {int(rows[0])}); they are read as missing cells. Its levels: "
            f"{_shorten(list(column.levels))}",
            UserWarning,
            stacklevel=4,
        )
        at[unseen] = -1
    index[present] = at
    return index


def _typed_levels(column: Column) -> list[Any]:
    """The levels as values of the column's type: booleans for a boolean column, else texts."""
    if column.dtype == "bool" and set(column.levels) <= {"True", "False"}:
        return [level == "True" for level in column.levels]
    return list(column.levels)


def _arrow_column(name: str, column: pa.ChunkedArray, table: str) -> RawColumn:
    kind = column.type
    if pa.types.is_dictionary(kind):
        column = column.cast(kind.value_type)
        kind = column.type
        dtype = "category"
    else:
        dtype = str(kind)
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        numbers = pc.fill_null(pc.cast(column, pa.float64(), safe=False), float("nan")).to_numpy()
        return RawColumn(name, "numeric", dtype, np.asarray(numbers, dtype=np.float64))
    if pa.types.is_boolean(kind):
        return RawColumn(name, "categorical", "bool", _clean_texts(column.to_pylist()))
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return RawColumn(
            name, "categorical", "category" if dtype == "category" else "string", _clean_texts(column.to_pylist())
        )
    raise DataError(
        f"{table}: column {name!r} has type {kind}; isthmus reads numbers, text, categories and booleans; "
        "drop the column or convert it"
    )


def _pandas_column(name: str, series: Any, table: str) -> RawColumn:
    dtype = series.dtype
    text = str(dtype)
    if text == "category":
        return RawColumn(name, "categorical", "category", _clean_texts(series.astype(object).tolist()))
    if text in ("bool", "boolean"):
        return RawColumn(name, "categorical", "bool", _clean_texts(series.astype(object).tolist()))
    if getattr(dtype, "kind", "O") in "iuf":
        return RawColumn(name, "numeric", text, series.to_numpy(dtype=np.float64, na_value=np.nan))
    if getattr(dtype, "kind", "O") in "OSU":
        return _array_column(series.to_numpy(dtype=object), name, "string")
    raise DataError(
        f"{table}: column {name!r} has dtype {text}; isthmus reads numbers, text, categories and booleans; "
        "drop the column or convert it"
    )


def _array_column(values: npt.NDArray[Any], name: str | None = None, dtype: str | None = None) -> RawColumn:
    """A column of an array: numbers, or objects that are numbers, text, booleans or None."""
    if values.dtype.kind in "iuf":
        return RawColumn(name, "numeric", dtype or str(values.dtype), values.astype(np.float64))
    if values.dtype.kind == "b":
        return RawColumn(name, "categorical", "bool", _clean_texts(values.tolist()))
    cleaned = _clean_texts(values.tolist())
    originals = [v for v in values.tolist() if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if originals and all(isinstance(v, (bool, np.bool_)) for v in originals):
        return RawColumn(name, "categorical", "bool", cleaned)
    numbers = np.empty(len(cleaned), dtype=np.float64)
    for row, value in enumerate(values.tolist()):
        if cleaned[row] is None:
            numbers[row] = np.nan
            continue
        if isinstance(value, (bool, np.bool_)):
            break
        try:
            numbers[row] = float(value)
        except (TypeError, ValueError):
            break
    else:
        return RawColumn(name, "numeric", dtype or "float64", numbers)
    return RawColumn(name, "categorical", dtype or "string", cleaned)
