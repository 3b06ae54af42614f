"""The command line: a thin shell over the public API.

Every user mistake becomes one ``error: ...`` line on stderr and exit status 1 (2 for usage errors).
"""

from __future__ import annotations

import json
import math
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from isthmus import __version__
from isthmus.config import PRESETS, parse_assignment, resolve_params
from isthmus.errors import IsthmusError, OutputError


class _Group(click.Group):
    """Maps the library's errors to ``error: <message>`` and exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except IsthmusError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(1)
        except OSError as exc:
            name = f" {exc.filename}" if exc.filename else ""
            click.echo(f"error: cannot access{name}: {exc.strerror or exc}", err=True)
            ctx.exit(1)
        except KeyboardInterrupt:
            click.echo("error: interrupted", err=True)
            ctx.exit(130)


def _image_size(value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    try:
        width, height = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"{value!r} must look like WIDTHxHEIGHT, e.g. 28x28") from None
    return width, height


def _refuse_existing(path: str, overwrite: bool) -> None:
    if Path(path).exists() and not overwrite:
        raise OutputError(f"{path} already exists; pass --overwrite to replace it")


def _read(spec: str, image_size: str | None = None) -> Any:
    from isthmus.data import read_data

    return read_data(spec, image_size=_image_size(image_size))


def _load(path: str) -> Any:
    from isthmus import load

    return load(path)


def _write(path: str, array: Any, overwrite: bool) -> None:
    from isthmus.data import write_array

    write_array(path, array, overwrite=overwrite)
    click.echo(f"wrote {path} {tuple(array.shape)}", err=True)


_overwrite = click.option("--overwrite", is_flag=True, help="Replace an existing output file.")
_image_size_opt = click.option("--image-size", default=None, help="Resize images in a folder, WIDTHxHEIGHT.")


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="isthmus")
def cli() -> None:
    """isthmus: train autoencoders and use them to encode, decode and evaluate data."""


@cli.command()
@click.argument("data")
@click.option("-o", "--output", "model", required=True, help="Model file to write (.safetensors).")
@click.option("--preset", type=click.Choice(sorted(PRESETS)), default=None, help="A named recipe.")
@click.option(
    "--config", "config_file", type=click.Path(dir_okay=False), default=None, help="TOML parameters."
)
@click.option(
    "--set", "assignments", multiple=True, metavar="NAME=VALUE", help="Set any estimator parameter."
)
@click.option("--resume", is_flag=True, help="Continue the stopped run from MODEL's checkpoint.")
@_image_size_opt
@_overwrite
def train(
    data: str,
    model: str,
    preset: str | None,
    config_file: str | None,
    assignments: Sequence[str],
    resume: bool,
    image_size: str | None,
    overwrite: bool,
) -> None:
    """Train an autoencoder on DATA and save it to MODEL.

    DATA is a file (.npy, .npz[:key], .csv, .parquet, IDX, image folder) or a built-in name (digits,
    mnist), optionally sliced by rows: 'digits[:1500]'. A checkpoint (MODEL with suffix .ckpt) is
    written after every epoch, per-epoch metrics go to MODEL with suffix .log.jsonl.
    """
    from isthmus import Autoencoder

    overrides = dict(parse_assignment(a) for a in assignments)
    params = resolve_params(preset=preset, config_file=config_file, overrides=overrides)
    _refuse_existing(model, overwrite or resume)
    checkpoint = Path(model).with_suffix(".ckpt")
    log = Path(model).with_suffix(".log.jsonl")
    dataset = _read(data, image_size)
    if not resume:
        log.unlink(missing_ok=True)
    log.parent.mkdir(parents=True, exist_ok=True)  # the log is appended to, so nothing else creates it
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ae = Autoencoder(**params).fit(
            dataset.X,
            checkpoint=None if resume else checkpoint,
            resume=checkpoint if resume else None,
            log=log,
        )
    for warning in caught:
        click.echo(f"warning: {warning.message}", err=True)
    ae.save(model)
    last = ae.history_[-1] if ae.history_ else {}
    shown = ", ".join(f"{k}={v:.5g}" for k, v in last.items() if k.endswith("_loss"))
    click.echo(f"trained {ae.n_iter_} epochs on {len(dataset.X)} samples of {dataset.name} ({shown})")
    click.echo(f"saved {model}")


@cli.command()
@click.argument("model")
@click.argument("data")
@click.option("-o", "--output", required=True, help="Codes file: .npy, .csv or .parquet.")
@_image_size_opt
@_overwrite
def encode(model: str, data: str, output: str, image_size: str | None, overwrite: bool) -> None:
    """Encode DATA with MODEL into codes (n_samples, n_components)."""
    _refuse_existing(output, overwrite)
    ae = _load(model)
    _write(output, ae.transform(_read(data, image_size).X), overwrite)


@cli.command()
@click.argument("model")
@click.argument("codes")
@click.option("-o", "--output", required=True, help="Output file: .npy, .csv or .parquet.")
@_overwrite
def decode(model: str, codes: str, output: str, overwrite: bool) -> None:
    """Decode CODES with MODEL back into data in the training data's units."""
    _refuse_existing(output, overwrite)
    ae = _load(model)
    _write(output, ae.inverse_transform(_read(codes).X), overwrite)


