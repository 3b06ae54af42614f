"""Fuzz the model loader and the bitstream reader: N mutated inputs, each must load or raise isthmus's error.

Three targets, built once from scikit-learn's digits (no MNIST needed): a plain model file, a quantized
model file (entropy tables and a fingerprint), and a lossless bitstream of that quantized model. Each
round picks a target and a mutation:

* ``flip``, ``set``, ``truncate``, ``insert``, ``delete``: raw byte edits anywhere (positions favour the
  header half of the time);
* ``header``: for model files, a field of the safetensors JSON header rewritten (a tensor's dtype, shape
  or offsets, a metadata value, one parameter) with a correct length prefix; for bitstreams, header
  fields rewritten (version, layout, shape, payload length, payload) with a correct checksum.

A model that loads must then work: ``transform`` (plain) or ``decompress`` of the reference stream
(quantized); a stream that decodes must give whole samples. Any exception that is not an
``IsthmusError`` is a failure; failing inputs are kept under ``--out`` when given. The last line is one
JSON object: mutations, mutations per second, outcomes per target, failures.

    .venv/bin/python bench/fuzz.py --n 100000 --seconds 600
    .venv/bin/python bench/fuzz.py --seconds 300 --pixel-model net   # lossless streams of a pixel network
"""

from __future__ import annotations

import collections
import json
import random
import struct
import tempfile
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning

from _common import parse, parser, report
from isthmus import Autoencoder, codec, load
from isthmus.codec import _varint
from isthmus.errors import IsthmusError

RAW = ("flip", "set", "truncate", "insert", "delete")
INTERESTING_INTS = (0, 1, -1, 2, 255, 2**31, 2**32, 2**53, 2**63, 2**64, 10**12, -(2**63))
INTERESTING_VALUES: tuple[Any, ...] = (
    *INTERESTING_INTS,
    None,
    True,
    False,
    1.5,
    float("inf"),
    -1e308,
    "",
    "F32",
    "F64",
    "I32",
    "U8",
    "BOOL",
    "F8_E4M3",
    "mlp",
    "conv",
    "quantized",
    "gaussian",
    [],
    [1],
    [2**40, 2**40],
    {},
    {"a": 1},
    "[" * 50,
)


def random_value(rng: random.Random) -> Any:
    """A JSON value, often one of the interesting ones, sometimes a random int, string or list."""
    roll = rng.random()
    if roll < 0.6:
        return rng.choice(INTERESTING_VALUES)
    if roll < 0.8:
        return rng.randint(-(2**40), 2**40)
    if roll < 0.9:
        return "".join(rng.choice('abc01[]{}",: ') for _ in range(rng.randint(0, 12)))
    return [rng.choice(INTERESTING_INTS) for _ in range(rng.randint(0, 4))]


def raw_edit(data: bytes, kind: str, rng: random.Random, focus: int) -> bytes:
    """One raw byte edit; half the time within the first ``focus`` bytes (the header)."""
    out = bytearray(data)
    span = min(focus, len(out)) if rng.random() < 0.5 else len(out)
    pos = rng.randrange(span) if span else 0
    if kind == "flip" and out:
        out[pos] ^= 1 << rng.randrange(8)
    elif kind == "set" and out:
        out[pos] = rng.randrange(256)
    elif kind == "truncate":
        del out[pos:]
    elif kind == "insert":
        out[pos:pos] = rng.randbytes(rng.randint(1, 16))
    elif kind == "delete":
        del out[pos : pos + rng.randint(1, 16)]
    return bytes(out)


def model_header_edit(data: bytes, rng: random.Random) -> bytes:
    """A safetensors header field (tensor entry or metadata value, or one parameter) replaced or dropped."""
    (n,) = struct.unpack("<Q", data[:8])
    header, body = json.loads(data[8 : 8 + n]), data[8 + n :]
    for _ in range(rng.randint(1, 3)):
        key = rng.choice(sorted(header))
        if key == "__metadata__":
            meta = header[key]
            if not meta:
                continue
            name = rng.choice(sorted(meta))
            try:
                stored = json.loads(meta[name])
            except ValueError:
                stored = meta[name]
            roll = rng.random()
            if isinstance(stored, dict) and stored and roll < 0.6:
                stored[rng.choice(sorted(stored))] = random_value(rng)
                meta[name] = json.dumps(stored)
            elif roll < 0.8:
                meta[name] = json.dumps(random_value(rng))
            else:
                meta.pop(name)
        elif isinstance(header[key], dict) and rng.random() < 0.9:
            field = rng.choice(["dtype", "shape", "data_offsets"])
            value = random_value(rng)
            if field == "shape" and rng.random() < 0.5:
                value = [rng.choice((0, 1, 2, 3, 8, 2**20, 2**40)) for _ in range(rng.randint(0, 4))]
            header[key][field] = value
        else:
            header.pop(key)
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + body


