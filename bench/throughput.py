"""Training throughput of isthmus against a plain hand-written PyTorch loop, measured in the same run.

Same network, same data in memory, same batch size, same loss. The plain loop is timed twice: with
``torch.optim.Adam``'s defaults (what most hand-written loops use) and with the fused Adam kernel isthmus
uses, so the second ratio is isthmus's own overhead. Epoch 1 is warm-up and not timed.

Then, on the 784-1000-500-250-30 MLP: a sweep of precision x batch size x threads (isthmus samples/s
against the float32 plain loop at the same batch size and threads), where an epoch's time goes (drawing
batches vs the training step), the matrix-product GFLOP/s of each dtype on this CPU, and the held-out
reconstruction error each precision reaches after the same epochs on MNIST (``--train``/``--test``).

    .venv/bin/python bench/throughput.py --threads 1
"""

from __future__ import annotations

import argparse
import time
import warnings
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from _common import mnist_splits, parse, parser, pixels, report
from isthmus import Autoencoder

MODELS = {"784-1000-500-250-30": (784, (1000, 500, 250), 30), "64-32-8": (64, (32,), 8)}


def plain_mlp(widths: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(widths) - 1):
        layers.append(nn.Linear(widths[i], widths[i + 1]))
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def plain_autoencoder(n_in: int, hidden: tuple[int, ...], code: int) -> nn.Sequential:
    """The MLP autoencoder as a textbook writes it (seeded): encoder widths down to ``code``, then back up."""
    torch.manual_seed(0)
    widths = [n_in, *hidden, code]
    return nn.Sequential(plain_mlp(widths), plain_mlp(widths[::-1]))


class LoopRun(NamedTuple):
    """What one timed plain loop measured."""

    samples_per_s: float  # over epochs 2..N
    first_epoch_s: float  # warm-up; under torch.compile, mostly compiling


def plain_loop(
    net: nn.Module,
    x: torch.Tensor,
    batch: int,
    epochs: int,
    fused: bool,
    precision: str = "fp32",
    compile: bool = False,
) -> LoopRun:
    """The textbook loop on ``net`` with ``x`` on the device it trains on: shuffle, gather, step (epochs 2..N timed).

    ``precision`` autocasts as isthmus does ("fp16" with a gradient scaler); ``compile`` wraps ``net`` in
    ``torch.compile``. The loss is isthmus's "bce": per-sample sums, averaged over the batch.
    """
    device = x.device
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    scaler = torch.amp.GradScaler(device.type) if dtype == torch.float16 else None
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, fused=True if fused else None)
    model = torch.compile(net) if compile else net
    stamps = [time.perf_counter()]
    for _ in range(epochs):
        perm = torch.randperm(len(x), device=device)
        for i in range(0, len(x), batch):
            xb = x[perm[i : i + batch]]
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                logits = model(xb)
                loss = nn.functional.binary_cross_entropy_with_logits(logits, xb, reduction="none").flatten(1)
                loss = loss.sum(1).mean()
            opt.zero_grad(set_to_none=True)
            if scaler is None:
                loss.backward()
                opt.step()
            else:
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
        if device.type == "cuda":
            torch.cuda.synchronize(device)  # kernels run ahead of the host: wait before reading the clock
        stamps.append(time.perf_counter())
    return LoopRun(len(x) * (epochs - 1) / (stamps[-1] - stamps[1]), stamps[1] - stamps[0])


def fit_rate(x: np.ndarray, params: dict[str, Any], epochs: int) -> tuple[float, Autoencoder]:
    """Samples per second of ``Autoencoder(**params).fit(x)`` over epochs 2..N (an epoch callback stamps
    them; each epoch ends by reading its metrics, which waits for a GPU), and the fitted model."""
    stamps: list[float] = []
    ae = Autoencoder(**{"random_state": 0, "verbose": 0, **params, "max_iter": epochs})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ae.fit(x, callbacks=[lambda epoch, record: stamps.append(time.perf_counter())])
    return len(x) * (epochs - 1) / (stamps[-1] - stamps[0]), ae


