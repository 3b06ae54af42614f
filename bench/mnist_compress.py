"""Learned compression of MNIST against real files of the classical codecs, at matched PSNR.

Trains one ``bottleneck="quantized"`` model per ``--lmbda`` on the first 50,000 rows of
$ISTHMUS_DATA/mnist-train.npz and reports on the last 10,000 rows, counting real bytes:

* one file per image: every test image compressed alone (``Autoencoder.compress`` of one image, header,
  payload and checksum included) beside the same image as PNG, JPEG, WebP, JPEG 2000, AVIF and JPEG XL
  files at a sweep of settings (``isthmus.rd``: Pillow, and imagecodecs where installed);
* the whole set in one file: one stream of all test images beside one mosaic file of them per codec.

Streams are written with rate-distortion optimized encoding (``compress(search=3)``: gradient steps on
each code, then greedy +-1 sweeps, at the model's own lmbda; ``--search 0`` rounds), and each point also
records the same model's plainly rounded streams under ``"rounded"``.

PSNR is computed on the 8-bit outputs, from the mean squared error over the images. For each of our
points, the best classical codec's bytes at the same PSNR are interpolated on its (PSNR, log bytes)
curve; below a codec's lowest PSNR its smallest file counts. Lossless streams (``lossless=True``) are
checked bit for bit and reported in bits per pixel. Targets (issue 5): one file per image, at most 1/5
of the best classical bytes from 20 to 25 dB and 1/3 from 25 to 32 dB; whole set, at most 1/3 from 20
to 25 dB and 1/2 from 25 to 32 dB; lossless at most 1.0 bit per pixel; decoding at least 5,000
images/s. The recipe is convolutional, so ``--train``/``--test`` arrays must hold ``(n, 28, 28)`` images.

    .venv/bin/python bench/mnist_compress.py --out runs/compress
    .venv/bin/python bench/mnist_compress.py --max-iter 1 --limit 200 --lmbda 0.05   # smoke test
    # the high end (above 30 dB): wider convolutions, trained longer (about 40 min on one thread for
    # 120 epochs; 240 epochs gain another 0.3 dB at lmbda 0.002)
    .venv/bin/python bench/mnist_compress.py --lmbda 0.004 --max-iter 120 \
        --set 'hidden_layer_sizes=[24,48,96]' --out runs/compress_wide120b
    .venv/bin/python bench/mnist_compress.py --lmbda 0.002 --max-iter 240 \
        --set 'hidden_layer_sizes=[24,48,96]' --out runs/compress_wide240
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from _common import Timer, mnist_splits, parse, parser, report
from isthmus import Autoencoder, load
from isthmus.lossless import PixelModel
from isthmus.rd import best_classical, classical_curves, psnr

RECIPE: dict[str, Any] = {
    "bottleneck": "quantized",
    "loss": "mse",
    "scaling": "minmax",
    # a small convolutional pair: better distortion per bit than a 512-256 MLP, and still decodes
    # > 10,000 images/s on one thread; 64 channels leave room for the higher-PSNR points (lmbda <= 0.01)
    "architecture": "conv",
    "n_components": 64,
    "hidden_layer_sizes": (16, 32, 64),
    "activation": "gelu",
    "straight_through": True,
    "batch_size": 128,
    "learning_rate": 2e-3,
    "lr_schedule": "cosine",
    "random_state": 0,
}
PER_IMAGE_TARGETS = ((20.0, 25.0, 1 / 5), (25.0, 32.0, 1 / 3))
WHOLE_SET_TARGETS = ((20.0, 25.0, 1 / 3), (25.0, 32.0, 1 / 2))
DECODE_TARGET = 5000.0


def _verdict(points: list[dict[str, Any]], targets: tuple[tuple[float, float, float], ...]) -> dict[str, Any]:
    checked = [p for p in points if any(lo <= p["psnr"] <= hi for lo, hi, _ in targets)]
    ok = all(p["ratio"] <= next(r for lo, hi, r in targets if lo <= p["psnr"] <= hi) for p in checked)
    return {"points_in_range": len(checked), "met": bool(checked) and ok}


def evaluate(ae: Autoencoder, x_test: np.ndarray, limit: int, curves: dict[str, Any], search: int) -> dict[str, Any]:
    """Our point of one model: per-image and whole-set bytes, PSNR, ratios, and throughput."""
    images = x_test[:limit]
    with Timer() as t_enc:
        streams = [ae.compress(images[i : i + 1], search=search) for i in range(len(images))]
    with Timer() as t_dec:
        decoded = np.concatenate([ae.decompress(s) for s in streams])
    per_image = {"bytes": float(np.mean([len(s) for s in streams])), "psnr": psnr(images, decoded)}
    name, theirs = best_classical(curves["per_image"], per_image["psnr"])
    per_image.update({"best_classical": name, "classical_bytes": theirs, "ratio": per_image["bytes"] / theirs})
    per_image.update(
        {"encode_images_per_s": len(images) / t_enc.seconds, "decode_images_per_s": len(images) / t_dec.seconds}
    )

    with Timer() as t_all_enc:
        stream = ae.compress(x_test, search=search)
    with Timer() as t_all_dec:
        back = ae.decompress(stream)
    whole = {"bytes_per_image": len(stream) / len(x_test), "psnr": psnr(x_test, back)}
    name, theirs = best_classical(curves["whole_set"], whole["psnr"])
    whole.update(
        {"best_classical": name, "classical_bytes_per_image": theirs, "ratio": whole["bytes_per_image"] / theirs}
    )
    whole.update(
        {"encode_images_per_s": len(x_test) / t_all_enc.seconds, "decode_images_per_s": len(x_test) / t_all_dec.seconds}
    )
    if search:  # the same model's streams of the plainly rounded code, for comparison
        rounded = [ae.compress(images[i : i + 1]) for i in range(len(images))]
        per_image["rounded"] = {
            "bytes": float(np.mean([len(r) for r in rounded])),
            "psnr": psnr(images, np.concatenate([ae.decompress(r) for r in rounded])),
        }
        plain = ae.compress(x_test)
        whole["rounded"] = {"bytes_per_image": len(plain) / len(x_test), "psnr": psnr(x_test, ae.decompress(plain))}
    lossless: dict[str, Any] = {}
    if ae.lossless_tables_ is not None:  # bits per pixel of exact streams, checked bit for bit
        with Timer() as t_lossless:
            exact = ae.compress(x_test, lossless=True)
            assert np.array_equal(ae.decompress(exact), x_test)
        files = [ae.compress(images[i : i + 1], lossless=True) for i in range(min(len(images), 300))]
        lossless = {
            "whole_set_bits_per_pixel": 8 * len(exact) / x_test.size,
            "per_image_bits_per_pixel": 8 * sum(map(len, files)) / images[: len(files)].size,
            "seconds": t_lossless.seconds,
        }
    return {"per_image": per_image, "whole_set": whole, "lossless": lossless}


def main() -> None:
    p = parser(__doc__.splitlines()[0], overrides=True)
    p.add_argument("--lmbda", type=float, nargs="+", default=[0.1, 0.05, 0.03, 0.008, 0.002])
    p.add_argument("--max-iter", type=int, default=40)
    p.add_argument("--limit", type=int, default=1000, help="test images compressed one file each")
    p.add_argument("--search", type=int, default=3, help="sweeps of rate-distortion optimized encoding (0: round)")
    args = parse(p)
    splits = mnist_splits(args)
    x_train, x_test = splits["x_train"], splits["x_test"]
    recipe = {**RECIPE, "max_iter": args.max_iter}
    recipe.update(args.overrides)

    with Timer() as t_classic:
        curves = {
            "per_image": classical_curves(x_test[: args.limit], mosaic=False),
            "whole_set": classical_curves(x_test, mosaic=True),
        }
    points = []
    for lmbda in args.lmbda:
        path = None if args.out is None else Path(args.out) / f"compress_lmbda{lmbda:g}.safetensors"
        with Timer() as t_fit:
            if path is not None and path.exists():
                ae = load(path)
                if ae.lossless_tables_ is not None and not isinstance(ae.lossless_tables_, PixelModel):
                    ae.fit_pixel_model(x_train)  # a file from before the pixel model: count it, as fit now does
            else:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    ae = Autoencoder(**recipe, lmbda=lmbda, verbose=0).fit(x_train)
                if path is not None:
                    ae.save(path)
        measured = evaluate(ae, x_test, args.limit, curves, args.search)
        point = {"lmbda": lmbda, "train_seconds": t_fit.seconds, **measured}
        points.append(point)
        pi, ws = point["per_image"], point["whole_set"]
        print(
            f"lmbda={lmbda:g}: one file per image {pi['bytes']:.1f} B at {pi['psnr']:.2f} dB "
            f"({pi['best_classical']} {pi['classical_bytes']:.1f} B, ratio {pi['ratio']:.3f}); "
            f"whole set {ws['bytes_per_image']:.2f} B/image at {ws['psnr']:.2f} dB "
            f"({ws['best_classical']} {ws['classical_bytes_per_image']:.1f} B, ratio {ws['ratio']:.3f}); "
            f"decode {ws['decode_images_per_s']:.0f} images/s",
            flush=True,
        )
    per_image = [{"psnr": q["per_image"]["psnr"], "ratio": q["per_image"]["ratio"]} for q in points]
    whole_set = [{"psnr": q["whole_set"]["psnr"], "ratio": q["whole_set"]["ratio"]} for q in points]
    report(
        {
            "recipe": recipe,  # json writes tuples as lists
            "search": args.search,
            "points": points,
            "classical": curves,
            "classical_seconds": t_classic.seconds,
            "targets": {
                "per_image": _verdict(per_image, PER_IMAGE_TARGETS),
                "whole_set": _verdict(whole_set, WHOLE_SET_TARGETS),
                "decode_images_per_s": min(q["whole_set"]["decode_images_per_s"] for q in points),
                "decode_met": min(q["whole_set"]["decode_images_per_s"] for q in points) >= DECODE_TARGET,
                "lossless_bits_per_pixel": min(
                    (q["lossless"]["whole_set_bits_per_pixel"] for q in points if q["lossless"]), default=None
                ),
            },
        },
        {
            "what": f"compression, all {len(x_test)} held-out digits in one file, bytes per digit "
            f"(search={args.search})",
            "figure": "; ".join(
                f"{q['whole_set']['bytes_per_image']:.1f} B at {q['whole_set']['psnr']:.1f} dB" for q in points
            ),
            "baseline": "; ".join(
                f"{q['whole_set']['best_classical']} {q['whole_set']['classical_bytes_per_image']:.1f} B "
                f"(ratio {q['whole_set']['ratio']:.3f})"
                for q in points
            ),
        },
        args,
    )


if __name__ == "__main__":
    main()
