"""Out-of-core training: one epoch on a .npy file of several GiB, streamed, then encoded to a file.

Reports the process's peak resident memory over the streamed fit and encode, and the streamed training
throughput against in-memory training (the same estimator, the same network, one epoch) on the first
``--memory-rows`` rows of the same file, measured in the same run, after the streamed part so that its
memory does not count. The file is generated once (low-rank data through tanh, plus noise) and kept.

    OMP_NUM_THREADS=1 .venv/bin/python bench/stream.py --threads 1
"""

from __future__ import annotations

import math
import resource
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

import isthmus.train as training
from _common import Timer, parse, parser, report
from isthmus import Autoencoder
from isthmus.data import open_rows, write_npy_chunks

N_FEATURES = 256
GEN_ROWS = 16384  # rows generated (and written) at a time: little memory, so the peak is the fit's


def synthetic(n: int, seed: int) -> Iterator[np.ndarray]:
    """Rows of 16 latent factors mixed through tanh into 256 features, plus noise, in chunks."""
    mixing = np.random.default_rng(12345).normal(size=(16, N_FEATURES)) / 2.0
    rng = np.random.default_rng(seed)
    for start in range(0, n, GEN_ROWS):
        z = rng.normal(size=(min(GEN_ROWS, n - start), 16))
        yield (np.tanh(z @ mixing) + 0.05 * rng.normal(size=(len(z), N_FEATURES))).astype(np.float32)


def tiled(x: np.ndarray, n: int) -> Iterator[np.ndarray]:
    """The rows of ``x`` repeated until ``n`` rows, in chunks."""
    flat = x.reshape(len(x), -1).astype(np.float32)
    for start in range(0, n, GEN_ROWS):
        idx = np.arange(start, min(start + GEN_ROWS, n)) % len(flat)
        yield flat[idx]


def timed_fit(ae: Autoencoder, data: Any) -> dict[str, float]:
    """Fit, timing the training loop itself apart from the passes around it (scaler, sample, baselines)."""
    stamps: dict[str, float] = {}
    inner = training.train

    def train(*args: Any, **kwargs: Any) -> Any:
        stamps["start"] = time.perf_counter()
        result = inner(*args, **kwargs)
        stamps["stop"] = time.perf_counter()
        return result

    training.train = train  # the estimator calls the loop through this module attribute
    try:
        with Timer() as whole, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ae.fit(data)
    finally:
        training.train = inner
    return {"fit_s": whole.seconds, "train_s": stamps["stop"] - stamps["start"]}


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=Path("/tmp/isthmus-stream.npy"), help="the big .npy (made if absent)")
    p.add_argument("--gib", type=float, default=4.0, help="size of the generated file")
    p.add_argument("--memory-rows", type=int, default=1_000_000, help="rows of the in-memory reference run")
    p.add_argument("--batch-size", type=int, default=256)
    args = parse(p)
    n_rows = int(args.gib * 2**30) // (4 * N_FEATURES)
    if args.train is not None:  # the user's rows (flattened), tiled up to the size
        with np.load(args.train, allow_pickle=False) as f:
            source = f["x"]
        n_rows = int(args.gib * 2**30) // (4 * math.prod(source.shape[1:]))
    if not args.data.exists() or args.data.stat().st_size < n_rows * N_FEATURES * 4:
        with Timer() as made:
            chunks = tiled(source, n_rows) if args.train is not None else synthetic(n_rows, seed=0)
            write_npy_chunks(args.data, chunks, n_rows)
        print(f"wrote {args.data} ({args.data.stat().st_size / 2**30:.2f} GiB) in {made.seconds:.0f} s")
    if args.test is not None:
        with np.load(args.test, allow_pickle=False) as f:
            x_test = f["x"].reshape(len(f["x"]), -1).astype(np.float32)
    else:
        x_test = next(synthetic(10000, seed=1))
    params = {
        "n_components": 16,
        "hidden_layer_sizes": (128, 64),
        "batch_size": args.batch_size,
        "max_iter": 1,
        "random_state": 0,
        "verbose": 0,
        "device": args.device,
    }

    timed_fit(Autoencoder(**params), x_test[:4000])  # warm-up: first calls into torch are slow
    base_rss = peak_rss_mib()
    rows = open_rows(args.data)
    streamed = Autoencoder(**params)
    stream_times = timed_fit(streamed, rows)
    codes = args.data.with_suffix(".codes.npy")
    with Timer() as enc:
        write_npy_chunks(codes, streamed.iter_transform(rows), len(rows))
    stream_rss = peak_rss_mib()
    print(
        f"streamed: {len(rows):,} rows, fit {stream_times['fit_s']:.0f} s (loop {stream_times['train_s']:.0f} s), "
        f"encode {enc.seconds:.0f} s, peak RSS {stream_rss:.0f} MiB"
    )
    if args.out is not None:
        streamed.save(args.out)

    n_mem = min(args.memory_rows, len(rows))
    x_mem = np.array(np.load(args.data, mmap_mode="r")[:n_mem])
    in_memory = Autoencoder(**params)
    mem_times = timed_fit(in_memory, x_mem)
    with Timer() as enc_mem:
        in_memory.transform(x_mem)
    del x_mem
    stream_rate = len(rows) / stream_times["train_s"]
    mem_rate = n_mem / mem_times["train_s"]
    figures = {
        "rows": len(rows),
        "file_gib": round(args.data.stat().st_size / 2**30, 3),
        "peak_rss_mib": round(stream_rss, 1),
        "rss_before_mib": round(base_rss, 1),
        "stream_train_samples_per_s": round(stream_rate, 1),
        "memory_train_samples_per_s": round(mem_rate, 1),
        "train_ratio": round(stream_rate / mem_rate, 3),
        "stream_fit_samples_per_s": round(len(rows) / stream_times["fit_s"], 1),
        "memory_fit_samples_per_s": round(n_mem / mem_times["fit_s"], 1),
        "stream_encode_samples_per_s": round(len(rows) / enc.seconds, 1),
        "memory_encode_samples_per_s": round(n_mem / enc_mem.seconds, 1),
        "stream_test_mse": float(streamed.reconstruction_error(x_test).mean() / x_test.shape[1]),
        "memory_test_mse": float(in_memory.reconstruction_error(x_test).mean() / x_test.shape[1]),
        "memory_rows": n_mem,
    }
    print(
        f"training: streamed {stream_rate:,.0f} samples/s, in memory {mem_rate:,.0f} samples/s "
        f"(x{figures['train_ratio']:.2f}); peak RSS {stream_rss:.0f} MiB"
    )
    report(
        figures,
        {
            "what": f"streamed training, one epoch over a {figures['file_gib']} GiB .npy ({len(rows):,} rows)",
            "figure": f"peak resident memory {stream_rss:.0f} MiB; {stream_rate:,.0f} samples/s",
            "baseline": f"in memory on its first {n_mem:,} rows: {mem_rate:,.0f} samples/s "
            f"(streamed x{figures['train_ratio']:.2f})",
        },
        args,
    )


if __name__ == "__main__":
    main()
