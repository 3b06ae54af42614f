"""The model file: one ``.safetensors`` file with weights and arrays, and JSON metadata (docs/format.md).

Loading never unpickles: safetensors holds only raw tensors, and every tensor name and shape is checked
against the network that the stored config describes before any weight is used. Writing is canonical
(sorted metadata, tensors in a fixed order), so equal models give byte-identical files.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import struct
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open

from isthmus import version
from isthmus._files import check_suffix, write_bytes_atomic
from isthmus.config import DEFAULTS, split_params
from isthmus.data.schema import Schema
from isthmus.entropy import CdfTables, check_cdf_tables
from isthmus.errors import ConfigError, ModelFileError
from isthmus.fitted import Fitted
from isthmus.lossless import (
    MAX_CONTEXTS,
    PIXEL_TENSORS,
    RECONSTRUCTION_TENSORS,
    PixelCoder,
    PixelModel,
    ReconstructionTables,
    check_pixel_model,
    context_count,
)
from isthmus.model import build_net
from isthmus.pixelnet import MAX_LAYERS, TENSOR_PREFIX, PixelNet, check_pixel_net
from isthmus.scaling import Scaler

MODEL_FORMAT = "isthmus.model"
#: the newest model format this isthmus reads: a table model with a categorical column measured by another
#: loss than the cross-entropy (a schema with "categorical_loss", section 2.7) is version 6, another table
#: model whose network sees missing cells (a schema with "missing_mask": true) version 5, a file with a pixel
#: network of 24-bit frequencies (pixelnet.*, its exp table 288 long) version 4, one with a pixel network of
#: 16-bit frequencies version 3, one with counted pixel tables (pixels.*) version 2, others 1
FORMAT_VERSION = 6
_ENCODER_PARTS = ("encoder.", "bottleneck.")
_ARRAYS = ("scaler.offset", "scaler.scale", "pca.mean", "pca.components")
#: prefix of the anomaly score's state tensors (Fitted.score_state), and of an ensemble's other networks
_SCORE = "score."
_MEMBER = "member"
#: tensors that decoding does not depend on, left out of the fingerprint
_NOT_DECODING = ("pca.", _SCORE, _MEMBER)
#: a quantized model's integer coding tables, in the order of entropy.CdfTables
_TABLES = ("entropy.cdf", "entropy.lengths", "entropy.offsets")
#: the pixel models' tensors (each pixel model names its own): the 256 tables of the first scheme (stream
#: version 1), counted contexts, a pixel network
_LOSSLESS = RECONSTRUCTION_TENSORS
_PIXELS = PIXEL_TENSORS
_PIXELNET = TENSOR_PREFIX
#: torch dtype -> safetensors dtype name (the ones an isthmus file may hold)
_DTYPES = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}


def _isthmus_version() -> str:
    return version.__version__


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def model_metadata(fitted: Fitted, *, encoder_only: bool) -> dict[str, str]:
    """The JSON metadata of a fitted model, every value a string (safetensors' rule)."""
    names = fitted.feature_names_in
    return {
        "format": MODEL_FORMAT,
        "format_version": str(_format_version(fitted.lossless_tables, fitted.schema)),
        "isthmus_version": _isthmus_version(),
        "torch_version": torch.__version__.split("+")[0],
        "params": json.dumps({k: _jsonable(v) for k, v in sorted(fitted.params.items())}),
        "resolved": json.dumps(fitted.resolved, sort_keys=True),
        "input_shape": json.dumps(list(fitted.input_shape)),
        "data_range": json.dumps(fitted.data_range),
        "encoder_only": json.dumps(encoder_only),
        "training": json.dumps(
            {
                "n_iter": fitted.n_iter,
                "best_loss": fitted.best_loss,
                "history": fitted.history,
                **({"stop_reason": fitted.stop_reason} if fitted.stop_reason is not None else {}),
            }
        ),
        **({"fingerprint": str(fitted.fingerprint)} if fitted.fingerprint else {}),
        **({"offset": json.dumps(float(fitted.offset))} if fitted.offset is not None else {}),
        **({"feature_names_in": json.dumps([str(n) for n in names])} if names is not None else {}),
        **({"columns": fitted.schema.to_json()} if fitted.schema is not None else {}),
    }


def model_tensors(fitted: Fitted, *, encoder_only: bool) -> dict[str, torch.Tensor]:
    """Every array of a fitted model, by its name in the file."""
    state = {k: v.detach().cpu().contiguous() for k, v in fitted.net.state_dict().items()}
    if encoder_only:
        state = {k: v for k, v in state.items() if k.startswith(_ENCODER_PARTS)}
    else:  # the ensemble's other networks, "member1.<name>" ... (n_estimators > 1)
        for i, member in enumerate(fitted.members or [], start=1):
            state.update({f"{_MEMBER}{i}.{k}": v.detach().cpu().contiguous() for k, v in member.state_dict().items()})
    arrays = {
        "scaler.offset": fitted.scaler.offset,
        "scaler.scale": fitted.scaler.scale,
        "pca.mean": fitted.pca_mean,
        "pca.components": fitted.pca_components,
    }
    # what the anomaly score learned from the training rows (scoring.Score.fit), e.g. reference codes
    arrays.update({f"{_SCORE}{k}": v for k, v in (fitted.score_state or {}).items()})
    if fitted.pca_scale is not None:  # a table's PCA baseline works on the standardized table
        arrays["pca.scale"] = fitted.pca_scale
    state.update({k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in arrays.items()})
    # a quantized model's integer coding tables, and its pixel tables (docs/format.md, section 2.6)
    tables = fitted.net.bottleneck.tables
    if tables is not None:
        for name, arr in zip(_TABLES, (tables.cdf, tables.lengths, tables.offsets), strict=True):
            state[name] = torch.from_numpy(np.array(arr, dtype=np.int32))  # a writable copy
    if fitted.lossless_tables is not None:
        state.update(
            {k: torch.from_numpy(np.array(v, dtype=np.int32)) for k, v in fitted.lossless_tables.tensors().items()}
        )
    return state


def _format_version(pixels: PixelCoder | None, schema: Schema | None = None) -> int:
    """The lowest model format that describes a model with the pixel model ``pixels`` and the column schema
    ``schema`` (docs/format.md, 2.5): a table head is version 5, and 6 when it measures categorical cells by
    another loss than the cross-entropy (a reader of version 5 would score them with the cross-entropy)."""
    if schema is not None and schema.missing_mask:
        return 6 if schema.categorical and schema.categorical_loss != "cross_entropy" else 5
    return 1 if pixels is None else pixels.format_version


def fingerprint(fitted: Fitted) -> str:
    """SHA-256 (hex) of what decoding depends on: the network's weights, the scaler, the coding tables.

    The canonical bytes of every tensor of the full model file but ``pca.*``, ``score.*`` and ``member*``,
    with the input shape as the only metadata (docs/format.md, section 2.6). The configuration is left out
    on purpose: a new parameter in a later isthmus must not change the fingerprint of a model that it does
    not change.
    """
    tensors = {k: v for k, v in model_tensors(fitted, encoder_only=False).items() if not k.startswith(_NOT_DECODING)}
    metadata = {"input_shape": json.dumps(list(fitted.input_shape))}
    return hashlib.sha256(safetensors_bytes(tensors, metadata)).hexdigest()


def safetensors_bytes(tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str]) -> bytes:
    """Canonical safetensors bytes: sorted metadata, tensors by (item size descending, name), compact
    ASCII JSON header padded with spaces to a multiple of 8 bytes. (The library's writer orders the
    metadata by a randomized hash, so its bytes differ from run to run.)"""
    order = sorted(tensors, key=lambda k: (-tensors[k].element_size(), k))
    header: dict[str, Any] = {"__metadata__": dict(sorted(metadata.items()))}
    chunks: list[bytes] = []
    offset = 0
    for name in order:
        tensor = tensors[name].detach().cpu().contiguous()
        if tensor.dtype not in _DTYPES:
            raise TypeError(f"tensor {name!r} has dtype {tensor.dtype}, which the model file does not store")
        array = tensor.numpy()
        data = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()  # little-endian
        header[name] = {
            "dtype": _DTYPES[tensor.dtype],
            "shape": list(tensor.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=True).encode("ascii")
    text += b" " * (-(8 + len(text)) % 8)  # the tensor data starts 8-byte aligned
    return struct.pack("<Q", len(text)) + text + b"".join(chunks)


def save(fitted: Fitted, path: str | os.PathLike[str], *, encoder_only: bool = False, overwrite: bool = True) -> None:
    """Write a fitted model to ``path`` (``.safetensors``) atomically; ``encoder_only`` leaves the decoder out."""
    check_suffix(path, ".safetensors", "the model file")
    encoder_only = encoder_only or fitted.encoder_only  # an encoder-only model can only be saved as such
    tensors = model_tensors(fitted, encoder_only=encoder_only)
    metadata = model_metadata(fitted, encoder_only=encoder_only)
    write_bytes_atomic(path, safetensors_bytes(tensors, metadata), overwrite=overwrite)


def read_model_file(path: str | os.PathLike[str]) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """The metadata and tensors of a model file, or ModelFileError; never runs code from the file."""
    if not os.path.isfile(path):
        raise ModelFileError(f"no such model file: {path}")
    try:
        with safe_open(str(path), framework="pt") as fh:
            metadata = dict(fh.metadata() or {})
            _check_format(path, metadata)  # before reading any tensor of a foreign or newer file
            tensors = {name: fh.get_tensor(name) for name in fh.keys()}  # noqa: SIM118 (not a dict)
    except (SafetensorError, OSError, ValueError, RuntimeError, TypeError) as exc:
        if isinstance(exc, ModelFileError):
            raise
        raise ModelFileError(f"{path} is not a readable safetensors model file ({exc})") from None
    return metadata, tensors


def _check_format(path: str | os.PathLike[str], metadata: dict[str, str]) -> None:
    if metadata.get("format") != MODEL_FORMAT:
        raise ModelFileError(f"{path} is not an isthmus model file (format={metadata.get('format')!r})")
    try:
        version = int(metadata["format_version"])
    except (KeyError, ValueError):
        raise ModelFileError(f"{path}: format_version is missing or not an integer") from None
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"{path} uses model format version {version}, newer than this isthmus reads ({FORMAT_VERSION}); "
            "upgrade isthmus"
        )
    if version < 1:
        raise ModelFileError(f"{path}: format_version={version} is not a valid version (versions start at 1)")


