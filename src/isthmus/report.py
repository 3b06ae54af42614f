"""The report: PNG plots of what a model learned, and one HTML page that shows them.

``write_report(ae, folder, X, y)`` writes ``folder/index.html`` and one PNG per figure beside it. The
page has no scripts and no links outside the folder, so it opens from disk anywhere. Each figure is
a function of a :class:`Inputs` that returns a matplotlib Figure, or a string saying why it does not
apply (no data given, not image data, not a variational model, ...); the page lists those reasons.

Figures: loss curves (every named term, training and validation), originals beside reconstructions
(image data), the codes in 2-D coloured by label (PCA of the codes when n_components > 2), decoded
samples and an interpolation strip (variational models, image data), the histogram of anomaly scores
with the threshold ``offset_``; and a table of reconstruction metrics beside PCA.

Needs matplotlib (extra ``isthmus[report]``). Figures are drawn on ``matplotlib.figure.Figure``
directly, never through pyplot, so no global state or GUI backend is touched.
"""

from __future__ import annotations

import html
import io
import math
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from isthmus._files import write_bytes_atomic
from isthmus._optional import import_optional
from isthmus.errors import DataError, EncoderOnlyError, IsthmusError, OutputError
from isthmus.fitted import check_fitted
from isthmus.inputs import as_samples

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from isthmus.estimator import Autoencoder

#: at most this many points in the scatter of codes (a seeded random subset beyond it)
MAX_POINTS = 2000
#: samples per row in the reconstruction grid, and decoded samples drawn for a variational model
N_SHOWN = 10
N_SAMPLES = 32
INTERPOLATION_STEPS = 10


class Inputs(NamedTuple):
    """What every figure function reads: the model, and the data and labels when given."""

    ae: Autoencoder
    X: Any  # (n_samples, *sample shape), caller's units; a table model's table as given
    y: np.ndarray | None  # (n_samples,) labels


class Report(NamedTuple):
    """What ``write_report`` wrote: the page, the PNG of each figure shown, and why the others are not."""

    page: Path
    images: dict[str, Path]
    skipped: dict[str, str]


# ---------------------------------------------------------------- helpers


def _figure(width: float, height: float) -> Figure:
    figure_module = import_optional("matplotlib.figure", extra="report", feature="the report")
    return figure_module.Figure(figsize=(width, height), dpi=100, layout="constrained")  # type: ignore[no-any-return]


def _is_image(ae: Autoencoder) -> bool:
    return len(ae.input_shape_) in (2, 3)


def _needs_decoder(ae: Autoencoder) -> str | None:
    return "the model file holds only the encoder" if ae.encoder_only_ else None


def _is_generative(ae: Autoencoder) -> bool:
    return bool(ae.net_.bottleneck.variational)


def _pixels(sample: np.ndarray) -> np.ndarray:
    """One sample (H, W) or (C, H, W) as something ``imshow`` draws: (H, W) or (H, W, 3)."""
    if sample.ndim == 2:
        return sample
    if sample.shape[0] == 3:
        return np.moveaxis(sample, 0, -1)
    return sample[0]  # one channel (or the first of an unusual count)


