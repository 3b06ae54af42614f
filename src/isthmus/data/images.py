"""A folder of PNG/JPEG images as an array of shape (n_images, channels, height, width).

Two layouts are understood:

* ``folder/*.png`` - images directly in the folder, no labels;
* ``folder/<class>/*.png`` - one subfolder per class; the label of an image is the index of its
  subfolder among the sorted subfolder names, and files directly in the folder are ignored.

Files are read in sorted name order. When every image is 8-bit grayscale (or bilevel) the result has one
channel; a folder that mixes grayscale and color images is read as RGB (three channels): grayscale images
are repeated into the three channels, palette images are expanded, and alpha channels are dropped.
Wide grayscale images (16-bit, 32-bit integer or float) keep their values; they cannot be mixed with
8-bit or color images, whose scale differs. Names starting with a dot are skipped.

Before any pixel is decoded, every image's size is read from its header: an image larger than
Pillow's ``Image.MAX_IMAGE_PIXELS`` (a guard against decompression bombs), or a folder whose pixels
would not fit in memory, is refused with a message.
"""

from __future__ import annotations

import re
import struct
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from PIL import Image, UnidentifiedImageError

from isthmus.data.limits import check_allocation
from isthmus.errors import ConfigError, DataError

IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")
# Pillow modes read as one channel; mode "1" (bilevel) is widened to "L" so it shares the 0-255 scale.
_GRAY_MODES = frozenset({"1", "L", "I", "I;16", "F"})
# Gray modes whose values are not on the 0-255 scale: they cannot share a folder with other modes.
_WIDE_MODES = frozenset({"I", "I;16", "F"})
# What Pillow can raise while decoding a damaged file, besides OSError.
_DECODE_FAILURES = (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError, struct.error)


class ImageInfo(NamedTuple):
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
        image_size = checked_size(image_size)
    files, labels = list_images(folder)
    infos = [probe(path) for path in files]
    size = image_size or common_size(infos)
    gray = is_gray(infos)
    width, height = size
    check_allocation(
        len(infos) * (1 if gray else 3) * height * width * 4,
        f"{folder} ({len(infos):,} images of {_wxh(size)} pixels as float32)",
        "use fewer images, a smaller --image-size, or stream the folder",
    )
    X = np.empty((len(infos), 1 if gray else 3, height, width), dtype=np.float32)
    for i, info in enumerate(infos):
        X[i] = load_image(info, size, gray)
    return X, labels


def read_image_list(path: Path) -> list[npt.NDArray[np.float32]]:
    """Every image of a folder (as :func:`read_image_folder` finds them), or one image file, each at its own
    size: a list of float32 arrays ``(channels, height, width)``, all with 1 channel or all with 3.

    For a fully convolutional model, which takes images of any sizes: nothing is resized.
    """
    files = list_images(path)[0] if path.is_dir() else [path]
    infos = [probe(file) for file in files]
    gray = is_gray(infos)
    pixels = sum(width * height for width, height in (info.size for info in infos))
    check_allocation(
        pixels * (1 if gray else 3) * 4,
        f"{path} ({len(infos):,} images, {pixels:,} pixels in all, as float32)",
        "use fewer or smaller images",
    )
    return [load_image(info, info.size, gray) for info in infos]


def read_image_file(path: Path, *, image_size: tuple[int, int] | None = None) -> tuple[npt.NDArray[np.float32], None]:
    """Read one PNG/JPEG file as one sample: ``(1, channels, height, width)`` float32, raw values.

    Grayscale (and bilevel) images have one channel; palette, alpha and other modes are read as RGB.
    ``image_size`` ``(width, height)`` resizes it, as for a folder. The second value is the (absent) labels.
    """
    size = None if image_size is None else checked_size(image_size)
    info = probe(path)
    gray = info.mode in _GRAY_MODES
    width, height = size or info.size
    check_allocation(
        (1 if gray else 3) * height * width * 4,
        f"{path} ({_wxh((width, height))} pixels as float32)",
        "resize the image (--image-size)",
    )
    return load_image(info, (width, height), gray)[np.newaxis], None


def checked_size(image_size: tuple[int, int]) -> tuple[int, int]:
    """Return ``image_size`` as ``(width, height)`` ints, or raise if it is not two positive integers."""
    try:
        width, height = (int(v) for v in image_size)
        ok = width > 0 and height > 0 and tuple(image_size) == (width, height)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ConfigError(f"image_size={image_size!r} must be two positive integers (width, height), e.g. (28, 28)")
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and width * height > limit:
        raise ConfigError(
            f"image_size={_wxh((width, height))} has {width * height:,} pixels, more than the {limit:,} an image "
            "may have (PIL.Image.MAX_IMAGE_PIXELS); choose a smaller size"
        )
    return width, height


def _visible(path: Path) -> bool:
    """Whether ``path`` is not hidden (its name does not start with a dot)."""
    return not path.name.startswith(".")


def _images_in(folder: Path) -> list[Path]:
    """The image files directly in ``folder``, sorted by name."""
    return sorted(p for p in folder.iterdir() if _visible(p) and p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def list_images(folder: Path) -> tuple[list[Path], npt.NDArray[np.int64] | None]:
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


def probe(path: Path) -> ImageInfo:
    """Read the size and mode of an image from its header; refuse one too large to decode."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # refused below, with its size
            with Image.open(path) as image:
                info = ImageInfo(path, image.size, image.mode)
    except Image.DecompressionBombError as exc:  # more than twice the limit: Pillow gives the pixels only
        pixels = re.search(r"\((\d+) pixels\)", str(exc))
        shown = f"{int(pixels[1]):,} pixels" if pixels else "too many pixels"
        raise DataError(f"image {path} has {shown}, {_too_large()}") from None
    except _DECODE_FAILURES as exc:
        raise DataError(f"cannot read image {path}: {exc}; remove or replace the file") from None
    width, height = info.size
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and width * height > limit:
        raise DataError(f"image {path} is {_wxh(info.size)} ({width * height:,} pixels), {_too_large()}")
    return info


def _too_large() -> str:
    """The end of the message refusing an image above Pillow's decompression-bomb limit."""
    return (
        f"more than the {Image.MAX_IMAGE_PIXELS or 0:,} pixels isthmus decodes (PIL.Image.MAX_IMAGE_PIXELS, a guard "
        "against decompression bombs); resize the image, or raise that limit if you trust the file"
    )


def is_gray(infos: list[ImageInfo]) -> bool:
    """Whether the images are read as one channel; raise if wide grayscale is mixed with other modes."""
    wide = [info for info in infos if info.mode in _WIDE_MODES]
    other = next((info for info in infos if info.mode != wide[0].mode), None) if wide else None
    if wide and other is not None:
        raise DataError(
            f"images differ in mode: {wide[0].path.name} is {wide[0].mode} (values beyond 0-255) but "
            f"{other.path.name} is {other.mode}; save them all with the same mode (e.g. 8-bit grayscale, L)"
        )
    return all(info.mode in _GRAY_MODES for info in infos)


def common_size(infos: list[ImageInfo]) -> tuple[int, int]:
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


def load_image(info: ImageInfo, size: tuple[int, int], gray: bool) -> npt.NDArray[np.float32]:
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
    except (*_DECODE_FAILURES, Image.DecompressionBombError) as exc:
        raise DataError(f"cannot read image {info.path}: {exc}; remove or replace the file") from None
    # (height, width) -> (1, height, width); (height, width, 3) -> (3, height, width)
    return pixels[np.newaxis] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)
