"""The steps of ``Autoencoder.fit`` that are not the estimator's bookkeeping.

``fit`` takes its data in four forms: rows in memory, a series cut into windows, images trained on in crops,
and a streamed source. Each becomes one ``TrainingData`` (the scaler, what the training loop takes, the
rows at hand); the loop then trains the network (and the other members of an ensemble), and ``finish``
adds what is learned from the rows at hand after training: the coding tables, the anomaly score's state
and the threshold ``offset_``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import torch

from isthmus import artifact, codec, crops, scoring
from isthmus import train as training
from isthmus.baselines import pca_baseline
from isthmus.batches import ChunkSource
from isthmus.corruptions import LEVEL_IN_DATA_UNITS
from isthmus.data.stream import Rows, moments, sample_rows
from isthmus.errors import ConfigError, DataError
from isthmus.fitted import Fitted
from isthmus.model import AutoencoderNet, build_net
from isthmus.nets import ARCHITECTURES
from isthmus.penalties import PENALTIES
from isthmus.scaling import Scaler, fit_scaler, scaler_from_moments
from isthmus.series import Split, channel_scaler, early_stopping_windows, held_out_offset

if TYPE_CHECKING:
    from isthmus.data.schema import Schema
    from isthmus.settings import ModelConfig, TrainConfig

#: rows of a streamed source kept at hand for the PCA baseline, the coding tables and the anomaly threshold
STREAM_SAMPLE = 20000


class TrainingData(NamedTuple):
    """What ``fit`` trains on and keeps at hand, whatever form its data came in."""

    scaler: Scaler
    shape: tuple[int, ...]  # one sample as the network takes it
    train: torch.Tensor | ChunkSource | crops.CropSource
    val: torch.Tensor | ChunkSource | crops.CropSource | None  # what early stopping watches
    sample: np.ndarray  # rows at hand in the caller's units: all of them, or a seeded sample (streams, crops)
    low: float  # smallest scaled value
    high: float  # largest scaled value
    data_range: float  # max - min of the raw values (1.0 when that is 0)
    # scaled training rows and held-out rows (None: the scaled sample stands for both)
    train_rows: np.ndarray | None = None
    held_out: np.ndarray | None = None
    split: Split | None = None  # a series' training and held-out windows

    def loss(self, loss: str) -> str:
        """``loss`` resolved: ``"auto"`` is binary cross-entropy for data scaled into [0, 1], else squared error."""
        if loss != "auto":
            return loss
        return "bce" if self.low >= 0.0 and self.high <= 1.0 else "mse"

    def scaled_sample(self) -> np.ndarray:
        """``(n, *shape)`` the rows at hand scaled as the network sees them."""
        return self.scaler.transform(self.sample).reshape(len(self.sample), *self.shape)


def check_form(model_cfg: ModelConfig, train_cfg: TrainConfig, streaming: bool) -> None:
    """Refuse the forms of data that a setting cannot take: crops of a stream, a streamed or cropped series."""
    if train_cfg.crop_size is not None and streaming:
        raise ConfigError(
            f"crop_size={train_cfg.crop_size} crops images held whole in memory, but the data are streamed; "
            "train without streaming (drop --stream)"
        )
    if model_cfg.window is not None and (streaming or train_cfg.crop_size is not None):
        raise DataError("a series model (window=...) reads its series whole; pass it without streaming or crops")


def check_sizes(
    model_cfg: ModelConfig, train_cfg: TrainConfig, input_shape: tuple[int, ...], shape: tuple[int, ...], n: int
) -> None:
    """Refuse data that the architecture, the code width or early stopping cannot take."""
    if len(shape) not in ARCHITECTURES[model_cfg.architecture].input_ranks:
        raise ConfigError(
            f"architecture={model_cfg.architecture!r} needs image data (n_samples, channels, height, "
            f"width); got samples of shape {input_shape}; use architecture='mlp'"
        )
    n_values = math.prod(input_shape)
    if not PENALTIES[model_cfg.penalty].overcomplete and model_cfg.n_components >= n_values:
        raise ConfigError(
            f"n_components={model_cfg.n_components} must be smaller than n_features={n_values} "
            "for an undercomplete autoencoder; lower n_components or pick a sparse penalty"
        )
    min_samples = 3 if train_cfg.early_stopping else 1
    if n < min_samples:
        raise DataError(f"fit needs at least {min_samples} samples, got {n}")


def split_rows(x: np.ndarray, cfg: TrainConfig, seed: int) -> tuple[np.ndarray, np.ndarray | None]:
    """(training rows, validation rows or None): a seeded permutation holds out ``validation_fraction``, for
    early stopping and for the threshold of a numeric ``contamination``."""
    if not cfg.early_stopping and (isinstance(cfg.contamination, str) or len(x) < 3):
        return x, None
    order = np.random.RandomState(seed).permutation(len(x))
    n_val = min(max(1, round(cfg.validation_fraction * len(x))), len(x) - 1)
    return x[order[n_val:]], x[order[:n_val]]


def split_stream(
    rows: Rows, scaler: Scaler, shape: tuple[int, ...], cfg: TrainConfig, seed: int
) -> tuple[ChunkSource, ChunkSource | None]:
    """Training and validation chunk sources of a streamed ``rows``, scaled into the net's ``shape``."""

    def transform(raw: np.ndarray) -> np.ndarray:  # in place: the window's array is the loader's own
        return scaler.transform_in_place(raw).reshape(len(raw), *shape)

    chunks = list(range(len(rows.chunks)))
    if not cfg.early_stopping:
        return ChunkSource(rows, chunks, transform), None

    def held_out(chunk: int) -> np.ndarray:  # a seeded draw per row, the same on every pass and rank
        start, stop = rows.chunks[chunk]
        return np.random.default_rng([seed, start]).random(stop - start) < cfg.validation_fraction

    train = ChunkSource(rows, chunks, transform, keep=lambda chunk: ~held_out(chunk))
    val = ChunkSource(rows, chunks, transform, keep=held_out)
    if len(train) == 0 or len(val) == 0:
        raise DataError(
            f"holding out validation_fraction={cfg.validation_fraction} of {len(rows)} rows left "
            f"{len(train)} for training and {len(val)} for validation; give more rows or set early_stopping=False"
        )
    return train, val


