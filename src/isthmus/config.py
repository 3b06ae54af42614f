"""Validated, frozen configuration: what the network is (ModelConfig) and how it learns (TrainConfig).

The estimator's keyword arguments, these dataclass fields, the CLI's ``--set`` names and the model
file's metadata keys are one and the same set of names. Presets are named bundles of those names.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from isthmus.errors import ConfigError

#: Allowed string values per field; the tables they come from live beside the code that implements
#: them (``nets.ACTIVATIONS`` ...), and ``tests/test_config.py`` checks that the two agree.
CHOICES: dict[str, tuple[str, ...]] = {
    "architecture": ("mlp", "conv", "resconv", "conv1d"),
    "activation": ("relu", "gelu", "silu", "elu", "leaky_relu", "tanh", "sigmoid"),
    "bottleneck": ("deterministic", "gaussian", "quantized"),
    "penalty": ("none", "l1", "kl_sparsity", "topk", "contractive", "tsne"),
    "corruption": ("none", "gaussian", "gaussian_clipped", "masking", "salt_pepper"),
    "loss": ("auto", "bce", "mse", "gaussian"),
    "scaling": ("auto", "minmax", "standard", "robust", "none"),
    "lr_schedule": ("constant", "cosine"),
    "device": ("auto", "cpu", "cuda", "mps"),
    "precision": ("auto", "fp32", "bf16", "fp16"),
    "on_divergence": ("stop", "retry"),
    "anomaly_score": ("reconstruction", "reconstruction_l4", "elbo", "log_likelihood", "reconstruction_knn"),
    "pixel_model": ("counts", "net"),
}

#: the architectures that have a fully convolutional form (``nets.Architecture.spatial_encoder``)
FULLY_CONVOLUTIONAL = ("conv", "resconv")


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
    sparsity_target: float = 0.05
    sparsity_k: int = 10
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
        _check_choices(self)
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
        _check_float("noise_level", self.noise_level, minimum=0.0)
        _check_float("beta", self.beta, minimum=0.0)
        _check_float("free_bits", self.free_bits, minimum=0.0)
        _check_int("kl_warmup", self.kl_warmup, minimum=0)
        _check_int("sparsity_k", self.sparsity_k, minimum=1)
        rho = self.sparsity_target
        if isinstance(rho, bool) or not isinstance(rho, (int, float)) or not 0.0 < rho < 1.0:
            raise ConfigError(
                f"sparsity_target={rho!r} must be a number strictly between 0 and 1 (the target mean "
                "activation of a code unit), e.g. sparsity_target=0.05"
            )
        if self.penalty == "topk" and self.sparsity_k > self.n_components:
            raise ConfigError(
                f"sparsity_k={self.sparsity_k} must be <= n_components={self.n_components} with penalty='topk'; "
                "lower sparsity_k or raise n_components"
            )
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
        _check_choices(self)
        _check_contamination(self.contamination)
        _check_int("max_iter", self.max_iter, minimum=1)
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

#: Named recipes: a preset is a set of parameter values, applied before the user's own (penalty weights
#: come from the penalty table, penalty_weight="auto"). A variant
#: preset names only what makes the variant, so it composes with any other setting: a denoising
#: sparse autoencoder is ``--preset sparse-kl --set corruption=gaussian``.
PRESETS: dict[str, dict[str, Any]] = {
    "undercomplete": {"bottleneck": "deterministic", "penalty": "none", "corruption": "none"},
    # weight decay on every weight and an L1 activity penalty on the code
    "regularized": {"penalty": "l1", "weight_decay": 1e-5},
    # trained to undo Gaussian noise of standard deviation noise_level in the data's own units (0.3 suits
    # values in [0, 1]; set it to your data's noise); the target is the clean input
    "denoising": {"corruption": "gaussian", "noise_level": 0.3},
    # overcomplete sigmoid code whose units fire 5% of the time on average (KL to the target rate)
    "sparse-kl": {"n_components": 128, "penalty": "kl_sparsity", "sparsity_target": 0.05},
    # overcomplete code with exactly sparsity_k non-zero units per sample
    "sparse-topk": {"n_components": 128, "penalty": "topk", "sparsity_k": 16},
    # sigmoid code whose encoder Jacobian is kept small (Rifai et al., 2011)
    "contractive": {"penalty": "contractive"},
    # negative ELBO: reconstruction log-likelihood + KL to N(0, I), the KL weight ramped over 5 epochs
    "vae": {"bottleneck": "gaussian", "beta": 1.0, "kl_warmup": 5},
    # the KL weighted beta=4 for a more factorized code (Higgins et al., 2017)
    "beta-vae": {"bottleneck": "gaussian", "beta": 4.0, "kl_warmup": 5},
    # integer code + learned entropy model, loss = squared error + lmbda * bits (Balle et al., 2017);
    # a higher lmbda gives smaller files and a lower PSNR
    "compress": {"bottleneck": "quantized", "loss": "mse", "lmbda": 0.01},
    # a 2-D code that keeps neighbourhoods: parametric t-SNE within batches of 500 (penalties.tsne), its
    # KL weighted to dominate the reconstruction; held-out MNIST kNN-5 accuracy in bench/mnist_embed.py
    "embed-2d": {
        "n_components": 2,
        "penalty": "tsne",
        "batch_size": 500,
        "learning_rate": 3e-3,
        "lr_schedule": "cosine",
    },
    # screening a table for anomalies: -score_samples is the anomaly score (bench/adbench.py). Five small
    # networks from different seeds, a 2-D code each, each trained on the bulk of every batch (trim_fraction)
    # and scoring a row by its reconstruction error plus the distance from its code to the 10th nearest
    # training code; their robust z-scores averaged. On the 12 ADBench development tables, 3 seeds: mean
    # ROC-AUC 0.852 against pyod IForest's 0.829 on the same splits (mean rank 2.83 against IForest's 2.58);
    # three networks of 20 epochs: 0.839, for more time
    "anomaly": {
        "n_components": 2,
        "hidden_layer_sizes": (32, 16),
        "trim_fraction": 0.2,
        "n_estimators": 5,
        "anomaly_score": "reconstruction_knn",
        "max_iter": 10,
    },
    # metric streams, one configuration for every series (bench/nab.py, picked on NAB's realKnownCause): a
    # variational MLP on windows of 128 timestamps cut every 2, each scored by its negative ELBO (reconstruction
    # error plus the KL of its code, so an unusual level or shape counts even where it is reconstructed well),
    # every timestamp by the mean over the windows that cover it. Mean per-timestamp ROC-AUC on realKnownCause,
    # fit on the whole series / on the first 15%: 0.772 / 0.792 (IsolationForest on the same windows 0.753 /
    # 0.754, Keras's Conv1D autoencoder 0.690 / 0.737); windows of 64 with a plain autoencoder: 0.681 / 0.752
    # on four of the seven series, where these settings with window_stride=1 give 0.764 / 0.773
    "series": {
        "window": 128,
        "window_stride": 2,
        "architecture": "mlp",
        "hidden_layer_sizes": (64, 32),
        "n_components": 8,
        "bottleneck": "gaussian",
        "anomaly_score": "elbo",
        "scaling": "standard",
        "loss": "mse",
        "max_iter": 20,
        "batch_size": 128,
    },
    # held-out MNIST SSE 2.76 per image in 60 epochs (bench/mnist_recon.py); needs (n, 1, 28, 28) images
    "mnist": {
        "n_components": 30,
        "architecture": "conv",
        "hidden_layer_sizes": (32, 64, 128),
        "scaling": "minmax",
        "loss": "bce",
        "batch_size": 128,
        "max_iter": 60,
        "lr_schedule": "cosine",
    },
}


def split_params(params: Mapping[str, Any]) -> tuple[ModelConfig, TrainConfig]:
    """Validate a flat parameter mapping and split it into the two configs."""
    unknown = sorted(set(params) - set(PARAM_NAMES))
    if unknown:
        raise ConfigError(f"unknown parameter(s) {', '.join(unknown)}; known: {', '.join(sorted(PARAM_NAMES))}")
    model = {k: _normalize(k, v) for k, v in params.items() if k in MODEL_FIELDS}
    train = {k: _normalize(k, v) for k, v in params.items() if k in TRAIN_FIELDS}
    model_cfg, train_cfg = ModelConfig(**model), TrainConfig(**train)
    if train_cfg.crop_size is not None and not model_cfg.fully_convolutional:
        raise ConfigError(
            f"crop_size={train_cfg.crop_size} trains on crops of images of any size, and a network that then "
            "takes any size: set fully_convolutional=True with architecture='conv' or 'resconv' (--set "
            "architecture=conv --set fully_convolutional=true), or drop crop_size"
        )
    return model_cfg, train_cfg


def resolve_params(
    *,
    preset: str | None = None,
    config_file: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Merge preset < TOML file < overrides into one validated parameter dict (unset names omitted)."""
    params: dict[str, Any] = {}
    if preset is not None:
        if preset not in PRESETS:
            raise ConfigError(f"unknown preset {preset!r}; choose one of: {', '.join(sorted(PRESETS))}")
        params.update(PRESETS[preset])
    if config_file is not None:
        params.update(read_toml(config_file))
    params.update(overrides or {})
    split_params(params)  # validates names and values now, before any data is read
    return params


