"""Commands that measure a model: evaluate (beside PCA), score (anomalies), report (HTML + PNG)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

import click

import isthmus.cli.series as series_cli
from isthmus.cli._common import (
    db,
    image_size_opt,
    images_of_mixed_sizes,
    load_model_file,
    overwrite_opt,
    raise_encoder_only,
    read_table_spec,
    refuse_existing,
    write_output,
)

_labels_opt = click.option(
    "--labels",
    default=None,
    help="Class labels of DATA (a labels file, or a data spec such as 'digits[:500]' whose source has labels; "
    "default: those DATA carries): adds kNN and probe accuracies of the codes; in evaluate, two-valued labels "
    "(0/1, +1/-1) also read as anomaly flags: ROC-AUC of score_samples beside IsolationForest's and PCA's on "
    "the same scaled rows.",
)
_train_opt = click.option(
    "--train",
    "train_data",
    default=None,
    help="Labelled data to fit the kNN classifier and the probe on (default: 5-fold cross-validation on DATA).",
)
_train_labels_opt = click.option("--train-labels", default=None, help="Labels of --train (default: its own).")


class _Measured(NamedTuple):
    """DATA as read, its labels, and the metrics beside PCA that evaluate prints and report shows."""

    dataset: Any
    labels: Any
    result: dict[str, Any]
    note: str  # why the accuracies are missing, when labels were given but could not be used


def _measure(
    ae: Any,
    data: str,
    labels: str | None,
    train_data: str | None,
    train_labels: str | None,
    image_size: str | None,
) -> _Measured:
    """The one computation behind evaluate and report: :func:`isthmus.metrics.evaluate` of MODEL on DATA.

    Labels are --labels, else those DATA carries. Labels too few per class to cross-validate drop the
    accuracies, with a note that says so.
    """
    from isthmus.errors import IsthmusError
    from isthmus.metrics import evaluate as run

    if train_labels is not None and train_data is None:
        raise click.UsageError("--train-labels gives the labels of --train; give --train too")
    images_of_mixed_sizes(ae, data, image_size, refuse="the measures take DATA's images as one array")
    dataset = read_table_spec(data, image_size)
    y = dataset.y if labels is None else _labels_for(labels, len(dataset.X), data)
    if train_data is not None and y is None:
        raise click.UsageError(f"--train fits the kNN classifier and the probe, which also need labels for {data}")
    x_train = y_train = None
    if train_data is not None:
        train = read_table_spec(train_data, image_size)
        x_train = train.X
        y_train = _train_labels(train, train_labels, train_data)
    try:
        result = run(ae, dataset.X, y, X_train=x_train, y_train=y_train)
    except IsthmusError as exc:
        if y is None or train_data is not None:
            raise
        return _Measured(dataset, y, run(ae, dataset.X), f"the accuracies of the codes are not shown: {exc}")
    return _Measured(dataset, y, result, "")


@click.command()
@click.argument("model")
@click.argument("data")
@_labels_opt
@_train_opt
@_train_labels_opt
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@image_size_opt
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
    codes; with labels (--labels, or those DATA carries) also the accuracy of a 5-nearest-neighbour
    classifier and of a logistic-regression probe reading the codes, fitted on --train's codes or, without
    --train, cross-validated on DATA. ``report`` shows the same numbers.
    """
    ae = load_model_file(model)
    if ae.encoder_only_:
        raise_encoder_only()
    measured = _measure(ae, data, labels, train_data, train_labels, image_size)
    dataset = measured.dataset
    result = {"model": model, "data": dataset.name, **measured.result}
    if measured.note:
        click.echo(f"note: {measured.note}", err=True)
    y = measured.labels
    import numpy as np

    from isthmus.baselines import detection_baselines, is_anomaly_labels, print_rows
    from isthmus.fitted import Fitted

    # two-valued labels (0/1 or +1/-1) also read as anomaly flags: the model's scores beside the baselines'
    detection = None
    if y is not None and is_anomaly_labels(y):
        detection = detection_baselines(Fitted.of(ae), np.asarray(dataset.X), y, ae.score_samples(dataset.X))
    result["detection"] = detection
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
            "-" if m["psnr"] is None else db(m["psnr"]),
            *(_fraction(m[key]) for key in ("explained_variance", "trustworthiness", "knn_accuracy", "probe_accuracy")),
        )
        click.echo(f"{label:14}" + "".join(f"{c:>12}" for c in cells))
    if result["columns"] is not None:
        k = result["n_components"]
        click.echo(f"per column, from the {k}-dimensional code (R² numeric, accuracy categorical):")
        click.echo(f"{'':20}{'metric':>10}{'autoencoder':>13}{'PCA-' + str(result['n_components']):>10}")
        for column in result["columns"]:
            cells = (column["metric"], _fraction(column["autoencoder"]), _fraction(column["pca"]))
            click.echo(f"{column['name'][:19]:20}{cells[0]:>10}{cells[1]:>13}{cells[2]:>10}")
    fitted = result["classifiers"]
    if fitted is not None and fitted["fit_on"] == "train":
        click.echo(f"kNN-5 and probe fitted on the codes of {train_data} ({fitted['n_train']} rows), scored on {data}")
    elif fitted is not None:
        click.echo(f"kNN-5 and probe accuracies: {fitted['n_splits']}-fold cross-validation on {data}")
    if detection is not None:
        click.echo("the labels read as anomaly flags (1 or -1 = anomaly); score_samples beside baselines on the same")
        click.echo("scaled rows (IsolationForest fitted on them, PCA on the model's training rows):")
        for line in print_rows(detection, int(result["n_components"])):
            click.echo(line)


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


