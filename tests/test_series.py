"""Series: reading with timestamps, windows <-> timestamps, and the estimator with ``window=W``."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning

from isthmus import Autoencoder, load
from isthmus.config import PRESETS
from isthmus.data.series import as_series, gap_report, read_series
from isthmus.errors import ConfigError, DataError
from isthmus.nets import ARCHITECTURES, crop_like
from isthmus.series import cut, hold_out_end, overlap_mean, per_timestamp, window_starts

#: a small series model that learns a sine in a few seconds on one thread
SMALL = {"window": 16, "hidden_layer_sizes": (32,), "n_components": 3, "max_iter": 15, "verbose": 0, "random_state": 0}


def sine(n: int = 1200, channels: int = 1, seed: int = 0) -> np.ndarray:
    """(n, channels) float32: sines of period 50 (phase per channel) plus a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)[:, None]
    return (np.sin(2 * np.pi * t / 50 + np.arange(channels)) + 0.05 * rng.normal(size=(n, channels))).astype(np.float32)


def fit_series(x: object, **params: object) -> Autoencoder:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return Autoencoder(**{**SMALL, **params}).fit(x)


# ---------------------------------------------------------------------------------------- windows


@pytest.mark.parametrize(("n", "window", "stride"), [(10, 4, 1), (10, 4, 3), (11, 4, 4), (4, 4, 1), (100, 7, 5)])
def test_windows_cover_every_timestamp_and_the_last_ends_at_the_end(n: int, window: int, stride: int) -> None:
    starts = window_starts(n, window, stride)
    covered = np.zeros(n, int)
    for s in starts:
        covered[s : s + window] += 1
    assert covered.min() >= 1
    assert starts[-1] + window == n
    assert (np.diff(starts) <= stride).all() and (np.diff(starts) > 0).all()


def test_windows_hold_the_series_channels_first() -> None:
    x = np.arange(20, dtype=np.float32).reshape(10, 2)
    w = cut(x, 4, 3)
    assert w.x.shape == (len(w.starts), 2, 4)
    for k, s in enumerate(w.starts):
        np.testing.assert_array_equal(w.x[k], x[s : s + 4].T)
    np.testing.assert_array_equal(w.ends, w.starts + 3)


def test_series_shorter_than_a_window_is_refused() -> None:
    with pytest.raises(DataError, match="fewer than window=8"):
        cut(np.zeros((5, 1), np.float32), 8, 1)


def test_per_timestamp_is_the_mean_over_covering_windows() -> None:
    n, window = 12, 4
    w = cut(np.zeros((n, 1), np.float32), window, 2)
    scores = np.arange(len(w.starts), dtype=np.float64) ** 2
    got = per_timestamp(scores, w)
    for t in range(n):
        covering = [k for k, s in enumerate(w.starts) if s <= t < s + window]
        assert got[t] == pytest.approx(scores[covering].mean())


def test_overlap_mean_of_the_windows_themselves_is_the_series(rng: np.random.Generator) -> None:
    x = rng.normal(size=(50, 3)).astype(np.float32)
    w = cut(x, 7, 3)
    np.testing.assert_allclose(overlap_mean(np.asarray(w.x), w), x, rtol=1e-6)


def test_held_out_end_never_shares_a_timestamp_with_training_windows() -> None:
    x = np.arange(100, dtype=np.float32)[:, None]
    split = hold_out_end(x, 8, 1, 0.2)
    assert split.held_out is not None
    assert split.train.x.max() < split.held_out.x.min()
    assert len(split.values) == 80 and split.held_out.n_timestamps == 20
    assert hold_out_end(x[:12], 8, 1, 0.2).held_out is None  # too short to hold a window out


# ---------------------------------------------------------------------------------------- reading


def test_csv_with_iso_timestamps_is_sorted_and_gaps_are_reported(tmp_path: Path) -> None:
    stamps = pd.date_range("2014-01-01", periods=10, freq="5min").delete([6, 7])  # a 15-minute gap
    frame = pd.DataFrame({"timestamp": stamps.strftime("%Y-%m-%d %H:%M:%S"), "a": np.arange(8.0), "b": -np.arange(8.0)})
    path = tmp_path / "s.csv"
    frame.iloc[::-1].to_csv(path, index=False)  # written newest first
    with pytest.warns(UserWarning, match="1 gaps longer than the usual step of 5 min"):
        data = read_series(path)
    assert data.columns == ("a", "b") and data.time_column == "timestamp"
    np.testing.assert_array_equal(data.values[:, 0], np.arange(8.0))
    assert (np.diff(data.timestamps) > np.timedelta64(0)).all()


