"""Fuzzing the decoders of untrusted bytes: the model loader and the bitstream reader (issue 6, item 7).

Every mutated input must either load (decode) into something that works, or raise the library's own
error; any other exception fails the test. Mutations are byte flips, overwrites, truncations,
insertions and deletions anywhere, and structured edits of header fields that a checksum or a length
prefix would otherwise guard: the safetensors JSON header rewritten with a correct length, and
bitstream header fields rewritten with a correct CRC. The small models are built once per module;
together the tests below run 3,700 mutated inputs (the quantized ones for both kinds of pixel model) in
seconds (``bench/fuzz.py`` runs more).
"""

from __future__ import annotations

import contextlib
import json
import struct
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import isthmus
from isthmus import Autoencoder, codec
from isthmus.codec import _varint
from isthmus.errors import IsthmusError

FUZZ = settings(deadline=None, suppress_health_check=list(HealthCheck), database=None)

SMALL: dict[str, Any] = {"hidden_layer_sizes": (6,), "max_iter": 2, "batch_size": 32, "verbose": 0, "random_state": 0}


def _x() -> np.ndarray:
    """(64, 1, 4, 4) float32 images with values 0..255, seeded."""
    return np.random.default_rng(0).integers(0, 256, size=(64, 1, 4, 4)).astype(np.float32)


def _fit(**params: Any) -> Autoencoder:
    return Autoencoder(3, **{**SMALL, **params}).fit(_x())


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture(scope="module")
def plain(folder: Path) -> bytes:
    _fit().save(folder / "plain.safetensors")
    return (folder / "plain.safetensors").read_bytes()


@pytest.fixture(scope="module", params=["counts", "net"])
def quantized(folder: Path, request: pytest.FixtureRequest) -> tuple[Autoencoder, bytes, bytes]:
    """A quantized model (with counted pixel tables, or a pixel network), its file and a lossless stream of
    3 images."""
    ae = _fit(bottleneck="quantized", loss="mse", pixel_model=request.param)
    ae.save(folder / f"quantized-{request.param}.safetensors")
    stream = ae.compress(_x()[:3].astype(np.uint8), lossless=True)
    return ae, (folder / f"quantized-{request.param}.safetensors").read_bytes(), stream


# ------------------------------------------------------------------------------------------- mutations

_JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.sampled_from([0, -1, 1, 2**31, 2**32, 2**63, 10**12])
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8)
    | st.sampled_from(["F32", "F64", "I32", "U8", "BOOL", "F8_E4M3", "mlp", "conv", "quantized", "gaussian"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


# A mutation is drawn as a small recipe of numbers and applied to the bytes in the test, so that
# hypothesis never holds (or prints) the files themselves.
_BYTE_EDITS = st.lists(
    st.tuples(
        st.sampled_from(["flip", "set", "truncate", "insert", "delete"]),
        st.integers(0, 2**32),  # position, taken modulo the span
        st.integers(0, 255),  # the byte (set), the bit (flip), the length (delete)
        st.binary(min_size=1, max_size=8),  # inserted bytes
        st.booleans(),  # within the header (focus) rather than anywhere
    ),
    min_size=1,
    max_size=4,
)


def apply_byte_edits(data: bytes, edits: list[tuple[str, int, int, bytes, bool]], focus: int | None = None) -> bytes:
    out = bytearray(data)
    for kind, position, value, inserted, in_header in edits:
        span = min(focus, len(out)) if focus is not None and in_header else len(out)
        pos = position % span if span else 0
        if kind == "flip" and out:
            out[pos] ^= 1 << (value % 8)
        elif kind == "set" and out:
            out[pos] = value
        elif kind == "truncate":
            del out[pos:]
        elif kind == "insert":
            out[pos:pos] = inserted
        elif kind == "delete":
            del out[pos : pos + 1 + value % 8]
    return bytes(out)


_HEADER_EDITS = st.lists(
    st.tuples(
        st.integers(0, 2**16),  # which entry of the header: a tensor or the metadata
        st.integers(0, 2**16),  # which field of it (a metadata key, a parameter)
        st.sampled_from(["value", "inner", "drop", "dtype", "shape", "data_offsets", "drop-tensor"]),
        _JSON_VALUES,
        st.lists(st.integers(0, 2**40), max_size=4),
    ),
    min_size=1,
    max_size=3,
)
_PLAIN_STRINGS = ("format", "isthmus_version", "torch_version", "fingerprint")


def apply_header_edits(data: bytes, edits: list[tuple[int, int, str, Any, list[int]]]) -> bytes:
    """The safetensors header with tensor fields or metadata values replaced; the length prefix is kept
    right, so the file gets past the framing and into isthmus's own checks."""
    (n,) = struct.unpack("<Q", data[:8])
    header, body = json.loads(data[8 : 8 + n]), data[8 + n :]
    for entry, field, kind, value, shape in edits:
        key = sorted(header)[entry % len(header)]
        if key == "__metadata__":
            meta = header[key]
            if not meta:
                continue
            name = sorted(meta)[field % len(meta)]
            stored = meta[name] if name in _PLAIN_STRINGS else json.loads(meta[name])
            if kind == "inner" and isinstance(stored, dict) and stored:
                stored[sorted(stored)[field % len(stored)]] = value  # one parameter of params, resolved, training
                meta[name] = json.dumps(stored)
            elif kind == "drop":
                meta.pop(name)
            else:
                meta[name] = json.dumps(value)
        elif kind == "drop-tensor":
            header.pop(key)
        elif kind == "shape" and isinstance(header[key], dict):
            header[key]["shape"] = shape
        elif kind in ("dtype", "data_offsets") and isinstance(header[key], dict):
            header[key][kind] = value
        else:
            header[key] = value
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + body


#: A model file's mutation: byte edits (``True``) or header edits (``False``), each drawn only when it is used
#: (drawing both and throwing one away cost as much as loading the file)
_MODEL_EDITS = st.one_of(st.tuples(st.just(True), _BYTE_EDITS), st.tuples(st.just(False), _HEADER_EDITS))


def mutate_model(data: bytes, edits: tuple[bool, Any]) -> bytes:
    raw, recipe = edits
    (n,) = struct.unpack("<Q", data[:8])
    return apply_byte_edits(data, recipe, focus=8 + n) if raw else apply_header_edits(data, recipe)


def _load_or_refuse(path: Path, data: bytes) -> Autoencoder | None:
    path.write_bytes(data)
    try:
        return isthmus.load(path)
    except IsthmusError:
        return None


# ------------------------------------------------------------------------------------------ model files


@settings(FUZZ, max_examples=700)
@given(edits=_MODEL_EDITS)
def test_mutated_model_files_load_or_raise_the_library_error(edits: Any, plain: bytes, folder: Path) -> None:
    loaded = _load_or_refuse(folder / "fuzzed.safetensors", mutate_model(plain, edits))
    if loaded is not None:
        with contextlib.suppress(IsthmusError), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # changed weights may overflow: not a crash
            loaded.transform(_x()[:2])  # whatever loads is a working model, or refuses with our error


@settings(FUZZ, max_examples=300)
@given(edits=_MODEL_EDITS)
def test_mutated_quantized_model_files_load_or_raise_the_library_error(
    edits: Any, quantized: tuple[Autoencoder, bytes, bytes], folder: Path
) -> None:
    _, model_bytes, stream = quantized
    mutated = mutate_model(model_bytes, edits)
    loaded = _load_or_refuse(folder / "fuzzed-q.safetensors", mutated)
    if loaded is not None:
        with contextlib.suppress(IsthmusError), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # changed weights may overflow: not a crash
            loaded.decompress(stream)  # decodes with the stored tables, or refuses with our error


# ------------------------------------------------------------------------------------------- bitstreams


_STREAM_EDITS = st.tuples(
    st.sampled_from([1, 1, 1, 0, 2, 3, 2**40]),  # format version
    st.tuples(st.sampled_from(["keep", "xor", "set"]), st.sampled_from([0x40, 0x80, 0x10, 0x30]) | st.integers(0, 255)),
    st.one_of(st.sampled_from([1, 3, codec.MAX_SAMPLES, 2**40]), st.integers(0, 2**21)),  # samples (form 1)
    st.lists(st.integers(0, 2**34), max_size=9),  # explicit shape (form 3)
    st.one_of(st.none(), _BYTE_EDITS),  # payload edits
    st.sampled_from([0, 0, 1, -1, 2**40]),  # payload length, relative to the payload's
)


def apply_stream_edits(stream: bytes, edits: tuple[int, tuple[str, int], int, list[int], Any, int]) -> bytes:
    """A stream rebuilt from changed header fields (the layout byte kept, changed by xor, or set) and payload,
    with a correct checksum: what a forger, or another writer, could produce."""
    version, (how, byte), samples, shape, payload_edits, length_change = edits
    layout = {"keep": stream[3], "xor": stream[3] ^ byte, "set": byte}[how]
    form = (layout >> 4) & 3
    fields = {0: [], 1: [samples], 2: [], 3: [len(shape), *shape]}[form]
    payload = codec.read_stream(stream, sample_shape=(1, 4, 4))[1]
    payload = payload if payload_edits is None else apply_byte_edits(payload, payload_edits)
    length = len(payload) + length_change if length_change != 2**40 else length_change
    body = codec.MAGIC + _varint(version) + bytes([layout]) + b"".join(map(_varint, fields))
    body += _varint(max(length, 0)) + payload
    return body + codec.crc16(body).to_bytes(2, "little")


@settings(FUZZ, max_examples=1200)
@given(edits=st.one_of(st.tuples(st.just(True), _BYTE_EDITS), st.tuples(st.just(False), _STREAM_EDITS)))
def test_mutated_streams_decode_or_raise_the_library_error(
    edits: Any, quantized: tuple[Autoencoder, bytes, bytes]
) -> None:
    ae, _, stream = quantized
    raw, recipe = edits
    mutated = apply_byte_edits(stream, recipe) if raw else apply_stream_edits(stream, recipe)
    try:
        out = ae.decompress(mutated)
    except IsthmusError:
        return
    assert out.size % 16 == 0  # a stream that decodes holds whole samples of this model's shape


def test_unchanged_inputs_still_decode(quantized: tuple[Autoencoder, bytes, bytes], folder: Path) -> None:
    """The mutations start from inputs that work: the reference stream decodes back to the 8-bit images."""
    ae, model_bytes, stream = quantized
    np.testing.assert_array_equal(ae.decompress(stream), _x()[:3].astype(np.uint8))
    loaded = _load_or_refuse(folder / "unchanged.safetensors", model_bytes)
    assert loaded is not None
    np.testing.assert_array_equal(loaded.decompress(stream), _x()[:3].astype(np.uint8))