def training_noise(config: ModelConfig) -> float:
    """The training noise's standard deviation in the data's units, which the scaler makes room for
    (:func:`isthmus.scaling.with_noise`): a Gaussian corruption's ``noise_level``, else 0."""
    return config.noise_level if config.corruption in LEVEL_IN_DATA_UNITS else 0.0


def in_memory(
    x: np.ndarray,
    scaling: str,
    shape: tuple[int, ...],
    cfg: TrainConfig,
    seed: int,
    *,
    is_image: bool,
    levels: Any = None,
    split: Split | None = None,
    window: int | None = None,
    noise: float = 0.0,
) -> TrainingData:
    """Rows (or a series' training windows, ``split``) held in memory: the scaler fitted on all of them
    (per channel for a series; ``levels``: a table's one-hot positions, left unscaled; ``noise``:
    :func:`training_noise`), then split."""
    if split is not None:  # a series: one offset and scale per channel
        scaler = channel_scaler(split.values, scaling, int(window or 0), noise)
    else:
        scaler = fit_scaler(x, scaling, is_image=is_image, unscaled=levels, noise=noise)
    scaled = scaler.transform(x)
    low, high = float(np.nanmin(scaled)), float(np.nanmax(scaled))
    data_range = float(np.nanmax(x) - np.nanmin(x)) or 1.0
    if split is None:
        train_rows, val_rows = split_rows(scaled, cfg, seed)
    else:
        train_rows, val_rows = scaled, early_stopping_windows(split, scaler, cfg.early_stopping)
    x_train = torch.from_numpy(train_rows.reshape(len(train_rows), *shape))
    x_val = None  # rows held out for the threshold alone are not the training loop's
    if cfg.early_stopping and val_rows is not None:
        x_val = torch.from_numpy(val_rows.reshape(len(val_rows), *shape))
    return TrainingData(scaler, shape, x_train, x_val, x, low, high, data_range, train_rows, val_rows, split)


