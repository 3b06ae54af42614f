"""The settings users give: the allowed choices, presets, and the one way in, ``split_params``.

The estimator's keyword arguments, the fields of ``ModelConfig`` and ``TrainConfig`` (``isthmus.settings``),
the CLI's ``--set`` names and the model file's metadata keys are one and the same set of names. Presets are
named bundles of those names. The allowed values of a choice field are the entries of the table that
implements it (``penalties.PENALTIES`` ...): a new entry there is a new choice here.
"""

from __future__ import annotations

import ast
import contextlib
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from isthmus.errors import ConfigError
from isthmus.settings import DEFAULTS, MODEL_FIELDS, PARAM_NAMES, TRAIN_FIELDS, ModelConfig, TrainConfig

#: choice fields whose values are words of the code that reads them (train.py, model.py), not table entries
_FIXED_CHOICES: dict[str, tuple[str, ...]] = {
    "lr_schedule": ("constant", "cosine"),
    "device": ("auto", "cpu", "cuda", "mps"),
    "precision": ("auto", "fp32", "bf16", "fp16"),
    "on_divergence": ("stop", "retry"),
}


def choices() -> dict[str, tuple[str, ...]]:
    """Allowed string values per field: the entries of the table that implements each choice, read afresh.

    The tables are imported here, on first use, not with this module: they import torch, and
    ``isthmus --help`` needs none of it.
    """
    from isthmus.bottlenecks import BOTTLENECKS
    from isthmus.codec import PIXEL_MODELS
    from isthmus.corruptions import CORRUPTIONS
    from isthmus.model import RECONSTRUCTION
    from isthmus.nets import ACTIVATIONS, ARCHITECTURES
    from isthmus.penalties import PENALTIES
    from isthmus.scaling import SCALINGS
    from isthmus.scoring import SCORES

    return {
        "architecture": tuple(ARCHITECTURES),
        "activation": tuple(ACTIVATIONS),
        "bottleneck": tuple(BOTTLENECKS),
        "penalty": tuple(PENALTIES),
        "corruption": tuple(CORRUPTIONS),
        "loss": ("auto", *RECONSTRUCTION),
        "scaling": ("auto", *SCALINGS),
        "anomaly_score": tuple(SCORES),
        "pixel_model": tuple(PIXEL_MODELS),
        **_FIXED_CHOICES,
    }


#: ``name : {...}`` in a numpydoc Parameters section: a choice whose values the tables spell out
_CHOICE_LIST = re.compile(r"^(?P<head> +(?P<name>\w+) : )\{\.\.\.\}", re.M)


def document_choices(doc: str) -> str:
    """``doc`` with each ``name : {...}`` spelled out as the values of ``choices()[name]``.

    The estimator's docstring writes its choice parameters so, and is completed at import: a new table
    entry is documented where users read (``help``, the API reference) with no docstring to edit.
    """
    allowed = choices()
    return _CHOICE_LIST.sub(
        lambda m: m["head"] + "{" + ", ".join(f'"{c}"' for c in allowed[m["name"]]) + "}",
        doc,
    )