def read_toml(path: str | Path) -> dict[str, Any]:
    """Read parameters from a TOML file: top-level keys, or a ``[isthmus]`` table."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    table = data.get("isthmus", data)
    if not isinstance(table, dict):
        raise ConfigError(f"config file {path}: [isthmus] must be a table of parameters")
    return dict(table)


def parse_assignment(text: str) -> tuple[str, Any]:
    """Parse ``name=value``: the value as a Python literal (``True``, ``None``, ``(64, 32)``), else as a TOML
    one (``true``, ``[64, 32]``), else as a plain string (``mlp``)."""
    name, sep, raw = text.partition("=")
    name = name.strip()
    if not sep or not name:
        raise ConfigError(f"--set {text!r} must look like name=value, e.g. --set n_components=30")
    raw = raw.strip()
    value: Any = raw
    try:
        value = ast.literal_eval(raw)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        with contextlib.suppress(tomllib.TOMLDecodeError):  # neither: a plain string such as mlp
            value = tomllib.loads(f"v = {raw}")["v"]
    if isinstance(value, str) and value.lower() in ("none", "null") and DEFAULTS.get(name, "") is None:
        value = None  # only where None is a real setting (random_state, target_loss); "none" is a choice elsewhere
    return name, value


def _normalize(name: str, value: Any) -> Any:
    if name == "categorical_features" and value is not None:
        if isinstance(value, str):
            return (value,)
        try:
            return tuple(value)
        except TypeError:
            raise ConfigError(f"categorical_features={value!r} must be a list of column names") from None
    if name == "hidden_layer_sizes":
        if isinstance(value, int) and not isinstance(value, bool):
            return (value,)
        try:
            return tuple(value)
        except TypeError:
            raise ConfigError(f"hidden_layer_sizes={value!r} must be a list of integers") from None
    return value


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


def _check_choices(cfg: object) -> None:
    for field in dataclasses.fields(cfg):  # type: ignore[arg-type]
        allowed = CHOICES.get(field.name)
        value = getattr(cfg, field.name)
        if allowed is not None and value not in allowed:
            raise ConfigError(f"{field.name}={value!r} is not allowed; choose one of: {', '.join(allowed)}")


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
