"""The settings as frozen dataclasses: what the network is (ModelConfig) and how it learns (TrainConfig).

Each field is checked on its own here (types, ranges, combinations of fields). Which strings a choice field
allows is the business of the tables that implement the choices; ``isthmus.config`` builds ``CHOICES`` from
them and checks those in ``split_params``, the one way in for user values. This module sits below the
tables, so that they can take a ``ModelConfig`` without an import cycle, and imports no torch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from isthmus.errors import ConfigError

#: the architectures that have a fully convolutional form (``nets.Architecture.spatial_encoder``)
FULLY_CONVOLUTIONAL = ("conv", "resconv", "conv1d")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """What the network is: sizes, parts picked from the tables, and the data's treatment."""

    n_components: int = 2
    hidden_layer_sizes: tuple[int, ...] = (256, 128)
    architecture: str = "mlp"
    activation: str = "relu"
    bottleneck: str = "deterministic"
    penalty: str = "none"
    # "auto": the penalty's own working weight, from its table entry (penalties.PENALTIES)
    penalty_weight: float | str = "auto"
    # hyper-parameters of penalties named by a field of their own (checked by penalties.check_params)
    sparsity_target: float = 0.05
    sparsity_k: int = 10
    # any other hyper-parameter of the penalty by name; each table entry declares its own (penalties.Param)
    penalty_params: Mapping[str, Any] | None = None
    corruption: str = "none"
    noise_level: float = 0.1
    binarize: bool = False
    beta: float = 1.0
    kl_warmup: int = 0
    free_bits: float = 0.0
    lmbda: float = 0.01
    straight_through: bool = False
    pixel_model: str = "counts"
    loss: str = "auto"
    scaling: str = "auto"
    # the code is a map over the image (conv, resconv): the network takes images of any height and width
    fully_convolutional: bool = False
    # the fraction of each batch's worst-reconstructed rows left out of the reconstruction loss
    # (model.trimmed_mean): training data that hold anomalies do not teach the network to reconstruct them
    trim_fraction: float = 0.0
    # networks trained alike from different seeds; the scores that average members use them all (scoring.py)
    n_estimators: int = 1
    # tables (isthmus.data.schema, isthmus.columns): columns read as categories whatever their type, the
    # loss weight of single columns by name, and the fraction of cells hidden from the encoder in training
    categorical_features: tuple[str, ...] | None = None
    column_weights: Mapping[str, float] | None = None
    cell_dropout: float = 0.2

    # a series model: the timestamps per window (None: samples are rows), and the step between windows
    window: int | None = None
    window_stride: int = 1

    def __post_init__(self) -> None:
        _check_tables(self)
        _check_window(self)
        _check_int("n_components", self.n_components, minimum=1)
        if not all(isinstance(w, int) and not isinstance(w, bool) and w >= 1 for w in self.hidden_layer_sizes):
            raise ConfigError(
                f"hidden_layer_sizes={list(self.hidden_layer_sizes)} must be positive integers, "
                "e.g. hidden_layer_sizes=[1000, 500, 250]"
            )
        if self.penalty_weight != "auto":
            _check_float("penalty_weight", self.penalty_weight, minimum=0.0, also="'auto' or ")
        params = self.penalty_params
        if params is not None and not (isinstance(params, Mapping) and all(isinstance(k, str) for k in params)):
            raise ConfigError(
                f"penalty_params={params!r} must map the penalty's hyper-parameter names to values, "
                "e.g. penalty_params={'scale': 2.0}"
            )
        _check_float("noise_level", self.noise_level, minimum=0.0)
        _check_float("beta", self.beta, minimum=0.0)
        _check_float("free_bits", self.free_bits, minimum=0.0)
        _check_int("kl_warmup", self.kl_warmup, minimum=0)
        if self.corruption in ("masking", "salt_pepper") and self.noise_level > 1.0:
            raise ConfigError(
                f"noise_level={self.noise_level} is a probability for corruption={self.corruption!r}; "
                "it must be between 0 and 1"
            )
        _check_int("n_estimators", self.n_estimators, minimum=1)
        trim = self.trim_fraction
        if isinstance(trim, bool) or not isinstance(trim, (int, float)) or not 0.0 <= trim < 1.0:
            raise ConfigError(
                f"trim_fraction={trim!r} must be a number in [0, 1), the fraction of each batch's worst-"
                "reconstructed rows left out of the loss, e.g. trim_fraction=0.1"
            )
        if not isinstance(self.binarize, bool):
            raise ConfigError(f"binarize={self.binarize!r} must be true or false")
        _check_float("lmbda", self.lmbda, minimum=0.0)
        if not isinstance(self.straight_through, bool):
            raise ConfigError(f"straight_through={self.straight_through!r} must be true or false")
        _check_fully_convolutional(self)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """How the network learns: optimizer, batches, stopping rules, seeding, device; and the anomaly threshold."""

    max_iter: int = 50
    # the budget in gradient steps (batches), whichever of it and max_iter comes first: a step budget trains
    # a 300-row table as long as a 20,000-row one, where an epoch budget gives it a hundredth of the steps
    max_steps: int | None = None
    batch_size: int = 128
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    lr_schedule: str = "constant"
    early_stopping: bool = False
    validation_fraction: float = 0.1
    n_iter_no_change: int = 10
    tol: float = 1e-4
    target_loss: float | None = None
    random_state: int | None = None
    verbose: int = 1
    device: str = "auto"
    # "auto": mixed precision on GPUs (bf16 where supported, else fp16), float32 on CPUs
    precision: str = "auto"
    # "retry": a NaN or infinite loss restarts from the last good epoch with half the learning rate
    on_divergence: str = "stop"
    # train on random crops of this many pixels square, drawn afresh every epoch, from images of any sizes
    crop_size: int | None = None
    # anomaly detection: fit sets offset_ from the training rows' scores; the network does not depend on
    # these, so they live here rather than in ModelConfig (and stay out of the model's fingerprint)
    anomaly_score: str = "reconstruction"
    contamination: float | str = "auto"

    def __post_init__(self) -> None:
        _check_contamination(self.contamination)
        _check_int("max_iter", self.max_iter, minimum=1)
        if self.max_steps is not None:
            _check_int("max_steps", self.max_steps, minimum=1)
        _check_int("batch_size", self.batch_size, minimum=1)
        _check_int("n_iter_no_change", self.n_iter_no_change, minimum=1)
        _check_int("verbose", self.verbose, minimum=0)
        _check_float("learning_rate", self.learning_rate, minimum=0.0, strict=True)
        _check_float("weight_decay", self.weight_decay, minimum=0.0)
        _check_float("tol", self.tol, minimum=0.0)
        if not isinstance(self.early_stopping, bool):
            raise ConfigError(f"early_stopping={self.early_stopping!r} must be true or false")
        frac = self.validation_fraction
        if isinstance(frac, bool) or not isinstance(frac, (int, float)) or not 0.0 < frac < 1.0:
            raise ConfigError(f"validation_fraction={frac!r} must be a number strictly between 0 and 1")
        if self.target_loss is not None:
            _check_float("target_loss", self.target_loss)
        if self.random_state is not None:
            _check_int("random_state", self.random_state, minimum=0)
        if self.crop_size is not None:
            _check_int("crop_size", self.crop_size, minimum=1)


