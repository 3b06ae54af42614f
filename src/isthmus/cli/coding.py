"""Commands that write and read bitstreams: compress, decompress, and rd (beside the classical codecs)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import click

from isthmus.cli._common import (
    db,
    image_size_opt,
    images_of_mixed_sizes,
    load_model_file,
    overwrite_opt,
    read_images,
    read_spec,
    refuse_existing,
    write_output,
)
from isthmus.errors import OutputError

#: the names of ``isthmus.rd.CODECS``, written out so that ``--help`` need not import NumPy (tests/test_rd.py
#: checks that the two agree)
CODEC_NAMES = ("png", "jpeg", "webp", "jpeg2000", "avif", "jpegxl")

_search_opt = click.option(
    "--search",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Rate-distortion optimized encoding: sweeps of a search for a code of lower rate-distortion cost (try 3); "
    "a stream larger than plain rounding's without a smaller squared error is never written.",
)


@click.command()
@click.argument("model")
@click.argument("data")
@click.option("-o", "--output", required=True, help="Bitstream file to write (.isth).")
@click.option("--lossless", is_flag=True, help="Store 8-bit data exactly (decompress gives them back bit for bit).")
@_search_opt
@image_size_opt
@overwrite_opt
def compress(
    model: str, data: str, output: str, lossless: bool, search: int, image_size: str | None, overwrite: bool
) -> None:
    """Compress DATA with MODEL (bottleneck='quantized') into one bitstream file.

    DATA is any data spec, such as one PNG/JPEG file or a folder of them. Values that are all integers
    0..255 (8-bit images) are stored as uint8, so that decompress gives 8-bit images back; other data as
    float32.
    """
    import numpy as np

    from isthmus._files import write_bytes_atomic
    from isthmus.shapes import same_sample  # here, not at the top: --help imports no NumPy

    refuse_existing(output, overwrite)
    ae = load_model_file(model)
    if ae.fully_convolutional and image_size is None and Path(data).is_dir():
        images = read_images(data)  # a fully convolutional model codes each image at its own size
        eight_bit = all(np.all((a >= 0) & (a <= 255) & (a == np.round(a))) for a in images)
        x: Any = [a.astype(np.uint8) if eight_bit else a for a in images]
        n, size = len(images), sum(a.size for a in images)
    else:
        images_of_mixed_sizes(ae, data, image_size)  # a model of fixed size refuses them, saying what to do
        x = read_spec(data, image_size).X
        sample_shape = tuple(ae.input_shape_)
        if x.ndim >= 2 and x.shape[1:] != sample_shape and same_sample(x.shape[1:], sample_shape, flat=False):
            x = x.reshape(len(x), *sample_shape)  # (n, 1, 28, 28) images for a model of (28, 28) samples, and back
        if np.all((x >= 0) & (x <= 255) & (x == np.round(x))):
            x = x.astype(np.uint8)
        n, size = len(x), x.size
    stream = ae.compress(x, lossless=lossless, search=search)
    write_bytes_atomic(output, stream, overwrite=overwrite)
    bits = 8 * len(stream) / size
    click.echo(f"wrote {output}: {n} samples in {len(stream)} bytes ({bits:.3f} bits per value)")


@click.command()
@click.argument("model")
@click.argument("stream")
@click.option("-o", "--output", required=True, help="Output: .npy, .csv, .parquet, .png (one image) or a folder.")
@overwrite_opt
def decompress(model: str, stream: str, output: str, overwrite: bool) -> None:
    """Decode STREAM, a bitstream written by compress, with the MODEL that wrote it.

    OUTPUT ending in .png writes one image; OUTPUT without a suffix is a folder of PNG files, one per sample
    (00000.png, ...); any other suffix is an array file.
    """
    refuse_existing(output, overwrite)
    ae = load_model_file(model)
    x = ae.decompress(Path(stream).read_bytes())
    target = Path(output)
    if isinstance(x, list):  # images of their own sizes (a fully convolutional model's stream of a folder)
        write_image_list(target, x, overwrite=overwrite)
        click.echo(f"wrote {output}: {len(x)} images", err=True)
    elif target.suffix.lower() == ".png" or not target.suffix:
        write_pngs(target, x, sample_ndim=len(ae.input_shape_), overwrite=overwrite)
        click.echo(f"wrote {output} {tuple(x.shape)}", err=True)
    else:
        write_output(output, x, overwrite)


@click.command("rd")
@click.argument("models", nargs=-1, required=True, metavar="MODEL...")
@click.argument("data")
@click.option("-o", "--output", required=True, help="Folder to write rd.csv and rd.png into.")
@click.option(
    "--mode",
    type=click.Choice(["per_image", "whole_set", "both"]),
    default="both",
    show_default=True,
    help="One file per image, all images in one file (classical codecs: one mosaic), or both.",
)
@click.option(
    "--codec", "codecs", multiple=True, type=click.Choice(CODEC_NAMES), help="Only this classical codec (repeatable)."
)
@click.option("--limit", type=int, default=1000, show_default=True, help="Images compressed one file each (per_image).")
@click.option("--lossless", is_flag=True, help="Also measure the models' lossless streams.")
@_search_opt
@image_size_opt
@overwrite_opt
def rd(
    models: tuple[str, ...],
    data: str,
    output: str,
    mode: str,
    codecs: tuple[str, ...],
    limit: int,
    lossless: bool,
    search: int,
    image_size: str | None,
    overwrite: bool,
) -> None:
    """Rate-distortion of each MODEL (bottleneck='quantized') beside PNG, JPEG, WebP, JPEG 2000, AVIF, JPEG XL.

    DATA holds 8-bit images (integers 0..255). Every codec runs at a sweep of settings; bytes are real
    file sizes, PSNR is measured on the 8-bit outputs. Writes OUTPUT/rd.csv (one row per mode, codec or
    model, and setting, with encode and decode images/s) and OUTPUT/rd.png (PSNR against bits per pixel),
    and prints each model's bytes over the best classical codec's bytes at the same PSNR. Codecs that
    are not installed are skipped with a note (JPEG XL needs isthmus[codecs]).
    """
    from isthmus._optional import import_optional
    from isthmus.rd import curves, plot, rate_distortion, ratios, write_csv

    folder = Path(output)
    csv_path, png_path = folder / "rd.csv", folder / "rd.png"
    for path in (csv_path, png_path):
        refuse_existing(str(path), overwrite)
    import_optional("matplotlib.figure", extra="report", feature="the rate-distortion plot")  # fail before the work
    names = [Path(m).stem for m in models]
    loaded = {
        (name if names.count(name) == 1 else m): load_model_file(m) for name, m in zip(names, models, strict=True)
    }
    x = read_spec(data, image_size).X
    result = rate_distortion(
        loaded,
        x,
        modes=("per_image", "whole_set") if mode == "both" else (mode,),
        codecs=codecs or None,
        limit=limit,
        lossless=lossless,
        search=search,
        progress=lambda line: click.echo(line, err=True),
    )
    for name, why in result.skipped.items():
        click.echo(f"note: {name} skipped: {why}", err=True)
    write_csv(result.rows, csv_path, overwrite=overwrite)
    plot(result.rows, png_path, overwrite=overwrite)
    click.echo(f"wrote {csv_path} ({len(result.rows)} rows) and {png_path}", err=True)
    speed = {(r.mode, r.codec, r.setting): r for r in result.rows if r.kind == "model"}
    for q in ratios(result.rows):
        r = speed[(q.mode, q.model, q.setting)]
        lowest = min((p for p, _ in curves(result.rows, q.mode).get(q.codec, []) if math.isfinite(p)), default=0.0)
        below = f", below its lowest setting ({lowest:.2f} dB): its smallest file" if q.psnr < lowest else ""
        versus = (
            f"best classical {q.codec} {q.codec_bytes_per_image:.1f} B{below}, ratio {q.ratio:.3f}"
            if math.isfinite(q.ratio)
            else "no classical codec reaches this PSNR"
        )
        click.echo(
            f"{q.mode} {q.model} ({q.setting}): {q.bytes_per_image:.1f} B/image ({r.bits_per_pixel:.3f} bpp) "
            f"at {db(q.psnr)} dB; {versus}; encode {r.encode_images_per_s:.0f}, "
            f"decode {r.decode_images_per_s:.0f} images/s"
        )


def write_pngs(target: Path, x: Any, *, sample_ndim: int, overwrite: bool) -> None:
    """Samples as 8-bit PNG files: one file when ``target`` ends in .png, else a folder of them."""
    import numpy as np
    from PIL import Image

    from isthmus._files import atomic_path

    images = np.clip(np.rint(x.astype(np.float64)), 0, 255).astype(np.uint8)
    if images.ndim == sample_ndim:
        images = images[None]
    images = images.reshape(len(images), *images.shape[-3:]) if images.ndim > 3 else images
    if images.ndim == 4 and images.shape[1] == 1:
        images = images[:, 0]
    if images.ndim == 4:
        images = images.transpose(0, 2, 3, 1)  # (n, height, width, 3)
    if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[-1] != 3):
        raise OutputError(f"cannot write samples of shape {tuple(x.shape[1:])} as PNG; use a .npy output")
    if target.suffix:
        if len(images) != 1:
            raise OutputError(f"{target} can hold one image, but the stream has {len(images)}; give a folder")
        with atomic_path(target, overwrite=overwrite) as tmp:
            Image.fromarray(images[0]).save(tmp, format="PNG")
        return
    _write_png_folder(target, images, overwrite=overwrite)


def write_image_list(target: Path, images: list[Any], *, overwrite: bool) -> None:
    """Images of their own sizes, ``(1 or 3, height, width)`` each, as 8-bit PNG files: one file when
    ``target`` ends in .png (for one image), else a folder of them."""
    import numpy as np

    from isthmus._files import atomic_path

    pixels = []
    for image in images:
        a = np.clip(np.rint(image.astype(np.float64)), 0, 255).astype(np.uint8)
        a = a[0] if a.ndim == 3 and a.shape[0] == 1 else a
        pixels.append(a.transpose(1, 2, 0) if a.ndim == 3 else a)  # (height, width) or (height, width, 3)
    if target.suffix.lower() == ".png":
        if len(pixels) != 1:
            raise OutputError(f"{target} can hold one image, but the stream has {len(pixels)}; give a folder")
        from PIL import Image

        with atomic_path(target, overwrite=overwrite) as tmp:
            Image.fromarray(pixels[0]).save(tmp, format="PNG")
        return
    if target.suffix:
        raise OutputError(
            f"the stream holds {len(pixels)} images of their own sizes, which one array file ({target.suffix}) "
            "cannot hold; give a folder (an output without a suffix) to write one PNG file each"
        )
    _write_png_folder(target, pixels, overwrite=overwrite)


def _write_png_folder(target: Path, images: Any, *, overwrite: bool) -> None:
    """A folder of PNG files that appears whole: written beside ``target``, then renamed onto it."""
    import shutil
    import tempfile

    from PIL import Image

    if target.exists() and not (overwrite and target.is_dir()):
        raise OutputError(f"{target} already exists; pass --overwrite to replace the folder")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        for i, image in enumerate(images):
            Image.fromarray(image).save(staging / f"{i:05d}.png", format="PNG")
        old = None
        if target.exists():  # the old folder steps aside only once the new one is complete
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
            target.rename(old / target.name)
        try:
            staging.rename(target)
        except OSError:
            if old is not None:
                (old / target.name).rename(target)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:
        raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from None
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
