"""The model file (docs/format.md): round trip, encoder-only export, golden bytes, and refusal of bad files."""

from __future__ import annotations

import hashlib
import json
import math
import os
import pickle
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors import safe_open
from safetensors.torch import load_file

import isthmus
from isthmus import Autoencoder, artifact
from isthmus.config import ModelConfig
from isthmus.data.schema import Column, Schema
from isthmus.errors import EncoderOnlyError, ModelFileError, OutputError
from isthmus.fitted import Fitted
from isthmus.model import build_net
from isthmus.scaling import Scaler

SMALL: dict[str, Any] = {
    **{"hidden_layer_sizes": (8,), "max_iter": 2, "batch_size": 32},
    **{"verbose": 0, "random_state": 0, "device": "cpu"},
}


def _data() -> np.ndarray:
    """(200, 12) float32, seeded: a few correlated columns with distinct scales."""
    rng = np.random.default_rng(0)
    x = np.tanh(rng.normal(size=(200, 3)) @ rng.normal(size=(3, 12))) * rng.uniform(1, 9, size=12)
    return (x + 0.05 * rng.normal(size=x.shape)).astype(np.float32)


def _fit(x: np.ndarray, **params: Any) -> Autoencoder:
    return Autoencoder(**{"n_components": 3, **SMALL, **params}).fit(x)


@pytest.fixture(scope="module")
def x() -> np.ndarray:
    return _data()


@pytest.fixture(scope="module")
def fitted(x: np.ndarray) -> Autoencoder:
    return _fit(x)


