"""Shared plumbing of the benchmarks: MNIST splits, the standard flags, the final JSON line."""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist-train.npz"


def parser(description: str, *, overrides: bool = False) -> argparse.ArgumentParser:
    """An argument parser with the flags every bench script takes; ``overrides``: also ``--set NAME=VALUE...``."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--train", type=Path, default=None, help="training .npz with x (and y); default MNIST rows 0..49999")
    p.add_argument("--test", type=Path, default=None, help="test .npz with x (and y); default MNIST rows 50000..59999")
    p.add_argument("--out", type=Path, default=None, help="where to keep the trained model(s)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    if not overrides:
        return p
    p.add_argument(
        "--set",
        dest="overrides",
        nargs="+",
        action="extend",
        default=[],
        metavar="NAME=VALUE",
        help="estimator parameters over the recipe, e.g. --set architecture=conv 'hidden_layer_sizes=[24,48,96]'",
    )
    return p


def parse(p: argparse.ArgumentParser) -> argparse.Namespace:
    """Parse the command line, apply ``--threads`` and read every ``--set`` into ``args.overrides`` (a dict)."""
    from isthmus.config import parse_assignment

    args = p.parse_args()
    if hasattr(args, "overrides"):
        try:
            args.overrides = dict(parse_assignment(item) for item in args.overrides)
        except ValueError as exc:
            p.error(str(exc))
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    return args


def _load(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    with np.load(path, allow_pickle=False) as data:
        return data["x"], (data["y"] if "y" in data.files else None)


def mnist_splits(args: argparse.Namespace) -> dict[str, Any]:
    """Train and test arrays: ``--train``/``--test`` files, else the shared MNIST with its last 10,000 held out."""
    source = Path(os.environ.get("ISTHMUS_MNIST", SHARED_MNIST))
    if args.train is None or args.test is None:
        if not source.exists():
            raise SystemExit(f"error: {source} not found; pass --train and --test .npz files with x and y")
        x, y = _load(source)
    x_train, y_train = _load(args.train) if args.train else (x[:50000], None if y is None else y[:50000])
    x_test, y_test = _load(args.test) if args.test else (x[50000:], None if y is None else y[50000:])
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


def pixels(images: np.ndarray, *shape: int) -> np.ndarray:
    """8-bit images as float32 in [0, 1] (the scale all our baselines use), reshaped to ``(n, *shape)``."""
    return images.reshape(len(images), *(shape or (-1,))).astype(np.float32) / 255.0


class Timer:
    """``with Timer() as t: ...`` then ``t.seconds``."""

    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start


def report(figures: dict[str, Any]) -> None:
    """Print the final figures as one JSON object on the last line."""
    print(json.dumps(figures))
