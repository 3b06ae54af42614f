"""NAB: per-timestamp ROC-AUC of the ``series`` preset beside four references, in two training regimes.

For every series of the Numenta Anomaly Benchmark folder given (``artificialWithAnomaly/``,
``realKnownCause/``, ...; series without a labelled window are skipped, ROC-AUC needs both classes), a
timestamp is an anomaly when it lies inside one of NAB's labelled windows (``combined_windows.json``, ends
included). Two regimes:

- ``a``: fit on the whole series, unlabelled; ROC-AUC over every timestamp;
- ``b``: fit on NAB's first 15% (its probationary period); ROC-AUC over the other 85%, never trained on.

Methods, all measured in the same run on the same timestamps (higher score = more anomalous for the
ROC-AUC; the estimator's ``score_samples`` is negated):

- ``preset``: ``Autoencoder(**PRESETS["series"])``, ``score_samples`` per timestamp;
- ``zscore``: the rolling z-score, ``|x_t - mean| / std`` over the ``ZSCORE_WINDOW`` values before t;
- ``iforest``: IsolationForest (scikit-learn defaults) on the preset's windows, standardized like the
  preset's (mean and deviation of the training part);
- ``pca``: PCA with the preset's ``n_components``, the squared reconstruction error of each such window;
- ``conv1d``: the Conv1D autoencoder of Keras's example "Timeseries anomaly detection using an
  Autoencoder" (windows of 288, Conv1D 32 and 16 with kernel 7 and stride 2, dropout 0.2, transposed
  back, MSE, Adam 1e-3, batches of 128, up to 50 epochs, early stopping with patience 5 on the last 10%
  of the windows), each window scored by its mean absolute error. Two departures, both for time: it
  trains on every ``KERAS_STRIDE``-th window (windows of 288 that start 4 apart share 284 values; the
  example's every window made this reference alone take an hour for NAB's dev series on one thread),
  and windows are shortened to half the training part where that is shorter than 288 (regime b of the
  shortest series). Every window is scored.

Every windowed method maps its window scores to timestamps the way the preset does: each timestamp gets
the mean score of the windows that cover it (``isthmus.series.per_timestamp``).

    .venv/bin/python bench/nab.py --data DIR/nab-dev --out runs/nab    # or ISTHMUS_DATA=DIR, no --data
    .venv/bin/python bench/nab.py --series machine_temp --regimes b --methods preset,iforest   # a quick look

It prints one line per series, regime and method, then ``{folder: {regime: {method: mean}}}`` and the
targets: on realKnownCause, in both regimes, the preset's mean at least the best reference's + 0.03;
fit plus scoring of the 22,696-point machine_temperature series (regime a) under 60 s on one thread.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.decomposition import PCA
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score
from torch import nn

from _common import data_file, report
from isthmus import Autoencoder
from isthmus.config import PRESETS, parse_assignment
from isthmus.data.series import read_series
from isthmus.series import Windows, cut, per_timestamp

PROBATION = 0.15
ZSCORE_WINDOW = 64
KERAS_WINDOW = 288
KERAS_STRIDE = 4
MARGIN = 0.03
SPEED_LIMIT_S = 60.0
SPEED_SERIES = "machine_temperature_system_failure"
REFERENCES = ("zscore", "iforest", "pca", "conv1d")


def labels(timestamps: np.ndarray, windows: list[list[str]]) -> np.ndarray:
    """Which timestamps lie inside a labelled window (ends included)."""
    inside = np.zeros(len(timestamps), bool)
    for start, end in windows:
        inside |= (timestamps >= np.datetime64(start)) & (timestamps <= np.datetime64(end))
    return inside


def standardized(values: np.ndarray, n_train: int) -> np.ndarray:
    """``values`` (n, channels) standardized with the training part's mean and deviation, per channel."""
    head = values[:n_train].astype(np.float64)
    return ((values - head.mean(0)) / np.where(head.std(0) > 0, head.std(0), 1.0)).astype(np.float32)


def flat(windows: Windows) -> np.ndarray:
    return windows.x.reshape(len(windows.x), -1)