def __getattr__(name: str) -> Any:
    # ``CHOICES``, built from the tables when first asked for (see ``choices``)
    if name == "CHOICES":
        return choices()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
    # for 300 gradient steps whatever the table's size (max_steps; max_iter as large, so that a table of one
    # batch also gets them): a 500-row table trained 10 epochs (40 steps) scored at chance, while 1,000 steps
    # let the networks learn a large table's anomalies too. A row's score adds three robust z-scores, averaged
    # over the networks: its reconstruction error normalized per feature, the distance from its code to the
    # 10th nearest training code, and the distance from the scaled row to its 10th nearest training row.
    # Figures: docs/results.md (bench/adbench.py on the 12 ADBench development tables, 3 seeds)
    "anomaly": {
        "n_components": 2,
        "hidden_layer_sizes": (32, 16),
        "trim_fraction": 0.2,
        "n_estimators": 5,
        "anomaly_score": "reconstruction_knn_input",
        "max_steps": 300,
        "max_iter": 300,
    },
    # metric streams, one configuration for every series (bench/nab.py, picked on NAB's realKnownCause): a
    # variational autoencoder of temporal convolutions (16 and 32 channels, kernel 7, stride 2) on windows of 128
    # timestamps cut every 2, each scored by its negative ELBO (reconstruction error plus the KL of its code, so an
    # unusual level or shape counts even where it is reconstructed well), every timestamp by the mean over the
    # windows that cover it. Mean per-timestamp ROC-AUC on realKnownCause, fit on the whole series / on the first
    # 15%: 0.785 / 0.801 (IsolationForest on the same windows 0.753 / 0.754, Keras's Conv1D autoencoder 0.699 /
    # 0.745; bench/results/nab.jsonl); on artificialWithAnomaly 0.608 / 0.658, below IsolationForest's 0.638 /
    # 0.666. Picked from about 25 tries on the same seven series, so likely optimistic on unseen ones; the MLP
    # of widths 64-32 it replaces gave 0.772 / 0.792. Tried on (a), each within 0.01 of the MLP: trim_fraction
    # 0.1 / 0.2 (0.755 / 0.735), windows of 64 / 256, 40 epochs, 4 or 16 components, beta 2 / 4, denoising,
    # widths 128-64, stride 1, three seeds or windows 64-128-256 averaged, reconstruction_knn (0.741; 0.779 with
    # the max over covering windows, but the max lifts IsolationForest to 0.789), no held-out end (0.777)
    "series": {
        "window": 128,
        "window_stride": 2,
        "architecture": "conv1d",
        "hidden_layer_sizes": (16, 32),
        "n_components": 8,
        "bottleneck": "gaussian",
        "anomaly_score": "elbo",
        "scaling": "standard",
        "loss": "mse",
        "max_iter": 20,
        "batch_size": 128,
    },
    # mixed tables of numbers and categories with missing cells, one configuration for every such table
    # (bench/adult.py, where n_components=8): a smaller MLP than the defaults, 30 epochs of batches of 256
    # on a cosine schedule, and 30% of the cells hidden from the encoder in training. On UCI Adult, 16,000
    # rows, 5 seeded splits (bench/adult.py --repeats 5): imputes better than scikit-learn's imputers on
    # all 5; the linear income probe from 8-d codes is level with PCA-8's (+0.0002 on average, sd 0.009).
    # Tried on 3 splits x 2-3 seeds, none of them better: cell_dropout 0, 0.1, 0.5; weight decay; 60
    # epochs at 1e-3; one hidden layer; 256-128; gelu, tanh; a learned output variance; a variational
    # bottleneck; swap noise; linear paths beside the MLP. A linear model (hidden_layer_sizes=(),
    # cell_dropout=0.5) gives better codes for a linear probe (+0.0054, 5 splits) but imputes worse than
    # IterativeImputer and KNNImputer on every split
    "table": {
        "hidden_layer_sizes": (128, 64),
        "batch_size": 256,
        "learning_rate": 3e-3,
        "lr_schedule": "cosine",
        "max_iter": 30,
        "cell_dropout": 0.3,
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
    _check_choices(params)
    model = {k: _normalize(k, v) for k, v in params.items() if k in MODEL_FIELDS}
    train = {k: _normalize(k, v) for k, v in params.items() if k in TRAIN_FIELDS}
    model_cfg, train_cfg = ModelConfig(**model), TrainConfig(**train)
    from isthmus.penalties import check_params  # with the tables (see choices)

    check_params(model_cfg)
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


def _check_choices(params: Mapping[str, Any]) -> None:
    for name, allowed in choices().items():
        value = params.get(name, DEFAULTS[name])
        if value not in allowed:
            raise ConfigError(f"{name}={value!r} is not allowed; choose one of: {', '.join(allowed)}")
