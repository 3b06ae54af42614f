"""ADBench, unsupervised: the ``anomaly`` preset beside pyod's IForest, ECOD, KNN, PCA and AutoEncoder.

The protocol of ADBench (Han et al., NeurIPS 2022), unsupervised setting: each dataset (an ``.npz`` with
``X`` and ``y``, 1 = anomaly) is cut to at most ``--max-rows`` rows (a stratified, seeded subsample),
split 70/30 stratified by the seed, every method fitted on the 70% WITH its anomalies and without the
labels, and scored on the 30% by ROC-AUC and average precision; seeds 0, 1, 2 by default. The pyod
detectors get standardized input (a StandardScaler fitted on the 70%) and their defaults; isthmus gets
the raw columns and ``Autoencoder(**PRESETS["anomaly"], random_state=seed)`` (its own scaling).
Everything runs in this process on one thread (torch and BLAS).

Prints a per-dataset table (ROC-AUC averaged over the seeds), the spread of the preset's margin over
IForest, and ends with one JSON line: per method the mean ROC-AUC, mean average precision, mean rank
(1 = best, ranked per dataset on the seed-averaged ROC-AUC) and median fit time in seconds.

    .venv/bin/python bench/adbench.py --data $ISTHMUS_DATA/adbench-dev --out runs/adbench.csv
    .venv/bin/python bench/adbench.py --data $ISTHMUS_DATA/adbench-dev --methods isthmus,iforest --seeds 0
"""

from __future__ import annotations

import argparse
import csv
import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one thread, before numpy or torch start their pools

import numpy as np  # noqa: E402
import torch  # noqa: E402
from sklearn.metrics import average_precision_score, roc_auc_score  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from _common import data_file, report  # noqa: E402
from isthmus import PRESETS, Autoencoder  # noqa: E402

#: the issue's target: the preset's mean ROC-AUC at least IForest's plus this
TARGET_MARGIN = 0.02


#: estimator parameters over the preset (``--set``): a variant measured beside the same references
OVERRIDES: dict[str, Any] = {}


def _isthmus(x_train: np.ndarray, x_test: np.ndarray, seed: int) -> tuple[float, np.ndarray]:
    model = Autoencoder(**{**PRESETS["anomaly"], **OVERRIDES}, random_state=seed, verbose=0)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: the preset's epochs are its budget
        model.fit(x_train)
    seconds = time.perf_counter() - start
    return seconds, -model.score_samples(x_test)


def _pyod(name: str) -> Callable[[np.ndarray, np.ndarray, int], tuple[float, np.ndarray]]:
    def run(x_train: np.ndarray, x_test: np.ndarray, seed: int) -> tuple[float, np.ndarray]:
        scaler = StandardScaler().fit(x_train)
        detector = _pyod_detector(name, seed)
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            detector.fit(scaler.transform(x_train))
        seconds = time.perf_counter() - start
        return seconds, np.asarray(detector.decision_function(scaler.transform(x_test)), dtype=np.float64)

    return run


def _pyod_detector(name: str, seed: int) -> Any:
    if name == "iforest":
        from pyod.models.iforest import IForest

        return IForest(random_state=seed)
    if name == "ecod":
        from pyod.models.ecod import ECOD

        return ECOD()
    if name == "knn":
        from pyod.models.knn import KNN

        return KNN()
    if name == "pca":
        from pyod.models.pca import PCA

        return PCA(random_state=seed)
    from pyod.models.auto_encoder import AutoEncoder

    return AutoEncoder(random_state=seed, verbose=0)


#: a method: (train rows, test rows, seed) -> (fit seconds, anomaly scores of the test rows, higher = more anomalous)
METHODS: dict[str, Callable[[np.ndarray, np.ndarray, int], tuple[float, np.ndarray]]] = {
    "isthmus": _isthmus,
    "iforest": _pyod("iforest"),
    "ecod": _pyod("ecod"),
    "knn": _pyod("knn"),
    "pca": _pyod("pca"),
    "autoencoder": _pyod("autoencoder"),
}


