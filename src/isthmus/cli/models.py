"""Commands that make and describe model files: train, info, export-encoder, export-onnx."""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

import isthmus.cli.series as series_cli
from isthmus.cli._common import (
    image_size_opt,
    is_images,
    load_model_file,
    open_spec_rows,
    overwrite_opt,
    read_images,
    read_table_spec,
    refuse_existing,
    stream_opt,
)
from isthmus.config import PRESETS, parse_assignment, resolve_params


@click.command()
@click.argument("data")
@click.option("-o", "--output", "model", required=True, help="Model file to write (.safetensors).")
@click.option("--preset", type=click.Choice(sorted(PRESETS)), default=None, help="A named recipe.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None, help="TOML parameters.")
@click.option("--set", "assignments", multiple=True, metavar="NAME=VALUE", help="Set any estimator parameter.")
@click.option("--resume", is_flag=True, help="Continue the stopped run from MODEL's checkpoint.")
@click.option(
    "--crop",
    "--crop-size",
    "crop_size",
    type=click.IntRange(min=1),
    default=None,
    help="Train on random square crops of this many pixels from images of any sizes (sets crop_size; needs "
    "--set architecture=conv --set fully_convolutional=true).",
)
@click.option(
    "--window", type=click.IntRange(min=2), default=None, help="Train a series model: windows of this many timestamps."
)
@series_cli.time_column_opt
@click.option("--train-until", default=None, help="Series: train on the timestamps before this one, e.g. 2014-01-01.")
@stream_opt
@image_size_opt
@overwrite_opt
def train(
    data: str,
    model: str,
    preset: str | None,
    config_file: str | None,
    assignments: Sequence[str],
    resume: bool,
    crop_size: int | None,
    window: int | None,
    time_column: str | None,
    train_until: str | None,
    stream: bool,
    image_size: str | None,
    overwrite: bool,
) -> None:
    """Train an autoencoder on DATA and save it to MODEL.

    DATA is a file (.npy, .npz[:key], .csv, .parquet, IDX, image folder) or a built-in name (digits,
    mnist), optionally sliced by rows: 'digits[:1500]'. With --stream, a .npy or .parquet file or an
    image folder is read in chunks, never whole. A checkpoint (MODEL with suffix .ckpt) is written
    after every epoch, per-epoch metrics go to MODEL with suffix .log.jsonl.

    A series (``--window 64``, or ``--preset series``): DATA is a CSV or Parquet file with a timestamp
    column and value columns (or a .npy array), sorted by time; a row slice 'series.csv[:4000]' or
    --train-until picks the part to train on.

    Under torchrun (torchrun --nproc_per_node=N -m isthmus train ...) every process trains its share
    of each batch with DistributedDataParallel, and rank 0 writes the files.
    """
    from isthmus import Autoencoder, distributed
    from isthmus._files import check_suffix

    check_suffix(model, ".safetensors", "the model file")  # before any training
    overrides = dict(parse_assignment(a) for a in assignments)
    if crop_size is not None:
        overrides["crop_size"] = crop_size
    if window is not None:
        overrides["window"] = window
    params = resolve_params(preset=preset, config_file=config_file, overrides=overrides)
    series_cli.check_series_options(params.get("window"), time_column, train_until)
    refuse_existing(model, overwrite or resume)
    checkpoint = Path(model).with_suffix(".ckpt")
    log = Path(model).with_suffix(".log.jsonl")
    if params.get("window") is not None:
        series = series_cli.read(data, time_column, train_until)
        data_in, name = series, series.name
        size = f"{len(series.values)} timestamps, windows of {params['window']},"
    elif stream:
        rows = open_spec_rows(data, image_size)
        data_in, name = rows, rows.name
    elif params.get("crop_size") is not None and image_size is None and is_images(data):
        data_in, name = read_images(data), Path(data).name  # images of any sizes, none resized
    else:
        dataset = read_table_spec(data, image_size)
        data_in, name = dataset.X, dataset.name
        from isthmus.data.schema import infer_schema, is_table, read_columns

        if is_table(data_in):  # refuse a bad table now, before any output is created
            columns = read_columns(data_in, name)
            infer_schema(columns, params.get("categorical_features")).encode(columns, name)
    joined = distributed.init_from_env(params.get("device", "auto"))
    try:
        writer = distributed.is_writer()
        if writer and not resume:
            log.unlink(missing_ok=True)
        log.parent.mkdir(parents=True, exist_ok=True)  # the log is appended to, so nothing else creates it
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ae = Autoencoder(**params).fit(
                data_in,
                checkpoint=None if resume else checkpoint,
                resume=checkpoint if resume else None,
                log=log,
            )
        if not writer:
            return
        for warning in caught:
            click.echo(f"warning: {warning.message}", err=True)
        ae.save(model)
    finally:
        if joined:
            distributed.close()
    last = ae.history_[-1] if ae.history_ else {}
    shown = ", ".join(f"{k}={v:.5g}" for k, v in last.items() if k.endswith("_loss"))
    world = int(os.environ.get("WORLD_SIZE", "1")) if joined else 1
    on = f" in {world} processes" if world > 1 else ""
    size = f"{len(data_in)} samples" if params.get("window") is None else size
    click.echo(f"trained {ae.n_iter_} epochs on {size} of {name}{on} ({shown})")
    click.echo(f"stopped: {ae.stop_reason_}")
    click.echo(f"saved {model}")


@click.command()
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
    described["stop_reason"] = training.get("stop_reason")
    described["n_parameters"] = sum(t.numel() for k, t in tensors.items() if not k.startswith(("scaler.", "pca.")))
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


@click.command("export-encoder")
@click.argument("model")
@click.option("-o", "--output", required=True, help="Encoder file to write (.safetensors).")
@overwrite_opt
def export_encoder(model: str, output: str, overwrite: bool) -> None:
    """Write MODEL's encoder alone: it can encode but not decode."""
    from isthmus._files import check_suffix

    check_suffix(output, ".safetensors", "the encoder file")
    refuse_existing(output, overwrite)
    load_model_file(model).export_encoder(output, overwrite=overwrite)
    click.echo(f"saved {output}")


@click.command("export-onnx")
@click.argument("model")
@click.option("-o", "--output", required=True, help="ONNX file to write (.onnx).")
@click.option(
    "--part", type=click.Choice(["encoder", "decoder"]), default="encoder", show_default=True, help="Which half."
)
@overwrite_opt
def export_onnx(model: str, output: str, part: str, overwrite: bool) -> None:
    """Write MODEL's encoder or decoder as an ONNX graph, the scaler folded in (needs isthmus[onnx]).

    The encoder maps x (batch, *sample shape) in the training data's units to code (batch, n_components),
    the posterior mean for a variational model; the decoder maps code back to x. The batch size is free.
    """
    from isthmus.export import export_onnx as run

    refuse_existing(output, overwrite)
    run(load_model_file(model), output, part=part, overwrite=overwrite)
    click.echo(f"saved {output}")