def test_row_slice_and_until_cut_the_sorted_series(tmp_path: Path) -> None:
    stamps = pd.date_range("2014-01-01", periods=48, freq="h")
    path = tmp_path / "s.parquet"
    pd.DataFrame({"when": stamps, "v": np.arange(48.0)}).to_parquet(path)
    assert len(read_series(f"{path}[:10]").values) == 10
    data = read_series(path, until="2014-01-02")
    assert len(data.values) == 24 and data.timestamps[-1] < np.datetime64("2014-01-02")


def test_time_column_by_name_and_ambiguity(tmp_path: Path) -> None:
    stamps = pd.date_range("2014-01-01", periods=5, freq="D").strftime("%Y-%m-%d")
    path = tmp_path / "two.csv"
    pd.DataFrame({"t1": stamps, "t2": stamps, "v": np.arange(5.0)}).to_csv(path, index=False)
    with pytest.raises(DataError, match="several timestamp columns"):
        read_series(path)
    with pytest.raises(DataError, match=r"'t2'.*not numeric"):
        read_series(path, time_column="t1")


def test_missing_values_and_text_values_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("timestamp,value\n2014-01-01 00:00:00,1\n2014-01-01 00:05:00,\n")
    with pytest.raises(DataError, match="1 missing or infinite values"):
        read_series(path)


def test_dataframe_with_datetime_index_or_column_and_arrays() -> None:
    stamps = pd.date_range("2014-01-01", periods=6, freq="min")
    by_index = as_series(pd.DataFrame({"v": np.arange(6.0)}, index=stamps))
    by_column = as_series(pd.DataFrame({"at": stamps, "v": np.arange(6.0)}))
    np.testing.assert_array_equal(by_index.timestamps, by_column.timestamps)
    assert as_series(np.arange(6.0)).values.shape == (6, 1)
    with pytest.raises(DataError, match="shape"):
        as_series(np.zeros((2, 2, 2)))


def test_gap_report_is_empty_for_a_regular_series() -> None:
    assert gap_report(pd.date_range("2014-01-01", periods=20, freq="min").to_numpy()) == ""


# ---------------------------------------------------------------------------------------- the network


@pytest.mark.parametrize("window", [2, 5, 16, 33, 64])
def test_conv1d_gives_back_the_window_shape_for_any_length(window: int) -> None:
    arch = ARCHITECTURES["conv1d"]
    encoder, decoder = arch.encoder((3, window), (8, 16), 4, "relu"), arch.decoder((3, window), (8, 16), 4, "relu")
    x = torch.randn(2, 3, window)
    code = encoder(x)
    assert code.shape == (2, 4)
    assert decoder(code).shape == x.shape


