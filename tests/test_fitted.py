"""The Fitted record: every learned attribute comes from it, and a saved model loads back with all of them."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

import isthmus
from conftest import QUANTIZED, TINY
from isthmus import Autoencoder
from isthmus.fitted import FIELDS, OPTIONAL, Fitted, attribute_names
from isthmus.model import AutoencoderNet
from isthmus.scaling import Scaler


def _same(a: Any, b: Any, where: str) -> None:
    """Assert that two fitted values are equal, looking inside networks, scalers, tables and arrays."""
    if isinstance(a, AutoencoderNet):
        assert isinstance(b, AutoencoderNet) and a.config == b.config and a.input_shape == b.input_shape, where
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys(), where
        for k in sa:
            assert torch.equal(sa[k], sb[k]), f"{where}.{k}"
        _same(getattr(a.bottleneck, "tables", None), getattr(b.bottleneck, "tables", None), f"{where}.tables")
    elif isinstance(a, Scaler):
        _same((a.offset, a.scale), (b.offset, b.scale), where)
    elif dataclasses.is_dataclass(a) and not isinstance(a, type):
        assert type(a) is type(b), where
        for f in dataclasses.fields(a):
            _same(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")
    elif isinstance(a, (tuple, list)):
        assert isinstance(b, (tuple, list)) and len(a) == len(b), where
        for i, (u, v) in enumerate(zip(a, b, strict=True)):
            _same(u, v, f"{where}[{i}]")
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for k in a:
            _same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.shape == b.shape, where
        assert np.array_equal(a, b), where
        if a.dtype.kind != "O":
            assert a.dtype == b.dtype, where
    else:
        assert type(a) is type(b) and a == b, f"{where}: {a!r} != {b!r}"


def _learned(ae: Autoencoder) -> set[str]:
    """The learned (public, trailing-underscore) attributes an estimator holds."""
    return {k for k in vars(ae) if k.endswith("_") and not k.startswith("_")}


def _round_trip(ae: Autoencoder, tmp_path: Path) -> Autoencoder:
    path = tmp_path / "model.safetensors"
    ae.save(path)
    loaded = isthmus.load(path)
    # every learned attribute is a field of the record: fit sets none of its own
    assert _learned(ae) <= set(attribute_names()), _learned(ae) - set(attribute_names())
    assert _learned(loaded) == _learned(ae)
    for name in sorted(_learned(ae)):
        _same(getattr(ae, name), getattr(loaded, name), name)
    assert loaded.get_params() == ae.get_params()
    return loaded


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 6)) @ rng.normal(size=(6, 6)) + rng.uniform(-5, 5, size=6)
    return pd.DataFrame(x.astype(np.float32), columns=[f"col{i}" for i in range(6)])


def test_a_table_with_column_names_loads_with_every_attribute(frame: pd.DataFrame, tmp_path: Path) -> None:
    ae = Autoencoder(2, **TINY).fit(frame)
    assert list(ae.feature_names_in_) == list(frame.columns)
    loaded = _round_trip(ae, tmp_path)
    assert list(loaded.feature_names_in_) == list(frame.columns)
    np.testing.assert_array_equal(loaded.transform(frame), ae.transform(frame))
    with pytest.warns(UserWarning, match="feature names"):  # scikit-learn's check, as on the fitted model
        loaded.transform(frame.to_numpy())


def test_a_quantized_model_on_8bit_images_loads_with_every_attribute(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    images = (rng.random((64, 1, 6, 6)) * 255).round().astype(np.float32)
    ae = Autoencoder(3, random_state=0, **QUANTIZED).fit(images)
    assert ae.lossless_tables_ is not None and ae.fingerprint_ is not None
    assert not hasattr(ae, "feature_names_in_")
    loaded = _round_trip(ae, tmp_path)
    x = images[:3].astype(np.uint8)
    np.testing.assert_array_equal(loaded.decompress(ae.compress(x, lossless=True)), x)


def test_the_record_is_the_attributes() -> None:
    """Fitted.of reads back what attributes() gives; an optional field that is None leaves no attribute."""
    ae = Autoencoder(2, **TINY).fit(np.random.default_rng(2).normal(size=(40, 5)).astype(np.float32))
    record = Fitted.of(ae)
    assert set(record.attributes()) == _learned(ae)
    assert record.params == ae.get_params()
    assert set(attribute_names()) == {f"{name}_" for name in FIELDS} | {"n_features_in_"}
    assert set(OPTIONAL) <= set(FIELDS)
    assert "offset_" in record.attributes() and "offset_" not in record.replace(offset=None).attributes()