@cli.command()
@click.argument("model")
@click.argument("data")
@click.option("-o", "--output", required=True, help="Output file: .npy, .csv or .parquet.")
@_image_size_opt
@_overwrite
def reconstruct(model: str, data: str, output: str, image_size: str | None, overwrite: bool) -> None:
    """Encode and decode DATA: its reconstruction through the bottleneck."""
    _refuse_existing(output, overwrite)
    ae = _load(model)
    _write(output, ae.reconstruct(_read(data, image_size).X), overwrite)


# --- paste into src/isthmus/cli.py after the `reconstruct` command ---------------------------------


@cli.command()
@click.argument("model")
@click.argument("data")
@click.option("-o", "--output", required=True, help="Output file: .npy, .csv or .parquet.")
@_image_size_opt
@_overwrite
def denoise(model: str, data: str, output: str, image_size: str | None, overwrite: bool) -> None:
    """Clean DATA with MODEL, a model trained with a corruption (e.g. --preset denoising).

    The output is DATA's reconstruction in DATA's units: the network learned to map corrupted inputs to
    clean ones, so give it data corrupted like its training noise.
    """
    _refuse_existing(output, overwrite)
    ae = _load(model)
    _write(output, ae.denoise(_read(data, image_size).X), overwrite)


@cli.command()
@click.argument("model")
@click.option("-n", "--n-samples", type=click.IntRange(min=1), default=16, show_default=True, help="How many.")
@click.option("--random-state", type=int, default=None, help="Seed of the codes drawn (default: fresh).")
@click.option("-o", "--output", required=True, help="Output file: .npy, .csv or .parquet.")
@_overwrite
def sample(model: str, n_samples: int, random_state: int | None, output: str, overwrite: bool) -> None:
    """Draw new data from MODEL, a variational model (bottleneck=gaussian, e.g. --preset vae).

    Each sample is the decoder's mean at a code drawn from the standard normal prior, in the training
    data's units and sample shape.
    """
    _refuse_existing(output, overwrite)
    ae = _load(model)
    _write(output, ae.sample(n_samples, random_state=random_state), overwrite)


@cli.command()
@click.argument("model")
@click.argument("data")
@click.option("--steps", type=click.IntRange(min=2), default=8, show_default=True, help="Points per path, both ends.")
@click.option("-o", "--output", required=True, help="Output file: .npy, .csv or .parquet.")
@_image_size_opt
@_overwrite
def interpolate(model: str, data: str, steps: int, output: str, image_size: str | None, overwrite: bool) -> None:
    """Walk the code space between DATA's rows taken in pairs (1st-2nd, 3rd-4th, ...).

    Each pair gives STEPS decoded points on the straight line between the two codes (both ends
    included); the output has n_pairs * STEPS rows, pair after pair. Works for every bottleneck.
    """
    from isthmus.errors import DataError

    _refuse_existing(output, overwrite)
    ae = _load(model)
    x = _read(data, image_size).X
    if len(x) < 2 or len(x) % 2:
        raise DataError(
            f"{data} has {len(x)} rows; interpolate joins rows in pairs (1st-2nd, 3rd-4th, ...), "
            "so give an even number of at least 2"
        )
    paths = ae.interpolate(x[0::2], x[1::2], steps=steps)  # (n_pairs, steps, *sample shape)
    _write(output, paths.reshape(-1, *paths.shape[2:]), overwrite)