@pytest.fixture(scope="module")
def model_bytes(fitted: Autoencoder, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("model") / "model.safetensors"
    fitted.save(path)
    return path.read_bytes()


def _header(data: bytes) -> tuple[int, dict[str, Any]]:
    """The safetensors header parsed by hand: (its length N, the JSON object)."""
    (n,) = struct.unpack("<Q", data[:8])
    return n, json.loads(data[8 : 8 + n])


def _parts(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """A model file's tensors and metadata, read with safetensors alone (no isthmus checks)."""
    with safe_open(str(path), framework="pt") as fh:
        metadata = dict(fh.metadata())
    return load_file(str(path)), metadata


def _forge(src: Path, dst: Path, *, tensors: dict[str, Any] | None = None, **metadata: str | None) -> Path:
    """Copy a model file with some tensors replaced (None drops) and metadata values replaced (None drops)."""
    stored, meta = _parts(src)
    for name, tensor in (tensors or {}).items():
        if tensor is None:
            del stored[name]
        else:
            stored[name] = tensor
    for key, value in metadata.items():
        if value is None:
            del meta[key]
        else:
            meta[key] = value
    dst.write_bytes(artifact.safetensors_bytes(stored, meta))
    return dst


# ---------------------------------------------------------------------------------------------- round trip


@pytest.mark.parametrize("kind", ["tabular", "images"])
def test_round_trip_is_bit_identical(kind: str, x: np.ndarray, tmp_path: Path) -> None:
    if kind == "tabular":
        data, ae = x, _fit(x)
    else:
        data = np.random.default_rng(1).uniform(0, 16, size=(60, 1, 7, 6)).astype(np.float32)
        ae = _fit(data, architecture="conv", hidden_layer_sizes=(4, 4), max_iter=1)
    path = tmp_path / "model.safetensors"
    ae.save(path)
    loaded = isthmus.load(path)

    codes = ae.transform(data)
    assert np.array_equal(loaded.transform(data), codes)
    assert np.array_equal(loaded.inverse_transform(codes), ae.inverse_transform(codes))
    assert loaded.get_params() == ae.get_params()
    assert loaded.history_ == ae.history_
    assert loaded.n_iter_ == ae.n_iter_
    assert loaded.best_loss_ == ae.best_loss_
    assert loaded.input_shape_ == ae.input_shape_
    assert loaded.n_features_in_ == ae.n_features_in_
    assert loaded.resolved_ == ae.resolved_
    assert loaded.data_range_ == ae.data_range_
    assert np.array_equal(loaded.scaler_.offset, ae.scaler_.offset)
    assert np.array_equal(loaded.scaler_.scale, ae.scaler_.scale)
    assert np.array_equal(loaded.pca_mean_, ae.pca_mean_)
    assert np.array_equal(loaded.pca_components_, ae.pca_components_)
    for name, value in ae.net_.state_dict().items():
        assert torch.equal(loaded.net_.state_dict()[name], value), name
    assert not loaded.encoder_only_


def test_saving_is_deterministic_and_atomic(fitted: Autoencoder, model_bytes: bytes, tmp_path: Path) -> None:
    first, second = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    fitted.save(first)
    isthmus.load(first).save(second)
    assert first.read_bytes() == second.read_bytes() == model_bytes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.safetensors", "b.safetensors"]  # no temp files


def test_overwrite_false_keeps_the_existing_file(fitted: Autoencoder, tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"keep me")
    with pytest.raises(OutputError, match="already exists"):
        fitted.save(path, overwrite=False)
    assert path.read_bytes() == b"keep me"


def test_safetensors_itself_reads_the_file(fitted: Autoencoder, tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    fitted.save(path)
    tensors, metadata = _parts(path)
    expected = artifact.model_tensors(Fitted.of(fitted), encoder_only=False)
    assert tensors.keys() == expected.keys()
    assert all(torch.equal(tensors[k], v) for k, v in expected.items())
    assert metadata == artifact.model_metadata(Fitted.of(fitted), encoder_only=False)
    assert path.read_bytes() == artifact.safetensors_bytes(expected, metadata)  # save writes the canonical form


def test_params_metadata_holds_every_parameter_sorted(fitted: Autoencoder) -> None:
    params = json.loads(artifact.model_metadata(Fitted.of(fitted), encoder_only=False)["params"])
    assert list(params) == sorted(fitted.get_params())
    assert {k: tuple(v) if isinstance(v, list) else v for k, v in params.items()} == fitted.get_params()


# ---------------------------------------------------------------------------------------------- encoder only


def test_encoder_only_export(fitted: Autoencoder, x: np.ndarray, tmp_path: Path) -> None:
    path = tmp_path / "encoder.safetensors"
    fitted.export_encoder(path)
    loaded = isthmus.load(path)

    assert loaded.encoder_only_
    assert np.array_equal(loaded.transform(x), fitted.transform(x))
    with pytest.raises(EncoderOnlyError, match="only the encoder"):
        loaded.inverse_transform(fitted.transform(x))
    with pytest.raises(EncoderOnlyError):
        loaded.reconstruct(x)
    tensors, metadata = _parts(path)
    assert not [k for k in tensors if k.startswith("decoder.")]
    assert any(k.startswith("encoder.") for k in tensors)
    assert json.loads(metadata["encoder_only"]) is True

    again = tmp_path / "again.safetensors"
    loaded.save(again)  # an encoder-only model stays encoder-only
    assert again.read_bytes() == path.read_bytes()


# ---------------------------------------------------------------------------------------------- golden bytes

#: SHA-256 of the file `test_golden_bytes` writes. It changes only when the bytes on disk change: then the
#: format changed, so update docs/format.md (and bump FORMAT_VERSION if old readers would misread it).
GOLDEN_SHA256 = "d1f72fe92166f61aecf79dc73386c86a97d015ec46b18e25bed12a96cc1127b8"

#: The golden file's `params`, pinned rather than taken from get_params(): a new estimator parameter is
#: an additive change (docs/format.md, versioning), so it must not change these bytes; and this older
#: parameter set must keep loading, its missing parameters taking their defaults.
GOLDEN_PARAMS = (
    '{"activation": "relu", "architecture": "mlp", "batch_size": 128, "bottleneck": "deterministic", '
    '"corruption": "none", "device": "cpu", "early_stopping": false, "hidden_layer_sizes": [4], '
    '"learning_rate": 0.001, "loss": "auto", "lr_schedule": "constant", "max_iter": 1, "n_components": 2, '
    '"n_iter_no_change": 10, "noise_level": 0.1, "penalty": "none", "penalty_weight": 0.001, '
    '"random_state": 0, "scaling": "auto", "target_loss": null, "tol": 0.0001, "validation_fraction": 0.1, '
    '"verbose": 0, "weight_decay": 0.0}'
)


def _golden_model() -> Autoencoder:
    """A 'fitted' estimator whose every stored value is set by hand: 5 features, code of 2, hidden (4,)."""
    ae = Autoencoder(2, hidden_layer_sizes=(4,), max_iter=1, verbose=0, random_state=0, device="cpu")
    ae.net_ = build_net(ModelConfig(n_components=2, hidden_layer_sizes=(4,), loss="mse"), (5,), seed=0)
    with torch.no_grad():
        for i, (_, p) in enumerate(sorted(ae.net_.named_parameters())):
            p.copy_(torch.arange(p.numel(), dtype=torch.float32).reshape(p.shape) / 8 - i)
    ae.scaler_ = Scaler(np.arange(5, dtype=np.float32) / 4, np.full(5, 2.0, np.float32))
    ae.input_shape_ = (5,)
    ae.n_features_in_ = 5
    ae.resolved_ = {"loss": "mse", "scaling": "standard"}
    ae.data_range_ = 4.0
    ae.encoder_only_ = False
    ae.pca_mean_ = np.full(5, 0.5, np.float32)
    ae.pca_components_ = np.eye(2, 5, dtype=np.float32)
    ae.history_ = [{"epoch": 1.0, "train_reconstruction": 0.75, "train_loss": 0.75}]
    ae.n_iter_ = 1
    ae.best_loss_ = 0.75
    return ae


def test_golden_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(isthmus.version, "__version__", "0.1.0")
    monkeypatch.setattr(torch, "__version__", "2.4.0+cpu")  # the file records "2.4.0"
    golden = Fitted.of(_golden_model())
    metadata = {**artifact.model_metadata(golden, encoder_only=False), "params": GOLDEN_PARAMS}
    data = artifact.safetensors_bytes(artifact.model_tensors(golden, encoder_only=False), metadata)  # as save does
    path = tmp_path / "golden.safetensors"
    path.write_bytes(data)
    assert hashlib.sha256(data).hexdigest() == GOLDEN_SHA256

    n, header = _header(data)
    text = data[8 : 8 + n].decode("ascii")
    assert n % 8 == 0  # so the tensor data starts 8-byte aligned
    assert text.startswith('{"__metadata__":{') and text.rstrip(" ").endswith("}")
    assert len(text) - len(text.rstrip(" ")) < 8  # padded with spaces, and no more than needed
    stored = header.pop("__metadata__")
    assert list(stored) == sorted(stored)
    assert stored == {
        "data_range": "4.0",
        "encoder_only": "false",
        "format": "isthmus.model",
        "format_version": "1",
        "input_shape": "[5]",
        "isthmus_version": "0.1.0",
        "params": GOLDEN_PARAMS,
        "resolved": '{"loss": "mse", "scaling": "standard"}',
        "torch_version": "2.4.0",
        "training": '{"n_iter": 1, "best_loss": 0.75, "history": '
        '[{"epoch": 1.0, "train_reconstruction": 0.75, "train_loss": 0.75}]}',
    }
    shapes = {
        "decoder.0.0.bias": [4],
        "decoder.0.0.weight": [4, 2],
        "decoder.0.2.bias": [5],
        "decoder.0.2.weight": [5, 4],
        "encoder.1.0.bias": [4],
        "encoder.1.0.weight": [4, 5],
        "encoder.1.2.bias": [2],
        "encoder.1.2.weight": [2, 4],
        "pca.components": [2, 5],
        "pca.mean": [5],
        "scaler.offset": [5],
        "scaler.scale": [5],
    }
    assert list(header) == sorted(shapes)  # tensors in name order (all float32)
    offset = 0
    for name, entry in header.items():
        assert entry["dtype"] == "F32" and entry["shape"] == shapes[name]
        size = 4 * math.prod(entry["shape"])
        assert entry["data_offsets"] == [offset, offset + size]
        raw = np.frombuffer(data[8 + n + offset : 8 + n + offset + size], dtype="<f4").reshape(entry["shape"])
        assert np.array_equal(raw, artifact.model_tensors(Fitted.of(_golden_model()), encoder_only=False)[name].numpy())
        offset += size
    assert len(data) == 8 + n + offset  # nothing after the last tensor

    loaded = isthmus.load(path)  # the pinned file still loads and encodes as the hand-set weights say
    sample = np.linspace(-1, 1, 10, dtype=np.float32).reshape(2, 5)
    assert np.array_equal(loaded.transform(sample), _golden_model().transform(sample))


# ---------------------------------------------------------------------------------------------- refusals


class _Marker:
    """A pickle payload that creates a file when unpickled: proof of code execution."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.path), "w"))


def test_refuses_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="no such model file"):
        isthmus.load(tmp_path / "absent.safetensors")
    with pytest.raises(ModelFileError, match="no such model file"):
        isthmus.load(tmp_path)  # a folder is not a model file


def test_refuses_random_bytes_and_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(ModelFileError, match="not a readable safetensors"):
        isthmus.load(path)
    path.write_bytes(b"")
    with pytest.raises(ModelFileError, match="not a readable safetensors"):
        isthmus.load(path)


def test_never_unpickles(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = pickle.dumps(_Marker(marker))
    probe = tmp_path / "probe"
    pickle.loads(pickle.dumps(_Marker(probe))).close()
    assert probe.exists()  # the payload is live: unpickling it does run code

    path = tmp_path / "model.safetensors"
    path.write_bytes(payload)
    with pytest.raises(ModelFileError):
        isthmus.load(path)
    torch.save({"weights": torch.zeros(3), "trap": _Marker(marker)}, path)  # a torch.save zip archive
    with pytest.raises(ModelFileError):
        isthmus.load(path)
    assert not marker.exists()


def test_refuses_torch_save_of_the_network(fitted: Autoencoder, tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    torch.save(fitted.net_.state_dict(), path)
    with pytest.raises(ModelFileError, match="not a readable safetensors"):
        isthmus.load(path)


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ({"format": "isthmus.checkpoint"}, "not an isthmus model file .*isthmus.checkpoint"),
        ({"format": None}, "not an isthmus model file"),
        ({"format_version": "7"}, "version 7, newer than this isthmus reads \\(6\\); upgrade isthmus"),
        ({"format_version": "one"}, "format_version is missing or not an integer"),
        ({"format_version": "0"}, "format_version=0 is not a valid version"),
        ({"params": '{"n_components": 3,'}, "metadata 'params' is not valid JSON"),
        ({"params": "[1, 2]"}, "params=.* is malformed"),
        ({"params": '{"colour": "red"}'}, "unknown parameter\\(s\\) colour"),
        ({"params": '{"n_components": -1}'}, "n_components=-1 must be an integer >= 1"),
        ({"params": '{"n_components": 3, "hidden_layer_sizes": [1000000000000]}'}, "encoder.1.0.weight' has shape"),
        ({"params": '{"architecture": "conv"}'}, "stored parameters are invalid"),
        ({"resolved": '{"loss": "auto"}'}, "stored parameters are invalid"),
        ({"resolved": "[]"}, "resolved=.* is malformed"),
        ({"input_shape": "[0]"}, "input_shape=.* is malformed"),
        ({"input_shape": '"12"'}, "input_shape=.* is malformed"),
        ({"input_shape": "[1, 1, 1, 12]"}, "input_shape=.* is malformed"),
        ({"input_shape": "[13]"}, "scaler.offset' has shape \\(12,\\), the config implies \\(13,\\)"),
        ({"data_range": "NaN"}, "data_range=NaN is malformed"),
        ({"encoder_only": "1"}, "encoder_only=1 is malformed"),
        ({"training": '{"n_iter": [2], "best_loss": 1.0, "history": []}'}, "training=.* is malformed"),
        ({"training": None}, "metadata key 'training' is missing"),
    ],
)
def test_refuses_bad_metadata(
    metadata: dict[str, str | None], message: str, model_bytes: bytes, tmp_path: Path
) -> None:
    good = tmp_path / "good.safetensors"
    good.write_bytes(model_bytes)
    with pytest.raises(ModelFileError, match=message):
        isthmus.load(_forge(good, tmp_path / "bad.safetensors", **metadata))


@pytest.mark.parametrize(
    ("tensors", "message"),
    [
        ({"encoder.1.0.weight": torch.zeros(8, 13)}, "'encoder.1.0.weight' has shape \\(8, 13\\), the config implies"),
        ({"decoder.0.2.bias": None}, "'decoder.0.2.bias' is missing"),
        ({"scaler.scale": None}, "'scaler.scale' is missing"),
        ({"pca.components": None}, "'pca.components' is missing"),
        ({"pca.components": torch.zeros(12)}, "'pca.components' has shape \\(12,\\); it must be \\(k, 12\\)"),
        ({"pca.components": torch.zeros(3, 11)}, "'pca.components' has shape \\(3, 11\\), the config implies"),
        ({"pca.mean": torch.zeros(12, dtype=torch.float64)}, "'pca.mean' has dtype torch.float64, expected float32"),
        ({"encoder.1.2.bias": torch.zeros(3, dtype=torch.int64)}, "has dtype torch.int64, expected float32"),
    ],
)
def test_refuses_bad_tensors(tensors: dict[str, Any], message: str, model_bytes: bytes, tmp_path: Path) -> None:
    good = tmp_path / "good.safetensors"
    good.write_bytes(model_bytes)
    with pytest.raises(ModelFileError, match=message):
        isthmus.load(_forge(good, tmp_path / "bad.safetensors", tensors=tensors))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    flips=st.lists(st.tuples(st.integers(min_value=0), st.integers(0, 255)), min_size=1, max_size=4),
    cut=st.one_of(st.none(), st.integers(min_value=0)),
)
def test_corrupted_files_load_or_raise_model_file_error(
    flips: list[tuple[int, int]], cut: int | None, model_bytes: bytes, tmp_path: Path
) -> None:
    data = bytearray(model_bytes)
    n = struct.unpack("<Q", data[:8])[0]
    for position, value in flips:
        data[position % (8 + n)] = value  # mostly the header: flips in the weights load by design
    if cut is not None:
        data = data[: cut % len(data)]
    path = tmp_path / "fuzzed.safetensors"
    path.write_bytes(bytes(data))
    try:
        loaded = isthmus.load(path)
    except ModelFileError:
        return
    loaded.transform(_data()[:4])  # whatever loads is a working model


# ---------------------------------------------------------------------------------------------- checkpoints


@pytest.fixture(scope="module")
def checkpoint(x: np.ndarray, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "run.ckpt"
    Autoencoder(3, **SMALL).fit(x, checkpoint=path)
    return path


def _resume(x: np.ndarray, path: Path) -> Autoencoder:
    return Autoencoder(3, **{**SMALL, "max_iter": 3}).fit(x, resume=path)


def test_checkpoint_layout(checkpoint: Path) -> None:
    tensors, metadata = _parts(checkpoint)
    assert metadata["format"] == "isthmus.checkpoint" and metadata["format_version"] == "1"
    assert {"epoch", "n_train", "seed", "best_loss", "bad_epochs", "history", "optim_groups", "optim_plain"} <= set(
        metadata
    )
    assert {"rng.shuffle", "rng.noise"} <= set(tensors)
    assert any(k.startswith("net.encoder.") for k in tensors)
    assert any(k.startswith("optim.0.") for k in tensors)


def test_resume_from_a_good_checkpoint(checkpoint: Path, x: np.ndarray, tmp_path: Path) -> None:
    path = tmp_path / "run.ckpt"
    path.write_bytes(checkpoint.read_bytes())
    assert _resume(x, path).n_iter_ == 3


@pytest.mark.parametrize("damage", ["random", "truncated", "empty", "model_file", "network", "newer"])
def test_resume_refuses_a_corrupt_checkpoint(
    damage: str, checkpoint: Path, model_bytes: bytes, x: np.ndarray, tmp_path: Path
) -> None:
    path = tmp_path / "run.ckpt"
    good = checkpoint.read_bytes()
    if damage == "random":
        path.write_bytes(os.urandom(1000))
    elif damage == "truncated":
        path.write_bytes(good[: len(good) // 2])
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "model_file":
        path.write_bytes(model_bytes)
    else:
        tensors, metadata = _parts(checkpoint)
        if damage == "network":
            tensors["net.encoder.1.0.weight"] = torch.zeros(8, 13)
        else:
            metadata["format_version"] = "2"
        path.write_bytes(artifact.safetensors_bytes(tensors, metadata))
    with pytest.raises(ModelFileError):
        _resume(x, path)


@pytest.mark.parametrize(
    "damage", ["no_n_train", "no_history", "bad_seed", "bad_version", "no_rng", "short_rng", "bad_optim_index"]
)
def test_resume_refuses_a_malformed_checkpoint(damage: str, checkpoint: Path, x: np.ndarray, tmp_path: Path) -> None:
    tensors, metadata = _parts(checkpoint)
    if damage == "no_n_train":
        del metadata["n_train"]
    elif damage == "no_history":
        del metadata["history"]
    elif damage == "bad_seed":
        metadata["seed"] = "x"
    elif damage == "bad_version":
        metadata["format_version"] = "x"
    elif damage == "no_rng":
        del tensors["rng.shuffle"]
    elif damage == "short_rng":
        tensors["rng.shuffle"] = tensors["rng.shuffle"][:10]
    else:
        tensors["optim.x.exp_avg"] = torch.zeros(3)
    path = tmp_path / "run.ckpt"
    path.write_bytes(artifact.safetensors_bytes(tensors, metadata))
    with pytest.raises(ModelFileError):
        _resume(x, path)


#: SHA-256 of the file `test_golden_bytes_of_a_table` writes: a model with a column schema (docs/format.md,
#: section 2.7). Same rule as GOLDEN_SHA256.
GOLDEN_TABLE_SHA256 = "43cad3b493bb41d61f7ec6335b7edd8a57f5d75ab27bec13a48f631a7d95aced"


def _golden_table() -> Fitted:
    """A table model set by hand: a numeric column 'a' and a categorical 's' (levels x, y), missing-cell head."""
    schema = Schema(
        (Column("a", "numeric", "float64"), Column("s", "categorical", "string", ("x", "y"), (3, 1))),
        named=True,
        missing_mask=True,
    )
    net = build_net(ModelConfig(n_components=2, hidden_layer_sizes=(4,), loss="mse"), (3,), seed=0, schema=schema)
    with torch.no_grad():
        for i, (_, p) in enumerate(sorted(net.named_parameters())):
            p.copy_(torch.arange(p.numel(), dtype=torch.float32).reshape(p.shape) / 8 - i)
    golden = Fitted.of(_golden_model())
    return golden.replace(
        net=net,
        scaler=Scaler(np.array([1.0, 0.0, 0.0], np.float32), np.array([2.0, 1.0, 1.0], np.float32)),
        input_shape=(3,),
        pca_mean=np.array([1.0, 0.75, 0.25], np.float32),
        pca_components=np.array([[0.6, 0.8, 0.0]], np.float32),
        pca_scale=np.array([2.0, 0.5, 0.5], np.float32),
        schema=schema,
        feature_names_in=np.array(["a", "s"], dtype=object),
    )


def test_golden_bytes_of_a_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(isthmus.version, "__version__", "0.1.0")
    monkeypatch.setattr(torch, "__version__", "2.4.0+cpu")
    golden = _golden_table()
    metadata = {**artifact.model_metadata(golden, encoder_only=False), "params": GOLDEN_PARAMS}
    data = artifact.safetensors_bytes(artifact.model_tensors(golden, encoder_only=False), metadata)
    path = tmp_path / "golden.safetensors"
    path.write_bytes(data)
    assert hashlib.sha256(data).hexdigest() == GOLDEN_TABLE_SHA256
    _, header = _header(data)
    stored = header.pop("__metadata__")
    assert stored["format_version"] == "5" and stored["feature_names_in"] == '["a", "s"]'
    assert json.loads(stored["columns"]) == {
        "version": 1,
        "named": True,
        "missing_mask": True,
        "columns": [
            {"name": "a", "kind": "numeric", "dtype": "float64"},
            {"name": "s", "kind": "categorical", "dtype": "string", "levels": ["x", "y"], "counts": [3, 1]},
        ],
    }
    assert header["encoder.1.0.weight"]["shape"] == [4, 3 + 2]  # the values, then one missing flag per column
    assert header["pca.scale"]["shape"] == [3]
    loaded = isthmus.load(path)  # loads, and matches columns by name
    frame = {"s": np.array(["y", None], dtype=object), "a": np.array([np.nan, 2.0])}
    table = pa.table(frame)
    codes = loaded.transform(table)
    assert codes.shape == (2, 2) and np.isfinite(codes).all()
    assert loaded.reconstruct(table).column_names == ["a", "s"]