def _ranked(fit_s: float, scores: np.ndarray) -> tuple[float, np.ndarray]:
    """Scores with infinities replaced by values just past the finite ones, the ranking kept: pyod's PCA
    divides by an eigenvalue that is 0 on a table with a constant column (cardio) and scores +inf."""
    finite = scores[np.isfinite(scores)]
    top, bottom = (finite.max(), finite.min()) if len(finite) else (0.0, 0.0)
    scores = np.where(np.isposinf(scores), top + 1.0, np.where(np.isneginf(scores), bottom - 1.0, scores))
    return fit_s, np.nan_to_num(scores, nan=bottom - 1.0)


def split(path: Path, seed: int, max_rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """ADBench's split of one dataset: at most ``max_rows`` rows, then 70/30, both stratified and seeded."""
    with np.load(path, allow_pickle=False) as data:
        x, y = data["X"].astype(np.float64), data["y"].astype(np.int64).ravel()
    if len(x) > max_rows:
        x, _, y, _ = train_test_split(x, y, train_size=max_rows, stratify=y, random_state=seed)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.3, stratify=y, random_state=seed)
    return x_train, x_test, y_train, y_test


def _datasets(folder: Path, names: str | None) -> list[Path]:
    found = sorted(
        folder.glob("*.npz"), key=lambda p: (int(p.stem.split("_")[0]) if p.stem[0].isdigit() else 0, p.stem)
    )
    if names:
        wanted = [n.strip() for n in names.split(",") if n.strip()]
        by_name = {p.stem: p for p in found} | {p.stem.split("_", 1)[-1]: p for p in found}
        missing = [n for n in wanted if n not in by_name]
        if missing:
            raise SystemExit(
                f"error: no dataset {', '.join(missing)} in {folder}; found {', '.join(p.stem for p in found)}"
            )
        found = [by_name[n] for n in wanted]
    if not found:
        raise SystemExit(f"error: no .npz files in {folder}; pass --data with ADBench-style .npz files (X, y)")
    return found


