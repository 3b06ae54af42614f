"""Shared pieces of the commands: error mapping, reading, loading, writing, common options."""

from __future__ import annotations

import contextlib
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from isthmus.errors import IsthmusError, OutputError


class Group(click.Group):
    """Maps the library's errors to ``error: <message>`` and exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            with _missing_markers(ctx.params.get("na_values") or ()):  # isthmus --na-values TEXT ...
                return super().invoke(ctx)
        except IsthmusError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(1)
        except BrokenPipeError:  # the reader left (``isthmus info m | head -3``): stop quietly, as cat does
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the exit's flush has nowhere to fail
            ctx.exit(141)  # 128 + SIGPIPE, the status of a tool that the signal stopped
        except OSError as exc:
            name = f" {exc.filename}" if exc.filename else ""
            click.echo(f"error: cannot access{name}: {exc.strerror or exc}", err=True)
            ctx.exit(1)
        except KeyboardInterrupt:
            click.echo("error: interrupted", err=True)
            ctx.exit(130)


def _missing_markers(markers: Sequence[str]) -> contextlib.AbstractContextManager[None]:
    if not markers:  # --help and every command without --na-values import no reader (pyarrow, numpy)
        return contextlib.nullcontext()
    from isthmus.data.readers import missing_markers

    return missing_markers(markers)


def parse_image_size(value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    try:
        width, height = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"{value!r} must look like WIDTHxHEIGHT, e.g. 28x28") from None
    return width, height


def refuse_existing(path: str, overwrite: bool) -> None:
    """Before any work: refuse an existing output without --overwrite, and an output that cannot be created."""
    if Path(path).exists() and not overwrite:
        raise OutputError(f"{path} already exists; pass --overwrite to replace it")
    from isthmus._files import check_output

    check_output(path, overwrite=True)


def read_spec(spec: str, image_size: str | None = None) -> Any:
    from isthmus.data import read_data

    return read_data(spec, image_size=parse_image_size(image_size))


def is_images(spec: str) -> bool:
    """Whether ``spec`` names an image folder or one image file (read by :func:`read_images`)."""
    from isthmus.data.images import IMAGE_SUFFIXES

    path = Path(spec)
    return path.is_dir() or (path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES)


def read_images(spec: str) -> Any:
    """An image folder, or one image file, as a list of images of their own sizes (none resized)."""
    from isthmus.data.images import read_image_list

    return read_image_list(Path(spec))


def images_of_mixed_sizes(ae: Any, data: str, image_size: str | None, refuse: str | None = None) -> list[Any] | None:
    """DATA's images, each at its own size ``(channels, height, width)``, when DATA is a folder of images of
    different sizes and no --image-size resizes them; None when DATA is read as one array.

    A model of fixed input size refuses such a folder, naming the sizes and what to do; so does a fully
    convolutional model when ``refuse`` (why the command needs one size) is given. Nothing is ever
    resized or reshaped silently.
    """
    from isthmus.data.images import list_images, probe
    from isthmus.errors import DataError

    path = Path(data)
    if image_size is not None or not path.is_dir():
        return None
    infos = [probe(file) for file in list_images(path)[0]]
    sizes = sorted({info.size for info in infos})
    if len(sizes) == 1:
        return None
    first = infos[0]
    other = next(info for info in infos if info.size != first.size)
    found = (
        f"{data} holds images of {len(sizes)} sizes ({first.path.name} is {first.size[0]}x{first.size[1]}, "
        f"{other.path.name} {other.size[0]}x{other.size[1]})"
    )
    if not ae.fully_convolutional:
        from isthmus.shapes import describe

        shape = tuple(ae.input_shape_)
        resize = f"--image-size {shape[-1]}x{shape[-2]}" if len(shape) in (2, 3) else "--image-size WIDTHxHEIGHT"
        raise DataError(
            f"{found}, but this model has a fixed input size, {describe(shape)}; pass {resize} to resize them "
            "all, or train a fully convolutional model (--crop N --set architecture=conv --set "
            "fully_convolutional=true) to take each at its own size"
        )
    if refuse is not None:
        raise DataError(f"{found}; {refuse}; pass --image-size WIDTHxHEIGHT to resize them all to one size")
    return read_images(data)


def read_table_spec(spec: str, image_size: str | None = None) -> Any:
    """DATA for the commands that read tables: a CSV or Parquet file keeps its column names and text columns."""
    from isthmus.data.spec import read_table_data

    return read_table_data(spec, image_size=parse_image_size(image_size))


def open_spec_rows(spec: str, image_size: str | None = None) -> Any:
    from isthmus.data import open_rows

    return open_rows(spec, image_size=parse_image_size(image_size))


def load_model_file(path: str) -> Any:
    from isthmus import load

    return load(path)


def write_output(path: str, array: Any, overwrite: bool, columns: Sequence[str] | None = None) -> None:
    from isthmus.data import write_array

    write_array(path, array, overwrite=overwrite, columns=columns)
    click.echo(f"wrote {path} {tuple(array.shape)}", err=True)


overwrite_opt = click.option("--overwrite", is_flag=True, help="Replace an existing output file.")

stream_opt = click.option(
    "--stream", is_flag=True, help="Read DATA (.npy, .parquet or an image folder) in chunks, never whole."
)

image_size_opt = click.option("--image-size", default=None, help="Resize images in a folder, WIDTHxHEIGHT.")


def raise_encoder_only() -> None:
    from isthmus.errors import EncoderOnlyError

    raise EncoderOnlyError("this model file holds only the encoder, so it cannot reconstruct; use the full model")


def db(value: float) -> str:
    return "inf" if math.isinf(value) else f"{value:.2f}"
