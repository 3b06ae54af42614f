"""Training on random crops (``crop_size``) of images of any sizes, for a fully convolutional network.

The images stay whole in memory, each ``(channels, height, width)`` of its own size. An epoch is a fresh
draw of square crops, ``crop_size`` pixels a side, at uniformly random positions: about one crop per
``crop_size**2`` pixels of each image (at least one), so that an epoch covers each image about once,
large images more often than small ones. The positions come from the training loop's seeded generator,
so equal seeds train equal networks; validation crops (and the crops ``fit`` keeps at hand for the
coding tables, the PCA baseline and the anomaly threshold) sit at fixed, seeded positions.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from isthmus.batches import Shard, shard
from isthmus.data import check_finite
from isthmus.errors import DataError
from isthmus.inputs import as_input
from isthmus.scaling import Scaler, scaler_from_moments

#: bytes of crops kept at hand after training (coding tables, PCA baseline, threshold), at most
SAMPLE_BYTES = 64 << 20
#: the seed of the fixed crop positions of validation and of the crops kept at hand
_FIXED_SEED = 0


def as_images(X: Any) -> list[np.ndarray]:
    """``X`` as a list of float32 images ``(channels, height, width)``, each of its own size.

    Parameters
    ----------
    X : array-like or sequence of array-likes
        An array of images ``(n, channels, height, width)`` or ``(n, height, width)``, or a sequence
        (list, tuple) of images ``(channels, height, width)`` or ``(height, width)`` of any sizes, all
        with the same number of channels.

    Raises
    ------
    DataError
        If ``X`` holds no images, an image has another rank or number of channels, or a value is not finite.
    """
    if isinstance(X, (list, tuple)):
        images = [np.asarray(as_input(image), dtype=np.float32) for image in X]
        images = [image[np.newaxis] if image.ndim == 2 else image for image in images]
    else:
        x = np.asarray(as_input(X), dtype=np.float32)
        if x.ndim not in (3, 4):
            raise DataError(
                f"crop_size trains on images, (n, channels, height, width) or (n, height, width), or a list of "
                f"images of any sizes; got an array of shape {x.shape}"
            )
        images = list(x[:, np.newaxis] if x.ndim == 3 else x)
    if not images:
        raise DataError("crop_size trains on images, but X holds none")
    first = images[0].shape
    for i, image in enumerate(images):
        if image.ndim != 3 or image.shape[0] != first[0] or 0 in image.shape:
            raise DataError(
                f"image {i} has shape {image.shape}, but image 0 has {first}: the images must all be "
                "(channels, height, width) or (height, width) with the same number of channels"
            )
        check_finite(image, f"image {i}")
    return images


class CropSource:
    """A batch source (``isthmus.batches.BatchSource``) of square crops of images of any sizes.

    ``shuffled`` draws each epoch's crop positions from the loop's generator; ``ordered`` gives crops at
    fixed positions (seeded once), the same on every call.
    """

    def __init__(self, images: Sequence[Tensor], crop: int, device: torch.device | None = None) -> None:
        self.images = list(images)
        self.crop = crop
        self.device = device or torch.device("cpu")
        sizes = torch.tensor([image.shape[-2:] for image in self.images], dtype=torch.long)  # (n_images, 2)
        counts = [max(1, round(int(h) * int(w) / crop**2)) for h, w in sizes.tolist()]
        self._owner = torch.repeat_interleave(torch.arange(len(self.images)), torch.tensor(counts))  # (n_crops,)
        self._room = sizes[self._owner] - crop + 1  # (n_crops, 2): the positions each crop can take
        fixed = torch.Generator().manual_seed(_FIXED_SEED)
        self._fixed = self._positions(fixed)

    def __len__(self) -> int:
        return len(self._owner)

    def to(self, device: torch.device) -> CropSource:
        return CropSource([image.to(device) for image in self.images], self.crop, device)

    def _positions(self, generator: torch.Generator) -> Tensor:
        """(n_crops, 2) top-left corners drawn uniformly over each crop's image."""
        draw = torch.rand(self._room.shape, generator=generator, dtype=torch.float64)
        return (draw * self._room).long().minimum(self._room - 1)

    def _batch(self, slots: Tensor, corners: Tensor) -> Tensor:
        c = self.crop
        crops = [
            self.images[int(self._owner[i])][:, top : top + c, left : left + c]
            for i, (top, left) in zip(slots.tolist(), corners[slots].tolist(), strict=True)
        ]
        return torch.stack(crops)  # (batch, channels, crop, crop)

    def shuffled(self, generator: torch.Generator, batch_size: int, part: Shard) -> Iterator[Tensor]:
        corners = self._positions(generator)
        order = torch.randperm(len(self), generator=generator)
        for start in range(0, len(order), batch_size):
            batch = shard(self._batch(order[start : start + batch_size], corners), part)
            if batch is not None:
                yield batch

    def ordered(self, batch_size: int, part: Shard) -> Iterator[Tensor]:
        for start in range(0, len(self), batch_size):
            batch = shard(self._batch(torch.arange(start, min(start + batch_size, len(self))), self._fixed), part)
            if batch is not None:
                yield batch