def _image_grid(rows: list[tuple[str, np.ndarray]], vmin: float, vmax: float) -> Figure:
    """A grid with one labelled row per ``(label, samples)``; every row has the same number of images."""
    n_cols = max(len(samples) for _, samples in rows)
    fig = _figure(1.0 * n_cols + 0.8, 1.05 * len(rows) + 0.2)
    axes = fig.subplots(len(rows), n_cols, squeeze=False)
    for r, (label, samples) in enumerate(rows):
        for c in range(n_cols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c < len(samples):
                pixels = _pixels(samples[c])
                if pixels.ndim == 3:  # RGB: imshow wants [0, 1]
                    pixels = np.clip((pixels - vmin) / ((vmax - vmin) or 1.0), 0.0, 1.0)
                ax.imshow(pixels, cmap="gray", vmin=vmin, vmax=vmax, interpolation="nearest")
            else:
                ax.axis("off")
        axes[r][0].set_ylabel(label, rotation=0, ha="right", va="center")
    return fig


def _shown_rows(x: np.ndarray, y: np.ndarray | None, n: int) -> np.ndarray:
    """Indices of ``n`` rows to show: the first of each class when labels exist, then the first rows."""
    picked: list[int] = []
    if y is not None:
        for label in np.unique(y)[:n]:
            picked.append(int(np.flatnonzero(y == label)[0]))
    for i in range(len(x)):
        if len(picked) >= n:
            break
        if i not in picked:
            picked.append(i)
    return np.array(sorted(picked[:n]), dtype=np.int64)


# ---------------------------------------------------------------- figures


def loss_curves(inputs: Inputs) -> Figure | str:
    """Every named loss term per epoch: training and, with early stopping, validation."""
    history = inputs.ae.history_
    if not history:
        return "the model has no training history"
    terms = sorted({k[len("train_") :] for k in history[0] if k.startswith("train_")}, key=lambda t: (t != "loss", t))
    epochs = [record.get("epoch", i + 1) for i, record in enumerate(history)]
    n_cols = min(len(terms), 3)
    n_rows = math.ceil(len(terms) / n_cols)
    fig = _figure(4.0 * n_cols, 3.0 * n_rows)
    axes = fig.subplots(n_rows, n_cols, squeeze=False).ravel()
    for ax, term in zip(axes, terms, strict=False):
        for split, style in (("train", "-"), ("val", "--")):
            values = [record.get(f"{split}_{term}", math.nan) for record in history]
            if not all(math.isnan(v) for v in values):
                ax.plot(epochs, values, style, label="training" if split == "train" else "validation")
        finite = [v for record in history for k, v in record.items() if k.endswith(f"_{term}") and math.isfinite(v)]
        if finite and min(finite) > 0 and max(finite) > 30 * min(finite):  # log only past 1.5 decades
            ax.set_yscale("log")
        ax.set_title(term)
        ax.set_xlabel("epoch")
        ax.legend()
    for ax in axes[len(terms) :]:
        ax.axis("off")
    return fig


def reconstructions(inputs: Inputs) -> Figure | str:
    """Originals (top row) above their reconstructions (bottom row)."""
    ae, x = inputs.ae, inputs.X
    if x is None:
        return "no data was given"
    if not _is_image(ae):
        return f"the data are not images (samples of shape {tuple(ae.input_shape_)})"
    if reason := _needs_decoder(ae):
        return reason
    rows = _shown_rows(x, inputs.y, N_SHOWN)
    originals = x[rows]
    recon = ae.reconstruct(originals)
    low, high = float(originals.min()), float(originals.max())
    return _image_grid([("original", originals), ("reconstructed", recon)], low, high)


def codes(inputs: Inputs) -> Figure | str:
    """The codes of the data in 2-D, coloured by label: PCA of the codes when n_components > 2."""
    ae, x, y = inputs.ae, inputs.X, inputs.y
    if x is None:
        return "no data was given"
    if len(x) > MAX_POINTS:
        keep = np.sort(np.random.default_rng(0).choice(len(x), MAX_POINTS, replace=False))
        x, y = _take(x, keep), None if y is None else y[keep]
    z = np.asarray(ae.transform(x), dtype=np.float64)  # (n_samples, n_components)
    fig = _figure(6.0, 5.0)
    ax = fig.add_subplot()
    if z.shape[1] == 1:
        groups = [z[y == label, 0] for label in np.unique(y)] if y is not None else [z[:, 0]]
        names = [str(label) for label in np.unique(y)] if y is not None else None
        ax.hist(groups, bins=40, stacked=True, label=names)
        ax.set_xlabel("code")
        ax.set_ylabel("samples")
        if names is not None and len(names) <= 20:
            ax.legend(title="label", fontsize="small")
        return fig
    if z.shape[1] > 2:
        from sklearn.decomposition import PCA

        pca = PCA(n_components=2, random_state=0).fit(z)
        z = pca.transform(z)
        share = pca.explained_variance_ratio_
        ax.set_xlabel(f"PC 1 of the codes ({share[0]:.0%} of their variance)")
        ax.set_ylabel(f"PC 2 ({share[1]:.0%})")
    else:
        ax.set_xlabel("code 1")
        ax.set_ylabel("code 2")
    if y is None:
        ax.scatter(z[:, 0], z[:, 1], s=6, alpha=0.6)
        return fig
    labels = np.unique(y)
    if len(labels) <= 20:
        import matplotlib

        cmap = matplotlib.colormaps["tab10" if len(labels) <= 10 else "tab20"]
        for i, label in enumerate(labels):
            mine = y == label
            ax.scatter(z[mine, 0], z[mine, 1], s=6, alpha=0.7, color=cmap(i), label=str(label))
        ax.legend(title="label", fontsize="small", markerscale=2, loc="best")
    else:
        points = ax.scatter(z[:, 0], z[:, 1], s=6, alpha=0.7, c=y, cmap="viridis")
        fig.colorbar(points, ax=ax, label="label")
    return fig


def _take(x: Any, rows: np.ndarray) -> Any:
    """Rows of an array, a DataFrame (by position) or an Arrow table."""
    if hasattr(x, "iloc"):
        return x.iloc[rows]
    if hasattr(x, "take") and hasattr(x, "column_names"):
        return x.take(rows)
    return x[rows]


def samples(inputs: Inputs) -> Figure | str:
    """Decoder means at codes drawn from the prior N(0, I)."""
    ae = inputs.ae
    if not _is_generative(ae):
        return f"the model is not variational (bottleneck={ae.bottleneck!r}; 'gaussian' makes a VAE)"
    if not _is_image(ae):
        return f"the data are not images (samples of shape {tuple(ae.input_shape_)})"
    if reason := _needs_decoder(ae):
        return reason
    drawn = ae.sample(N_SAMPLES, random_state=0)
    low, high = float(drawn.min()), float(drawn.max())
    if inputs.X is not None:
        low, high = float(inputs.X.min()), float(inputs.X.max())
    per_row = 8
    rows = [("" if i else "samples", drawn[i * per_row : (i + 1) * per_row]) for i in range(N_SAMPLES // per_row)]
    return _image_grid(rows, low, high)


def interpolation(inputs: Inputs) -> Figure | str:
    """Decoded codes on the straight line between the codes of two data samples (of two labels if given)."""
    ae, x, y = inputs.ae, inputs.X, inputs.y
    if not _is_generative(ae):
        return f"the model is not variational (bottleneck={ae.bottleneck!r}; 'gaussian' makes a VAE)"
    if x is None:
        return "no data was given"
    if not _is_image(ae):
        return f"the data are not images (samples of shape {tuple(ae.input_shape_)})"
    if reason := _needs_decoder(ae):
        return reason
    if len(x) < 2:
        return "the data have fewer than 2 samples"
    first, second = 0, 1
    if y is not None and len(np.unique(y)) > 1:
        second = int(np.flatnonzero(y != y[first])[0])
    path = ae.interpolate(x[first], x[second], steps=INTERPOLATION_STEPS)
    low, high = float(x.min()), float(x.max())
    return _image_grid([("path", path)], low, high)


def anomaly_scores(inputs: Inputs) -> Figure | str:
    """The histogram of ``score_samples`` on the data, with the threshold ``offset_``."""
    ae, x = inputs.ae, inputs.X
    if not (hasattr(ae, "score_samples") and hasattr(ae, "offset_")):
        return "the model has no anomaly scores (score_samples and offset_)"
    if x is None:
        return "no data was given"
    try:
        scores = np.asarray(ae.score_samples(x), dtype=np.float64)
    except EncoderOnlyError as exc:
        return str(exc)
    threshold = float(ae.offset_)
    fig = _figure(6.0, 3.5)
    ax = fig.add_subplot()
    ax.hist(scores, bins=50)
    ax.axvline(threshold, color="tab:red", linestyle="--", label=f"threshold offset_ = {threshold:.4g}")
    ax.set_xlabel("score_samples (higher is more normal)")
    ax.set_ylabel("samples")
    below = int((scores < threshold).sum())
    ax.set_title(f"{below} of {len(scores)} samples below the threshold (predicted anomalies)")
    ax.legend()
    return fig


#: figure name -> (title, function); the PNG is ``<name>.png`` and the page shows them in this order
FIGURES: dict[str, tuple[str, Callable[[Inputs], Figure | str]]] = {
    "loss": ("Loss per epoch", loss_curves),
    "reconstructions": ("Originals and reconstructions", reconstructions),
    "codes": ("The codes", codes),
    "samples": ("Samples from the prior", samples),
    "interpolation": ("Interpolation between two codes", interpolation),
    "scores": ("Anomaly scores", anomaly_scores),
}


# ---------------------------------------------------------------- the page


def _text(doc: str) -> str:
    """A docstring or message as HTML: escaped, one line, reST literals (two backquotes) shown as code."""
    escaped = html.escape(" ".join(doc.split()))
    return re.sub(r"``(.+?)``", r"<code>\1</code>", escaped)


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


#: how the metrics table heads the columns it knows; any other metric is shown under its own key
_METRIC_NAMES = {
    "mse": "MSE",
    "sse_per_sample": "SSE per sample",
    "psnr": "PSNR (dB)",
    "explained_variance": "explained variance",
    "trustworthiness": "trustworthiness",
    "knn_accuracy": "kNN accuracy",
    "probe_accuracy": "probe accuracy",
}


def _metrics_table(
    ae: Autoencoder, x: np.ndarray | None, y: np.ndarray | None, metrics: dict[str, Any] | None, note: str
) -> str:
    if x is None:
        return "<p class=skip>Metrics: not shown, no data was given.</p>"
    if ae.encoder_only_:
        return "<p class=skip>Metrics: not shown, the model file holds only the encoder.</p>"
    from isthmus.metrics import evaluate

    result = metrics
    if result is None:
        try:
            result = evaluate(ae, x) if y is None else evaluate(ae, x, y=y)
        except IsthmusError as exc:  # too few labelled rows per class to cross-validate the accuracies
            result = evaluate(ae, x)
            note = f"the accuracies of the codes are not shown: {exc}"
    fitted = result.get("classifiers")
    if fitted is not None and fitted["fit_on"] == "train":
        how = f" The kNN-5 classifier and the probe were fitted on the codes of {fitted['n_train']} training rows."
    elif fitted is not None:
        how = f" The kNN-5 and probe accuracies are {fitted['n_splits']}-fold cross-validated on these samples."
    else:
        how = ""
    note = how + (f" {note[0].upper()}{note[1:]}." if note else "")
    k = result["n_components"]
    models = (("autoencoder", result["autoencoder"]), (f"PCA-{k}", result["pca"]))
    keys = [key for key in result["autoencoder"] if any(m.get(key) is not None for _, m in models)]
    head = "".join(f"<th>{html.escape(_METRIC_NAMES.get(key, key))}</th>" for key in keys)
    rows = "".join(
        f"<tr><th>{html.escape(label)}</th>" + "".join(f"<td>{_number(key, m.get(key))}</td>" for key in keys) + "</tr>"
        for label, m in models
    )
    columns = ""
    if result.get("columns"):  # a table: each column's R² (numeric) or accuracy (categorical) beside PCA's
        cells = "".join(
            f"<tr><th>{html.escape(c['name'])}</th><td>{html.escape(c['metric'])}</td>"
            f"<td>{_number(c['metric'], c['autoencoder'])}</td><td>{_number(c['metric'], c['pca'])}</td></tr>"
            for c in result["columns"]
        )
        columns = (
            "<h2>Each column beside PCA</h2><p>How well each column is rebuilt from the code, on its observed "
            "cells: R² for a numeric column, the accuracy of the likeliest level for a categorical one. PCA works "
            "on the one-hot table, standardized.</p>"
            f"<table><tr><th>column</th><th>metric</th><th>autoencoder</th><th>PCA-{k}</th></tr>{cells}</table>"
        )
    return (
        f"<h2>Reconstruction beside PCA</h2><p>{result['n_samples']} samples, n_components={k}; PCA was fitted "
        f"on the training data.{html.escape(note)}</p><table><tr><th></th>{head}</tr>{rows}</table>{columns}"
    )


def _number(key: str, value: float | None) -> str:
    if value is None:
        return "-"
    if math.isinf(value):
        return "inf"
    return f"{value:.2f}" if key == "psnr" else f"{value:.5g}"


def _summary(ae: Autoencoder, model_name: str | None, data_name: str | None, n_samples: int | None) -> str:
    params = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(repr(v))}</td></tr>" for k, v in sorted(ae.get_params().items())
    )
    facts = [
        ("model", model_name or "(in memory)"),
        ("data", f"{data_name or '(array)'}, {n_samples} samples" if n_samples is not None else "none given"),
        ("sample shape", str(tuple(ae.input_shape_))),
        ("epochs", str(ae.n_iter_)),
        ("best loss", f"{ae.best_loss_:.6g}"),
        *((f"resolved {k}", str(v)) for k, v in sorted(ae.resolved_.items())),
    ]
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in facts)
    return f"<table>{rows}</table><details><summary>Parameters</summary><table>{params}</table></details>"