def streamed(
    rows: Rows,
    scaling: str,
    shape: tuple[int, ...],
    cfg: TrainConfig,
    seed: int,
    *,
    is_image: bool,
    noise: float = 0.0,
) -> TrainingData:
    """A streamed source: one pass for the scaler, a seeded sample for what needs rows at hand."""
    stats = moments(rows)
    x = sample_rows(rows, STREAM_SAMPLE, seed).reshape(-1, *rows.sample_shape)
    scaler = scaler_from_moments(
        stats.minimum, stats.maximum, stats.mean, stats.std, scaling, is_image=is_image, sample=x, noise=noise
    )
    low = float(scaler.transform(stats.minimum.astype(np.float32)).min())
    high = float(scaler.transform(stats.maximum.astype(np.float32)).max())
    data_range = float(stats.maximum.max() - stats.minimum.min()) or 1.0
    x_train, x_val = split_stream(rows, scaler, shape, cfg, seed)
    return TrainingData(scaler, shape, x_train, x_val, x, low, high, data_range)


def cropped(
    images: list[np.ndarray],
    crop: int,
    scaling: str,
    shape: tuple[int, ...],
    cfg: TrainConfig,
    seed: int,
    noise: float = 0.0,
) -> TrainingData:
    """Images of any sizes, trained on in crops (:mod:`isthmus.crops`)."""
    held_out = cfg.validation_fraction if cfg.early_stopping else None
    data = crops.crop_training(images, crop, scaling, validation_fraction=held_out, seed=seed, noise=noise)
    return TrainingData(data.scaler, shape, data.train, data.val, data.sample, data.low, data.high, data.data_range)


def train_members(
    config: ModelConfig,
    input_shape: tuple[int, ...],
    data: TrainingData,
    cfg: TrainConfig,
    seed: int,
    schema: Schema | None = None,
) -> list[AutoencoderNet]:
    """The ensemble's other ``n_estimators - 1`` networks: the same data and split, seeds ``seed + 1`` on; no
    checkpoint, no log."""
    members = []
    for i in range(1, config.n_estimators):
        net = build_net(config, input_shape, seed + i, schema)
        quiet = dataclasses.replace(cfg, verbose=0)
        training.train(net, data.train, data.val, quiet, seed=seed + i, settle_epochs=config.kl_warmup)
        members.append(net)
    return members


def is_8bit(x: np.ndarray) -> bool:
    """Every value an integer in 0..255 (with streamed data, every value of the sample at hand)."""
    return bool(x.size) and float(x.min()) >= 0.0 and float(x.max()) <= 255.0 and bool(np.all(x == np.rint(x)))


def finish_coding(fitted: Fitted, x: np.ndarray, scaled: np.ndarray) -> Fitted:
    """``fitted`` with a quantized bottleneck's integer coding tables built now, from the training codes, so
    that no separate "update" step can be forgotten; for 8-bit data also the pixel model of lossless
    streams; then the fingerprint, which identifies the whole model."""
    if not fitted.net.after_fit(torch.from_numpy(scaled)):
        return fitted
    return _with_pixel_model(fitted, codec.build_lossless_tables(fitted, x))


