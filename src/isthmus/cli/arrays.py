"""Commands that map arrays through a model: encode, decode, reconstruct, denoise, impute, sample, interpolate."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from isthmus.cli._common import (
    image_size_opt,
    images_of_mixed_sizes,
    load_model_file,
    open_spec_rows,
    overwrite_opt,
    read_spec,
    read_table_spec,
    refuse_existing,
    stream_opt,
    write_output,
)
from isthmus.errors import OutputError

if TYPE_CHECKING:  # torch is imported by the commands that run, never by --help
    from isthmus.estimator import Autoencoder


_DATA_OUTPUT = (
    "Output file: .npy, .csv or .parquet{stream}; for a model trained on 8-bit images, values are rounded to "
    "0..255 and OUTPUT may also be a .png (one image) or a folder of PNG files."
)


def _call(method: str) -> Callable[[Autoencoder, Any], Any]:
    """``Autoencoder.<method>`` by name: the estimator (and torch) is imported only when a command runs."""
    return lambda ae, x: getattr(ae, method)(x)


def _map_rows(
    method: Callable[[Autoencoder, Any], Any],
    model: str,
    data: str,
    output: str,
    image_size: str | None,
    overwrite: bool,
    stream: bool = False,
    table: bool = True,
    as_data: bool = False,
) -> None:
    """Load MODEL, pass DATA's rows through ``method`` and write the result to OUTPUT.

    A CSV or Parquet DATA is read as a table (``table``): its columns are matched by name, text columns
    are categories, and a table result is written with the column names. Streamed, DATA is read and
    OUTPUT (.npy) written a chunk at a time. With ``as_data`` the result is data like the training data:
    for a model trained on 8-bit images it is clipped and rounded to 0..255 (uint8), and OUTPUT may be a
    .png (one image) or a folder of PNG files, as ``decompress`` writes.

    A folder of images of different sizes (without --image-size) goes to a fully convolutional model one
    image at a time, each at its own size, and its results to a folder of PNG files named as ``decompress``
    names them (00000.png, ... in DATA's sorted order); a model of fixed size refuses it, as do the commands
    whose result is not an image (``encode``: code maps of different sizes) and --stream.
    """
    from pathlib import Path

    target = Path(output)
    pngs = as_data and (target.suffix.lower() == ".png" or not target.suffix)
    if not pngs:
        refuse_existing(output, overwrite)
    elif target.exists() and not overwrite:
        raise OutputError(f"{output} already exists; pass --overwrite to replace it")
    ae = load_model_file(model)
    eight_bit = as_data and ae.resolved_.get("dtype") == "uint8"
    if not as_data:
        one_size = "a fully convolutional model's codes are maps the size of each image, which one array cannot hold"
    elif stream:
        one_size = "--stream reads images of one size (leave it out to take each image at its own size)"
    else:
        one_size = None
    images = images_of_mixed_sizes(ae, data, image_size, refuse=one_size)
    if images is not None:
        if not pngs or target.suffix:
            raise OutputError(
                f"the {len(images)} images of {data} differ in size, which one file ({target.name}) cannot hold; "
                "give a folder (an output without a suffix) to write one PNG file each"
            )
        if not eight_bit:
            raise OutputError(
                f"the images of {data} differ in size, so they can only be written as PNG files, which need a "
                "model trained on 8-bit images; pass --image-size WIDTHxHEIGHT to resize them and write a .npy file"
            )
    elif pngs and (stream or not eight_bit):
        why = "--stream writes a .npy file" if stream else "the model was not trained on 8-bit images"
        raise OutputError(f"{output}: PNG output needs 8-bit images, and {why}; write a .npy file instead")

    def run(x: Any) -> Any:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = method(ae, x)
        for warning in caught:  # once per command, not once per chunk
            if str(warning.message) not in shown:
                shown.add(str(warning.message))
                click.echo(f"warning: {warning.message}", err=True)
        return _as_8bit(out) if eight_bit else out

    shown: set[str] = set()
    if images is not None:  # (channels, height, width) each, through the model one at a time
        from isthmus.cli.coding import write_image_list

        write_image_list(target, [run(image[None])[0] for image in images], overwrite=overwrite)
        click.echo(f"wrote {output}: {len(images)} images, each at its own size", err=True)
        return
    if pngs:
        from isthmus.cli.coding import write_pngs

        write_pngs(target, run(read_spec(data, image_size).X), sample_ndim=len(ae.input_shape_), overwrite=overwrite)
        click.echo(f"wrote {output}", err=True)
        return
    if not stream:
        read = read_table_spec if table else read_spec
        write_output(output, run(read(data, image_size).X), overwrite)
        return
    from isthmus.data import write_npy_chunks

    rows = open_spec_rows(data, image_size)
    chunks = (run(chunk) for chunk in rows.iter_chunks())
    shape = write_npy_chunks(output, chunks, len(rows), overwrite=overwrite)
    click.echo(f"wrote {output} {shape}", err=True)


def _as_8bit(x: Any) -> Any:
    """Values in the units of 8-bit training images, clipped and rounded to 0..255 (uint8)."""
    import numpy as np

    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


@click.command()
@click.argument("model")
@click.argument("data")
@click.option("-o", "--output", required=True, help="Codes file: .npy, .csv or .parquet (.npy with --stream).")
@stream_opt
@image_size_opt
@overwrite_opt
def encode(model: str, data: str, output: str, stream: bool, image_size: str | None, overwrite: bool) -> None:
    """Encode DATA with MODEL into codes (n_samples, n_components)."""
    _map_rows(_call("transform"), model, data, output, image_size, overwrite, stream)


@click.command()
@click.argument("model")
@click.argument("codes")
@click.option("-o", "--output", required=True, help=_DATA_OUTPUT.format(stream=""))
@overwrite_opt
def decode(model: str, codes: str, output: str, overwrite: bool) -> None:
    """Decode CODES with MODEL back into data in the training data's units."""
    _map_rows(_call("inverse_transform"), model, codes, output, None, overwrite, table=False, as_data=True)


@click.command()
@click.argument("model")
@click.argument("data")
@click.option("-o", "--output", required=True, help=_DATA_OUTPUT.format(stream=" (.npy with --stream)"))
@stream_opt
@image_size_opt
@overwrite_opt
def reconstruct(model: str, data: str, output: str, stream: bool, image_size: str | None, overwrite: bool) -> None:
    """Encode and decode DATA: its reconstruction through the bottleneck."""
    _map_rows(_call("reconstruct"), model, data, output, image_size, overwrite, stream, as_data=True)


@click.command()
@click.argument("model")
@click.argument("data")
@click.option("-o", "--output", required=True, help=_DATA_OUTPUT.format(stream=""))
@image_size_opt
@overwrite_opt
def denoise(model: str, data: str, output: str, image_size: str | None, overwrite: bool) -> None:
    """Clean DATA with MODEL, a model trained with a corruption (e.g. --preset denoising).

    The output is DATA's reconstruction in DATA's units: the network learned to map corrupted inputs to
    clean ones, so give it data corrupted like its training noise. A model trained without corruption
    gets a warning.
    """
    _map_rows(_call("denoise"), model, data, output, image_size, overwrite, as_data=True)


@click.command()
@click.argument("model")
@click.argument("data")
@click.option("-o", "--output", required=True, help="Output table: .csv or .parquet (.npy for numbers only).")
@overwrite_opt
def impute(model: str, data: str, output: str, overwrite: bool) -> None:
    """Fill the missing cells of DATA, a table, from MODEL; keep every other cell.

    Missing cells are empty cells (or NA, NaN, null) of a CSV file and nulls of a Parquet file. Each row is
    encoded with its missing cells marked as missing and decoded: a numeric cell gets the reconstruction,
    a categorical cell its most likely level. The output has MODEL's columns, with their names.
    """
    _map_rows(_call("impute"), model, data, output, None, overwrite)


@click.command()
@click.argument("model")
@click.option("-n", "--n-samples", type=click.IntRange(min=1), default=16, show_default=True, help="How many.")
@click.option("--random-state", type=int, default=None, help="Seed of the codes drawn (default: fresh).")
@click.option("-o", "--output", required=True, help="Output file: .npy, .csv or .parquet.")
@overwrite_opt
def sample(model: str, n_samples: int, random_state: int | None, output: str, overwrite: bool) -> None:
    """Draw new data from MODEL, a variational model (bottleneck=gaussian, e.g. --preset vae).

    Each sample is the decoder's mean at a code drawn from the standard normal prior, in the training
    data's units and sample shape.
    """
    refuse_existing(output, overwrite)
    ae = load_model_file(model)
    write_output(output, ae.sample(n_samples, random_state=random_state), overwrite)


@click.command()
@click.argument("model")
@click.argument("data")
@click.option("--steps", type=click.IntRange(min=2), default=8, show_default=True, help="Points per path, both ends.")
@click.option("-o", "--output", required=True, help="Output file: .npy, .csv or .parquet.")
@image_size_opt
@overwrite_opt
def interpolate(model: str, data: str, steps: int, output: str, image_size: str | None, overwrite: bool) -> None:
    """Walk the code space between DATA's rows taken in pairs (1st-2nd, 3rd-4th, ...).

    Each pair gives STEPS decoded points on the straight line between the two codes (both ends
    included); the output has n_pairs * STEPS rows, pair after pair. Works for every bottleneck.
    """
    from isthmus.errors import DataError

    refuse_existing(output, overwrite)
    ae = load_model_file(model)
    images_of_mixed_sizes(ae, data, image_size, refuse="interpolate joins images of one size")
    x = read_spec(data, image_size).X
    if len(x) < 2 or len(x) % 2:
        raise DataError(
            f"{data} has {len(x)} rows; interpolate joins rows in pairs (1st-2nd, 3rd-4th, ...), "
            "so give an even number of at least 2"
        )
    paths = ae.interpolate(x[0::2], x[1::2], steps=steps)  # (n_pairs, steps, *sample shape)
    write_output(output, paths.reshape(-1, *paths.shape[2:]), overwrite)