def zscore(values: np.ndarray, n_train: int, params: dict[str, Any]) -> np.ndarray:
    """The rolling z-score of the first channel against the ZSCORE_WINDOW values before each timestamp."""
    x = values[:, 0].astype(np.float64)
    csum = np.concatenate([[0.0], np.cumsum(x)])
    csq = np.concatenate([[0.0], np.cumsum(x * x)])
    t = np.arange(len(x))
    lo = np.maximum(t - ZSCORE_WINDOW, 0)
    count = t - lo
    mean = (csum[t] - csum[lo]) / np.maximum(count, 1)
    var = (csq[t] - csq[lo]) / np.maximum(count, 1) - mean**2
    std = np.sqrt(np.maximum(var, 0.0))
    floor = 1e-6 * (x.std() or 1.0)
    z = np.abs(x - mean) / np.maximum(std, floor)
    z[count < 2] = 0.0
    return z


def iforest(values: np.ndarray, n_train: int, params: dict[str, Any]) -> np.ndarray:
    scaled = standardized(values, n_train)
    train, every = cut(scaled[:n_train], params["window"], 1), cut(scaled, params["window"], 1)
    forest = IsolationForest(random_state=0).fit(flat(train))
    return per_timestamp(-forest.score_samples(flat(every)), every)


def pca(values: np.ndarray, n_train: int, params: dict[str, Any]) -> np.ndarray:
    scaled = standardized(values, n_train)
    train, every = cut(scaled[:n_train], params["window"], 1), cut(scaled, params["window"], 1)
    model = PCA(min(params["n_components"], params["window"]), random_state=0).fit(flat(train))
    x = flat(every)
    error = np.square(model.inverse_transform(model.transform(x)) - x).sum(1)
    return per_timestamp(error, every)


