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


def _write(path: str, array: Any, overwrite: bool, columns: Sequence[str] | None = None) -> None:
    from isthmus.data import write_array

    write_array(path, array, overwrite=overwrite, columns=columns)
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
@click.option(
    "--labels",
    default=None,
    help="Class labels of DATA (a labels file, or a data spec such as 'digits[:500]' whose source has labels): "
    "adds kNN and probe accuracies of the codes.",
)
@click.option(
    "--train",
    "train_data",
    default=None,
    help="Labelled data to fit the kNN classifier and the probe on (default: 5-fold cross-validation on DATA).",
)
@click.option("--train-labels", default=None, help="Labels of --train (default: those its source carries).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@_image_size_opt
def evaluate(
    model: str,
    data: str,
    labels: str | None,
    train_data: str | None,
    train_labels: str | None,
    as_json: bool,
    image_size: str | None,
) -> None:
    """MODEL on DATA beside PCA with the same n_components, fitted on the same training data.

    Reports reconstruction (MSE, SSE per sample, PSNR, explained variance) and the trustworthiness of the
    codes; with --labels also the accuracy of a 5-nearest-neighbour classifier and of a logistic-regression
    probe reading the codes, fitted on --train's codes or, without --train, cross-validated on DATA.
    """
    from isthmus.metrics import evaluate as run

    if train_data is not None and labels is None:
        raise click.UsageError("--train fits the kNN classifier and the probe, which also need --labels for DATA")
    if train_labels is not None and train_data is None:
        raise click.UsageError("--train-labels gives the labels of --train; give --train too")
    ae = _load(model)
    if ae.encoder_only_:
        _raise_encoder_only()
    dataset = _read(data, image_size)
    y = None if labels is None else _labels_for(labels, len(dataset.X), data)
    x_train = y_train = None
    if train_data is not None:
        train = _read(train_data, image_size)
        x_train = train.X
        y_train = _train_labels(train, train_labels, train_data)
    result = {"model": model, "data": dataset.name, **run(ae, dataset.X, y, X_train=x_train, y_train=y_train)}
    if as_json:
        click.echo(json.dumps(result))
        return
    click.echo(f"{dataset.name}: {result['n_samples']} samples, n_components={result['n_components']}")
    columns = ("MSE", "SSE/sample", "PSNR (dB)", "expl. var", "trustw.", "kNN-5", "probe")
    click.echo(f"{'':14}" + "".join(f"{c:>12}" for c in columns))
    for name, label in (("autoencoder", "autoencoder"), ("pca", f"PCA-{result['n_components']}")):
        m = result[name]
        cells = (
            f"{m['mse']:.5g}",
            f"{m['sse_per_sample']:.5g}",
            _db(m["psnr"]),
            *(_fraction(m[key]) for key in ("explained_variance", "trustworthiness", "knn_accuracy", "probe_accuracy")),
        )
        click.echo(f"{label:14}" + "".join(f"{c:>12}" for c in cells))
    fitted = result["classifiers"]
    if fitted is not None and fitted["fit_on"] == "train":
        click.echo(f"kNN-5 and probe fitted on the codes of {train_data} ({fitted['n_train']} rows), scored on {data}")
    elif fitted is not None:
        click.echo(f"kNN-5 and probe accuracies: {fitted['n_splits']}-fold cross-validation on {data}")


def _fraction(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _labels_for(spec: str, n_samples: int, data: str) -> Any:
    """Labels read from ``spec``, one per row of DATA, or DataError."""
    from isthmus.data import read_labels
    from isthmus.errors import DataError

    y = read_labels(spec)
    if len(y) != n_samples:
        raise DataError(f"{spec} has {len(y)} labels but {data} has {n_samples} rows; give one label per row")
    return y


def _train_labels(train: Any, spec: str | None, train_data: str) -> Any:
    """The labels of --train: from --train-labels, else those its source carries."""
    from isthmus.errors import DataError

    if spec is not None:
        return _labels_for(spec, len(train.X), train_data)
    if train.y is None:
        raise DataError(f"{train_data} carries no labels; give them with --train-labels")
    return train.y


@cli.command("score")
@click.argument("model")
@click.argument("data")
@click.option("-o", "--output", required=True, help="Scores file (.npy, .csv or .parquet): columns score, flag.")
@click.option(
    "--labels",
    default=None,
    help="Which rows of DATA are anomalies, 0/1 (1 = anomaly) or +1/-1 (-1 = anomaly): a labels file or a data "
    "spec; prints ROC-AUC and average precision.",
)
@_image_size_opt
@_overwrite
def score_command(
    model: str, data: str, output: str, labels: str | None, image_size: str | None, overwrite: bool
) -> None:
    """Score DATA's rows for anomalies with MODEL: a score and a flag per row.

    The output has one row per row of DATA and two columns: score (higher is more normal; what it is
    depends on the model's anomaly_score) and flag (+1 normal, -1 anomaly: a score below the threshold
    offset_ that the model's contamination set from its training rows).
    """
    import numpy as np

    from isthmus.scoring import anomaly_truth, detection_metrics, offset

    _refuse_existing(output, overwrite)
    ae = _load(model)
    threshold = offset(ae)
    dataset = _read(data, image_size)
    truth = None if labels is None else anomaly_truth(_labels_for(labels, len(dataset.X), data), labels)
    scores = ae.score_samples(dataset.X)  # (n_samples,)
    flags = np.where(scores - threshold < 0, -1, 1)  # as predict, without scoring twice
    _write(output, np.column_stack([scores, flags]), overwrite, columns=("score", "flag"))
    n_flagged = int((flags == -1).sum())
    click.echo(f"flagged {n_flagged} of {len(scores)} rows as anomalies (score < offset_ = {threshold:.6g})")
    if truth is not None:
        m = detection_metrics(scores, truth)
        click.echo(
            f"ROC-AUC {m['roc_auc']:.4f}, average precision {m['average_precision']:.4f} "
            f"({m['n_anomalies']} anomalies in {len(scores)} rows)"
        )


def _raise_encoder_only() -> None:
    from isthmus.errors import EncoderOnlyError

    raise EncoderOnlyError(
        "this model file holds only the encoder, so it cannot reconstruct; use the full model"
    )


def _db(value: float) -> str:
    return "inf" if math.isinf(value) else f"{value:.2f}"


@cli.command()
@click.argument("model")
@click.argument("data")
@click.option("-o", "--output", required=True, help="Bitstream file to write (.isth).")
@click.option("--lossless", is_flag=True, help="Store 8-bit data exactly (decompress gives them back bit for bit).")
@_image_size_opt
@_overwrite
def compress(model: str, data: str, output: str, lossless: bool, image_size: str | None, overwrite: bool) -> None:
    """Compress DATA with MODEL (bottleneck='quantized') into one bitstream file.

    DATA is any data spec, or one PNG/JPEG file. Values that are all integers 0..255 (8-bit images) are
    stored as uint8, so that decompress gives 8-bit images back; other data as float32.
    """
    import numpy as np

    from isthmus._files import write_bytes_atomic

    _refuse_existing(output, overwrite)
    ae = _load(model)
    x = _read_image_file(data) if _is_image_file(data) else _read(data, image_size).X
    sample_shape = tuple(ae.input_shape_)
    if x.ndim >= 2 and x.shape[1:] != sample_shape and math.prod(x.shape[1:]) == math.prod(sample_shape):
        x = x.reshape(len(x), *sample_shape)  # e.g. (n, 1, 28, 28) images for a model of (28, 28) samples
    if np.all((x >= 0) & (x <= 255) & (x == np.round(x))):
        x = x.astype(np.uint8)
    stream = ae.compress(x, lossless=lossless)
    write_bytes_atomic(output, stream, overwrite=overwrite)
    bits = 8 * len(stream) / x.size
    click.echo(f"wrote {output}: {len(x)} samples in {len(stream)} bytes ({bits:.3f} bits per value)")


@cli.command()
@click.argument("model")
@click.argument("stream")
@click.option("-o", "--output", required=True, help="Output: .npy, .csv, .parquet, .png (one image) or a folder.")
@_overwrite
def decompress(model: str, stream: str, output: str, overwrite: bool) -> None:
    """Decode STREAM, a bitstream written by compress, with the MODEL that wrote it.

    OUTPUT ending in .png writes one image; OUTPUT without a suffix is a folder of PNG files, one per sample
    (00000.png, ...); any other suffix is an array file.
    """
    _refuse_existing(output, overwrite)
    ae = _load(model)
    x = ae.decompress(Path(stream).read_bytes())
    target = Path(output)
    if target.suffix.lower() == ".png" or not target.suffix:
        _write_pngs(target, x, sample_ndim=len(ae.input_shape_), overwrite=overwrite)
        click.echo(f"wrote {output} {tuple(x.shape)}", err=True)
    else:
        _write(output, x, overwrite)


def _is_image_file(spec: str) -> bool:
    path = Path(spec)
    return path.suffix.lower() in (".png", ".jpg", ".jpeg") and path.is_file()


def _read_image_file(spec: str) -> Any:
    """One PNG/JPEG file as a (1, height, width) or (1, 3, height, width) uint8 array."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    from isthmus.errors import DataError

    try:
        with Image.open(spec) as image:
            pixels = np.asarray(image.convert("L" if image.mode in ("1", "L", "P", "LA") else "RGB"))
    except (OSError, UnidentifiedImageError) as exc:
        raise DataError(f"{spec} is not a readable image ({exc})") from None
    return (pixels if pixels.ndim == 2 else pixels.transpose(2, 0, 1))[None]


def _write_pngs(target: Path, x: Any, *, sample_ndim: int, overwrite: bool) -> None:
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
        paths = [target]
    else:
        paths = [target / f"{i:05d}.png" for i in range(len(images))]
    for path, image in zip(paths, images, strict=True):
        with atomic_path(path, overwrite=overwrite) as tmp:
            Image.fromarray(image).save(tmp, format="PNG")


@cli.command("export-encoder")
@click.argument("model")
@click.option("-o", "--output", required=True, help="Encoder file to write (.safetensors).")
@_overwrite
def export_encoder(model: str, output: str, overwrite: bool) -> None:
    """Write MODEL's encoder alone: it can encode but not decode."""
    _refuse_existing(output, overwrite)
    _load(model).export_encoder(output, overwrite=overwrite)
    click.echo(f"saved {output}")


@cli.command("export-onnx")
@click.argument("model")
@click.option("-o", "--output", required=True, help="ONNX file to write (.onnx).")
@click.option(
    "--part", type=click.Choice(["encoder", "decoder"]), default="encoder", show_default=True, help="Which half."
)
@_overwrite
def export_onnx(model: str, output: str, part: str, overwrite: bool) -> None:
    """Write MODEL's encoder or decoder as an ONNX graph, the scaler folded in (needs isthmus[onnx]).

    The encoder maps x (batch, *sample shape) in the training data's units to code (batch, n_components),
    the posterior mean for a variational model; the decoder maps code back to x. The batch size is free.
    """
    from isthmus.export import export_onnx as run

    _refuse_existing(output, overwrite)
    run(_load(model), output, part=part, overwrite=overwrite)
    click.echo(f"saved {output}")


@cli.command()
@click.argument("model")
@click.argument("data", required=False)
@click.option("-o", "--output", required=True, help="Folder to write index.html and its PNG files into.")
@click.option(
    "--labels",
    default=None,
    help="Labels of DATA that colour the codes: a labels file or a labelled data spec (default: DATA's own).",
)
@_image_size_opt
@_overwrite
def report(
    model: str, data: str | None, output: str, labels: str | None, image_size: str | None, overwrite: bool
) -> None:
    """Write an HTML report with PNG plots of what MODEL learned, shown on DATA when given (needs isthmus[report]).

    Loss curves, originals beside reconstructions, the codes coloured by label, samples and an
    interpolation for variational models, anomaly scores, and reconstruction metrics beside PCA. The
    folder's index.html opens from disk; it links nothing outside the folder.
    """
    from isthmus.report import write_report

    if labels is not None and data is None:
        raise click.UsageError("--labels needs DATA")
    _refuse_existing(str(Path(output) / "index.html"), overwrite)
    ae = _load(model)
    dataset = None if data is None else _read(data, image_size)
    y = None if dataset is None else dataset.y
    if labels is not None:
        from isthmus.data import read_labels

        y = read_labels(labels)
    result = write_report(
        ae,
        output,
        None if dataset is None else dataset.X,
        y,
        model_name=Path(model).name,
        data_name=None if dataset is None else dataset.name,
        overwrite=overwrite,
    )
    for name, reason in result.skipped.items():
        click.echo(f"not shown: {name} ({reason})", err=True)
    click.echo(f"wrote {result.page} with {len(result.images)} figures")


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
