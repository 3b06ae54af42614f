"""Windows and timestamps: cutting a series into overlapping windows, and mapping window results back.

A model made with ``window=W`` sees a series ``(n_timestamps, n_channels)`` as the windows that start at
``0, stride, 2 * stride, ...`` and, so that every timestamp is covered, one more that ends at the last
timestamp: window ``k`` holds the timestamps ``starts[k] .. starts[k] + W - 1`` and is stamped with its
*end* timestamp, ``starts[k] + W - 1`` (the moment its last value arrived). A window is a sample of shape
``(n_channels, W)``: channels first, as ``torch.nn.Conv1d`` takes it.

Back to timestamps:

- a score per timestamp is the **mean of the scores of the windows that cover it** (:func:`per_timestamp`).
  Timestamp ``t`` lies in the windows starting at ``t - W + 1 .. t`` (those that exist): ``W / stride``
  of them in the middle of a series, fewer near both ends, down to one for the first and the last
  timestamp, so the first ``W - 1`` timestamps get scores from the windows that reach them rather than
  none. A spike at ``t`` raises the score of the ``2W - 1`` timestamps around it, with the peak at ``t``;
  a stretch of odd values raises it a little before and after the stretch;
- a series from windows (a reconstruction) is the mean, at each timestamp, of the values that the
  covering windows give it (:func:`overlap_mean`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import numpy.typing as npt

from isthmus import scoring
from isthmus.data.series import as_series
from isthmus.errors import ConfigError, DataError
from isthmus.scaling import Scaler, fit_scaler
from isthmus.shapes import any_length

if TYPE_CHECKING:
    from isthmus.fitted import Fitted


class Windows(NamedTuple):
    """A series cut into windows.

    Attributes
    ----------
    x : ndarray of shape (n_windows, n_channels, window)
        A view of the series where possible (no copy for stride 1).
    starts : ndarray of shape (n_windows,), int64
        The position of each window's first timestamp; its end is ``starts + window - 1``.
    n_timestamps : int
    """

    x: npt.NDArray[np.float32]
    starts: npt.NDArray[np.int64]
    n_timestamps: int

    @property
    def window(self) -> int:
        return int(self.x.shape[-1])

    @property
    def ends(self) -> npt.NDArray[np.int64]:
        """The position of each window's last timestamp, the one it is stamped with."""
        return self.starts + self.window - 1


def window_starts(n_timestamps: int, window: int, stride: int) -> npt.NDArray[np.int64]:
    """Starts ``0, stride, ...`` and, when the last of them ends early, ``n_timestamps - window``."""
    last = n_timestamps - window
    starts = np.arange(0, last + 1, stride, dtype=np.int64)
    if starts[-1] != last:
        starts = np.append(starts, np.int64(last))
    return starts


def cut(values: npt.NDArray[np.float32], window: int, stride: int, name: str = "the series") -> Windows:
    """Cut ``values`` (n_timestamps, n_channels) into windows (n_windows, n_channels, window).

    Raises
    ------
    DataError
        If the series is shorter than one window.
    """
    n = len(values)
    if n < window:
        raise DataError(
            f"{name} has {n} timestamps, fewer than window={window}; give a longer series or a smaller window"
        )
    starts = window_starts(n, window, stride)
    # sliding_window_view on (n, channels) gives (n - window + 1, channels, window): channels first already
    view = np.lib.stride_tricks.sliding_window_view(values, window, axis=0)
    return Windows(view if stride == 1 else view[starts], starts, n)


def per_timestamp(scores: npt.NDArray[np.float64], windows: Windows) -> npt.NDArray[np.float64]:
    """One value per timestamp: the mean of ``scores`` (n_windows,) over the windows covering it."""
    n, w = windows.n_timestamps, windows.window
    total = np.zeros(n + 1, np.float64)
    count = np.zeros(n + 1, np.float64)
    # each window adds its score to [start, start + w): a difference array, then a running sum
    np.add.at(total, windows.starts, scores)
    np.add.at(total, windows.starts + w, -scores)
    np.add.at(count, windows.starts, 1.0)
    np.add.at(count, windows.starts + w, -1.0)
    return np.cumsum(total)[:n] / np.cumsum(count)[:n]


def overlap_mean(x: npt.NDArray[np.float32], windows: Windows) -> npt.NDArray[np.float32]:
    """A series (n_timestamps, n_channels) from per-window values ``x`` (n_windows, n_channels, window):
    at each timestamp, the mean of the values the covering windows give it."""
    n, w = windows.n_timestamps, windows.window
    total = np.zeros((n, x.shape[1]), np.float64)
    count = np.zeros(n, np.float64)
    for offset in range(w):  # window offset -> the timestamps starts + offset, one add per offset
        np.add.at(total, windows.starts + offset, x[:, :, offset])
        np.add.at(count, windows.starts + offset, 1.0)
    return (total / count[:, None]).astype(np.float32)


class Split(NamedTuple):
    """The windows a series model trains on, and those of the held-out stretch at the series' end."""

    values: npt.NDArray[np.float32]  # (n_train_timestamps, n_channels): the part trained on
    train: Windows
    held_out: Windows | None  # None when the series is too short to hold a window out