MODEL_FIELDS = tuple(f.name for f in dataclasses.fields(ModelConfig))
TRAIN_FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig))
PARAM_NAMES = MODEL_FIELDS + TRAIN_FIELDS
DEFAULTS: dict[str, Any] = {
    **{f.name: f.default for f in dataclasses.fields(ModelConfig)},
    **{f.name: f.default for f in dataclasses.fields(TrainConfig)},
}


def _check_fully_convolutional(cfg: ModelConfig) -> None:
    """A fully convolutional network is a conv or resconv one, and its code is a map, not a vector."""
    if not isinstance(cfg.fully_convolutional, bool):
        raise ConfigError(f"fully_convolutional={cfg.fully_convolutional!r} must be true or false")
    if not cfg.fully_convolutional:
        return
    if cfg.architecture not in FULLY_CONVOLUTIONAL:
        raise ConfigError(
            f"fully_convolutional=True needs a convolutional architecture ({' or '.join(FULLY_CONVOLUTIONAL)}), "
            f"not architecture={cfg.architecture!r}; set architecture='conv'"
        )
    if cfg.penalty != "none":
        raise ConfigError(
            f"penalty={cfg.penalty!r} acts on a code vector, but a fully convolutional code is a map whose size "
            "follows the image's; use penalty='none' with fully_convolutional=True"
        )
    if cfg.bottleneck == "gaussian":
        raise ConfigError(
            "bottleneck='gaussian' gives a code vector a prior to sample and score, but a fully convolutional "
            "code is a map whose size follows the image's; use bottleneck='deterministic' or 'quantized'"
        )
    if cfg.loss == "gaussian":
        raise ConfigError(
            "loss='gaussian' learns one standard deviation per pixel of a fixed size, but a fully convolutional "
            "network takes any size; use loss='mse' or 'bce' with fully_convolutional=True"
        )


