"""Configuration: the allowed values agree with the tables, presets are valid, parsing and merging."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from isthmus import Autoencoder, config
from isthmus.bottlenecks import BOTTLENECKS
from isthmus.codec import PIXEL_MODELS
from isthmus.config import (
    CHOICES,
    DEFAULTS,
    PARAM_NAMES,
    PRESETS,
    ModelConfig,
    TrainConfig,
    parse_assignment,
    resolve_params,
    split_params,
)
from isthmus.corruptions import CORRUPTIONS
from isthmus.errors import ConfigError
from isthmus.model import RECONSTRUCTION
from isthmus.nets import ACTIVATIONS, ARCHITECTURES
from isthmus.penalties import PENALTIES
from isthmus.scaling import SCALINGS
from isthmus.scoring import SCORES

TABLES = [
    ("bottleneck", BOTTLENECKS),
    ("penalty", PENALTIES),
    ("corruption", CORRUPTIONS),
    ("activation", ACTIVATIONS),
    ("architecture", ARCHITECTURES),
    ("pixel_model", PIXEL_MODELS),
    ("loss", RECONSTRUCTION),
    ("scaling", SCALINGS),
    ("anomaly_score", SCORES),
]


@pytest.mark.parametrize(("field", "table"), TABLES)
def test_a_new_table_entry_is_a_choice_with_nothing_else_to_edit(
    field: str, table: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert set(table) <= set(CHOICES[field])
    monkeypatch.setitem(table, "brand_new", next(iter(table.values())))
    assert "brand_new" in config.CHOICES[field]
    model, train = split_params({field: "brand_new"})
    assert getattr(model, field, getattr(train, field, None)) == "brand_new"


def test_loss_and_scaling_choices_add_auto_to_their_tables() -> None:
    assert CHOICES["loss"] == ("auto", *RECONSTRUCTION)
    assert CHOICES["scaling"] == ("auto", *SCALINGS)


def test_named_penalty_hyper_parameters_default_to_their_table_entries() -> None:
    named = {name: p for entry in PENALTIES.values() for name, p in entry.params.items() if name in DEFAULTS}
    assert set(named) == {"sparsity_target", "sparsity_k"}
    for name, param in named.items():
        assert DEFAULTS[name] == param.default, name


def test_every_choice_field_is_a_config_field() -> None:
    assert set(CHOICES) <= set(PARAM_NAMES)


def test_estimator_parameters_are_the_config_fields() -> None:
    assert sorted(Autoencoder().get_params()) == sorted(PARAM_NAMES)
    assert Autoencoder().get_params() == DEFAULTS


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_is_valid_and_fits_tiny_data(name: str, digits: np.ndarray) -> None:
    model, train = split_params(PRESETS[name])
    assert isinstance(model, ModelConfig) and isinstance(train, TrainConfig)
    tiny = {"hidden_layer_sizes": (16,), "max_iter": 1, "verbose": 0, "random_state": 0}
    params = resolve_params(preset=name, overrides=tiny)
    # a series preset (window=W) takes a series, every other preset rows or images
    data = np.sin(np.arange(300) / 5.0) if "window" in PRESETS[name] else digits[:100]
    ae = Autoencoder(**params).fit(data)
    for key, value in PRESETS[name].items():
        assert ae.get_params()[key] == tiny.get(key, value)
    assert np.isfinite(ae.transform(data)).all()


def test_required_presets_exist() -> None:
    required = {"undercomplete", "denoising", "sparse-kl", "sparse-topk", "contractive", "vae", "beta-vae"}
    assert required <= set(PRESETS)


def test_resolve_params_precedence(tmp_path: Path) -> None:
    config = tmp_path / "p.toml"
    config.write_text("n_components = 7\nbeta = 2.5\n")
    params = resolve_params(preset="beta-vae", config_file=config, overrides={"beta": 8.0})
    assert params["bottleneck"] == "gaussian"  # from the preset
    assert params["n_components"] == 7  # from the file
    assert params["beta"] == 8.0  # overrides win over the file and the preset
    assert resolve_params() == {}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("n_components=30", ("n_components", 30)),
        ("beta = 4.0", ("beta", 4.0)),
        ("binarize=true", ("binarize", True)),
        ("penalty=kl_sparsity", ("penalty", "kl_sparsity")),
        ('corruption="salt_pepper"', ("corruption", "salt_pepper")),
        ("hidden_layer_sizes=[64, 32]", ("hidden_layer_sizes", [64, 32])),
        ("hidden_layer_sizes=64,32", ("hidden_layer_sizes", (64, 32))),  # a Python tuple without brackets
        ("hidden_layer_sizes=(64,32)", ("hidden_layer_sizes", (64, 32))),
        ("hidden_layer_sizes=(64,)", ("hidden_layer_sizes", (64,))),
        ("early_stopping=False", ("early_stopping", False)),  # Python's spelling
        ("early_stopping=false", ("early_stopping", False)),  # TOML's
        ("target_loss=None", ("target_loss", None)),
        ("learning_rate=1e-3", ("learning_rate", 1e-3)),
        ("target_loss=-inf", ("target_loss", float("-inf"))),  # TOML only
        ("target_loss=none", ("target_loss", None)),
        ("random_state=null", ("random_state", None)),
        ("corruption=none", ("corruption", "none")),  # a table entry, not a missing value
        ("penalty=None", ("penalty", None)),  # then refused by validation, naming the choices
        ("sparsity_target=0.02", ("sparsity_target", 0.02)),
    ],
)
def test_parse_assignment(text: str, expected: tuple[str, Any]) -> None:
    assert parse_assignment(text) == expected


def test_python_literals_pass_validation() -> None:
    overrides = dict(parse_assignment(a) for a in ("early_stopping=False", "hidden_layer_sizes=(64,32)"))
    params = resolve_params(overrides=overrides)
    model, train = split_params(params)
    assert model.hidden_layer_sizes == (64, 32) and train.early_stopping is False
    with pytest.raises(ConfigError, match="penalty=None is not allowed; choose one of: none"):
        resolve_params(overrides=dict([parse_assignment("penalty=None")]))


@pytest.mark.parametrize("text", ["n_components", "=3", ""])
def test_parse_assignment_rejects_malformed(text: str) -> None:
    with pytest.raises(ConfigError, match="name=value"):
        parse_assignment(text)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"sparsity_target": 1.5}, r"sparsity_target=1.5 must be a number strictly between 0 and 1"),
        ({"sparsity_target": 0}, r"sparsity_target=0 must be"),
        ({"penalty": "topk", "n_components": 4, "sparsity_k": 5}, r"sparsity_k=5 must be <= n_components=4"),
        ({"sparsity_k": 0}, r"sparsity_k=0 must be an integer >= 1"),
        ({"beta": -1.0}, r"beta=-1.0 must be a number >= 0"),
        ({"kl_warmup": 2.5}, r"kl_warmup=2.5 must be an integer >= 0"),
        ({"free_bits": -0.1}, r"free_bits=-0.1 must be a number >= 0"),
        ({"binarize": "yes"}, r"binarize='yes' must be true or false"),
        ({"corruption": "masking", "noise_level": 1.5}, r"noise_level=1.5 is a probability"),
        ({"bottleneck": "laplace"}, r"bottleneck='laplace' is not allowed; choose one of: deterministic, gaussian"),
        ({"penalty": "l2"}, r"penalty='l2' is not allowed; choose one of: none, l1, kl_sparsity, topk, contractive"),
        ({"nope": 1}, r"unknown parameter\(s\) nope"),
    ],
)
def test_invalid_values_are_named(params: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        split_params(params)


def test_unknown_preset_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown preset 'vqvae'; choose one of: .*beta-vae"):
        resolve_params(preset="vqvae")


def test_configs_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        ModelConfig().beta = 2.0  # type: ignore[misc]