def refit_pixel_model(fitted: Fitted, X: Any, **options: Any) -> Fitted:
    """``fitted`` with its pixel model built afresh on 8-bit data ``X`` (``Autoencoder.fit_pixel_model``), and
    so a new fingerprint."""
    codec.coding_state(fitted)  # a quantized model, else ConfigError
    x, shape = np.asarray(X), tuple(fitted.input_shape)
    if x.ndim < 1 or x.shape[1:] != shape or len(x) == 0:
        raise DataError(f"X has shape {x.shape}; it must be (n_samples, *{shape}) with n_samples >= 1")
    model = codec.build_lossless_tables(fitted, x.astype(np.float32), **options)
    if model is None:
        raise DataError("the pixel model is built on 8-bit data: every value of X must be an integer 0..255")
    return _with_pixel_model(fitted, model)


def _with_pixel_model(fitted: Fitted, model: Any) -> Fitted:
    """``fitted`` with the pixel model ``model`` (or None) and the fingerprint of the whole."""
    fitted = fitted.replace(lossless_tables=model)
    return fitted.replace(fingerprint=artifact.fingerprint(fitted))


def complete(
    params: dict[str, Any],
    net: AutoencoderNet,
    members: list[AutoencoderNet],
    result: training.TrainResult,
    data: TrainingData,
    cfg: TrainConfig,
    *,
    input_shape: tuple[int, ...],
    is_image: bool,
    scaling: str,
    schema: Schema | None,
    feature_names: np.ndarray | None,
    seed: int,
) -> tuple[Fitted, np.ndarray]:
    """The fitted state of a trained ``net`` (``params``: the estimator's), completed by :func:`finish`; and
    the scaled rows at hand it was completed from."""
    scaled = data.scaled_sample()  # with streamed or cropped data, of a sample
    table = schema is not None  # a table's baseline: PCA of the one-hot table, standardized
    pca_mean, pca_components, pca_scale = pca_baseline(
        data.sample if table else scaled, params["n_components"], table=table
    )
    fitted = Fitted(
        params=params,
        net=net,
        scaler=data.scaler,
        input_shape=input_shape,
        # "pca": the baseline lives in the scaled space (files written before it: the caller's units); "dtype":
        # 8-bit images, which the command line writes back as 8-bit images, like decompress
        resolved={
            "loss": net.config.loss,
            "scaling": scaling,
            "pca": "standardized" if table else "scaled",
            **({"dtype": "uint8"} if is_image and is_8bit(data.sample) else {}),
        },
        data_range=data.data_range,
        history=result.history,
        n_iter=result.n_iter,
        best_loss=result.best_loss,
        pca_mean=pca_mean,
        pca_components=pca_components,
        feature_names_in=feature_names,
        members=members,
        schema=schema,
        pca_scale=pca_scale,
        stop_reason=result.stop_reason,
    )
    return finish(fitted, data, scaled, cfg, seed), scaled


def finish(fitted: Fitted, data: TrainingData, scaled: np.ndarray, cfg: TrainConfig, seed: int) -> Fitted:
    """``fitted`` completed from the rows at hand (``scaled``: ``data.scaled_sample()``): the coding tables,
    the anomaly score's state, and the threshold ``offset_``."""
    fitted = finish_coding(fitted, data.sample, scaled)
    rows = scaled if data.train_rows is None else data.train_rows
    reference = rows.reshape(len(rows), *data.shape)
    fitted = fitted.replace(score_state=scoring.fit_state(fitted, reference, seed, cfg.anomaly_score))
    if data.split is not None:  # per-timestamp scores of the held-out end of the series (isthmus.series)
        offset = held_out_offset(fitted, data.split, cfg.anomaly_score, cfg.contamination)
    else:
        # the threshold from rows the network did not train on, where the fit held some out: training rows'
        # scores are optimistic, and a threshold on them flags more new normal rows than contamination says
        held = data.held_out
        unseen = scaled if held is None else held.reshape(len(held), *data.shape)
        offset = scoring.training_offset(fitted, unseen, seed, cfg.anomaly_score, cfg.contamination)
    return fitted.replace(offset=offset)