def _write(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _ranks(table: dict[str, dict[str, float]], methods: list[str]) -> dict[str, float]:
    """Mean rank per method over the datasets (1 = highest ROC-AUC; ties share the mean rank)."""
    from scipy.stats import rankdata

    ranks = np.array([rankdata([-row[m] for m in methods]) for row in table.values()])
    return {m: float(ranks[:, i].mean()) for i, m in enumerate(methods)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--data",
        type=Path,
        default=None,
        help="folder of ADBench-style .npz files (X, y); default $ISTHMUS_DATA/adbench-dev",
    )
    p.add_argument("--datasets", default=None, help="comma-separated names (e.g. 6_cardio or cardio); default all")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--max-rows", type=int, default=20000)
    p.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated subset of {', '.join(METHODS)}")
    p.add_argument("--out", type=Path, default=None, help="CSV of every (dataset, seed, method) figure")
    p.add_argument(
        "--set", dest="overrides", nargs="+", default=[], metavar="NAME=VALUE", help="parameters over the preset"
    )
    p.add_argument(
        "--no-record",
        dest="record",
        action="store_false",
        help="print only; a whole run (every method, no --set) is appended to bench/results/adbench.jsonl",
    )
    args = p.parse_args()
    from isthmus.config import parse_assignment

    OVERRIDES.update(parse_assignment(item) for item in args.overrides)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise SystemExit(f"error: unknown method(s) {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    torch.set_num_threads(1)
    paths = _datasets(args.data or data_file("adbench-dev", "--data"), args.datasets)
    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    for path in paths:
        for seed in args.seeds:
            x_train, x_test, _, y_test = split(path, seed, args.max_rows)
            for method in methods:
                fit_s, scores = _ranked(*METHODS[method](x_train, x_test, seed))
                rows.append(
                    {
                        "dataset": path.stem,
                        "seed": seed,
                        "method": method,
                        "n_train": len(x_train),
                        "roc_auc": float(roc_auc_score(y_test, scores)),
                        "average_precision": float(average_precision_score(y_test, scores)),
                        "fit_s": fit_s,
                    }
                )
            if args.out is not None:  # every row as soon as it is measured: a long run interrupted keeps them
                _write(args.out, rows)
            shown = "  ".join(f"{r['method']} {r['roc_auc']:.3f} ({r['fit_s']:.1f} s)" for r in rows[-len(methods) :])
            print(f"{path.stem:18} seed {seed}: {shown}", flush=True)
    total_s = time.perf_counter() - started

    def mean(metric: str, method: str, dataset: str | None = None) -> float:
        return float(np.mean([r[metric] for r in rows if r["method"] == method and dataset in (None, r["dataset"])]))

    names = [path.stem for path in paths]
    table = {d: {m: mean("roc_auc", m, d) for m in methods} for d in names}
    ranks = _ranks(table, methods)
    print()
    print(f"{'ROC-AUC (mean of seeds)':24}" + "".join(f"{m:>12}" for m in methods))
    for d in names:
        print(f"{d:24}" + "".join(f"{table[d][m]:>12.3f}" for m in methods))
    summary = {
        "mean_roc_auc": {m: round(mean("roc_auc", m), 4) for m in methods},
        "mean_average_precision": {m: round(mean("average_precision", m), 4) for m in methods},
        "mean_rank": {m: round(ranks[m], 2) for m in methods},
        "std_roc_auc_over_datasets": {m: round(float(np.std([table[d][m] for d in names])), 4) for m in methods},
        "worst_roc_auc": {m: round(min(table[d][m] for d in names), 4) for m in methods},
        "median_fit_s": {
            m: round(float(np.median([r["fit_s"] for r in rows if r["method"] == m])), 3) for m in methods
        },
        "max_fit_s": {m: round(max(r["fit_s"] for r in rows if r["method"] == m), 3) for m in methods},
    }
    for key in ("mean_roc_auc", "mean_average_precision", "mean_rank"):
        print(f"{key:24}" + "".join(f"{summary[key][m]:>12}" for m in methods))
    if "isthmus" in methods and "iforest" in methods:
        margins = np.array([table[d]["isthmus"] - table[d]["iforest"] for d in names])
        worst = names[int(margins.argmin())]
        print(
            f"isthmus - iforest: mean {margins.mean():+.4f} (target >= {TARGET_MARGIN:+.2f}), std {margins.std():.4f}, "
            f"worst {margins.min():+.4f} ({worst}), better on {int((margins > 0).sum())} of {len(names)} datasets"
        )
        summary["isthmus_minus_iforest"] = round(float(margins.mean()), 4)
        summary["target_met"] = bool(margins.mean() >= TARGET_MARGIN and ranks["isthmus"] == min(ranks.values()))
    print(f"whole run: {total_s:.0f} s on one thread")
    summary.update(
        {
            "overrides": {k: str(v) for k, v in OVERRIDES.items()},
            "datasets": len(names),
            "seeds": args.seeds,
            "max_rows": args.max_rows,
            "total_s": round(total_s, 1),
        }
    )
    headline = None
    if "isthmus" in methods:
        others = {m: ranks[m] for m in methods if m != "isthmus"}
        best = min(others, key=lambda m: others[m]) if others else None
        headline = {
            "what": f"ADBench, unsupervised, {len(names)} tables x {len(args.seeds)} seeds: the anomaly preset's "
            "mean ROC-AUC / mean rank among the methods",
            "figure": f"{summary['mean_roc_auc']['isthmus']:.3f} / {ranks['isthmus']:.2f}",
            "baseline": "none in this run"
            if best is None
            else f"IForest {summary['mean_roc_auc'].get('iforest', float('nan')):.3f}; best other rank "
            f"{best} {others[best]:.2f}",
        }
    # a partial run (some methods, or the preset changed by --set) prints only
    args.record = args.record and set(methods) == set(METHODS) and not OVERRIDES
    report(summary, headline, args)


if __name__ == "__main__":
    main()