def hold_out_end(
    values: npt.NDArray[np.float32], window: int, stride: int, fraction: float, name: str = "the series"
) -> Split:
    """Cut the first ``1 - fraction`` of the timestamps and the last ``fraction`` into windows apart.

    No window straddles the cut, so no held-out timestamp is ever trained on. When either part is
    shorter than a window, nothing is held out.
    """
    n = len(values)
    n_end = round(fraction * n)
    if n_end < window or n - n_end < window:
        return Split(values, cut(values, window, stride, name), None)
    head, end = values[: n - n_end], values[n - n_end :]
    return Split(head, cut(head, window, stride, name), cut(end, window, stride, name))


def channel_scaler(values: npt.NDArray[np.float32], scaling: str, window: int, noise: float = 0.0) -> Scaler:
    """A scaler per channel, fitted on ``values`` (n_timestamps, n_channels), shaped (n_channels, window)
    like one window: every position of a window scales alike, so a window means the same wherever it starts
    (``noise`` as in :func:`isthmus.scaling.with_noise`)."""
    per_channel = fit_scaler(values, scaling, is_image=False, noise=noise)  # offset, scale: (n_channels,)
    return Scaler(
        offset=np.repeat(per_channel.offset[:, None], window, axis=1),
        scale=np.repeat(per_channel.scale[:, None], window, axis=1),
    )


# ---------------------------------------------------------------------------------------- a fitted series model


def training_split(X: object, window: int, stride: int, fraction: float) -> Split:
    """The training series ``X`` (anything :func:`isthmus.data.series.as_series` reads) cut for ``fit``."""
    data = as_series(X)
    return hold_out_end(data.values, window, stride, fraction, data.name)


def window_of(state: Fitted) -> int:
    """The window length the fitted series model ``state`` cuts series into now.

    A fully convolutional model (``architecture="conv1d"``, ``fully_convolutional=True``) takes windows of
    any length: it cuts at its current ``window`` parameter, so ``set_params(window=...)`` after ``fit``
    scores, reconstructs and encodes with longer or shorter windows, no refit. Any other network takes
    the training length only, and a changed ``window`` is refused.
    """
    trained, window = state.input_shape[1], state.param("window")
    if window != trained and not state.spatial:
        raise ConfigError(
            f"window={window}, but this model was trained on windows of {trained} and its network takes no other "
            f"length; set window={trained}, or train with architecture='conv1d' and fully_convolutional=True, "
            "which takes windows of any length"
        )
    return int(window)


def windows_of(state: Fitted, X: object) -> Windows:
    """The windows of a series ``X`` as the fitted series model ``state`` cuts them (:func:`window_of`)."""
    data = as_series(X)
    channels = state.input_shape[0]
    if data.values.shape[1] != channels:
        raise DataError(
            f"{data.name} has {data.values.shape[1]} channels, but this model was trained on a series of "
            f"{channels}; pass a series like the training one"
        )
    return cut(data.values, window_of(state), state.param("window_stride"), data.name)


def scaled_windows(state: Fitted, windows: Windows) -> npt.NDArray[np.float32]:
    """``windows.x`` in the network's units: each channel's offset and scale, windows of any length."""
    return any_length(state.scaler).transform(windows.x)


def score_series(state: Fitted, windows: Windows, anomaly_score: str) -> npt.NDArray[np.float64]:
    """``(n_timestamps,)`` scores, higher for normal timestamps: each window scored, then
    :func:`per_timestamp`."""
    if scoring.SCORES[anomaly_score].fit is not None and windows.window != state.input_shape[1]:
        # the score compares codes with the training windows' codes: a code map of another length is not one
        raise ConfigError(
            f"anomaly_score={anomaly_score!r} compares each window's code with the training windows' codes, so it "
            f"needs windows of the training length {state.input_shape[1]}, not {windows.window}; set "
            f"window={state.input_shape[1]}, or use anomaly_score='reconstruction'"
        )
    return per_timestamp(scoring.score_samples(state, scaled_windows(state, windows), anomaly_score), windows)


def reconstruct_series(state: Fitted, windows: Windows) -> npt.NDArray[np.float32]:
    """``(n_timestamps, n_channels)``: the windows' reconstructions put back with :func:`overlap_mean`."""
    state.check_decoder("reconstruct")
    state.net.eval()
    out = state.batched(state.net, scaled_windows(state, windows))  # (n_windows, n_channels, window) scaled
    return overlap_mean(any_length(state.scaler).inverse_transform(out), windows)


def held_out_offset(state: Fitted, split: Split, anomaly_score: str, contamination: float | str) -> float:
    """The threshold ``offset_`` from the per-timestamp scores of the held-out end of the training series
    (of the training windows when none was held out), by ``contamination`` as for rows."""
    windows = split.train if split.held_out is None else split.held_out
    negative_error = scoring.SCORES[anomaly_score].negative_error
    return scoring.threshold(score_series(state, windows, anomaly_score), contamination, negative_error=negative_error)


def early_stopping_windows(split: Split, scaler: Scaler, early_stopping: bool) -> npt.NDArray[np.float32] | None:
    """The scaled held-out windows that early stopping watches (never windows interleaved with training ones)."""
    if split.held_out is None or not early_stopping:
        return None
    return scaler.transform(split.held_out.x)
