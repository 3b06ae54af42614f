"""The model file: one ``.safetensors`` file with weights and arrays, and JSON metadata (docs/format.md).

Loading never unpickles: safetensors holds only raw tensors, and every tensor name and shape is checked
against the network that the stored config describes before any weight is used.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from isthmus._files import atomic_path
from isthmus.config import DEFAULTS, split_params
from isthmus.errors import ConfigError, ModelFileError
from isthmus.scaling import Scaler

if TYPE_CHECKING:
    from isthmus.estimator import Autoencoder

MODEL_FORMAT = "isthmus.model"
FORMAT_VERSION = 1
_ENCODER_PARTS = ("encoder.", "bottleneck.")


def _version() -> str:
    from isthmus import __version__

    return __version__


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def model_metadata(ae: Autoencoder, *, encoder_only: bool) -> dict[str, str]:
    """The JSON metadata of a fitted estimator, every value a string (safetensors' rule)."""
    return {
        "format": MODEL_FORMAT,
        "format_version": str(FORMAT_VERSION),
        "isthmus_version": _version(),
        "torch_version": torch.__version__.split("+")[0],
        "params": json.dumps({k: _jsonable(v) for k, v in sorted(ae.get_params().items())}),
        "resolved": json.dumps(ae.resolved_, sort_keys=True),
        "input_shape": json.dumps(list(ae.input_shape_)),
        "data_range": json.dumps(ae.data_range_),
        "encoder_only": json.dumps(encoder_only),
        "training": json.dumps({"n_iter": ae.n_iter_, "best_loss": ae.best_loss_, "history": ae.history_}),
    }


def model_tensors(ae: Autoencoder, *, encoder_only: bool) -> dict[str, torch.Tensor]:
    """Every array of a fitted estimator, by its name in the file."""
    state = {k: v.detach().cpu().contiguous() for k, v in ae.net_.state_dict().items()}
    if encoder_only:
        state = {k: v for k, v in state.items() if k.startswith(_ENCODER_PARTS)}
    arrays = {
        "scaler.offset": ae.scaler_.offset,
        "scaler.scale": ae.scaler_.scale,
        "pca.mean": ae.pca_mean_,
        "pca.components": ae.pca_components_,
    }
    state.update({k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in arrays.items()})
    return state


def save_model(
    ae: Autoencoder, path: str | os.PathLike[str], *, encoder_only: bool = False, overwrite: bool = True
) -> None:
    """Write a fitted estimator to ``path`` atomically."""
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(ae, "net_")
    if encoder_only is False and ae.encoder_only_:
        encoder_only = True  # an encoder-only model can only be saved as such
    tensors = model_tensors(ae, encoder_only=encoder_only)
    metadata = model_metadata(ae, encoder_only=encoder_only)
    with atomic_path(path, overwrite=overwrite) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def read_model_file(path: str | os.PathLike[str]) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """The metadata and tensors of a model file, or ModelFileError; never runs code from the file."""
    if not os.path.isfile(path):
        raise ModelFileError(f"no such model file: {path}")
    try:
        with safe_open(str(path), framework="pt") as fh:
            metadata = dict(fh.metadata() or {})
            tensors = {name: fh.get_tensor(name) for name in fh.keys()}  # noqa: SIM118 (not a dict)
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ModelFileError(f"{path} is not a readable safetensors model file ({exc})") from None
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
    return metadata, tensors


def load_model(path: str | os.PathLike[str]) -> Autoencoder:
    """Rebuild a fitted :class:`Autoencoder` from a model file written by ``save``/``export_encoder``."""
    from isthmus.estimator import Autoencoder, build_net, net_shape

    metadata, tensors = read_model_file(path)
    try:
        params = {k: tuple(v) if isinstance(v, list) else v for k, v in json.loads(metadata["params"]).items()}
        resolved = json.loads(metadata["resolved"])
        input_shape = tuple(int(s) for s in json.loads(metadata["input_shape"]))
        data_range = float(json.loads(metadata["data_range"]))
        encoder_only = bool(json.loads(metadata["encoder_only"]))
        training = json.loads(metadata["training"])
    except (KeyError, ValueError, TypeError) as exc:
        raise ModelFileError(f"{path}: metadata is missing or malformed ({exc})") from None
    try:
        model_cfg, _ = split_params({**DEFAULTS, **params, "loss": resolved.get("loss")})
    except ConfigError as exc:
        raise ModelFileError(f"{path}: stored parameters are invalid ({exc})") from None
    if not input_shape or any(s < 1 for s in input_shape) or len(input_shape) > 3:
        raise ModelFileError(f"{path}: input_shape={list(input_shape)} is not a valid sample shape")
    feature_shape = input_shape
    _expect_shapes(
        path,
        tensors,
        {
            "scaler.offset": feature_shape,
            "scaler.scale": feature_shape,
            "pca.mean": (int(np.prod(input_shape)),),
        },
    )
    net = build_net(model_cfg, input_shape, seed=0)
    expected = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    if encoder_only:
        expected = {k: v for k, v in expected.items() if k.startswith(_ENCODER_PARTS)}
    _expect_shapes(path, tensors, expected)
    net.load_state_dict({k: tensors[k] for k in expected}, strict=not encoder_only)
    net.eval()

    ae = Autoencoder(**params)
    ae.net_ = net
    ae.scaler_ = Scaler(tensors["scaler.offset"].numpy(), tensors["scaler.scale"].numpy())
    ae.input_shape_ = input_shape
    ae.n_features_in_ = int(np.prod(input_shape))
    ae.resolved_ = resolved
    ae.data_range_ = data_range
    ae.encoder_only_ = encoder_only
    ae.pca_mean_ = tensors["pca.mean"].numpy()
    ae.pca_components_ = tensors["pca.components"].numpy()
    ae.history_ = training.get("history", [])
    ae.n_iter_ = int(training.get("n_iter", 0))
    ae.best_loss_ = float(training.get("best_loss", float("nan")))
    if ae.pca_components_.ndim != 2 or ae.pca_components_.shape[1] != ae.n_features_in_:
        raise ModelFileError(f"{path}: pca.components has shape {tuple(ae.pca_components_.shape)}")
    return ae


def _expect_shapes(path: str | os.PathLike[str], tensors: dict[str, torch.Tensor], expected: dict[str, Any]) -> None:
    for name, shape in expected.items():
        if name not in tensors:
            raise ModelFileError(f"{path}: tensor {name!r} is missing; the file is incomplete or foreign")
        if tuple(tensors[name].shape) != tuple(shape):
            raise ModelFileError(
                f"{path}: tensor {name!r} has shape {tuple(tensors[name].shape)}, the config implies {tuple(shape)}"
            )
        if tensors[name].dtype != torch.float32:
            raise ModelFileError(f"{path}: tensor {name!r} has dtype {tensors[name].dtype}, expected float32")
