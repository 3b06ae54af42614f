"""Sample shapes: which arrays hold whole samples of a model's input, said once for every entry point.

A model of a fixed input size takes samples of exactly that shape. A batch is never reshaped into
samples it is not: a 512x512 image is not sixteen 128x128 ones, even though it holds as many values.
The only other forms of one sample that are accepted are the same pixels with or without a leading
channel axis of 1 (a ``(28, 28)`` image for a model of ``(1, 28, 28)`` samples, and back), and the
flat row of its values, ``(n_features,)``, in a 2-D array of rows.

A fully convolutional model (``fully_convolutional=True``) takes images of any height and width with
its number of channels: :func:`image_shape_for` says which.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from isthmus.errors import DataError
from isthmus.scaling import Scaler


def _squeezed(shape: tuple[int, ...]) -> tuple[int, ...]:
    """``shape`` without a leading channel axis of 1 on an image ``(1, H, W)``."""
    return shape[1:] if len(shape) == 3 and shape[0] == 1 else shape


def same_sample(shape: Sequence[int], sample_shape: Sequence[int], *, flat: bool = True) -> bool:
    """Whether one sample of ``shape`` is one sample of ``sample_shape``.

    True when the shapes are equal, equal but for a leading channel axis of 1, or (with ``flat``) when
    one is the flat row ``(n_features,)`` of the other: a model of flat rows reads an image's values in
    their row-major order, and a flat row is an image's values in that order.
    """
    got, want = tuple(int(s) for s in shape), tuple(int(s) for s in sample_shape)
    if got == want or _squeezed(got) == _squeezed(want):
        return True
    return flat and (len(got) == 1 or len(want) == 1) and math.prod(got) == math.prod(want)


def _channels_differ(shape: tuple[int, ...], tail: tuple[int, ...]) -> bool:
    """Whether a batch of images ``(n, C, H, W)`` (4 or more axes) matched on its last two axes ``tail``
    has ``C > 1`` channels: colour images for a one-channel model, never read as ``C`` grey ones."""
    return len(tail) == 2 and len(shape) >= 4 and shape[-3] != 1


def describe(shape: Sequence[int]) -> str:
    """A sample shape in words: ``"512x512 images (shape (3, 512, 512))"`` for images, else its shape."""
    shape = tuple(int(s) for s in shape)
    if len(shape) in (2, 3):
        return f"{shape[-1]}x{shape[-2]} images (shape {shape})"
    return f"samples of shape {shape}"


def mismatch(shape: Sequence[int], sample_shape: Sequence[int], what: str = "X") -> DataError:
    """The error refusing samples of ``shape`` for a model of fixed ``sample_shape``, naming both sizes."""
    shape, sample_shape = tuple(int(s) for s in shape), tuple(int(s) for s in sample_shape)
    hint = "pass data like the training data"
    if len(sample_shape) in (2, 3) and len(shape) in (2, 3):
        width, height = sample_shape[-1], sample_shape[-2]
        hint = (
            f"resize them to {width}x{height} (--image-size {width}x{height}), or train a fully convolutional "
            "model (architecture='conv', fully_convolutional=True) to use images of any size"
        )
    return DataError(
        f"{what} holds {describe(shape)}, but this model has a fixed input size: {describe(sample_shape)}; {hint}"
    )


def samples_in(shape: Sequence[int], sample_shape: Sequence[int], what: str = "X") -> int:
    """How many samples of ``sample_shape`` an array of ``shape`` holds, read from its axes.

    The array is one sample (:func:`same_sample`), or samples along its leading axes: its trailing axes
    are one sample's shape (with or without a channel axis of 1), or it is a 2-D array of flat rows.
    Anything else raises :func:`mismatch`'s DataError, naming both sizes.
    """
    shape, sample_shape = tuple(int(s) for s in shape), tuple(int(s) for s in sample_shape)
    if same_sample(shape, sample_shape, flat=False):
        return 1
    for tail in {sample_shape, _squeezed(sample_shape), (1, *sample_shape) if len(sample_shape) == 2 else ()}:
        if tail and len(shape) > len(tail) and shape[-len(tail) :] == tail and not _channels_differ(shape, tail):
            return math.prod(shape[: -len(tail)])
    if len(shape) == 2 and shape[1] == math.prod(sample_shape):
        return shape[0]
    one = shape[1:] if len(shape) > len(sample_shape) else shape
    raise mismatch(one, sample_shape, what)


def any_size_image(shape: Sequence[int], sample_shape: Sequence[int]) -> bool:
    """Whether a fully convolutional model trained on samples of ``sample_shape`` takes samples of ``shape``:
    images with its channels (with or without a channel axis of 1), of any height and width."""
    got, want = _squeezed(tuple(int(s) for s in shape)), _squeezed(tuple(int(s) for s in sample_shape))
    return len(want) in (2, 3) and len(got) == len(want) and got[:-2] == want[:-2] and min(got[-2:]) >= 1


def any_size(scaler: Scaler) -> Scaler:
    """An image scaler (one global offset and scale, stored broadcast to the training images' shape) that
    broadcasts to images of any height and width: its arrays cut to one pixel, ``(..., 1, 1)``."""
    return Scaler(offset=scaler.offset[..., :1, :1], scale=scaler.scale[..., :1, :1])


def any_length(scaler: Scaler) -> Scaler:
    """A series scaler (one offset and scale per channel, stored broadcast to one window, ``(channels,
    window)``) that broadcasts to windows of any length: its arrays cut to one timestamp, ``(channels, 1)``."""
    return Scaler(offset=scaler.offset[..., :1], scale=scaler.scale[..., :1])


def spatial_samples(shape: Sequence[int], sample_shape: Sequence[int]) -> tuple[int, tuple[int, ...]]:
    """``(m, image shape)``: the images of any height and width that an array of ``shape`` holds for a fully
    convolutional model trained on samples of ``sample_shape``, read from its axes (never reshaped).

    With several channels ``C``, the array's last three axes are ``(C, height, width)``; with one, its last
    two are ``(height, width)`` (a channel axis of 1 before them counts as a sample axis of 1). The axes
    before are samples. Anything else raises a DataError naming both shapes.
    """
    shape, sample_shape = tuple(int(s) for s in shape), tuple(int(s) for s in sample_shape)
    channels = sample_shape[0] if len(sample_shape) == 3 else 1
    rank = 3 if channels > 1 else 2
    if channels > 1:
        wrong = len(shape) < rank or shape[-3] != channels
    else:
        wrong = len(shape) < rank or _channels_differ(shape, shape[-2:])
    if wrong or min(shape, default=0) < 1:
        want = f"({channels}, height, width)" if channels > 1 else "(height, width)"
        raise DataError(
            f"an array of shape {shape} does not hold images {want} of any size, which this fully convolutional "
            f"model takes (it was trained on samples of shape {sample_shape}); pass images with its channels"
        )
    return math.prod(shape[:-rank]), shape[-rank:]