def isthmus_fit(
    x: np.ndarray,
    hidden: tuple[int, ...],
    code: int,
    batch: int,
    epochs: int,
    precision: str = "fp32",
    device: str = "cpu",
) -> float:
    """Samples per second of ``Autoencoder.fit`` on the MLP (epochs 2..N)."""
    params = {"n_components": code, "hidden_layer_sizes": hidden, "batch_size": batch, "scaling": "none"}
    return fit_rate(x, {**params, "loss": "bce", "device": device, "precision": precision}, epochs)[0]


def matmul_gflops(dtype: torch.dtype, m: int = 1024, k: int = 1000, n: int = 784, seconds: float = 1.0) -> float:
    """GFLOP/s of one (m x k) @ (k x n) product in ``dtype``, repeated for ``seconds``."""
    a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
    a @ b
    start, reps = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        a @ b
        reps += 1
    return 2 * m * k * n * reps / (time.perf_counter() - start) / 1e9


def where_time_goes(x: np.ndarray, batch: int) -> dict[str, float]:
    """Seconds per epoch spent drawing batches (shuffle and gather) against a whole isthmus epoch."""
    from isthmus.batches import Shard, TensorSource

    source = TensorSource(torch.from_numpy(x))
    gen = torch.Generator().manual_seed(0)
    for _ in source.shuffled(gen, batch, Shard()):  # warm-up: the first gathers are slow
        pass
    start = time.perf_counter()
    for _ in source.shuffled(gen, batch, Shard()):
        pass
    data_s = time.perf_counter() - start
    epoch_s = len(x) / isthmus_fit(x, *MODELS["784-1000-500-250-30"][1:], batch, 2)
    return {"data_s_per_epoch": data_s, "epoch_s": epoch_s, "data_fraction": data_s / epoch_s}


