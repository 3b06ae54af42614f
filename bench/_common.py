"""Shared plumbing of the benchmarks: data paths, the standard flags, the final JSON line and its record.

Data: ``--train``/``--test`` (or ``--data``) name the files; without them a bench reads its data set
from the folder ``$ISTHMUS_DATA`` (MNIST: ``$ISTHMUS_DATA/mnist-train.npz``, its last 10,000 rows held
out). Results: the final JSON line is also appended, with the command, the commit and the date, to
``bench/results/NAME.jsonl``, which ``make results`` turns into ``docs/results.md``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

BENCH = Path(__file__).resolve().parent
#: Where ``record`` appends: one ``NAME.jsonl`` per bench script.
RESULTS = BENCH / "results"


def parser(description: str, *, overrides: bool = False) -> argparse.ArgumentParser:
    """An argument parser with the flags every bench script takes; ``overrides``: also ``--set NAME=VALUE...``."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--train", type=Path, default=None, help="training .npz with x (and y); default MNIST rows 0..49999")
    p.add_argument("--test", type=Path, default=None, help="test .npz with x (and y); default MNIST rows 50000..59999")
    p.add_argument("--out", type=Path, default=None, help="where to keep the trained model(s)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument(
        "--no-record",
        dest="record",
        action="store_false",
        help="do not append the final figures to bench/results/NAME.jsonl (for trial runs)",
    )
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


def data_file(name: str, flag: str = "--train and --test") -> Path:
    """``$ISTHMUS_DATA/name``, the benches' default data; a clear exit when it is not there."""
    folder = os.environ.get("ISTHMUS_DATA")
    if not folder:
        raise SystemExit(f"error: no data given; pass {flag}, or set ISTHMUS_DATA to the folder that holds {name}")
    path = Path(folder).expanduser() / name
    if not path.exists():
        raise SystemExit(f"error: {path} not found; pass {flag}, or set ISTHMUS_DATA to the folder that holds {name}")
    return path


def mnist_splits(args: argparse.Namespace) -> dict[str, Any]:
    """Train and test arrays: ``--train``/``--test``, else ``$ISTHMUS_DATA/mnist-train.npz`` with 10,000 held out."""
    if args.train is None or args.test is None:
        x, y = _load(data_file("mnist-train.npz"))
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


def _git(*argv: str) -> str:
    try:
        done = subprocess.run(["git", *argv], cwd=BENCH, capture_output=True, text=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip()


def provenance(argv: list[str] | None = None) -> dict[str, str]:
    """The command that ran (as typed from the repository root), the commit, and the UTC date and time.

    The commit gets ``+dirty`` when ``src/`` or ``bench/`` differ from it, since the figures then come from
    code no commit holds.
    """
    argv = sys.argv if argv is None else argv
    script = Path(argv[0]).resolve()
    root = BENCH.parent
    shown = script.relative_to(root).as_posix() if script.is_relative_to(root) else argv[0]
    commit = _git("rev-parse", "--short=7", "HEAD") or "unknown"
    if _git("status", "--porcelain", "--", str(root / "src"), str(BENCH)):
        commit += "+dirty"
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return {"command": shlex.join([shown, *argv[1:]]), "commit": commit, "date": date}


def record(
    figures: dict[str, Any],
    headline: dict[str, str] | None = None,
    *,
    name: str | None = None,
    directory: Path = RESULTS,
    argv: list[str] | None = None,
) -> Path:
    """Append one result to ``directory/NAME.jsonl`` (NAME: the script's stem) and return the path.

    A line is ``{"bench", "what", "figure", "baseline", "command", "commit", "date", "figures"}``: the
    headline (``what``, ``figure`` and ``baseline`` as the reader should see them, from ``headline``), where
    it came from (``provenance``), and the bench's whole final JSON under ``figures``.
    """
    argv = sys.argv if argv is None else argv
    name = name or Path(argv[0]).stem
    line = {"bench": name, **{key: (headline or {}).get(key) for key in ("what", "figure", "baseline")}}
    line.update(provenance(argv))
    line["figures"] = figures
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.jsonl"
    with path.open("a", encoding="utf-8") as f:  # one short append per run: a line is written whole
        f.write(json.dumps(line, ensure_ascii=False) + "\n")
    return path


def report(
    figures: dict[str, Any],
    headline: dict[str, str] | None = None,
    args: argparse.Namespace | None = None,
) -> None:
    """Print the final figures as one JSON object on the last line; with ``args``, also ``record`` them.

    ``headline``: ``{"what", "figure", "baseline"}``, the strings ``docs/results.md`` shows for this run.
    ``args``: the parsed flags; a bench that passes them records every run unless ``--no-record`` (a
    bench that does not, such as one a test runs in a smoke mode, only prints).
    """
    if args is not None and getattr(args, "record", True):
        path = record(figures, headline)
        print(f"recorded in {path.relative_to(BENCH.parent) if path.is_relative_to(BENCH.parent) else path}")
    print(json.dumps(figures))