_STYLE = (
    "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
    "table{border-collapse:collapse;margin:.5em 0}th,td{border:1px solid #ccc;padding:.2em .6em;text-align:left}"
    "td{font-family:monospace}img{max-width:100%;border:1px solid #eee}.skip{color:#777}"
)


def write_report(
    ae: Autoencoder,
    folder: str | os.PathLike[str],
    X: Any = None,
    y: Any = None,
    *,
    model_name: str | None = None,
    data_name: str | None = None,
    overwrite: bool = True,
    metrics: dict[str, Any] | None = None,
    metrics_note: str | None = None,
) -> Report:
    """Write ``folder/index.html`` and a PNG per figure that applies.

    Parameters
    ----------
    ae : Autoencoder
        A fitted model (an encoder-only model gets the figures that need no decoder).
    folder : path
        Created if missing; the page refers to the PNG files beside it by name only.
    X : array-like of shape (n_samples, *sample shape), optional
        Data to show the model on (held-out data is the honest choice).
    y : array-like of shape (n_samples,), optional
        Labels that colour the codes and pick which samples are shown.
    model_name, data_name : str, optional
        Shown at the top of the page.
    overwrite : bool, default=True
        Replace an existing ``index.html``; if False, it raises OutputError.
    metrics : dict, optional
        What :func:`isthmus.metrics.evaluate` returned for ``ae`` on ``X`` (the command line passes the
        result that ``isthmus evaluate`` prints); computed here from ``X`` and ``y`` when not given.
    metrics_note : str, optional
        Said beside the metrics, e.g. why the accuracies are missing.

    Returns
    -------
    Report
        ``page`` (``index.html``), ``images`` (figure name -> PNG path), ``skipped`` (figure name -> reason).

    Raises
    ------
    DependencyError
        If matplotlib (extra ``isthmus[report]``) is not installed.
    DataError
        If ``y`` is given without ``X`` or its length differs from ``X``'s.
    """
    check_fitted(ae)
    import_optional("matplotlib", extra="report", feature="the report")
    out = Path(folder)
    index = out / "index.html"
    if index.exists() and not overwrite:
        raise OutputError(f"{index} already exists; pass --overwrite (overwrite=True) to replace it")
    if ae.window is not None:  # a series model: its own figure (report_series), one label per timestamp
        return _write_series_report(ae, out, X, y, model_name, data_name)
    # a table model reads its table as given (columns by name, categories, missing cells); else samples
    x = None if X is None else X if getattr(ae, "schema_", None) is not None else as_samples(X, ae.input_shape_)
    labels = None if y is None else np.asarray(y).reshape(-1)
    if labels is not None and (x is None or len(labels) != len(x)):
        got = "no data" if x is None else f"{len(x)} samples"
        raise DataError(f"{len(labels)} labels were given for {got}; give one label per sample of the data")
    inputs = Inputs(ae, x, labels)

    drawn = {name: (title, draw.__doc__, draw(inputs)) for name, (title, draw) in FIGURES.items()}
    summary = _summary(ae, model_name, data_name, None if x is None else len(x))
    table = _metrics_table(ae, x, labels, metrics, metrics_note or "")
    return _write_page(out, model_name, summary + table, drawn)


