"""A folder of PNG/JPEG images as an array of shape (n_images, channels, height, width).

Two layouts are understood:

* ``folder/*.png`` - images directly in the folder, no labels;
* ``folder/<class>/*.png`` - one subfolder per class; the label of an image is the index of its
  subfolder among the sorted subfolder names, and files directly in the folder are ignored.

Files are read in sorted name order. When every image is grayscale the result has one channel, otherwise
every image is converted to RGB (three channels). Names starting with a dot are skipped.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from PIL import Image, UnidentifiedImageError

from isthmus.errors import ConfigError, DataError

IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")
# Pillow modes read as one channel; mode "1" (bilevel) is widened to "L" so it shares the 0-255 scale.
_GRAY_MODES = frozenset({"1", "L", "I", "I;16", "F"})


class _ImageInfo(NamedTuple):
    """What the first pass learns about one file without decoding its pixels."""

    path: Path
    size: tuple[int, int]  # (width, height), Pillow's order
    mode: str


def read_image_folder(
    folder: Path, *, image_size: tuple[int, int] | None = None
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64] | None]:
    """Read every image in ``folder`` (and its class subfolders) into one array.

    Parameters
    ----------
    folder : Path
        The folder to read.
    image_size : (int, int) or None
        ``(width, height)`` to resize every image to. Required when the images differ in size.

    Returns
    -------
    X : ndarray of float32
        Raw pixel values, shape (n_images, channels, height, width), channels 1 or 3.
    y : ndarray of int64 or None
        Class indices of shape (n_images,) for the subfolder layout, else None.

    Raises
    ------
    DataError
        If the folder holds no images, a file cannot be decoded, or the sizes differ without
        ``image_size``.
    ConfigError
        If ``image_size`` is not two positive integers.
    """
    if image_size is not None:
        image_size = _checked_size(image_size)
    files, labels = _list_images(folder)
    infos = [_probe(path) for path in files]
    size = image_size or _common_size(infos)
    gray = all(info.mode in _GRAY_MODES for info in infos)
    width, height = size
    X = np.empty((len(infos), 1 if gray else 3, height, width), dtype=np.float32)
    for i, info in enumerate(infos):
        X[i] = _load(info, size, gray)
    return X, labels


def _checked_size(image_size: tuple[int, int]) -> tuple[int, int]:
    """Return ``image_size`` as ``(width, height)`` ints, or raise if it is not two positive integers."""
    try:
        width, height = (int(v) for v in image_size)
        ok = width > 0 and height > 0 and tuple(image_size) == (width, height)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ConfigError(
            f"image_size={image_size!r} must be two positive integers (width, height), e.g. (28, 28)"
        )
    return width, height


def _visible(path: Path) -> bool:
    """Whether ``path`` is not hidden (its name does not start with a dot)."""
    return not path.name.startswith(".")


def _images_in(folder: Path) -> list[Path]:
    """The image files directly in ``folder``, sorted by name."""
    return sorted(
        p for p in folder.iterdir() if _visible(p) and p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )


def _list_images(folder: Path) -> tuple[list[Path], npt.NDArray[np.int64] | None]:
    """The files to read and, for the class-subfolder layout, their labels."""
    classes = sorted(p for p in folder.iterdir() if _visible(p) and p.is_dir())
    if classes:
        per_class = [_images_in(sub) for sub in classes]
        files = [path for paths in per_class for path in paths]
        labels: npt.NDArray[np.int64] | None = np.repeat(
            np.arange(len(classes), dtype=np.int64), [len(paths) for paths in per_class]
        )
    else:
        files, labels = _images_in(folder), None
    if not files:
        where = f"its subfolders {', '.join(p.name for p in classes[:5])}" if classes else "it"
        raise DataError(
            f"{folder} has no images in {where}; put {', '.join(IMAGE_SUFFIXES)} files there "
            "(directly, or one subfolder per class)"
        )
    return files, labels


def _probe(path: Path) -> _ImageInfo:
    """Read the size and mode of an image from its header."""
    try:
        with Image.open(path) as image:
            return _ImageInfo(path, image.size, image.mode)
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(f"cannot read image {path}: {exc}; remove or replace the file") from None


def _common_size(infos: list[_ImageInfo]) -> tuple[int, int]:
    """The one size all images share, or a DataError naming two that differ."""
    first = infos[0]
    for info in infos[1:]:
        if info.size != first.size:
            raise DataError(
                f"images differ in size: {first.path.name} is {_wxh(first.size)} but {info.path.name} "
                f"is {_wxh(info.size)}; pass an image size to resize them all, for example "
                f"image_size={first.size} (width, height) or --image-size {_wxh(first.size)}"
            )
    return first.size


def _wxh(size: tuple[int, int]) -> str:
    """A size as ``"WxH"``."""
    return f"{size[0]}x{size[1]}"


def _load(info: _ImageInfo, size: tuple[int, int], gray: bool) -> npt.NDArray[np.float32]:
    """Decode one image to (channels, height, width) float32 at ``size``."""
    try:
        with Image.open(info.path) as opened:
            image: Image.Image = opened
            if gray:
                image = image.convert("L") if image.mode == "1" else image
            elif image.mode != "RGB":
                image = image.convert("RGB")
            if image.size != size:
                image = image.resize(size, Image.Resampling.BILINEAR)
            pixels = np.asarray(image, dtype=np.float32)
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(f"cannot read image {info.path}: {exc}; remove or replace the file") from None
    # (height, width) -> (1, height, width); (height, width, 3) -> (3, height, width)
    return pixels[np.newaxis] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)