@pytest.mark.parametrize("window", [2, 5, 16, 33, 64])
def test_fully_convolutional_conv1d_codes_a_map_over_time_for_any_length(window: int) -> None:
    arch = ARCHITECTURES["conv1d"]
    assert arch.spatial_encoder is not None and arch.spatial_decoder is not None
    # built for windows of 16, applied to every length: no layer depends on it
    encoder = arch.spatial_encoder((3, 16), (8, 16), 4, "relu")
    decoder = arch.spatial_decoder((3, 16), (8, 16), 4, "relu")
    x = torch.randn(2, 3, window)
    code = encoder(x)
    assert code.shape == (2, 4, -(-window // 4))  # one position per 4 timestamps (two stride-2 layers)
    out = decoder(code)
    assert out.shape == (2, 3, 4 * code.shape[-1])  # covers the window, padded to a multiple of 4
    assert crop_like(out, x).shape == x.shape


def test_window_settings_are_validated() -> None:
    with pytest.raises(ConfigError, match="window_stride=9 is larger than window=8"):
        Autoencoder(window=8, window_stride=9).fit(np.zeros(100))
    with pytest.raises(ConfigError, match=r"conv1d.*set window"):
        Autoencoder(architecture="conv1d").fit(np.zeros((10, 3)))
    with pytest.raises(ConfigError, match="is for images"):
        Autoencoder(architecture="conv", window=8).fit(np.zeros(100))


# ---------------------------------------------------------------------------------------- the estimator


@pytest.mark.parametrize("architecture", ["mlp", "conv1d"])
def test_series_model_outputs_per_timestamp_and_per_window(architecture: str) -> None:
    x = sine(channels=2)
    hidden = (8, 16) if architecture == "conv1d" else (32,)
    model = fit_series(x, architecture=architecture, hidden_layer_sizes=hidden, window_stride=2, max_iter=3)
    assert model.input_shape_ == (2, 16)
    assert model.score_samples(x).shape == (len(x),)
    assert model.reconstruct(x).shape == x.shape
    assert model.predict(x).shape == (len(x),)
    assert model.transform(x).shape == (len(window_starts(len(x), 16, 2)), 3)


def test_series_model_finds_a_spike_and_flags_few_normal_timestamps() -> None:
    x = sine(2000)
    model = fit_series(x[:1500])
    test = x.copy()
    test[1700:1705] += 3.0
    scores = model.score_samples(test)
    # the lowest score lies within the windows that hold the spike
    assert 1700 - 16 < int(np.argmin(scores)) < 1705 + 16
    flags = model.predict(test)
    assert (flags[1700:1705] == -1).all()
    assert (flags[:1500] == -1).mean() < 0.05
    # the first W-1 timestamps are scored, not dropped
    assert np.isfinite(scores[:15]).all()


def test_series_reconstruction_tracks_the_series() -> None:
    x = sine(1500)
    model = fit_series(x)
    error = np.square(model.reconstruct(x) - x).mean()
    assert error < 0.1 * x.var()
    np.testing.assert_allclose(model.reconstruction_error(x), np.square(model.reconstruct(x) - x).sum(1), rtol=1e-5)


def test_channels_are_scaled_apart() -> None:
    x = sine(800, channels=2) * np.array([1.0, 1000.0], np.float32) + np.array([0.0, 5000.0], np.float32)
    model = fit_series(x, max_iter=1)
    offset, scale = model.scaler_
    assert offset.shape == scale.shape == (2, 16)
    assert (offset[0] == offset[0, 0]).all() and (scale[1] == scale[1, 0]).all()  # one value per channel
    assert scale[1, 0] / scale[0, 0] == pytest.approx(1000.0, rel=0.05)


def test_series_model_survives_save_and_load(tmp_path: Path) -> None:
    x = sine(900)
    model = fit_series(x, max_iter=2, window_stride=3)
    model.save(tmp_path / "m.safetensors")
    again = load(tmp_path / "m.safetensors")
    assert (again.window, again.window_stride) == (16, 3)
    np.testing.assert_array_equal(again.score_samples(x), model.score_samples(x))
    assert again.offset_ == model.offset_


def test_series_model_refuses_a_series_with_other_channels() -> None:
    model = fit_series(sine(600), max_iter=1)
    with pytest.raises(DataError, match="2 channels, but this model was trained on a series of 1"):
        model.score_samples(sine(600, channels=2))


def test_the_series_preset_is_a_valid_series_configuration() -> None:
    preset = PRESETS["series"]
    assert preset["window"] >= 2
    model = fit_series(sine(800), **{**preset, "max_iter": 1, "verbose": 0})
    assert model.score_samples(sine(300)).shape == (300,)


# ---------------------------------------------------------------------------------------- the command line


def write_csv(path: Path, x: np.ndarray, start: str = "2014-01-01") -> Path:
    stamps = pd.date_range(start, periods=len(x), freq="5min")
    pd.DataFrame({"timestamp": stamps.strftime("%Y-%m-%d %H:%M:%S"), "value": x[:, 0]}).to_csv(path, index=False)
    return path


def test_cli_trains_on_a_slice_and_scores_every_timestamp(tmp_path: Path) -> None:
    from test_cli import invoke

    x = sine(1500)
    x[1300:1305] += 3.0
    data = write_csv(tmp_path / "s.csv", x)
    model, scores = tmp_path / "m.safetensors", tmp_path / "scores.csv"
    sets = ["--set", "max_iter=15", "--set", "verbose=0", "--set", "hidden_layer_sizes=[32]", "--set", "n_components=3"]
    out = invoke("train", f"{data}[:1000]", "--window", "16", "-o", model, *sets).output
    assert "1000 timestamps" in out
    out = invoke("score", model, data, "-o", scores).output
    table = pd.read_csv(scores)
    assert list(table.columns) == ["timestamp", "score", "flag"] and len(table) == 1500
    assert table.timestamp.iloc[0] == "2014-01-01T00:00:00"
    assert (table.flag.iloc[1300:1305] == -1).all()
    assert "flagged" in out


def test_cli_train_until_and_refusals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from test_cli import fails, invoke

    data = write_csv(tmp_path / "s.csv", sine(600))
    model = tmp_path / "m.safetensors"
    out = invoke(
        "train", data, "--window", "8", "--train-until", "2014-01-01 10:00", "--set", "max_iter=1", "-o", model
    )
    assert "120 timestamps" in out.output  # 10 hours of 5-minute steps
    assert "--time-column is for series models" in fails(capsys, "train", data, "--time-column", "t", "-o", model)
    other = tmp_path / "other.safetensors"
    assert "no rows before" in fails(capsys, "train", data, "--window", "8", "--train-until", "2000-01-01", "-o", other)
    assert ".csv or .parquet" in fails(capsys, "score", model, data, "-o", tmp_path / "s.npy")


def test_report_draws_the_series_its_score_and_flags(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from test_cli import invoke

    x = sine(900)
    x[700:705] += 3.0
    data = write_csv(tmp_path / "s.csv", x)
    labels = tmp_path / "labels.npy"
    np.save(labels, (np.arange(900) >= 690) & (np.arange(900) < 715))
    model = tmp_path / "m.safetensors"
    invoke("train", f"{data}[:600]", "--window", "16", "--set", "max_iter=3", "-o", model)
    out = invoke("report", model, data, "--labels", labels, "-o", tmp_path / "report").output
    assert "2 figures" in out
    page = (tmp_path / "report" / "index.html").read_text()
    assert "series.png" in page and "900 timestamps" in page
    with pytest.raises(DataError, match="one label per timestamp"):
        from isthmus.report import write_report

        write_report(load(model), tmp_path / "r2", x, np.zeros(10))


# ---------------------------------------------------------------------------------------- any window length


def two_scales(n: int = 3000) -> np.ndarray:
    """Two channels on very different scales, so that a scaler applied to the wrong channel shows."""
    x = sine(n, channels=2)
    x[:, 1] = 10.0 * x[:, 1] + 100.0
    return x


def test_one_fully_convolutional_model_takes_two_window_lengths(tmp_path: Path) -> None:
    x = two_scales()
    model = fit_series(
        x[:2000],
        window=64,
        window_stride=2,
        architecture="conv1d",
        fully_convolutional=True,
        hidden_layer_sizes=(8, 16),
        n_components=4,
        max_iter=20,
    )
    test = x.copy()
    test[2500:2505, 0] += 3.0
    spread = np.square(x - x.mean(axis=0)).mean(axis=0)  # per channel: what the series' mean row misses
    net = model.net_
    for window in (64, 200):
        model.set_params(window=window)
        assert model.net_ is net  # the same fitted network, no refit
        codes = model.transform(x)  # a code map over time: one position per 4 timestamps
        assert codes.shape == (len(window_starts(len(x), window, 2)), 4, window // 4)
        windows = model.inverse_transform(codes[:3])  # back in each channel's own units
        assert windows.shape == (3, 2, window) and abs(windows[:, 1].mean() - 100.0) < 5.0
        back = model.reconstruct(x)
        assert (np.square(back - x).mean(axis=0) < 0.05 * spread).all(), window  # each channel, its own scale
        assert 2500 - window < int(np.argmin(model.score_samples(test))) < 2505 + window
    path = tmp_path / "m.safetensors"
    model.save(path)
    loaded = load(path)
    assert loaded.window == 200 and loaded.input_shape_ == (2, 64)
    np.testing.assert_allclose(loaded.score_samples(x), model.score_samples(x), rtol=1e-5)


def test_another_window_length_is_refused_where_the_network_cannot_take_it() -> None:
    x = sine(600)
    model = fit_series(x, max_iter=1)
    model.set_params(window=32)
    with pytest.raises(ConfigError, match="trained on windows of 16 and its network takes no other length"):
        model.score_samples(x)
    fcn = {"architecture": "conv1d", "fully_convolutional": True, "hidden_layer_sizes": (8,), "max_iter": 1}
    knn = fit_series(x, anomaly_score="reconstruction_knn", **fcn)
    assert knn.score_samples(x).shape == (600,)  # at the training length
    knn.set_params(window=32)
    assert knn.reconstruct(x).shape == (600, 1)
    with pytest.raises(ConfigError, match="needs windows of the training length 16, not 32"):
        knn.score_samples(x)