@click.command("score")
@click.argument("model")
@click.argument("data")
@click.option("-o", "--output", required=True, help="Scores file (.npy, .csv or .parquet): columns score, flag.")
@click.option(
    "--labels",
    default=None,
    help="Which rows of DATA are anomalies, 0/1 (1 = anomaly) or +1/-1 (-1 = anomaly): a labels file or a data "
    "spec; prints ROC-AUC and average precision beside IsolationForest's and PCA's on the same scaled rows.",
)
@click.option(
    "--explain",
    type=click.IntRange(min=1),
    default=None,
    metavar="K",
    help="Add the K columns that contribute most to each row's score: explain_1 .. explain_K.",
)
@series_cli.time_column_opt
@image_size_opt
@overwrite_opt
def score_command(
    model: str,
    data: str,
    output: str,
    labels: str | None,
    explain: int | None,
    time_column: str | None,
    image_size: str | None,
    overwrite: bool,
) -> None:
    """Score DATA's rows for anomalies with MODEL: a score and a flag per row.

    The output has one row per row of DATA and two columns: score (higher is more normal; what it is
    depends on the model's anomaly_score) and flag (+1 normal, -1 anomaly: a score below the threshold
    offset_ that the model's contamination set from its training rows). With --explain K, also the names
    of the K columns (features) that add most to the row's score, most first (Autoencoder.score_contributions).

    With a series model (trained with --window), DATA is a series and the output (.csv or .parquet) has
    one row per timestamp: timestamp, score (the mean score of the windows covering the timestamp) and
    flag (against the threshold set on the held-out end of the training series).
    """
    import numpy as np

    from isthmus.fitted import Fitted
    from isthmus.scoring import anomaly_truth, offset

    refuse_existing(output, overwrite)
    ae = load_model_file(model)
    threshold = offset(Fitted.of(ae))  # NotFittedError, saying what to do, for a file without offset_
    series_cli.check_series_options(ae.window, time_column)
    series = None if ae.window is None else series_cli.read(data, time_column)
    images = None
    if series is None:  # a fully convolutional model scores each image of a folder of mixed sizes at its own size
        one_array = explain is not None or labels is not None
        why = "--explain and --labels take DATA's images as one array" if one_array else None
        images = images_of_mixed_sizes(ae, data, image_size, refuse=why)
    X = images if images is not None else series if series is not None else read_table_spec(data, image_size).X
    n_rows = len(X) if series is None else len(series.values)
    truth = None if labels is None else anomaly_truth(_labels_for(labels, n_rows, data), labels)
    if images is not None:  # each at its own size; scores are per training crop (scoring.per_crop), so they compare
        scores = np.array([ae.score_samples(image[None])[0] for image in images])
    else:
        scores = ae.score_samples(X)  # (n_samples,), or (n_timestamps,) for a series
    flags = np.where(scores - threshold < 0, -1, 1)  # as predict, without scoring twice
    n_flagged = int((flags == -1).sum())
    if series is None:
        if explain is None:
            write_output(output, np.column_stack([scores, flags]), overwrite, columns=("score", "flag"))
        else:
            write_output(output, _explained(ae, X, scores, flags, explain), overwrite)
        click.echo(f"flagged {n_flagged} of {len(scores)} rows as anomalies (score < offset_ = {threshold:.6g})")
    else:
        series_cli.write_scores(output, series, scores, flags, overwrite)
        click.echo(f"flagged {n_flagged} of {len(scores)} timestamps (score < offset_ = {threshold:.6g})")
        for stretch in series_cli.flagged_stretches(series.timestamps, flags):
            click.echo(f"  {stretch}")
    if truth is not None and series is not None:  # per timestamp; the row baselines do not apply to a series
        from isthmus.scoring import detection_metrics

        m = detection_metrics(scores, truth)
        click.echo(
            f"ROC-AUC {m['roc_auc']:.4f}, average precision {m['average_precision']:.4f} "
            f"({m['n_anomalies']} anomalous timestamps in {len(scores)})"
        )
    elif truth is not None:
        from isthmus.baselines import detection_baselines, print_rows

        result = detection_baselines(Fitted.of(ae), np.asarray(X), truth, scores)
        click.echo(
            f"{result['autoencoder']['n_anomalies']} anomalies in {len(scores)} rows; beside baselines on the "
            "same scaled rows (IsolationForest fitted on them, PCA on the model's training rows):"
        )
        for line in print_rows(result, int(ae.n_components)):
            click.echo(line)


