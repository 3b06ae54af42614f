"""The report's figure of a series model: the series, its reconstruction, the score and the flagged stretches.

One figure, three panels sharing the time axis (the timestamps when the series has them, else positions):

1. each channel (up to ``MAX_CHANNELS``) and its reconstruction (``Autoencoder.reconstruct``), the flagged
   stretches shaded;
2. the per-timestamp anomaly score ``-score_samples`` (higher is more anomalous) with the threshold
   ``-offset_``; the stretches above it shaded;
3. labelled anomalies, when labels (one per timestamp) are given, as a band under the score.

Long series are drawn at most ``MAX_POINTS`` points wide: each pixel column shows the extremes of its
timestamps (an envelope), so a one-timestamp spike stays visible.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from isthmus._optional import import_optional
from isthmus.data.series import SeriesData
from isthmus.errors import EncoderOnlyError

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: channels drawn (the first ones)
MAX_CHANNELS = 4
#: points per drawn line: longer series are drawn as the min/max envelope of equal bins
MAX_POINTS = 4000


def series_over_time(ae: Any, data: SeriesData, labels: npt.NDArray[Any] | None) -> Figure | str:
    """The series (and its reconstruction), the per-timestamp score with the threshold, flagged stretches shaded."""
    scores = -np.asarray(ae.score_samples(data), dtype=np.float64)  # higher = more anomalous
    threshold = -float(ae.offset_)
    try:
        recon: npt.NDArray[np.float32] | None = ae.reconstruct(data)
    except EncoderOnlyError:
        recon = None
    time: npt.NDArray[Any] = data.timestamps if data.timestamps is not None else np.arange(len(data.values))
    flagged = scores > threshold
    channels = min(MAX_CHANNELS, data.values.shape[1])
    panels = channels + 1 + (labels is not None)
    figure_module = import_optional("matplotlib.figure", extra="report", feature="the report")
    fig: Figure = figure_module.Figure(figsize=(11.0, 1.9 * panels + 0.6), dpi=100, layout="constrained")
    axes = fig.subplots(panels, 1, sharex=True, squeeze=False)[:, 0]
    for c in range(channels):
        ax = axes[c]
        _line(ax, time, data.values[:, c], "tab:blue", data.columns[c])
        if recon is not None:
            _line(ax, time, recon[:, c], "tab:orange", "reconstruction")
        _shade(ax, time, flagged)
        ax.set_ylabel(data.columns[c])
        ax.legend(loc="upper right", fontsize="small")
    ax = axes[channels]
    _line(ax, time, scores, "tab:green", "-score_samples")
    ax.axhline(threshold, color="tab:red", linestyle="--", label=f"threshold -offset_ = {threshold:.4g}")
    _shade(ax, time, flagged)
    ax.set_ylabel("anomaly score")
    ax.legend(loc="upper right", fontsize="small")
    if labels is not None:
        ax = axes[-1]
        ax.fill_between(time, 0, np.asarray(labels, dtype=float), step="mid", color="tab:purple", alpha=0.6)
        ax.set_ylabel("labelled")
        ax.set_yticks([])
    shown = "" if channels == data.values.shape[1] else f" (first {channels} of {data.values.shape[1]} channels)"
    axes[0].set_title(
        f"{data.name}{shown}: {int(flagged.sum())} of {len(scores)} timestamps flagged, in "
        f"{_runs(flagged)} stretches (shaded)"
    )
    return fig


def _line(ax: Axes, time: npt.NDArray[Any], y: npt.NDArray[Any], color: str, label: str) -> None:
    """``y`` over ``time``, as a min/max envelope of MAX_POINTS bins when longer."""
    if len(y) <= MAX_POINTS:
        ax.plot(time, y, color=color, linewidth=0.8, label=label)
        return
    edges = np.linspace(0, len(y), MAX_POINTS + 1).astype(np.int64)
    low = np.minimum.reduceat(y, edges[:-1])
    high = np.maximum.reduceat(y, edges[:-1])
    ax.fill_between(time[edges[:-1]], low, high, color=color, linewidth=0.6, label=label, alpha=0.8)


def _shade(ax: Axes, time: npt.NDArray[Any], flagged: npt.NDArray[np.bool_]) -> None:
    """Shade the stretches of flagged timestamps."""
    padded = np.concatenate([[False], flagged, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    for start, stop in zip(edges[::2], edges[1::2] - 1, strict=True):
        ax.axvspan(time[start], time[stop], color="tab:red", alpha=0.15, linewidth=0)


def _runs(flagged: npt.NDArray[np.bool_]) -> int:
    return int((np.diff(np.concatenate([[0], flagged.astype(np.int8)])) == 1).sum())
