"""Lossless compression of MNIST: the pixel network and the counted contexts against PNG, WebP, JPEG XL, brotli.

Trains one ``bottleneck="quantized"`` model (the recipe of bench/mnist_compress.py at ``--lmbda``) on
the first 50,000 rows of $ISTHMUS_DATA/mnist-train.npz, or loads ``--model``, gives it each pixel
model in turn (``pixel_model="counts"``: tables counted per causal context; ``"net"``: the integer
pixel network, trained on the same rows) and compresses the last 10,000 rows exactly, counting real
bytes and checking every stream bit for bit:

* the whole set in one stream, against one lossless mosaic file of the 10,000 digits per codec (WebP,
  JPEG XL, PNG), and brotli (quality 11) and xz (preset 9e) over the raw array;
* one stream per image (the first ``--limit``), against each codec's own file for the same image.

Ratios are our bytes over the best classical bytes in the same mode, measured in the same run. Target
(issue 5): at most 1.0 bit per pixel on the whole set. Encode and decode speed in images per second.
With ``--out``, the models are kept there, and those already there are reused (delete them to retrain).

    .venv/bin/python bench/mnist_lossless.py --out runs/lossless
    .venv/bin/python bench/mnist_lossless.py --model runs/compress_conv40/compress_lmbda0.1.safetensors
    .venv/bin/python bench/mnist_lossless.py --max-iter 1 --limit 20 --steps 100 --test-rows 200  # smoke test
    # the README's best figure: a 512-512-512 network trained on a GPU (--device cuda), coded on the CPU
    python bench/mnist_lossless.py --out runs/lossless_gpu512_bench --hidden 512,512,512 --steps 60000 \\
        --net-batch 8192 --max-pixels 40000000 --device cuda
"""

from __future__ import annotations

import lzma
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from _common import Timer, mnist_splits, parse, parser, report
from isthmus import Autoencoder, load
from isthmus.rd import CODECS, Codec, mosaic, untile
from mnist_compress import RECIPE

KINDS = ("counts", "net")


def _ours(ae: Autoencoder, x: np.ndarray, limit: int) -> dict[str, Any]:
    """Whole-set and per-image lossless streams of ``ae``: bits per pixel and speed, checked bit for bit."""
    with Timer() as t_encode:
        whole = ae.compress(x, lossless=True)
    with Timer() as t_decode:
        back = ae.decompress(whole)
    if not np.array_equal(back, x):
        raise SystemExit("error: a lossless stream did not decode to its input")
    files = [ae.compress(x[i : i + 1], lossless=True) for i in range(min(limit, len(x)))]
    if not all(np.array_equal(ae.decompress(f), x[i : i + 1]) for i, f in enumerate(files)):
        raise SystemExit("error: a one-image lossless stream did not decode to its input")
    return {
        "whole_set_bits_per_pixel": 8 * len(whole) / x.size,
        "per_image_bits_per_pixel": 8 * sum(map(len, files)) / x[: len(files)].size,
        "encode_images_per_s": len(x) / t_encode.seconds,
        "decode_images_per_s": len(x) / t_decode.seconds,
    }


def _classical(images: np.ndarray, limit: int) -> dict[str, dict[str, float]]:
    """Bits per pixel of each classical lossless coder: ``{"whole_set": {name: bpp}, "per_image": {...}}``."""
    out: dict[str, dict[str, float]] = {"whole_set": {}, "per_image": {}}
    for name, make in CODECS.items():
        codec = make()
        if not isinstance(codec, Codec) or "lossless" not in codec.settings:
            continue
        tiles = mosaic(images)
        data = codec.encode(tiles, "lossless")
        if not np.array_equal(untile(codec.decode(data, True), len(images), images.shape[1:]), images):
            raise SystemExit(f"error: {name} lossless did not decode to its input")
        out["whole_set"][name] = 8 * len(data) / images.size
        files = [codec.encode(image, "lossless") for image in images[:limit]]
        out["per_image"][name] = 8 * sum(map(len, files)) / images[:limit].size
    raw = np.ascontiguousarray(images).tobytes()
    out["whole_set"]["xz"] = 8 * len(lzma.compress(raw, preset=9 | lzma.PRESET_EXTREME)) / images.size
    try:
        import imagecodecs

        out["whole_set"]["brotli"] = 8 * len(imagecodecs.brotli_encode(raw, level=11)) / images.size
    except (ImportError, AttributeError):
        pass
    return out