def _explained(ae: Any, x: Any, scores: Any, flags: Any, k: int) -> Any:
    """A table of score, flag and the names of the ``k`` columns adding most to each row's score."""
    import numpy as np
    import pyarrow as pa

    parts = ae.score_contributions(x)
    if isinstance(parts, pa.Table):
        names, values = parts.column_names, np.column_stack([c.to_numpy(zero_copy_only=False) for c in parts.columns])
    elif hasattr(parts, "columns"):
        names, values = [str(c) for c in parts.columns], parts.to_numpy(dtype=np.float64)
    else:
        values = parts.reshape(len(parts), -1)
        schema = getattr(ae, "schema_", None)
        names = schema.names if schema is not None else [f"x{j}" for j in range(values.shape[1])]
    order = np.argsort(-np.nan_to_num(values, nan=-np.inf), axis=1, kind="stable")[:, : min(k, values.shape[1])]
    table = {"score": scores, "flag": flags}
    for rank in range(order.shape[1]):
        table[f"explain_{rank + 1}"] = np.asarray(names, dtype=object)[order[:, rank]]
    return pa.table({key: pa.array(list(value)) for key, value in table.items()})


@click.command()
@click.argument("model")
@click.argument("data", required=False)
@click.option("-o", "--output", required=True, help="Folder to write index.html and its PNG files into.")
@_labels_opt
@_train_opt
@_train_labels_opt
@series_cli.time_column_opt
@image_size_opt
@overwrite_opt
def report(
    model: str,
    data: str | None,
    output: str,
    labels: str | None,
    train_data: str | None,
    train_labels: str | None,
    time_column: str | None,
    image_size: str | None,
    overwrite: bool,
) -> None:
    """Write an HTML report with PNG plots of what MODEL learned, shown on DATA when given (needs isthmus[report]).

    Loss curves, originals beside reconstructions, the codes coloured by label, samples and an
    interpolation for variational models, anomaly scores, and the metrics beside PCA that ``evaluate``
    prints for the same options. The folder's index.html opens from disk; it links nothing outside the
    folder. For a series model (DATA a series): the loss curves and the series over time, with its
    reconstruction, the per-timestamp score and threshold and the flagged stretches shaded (--labels: one
    0/1 label per timestamp).
    """
    from isthmus.report import write_report

    if data is None and (labels or train_data or train_labels):
        raise click.UsageError("--labels, --train and --train-labels need DATA")
    refuse_existing(str(Path(output) / "index.html"), overwrite)
    ae = load_model_file(model)
    series_cli.check_series_options(ae.window, time_column)
    X: Any = None
    y: Any = None
    name = None
    measured = None
    if data is not None and ae.window is not None:  # a series, with its timestamps
        X = series_cli.read(data, time_column)
        name = X.name
        if labels is not None:
            from isthmus.data import read_labels

            y = read_labels(labels)
    elif data is not None and ae.encoder_only_:
        dataset = read_table_spec(data, image_size)
        X, name = dataset.X, dataset.name
        y = dataset.y if labels is None else _labels_for(labels, len(dataset.X), data)
    elif data is not None:  # the metrics evaluate prints, from the same computation
        measured = _measure(ae, data, labels, train_data, train_labels, image_size)
        X, y, name = measured.dataset.X, measured.labels, measured.dataset.name
    result = write_report(
        ae,
        output,
        X,
        y,
        model_name=Path(model).name,
        data_name=name,
        overwrite=overwrite,
        metrics=None if measured is None else measured.result,
        metrics_note=None if measured is None else measured.note,
    )
    for name, reason in result.skipped.items():
        click.echo(f"not shown: {name} ({reason})", err=True)
    click.echo(f"wrote {result.page} with {len(result.images)} figures")
