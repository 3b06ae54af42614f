"""Bad input everywhere, untrusted model files and resource limits (issue 6, items 6-8).

One table drives every kind of bad input through real commands, in process: each must end in exit
status 1 and one ``error: ...`` line naming the problem, with no traceback and no output file. Then:
atomic writes under a failure midway, a planted pickle payload, crafted model files, and inputs whose
headers claim sizes that would exhaust memory, each refused fast and without a big allocation.
"""

from __future__ import annotations

import errno
import gzip
import io
import json
import pickle
import struct
import time
import tracemalloc
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

import isthmus
from isthmus import codec
from isthmus.cli import main
from isthmus.codec import _varint
from isthmus.data import limits, read_data, read_labels
from isthmus.data.idx import encode_idx
from isthmus.errors import ConfigError, DataError, ModelFileError

TINY = [f"--set={s}" for s in ("max_iter=2", "hidden_layer_sizes=[8]", "n_components=2", "verbose=0", "random_state=0")]


def run_cli(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str]:
    """Run the CLI in process; return its status and stderr."""
    capsys.readouterr()
    status = main([str(a) for a in args])
    return status, capsys.readouterr().err


def one_error(capsys: pytest.CaptureFixture[str], *args: str | Path) -> str:
    """Run the CLI and require exit status 1 with exactly one ``error: ...`` line and no traceback."""
    status, err = run_cli(capsys, *args)
    assert status == 1, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model of the 8x8 digits (input shape (1, 8, 8), 64 features) trained by the CLI."""
    path = tmp_path_factory.mktemp("model") / "model.safetensors"
    assert main(["train", "digits[:100]", "-o", str(path), *TINY]) == 0
    return path


# ---------------------------------------------------------------------------------------------- file makers


def csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def png(width: int, height: int) -> bytes:
    """A PNG whose header says ``width`` x ``height`` (8-bit gray); its pixel data are a few bytes only."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    pixels = chunk(b"IDAT", zlib.compress(b"\0" * 16))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + pixels + chunk(b"IEND", b"")


def npy_bytes(shape: tuple[int, ...], dtype: str = "<f4", data: bytes = b"\0" * 64) -> bytes:
    """A .npy header claiming ``shape`` followed by ``data`` (whatever its length)."""
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, {"descr": dtype, "fortran_order": False, "shape": shape})
    return out.getvalue() + data


def npz_with(path: Path, member: bytes, name: str = "x.npy") -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(name, member)
    return path


def parquet_bytes(rows: int = 100) -> bytes:
    out = io.BytesIO()
    pq.write_table(pa.table({"a": np.arange(rows, dtype=np.float64), "b": np.ones(rows)}), out)
    return out.getvalue()


def forge_parquet_rows(data: bytes, rows: int, claimed: int) -> bytes:
    """A Parquet file whose footer says ``claimed`` rows wherever it said ``rows`` (thrift varints)."""
    varint = _varint  # thrift's compact protocol writes unsigned LEB128 varints, as the bitstream does

    (length,) = struct.unpack("<I", data[-8:-4])
    footer = data[-8 - length : -8].replace(varint(rows << 1), varint(claimed << 1))  # zigzag i64
    return data[: -8 - length] + footer + struct.pack("<I", len(footer)) + b"PAR1"


def image_folder(path: Path, images: dict[str, Image.Image]) -> Path:
    path.mkdir()
    for name, image in images.items():
        image.save(path / name)
    return path


# ------------------------------------------------------------------------------------ the bad-input table

# Each case builds its files in tmp_path and returns (arguments after the command's model, text the
# error must contain). ``{model}`` in the arguments is the trained model; ``{out}`` an output path.
Case = Callable[[Path], tuple[list[Any], list[str]]]


def _train(data: Path | str) -> list[Any]:
    return ["train", data, "-o", "{out}.safetensors", *TINY]


def _encode(data: Path | str) -> list[Any]:
    return ["encode", "{model}", data, "-o", "{out}.npy"]