def load(path: str | os.PathLike[str]) -> Fitted:
    """The fitted model in a file written by :func:`save`, every tensor and value checked first."""
    metadata, tensors = read_model_file(path)
    meta = _parse_metadata(path, metadata)
    params, resolved, input_shape = meta["params"], meta["resolved"], meta["input_shape"]
    n_features = math.prod(input_shape)
    schema = meta.get("columns")
    mismatch = schema is not None and (len(input_shape) != 1 or schema.width != n_features)
    if mismatch:
        schema = None  # refused below, after the tensors' shapes, which tell more
    layers = params.get("hidden_layer_sizes", ())
    if isinstance(layers, tuple) and len(layers) > len(tensors):  # every layer stores a weight tensor at least
        raise ModelFileError(
            f"{path}: metadata params give {len(layers)} hidden layers but the file holds only {len(tensors)} "
            "tensors; the file is corrupt or forged"
        )
    try:
        model_cfg, _ = split_params({**DEFAULTS, **params, "loss": resolved.get("loss")})
        with torch.device("meta"):  # shapes only: a forged config cannot make us allocate its weights
            shapes = build_net(model_cfg, input_shape, seed=0, schema=schema).state_dict()
        expected = {k: tuple(v.shape) for k, v in shapes.items()}
    except (ConfigError, ValueError, TypeError, RuntimeError, OverflowError) as exc:
        writer = metadata.get("isthmus_version", "unknown")
        raise ModelFileError(
            f"{path}: stored parameters are invalid ({exc}); the file was written by isthmus {writer}, "
            f"this is isthmus {_isthmus_version()}"
        ) from None
    n_members = 0 if meta["encoder_only"] else model_cfg.n_estimators - 1
    if meta["encoder_only"]:
        expected = {k: v for k, v in expected.items() if k.startswith(_ENCODER_PARTS)}
    members = {f"{_MEMBER}{i}.{k}": v for i in range(1, n_members + 1) for k, v in expected.items()}
    components = tensors.get("pca.components")
    n_pca = components.shape[0] if components is not None and components.dim() == 2 else 0
    most = min(model_cfg.n_components, n_features)
    if components is not None and not 1 <= n_pca <= most:
        raise ModelFileError(
            f"{path}: tensor 'pca.components' has shape {tuple(components.shape)}; "
            f"it must be (k, {n_features}) with 1 <= k <= {most}"
        )
    arrays = {"scaler.offset": input_shape, "scaler.scale": input_shape, "pca.mean": (n_features,)}
    if "pca.scale" in tensors:
        arrays["pca.scale"] = (n_features,)
    _expect_shapes(path, tensors, {**arrays, "pca.components": (n_pca, n_features), **expected, **members})
    if mismatch:
        raise ModelFileError(
            f"{path}: metadata columns describe rows of {meta['columns'].width} values, but input_shape is "
            f"{list(input_shape)}; the file is corrupt"
        )
    offset, scale = tensors["scaler.offset"], tensors["scaler.scale"]
    if not (torch.isfinite(offset).all() and torch.isfinite(scale).all() and (scale > 0).all()):
        raise ModelFileError(
            f"{path}: tensors 'scaler.offset' and 'scaler.scale' must be finite, the scale positive "
            "(the fitted scaler never stores anything else); the file is corrupt"
        )

    net = build_net(model_cfg, input_shape, seed=0, schema=schema)
    net.load_state_dict({k: tensors[k] for k in expected}, strict=not meta["encoder_only"])
    net.eval()
    ensemble = []
    for i in range(1, n_members + 1):
        member = build_net(model_cfg, input_shape, seed=0, schema=schema)
        member.load_state_dict({k: tensors[f"{_MEMBER}{i}.{k}"] for k in expected})
        ensemble.append(member.eval())
    training = meta["training"]
    fitted = Fitted(
        params=params,
        net=net,
        scaler=Scaler(tensors["scaler.offset"].numpy(), tensors["scaler.scale"].numpy()),
        input_shape=input_shape,
        resolved=resolved,
        data_range=meta["data_range"],
        history=training["history"],
        n_iter=training["n_iter"],
        best_loss=training["best_loss"],
        stop_reason=training.get("stop_reason"),
        pca_mean=tensors["pca.mean"].numpy(),
        pca_components=tensors["pca.components"].numpy(),
        encoder_only=meta["encoder_only"],
        offset=meta.get("offset"),
        feature_names_in=meta.get("feature_names_in"),
        members=ensemble,
        score_state=_score_state(path, tensors),
        schema=schema,
        pca_scale=tensors["pca.scale"].numpy() if "pca.scale" in tensors else None,
    )
    return _load_coding(path, fitted, tensors, metadata)