def _device(name: str) -> str:
    import torch

    return ("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name


def main() -> None:
    p = parser(__doc__.splitlines()[0], overrides=True)
    p.add_argument(
        "--lmbda",
        type=float,
        default=0.4,
        help="the model's rate weight (a low-rate code suits lossless: 0.4 beat 0.1 and 1.5)",
    )
    p.add_argument("--max-iter", type=int, default=40)
    p.add_argument("--model", type=Path, default=None, help="a fitted quantized model to reuse instead of training")
    p.add_argument("--limit", type=int, default=300, help="test images compressed one file each")
    p.add_argument("--test-rows", type=int, default=None, help="use only the first rows of the test set")
    p.add_argument("--hidden", default="128,128", help="the pixel network's hidden widths, comma-separated")
    p.add_argument("--steps", type=int, default=None, help="the pixel network's training batches (default: its own)")
    p.add_argument("--max-pixels", type=int, default=8_000_000, help="pixels sampled to train the pixel network")
    p.add_argument("--net-batch", type=int, default=4096, help="the pixel network's batch size")
    args = parse(p)
    splits = mnist_splits(args)
    x_train, x_test = splits["x_train"].astype(np.uint8), splits["x_test"].astype(np.uint8)
    x_test = x_test[: args.test_rows]
    out = None if args.out is None else Path(args.out)
    with Timer() as t_fit:
        if args.model is not None:
            base = args.model
        else:
            base = None if out is None else out / f"quantized_lmbda{args.lmbda:g}.safetensors"
            if base is None or not base.exists():
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    recipe = {**RECIPE, "max_iter": args.max_iter, "lmbda": args.lmbda, "device": args.device}
                    recipe.update(args.overrides)
                    ae = Autoencoder(**recipe, verbose=0).fit(x_train)
                if base is not None:
                    ae.save(base)
    results: dict[str, Any] = {"model_seconds": t_fit.seconds}
    options: dict[str, Any] = {
        "hidden": tuple(int(w) for w in args.hidden.split(",") if w.strip()),
        "max_pixels": args.max_pixels,
        "batch_size": args.net_batch,
        "device": _device(args.device),  # the pixel network trains here (a loaded model sits on the CPU)
    }
    if args.steps is not None:
        options["steps"] = args.steps
    for kind in KINDS:
        kept = None if out is None else out / f"lossless_{kind}.safetensors"
        with Timer() as t_pixels:
            if kept is not None and kept.exists():
                ae = load(kept)
            else:
                ae = load(base) if base is not None else ae  # the same weights for each pixel model
                ae.set_params(pixel_model=kind)
                ae.fit_pixel_model(
                    x_train.reshape(len(x_train), *ae.input_shape_), **(options if kind == "net" else {})
                )
                if kept is not None:
                    ae.save(kept)
        ours = _ours(ae, x_test.reshape(len(x_test), *ae.input_shape_), args.limit)
        results[kind] = {"pixel_model_seconds": t_pixels.seconds, **ours}
        print(
            f"{kind}: whole set {ours['whole_set_bits_per_pixel']:.4f} bits per pixel, one file per image "
            f"{ours['per_image_bits_per_pixel']:.4f}; built in {t_pixels.seconds:.0f} s; encode "
            f"{ours['encode_images_per_s']:.0f} images/s, decode {ours['decode_images_per_s']:.0f} images/s",
            flush=True,
        )
    classical = _classical(x_test.reshape(len(x_test), 28, 28), args.limit)
    for mode, coders in classical.items():
        best = min(coders, key=coders.__getitem__)
        print(f"{mode}: best classical {best} {coders[best]:.4f} bits per pixel; all: {coders}", flush=True)
        for kind in KINDS:
            results[kind][f"{mode}_ratio"] = results[kind][f"{mode}_bits_per_pixel"] / coders[best]
        results[f"{mode}_best_classical"] = {"codec": best, "bits_per_pixel": coders[best]}
    report(
        {
            "lmbda": args.lmbda,
            "model": str(base) if base is not None else None,
            "net_options": options,
            **results,
            "classical": classical,
            "target_bits_per_pixel": 1.0,
            "target_met": min(results[k]["whole_set_bits_per_pixel"] for k in KINDS) <= 1.0,
        },
        {
            "what": f"lossless, {len(x_test)} held-out digits, bits per pixel (whole set; one file per image)",
            "figure": "; ".join(
                f"{kind} {results[kind]['whole_set_bits_per_pixel']:.3f}, "
                f"{results[kind]['per_image_bits_per_pixel']:.3f}"
                for kind in KINDS
            ),
            "baseline": "; ".join(
                f"{mode} {results[f'{mode}_best_classical']['codec']} "
                f"{results[f'{mode}_best_classical']['bits_per_pixel']:.3f}"
                for mode in classical
            ),
        },
        args,
    )


if __name__ == "__main__":
    main()
