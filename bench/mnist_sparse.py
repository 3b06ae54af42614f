"""An overcomplete (1,000-unit) sparse autoencoder on MNIST: active units per image and 5-NN accuracy.

Trains on the first 50,000 rows of $ISTHMUS_DATA/mnist-train.npz and reports, on the last 10,000, the
fraction of code units active per image (mean, and its spread) and the accuracy of a 5-nearest-neighbour
classifier fitted on the training codes, next to the same classifier on raw pixels. The default is the
k-sparse autoencoder (Makhzani & Frey, 2013: k = 25 of 1,000 units, one-layer encoder); ``--penalty
kl_sparsity`` gives the KL-sparse one (sigmoid units, target rate ``--sparsity-target``), where a unit
counts as active above ``--active-threshold``.

    .venv/bin/python bench/mnist_sparse.py --out runs/mnist_sparse.safetensors
    .venv/bin/python bench/mnist_sparse.py --max-iter 1 --limit 2000   # smoke test
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.neighbors import KNeighborsClassifier

from _common import Timer, mnist_splits, parse, parser, pixels, report
from isthmus import Autoencoder

N_UNITS = 1000
RECIPE = {
    "n_components": N_UNITS,
    "hidden_layer_sizes": (),  # one linear layer into the code, as in the classic sparse autoencoders
    "scaling": "none",  # pixels already in [0, 1]
    "loss": "bce",
    "batch_size": 128,
    "learning_rate": 1e-3,
    "lr_schedule": "cosine",
    "random_state": 0,
}


def knn_accuracy(train: np.ndarray, y_train: np.ndarray, test: np.ndarray, y_test: np.ndarray) -> float:
    """Held-out accuracy of a 5-nearest-neighbour classifier (Euclidean)."""
    return float(KNeighborsClassifier(n_neighbors=5).fit(train, y_train).score(test, y_test))


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--max-iter", type=int, default=50, help="epochs (cosine schedule over all of them)")
    p.add_argument("--penalty", default="topk", choices=("topk", "kl_sparsity", "l1"))
    p.add_argument("--sparsity-k", type=int, default=25)
    p.add_argument("--sparsity-target", type=float, default=0.05)
    p.add_argument("--penalty-weight", type=float, default=1.0, help="weight of the kl_sparsity or l1 term")
    p.add_argument(
        "--active-threshold",
        type=float,
        default=None,
        help="|activation| above which a unit is active (default: 0 for topk, 0.1 otherwise)",
    )
    p.add_argument("--limit", type=int, default=None, help="use only this many training and held-out rows")
    args = parse(p)
    data = mnist_splits(args)
    if data["y_train"] is None or data["y_test"] is None:
        raise SystemExit("error: the 5-NN accuracy needs labels; pass .npz files with x and y")
    x_train = pixels(data["x_train"])
    x_test = pixels(data["x_test"])
    y_train, y_test = data["y_train"], data["y_test"]
    if args.limit:
        x_train, y_train, x_test, y_test = (a[: args.limit] for a in (x_train, y_train, x_test, y_test))

    recipe = {**RECIPE, "penalty": args.penalty, "max_iter": args.max_iter, "device": args.device}
    if args.penalty == "topk":
        recipe["sparsity_k"] = args.sparsity_k
    else:
        recipe["penalty_weight"] = args.penalty_weight
        recipe["sparsity_target"] = args.sparsity_target
    threshold = args.active_threshold if args.active_threshold is not None else (0.0 if args.penalty == "topk" else 0.1)

    ae = Autoencoder(**recipe, verbose=1)
    with Timer() as train_time, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ae.fit(x_train, log=None if args.out is None else args.out.with_suffix(".log.jsonl"))
    if args.out is not None:
        ae.save(args.out)
    z_train, z_test = ae.transform(x_train), ae.transform(x_test)
    active = (np.abs(z_test) > threshold).mean(axis=1)  # (n_test,) fraction of units active per image
    dormant = float(((np.abs(z_test) > threshold).sum(axis=0) == 0).mean())  # units never active
    sse = float(np.square(ae.reconstruct(x_test) - x_test).sum(axis=1).mean())
    with Timer() as knn_time:
        acc_code = knn_accuracy(z_train, y_train, z_test, y_test)
        acc_pixels = knn_accuracy(x_train, y_train, x_test, y_test)
    print(
        f"active units per image: {active.mean():.4f} of {N_UNITS} (std {active.std():.4f}); "
        f"never active on held-out rows: {dormant:.3f}"
    )
    print(f"5-NN accuracy: sparse codes {acc_code:.4f}, raw pixels {acc_pixels:.4f}")
    print(f"held-out reconstruction SSE per image: {sse:.3f}")
    print(f"training: {ae.n_iter_} epochs in {train_time.seconds / 60:.1f} min")
    report(
        {
            "active_fraction_mean": float(active.mean()),
            "active_fraction_std": float(active.std()),
            "active_threshold": threshold,
            "never_active_fraction": dormant,
            "knn5_accuracy_codes": acc_code,
            "knn5_accuracy_pixels": acc_pixels,
            "sse_per_image": sse,
            "epochs": ae.n_iter_,
            "train_minutes": train_time.seconds / 60,
            "knn_minutes": knn_time.seconds / 60,
            "recipe": recipe,  # json writes tuples as lists
            "n_train": len(x_train),
            "n_test": len(x_test),
        },
        {
            "what": f"sparse overcomplete code ({N_UNITS} units), 5-NN accuracy",
            "figure": f"{acc_code:.3f}, {active.mean():.1%} of units active per image",
            "baseline": f"raw pixels: {acc_pixels:.3f}",
        },
        args,
    )


if __name__ == "__main__":
    main()
