"""Reconstruction of held-out MNIST digits through a 30-dimensional code, beside PCA-30.

Trains the recipe below on the first 50,000 rows of $ISTHMUS_DATA/mnist-train.npz, evaluates the
per-image sum of squared errors (pixels in [0, 1]) on the last 10,000, and prints PCA-30's beside it.

    .venv/bin/python bench/mnist_recon.py --out runs/mnist30.safetensors
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.decomposition import PCA

from _common import Timer, mnist_splits, parse, parser, pixels, report
from isthmus import PRESETS, Autoencoder

# the "mnist" preset is this benchmark's recipe; the bench only pins the seed and exposes a few knobs
RECIPE = {**PRESETS["mnist"], "learning_rate": 1e-3, "random_state": 0}


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--max-iter", type=int, default=RECIPE["max_iter"], help="epochs (cosine schedule over all)")
    p.add_argument("--activation", default="relu")
    p.add_argument("--architecture", default=RECIPE["architecture"], choices=["mlp", "conv"])
    p.add_argument("--hidden", default=None, help="hidden_layer_sizes, e.g. 1000,500,250 (conv: channels)")
    p.add_argument("--batch-size", type=int, default=RECIPE["batch_size"])
    p.add_argument("--learning-rate", type=float, default=RECIPE["learning_rate"])
    args = parse(p)
    data = mnist_splits(args)
    # pixels in [0, 1], flattened: the scale all our baselines use
    shape = (-1,) if args.architecture == "mlp" else (1, 28, 28)
    x_train = pixels(data["x_train"], *shape)
    x_test = pixels(data["x_test"], *shape)
    recipe = {
        **RECIPE,
        "activation": args.activation,
        "architecture": args.architecture,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "max_iter": args.max_iter,
    }
    if args.hidden:
        recipe["hidden_layer_sizes"] = tuple(int(v) for v in args.hidden.split(","))
    ae = Autoencoder(**recipe, verbose=1)
    with Timer() as t, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ae.fit(x_train, log=None if args.out is None else args.out.with_suffix(".log.jsonl"))
    if args.out is not None:
        ae.save(args.out)
    sse = float(np.square(ae.reconstruct(x_test) - x_test).reshape(len(x_test), -1).sum(axis=1).mean())
    flat_train, flat_test = x_train.reshape(len(x_train), -1), x_test.reshape(len(x_test), -1)
    pca = PCA(n_components=30, random_state=0).fit(flat_train)
    pca_sse = float(np.square(pca.inverse_transform(pca.transform(flat_test)) - flat_test).sum(axis=1).mean())
    print(f"held-out per-image SSE: isthmus {sse:.3f}, PCA-30 {pca_sse:.3f} (ratio {sse / pca_sse:.3f})")
    print(f"training: {ae.n_iter_} epochs in {t.seconds / 60:.1f} min")
    report(
        {
            "sse_per_image": sse,
            "pca30_sse_per_image": pca_sse,
            "ratio_to_pca": sse / pca_sse,
            "epochs": ae.n_iter_,
            "train_minutes": t.seconds / 60,
            "recipe": recipe,
            "n_train": len(x_train),
            "n_test": len(x_test),
        },
        {
            "what": "MNIST, 30-d code, held-out SSE per image (pixels in [0, 1])",
            "figure": f"{sse:.2f} ({ae.n_iter_} epochs, {t.seconds / 60:.1f} min)",
            "baseline": f"PCA-30: {pca_sse:.2f}",
        },
        args,
    )


if __name__ == "__main__":
    main()