CASES: dict[str, Case] = {
    # empty files, a header without rows
    "empty-csv": lambda d: (_train(csv(d / "x.csv", "")), ["x.csv", "empty"]),
    "empty-npy": lambda d: (_encode(csv(d / "x.npy", "")), ["x.npy", "empty"]),
    "empty-npz": lambda d: (_train(csv(d / "x.npz", "")), ["x.npz", "empty"]),
    "empty-parquet": lambda d: (_train(csv(d / "x.parquet", "")), ["x.parquet", "empty"]),
    "empty-idx": lambda d: (_train(csv(d / "x-idx3-ubyte", "")), ["empty"]),
    "csv-header-only": lambda d: (_train(csv(d / "x.csv", "a,b,c\n")), ["x.csv", "no rows"]),
    "parquet-no-rows": lambda d: (_train(_parquet(d / "x.parquet", 0)), ["x.parquet", "no rows"]),
    "npy-no-rows": lambda d: (_train(_npy(d / "x.npy", np.zeros((0, 3)))), ["x.npy", "no rows"]),
    # ragged rows, text, NaN and inf
    "csv-ragged": lambda d: (_train(csv(d / "x.csv", "a,b,c\n1,2,3\n4,5\n")), ["x.csv", "Expected 3 columns"]),
    # missing cells are allowed (issue 16), infinity and rows with no cell at all are not
    "csv-inf": lambda d: (_train(csv(d / "x.csv", "a,b,c\n1,2,3\n3,inf,4\n5,6,7\n")), ["'b'", "infinite", "row 1"]),
    "csv-empty-row": lambda d: (_train(csv(d / "x.csv", "a,b,c\n1,2,3\n,,\n4,5,6\n")), ["every cell missing", "1"]),
    "npy-inf": lambda d: (_train(_npy(d / "x.npy", np.array([[1.0, np.inf], [0, 0]]))), ["NaN or infinite", "rows 0"]),
    "parquet-empty-column": lambda d: (_train(_parquet_empty(d / "x.parquet")), ["'a'", "no value"]),
    "encode-nan": lambda d: (_encode(_npy(d / "x.npy", np.full((2, 64), np.nan))), ["every cell missing", "0, 1"]),
    # the model and the data disagree
    "feature-count": lambda d: (_encode(csv(d / "x.csv", "a,b,c\n1,2,3\n")), ["3 features", "64"]),
    "image-channels": lambda d: (_encode(image_folder(d / "rgb", {"a.png": Image.new("RGB", (8, 8))})), ["192"]),
    # image folders
    "images-mixed-sizes": lambda d: (
        _train(image_folder(d / "im", {"a.png": Image.new("L", (8, 8)), "b.png": Image.new("L", (9, 8))})),
        ["differ in size", "a.png is 8x8", "b.png is 9x8", "--image-size"],
    ),
    "images-mixed-depths": lambda d: (
        _train(image_folder(d / "im", {"a.png": Image.new("L", (8, 8)), "b.png": Image.new("I;16", (8, 8))})),
        ["differ in mode", "I;16"],
    ),
    "images-none": lambda d: (_train(_mkdir(d / "im")), ["no images"]),
    "images-none-but-text": lambda d: (_train(_with_file(_mkdir(d / "im"), "notes.txt")), ["no images"]),
    "image-corrupt": lambda d: (_train(_with_file(_mkdir(d / "im"), "a.png", b"not a png")), ["cannot read image"]),
    "image-truncated": lambda d: (_train(_truncated_png(d / "im")), ["cannot read image", "a.png"]),
    "image-bomb": lambda d: (_train(_with_file(_mkdir(d / "im"), "a.png", png(100_000, 100_000))), ["10,000,000,000"]),
    # truncated or mislabeled files
    "npy-truncated": lambda d: (_train(_bytes(d / "x.npy", npy_bytes((100, 3)))), ["truncated", "(100, 3)"]),
    "npy-is-csv": lambda d: (_train(csv(d / "x.npy", "a,b\n1,2\n")), ["x.npy", "not a readable .npy"]),
    "npz-is-csv": lambda d: (_train(csv(d / "x.npz", "a,b\n1,2\n")), ["x.npz", "not a .npz file", "text"]),
    "npz-truncated": lambda d: (_train(_bytes(d / "x.npz", _npz_bytes()[:-30])), ["x.npz", "truncated"]),
    "npz-member-truncated": lambda d: (_train(npz_with(d / "x.npz", npy_bytes((100, 3)))), ["'x'", "truncated"]),
    "npz-object-array": lambda d: (_train(npz_with(d / "x.npz", npy_bytes((2,), "|O"))), ["Python objects"]),
    "npz-no-arrays": lambda d: (_train(npz_with(d / "x.npz", b"hello", "readme.txt")), ["no arrays"]),
    "idx-bad-magic": lambda d: (_train(_bytes(d / "x-idx3-ubyte", b"\x00\x00\x99\x03" + bytes(12))), ["not an IDX"]),
    "idx-truncated": lambda d: (_train(_bytes(d / "x-idx3-ubyte", _idx()[:-5])), ["truncated", "(4, 5, 6)"]),
    "idx-extra-bytes": lambda d: (_train(_bytes(d / "x-idx3-ubyte", _idx() + b"\0")), ["1 bytes after"]),
    "idx-gz-truncated": lambda d: (_train(_bytes(d / "x-idx3-ubyte.gz", gzip.compress(_idx())[:-9])), ["gzip"]),
    "idx-gz-not-gzip": lambda d: (_train(_bytes(d / "x-idx3-ubyte.gz", _idx())), ["gzip"]),
    "parquet-truncated": lambda d: (_train(_bytes(d / "x.parquet", parquet_bytes()[:-20])), ["x.parquet", "Parquet"]),
    "parquet-is-csv": lambda d: (_train(csv(d / "x.parquet", "a,b\n1,2\n")), ["x.parquet", "Parquet"]),
    "csv-is-binary": lambda d: (_train(_bytes(d / "x.csv", npy_bytes((4,), data=bytes(range(256))))), ["x.csv"]),
    "labels-ragged": lambda d: (
        ["evaluate", "{model}", "digits[:10]", "--labels", csv(d / "y.csv", "y\n1\n2,3\n")],
        ["2 columns"],
    ),
    "labels-count": lambda d: (
        ["evaluate", "{model}", "digits[:10]", "--labels", csv(d / "y.txt", "1\n0\n")],
        ["2 labels", "10"],
    ),
    # outputs
    "output-under-a-file": lambda d: (
        ["encode", "{model}", "digits[:4]", "-o", _with_file(d, "f") / "f" / "codes.npy"],
        ["is a file, not a folder"],
    ),
    "train-output-under-a-file": lambda d: (
        ["train", "digits[:50]", "-o", _with_file(d, "f") / "f" / "m.safetensors", *TINY],
        ["is a file, not a folder"],
    ),
    "output-is-a-folder": lambda d: (
        ["encode", "{model}", "digits[:4]", "-o", _mkdir(d / "codes.npy"), "--overwrite"],
        ["codes.npy", "is a folder"],
    ),
    "output-exists": lambda d: (
        ["encode", "{model}", "digits[:4]", "-o", _with_file(d, "codes.npy") / "codes.npy"],
        ["already exists", "--overwrite", "codes.npy"],
    ),
    "train-output-exists": lambda d: (
        ["train", "digits[:50]", "-o", _with_file(d, "m.safetensors") / "m.safetensors", *TINY],
        ["already exists", "--overwrite"],
    ),
    "output-unknown-format": lambda d: (["encode", "{model}", "digits[:4]", "-o", d / "codes.txt"], [".txt"]),
    # model files
    "model-is-csv": lambda d: (
        ["encode", csv(d / "m.safetensors", "a,b\n1,2\n"), "digits[:4]", "-o", "{out}.npy"],
        ["m.safetensors", "not a readable safetensors"],
    ),
    "model-truncated": lambda d: (["info", "{truncated_model}"], ["not a readable safetensors"]),
}