def _check_tables(cfg: ModelConfig) -> None:
    names = cfg.categorical_features
    if names is not None and not all(isinstance(n, str) for n in names):
        raise ConfigError(
            f"categorical_features={list(names)!r} must be column names, e.g. categorical_features=['site', 'sex']"
        )
    weights = cfg.column_weights
    if weights is not None and (
        not isinstance(weights, Mapping)
        or not all(
            isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v < float("inf")
            for k, v in weights.items()
        )
    ):
        raise ConfigError(
            f"column_weights={weights!r} must map column names to weights >= 0, e.g. column_weights={{'age': 2.0}}"
        )
    rate = cfg.cell_dropout
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= rate < 1.0:
        raise ConfigError(f"cell_dropout={rate!r} must be a number in [0, 1), the fraction of cells hidden in training")


def _check_window(cfg: ModelConfig) -> None:
    if cfg.window is not None:
        _check_int("window", cfg.window, minimum=2)
    _check_int("window_stride", cfg.window_stride, minimum=1)
    if cfg.window is not None and cfg.window_stride > cfg.window:
        raise ConfigError(
            f"window_stride={cfg.window_stride} is larger than window={cfg.window}, so the timestamps between "
            "windows would never be seen; use window_stride <= window"
        )
    if cfg.architecture == "conv1d" and cfg.window is None:
        raise ConfigError("architecture='conv1d' runs on windows of a series; set window (e.g. window=64)")
    if cfg.architecture in ("conv", "resconv") and cfg.window is not None:
        raise ConfigError(
            f"architecture={cfg.architecture!r} is for images; a series cut into windows (window={cfg.window}) "
            "takes architecture='conv1d' or 'mlp'"
        )


def _check_contamination(value: Any) -> None:
    if isinstance(value, str) and value == "auto":
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < value <= 0.5:
        raise ConfigError(
            f"contamination={value!r} must be 'auto' or a number in (0, 0.5], the expected fraction of "
            "anomalies in the training data, e.g. contamination=0.05"
        )


def _check_int(name: str, value: Any, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name}={value!r} must be an integer >= {minimum}")


def _check_float(name: str, value: Any, *, minimum: float | None = None, strict: bool = False, also: str = "") -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value == value
    if ok and minimum is not None:
        ok = value > minimum if strict else value >= minimum
    if not ok:
        bound = "" if minimum is None else f" {'>' if strict else '>='} {minimum}"
        raise ConfigError(f"{name}={value!r} must be {also}a number{bound}")