def _score_state(path: str | os.PathLike[str], tensors: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """The ``score.*`` tensors (the anomaly score's state), each float32 and finite."""
    state = {}
    for name, tensor in tensors.items():
        if not name.startswith(_SCORE):
            continue
        if tensor.dtype != torch.float32 or not torch.isfinite(tensor).all():
            raise ModelFileError(f"{path}: tensor {name!r} must be finite float32 (the anomaly score's state)")
        state[name[len(_SCORE) :]] = tensor.numpy()
    return state


def _load_coding(
    path: str | os.PathLike[str], fitted: Fitted, tensors: dict[str, torch.Tensor], metadata: dict[str, str]
) -> Fitted:
    """``fitted`` with its quantized bottleneck's stored tables and its checked fingerprint (section 2.6)."""
    bottleneck = fitted.net.bottleneck
    if not bottleneck.integer_code:
        return fitted
    missing = [name for name in _TABLES if name not in tensors]
    if missing:
        raise ModelFileError(f"{path}: tensor {missing[0]!r} is missing; a quantized model needs its coding tables")
    n_components = fitted.net.config.n_components
    bottleneck.tables = _read_tables(path, tensors, _TABLES, n_components)
    groups = [
        name
        for name, present in (
            ("lossless.*", _LOSSLESS[0] in tensors),
            ("pixels.*", _PIXELS[0] in tensors),
            ("pixelnet.*", any(k.startswith(_PIXELNET) for k in tensors)),
        )
        if present
    ]
    if len(groups) > 1:
        raise ModelFileError(f"{path}: it holds both {groups[0]} and {groups[1]} pixel models; a model has only one")
    pixels: PixelCoder | None = None
    if _LOSSLESS[0] in tensors:
        pixels = ReconstructionTables(_read_tables(path, tensors, _LOSSLESS, 256))
    if _PIXELS[0] in tensors:
        pixels = _read_pixel_model(path, tensors)
    if groups == ["pixelnet.*"]:
        pixels = _read_pixel_net(path, tensors)
    fitted = fitted.replace(lossless_tables=pixels)
    stored = metadata.get("fingerprint")
    if stored is not None and (len(stored) != 64 or any(ch not in "0123456789abcdef" for ch in stored)):
        raise ModelFileError(f"{path}: metadata fingerprint={stored[:80]!r} must be 64 lowercase hex digits")
    if fitted.encoder_only:
        if stored is None:
            raise ModelFileError(f"{path}: an encoder-only quantized model must store the full model's fingerprint")
        return fitted.replace(fingerprint=stored)
    computed = fingerprint(fitted)
    if stored is not None and stored != computed:
        raise ModelFileError(
            f"{path}: its tensors do not match its stored fingerprint; the file was modified after it was written"
        )
    return fitted.replace(fingerprint=computed)


def _read_tables(
    path: str | os.PathLike[str], tensors: dict[str, torch.Tensor], names: tuple[str, ...], rows: int
) -> CdfTables:
    """Integer tables from three I32 tensors, checked against the rules of entropy.CdfTables."""
    missing = [name for name in names if name not in tensors]
    if missing:
        raise ModelFileError(f"{path}: tensor {missing[0]!r} is missing; the file is incomplete")
    arrays = [tensors[name] for name in names]
    if any(a.dtype != torch.int32 for a in arrays):
        raise ModelFileError(f"{path}: the tensors {', '.join(names)} must be I32")
    if arrays[0].dim() != 2 or arrays[0].shape[0] != rows:
        raise ModelFileError(f"{path}: tensor {names[0]!r} must be ({rows}, max_length + 1)")
    tables = CdfTables(arrays[0].numpy(), arrays[1].numpy(), arrays[2].numpy())
    try:
        check_cdf_tables(tables)
    except ValueError as exc:
        raise ModelFileError(f"{path}: the tables {', '.join(names)} are invalid ({exc})") from None
    return tables


def _read_pixel_model(path: str | os.PathLike[str], tensors: dict[str, torch.Tensor]) -> PixelModel:
    """The pixel model from the pixels.* tensors, checked against docs/format.md, section 2.6."""
    bins = tensors[_PIXELS[0]]
    if bins.dtype != torch.int32 or tuple(bins.shape) != (2, 256):
        raise ModelFileError(f"{path}: tensor {_PIXELS[0]!r} must be I32 of shape (2, 256)")
    b = bins.numpy().astype(np.int64)
    n_contexts = context_count(b)
    if b.min() < 0 or n_contexts > MAX_CONTEXTS:
        raise ModelFileError(f"{path}: tensor {_PIXELS[0]!r} must hold bins >= 0 for at most {MAX_CONTEXTS} contexts")
    model = PixelModel(b, _read_tables(path, tensors, _PIXELS[1:], n_contexts))
    try:
        check_pixel_model(model)
    except ValueError as exc:
        raise ModelFileError(f"{path}: the pixel model pixels.* is invalid ({exc})") from None
    return model


def _read_pixel_net(path: str | os.PathLike[str], tensors: dict[str, torch.Tensor]) -> PixelNet:
    """The pixel network from the pixelnet.* tensors, checked against docs/format.md, section 2.6."""
    names = {k for k in tensors if k.startswith(_PIXELNET)}
    n_layers = sum(f"{_PIXELNET}w{layer}" in names for layer in range(MAX_LAYERS + 1))
    expected = {f"{_PIXELNET}{kind}{layer}" for kind in "wb" for layer in range(n_layers)} | {f"{_PIXELNET}exp"}
    if names != expected or not 1 <= n_layers <= MAX_LAYERS:
        odd = sorted(names ^ expected)
        raise ModelFileError(
            f"{path}: the pixel network must be pixelnet.w0, pixelnet.b0, ... (1 to {MAX_LAYERS} layers) and "
            f"pixelnet.exp; {odd[0] if odd else 'its layers'!r} is missing or not one of them"
        )
    if any(tensors[k].dtype != torch.int32 for k in names):
        raise ModelFileError(f"{path}: the pixel network's tensors pixelnet.* must be I32")
    layers = range(n_layers)
    net = PixelNet(
        tuple(tensors[f"{_PIXELNET}w{layer}"].numpy() for layer in layers),
        tuple(tensors[f"{_PIXELNET}b{layer}"].numpy() for layer in layers),
        tensors[f"{_PIXELNET}exp"].numpy(),
    )
    try:
        check_pixel_net(net)
    except ValueError as exc:
        raise ModelFileError(f"{path}: the pixel network pixelnet.* is invalid ({exc})") from None
    return net


def _parse_metadata(path: str | os.PathLike[str], metadata: dict[str, str]) -> dict[str, Any]:
    """Each metadata value decoded and type-checked (docs/format.md), or ModelFileError naming the key."""
    out: dict[str, Any] = {}
    for key in ("params", "resolved", "input_shape", "data_range", "encoder_only", "training"):
        try:
            out[key] = json.loads(metadata[key])
        except KeyError:
            raise ModelFileError(f"{path}: metadata key {key!r} is missing; the file is incomplete") from None
        except (ValueError, TypeError, RecursionError) as exc:
            raise ModelFileError(f"{path}: metadata {key!r} is not valid JSON ({exc})") from None

    def bad(key: str, allowed: str) -> ModelFileError:
        shown = metadata[key][:200]
        return ModelFileError(f"{path}: metadata {key}={shown} is malformed; it must be {allowed}")

    def number(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    def count(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    if not isinstance(out["params"], dict):
        raise bad("params", "a JSON object of estimator parameters")
    out["params"] = {k: tuple(v) if isinstance(v, list) else v for k, v in out["params"].items()}
    if not isinstance(out["resolved"], dict):
        raise bad("resolved", 'a JSON object such as {"loss": "mse", "scaling": "standard"}')
    shape = out["input_shape"]
    if not isinstance(shape, list) or not 1 <= len(shape) <= 3 or not all(count(s) and s >= 1 for s in shape):
        raise bad("input_shape", "a list of 1 to 3 positive integers")
    out["input_shape"] = tuple(shape)
    if not number(out["data_range"]) or not math.isfinite(out["data_range"]):
        raise bad("data_range", "a finite number")
    out["data_range"] = float(out["data_range"])
    if not isinstance(out["encoder_only"], bool):
        raise bad("encoder_only", "true or false")
    training = out["training"]
    if (
        not isinstance(training, dict)
        or not count(training.get("n_iter"))
        or not number(training.get("best_loss"))
        or not isinstance(training.get("history"), list)
        or not all(isinstance(r, dict) for r in training["history"])
        or not isinstance(training.get("stop_reason", ""), str)  # optional: files before it lack it
    ):
        raise bad(
            "training",
            'a JSON object {"n_iter": int, "best_loss": number, "history": [objects], "stop_reason": string}',
        )
    training["best_loss"] = float(training["best_loss"])
    if "columns" in metadata:  # optional: a table's column schema, absent from files written before it
        try:
            out["columns"] = Schema.from_json(metadata["columns"])
        except (ValueError, TypeError, RecursionError) as exc:
            raise bad("columns", f"a column schema (docs/format.md, section 2.7): {exc}") from None
    if "offset" in metadata:  # optional: the anomaly threshold offset_, absent from files written before it
        try:
            offset = json.loads(metadata["offset"])
        except (ValueError, TypeError, RecursionError):
            offset = None
        if not number(offset) or math.isnan(offset):
            raise bad("offset", "a number (the anomaly threshold offset_)")
        out["offset"] = float(offset)
    if "feature_names_in" in metadata:  # optional: the training columns' names, when they had names
        try:
            names = json.loads(metadata["feature_names_in"])
        except (ValueError, TypeError, RecursionError):
            names = None
        schema = out.get("columns")
        n_features = len(schema.columns) if schema is not None else math.prod(out["input_shape"])
        if not isinstance(names, list) or len(names) != n_features or not all(isinstance(n, str) for n in names):
            raise bad("feature_names_in", f"a list of {n_features} strings (the training columns' names)")
        out["feature_names_in"] = np.asarray(names, dtype=object)
    return out


def _expect_shapes(
    path: str | os.PathLike[str], tensors: dict[str, torch.Tensor], expected: dict[str, tuple[int, ...]]
) -> None:
    """Every expected tensor present, float32, with the shape the stored config implies."""
    for name, shape in expected.items():
        if name not in tensors:
            raise ModelFileError(f"{path}: tensor {name!r} is missing; the file is incomplete or foreign")
        found = tuple(tensors[name].shape)
        if found != tuple(shape):
            raise ModelFileError(f"{path}: tensor {name!r} has shape {found}, the config implies {shape}")
        if tensors[name].dtype != torch.float32:
            raise ModelFileError(f"{path}: tensor {name!r} has dtype {tensors[name].dtype}, expected float32")
