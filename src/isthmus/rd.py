"""Rate-distortion: real files of quantized models beside the classical image codecs, at matched PSNR.

``rate_distortion(models, X)`` compresses 8-bit images ``X`` with each model (``Autoencoder.compress``)
and with PNG, JPEG, WebP, JPEG 2000, AVIF and JPEG XL at a sweep of settings, two ways:

* ``per_image``: every image in a file of its own, as a user sending one item would;
* ``whole_set``: all images in one file; for the classical codecs, one mosaic of all the images.

Bytes are the lengths of the files written; PSNR is computed on the 8-bit outputs (peak 255) from the
mean squared error over all the images; throughput is images encoded (decoded) per second. Each model
is one point (its rate is set by ``lmbda`` at training time), each codec a curve. ``ratios`` gives each
model's bytes over the best classical codec's bytes at the same PSNR: the classical curves are
interpolated linearly in (PSNR, log bytes), as in Bjøntegaard's measure.

The codecs come from Pillow and, where Pillow lacks one (JPEG XL; AVIF before Pillow 11.3), from
``imagecodecs`` (extra ``isthmus[codecs]``). A codec that is not installed is skipped, and the reason
is returned in ``RateDistortion.skipped``. The codec table is at the end of this module.
"""

from __future__ import annotations

import csv
import io
import itertools
import math
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from isthmus._files import write_bytes_atomic
from isthmus._optional import import_optional
from isthmus.errors import ConfigError, DataError
from isthmus.shapes import mismatch, same_sample

if TYPE_CHECKING:
    from isthmus.estimator import Autoencoder

MODES = ("per_image", "whole_set")


class Codec(NamedTuple):
    """A classical codec: its settings, and functions between one 8-bit image and its file."""

    name: str
    settings: tuple[str, ...]  # quality values, or target dB for jpeg2000, or "lossless"
    encode: Callable[[np.ndarray, str], bytes]  # (height, width) or (height, width, 3) uint8, setting -> file
    decode: Callable[[bytes, bool], np.ndarray]  # file, grayscale? -> the image as encoded, uint8
    backend: str  # "Pillow" or "imagecodecs"


class RDRow(NamedTuple):
    """One point: a model, or a classical codec at one setting, in one mode."""

    mode: str  # "per_image" or "whole_set"
    codec: str  # the model's name, or the codec's
    kind: str  # "model" or "classical"
    setting: str  # "lossy"/"lossless" for a model; the codec's setting
    n_images: int
    bytes: int  # the real total: all files of this point
    bytes_per_image: float
    bits_per_pixel: float  # 8 * bytes / (n_images * height * width)
    psnr: float  # dB on the 8-bit outputs, inf when exact
    encode_images_per_s: float
    decode_images_per_s: float


class RateDistortion(NamedTuple):
    """What ``rate_distortion`` measured, and the codecs it skipped with the reason for each."""

    rows: list[RDRow]
    skipped: dict[str, str]


class Ratio(NamedTuple):
    """A model's bytes beside the best classical codec's bytes at the same PSNR, in one mode."""

    mode: str
    model: str
    setting: str
    psnr: float
    bytes_per_image: float
    codec: str  # the best classical codec at this PSNR ("none" when no codec reaches it)
    codec_bytes_per_image: float  # nan when no codec reaches this PSNR
    ratio: float  # bytes_per_image / codec_bytes_per_image


# ---------------------------------------------------------------------------- measuring