def _write_page(
    out: Path, model_name: str | None, head: str, drawn: dict[str, tuple[str, str | None, Figure | str]]
) -> Report:
    """index.html with ``head``, then each figure of ``drawn`` (name -> title, caption, figure or reason)."""
    images: dict[str, Path] = {}
    skipped: dict[str, str] = {}
    sections: list[str] = []
    titles = {name: title for name, (title, _, _) in drawn.items()}
    for name, (title, doc, figure) in drawn.items():
        if isinstance(figure, str):
            skipped[name] = figure
            continue
        path = out / f"{name}.png"
        write_bytes_atomic(path, _png(figure))
        images[name] = path
        caption = _text(doc or "")
        sections.append(
            f'<h2>{html.escape(title)}</h2><p>{caption}</p><img src="{path.name}" alt="{html.escape(title)}">'
        )
    not_shown = "".join(f"<li>{html.escape(titles[name])}: {_text(reason)}</li>" for name, reason in skipped.items())
    page = (
        "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
        f"<title>isthmus report: {html.escape(model_name or 'model')}</title><style>{_STYLE}</style></head><body>"
        f"<h1>What the autoencoder learned</h1>{head}{''.join(sections)}"
        + (f"<h2>Not shown</h2><ul class=skip>{not_shown}</ul>" if not_shown else "")
        + "</body></html>\n"
    )
    index = out / "index.html"
    write_bytes_atomic(index, page.encode("utf-8"))
    return Report(index, images, skipped)


def _write_series_report(
    ae: Autoencoder, out: Path, X: Any, y: Any, model_name: str | None, data_name: str | None
) -> Report:
    """The page of a series model: loss curves, then the series, its reconstruction, score and flags over time."""
    from isthmus.data.series import as_series
    from isthmus.report_series import series_over_time

    data = None if X is None else as_series(X)
    labels = None if y is None else np.asarray(y).reshape(-1)
    n = None if data is None else len(data.values)
    if labels is not None and (n is None or len(labels) != n):
        got = "no series" if n is None else f"a series of {n} timestamps"
        raise DataError(f"{len(labels)} labels were given for {got}; give one label per timestamp")
    title = "The series over time"
    figure = "no series was given" if data is None else series_over_time(ae, data, labels)
    drawn = {
        "loss": ("Loss per epoch", loss_curves.__doc__, loss_curves(Inputs(ae, None, None))),
        "series": (title, series_over_time.__doc__, figure),
    }
    summary = _summary(ae, model_name, data_name or (None if data is None else data.name), n)
    return _write_page(out, model_name, summary.replace(" samples</td>", " timestamps</td>"), drawn)
