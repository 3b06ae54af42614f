"""ONNX export: the encoder or the decoder as a standalone graph, the scaler folded in.

The encoder graph takes one input ``x`` of shape (batch, *sample shape) in the caller's units (the units
``fit`` saw) and returns ``code`` (batch, n_components): what ``Autoencoder.transform`` returns, the
posterior mean for a variational model. The decoder graph takes ``code`` and returns ``x`` in the
caller's units and sample shape, as ``inverse_transform`` does. The batch axis is dynamic.

Exported with torch's TorchScript-based exporter (``dynamo=False``): it needs the ``onnx`` package but
neither ``onnxscript`` nor a network, and it handles every architecture, bottleneck and penalty here.
"""

from __future__ import annotations

import copy
import os
import warnings
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from isthmus._files import atomic_path
from isthmus._optional import import_optional
from isthmus.errors import ConfigError, EncoderOnlyError
from isthmus.fitted import check_fitted
from isthmus.model import AutoencoderNet

if TYPE_CHECKING:
    from isthmus.estimator import Autoencoder

#: the parts a model can be exported as
PARTS = ("encoder", "decoder")
#: ONNX opset of the exported graphs (onnxruntime 1.14 and later run it)
OPSET = 17


class EncoderGraph(nn.Module):
    """``(batch, *sample shape)`` in the caller's units -> ``(batch, n_components)``, the deterministic code."""

    offset: Tensor
    scale: Tensor

    def __init__(self, net: AutoencoderNet, offset: Tensor, scale: Tensor) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("offset", offset[None])  # (1, *sample shape)
        self.register_buffer("scale", scale[None])

    def forward(self, x: Tensor) -> Tensor:
        scaled = ((x - self.offset) / self.scale).reshape(-1, *self.net.input_shape)
        h = self.net.encoder(scaled)
        bottleneck = self.net.bottleneck
        # a variational bottleneck's forward draws noise; its posterior mean is what transform returns
        mean = bottleneck.posterior(h)[0] if bottleneck.variational else bottleneck(h).mean
        return self.net.constrain(mean)  # (batch, n_components)


class DecoderGraph(nn.Module):
    """``(batch, n_components)`` -> ``(batch, *sample shape)`` in the caller's units."""

    offset: Tensor
    scale: Tensor

    def __init__(self, net: AutoencoderNet, offset: Tensor, scale: Tensor) -> None:
        super().__init__()
        self.net = net
        self.sample_shape = tuple(offset.shape)
        self.register_buffer("offset", offset[None])  # (1, *sample shape)
        self.register_buffer("scale", scale[None])

    def forward(self, code: Tensor) -> Tensor:
        out = self.net.decode(code).reshape(-1, *self.sample_shape)
        return out * self.scale + self.offset


def onnx_graph(ae: Autoencoder, part: str = "encoder") -> nn.Module:
    """The module that ``export_onnx`` writes: a CPU float32 copy of ``ae``'s ``part``, scaler included."""
    check_fitted(ae)
    if part not in PARTS:
        raise ConfigError(f"part={part!r} is not allowed; choose one of: {', '.join(PARTS)}")
    if part == "decoder" and ae.encoder_only_:
        raise EncoderOnlyError(
            "this model file holds only the encoder, so its decoder cannot be exported; use the full model file"
        )
    net = copy.deepcopy(ae.net_).to("cpu", torch.float32).eval()
    offset = torch.from_numpy(ae.scaler_.offset.copy()).reshape(ae.input_shape_)
    scale = torch.from_numpy(ae.scaler_.scale.copy()).reshape(ae.input_shape_)
    graph = EncoderGraph(net, offset, scale) if part == "encoder" else DecoderGraph(net, offset, scale)
    return graph.eval()


def export_onnx(
    ae: Autoencoder, path: str | os.PathLike[str], *, part: str = "encoder", overwrite: bool = True
) -> None:
    """Write ``ae``'s encoder or decoder to ``path`` as an ONNX model (atomically).

    Parameters
    ----------
    ae : Autoencoder
        A fitted model (an encoder-only model exports its encoder only).
    path : path
        The ``.onnx`` file to write.
    part : {"encoder", "decoder"}, default="encoder"
        ``"encoder"``: input ``x`` (batch, *sample shape) in the caller's units, output ``code``
        (batch, n_components). ``"decoder"``: input ``code``, output ``x``.
    overwrite : bool, default=True
        Replace an existing file; if False an existing ``path`` raises OutputError.

    Raises
    ------
    DependencyError
        If the ``onnx`` package (extra ``isthmus[onnx]``) is not installed.
    EncoderOnlyError
        If ``part="decoder"`` and the model holds only the encoder.
    """
    graph = onnx_graph(ae, part)
    import_optional("onnx", extra="onnx", feature="export-onnx")
    if part == "encoder":
        example = torch.zeros((2, *ae.input_shape_), dtype=torch.float32)
        names = (["x"], ["code"])
    else:
        example = torch.zeros((2, ae.n_components), dtype=torch.float32)
        names = (["code"], ["x"])
    with atomic_path(path, overwrite=overwrite) as tmp, warnings.catch_warnings(), torch.no_grad():
        # the TorchScript exporter is deprecated in favour of dynamo, which would need onnxscript
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(
            graph,
            (example,),
            str(tmp),
            dynamo=False,
            input_names=names[0],
            output_names=names[1],
            dynamic_axes={names[0][0]: {0: "batch"}, names[1][0]: {0: "batch"}},
            opset_version=OPSET,
        )