def stream_header_edit(stream: bytes, sample_shape: tuple[int, ...], rng: random.Random) -> bytes:
    """A stream rebuilt from rewritten header fields and payload, with a correct checksum."""
    version = rng.choice((1, 1, 1, 0, 2, 2**40))
    layout = stream[3]
    roll = rng.random()
    if roll < 0.3:
        layout ^= rng.choice((0x10, 0x20, 0x30, 0x40, 0x80, 0x01, 0x0F))
    elif roll < 0.5:
        layout = rng.randrange(256)
    form = (layout >> 4) & 3
    samples = rng.choice((0, 1, 3, codec.MAX_SAMPLES, codec.MAX_SAMPLES + 1, 2**40, rng.randrange(2**21)))
    shape = [rng.choice((0, 1, 3, 8, 64, 2**20, 2**34)) for _ in range(rng.randint(0, 9))]
    fields = {0: [], 1: [samples], 2: [], 3: [len(shape), *shape]}[form]
    payload = codec.read_stream(stream, sample_shape=sample_shape)[1]
    if rng.random() < 0.5:
        payload = raw_edit(payload, rng.choice(RAW), rng, len(payload))
    length = len(payload) + rng.choice((0, 0, 0, 1, -1, 2**40))
    body = codec.MAGIC + _varint(version) + bytes([layout]) + b"".join(map(_varint, fields))
    body += _varint(max(length, 0)) + payload
    return body + codec.crc16(body).to_bytes(2, "little")


def build_targets(folder: Path, pixel_model: str = "counts") -> dict[str, Any]:
    """The two model files, the quantized model (with ``pixel_model``) and its lossless stream of 3 digits,
    and probe data."""
    x = load_digits().images[:300, None].astype(np.float32)  # (300, 1, 8, 8) in 0..16
    small = {"hidden_layer_sizes": (16,), "max_iter": 3, "verbose": 0, "random_state": 0, "device": "cpu"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        plain = Autoencoder(4, **small).fit(x)
        quantized = Autoencoder(4, bottleneck="quantized", loss="mse", pixel_model=pixel_model, **small).fit(x)
    plain.save(folder / "plain.safetensors")
    quantized.save(folder / "quantized.safetensors")
    return {
        "x": x[:4],
        "plain": (folder / "plain.safetensors").read_bytes(),
        "quantized": (folder / "quantized.safetensors").read_bytes(),
        "model": quantized,
        "stream": quantized.compress(x[:3].astype(np.uint8), lossless=True),
    }


def run_one(target: str, data: bytes, targets: dict[str, Any], path: Path) -> str:
    """The outcome of one mutated input: 'loaded'/'decoded', or the isthmus error's class name."""
    try:
        if target == "stream":
            out = targets["model"].decompress(data)
            if out.size % 64:
                raise AssertionError(f"decoded {out.shape}, not whole samples of (1, 8, 8)")
            return "decoded"
        path.write_bytes(data)
        ae = load(path)
        if target == "plain":
            ae.transform(targets["x"])
        else:
            ae.decompress(targets["stream"])
        return "loaded"
    except IsthmusError as exc:
        return type(exc).__name__


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=100_000, help="mutations to run (default 100000)")
    p.add_argument("--seconds", type=float, default=None, help="stop after this many seconds")
    p.add_argument("--seed", type=int, default=0, help="seed of the mutations")
    p.add_argument("--pixel-model", default="counts", choices=("counts", "net"), help="the quantized model's")
    args = parse(p)
    if args.threads is None:
        torch.set_num_threads(1)  # tiny models: one thread is fastest
    rng = random.Random(args.seed)
    outcomes: dict[str, collections.Counter[str]] = {t: collections.Counter() for t in ("plain", "quantized", "stream")}
    failures: list[dict[str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        targets = build_targets(folder, args.pixel_model)
        sample_shape = tuple(targets["model"].input_shape_)
        start = time.perf_counter()
        done = 0
        while done < args.n and (args.seconds is None or time.perf_counter() - start < args.seconds):
            target = rng.choice(("plain", "quantized", "stream"))
            original: bytes = targets["stream"] if target == "stream" else targets[target]
            kind = rng.choice((*RAW, "header", "header"))
            if kind == "header":
                mutated = (
                    stream_header_edit(original, sample_shape, rng)
                    if target == "stream"
                    else model_header_edit(original, rng)
                )
            else:
                focus = 8 + struct.unpack("<Q", original[:8])[0] if target != "stream" else 8
                mutated = original
                for _ in range(rng.randint(1, 3)):
                    mutated = raw_edit(mutated, kind, rng, focus)
            try:
                outcome = run_one(target, mutated, targets, folder / "fuzzed.safetensors")
            except Exception as exc:  # the point of the bench: anything that is not an isthmus error
                outcome = f"FAILURE {type(exc).__name__}"
                failures.append(
                    {
                        "target": target,
                        "mutation": kind,
                        "error": repr(exc)[:300],
                        "where": traceback.format_exc().strip().splitlines()[-3][:200],
                    }
                )
                if args.out is not None:
                    args.out.mkdir(parents=True, exist_ok=True)
                    (args.out / f"failure-{len(failures):04d}-{target}.bin").write_bytes(mutated)
            outcomes[target][f"{kind}: {outcome}"] += 1
            done += 1
        seconds = time.perf_counter() - start
    summary = {t: dict(sorted(c.items())) for t, c in outcomes.items()}
    for target, counter in outcomes.items():
        accepted = sum(v for k, v in counter.items() if k.endswith(("loaded", "decoded")))
        print(
            f"{target:10s} {sum(counter.values()):7d} inputs, {accepted:6d} accepted; most common outcomes: "
            + ", ".join(f"{k} ({v})" for k, v in counter.most_common(4))
        )
    for failure in failures[:10]:
        print("FAILURE", json.dumps(failure))
    report(
        {
            "mutations": done,
            "seconds": round(seconds, 1),
            "mutations_per_second": round(done / seconds, 1),
            "failures": len(failures),
            "outcomes": summary,
        },
        {
            "what": "fuzzing the model loader and the bitstream reader",
            "figure": f"{done:,} mutated files in {seconds / 60:.0f} min, {len(failures)} failures",
            "baseline": "none",
        },
        args,
    )
    if failures:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