@cli.command()
@click.argument("model")
@click.argument("data")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@_image_size_opt
def evaluate(model: str, data: str, as_json: bool, image_size: str | None) -> None:
    """Reconstruction error of MODEL on DATA beside PCA with the same n_components."""
    from isthmus.metrics import evaluate as run

    ae = _load(model)
    if ae.encoder_only_:
        _raise_encoder_only()
    dataset = _read(data, image_size)
    result = {"model": model, "data": dataset.name, **run(ae, dataset.X)}
    if as_json:
        click.echo(json.dumps(result))
        return
    click.echo(f"{dataset.name}: {result['n_samples']} samples, n_components={result['n_components']}")
    click.echo(f"{'':14}{'MSE':>12}{'SSE/sample':>14}{'PSNR (dB)':>12}")
    for name, label in (("autoencoder", "autoencoder"), ("pca", f"PCA-{result['n_components']}")):
        m = result[name]
        click.echo(f"{label:14}{m['mse']:>12.5g}{m['sse_per_sample']:>14.5g}{_db(m['psnr']):>12}")


def _raise_encoder_only() -> None:
    from isthmus.errors import EncoderOnlyError

    raise EncoderOnlyError(
        "this model file holds only the encoder, so it cannot reconstruct; use the full model"
    )


def _db(value: float) -> str:
    return "inf" if math.isinf(value) else f"{value:.2f}"


@cli.command("export-encoder")
@click.argument("model")
@click.option("-o", "--output", required=True, help="Encoder file to write (.safetensors).")
@_overwrite
def export_encoder(model: str, output: str, overwrite: bool) -> None:
    """Write MODEL's encoder alone: it can encode but not decode."""
    _refuse_existing(output, overwrite)
    _load(model).export_encoder(output, overwrite=overwrite)
    click.echo(f"saved {output}")


@cli.command()
@click.argument("model")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def info(model: str, as_json: bool) -> None:
    """Describe MODEL: parameters, input shape, training and provenance."""
    from isthmus.artifact import read_model_file

    metadata, tensors = read_model_file(model)
    # safetensors hands metadata back in no fixed order; sort it so that the output is stable
    described = {k: _metadata_value(k, v) for k, v in sorted(metadata.items()) if k != "training"}
    training = _metadata_value("training", metadata.get("training", "{}"))
    training = training if isinstance(training, dict) else {}
    described["n_iter"] = training.get("n_iter")
    described["best_loss"] = training.get("best_loss")
    described["n_parameters"] = sum(
        t.numel() for k, t in tensors.items() if not k.startswith(("scaler.", "pca."))
    )
    if as_json:
        click.echo(json.dumps(described, sort_keys=True))
        return
    for key, value in sorted(described.items(), key=lambda item: (isinstance(item[1], dict), item[0])):
        if isinstance(value, dict):  # params (and resolved): one line per entry, after the plain keys
            click.echo(f"{key}:")
            for name, v in value.items():
                click.echo(f"  {name} = {v}")
        else:
            click.echo(f"{key}: {value}")


_PLAIN_STRINGS = ("format", "isthmus_version", "torch_version")


def _metadata_value(key: str, text: str) -> Any:
    """A metadata value decoded from JSON; plain-string fields, and text that is not JSON, as given."""
    if key in _PLAIN_STRINGS:
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    try:
        # Without standalone mode click *returns* the status of a ``ctx.exit(n)`` (as from _Group)
        # instead of raising Exit; on success it returns the command's own value (None).
        args = list(argv) if argv is not None else None
        status = cli.main(args=args, prog_name="isthmus", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("error: aborted", err=True)
        return 130
    return status if isinstance(status, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
