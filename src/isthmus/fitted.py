"""Fitted: everything ``fit`` learns, in one record, made by ``fit`` and by loading a model file alike.

The estimator's learned attributes (``net_``, ``scaler_``, ``offset_``, ...) are this record's fields with a
trailing underscore: :meth:`Fitted.attributes` gives them, ``Autoencoder`` sets them in one place, and
:meth:`Fitted.of` reads them back from any fitted estimator. ``artifact`` saves and loads a ``Fitted``,
so a field added here is saved, loaded and compared by ``tests/test_fitted.py`` without a second list to
keep in step.

A new learned attribute is one field here (a default of ``None`` if files written before it lack it),
its metadata key or tensors in ``artifact``, and a line in docs/format.md.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from isthmus.errors import EncoderOnlyError, NotFittedError
from isthmus.model import AutoencoderNet, batched, device_of, net_shape, seeded_generator
from isthmus.scaling import Scaler
from isthmus.settings import DEFAULTS
from isthmus.shapes import any_length, any_size

if TYPE_CHECKING:
    from collections.abc import Callable

    from isthmus.data.schema import Schema
    from isthmus.lossless import PixelCoder

#: fields whose ``None`` means "absent": the estimator then has no such attribute (scikit-learn sets
#: ``feature_names_in_`` only for data with column names; a file written before thresholds has no ``offset_``)
OPTIONAL = ("offset", "feature_names_in")


@dataclasses.dataclass(eq=False)
class Fitted:
    """What a fitted :class:`~isthmus.Autoencoder` holds besides its parameters.

    Attributes
    ----------
    params : dict
        The estimator's parameters (``get_params()``), from which a loaded model is constructed.
    net : AutoencoderNet
    scaler : Scaler
    input_shape : tuple of int
        One sample's shape as given to ``fit``.
    resolved : dict of str to str
        The settings ``"auto"`` resolved to (``loss``, ``scaling``).
    data_range : float
        Largest minus smallest training value (1.0 for constant data): the peak of PSNR.
    history : list of dict
        Per-epoch named metrics.
    n_iter : int
    best_loss : float
    pca_mean, pca_components : ndarray
        The PCA baseline of the same width, ``(n_features,)`` and ``(k, n_features)`` float32.
    encoder_only : bool
        True for a model loaded from ``export_encoder``'s file: it encodes but cannot decode.
    offset : float or None
        Threshold on ``score_samples``; None for a file written before thresholds were stored.
    lossless_tables : PixelCoder or None
        The pixel model of lossless streams (quantized models fitted on 8-bit data): a ``PixelNet``, a
        ``PixelModel``, or the ``ReconstructionTables`` of a file from before them.
    fingerprint : str or None
        SHA-256 (hex) of what decoding depends on; quantized models only.
    feature_names_in : ndarray of str or None
        Column names of the training data, when it had them (a DataFrame).
    members : list of AutoencoderNet
        The ensemble's other ``n_estimators - 1`` networks (empty for one network).
    score_state : dict of str to ndarray
        What the anomaly score learned from the training rows (``scoring.Score.fit``); empty for most.
    schema : Schema or None
        The training table's columns (names, order, kinds, levels; :mod:`isthmus.data.schema`); None for
        images, streamed rows and files written before schemas were stored.
    pca_scale : ndarray or None
        ``(n_features,)`` float32: a table's PCA baseline works on its encoding divided by this (the
        standardized one-hot table); None for other data.
    stop_reason : str or None
        Why training stopped, in one sentence (early stopping, target_loss, max_iter); None for a file
        written before it was stored.
    """

    params: dict[str, Any]
    net: AutoencoderNet
    scaler: Scaler
    input_shape: tuple[int, ...]
    resolved: dict[str, str]
    data_range: float
    history: list[dict[str, Any]]
    n_iter: int
    best_loss: float
    pca_mean: np.ndarray
    pca_components: np.ndarray
    encoder_only: bool = False
    offset: float | None = None
    lossless_tables: PixelCoder | None = None
    fingerprint: str | None = None
    feature_names_in: np.ndarray | None = None
    members: list[AutoencoderNet] = dataclasses.field(default_factory=list)
    score_state: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    schema: Schema | None = None
    pca_scale: np.ndarray | None = None
    stop_reason: str | None = None

    @property
    def n_features_in(self) -> int:
        """Columns of a table, else values per sample (the product of ``input_shape``)."""
        return len(self.schema.columns) if self.schema is not None else math.prod(self.input_shape)

    def attributes(self) -> dict[str, Any]:
        """The estimator's learned attributes, ``{"net_": ..., "n_features_in_": ...}``; an ``OPTIONAL``
        field that is None is left out, so that the estimator has no such attribute."""
        out = {f"{name}_": getattr(self, name) for name in FIELDS}
        out["n_features_in_"] = self.n_features_in
        for name in OPTIONAL:
            if out[f"{name}_"] is None:
                del out[f"{name}_"]
        return out

    @classmethod
    def of(cls, estimator: Any) -> Fitted:
        """The record of a fitted estimator, read from its public parameters and ``*_`` attributes.

        Raises
        ------
        NotFittedError
            If ``estimator`` is not fitted.
        """
        check_fitted(estimator)
        values: dict[str, Any] = {name: getattr(estimator, f"{name}_", None) for name in FIELDS}
        values["input_shape"] = tuple(values["input_shape"])
        return cls(params=dict(estimator.get_params()), **values)

    def replace(self, **changes: Any) -> Fitted:
        """A copy with ``changes`` (field name -> value); the network and arrays are shared, not copied."""
        return dataclasses.replace(self, **changes)

    # -------------------------------------------------------------------- inference on the record

    def param(self, name: str) -> Any:
        """The estimator parameter ``name``; its default for a file written before the parameter existed."""
        return self.params.get(name, DEFAULTS[name])

    @property
    def device(self) -> torch.device:
        """Where the network's weights are."""
        return device_of(self.net)

    def batched(self, fn: Callable[[torch.Tensor], torch.Tensor], x: np.ndarray) -> np.ndarray:
        """``fn`` over the rows of ``x`` in inference batches on the network's device and ``precision``."""
        return batched(fn, x, self.device, self.param("precision"))

    def generator(self, random_state: Any) -> torch.Generator:
        """A torch generator on the network's device, seeded from ``random_state``."""
        return seeded_generator(random_state, self.device)

    @property
    def spatial(self) -> bool:
        """Whether the network is fully convolutional: its code is a map, and it takes images of any size."""
        return bool(self.net.config.fully_convolutional)

    def scale(self, x: np.ndarray) -> np.ndarray:
        """Samples ``(n_samples, *input_shape)`` in the caller's units -> scaled, ``(n_samples, *net shape)``;
        for a fully convolutional network, images of any height and width, with one global offset and scale."""
        if self.spatial:
            return any_size(self.scaler).transform(x).reshape(len(x), *net_shape(x.shape[1:]))
        shape = self.net.input_shape  # net_shape(input_shape), or a series model's (n_channels, window) as it is
        return self.scaler.transform(x.reshape(len(x), *self.input_shape)).reshape(len(x), *shape)

    def encode(self, scaled: np.ndarray) -> np.ndarray:
        """Scaled samples ``(n_samples, *net shape)`` -> their deterministic codes ``(n_samples, n_components)``."""
        self.net.eval()
        codes = self.batched(self.net.encode, scaled)  # a code map (n_samples, n_components, h, w) if spatial
        return codes if self.spatial else codes.reshape(-1, self.net.config.n_components)

    def check_decoder(self, what: str) -> None:
        """Raise EncoderOnlyError, saying what cannot be done, for a model without its decoder."""
        if self.encoder_only:
            raise EncoderOnlyError(f"this model file holds only the encoder, so it cannot {what}; use the full model")

    def decode(self, code: np.ndarray) -> np.ndarray:
        """Codes ``(n_samples, n_components)`` -> samples ``(n_samples, *input_shape)`` in the caller's units."""
        self.check_decoder("decode")
        if self.net.training:
            self.net.eval()
        out = self.batched(self.net.decode, code)
        if self.spatial and self.param("window") is not None:  # series windows (n, channels, s * length)
            return any_length(self.scaler).inverse_transform(out)
        if self.spatial:  # (n, channels, s * h, s * w), without the channel axis if the training images had none
            shape = out.shape[-len(self.input_shape) :]
            return any_size(self.scaler).inverse_transform(out.reshape(len(code), *shape))
        return self.scaler.inverse_transform(out.reshape(len(code), *self.input_shape))


#: every field the estimator shows as an attribute (all but ``params``, which are its constructor's arguments)
FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Fitted) if f.name != "params")


def attribute_names() -> tuple[str, ...]:
    """Every learned attribute a fitted estimator may have, ``n_features_in_`` included."""
    return (*(f"{name}_" for name in FIELDS), "n_features_in_")


def check_fitted(estimator: Any) -> None:
    """Raise NotFittedError if ``estimator`` has no fitted state (neither ``fit`` nor a loaded file gave it one)."""
    if not hasattr(estimator, "net_"):
        raise NotFittedError(
            f"this {type(estimator).__name__} is not fitted yet; call fit(X) first or load a model file"
        )