class CropData(NamedTuple):
    """What ``fit`` needs of images trained on in crops."""

    scaler: Scaler  # one global offset and scale, broadcast to (channels, crop, crop)
    low: float  # smallest scaled value
    high: float  # largest scaled value
    data_range: float  # max - min of the raw values (1.0 when that is 0)
    sample: np.ndarray  # (n, channels, crop, crop) raw crops at fixed positions, kept at hand
    train: CropSource
    val: CropSource | None


def crop_training(
    images: list[np.ndarray],
    crop: int,
    scaling: str,
    *,
    validation_fraction: float | None,
    seed: int,
    noise: float = 0.0,
) -> CropData:
    """The scaler of every pixel of ``images``, and crop sources of the scaled images (a seeded share of the
    images held out for validation when ``validation_fraction`` is given); ``noise`` as in
    :func:`isthmus.scaling.with_noise`.

    Raises
    ------
    DataError
        If an image is smaller than the crop, or too few images are left to hold some out.
    """
    for i, image in enumerate(images):
        if min(image.shape[-2:]) < crop:
            raise DataError(
                f"image {i} is {image.shape[-1]}x{image.shape[-2]} pixels, smaller than crop_size={crop}; "
                "lower crop_size or leave the smaller images out"
            )
    channels = images[0].shape[0]
    shape = (channels, crop, crop)
    pixels = sum(image.size for image in images)
    total = sum(float(image.sum(dtype=np.float64)) for image in images)
    mean = total / pixels
    var = sum(float(np.square(image - mean, dtype=np.float64).sum()) for image in images) / pixels
    lo, hi = min(float(image.min()) for image in images), max(float(image.max()) for image in images)
    low, high, mu, sd = (np.full(shape, v, np.float64) for v in (lo, hi, mean, math.sqrt(var)))
    scaler = scaler_from_moments(low, high, mu, sd, scaling, is_image=True, noise=noise)
    offset, scale = float(scaler.offset.flat[0]), float(scaler.scale.flat[0])
    scaled = [torch.from_numpy(((image - offset) / scale).astype(np.float32)) for image in images]
    train, val = list(range(len(images))), None
    if validation_fraction is not None:
        if len(images) < 2:
            raise DataError(
                f"holding out validation_fraction={validation_fraction} of the images needs at least 2 images, "
                f"got {len(images)}; give more images or set early_stopping=False"
            )
        order = np.random.RandomState(seed).permutation(len(images))
        n_val = min(max(1, round(validation_fraction * len(images))), len(images) - 1)
        train, val = sorted(order[n_val:].tolist()), sorted(order[:n_val].tolist())
    source = CropSource([scaled[i] for i in train], crop)
    raw = CropSource([torch.from_numpy(images[i]) for i in train], crop)  # the same crops, in raw values
    n_keep = max(1, min(len(raw), SAMPLE_BYTES // (4 * math.prod(shape))))
    kept = next(raw.ordered(n_keep, Shard())).numpy()
    return CropData(
        scaler=scaler,
        low=(lo - offset) / scale,
        high=(hi - offset) / scale,
        data_range=(hi - lo) or 1.0,
        sample=kept,
        train=source,
        val=None if val is None else CropSource([scaled[i] for i in val], crop),
    )
