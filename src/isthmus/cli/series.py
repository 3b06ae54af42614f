"""The series side of the commands: reading a series with its timestamps, writing per-timestamp scores."""

from __future__ import annotations

import warnings
from typing import Any

import click

from isthmus.errors import ConfigError

time_column_opt = click.option(
    "--time-column",
    default=None,
    help="Series: the timestamp column of DATA (default: the one column of ISO 8601 dates and times).",
)


def check_series_options(window: Any, time_column: str | None, train_until: str | None = None) -> None:
    """Refuse the series options for a model of rows."""
    if window is None and (time_column is not None or train_until is not None):
        flag = "--time-column" if time_column is not None else "--train-until"
        raise ConfigError(f"{flag} is for series models; set --window (or --preset series) to train one")


def read(data: str, time_column: str | None, until: str | None = None) -> Any:
    """DATA as a series; irregular spacing is reported as one ``warning:`` line."""
    from isthmus.data.series import read_series

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        series = read_series(data, time_column=time_column, until=until)
    for warning in caught:
        click.echo(f"warning: {warning.message}", err=True)
    return series


def write_scores(output: str, series: Any, scores: Any, flags: Any, overwrite: bool) -> None:
    """``timestamp,score,flag``, one row per timestamp of ``series``."""
    from isthmus.data.series import write_series_table

    write_series_table(output, series.timestamps, {"score": scores, "flag": flags}, overwrite=overwrite)
    click.echo(f"wrote {output} ({len(scores)} timestamps: timestamp, score, flag)", err=True)


def flagged_stretches(timestamps: Any, flags: Any, limit: int = 5) -> list[str]:
    """The first ``limit`` runs of flagged timestamps, as ``start .. end (n)`` lines."""
    import numpy as np

    flagged = np.concatenate([[False], flags == -1, [False]])
    edges = np.flatnonzero(np.diff(flagged.astype(np.int8)))
    runs = list(zip(edges[::2], edges[1::2] - 1, strict=True))
    label = (lambda i: str(timestamps[i])) if timestamps is not None else str
    return [f"{label(a)} .. {label(b)} ({b - a + 1})" for a, b in runs[:limit]]