def precision_quality(args: argparse.Namespace, precisions: list[str], epochs: int) -> dict[str, float]:
    """Held-out per-image squared error after ``epochs`` on MNIST rows, for each precision."""
    try:
        splits = mnist_splits(args)
    except SystemExit as exc:
        print(f"note: skipping the quality comparison: {exc}")
        return {}
    x_train = pixels(splits["x_train"][: args.quality_rows])
    x_test = pixels(splits["x_test"][:2000])
    _, hidden, code = MODELS["784-1000-500-250-30"]
    errors = {}
    for precision in precisions:
        ae = Autoencoder(
            n_components=code,
            hidden_layer_sizes=hidden,
            batch_size=256,
            max_iter=epochs,
            scaling="none",
            loss="bce",
            random_state=0,
            verbose=0,
            device=args.device,
            precision=precision,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ae.fit(x_train)
        errors[f"{precision}_test_sse"] = float(ae.reconstruction_error(x_test).mean())
    return errors


def sweep(args: argparse.Namespace) -> dict[str, Any]:
    """Precision x batch size x threads on the big MLP, with the float32 plain loop as reference."""
    n_in, hidden, code = MODELS["784-1000-500-250-30"]
    x = np.random.default_rng(1).uniform(size=(args.sweep_rows, n_in)).astype(np.float32)
    rows: list[dict[str, Any]] = []
    threads_before = torch.get_num_threads()
    for threads in args.thread_counts:
        torch.set_num_threads(threads)
        for batch in args.batch_sizes:
            plain = plain_loop(
                plain_autoencoder(n_in, hidden, code), torch.from_numpy(x), batch, args.epochs, True
            ).samples_per_s
            for precision in args.precisions:
                rate = isthmus_fit(x, hidden, code, batch, args.epochs, precision, args.device)
                rows.append(
                    {
                        "threads": threads,
                        "batch_size": batch,
                        "precision": precision,
                        "samples_per_s": round(rate, 1),
                        "plain_fp32_samples_per_s": round(plain, 1),
                        "ratio_vs_plain_fp32": round(rate / plain, 3),
                    }
                )
                print(
                    f"threads {threads}, batch {batch}, {precision}: {rate:.0f}/s, "
                    f"x{rate / plain:.2f} the fp32 plain loop ({plain:.0f}/s)",
                    flush=True,
                )
    torch.set_num_threads(threads_before)
    return {"sweep": rows}


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=20000)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--repeats", type=int, default=2, help="alternate the runs this many times, keep the best")
    p.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], help="precisions of the sweep")
    p.add_argument("--batch-sizes", nargs="+", type=int, default=[256, 1024], help="batch sizes of the sweep")
    p.add_argument("--thread-counts", nargs="+", type=int, default=[1, 2], help="torch threads of the sweep")
    p.add_argument("--sweep-rows", type=int, default=8192)
    p.add_argument("--quality-rows", type=int, default=10000, help="MNIST training rows of the quality runs")
    p.add_argument("--quality-epochs", type=int, default=3)
    p.add_argument("--skip-baseline", action="store_true", help="only the sweep and the precision figures")
    args = parse(p)
    rng = np.random.default_rng(0)
    figures: dict[str, dict[str, float]] = {}
    for name, (n_in, hidden, code) in ({} if args.skip_baseline else MODELS).items():
        x = rng.uniform(size=(args.rows, n_in)).astype(np.float32)
        xt = torch.from_numpy(x)
        best = {"plain": 0.0, "plain_fused": 0.0, "isthmus": 0.0}
        for _ in range(args.repeats):  # interleaved, so a noisy neighbour hurts every contender alike
            for key, fused in (("plain", False), ("plain_fused", True)):
                net = plain_autoencoder(n_in, hidden, code)
                best[key] = max(best[key], plain_loop(net, xt, args.batch_size, args.epochs, fused).samples_per_s)
            best["isthmus"] = max(best["isthmus"], isthmus_fit(x, hidden, code, args.batch_size, args.epochs))
        figures[name] = {
            **{f"{k}_samples_per_s": round(v, 1) for k, v in best.items()},
            "ratio_vs_plain": best["isthmus"] / best["plain"],
            "ratio_vs_plain_fused": best["isthmus"] / best["plain_fused"],
        }
        print(
            f"{name}: isthmus {best['isthmus']:.0f}/s, plain {best['plain']:.0f}/s "
            f"(x{figures[name]['ratio_vs_plain']:.2f}), plain+fused Adam {best['plain_fused']:.0f}/s "
            f"(x{figures[name]['ratio_vs_plain_fused']:.2f})"
        )
    extra: dict[str, Any] = {
        "matmul_gflops": {
            str(dt).removeprefix("torch."): round(matmul_gflops(dt), 1) for dt in (torch.float32, torch.bfloat16)
        },
    }
    print(f"matrix products on this CPU (1024x1000 @ 1000x784): {extra['matmul_gflops']} GFLOP/s")
    extra.update(sweep(args))
    extra["where_time_goes"] = where_time_goes(
        np.random.default_rng(2).uniform(size=(4096, 784)).astype(np.float32), args.batch_size
    )
    print(f"where an epoch goes: {extra['where_time_goes']}")
    extra["quality"] = precision_quality(args, args.precisions, args.quality_epochs)
    if "fp32_test_sse" in extra["quality"]:
        for precision in args.precisions:
            extra["quality"][f"{precision}_sse_vs_fp32"] = (
                extra["quality"][f"{precision}_test_sse"] / extra["quality"]["fp32_test_sse"]
            )
        print(f"held-out SSE per precision: {extra['quality']}")
    report(
        {"batch_size": args.batch_size, "rows": args.rows, "threads": torch.get_num_threads(), **figures, **extra},
        {
            "what": f"training throughput, batch {args.batch_size}, {torch.get_num_threads()} thread(s), samples/s",
            "figure": "; ".join(f"{k}: {v['isthmus_samples_per_s']:,.0f}" for k, v in figures.items()) or "-",
            "baseline": "; ".join(
                f"plain loop {v['plain_samples_per_s']:,.0f} (x{v['ratio_vs_plain']:.2f}), "
                f"fused Adam {v['plain_fused_samples_per_s']:,.0f} (x{v['ratio_vs_plain_fused']:.2f})"
                for v in figures.values()
            )
            or "-",
        },
        args,
    )


if __name__ == "__main__":
    main()