class KerasConv1D(nn.Module):
    """The network of Keras's example, layer for layer ("same" padding, stride 2)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv1d(channels, 32, 7, stride=2, padding=3),
            nn.ReLU(),
            nn.Dropout(0.2),
            nn.Conv1d(32, 16, 7, stride=2, padding=3),
            nn.ReLU(),
            nn.ConvTranspose1d(16, 16, 7, stride=2, padding=3, output_padding=1),
            nn.ReLU(),
            nn.Dropout(0.2),
            nn.ConvTranspose1d(16, 32, 7, stride=2, padding=3, output_padding=1),
            nn.ReLU(),
            nn.ConvTranspose1d(32, channels, 7, padding=3),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)[..., : x.shape[-1]]


def conv1d(values: np.ndarray, n_train: int, params: dict[str, Any]) -> np.ndarray:
    window = min(KERAS_WINDOW, n_train // 2)
    window -= window % 4  # two stride-2 layers and back: a multiple of 4 comes back at its length
    scaled = standardized(values, n_train)
    train = torch.from_numpy(np.ascontiguousarray(cut(scaled[:n_train], window, KERAS_STRIDE).x))
    every = cut(scaled, window, 1)
    generator = torch.Generator().manual_seed(0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = KerasConv1D(values.shape[1])
    optimizer = torch.optim.Adam(net.parameters(), 1e-3)
    n_val = max(1, len(train) // 10)  # Keras's validation_split takes the last windows
    fit, val = train[: len(train) - n_val], train[len(train) - n_val :]
    best, waited = float("inf"), 0
    for _ in range(50):
        net.train()
        for index in torch.randperm(len(fit), generator=generator).split(128):
            batch = fit[index]
            loss = (net(batch) - batch).square().mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        net.eval()
        with torch.inference_mode():
            val_loss = float((net(val) - val).square().mean())
        if val_loss < best:
            best, waited = val_loss, 0
        else:
            waited += 1
            if waited >= 5:
                break
    with torch.inference_mode():
        x = torch.from_numpy(np.ascontiguousarray(every.x))
        errors = torch.cat([(net(b) - b).abs().mean((1, 2)) for b in x.split(1024)]).numpy()
    return per_timestamp(errors.astype(np.float64), every)


METHODS = {"zscore": zscore, "iforest": iforest, "pca": pca, "conv1d": conv1d}


def run_preset(values: np.ndarray, n_train: int, params: dict[str, Any]) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning at max_iter: the preset's epochs are its budget
        model = Autoencoder(**params).fit(values[:n_train])
    return -model.score_samples(values)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=None, help="NAB folder with combined_windows.json")
    p.add_argument("--out", type=Path, default=None, help="write the per-series figures there as JSON")
    p.add_argument("--series", default="", help="only series whose key contains one of these (comma-separated)")
    p.add_argument("--regimes", default="ab", help="a (whole series), b (first 15%%), or ab")
    p.add_argument("--methods", default="preset," + ",".join(REFERENCES), help="comma-separated")
    p.add_argument("--set", dest="overrides", nargs="+", default=[], metavar="NAME=VALUE", help="over the preset")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--no-record", dest="record", action="store_false", help="print only (bench/results/nab.jsonl)")
    p.add_argument(
        "--merge", type=Path, nargs="+", default=[], help="summarize the rows of earlier runs' nab.json instead"
    )
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.data is None:
        args.data = data_file("nab-dev", "--data")
    params = {**PRESETS["series"], "random_state": 0, "verbose": 0}
    params.update(dict(parse_assignment(item) for item in args.overrides))
    methods = args.methods.split(",")
    windows = json.loads((args.data / "combined_windows.json").read_text())
    wanted = [s for s in args.series.split(",") if s]
    rows: list[dict[str, Any]] = [r for path in args.merge for r in json.loads(path.read_text())["rows"]]
    speed = next(
        (r["seconds"] for r in rows if r["method"] == "preset" and r["regime"] == "a" and SPEED_SERIES in r["series"]),
        None,
    )
    for key, spans in sorted(windows.items()) if not args.merge else ():
        path = args.data / key
        if not spans or not path.exists() or (wanted and not any(w in key for w in wanted)):
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # irregular spacing is reported by read_series; NAB has a few gaps
            series = read_series(path)
        truth = labels(series.timestamps, spans)
        for regime in args.regimes:
            n_train = len(truth) if regime == "a" else int(PROBATION * len(truth))
            judged = slice(0, len(truth)) if regime == "a" else slice(n_train, len(truth))
            if truth[judged].all() or not truth[judged].any():
                continue
            for method in methods:
                start = time.perf_counter()
                fn = run_preset if method == "preset" else METHODS[method]
                scores = fn(series.values, n_train, params)
                seconds = time.perf_counter() - start
                auc = float(roc_auc_score(truth[judged], scores[judged]))
                if method == "preset" and regime == "a" and SPEED_SERIES in key:
                    speed = seconds
                rows.append({"series": key, "regime": regime, "method": method, "roc_auc": auc, "seconds": seconds})
                print(f"{key:60s} {regime} {method:8s} ROC-AUC {auc:.3f}  {seconds:6.1f} s", flush=True)
    summary: dict[str, Any] = defaultdict(lambda: defaultdict(dict))
    for folder in sorted({r["series"].split("/")[0] for r in rows}):
        for regime in args.regimes:
            for method in methods:
                aucs = [
                    r["roc_auc"]
                    for r in rows
                    if r["series"].startswith(folder + "/") and r["regime"] == regime and r["method"] == method
                ]
                if aucs:
                    summary[folder][regime][method] = round(float(np.mean(aucs)), 4)
    targets: dict[str, Any] = {}
    real = summary.get("realKnownCause", {})
    for regime, means in real.items():
        refs = {m: v for m, v in means.items() if m != "preset"}
        if "preset" in means and refs:
            best = max(refs, key=refs.__getitem__)
            print(
                f"realKnownCause {regime}: preset {means['preset']:.4f}, best reference {best} {refs[best]:.4f} "
                f"(ratio {means['preset'] / refs[best]:.3f}); target preset >= best + {MARGIN}"
            )
            targets[f"auc_margin_{regime}"] = round(means["preset"] - refs[best], 4)
            targets[f"auc_target_{regime}_met"] = means["preset"] >= refs[best] + MARGIN
    if speed is not None:
        targets["seconds_22k"] = round(speed, 1)
        targets["speed_target_met"] = speed < SPEED_LIMIT_S
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "nab.json").write_text(json.dumps({"params": params, "rows": rows}, indent=1, default=str))
    figures = {"means": summary, **targets}
    headline = None
    if real.get("a", {}).get("preset") is not None and real.get("b", {}).get("preset") is not None:
        best = {r: max((v for m, v in real[r].items() if m != "preset"), default=float("nan")) for r in "ab"}
        headline = {
            "what": "realKnownCause mean per-timestamp ROC-AUC, regimes a (whole series) / b (first 15%)",
            "figure": f"series preset {real['a']['preset']:.3f} / {real['b']['preset']:.3f}",
            "baseline": f"best reference {best['a']:.3f} / {best['b']:.3f}",
        }
    # a partial run (some series or methods) prints only; a whole one (or a merge of parts) is recorded
    complete = not wanted and set(methods) == {"preset", *REFERENCES}
    args.record = args.record and complete
    report(figures, headline, args)


if __name__ == "__main__":
    main()