def psnr(x: np.ndarray, y: np.ndarray) -> float:
    """PSNR in dB of 8-bit ``y`` against ``x`` (same size), from the mean squared error over all pixels."""
    mse = float(np.mean((x.astype(np.float64).ravel() - y.astype(np.float64).ravel()) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def rate_distortion(
    models: Mapping[str, Autoencoder],
    X: Any,
    *,
    modes: Sequence[str] = MODES,
    codecs: Iterable[str] | None = None,
    limit: int | None = None,
    lossless: bool = False,
    search: int = 0,
    progress: Callable[[str], None] | None = None,
) -> RateDistortion:
    """Compress 8-bit images with each model and each classical codec; measure bytes, PSNR and speed.

    Parameters
    ----------
    models : mapping of name to fitted Autoencoder
        Models trained with ``bottleneck="quantized"`` on images of the shape of ``X``; may be empty.
    X : array-like of shape (n_images, height, width), (n_images, 1 or 3, height, width) or (n_images, n_pixels)
        Integers 0..255. Flat rows are reshaped to the first model's input shape.
    modes : sequence of {"per_image", "whole_set"}
    codecs : iterable of str, optional
        Classical codecs to run (names of ``CODECS``); all that are installed by default.
    limit : int, optional
        Compress only the first ``limit`` images one file each (``per_image``); ``whole_set`` takes all.
    lossless : bool, default=False
        Also measure each model's lossless streams (models fitted on 8-bit data).
    search : int, default=0
        Sweeps of the models' rate-distortion optimized encoding (``Autoencoder.compress(search=...)``).
    progress : callable, optional
        Called with one line after each codec or model.

    Returns
    -------
    RateDistortion
        ``rows``: one RDRow per mode, model or codec, and setting; ``skipped``: codec name -> why.
    """
    unknown_modes = sorted(set(modes) - set(MODES))
    if unknown_modes or not modes:
        raise ConfigError(f"modes={list(modes)} must be a non-empty subset of {list(MODES)}")
    if limit is not None and limit < 1:
        raise ConfigError(f"limit={limit} must be at least 1")
    x = _eight_bit(X)
    first = next(iter(models.values()), None)
    if x.ndim == 2 and first is not None and math.prod(first.input_shape_) == x.shape[1]:
        x = x.reshape(len(x), *first.input_shape_)
    images = _images(x)  # (n, height, width) or (n, height, width, 3)
    inputs = {name: _model_input(name, ae, x, lossless) for name, ae in models.items()}
    available, skipped = classical_codecs(codecs)
    say = progress or (lambda _: None)
    pixels_per_image = images.shape[1] * images.shape[2]

    rows: list[RDRow] = []
    for mode in [m for m in MODES if m in modes]:
        n = len(images) if mode == "whole_set" or limit is None else min(limit, len(images))
        for name, ae in models.items():
            for setting in ("lossy", "lossless") if lossless else ("lossy",):
                rows.append(_model_row(mode, name, ae, inputs[name][:n], setting, pixels_per_image, search))
            say(f"{mode}: model {name} done")
        for codec in available.values():
            started = time.perf_counter()
            try:
                for setting in codec.settings:
                    rows.append(_codec_row(mode, codec, images[:n], setting))
            except Exception as exc:  # a codec library refusing these images (size, mode): skip it, say why
                skipped[f"{codec.name} ({mode})"] = f"{codec.backend} failed: {exc}"
                rows = [r for r in rows if not (r.mode == mode and r.codec == codec.name and r.kind == "classical")]
                continue
            say(f"{mode}: {codec.name} ({len(codec.settings)} settings) in {time.perf_counter() - started:.1f} s")
    return RateDistortion(rows, skipped)


def _eight_bit(X: Any) -> np.ndarray:
    x = np.asarray(X.detach().cpu().numpy() if hasattr(X, "detach") else X)
    if x.dtype.kind not in "uif" or x.ndim < 2 or len(x) == 0:
        raise DataError(
            f"rate-distortion needs a non-empty numeric array of images, got dtype {x.dtype} and shape {x.shape}"
        )
    if x.dtype != np.uint8:
        ok = np.isfinite(x).all() and x.min() >= 0 and x.max() <= 255 and np.array_equal(x, np.rint(x))
        if not ok:
            raise DataError(
                f"rate-distortion measures 8-bit images, but the values are not all integers 0..255 (they range "
                f"{float(np.nanmin(x)):g} to {float(np.nanmax(x)):g}); scale the data to 0..255 and round first"
            )
    return x.astype(np.uint8)


def _images(x: np.ndarray) -> np.ndarray:
    """``x`` as grayscale ``(n, height, width)`` or colour ``(n, height, width, 3)`` for the codecs."""
    if x.ndim == 3:
        return x
    if x.ndim == 4 and x.shape[1] in (1, 3):
        return x[:, 0] if x.shape[1] == 1 else x.transpose(0, 2, 3, 1)
    raise DataError(
        f"rate-distortion compresses images, of shape (n, height, width) or (n, 1 or 3, height, width); the "
        f"samples have shape {x.shape[1:]}; give images, or a model of image input to reshape flat rows"
    )


def _model_input(name: str, ae: Autoencoder, x: np.ndarray, lossless: bool) -> np.ndarray:
    """``x`` shaped as ``ae``'s samples, after checking that ``ae`` compresses them (one image, tried)."""
    shape = tuple(ae.input_shape_)
    if not same_sample(x.shape[1:], shape):
        raise DataError(f"model {name}: {mismatch(x.shape[1:], shape, 'the data')}")
    xm = x.reshape(len(x), *shape)
    ae.decompress(ae.compress(xm[:1], lossless=lossless))  # a non-quantized or encoder-only model fails here
    return xm


def _model_row(
    mode: str, name: str, ae: Autoencoder, x: np.ndarray, setting: str, pixels: int, search: int = 0
) -> RDRow:
    exact = setting == "lossless"
    started = time.perf_counter()
    if mode == "per_image":
        files = [ae.compress(x[i : i + 1], lossless=exact, search=search) for i in range(len(x))]
    else:
        files = [ae.compress(x, lossless=exact, search=search)]
    encoded = time.perf_counter()
    back = np.concatenate([ae.decompress(f) for f in files])
    decoded = time.perf_counter()
    return _row(mode, name, "model", setting, x, back, files, pixels, encoded - started, decoded - encoded)


def _codec_row(mode: str, codec: Codec, images: np.ndarray, setting: str) -> RDRow:
    gray = images.ndim == 3
    if mode == "per_image":
        started = time.perf_counter()
        files = [codec.encode(image, setting) for image in images]
        encoded = time.perf_counter()
        back = np.stack([codec.decode(f, gray) for f in files])
        decoded = time.perf_counter()
    else:
        tiles = mosaic(images)
        started = time.perf_counter()
        files = [codec.encode(tiles, setting)]
        encoded = time.perf_counter()
        back = untile(codec.decode(files[0], gray), len(images), images.shape[1:3])
        decoded = time.perf_counter()
    pixels = images.shape[1] * images.shape[2]
    return _row(
        mode, codec.name, "classical", setting, images, back, files, pixels, encoded - started, decoded - encoded
    )


def _row(
    mode: str,
    name: str,
    kind: str,
    setting: str,
    x: np.ndarray,
    back: np.ndarray,
    files: list[bytes],
    pixels: int,
    t_encode: float,
    t_decode: float,
) -> RDRow:
    n, total = len(x), sum(len(f) for f in files)
    return RDRow(
        mode,
        name,
        kind,
        setting,
        n,
        total,
        total / n,
        8 * total / (n * pixels),
        psnr(x, back),
        n / max(t_encode, 1e-9),
        n / max(t_decode, 1e-9),
    )


def mosaic(images: np.ndarray) -> np.ndarray:
    """``(n, h, w[, 3])`` images tiled into one near-square image, row by row; blank tiles fill the last row."""
    n, h, w = images.shape[:3]
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    padded = np.zeros((rows * cols, *images.shape[1:]), dtype=images.dtype)
    padded[:n] = images
    tiled = padded.reshape(rows, cols, h, w, -1).transpose(0, 2, 1, 3, 4).reshape(rows * h, cols * w, -1)
    return tiled[..., 0] if images.ndim == 3 else tiled


def untile(tiles: np.ndarray, n: int, size: tuple[int, ...]) -> np.ndarray:
    """The first ``n`` images of ``size`` (height, width) back out of a ``mosaic``."""
    h, w = size[0], size[1]
    rows, cols = tiles.shape[0] // h, tiles.shape[1] // w
    split = tiles.reshape(rows, h, cols, w, -1).transpose(0, 2, 1, 3, 4).reshape(rows * cols, h, w, -1)
    return (split[..., 0] if tiles.ndim == 2 else split)[:n]


# ---------------------------------------------------------------------------- matched PSNR


def curves(rows: Iterable[RDRow], mode: str) -> dict[str, list[tuple[float, float]]]:
    """Per classical codec, its sorted (PSNR, bytes per image) points in ``mode``."""
    out: dict[str, list[tuple[float, float]]] = {}
    for r in rows:
        if r.kind == "classical" and r.mode == mode:
            out.setdefault(r.codec, []).append((r.psnr, r.bytes_per_image))
    return {name: sorted(points) for name, points in out.items()}


def bytes_at(curve: Sequence[tuple[float, float]], target: float) -> float:
    """A codec's bytes at PSNR ``target``: log-linear interpolation between its points, or its cheapest file
    that reaches ``target`` (below its lowest PSNR, its smallest file); nan if no setting reaches it."""
    reaching = [b for p, b in curve if p >= target]
    if not reaching:
        return math.nan
    best = min(reaching)
    finite = sorted((p, b) for p, b in curve if math.isfinite(p))
    for (p0, b0), (p1, b1) in itertools.pairwise(finite):
        if p0 <= target <= p1 and p1 > p0:
            t = (target - p0) / (p1 - p0)
            best = min(best, math.exp(math.log(b0) + t * (math.log(b1) - math.log(b0))))
    return best


def best_classical(codec_curves: Mapping[str, Sequence[tuple[float, float]]], target: float) -> tuple[str, float]:
    """The classical codec with the fewest bytes at PSNR ``target``, and those bytes (``("none", nan)``)."""
    options = [(bytes_at(c, target), name) for name, c in codec_curves.items()]
    options = [(b, name) for b, name in options if not math.isnan(b)]
    b, name = min(options) if options else (math.nan, "none")
    return name, b


def ratios(rows: Sequence[RDRow]) -> list[Ratio]:
    """Each model row's bytes over the best classical codec's bytes at the same PSNR, in the same mode."""
    out = []
    for mode in MODES:
        codec_curves = curves(rows, mode)
        for r in rows:
            if r.kind == "model" and r.mode == mode:
                name, theirs = best_classical(codec_curves, r.psnr)
                ratio = r.bytes_per_image / theirs if theirs > 0 else math.nan
                out.append(Ratio(mode, r.codec, r.setting, r.psnr, r.bytes_per_image, name, theirs, ratio))
    return out


def classical_curves(images: np.ndarray, *, mosaic: bool) -> dict[str, list[tuple[float, float]]]:
    """Per installed codec, (PSNR, bytes per image) at each setting: one file per image, or one mosaic file."""
    result = rate_distortion({}, images, modes=("whole_set" if mosaic else "per_image",))
    return curves(result.rows, "whole_set" if mosaic else "per_image")


# ---------------------------------------------------------------------------- files


def write_csv(rows: Sequence[RDRow], path: str | os.PathLike[str], *, overwrite: bool = True) -> None:
    """``rows`` as CSV with a header of ``RDRow``'s fields (``inf`` for exact PSNR), written atomically."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(RDRow._fields)
    writer.writerows(rows)
    write_bytes_atomic(path, buf.getvalue().encode(), overwrite=overwrite)


def plot(rows: Sequence[RDRow], path: str | os.PathLike[str], *, overwrite: bool = True) -> None:
    """PSNR against bits per pixel, one panel per mode, a line per codec and a marker per model, as PNG.

    Exact points (PSNR inf) have no place on the axis; they are in the CSV. Needs matplotlib
    (extra ``isthmus[report]``).
    """
    figure_module = import_optional("matplotlib.figure", extra="report", feature="the rate-distortion plot")
    ticker = import_optional("matplotlib.ticker", extra="report", feature="the rate-distortion plot")
    modes = [m for m in MODES if any(r.mode == m for r in rows)] or ["per_image"]
    figure = figure_module.Figure(figsize=(6 * len(modes), 4.5), dpi=100, layout="constrained")
    for ax, mode in zip(figure.subplots(1, len(modes), squeeze=False)[0], modes, strict=True):
        shown = [r for r in rows if r.mode == mode and math.isfinite(r.psnr)]
        for name in curves(shown, mode):
            bpp = sorted((r.bits_per_pixel, r.psnr) for r in shown if r.kind == "classical" and r.codec == name)
            ax.plot([b for b, _ in bpp], [p for _, p in bpp], marker=".", label=name)
        for r in (r for r in shown if r.kind == "model"):
            ax.plot([r.bits_per_pixel], [r.psnr], marker="*", markersize=12, linestyle="none", label=r.codec)
        ax.set_xscale("log")  # ticks at 1, 2 and 5 times powers of ten, written plainly (0.2, 0.5, 1, 2)
        ax.xaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
        ax.set_xlabel("bits per pixel")
        ax.set_ylabel("PSNR (dB, 8-bit)")
        ax.set_title(mode.replace("_", " "))
        ax.grid(True, which="both", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
    buf = io.BytesIO()
    figure.savefig(buf, format="png")
    write_bytes_atomic(path, buf.getvalue(), overwrite=overwrite)


# ---------------------------------------------------------------------------- the codecs


def classical_codecs(names: Iterable[str] | None = None) -> tuple[dict[str, Codec], dict[str, str]]:
    """The installed codecs among ``names`` (all of ``CODECS`` by default), and why each other one is not."""
    wanted = list(CODECS) if names is None else list(names)
    unknown = [n for n in wanted if n not in CODECS]
    if unknown:
        raise ConfigError(f"unknown codec {', '.join(map(repr, unknown))}; allowed: {', '.join(CODECS)}")
    available, skipped = {}, {}
    for name in wanted:
        found = CODECS[name]()
        if isinstance(found, str):
            skipped[name] = found
        else:
            available[name] = found
    return available, skipped


def _pillow_decode(data: bytes, gray: bool) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("L" if gray else "RGB"))


def _pillow(
    name: str, fmt: str, feature: str | None, settings: Sequence[str], save: Callable[[str], dict[str, Any]]
) -> Codec | str:
    """A Pillow codec, or why it is missing; ``save(setting)`` gives the keyword arguments of ``Image.save``."""
    from PIL import Image, features

    if feature is not None and not features.check(feature):
        return f"this Pillow was built without {fmt}"

    def encode(image: np.ndarray, setting: str) -> bytes:
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, format=fmt, **save(setting))
        return buf.getvalue()

    return Codec(name, tuple(settings), encode, _pillow_decode, "Pillow")


def _imagecodecs(
    name: str, codec: str, settings: Sequence[str], options: Callable[[str], dict[str, Any]]
) -> Codec | str:
    """An imagecodecs codec (``{codec}_encode``/``_decode``), or why it is missing."""
    try:
        import imagecodecs
    except ImportError:
        return "needs imagecodecs; install it with pip install 'isthmus[codecs]'"
    if not getattr(getattr(imagecodecs, codec.upper(), None), "available", False):
        return f"this imagecodecs has no {codec}"
    enc, dec = getattr(imagecodecs, f"{codec}_encode"), getattr(imagecodecs, f"{codec}_decode")

    def encode(image: np.ndarray, setting: str) -> bytes:
        return bytes(enc(np.ascontiguousarray(image), **options(setting)))

    def decode(data: bytes, gray: bool) -> np.ndarray:
        out = np.asarray(dec(data))
        if out.ndim == 3 and gray:
            out = out[..., 0]
        elif out.ndim == 2 and not gray:
            out = np.repeat(out[..., None], 3, axis=-1)
        return out.astype(np.uint8)

    return Codec(name, tuple(settings), encode, decode, "imagecodecs")


def _quality(setting: str) -> dict[str, Any]:
    return {"lossless": True} if setting == "lossless" else {"quality": int(setting)}


def _png() -> Codec | str:
    return _pillow("png", "PNG", "zlib", ["lossless"], lambda _: {"optimize": True})


def _jpeg() -> Codec | str:
    settings = ["1", "5", "10", "20", "30", "50", "70", "90"]
    return _pillow("jpeg", "JPEG", "jpg", settings, lambda s: {"quality": int(s), "optimize": True})


def _webp() -> Codec | str:
    settings = ["0", "2", "5", "10", "20", "30", "50", "70", "90", "lossless"]
    return _pillow("webp", "WEBP", "webp", settings, lambda s: {**_quality(s), "method": 6})


def _jpeg2000() -> Codec | str:
    settings = ["18", "20", "22", "25", "28", "32", "36", "40"]  # target PSNR (dB) of OpenJPEG's rate control
    return _pillow(
        "jpeg2000", "JPEG2000", "jpg_2000", settings, lambda s: {"quality_mode": "dB", "quality_layers": [float(s)]}
    )


def _avif() -> Codec | str:
    settings = ["0", "10", "20", "30", "50", "70", "90"]
    found = _pillow("avif", "AVIF", "avif", settings, lambda s: {"quality": int(s), "speed": 6})
    return (
        found
        if isinstance(found, Codec)
        else _or(found, _imagecodecs("avif", "avif", settings, lambda s: {"level": int(s), "speed": 6}))
    )


def _jpegxl() -> Codec | str:
    settings = ["10", "20", "30", "50", "70", "90", "lossless"]
    return _imagecodecs(
        "jpegxl", "jpegxl", settings, lambda s: {"lossless": True} if s == "lossless" else {"level": int(s)}
    )


def _or(pillow_reason: str, fallback: Codec | str) -> Codec | str:
    return fallback if isinstance(fallback, Codec) else f"{pillow_reason}, and {fallback}"


#: name -> a function giving the codec, or why it is not installed. Settings: quality 0..100 (jpeg, webp,
#: avif, jpegxl), a target PSNR in dB (jpeg2000), or "lossless".
CODECS: dict[str, Callable[[], Codec | str]] = {
    "png": _png,
    "jpeg": _jpeg,
    "webp": _webp,
    "jpeg2000": _jpeg2000,
    "avif": _avif,
    "jpegxl": _jpegxl,
}
