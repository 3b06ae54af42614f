"""Training throughput of isthmus against a plain hand-written PyTorch loop, measured in the same run.

Same network, same data in memory, same batch size, same loss. The plain loop is timed twice: with
``torch.optim.Adam``'s defaults (what most hand-written loops use) and with the fused Adam kernel isthmus
uses, so the second ratio is isthmus's own overhead. Epoch 1 is warm-up and not timed.

    .venv/bin/python bench/throughput.py
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import torch
from torch import nn

from _common import parse, parser, report
from isthmus import Autoencoder

MODELS = {"784-1000-500-250-30": (784, (1000, 500, 250), 30), "64-32-8": (64, (32,), 8)}


def plain_mlp(widths: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(widths) - 1):
        layers.append(nn.Linear(widths[i], widths[i + 1]))
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def plain_loop(x: torch.Tensor, n_in: int, hidden: tuple[int, ...], code: int, batch: int, epochs: int,
               fused: bool) -> float:
    """Samples per second of the textbook loop (epochs 2..N)."""
    torch.manual_seed(0)
    widths = [n_in, *hidden, code]
    net = nn.Sequential(plain_mlp(widths), plain_mlp(widths[::-1]))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, fused=True if fused else None)
    start = 0.0
    for epoch in range(epochs):
        if epoch == 1:
            start = time.perf_counter()
        perm = torch.randperm(len(x))
        for i in range(0, len(x), batch):
            xb = x[perm[i : i + batch]]
            logits = net(xb)
            loss = nn.functional.binary_cross_entropy_with_logits(logits, xb, reduction="none").sum(1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return len(x) * (epochs - 1) / (time.perf_counter() - start)


def isthmus_fit(x: np.ndarray, hidden: tuple[int, ...], code: int, batch: int, epochs: int) -> float:
    """Samples per second of ``Autoencoder.fit`` (epochs 2..N, timed by an epoch callback)."""
    stamps: list[float] = []
    ae = Autoencoder(n_components=code, hidden_layer_sizes=hidden, batch_size=batch, max_iter=epochs,
                     scaling="none", loss="bce", random_state=0, verbose=0, device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ae.fit(x, callbacks=[lambda epoch, record: stamps.append(time.perf_counter())])
    return len(x) * (epochs - 1) / (stamps[-1] - stamps[0])


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=20000)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--repeats", type=int, default=2, help="alternate the runs this many times, keep the best")
    args = parse(p)
    rng = np.random.default_rng(0)
    figures: dict[str, dict[str, float]] = {}
    for name, (n_in, hidden, code) in MODELS.items():
        x = rng.uniform(size=(args.rows, n_in)).astype(np.float32)
        xt = torch.from_numpy(x)
        best = {"plain": 0.0, "plain_fused": 0.0, "isthmus": 0.0}
        for _ in range(args.repeats):  # interleaved, so a noisy neighbour hurts every contender alike
            best["plain"] = max(best["plain"], plain_loop(xt, n_in, hidden, code, args.batch_size, args.epochs, False))
            best["plain_fused"] = max(
                best["plain_fused"], plain_loop(xt, n_in, hidden, code, args.batch_size, args.epochs, True)
            )
            best["isthmus"] = max(best["isthmus"], isthmus_fit(x, hidden, code, args.batch_size, args.epochs))
        figures[name] = {
            **{f"{k}_samples_per_s": round(v, 1) for k, v in best.items()},
            "ratio_vs_plain": best["isthmus"] / best["plain"],
            "ratio_vs_plain_fused": best["isthmus"] / best["plain_fused"],
        }
        print(f"{name}: isthmus {best['isthmus']:.0f}/s, plain {best['plain']:.0f}/s "
              f"(x{figures[name]['ratio_vs_plain']:.2f}), plain+fused Adam {best['plain_fused']:.0f}/s "
              f"(x{figures[name]['ratio_vs_plain_fused']:.2f})")
    report({"batch_size": args.batch_size, "rows": args.rows, "threads": torch.get_num_threads(), **figures})


if __name__ == "__main__":
    main()