def _mkdir(path: Path) -> Path:
    path.mkdir()
    return path


def _with_file(folder: Path, name: str, data: bytes = b"x") -> Path:
    (folder / name).write_bytes(data)
    return folder


def _bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _npy(path: Path, array: np.ndarray) -> Path:
    np.save(path, array)
    return path


def _npz_bytes() -> bytes:
    out = io.BytesIO()
    np.savez(out, x=np.arange(60.0).reshape(20, 3))
    return out.getvalue()


def _idx() -> bytes:
    return encode_idx(np.arange(120, dtype=np.uint8).reshape(4, 5, 6))


def _parquet(path: Path, rows: int, nan_row: int | None = None) -> Path:
    values = np.arange(float(rows))
    if nan_row is not None:
        values[nan_row] = np.nan
    pq.write_table(pa.table({"a": values, "b": np.ones(rows)}), path)
    return path


def _parquet_empty(path: Path) -> Path:
    pq.write_table(pa.table({"a": pa.nulls(4, pa.float64()), "b": np.ones(4), "c": np.arange(4.0)}), path)
    return path


def _truncated_png(folder: Path) -> Path:
    folder.mkdir()
    out = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32), dtype=np.uint8)).save(out, format="PNG")
    (folder / "a.png").write_bytes(out.getvalue()[: len(out.getvalue()) // 2])
    return folder


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_gives_one_error_line(
    case: str, capsys: pytest.CaptureFixture[str], model: Path, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    args, expected = CASES[case](work)
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(model.read_bytes()[:300])
    names = {"model": model, "out": tmp_path / "out" / "result", "truncated_model": truncated}
    before = sorted(p.name for p in work.rglob("*"))
    message = one_error(capsys, *(str(a).format(**names) for a in args))
    for text in expected:
        assert text in message, message
    assert not (tmp_path / "out").exists()  # no output, not even its folder or a temporary file
    assert sorted(p.name for p in work.rglob("*")) == before  # nothing written beside the inputs


def test_mixed_gray_and_color_images_are_read_as_rgb(tmp_path: Path) -> None:
    """The documented rule: a folder mixing 8-bit gray, palette and color images is read as RGB."""
    gray = Image.new("L", (4, 4), 200)
    palette = Image.new("P", (4, 4), 1)
    palette.putpalette([0, 0, 0, 10, 20, 30])
    color = Image.new("RGB", (4, 4), (1, 2, 3))
    folder = image_folder(tmp_path / "im", {"a.png": gray, "b.png": color, "c.png": palette})
    x = read_data(folder).X
    assert x.shape == (3, 3, 4, 4)
    np.testing.assert_array_equal(x[0], 200)  # gray repeated into the three channels
    np.testing.assert_array_equal(x[1, :, 0, 0], [1, 2, 3])
    np.testing.assert_array_equal(x[2, :, 0, 0], [10, 20, 30])


def test_pickle_under_the_model_name_is_refused_by_the_cli(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    planted = tmp_path / "model.safetensors"
    planted.write_bytes(pickle.dumps(_Marker(marker)))
    for args in (["info", planted], ["encode", planted, "digits[:4]", "-o", tmp_path / "c.npy"]):
        assert "not a readable safetensors" in one_error(capsys, *args)
    with pytest.raises(ModelFileError):
        isthmus.load(planted)
    assert not marker.exists()
    pickle.loads(pickle.dumps(_Marker(marker)))  # the payload is live: unpickling it does run code
    assert marker.exists()


class _Marker:
    """Unpickling this creates the file ``path``: proof that code ran."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.path,))


# ------------------------------------------------------------------------------------------ atomic writes


def _fail_midway(*args: Any, **kwargs: Any) -> None:
    """A writer (np.save(file, array), write_csv(table, file), ...) that writes some bytes, then fails as a
    full disk does."""
    target = next(a for a in args if hasattr(a, "write") or isinstance(a, (str, Path)))
    if hasattr(target, "write"):
        target.write(b"half a file")
    else:
        Path(target).write_bytes(b"half a file")
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize(
    ("suffix", "writer"),
    [(".npy", "numpy.save"), (".csv", "pyarrow.csv.write_csv"), (".parquet", "pyarrow.parquet.write_table")],
)
def test_a_write_failing_midway_keeps_the_old_file(
    suffix: str,
    writer: str,
    capsys: pytest.CaptureFixture[str],
    model: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    output = tmp_path / f"codes{suffix}"
    assert main(["encode", str(model), "digits[:4]", "-o", str(output)]) == 0
    good = output.read_bytes()
    monkeypatch.setattr(writer, _fail_midway)
    message = one_error(capsys, "encode", model, "digits[4:8]", "-o", output, "--overwrite")
    assert "No space left on device" in message and str(output) in message
    assert output.read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == [output.name]  # no temporary file left


def test_a_model_save_failing_at_the_flush_keeps_the_old_model(
    capsys: pytest.CaptureFixture[str], model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "model.safetensors"
    target.write_bytes(model.read_bytes())

    def no_space(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("isthmus._files.os.fsync", no_space)
    message = one_error(capsys, "export-encoder", model, "-o", target, "--overwrite")
    assert "No space left" in message
    assert target.read_bytes() == model.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors"]


def test_an_interrupted_write_leaves_nothing(
    capsys: pytest.CaptureFixture[str], model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(fh: Any, *args: Any, **kwargs: Any) -> None:
        fh.write(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr("numpy.save", interrupted)
    status, err = run_cli(capsys, "encode", model, "digits[:4]", "-o", tmp_path / "codes.npy")
    assert status == 130 and err == "error: interrupted\n"
    assert list(tmp_path.iterdir()) == []


# -------------------------------------------------------------------------------- crafted model files


def _safetensors(model: Path, edit: Callable[[dict[str, Any]], None], data: bytes | None = None) -> bytes:
    """The model file with its JSON header edited by ``edit`` (and its data replaced by ``data``)."""
    raw = model.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    edit(header)
    text = json.dumps(header).encode()
    text += b" " * (-(8 + len(text)) % 8)
    return struct.pack("<Q", len(text)) + text + (raw[8 + n :] if data is None else data)


def _first_tensor(header: dict[str, Any]) -> dict[str, Any]:
    return header[next(k for k in sorted(header) if k != "__metadata__")]


def _set_metadata(key: str, value: Callable[[Any], Any]) -> Callable[[dict[str, Any]], None]:
    def edit(header: dict[str, Any]) -> None:
        meta = header["__metadata__"]
        meta[key] = json.dumps(value(json.loads(meta[key])))

    return edit


CRAFTED: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "huge-shape": (lambda h: _first_tensor(h).update(shape=[10**12, 10**12]), "not a readable safetensors"),
    "overflowing-shape": (lambda h: _first_tensor(h).update(shape=[2**62, 2**62]), "not a readable safetensors"),
    "huge-offsets": (lambda h: _first_tensor(h).update(data_offsets=[0, 2**62]), "not a readable safetensors"),
    "shape-without-data": (lambda h: _first_tensor(h).update(shape=[3, 1000]), "not a readable safetensors"),
    "huge-input-shape": (_set_metadata("input_shape", lambda v: [100_000, 100_000, 100]), "the config implies"),
    "huge-conv-input": (
        lambda h: (
            _set_metadata("params", lambda p: {**p, "architecture": "conv"})(h),
            _set_metadata("input_shape", lambda v: [3, 100_000, 100_000])(h),
        ),
        "the config implies",
    ),
    "huge-code": (_set_metadata("params", lambda p: {**p, "n_components": 10**15}), "the config implies"),
    "huge-layer": (_set_metadata("params", lambda p: {**p, "hidden_layer_sizes": [10**12]}), "the config implies"),
    "deep-network": (_set_metadata("params", lambda p: {**p, "hidden_layer_sizes": [4] * 100_000}), "100000 hidden"),
    "deep-json": (lambda h: h["__metadata__"].update(params="[" * 100_000 + "]" * 100_000), "not valid JSON"),
    "long-number": (lambda h: h["__metadata__"].update(params='{"n_components": ' + "9" * 5000 + "}"), "params"),
}


@pytest.mark.parametrize("case", sorted(CRAFTED))
def test_crafted_model_files_are_refused_fast(case: str, model: Path, tmp_path: Path) -> None:
    edit, message = CRAFTED[case]
    path = tmp_path / "model.safetensors"
    path.write_bytes(_safetensors(model, edit))
    start = time.perf_counter()
    with pytest.raises(ModelFileError, match=message):
        isthmus.load(path)
    assert time.perf_counter() - start < 1.0


def test_huge_header_length_is_refused(model: Path, tmp_path: Path) -> None:
    raw = model.read_bytes()
    for length in (2**63, len(raw), 10**8):
        path = tmp_path / "model.safetensors"
        path.write_bytes(struct.pack("<Q", length) + raw[8:])
        with pytest.raises(ModelFileError, match="not a readable safetensors"):
            isthmus.load(path)


# ------------------------------------------------------------------------------------------ resource limits


@contextmanager
def small_and_fast(seconds: float = 1.0, peak_bytes: int = 20_000_000) -> Iterator[None]:
    """Require the block to finish within ``seconds`` with a Python/NumPy allocation peak under ``peak_bytes``."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        yield
    finally:
        elapsed = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert elapsed < seconds, elapsed
    assert peak < peak_bytes, peak


def test_npy_header_claiming_10_to_the_12_rows(tmp_path: Path) -> None:
    path = _bytes(tmp_path / "x.npy", npy_bytes((10**12, 3)))
    with small_and_fast(), pytest.raises(DataError, match=r"truncated: its header gives shape \(1000000000000, 3\)"):
        read_data(path)
    with small_and_fast(), pytest.raises(DataError, match="truncated"):
        read_labels(_bytes(tmp_path / "y.npy", npy_bytes((10**12,), "<i8")))


def test_npz_member_claiming_10_to_the_12_rows(tmp_path: Path) -> None:
    path = npz_with(tmp_path / "x.npz", npy_bytes((10**12, 3)))
    message = r"'x' is truncated: its header gives shape \(1000000000000, 3\)"
    with small_and_fast(), pytest.raises(DataError, match=message):
        read_data(path)


def test_honest_arrays_larger_than_memory_are_refused_before_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A compressed .npz of zeros can honestly hold more than memory; it is refused before it is inflated."""
    monkeypatch.setattr(limits, "memory_limit", lambda: 1_000_000)
    np.savez_compressed(tmp_path / "zeros.npz", x=np.zeros((1000, 1000), np.float32))  # 4 MB inflated
    assert (tmp_path / "zeros.npz").stat().st_size < 100_000
    with small_and_fast(peak_bytes=1_000_000), pytest.raises(DataError, match=r"needs 4\.0 MB of memory"):
        read_data(tmp_path / "zeros.npz")
    np.save(tmp_path / "big.npy", np.zeros((1000, 1000), np.float64))  # memory-mapped, but float32 is a copy
    with pytest.raises(DataError, match=r"big\.npy\[:250\]"):
        read_data(tmp_path / "big.npy")
    assert read_data(f"{tmp_path / 'big.npy'}[:50]").X.shape == (50, 1000)


def test_idx_header_claiming_10_to_the_12_items(tmp_path: Path) -> None:
    header = struct.pack(">HBB3I", 0, 0x08, 3, 10**6, 1000, 1000)
    raw = _bytes(tmp_path / "x-idx3-ubyte", header + bytes(100))
    with small_and_fast(), pytest.raises(DataError, match=r"truncated: its header gives shape \(1000000, 1000, 1000\)"):
        read_data(raw)
    packed = _bytes(tmp_path / "y-idx3-ubyte.gz", gzip.compress(header + bytes(100)))  # no size up front
    with small_and_fast(), pytest.raises(DataError, match=r"needs 1\.0 TB of memory"):
        read_data(packed)


def test_a_100000_by_100000_image_is_refused(tmp_path: Path) -> None:
    folder = _with_file(_mkdir(tmp_path / "im"), "a.png", png(100_000, 100_000))
    with small_and_fast(), pytest.raises(DataError, match=r"a\.png has 10,000,000,000 pixels.*decompression bombs"):
        read_data(folder)
    folder = _with_file(_mkdir(tmp_path / "im2"), "a.png", png(20_000, 5_000))  # above the limit, below twice it
    with small_and_fast(), pytest.raises(DataError, match=r"a.png is 20000x5000 \(100,000,000 pixels\)"):
        read_data(folder)


def test_image_size_and_folders_beyond_memory_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = image_folder(tmp_path / "im", {f"{i}.png": Image.new("L", (8, 8)) for i in range(3)})
    with pytest.raises(ConfigError, match="image_size=100000x100000 has 10,000,000,000 pixels"):
        read_data(folder, image_size=(100_000, 100_000))
    monkeypatch.setattr(limits, "memory_limit", lambda: 1_000)
    with small_and_fast(), pytest.raises(DataError, match=r"3 images of 10x10 pixels.*needs 1\.2 kB"):
        read_data(folder, image_size=(10, 10))


def test_parquet_metadata_claiming_10_to_the_12_rows(tmp_path: Path) -> None:
    forged = forge_parquet_rows(parquet_bytes(1000), 1000, 10**12)
    path = _bytes(tmp_path / "x.parquet", forged)
    assert pq.ParquetFile(path).metadata.num_rows == 10**12  # the forgery took
    with small_and_fast(), pytest.raises(DataError, match=r"1,000,000,000,000 rows of 2 columns.*needs 32\.0 TB"):
        read_data(path)


@pytest.fixture(scope="module")
def quantized(tmp_path_factory: pytest.TempPathFactory) -> isthmus.Autoencoder:
    path = tmp_path_factory.mktemp("q") / "q.safetensors"
    args = ["train", "digits[:200]", "-o", str(path), "--preset", "compress", *TINY]
    assert main(args) == 0
    return isthmus.load(path)


def test_bitstream_header_claiming_a_huge_shape(quantized: isthmus.Autoencoder) -> None:
    sample = tuple(quantized.input_shape_)
    stream = quantized.compress(np.zeros((2, *sample), np.uint8))
    _, payload = codec.read_stream(stream, sample_shape=sample)
    explicit = codec.MAGIC + bytes([1, 0x30]) + bytes([2]) + _varint(10**12) + _varint(64)
    explicit += _varint(len(payload)) + payload
    explicit += codec.crc16(explicit).to_bytes(2, "little")  # a forger computes the checksum too
    with small_and_fast(), pytest.raises(codec.CorruptBitstreamError, match="64000000000000 values"):
        quantized.decompress(explicit)
    many = codec.write_stream(payload, dtype=np.uint8, shape=(codec.MAX_SAMPLES, *sample), sample_shape=sample)
    message = f"announces {codec.MAX_SAMPLES} samples"
    with small_and_fast(seconds=0.2), pytest.raises(codec.WrongModelError, match=message):
        quantized.decompress(many)


def test_memory_limit_is_a_positive_number_of_bytes() -> None:
    assert limits.memory_limit() > 2**20
    assert limits.human_bytes(512) == "512 bytes" and limits.human_bytes(12 * 10**12) == "12.0 TB"


@pytest.mark.parametrize("value", [0.0, -1.0, float("nan"), float("inf")])
def test_a_scaler_that_was_never_fitted_is_refused(value: float, model: Path, tmp_path: Path) -> None:
    raw = model.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    start, _ = json.loads(raw[8 : 8 + n])["scaler.scale"]["data_offsets"]
    at = 8 + n + start
    path = _bytes(tmp_path / "model.safetensors", raw[:at] + struct.pack("<f", value) + raw[at + 4 :])
    with pytest.raises(ModelFileError, match=r"'scaler\.scale' must be finite, the scale positive"):
        isthmus.load(path)


def test_found_by_fuzzing_the_readers(tmp_path: Path) -> None:
    """Inputs that once escaped as other exceptions (or warnings) when the readers were fuzzed."""
    with pytest.raises(DataError, match="not a readable CSV file"):
        read_data(_bytes(tmp_path / "latin1.csv", b"a\xe4b,c\n1,2\n"))  # a header that is not UTF-8
    with pytest.raises(DataError, match=r"'c' \(string, e\.g\. 'x' in row 0"):
        read_data(csv(tmp_path / "twice.csv", "c,c\n1,x\n"))  # a text column whose name is not unique
    header = npy_bytes((2, 3))
    with pytest.raises(DataError, match=r"not a readable \.npy array"):
        read_data(_bytes(tmp_path / "open.npy", header.replace(b"}", b" ")))  # an unclosed header dict
    archive = bytearray(_npz_bytes())
    end = archive.rfind(b"PK\x01\x02")
    archive[end + 6] = 148  # the central directory says a newer zip version made it
    with pytest.raises(DataError, match=r"x\.npz"):
        read_data(_bytes(tmp_path / "x.npz", bytes(archive)))
    both = np.array([[np.inf, -np.inf]], np.float32)
    with pytest.raises(DataError, match="NaN or infinite"):
        read_data(_npy(tmp_path / "both.npy", both))  # inf - inf is NaN: no RuntimeWarning on the way
