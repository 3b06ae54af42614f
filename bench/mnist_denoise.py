"""Denoising MNIST under Gaussian noise (standard deviation 0.5, clipped to [0, 1]), beside tuned references.

Trains a denoising autoencoder (``corruption="gaussian_clipped"``, ``noise_level=0.5``: the training noise
is the test noise) on the first 50,000 rows of $ISTHMUS_DATA/mnist-train.npz and reports PSNR (peak 1, one
MSE over all pixels) on 1,000 held-out rows (the first of the last 10,000) corrupted once with a fixed seed:
of the noisy input, of the denoiser's output, and of three references whose settings are tuned on noisy
training rows: scikit-image's non-local means, total-variation denoising (Chambolle), and projection onto
PCA components fitted on clean training images. Target: >= 5 dB above the best reference.

    .venv/bin/python bench/mnist_denoise.py --out runs/mnist_denoise.safetensors
    .venv/bin/python bench/mnist_denoise.py --max-iter 1 --limit 2000 --n-tune 20   # smoke test
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
from sklearn.decomposition import PCA

from _common import Timer, mnist_splits, parse, parser, report
from isthmus import Autoencoder
from isthmus.metrics import reconstruction_metrics

SIGMA = 0.5
TARGET_MARGIN_DB = 5.0
N_TEST = 1000
RECIPE = {
    "corruption": "gaussian_clipped",  # Gaussian noise clipped to the clean batch's range [0, 1]
    "noise_level": SIGMA,
    "architecture": "conv",
    "hidden_layer_sizes": (32, 64, 128),  # channels of the stride-2 convolutions: 28 -> 14 -> 7 -> 4
    "n_components": 256,
    "loss": "bce",  # sigmoid output in [0, 1]; its minimizer is the conditional mean, as for MSE
    "scaling": "none",
    "batch_size": 128,
    "learning_rate": 1e-3,
    "lr_schedule": "cosine",
    "random_state": 0,
}
NLM_GRID = [
    {"h": k * SIGMA, "patch_size": p, "patch_distance": d}
    for k in (0.4, 0.6, 0.8, 1.0, 1.2)
    for p, d in ((3, 3), (5, 5))
]
TV_GRID = [{"weight": w} for w in (0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.8)]
PCA_GRID = [{"n_components": k} for k in (16, 32, 48, 64, 96, 128)]


def noisy(x: np.ndarray, seed: int) -> np.ndarray:
    """``x`` in [0, 1] plus N(0, SIGMA^2) noise, clipped to [0, 1]."""
    rng = np.random.default_rng(seed)
    return np.clip(x + SIGMA * rng.normal(size=x.shape), 0.0, 1.0).astype(np.float32)


def psnr(clean: np.ndarray, estimate: np.ndarray) -> float:
    return reconstruction_metrics(clean, estimate, 1.0)["psnr"]


def per_image(fn: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    """Apply a single-image (28, 28) denoiser to (n, 28, 28) images."""
    return lambda images: np.stack([fn(img) for img in images]).astype(np.float32)


def tune(
    name: str,
    grid: list[dict[str, float]],
    make: Callable[[dict[str, float]], Callable[[np.ndarray], np.ndarray]],
    clean: np.ndarray,
    corrupted: np.ndarray,
) -> tuple[dict[str, float], Callable[[np.ndarray], np.ndarray]]:
    """The grid point with the best PSNR on (clean, corrupted) training images, and its denoiser."""
    scores = [(psnr(clean, make(setting)(corrupted)), i) for i, setting in enumerate(grid)]
    best = max(scores)[1]
    print(f"{name}: best setting {grid[best]} ({max(scores)[0]:.2f} dB on the tuning rows)")
    return grid[best], make(grid[best])


def main() -> None:
    from skimage.restoration import denoise_nl_means, denoise_tv_chambolle

    p = parser(__doc__.splitlines()[0])
    p.add_argument("--max-iter", type=int, default=100, help="epochs (cosine schedule over all of them)")
    p.add_argument("--architecture", default=RECIPE["architecture"], choices=("conv", "mlp"))
    p.add_argument("--hidden", default=None, help="widths or channels, comma-separated (default per architecture)")
    p.add_argument("--n-components", type=int, default=RECIPE["n_components"])
    p.add_argument("--n-tune", type=int, default=300, help="noisy training rows the references are tuned on")
    p.add_argument("--limit", type=int, default=None, help="use only this many training rows")
    args = parse(p)
    data = mnist_splits(args)
    x_train = data["x_train"].astype(np.float32) / 255.0  # (n, 28, 28)
    x_test = data["x_test"][:N_TEST].astype(np.float32) / 255.0
    if args.limit:
        x_train = x_train[: args.limit]
    test_noisy = noisy(x_test, seed=1)

    hidden = args.hidden or ("32,64,128" if args.architecture == "conv" else "1000,500")
    recipe = {
        **RECIPE,
        "architecture": args.architecture,
        "hidden_layer_sizes": tuple(int(w) for w in hidden.split(",") if w.strip()),
        "n_components": args.n_components,
        "max_iter": args.max_iter,
        "device": args.device,
    }
    shape = (1, 28, 28) if args.architecture == "conv" else (784,)
    ae = Autoencoder(**recipe, verbose=1)
    with Timer() as train_time, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ae.fit(x_train.reshape(-1, *shape), log=None if args.out is None else args.out.with_suffix(".log.jsonl"))
    if args.out is not None:
        ae.save(args.out)
    denoised = ae.denoise(test_noisy.reshape(-1, *shape)).reshape(x_test.shape)

    # references, each tuned on noisy training rows (their own noise draw)
    tune_clean = x_train[: args.n_tune]
    tune_noisy = noisy(tune_clean, seed=2)
    flat_train = x_train.reshape(len(x_train), -1)

    def nlm(s: dict[str, float]) -> Callable[[np.ndarray], np.ndarray]:
        return per_image(lambda im: denoise_nl_means(im, sigma=SIGMA, fast_mode=True, **s))

    def tv(s: dict[str, float]) -> Callable[[np.ndarray], np.ndarray]:
        return per_image(lambda im: denoise_tv_chambolle(im, **s))

    def pca(s: dict[str, float]) -> Callable[[np.ndarray], np.ndarray]:
        model = PCA(n_components=int(s["n_components"]), random_state=0).fit(flat_train)
        return lambda images: np.clip(
            model.inverse_transform(model.transform(images.reshape(len(images), -1))), 0, 1
        ).reshape(images.shape)

    references = {}
    with Timer() as ref_time:
        for name, grid, make in (("nlm", NLM_GRID, nlm), ("tv", TV_GRID, tv), ("pca", PCA_GRID, pca)):
            setting, denoiser = tune(name, grid, make, tune_clean, tune_noisy)
            references[name] = {"psnr": psnr(x_test, denoiser(test_noisy)), "setting": setting}
    best = max(references, key=lambda k: references[k]["psnr"])
    figures = {"noisy": psnr(x_test, test_noisy), "denoiser": psnr(x_test, denoised)}
    margin = figures["denoiser"] - references[best]["psnr"]
    print(
        f"PSNR on {len(x_test)} held-out rows (dB): noisy {figures['noisy']:.2f}, "
        + ", ".join(f"{k} {v['psnr']:.2f}" for k, v in references.items())
        + f", isthmus {figures['denoiser']:.2f}"
    )
    print(f"margin over the best reference ({best}): {margin:+.2f} dB (target >= {TARGET_MARGIN_DB})")
    print(f"training: {ae.n_iter_} epochs in {train_time.seconds / 60:.1f} min")
    report(
        {
            "psnr_noisy": figures["noisy"],
            "psnr_denoiser": figures["denoiser"],
            "references": references,
            "best_reference": best,
            "margin_db": margin,
            "target_met": margin >= TARGET_MARGIN_DB,
            "epochs": ae.n_iter_,
            "train_minutes": train_time.seconds / 60,
            "reference_minutes": ref_time.seconds / 60,
            "recipe": recipe,  # json writes tuples as lists
            "n_train": len(x_train),
            "n_test": len(x_test),
        },
        {
            "what": f"denoising MNIST, Gaussian noise sd {SIGMA}, PSNR on {len(x_test)} held-out rows",
            "figure": f"{figures['denoiser']:.2f} dB ({ae.n_iter_} epochs)",
            "baseline": f"noisy {figures['noisy']:.2f}; "
            + "; ".join(f"{k} {v['psnr']:.2f}" for k, v in references.items()),
        },
        args,
    )


if __name__ == "__main__":
    main()
