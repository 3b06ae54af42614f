"""Tests of isthmus.data: readers, writers, labels, built-in datasets and verified downloads."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from isthmus.data import (
    Dataset,
    check_finite,
    data_home,
    fetch_idx,
    read_data,
    read_labels,
    write_array,
)
from isthmus.data.idx import decode_idx, encode_idx
from isthmus.errors import DataError, DownloadError, OutputError

# ---------------------------------------------------------------- helpers and fixtures


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture
def table(rng: np.random.Generator) -> npt.NDArray[np.float32]:
    return rng.normal(size=(30, 4)).astype(np.float32)


def _save_image(path: Path, pixels: npt.NDArray[np.uint8], mode: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(pixels)
    (image.convert(mode) if mode else image).save(path)


def _idx_pair(folder: Path, prefix: str, n: int, *, gz: bool, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Write ``{prefix}-images-idx3-ubyte`` and its labels file; return the arrays written."""
    gen = np.random.default_rng(seed)
    images = gen.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = gen.integers(0, 10, size=n, dtype=np.uint8)
    suffix = ".gz" if gz else ""
    for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
        data = encode_idx(array)
        (folder / f"{prefix}-{kind}-ubyte{suffix}").write_bytes(gzip.compress(data) if gz else data)
    return images, labels


# ---------------------------------------------------------------- round trips


@pytest.mark.parametrize("ext", [".npy", ".csv", ".parquet"])
def test_write_then_read_gives_the_same_table(tmp_path: Path, table: np.ndarray, ext: str) -> None:
    path = tmp_path / f"x{ext}"
    write_array(path, table)
    data = read_data(path)
    assert isinstance(data, Dataset)
    assert data.X.dtype == np.float32 and data.y is None
    np.testing.assert_array_equal(data.X, table)
    assert data.name == path.name


@pytest.mark.parametrize("ext", [".csv", ".parquet"])
def test_tables_flatten_trailing_axes_and_take_column_names(tmp_path: Path, ext: str) -> None:
    images = np.arange(2 * 3 * 2 * 2, dtype=np.float32).reshape(2, 3, 2, 2)
    write_array(tmp_path / f"im{ext}", images)
    np.testing.assert_array_equal(read_data(tmp_path / f"im{ext}").X, images.reshape(2, -1))
    write_array(tmp_path / f"named{ext}", images[:, 0, 0], columns=["a", "b,c"])
    np.testing.assert_array_equal(read_data(tmp_path / f"named{ext}").X, images[:, 0, 0])


def test_csv_header_is_c0_c1_or_the_given_columns(tmp_path: Path, table: np.ndarray) -> None:
    write_array(tmp_path / "a.csv", table)
    assert (tmp_path / "a.csv").read_text().splitlines()[0] == "c0,c1,c2,c3"
    write_array(tmp_path / "b.csv", table[:, :2], columns=["width", "height"])
    assert (tmp_path / "b.csv").read_text().splitlines()[0] == "width,height"
    with pytest.raises(DataError, match="one distinct name per column"):
        write_array(tmp_path / "c.csv", table, columns=["only", "two"])


def test_images_npy_keeps_four_axes_and_three_gain_a_channel(tmp_path: Path, rng: np.random.Generator) -> None:
    images = rng.integers(0, 255, size=(5, 3, 6, 7)).astype(np.uint8)
    write_array(tmp_path / "four.npy", images)
    write_array(tmp_path / "three.npy", images[:, 0])
    assert read_data(tmp_path / "four.npy").X.shape == (5, 3, 6, 7)
    three = read_data(tmp_path / "three.npy").X
    assert three.shape == (5, 1, 6, 7)
    np.testing.assert_array_equal(three[:, 0], images[:, 0])  # raw values, not scaled


def test_one_dimensional_array_is_refused(tmp_path: Path) -> None:
    np.save(tmp_path / "flat.npy", np.arange(10.0))
    with pytest.raises(DataError, match="2-D"):
        read_data(tmp_path / "flat.npy")


# ---------------------------------------------------------------- npz


def test_npz_key_selects_the_array_and_y_gives_labels(tmp_path: Path, table: np.ndarray) -> None:
    other = table[:, :2] * 10
    labels = np.arange(len(table)) % 3
    np.savez(tmp_path / "d.npz", features=table, other=other, y=labels)
    first = read_data(str(tmp_path / "d.npz"))
    np.testing.assert_array_equal(first.X, table)
    np.testing.assert_array_equal(first.y, labels)
    assert first.y is not None and first.y.dtype == np.int64
    picked = read_data(f"{tmp_path / 'd.npz'}:other")
    np.testing.assert_array_equal(picked.X, other)
    assert picked.name == "d.npz:other"
    with pytest.raises(DataError, match="'features', 'other', 'y'"):
        read_data(f"{tmp_path / 'd.npz'}:missing")


def test_npz_without_y_has_no_labels(tmp_path: Path, table: np.ndarray) -> None:
    np.savez(tmp_path / "d.npz", table)
    assert read_data(tmp_path / "d.npz").y is None


# ---------------------------------------------------------------- CSV


def test_csv_text_column_is_named(tmp_path: Path) -> None:
    path = tmp_path / "mixed.csv"
    path.write_text("a,colour,b\n1,red,2\n3,blue,4\n")
    with pytest.raises(DataError, match="'colour'") as info:
        read_data(path)
    assert "mixed.csv" in str(info.value)


def test_csv_label_like_columns_stay_features(tmp_path: Path) -> None:
    path = tmp_path / "labelled.csv"
    path.write_text("a,label\n1,0\n2,1\n")
    data = read_data(path)
    assert data.X.shape == (2, 2) and data.y is None


def test_header_only_and_empty_csv_are_refused(tmp_path: Path) -> None:
    (tmp_path / "header.csv").write_text("a,b,c\n")
    with pytest.raises(DataError, match="no rows"):
        read_data(tmp_path / "header.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match="empty"):
        read_data(tmp_path / "empty.csv")


def test_csv_without_header_is_refused(tmp_path: Path) -> None:
    (tmp_path / "bare.csv").write_text("0.5,1.5\n2.5,3.5\n")
    with pytest.raises(DataError, match="no header"):
        read_data(tmp_path / "bare.csv")


# ---------------------------------------------------------------- NaN / inf


def test_nan_error_names_the_first_rows(tmp_path: Path) -> None:
    X = np.zeros((20, 3), dtype=np.float32)
    bad = [2, 5, 7, 11, 13, 17, 19]
    X[bad, 1] = np.nan
    X[5, 2] = np.inf
    with pytest.raises(DataError, match=r"rows 2, 5, 7, 11, 13 \(and 2 more\)"):
        check_finite(X, "X")
    check_finite(np.ones((3, 2), dtype=np.float32), "X")  # finite data passes
    (tmp_path / "holes.csv").write_text("a,b\n1,2\n3,\n5,6\n")  # a table's missing cell is allowed (NaN)
    assert np.isnan(read_data(tmp_path / "holes.csv").X[1, 1])
    (tmp_path / "inf.csv").write_text("a,b\n1,2\n3,inf\n5,6\n")
    with pytest.raises(DataError, match=r"inf\.csv.*rows 1"):
        read_data(tmp_path / "inf.csv")


def test_values_beyond_float32_are_reported_as_infinite(tmp_path: Path) -> None:
    np.save(tmp_path / "big.npy", np.array([[1.0, 2.0], [1e300, 0.0]]))
    with pytest.raises(DataError, match="rows 1"):
        read_data(tmp_path / "big.npy")


# ---------------------------------------------------------------- row slices


def test_row_slice_applies_to_samples_and_labels(tmp_path: Path, table: np.ndarray) -> None:
    labels = np.arange(len(table))
    np.savez(tmp_path / "d.npz", X=table, y=labels)
    base = str(tmp_path / "d.npz")
    for text, rows in [("[10:20]", slice(10, 20)), ("[:5]", slice(None, 5)), ("[-3:]", slice(-3, None))]:
        data = read_data(base + text)
        np.testing.assert_array_equal(data.X, table[rows])
        np.testing.assert_array_equal(data.y, labels[rows])
        assert data.name == "d.npz" + text
    np.testing.assert_array_equal(read_data(f"{base}:X[2:4]").X, table[2:4])


def test_row_slice_that_selects_nothing_or_has_a_step_is_refused(tmp_path: Path, table: np.ndarray) -> None:
    write_array(tmp_path / "x.npy", table)
    with pytest.raises(DataError, match="no rows"):
        read_data(f"{tmp_path / 'x.npy'}[100:]")
    with pytest.raises(DataError, match=r"\[start:stop\]"):
        read_data(f"{tmp_path / 'x.npy'}[::2]")


# ---------------------------------------------------------------- IDX


@pytest.mark.parametrize("gz", [False, True])
def test_idx_images_read_with_their_labels(tmp_path: Path, gz: bool) -> None:
    images, labels = _idx_pair(tmp_path, "train", 7, gz=gz)
    name = "train-images-idx3-ubyte" + (".gz" if gz else "")
    data = read_data(tmp_path / name)
    assert data.X.shape == (7, 1, 28, 28)
    np.testing.assert_array_equal(data.X[:, 0], images)
    np.testing.assert_array_equal(data.y, labels)
    np.testing.assert_array_equal(read_labels(tmp_path / name.replace("images-idx3", "labels-idx1")), labels)


def test_idx_header_layout_is_big_endian() -> None:
    header = bytes([0, 0, 0x0B, 2, 0, 0, 0, 2, 0, 0, 0, 1])  # int16, shape (2, 1)
    values = decode_idx(header + bytes([0x01, 0x02, 0xFF, 0xFE]), "hand")
    np.testing.assert_array_equal(values, [[0x0102], [-2]])


def test_truncated_idx_is_refused(tmp_path: Path) -> None:
    data = encode_idx(np.zeros((4, 3, 3), dtype=np.uint8))
    (tmp_path / "short-images-idx3-ubyte").write_bytes(data[:-5])
    with pytest.raises(DataError, match="truncated"):
        read_data(tmp_path / "short-images-idx3-ubyte")
    (tmp_path / "short.idx.gz").write_bytes(gzip.compress(data)[:-10])
    with pytest.raises(DataError, match="gzip"):
        read_data(tmp_path / "short.idx.gz")


_IDX_ARRAYS = st.sampled_from(["u1", "i1", "i2", "i4", "f4", "f8"]).flatmap(
    lambda dtype: st.lists(st.integers(0, 4), min_size=1, max_size=3).flatmap(
        lambda shape: st.binary(
            min_size=int(np.prod(shape)) * np.dtype(dtype).itemsize,
            max_size=int(np.prod(shape)) * np.dtype(dtype).itemsize,
        ).map(lambda raw: np.frombuffer(raw, dtype=dtype).reshape(shape))
    )
)


@settings(max_examples=60, deadline=None)
@given(array=_IDX_ARRAYS, cut=st.integers(1, 64))
def test_idx_decode_inverts_encode_and_any_cut_raises(array: np.ndarray, cut: int) -> None:
    data = encode_idx(array)
    np.testing.assert_array_equal(decode_idx(data, "x"), array)
    if cut <= len(data) and array.size:
        with pytest.raises(DataError):
            decode_idx(data[:-cut], "x")
    with pytest.raises(DataError):
        decode_idx(data + b"\0", "x")


# ---------------------------------------------------------------- image folders


def test_gray_image_folder(tmp_path: Path, rng: np.random.Generator) -> None:
    pixels = rng.integers(0, 256, size=(3, 5, 4), dtype=np.uint8)
    for i, image in enumerate(pixels):
        _save_image(tmp_path / f"img{i}.png", image)
    (tmp_path / "notes.txt").write_text("not an image")
    data = read_data(tmp_path)
    assert data.X.shape == (3, 1, 5, 4) and data.y is None
    np.testing.assert_array_equal(data.X[:, 0], pixels)


def test_rgb_and_rgba_images_give_three_channels(tmp_path: Path, rng: np.random.Generator) -> None:
    rgb = rng.integers(0, 256, size=(4, 6, 3), dtype=np.uint8)
    _save_image(tmp_path / "a.png", rgb)
    _save_image(tmp_path / "b.png", rgb, mode="RGBA")
    _save_image(tmp_path / "c.png", rgb[..., 0])  # a gray image among colour ones becomes RGB too
    data = read_data(tmp_path)
    assert data.X.shape == (3, 3, 4, 6)
    np.testing.assert_array_equal(data.X[0], rgb.transpose(2, 0, 1))
    np.testing.assert_array_equal(data.X[1], rgb.transpose(2, 0, 1))
    np.testing.assert_array_equal(data.X[2], np.repeat(rgb[np.newaxis, ..., 0], 3, axis=0))


def test_mixed_sizes_need_an_image_size(tmp_path: Path) -> None:
    _save_image(tmp_path / "a.png", np.zeros((8, 8), dtype=np.uint8))
    _save_image(tmp_path / "b.png", np.zeros((12, 10), dtype=np.uint8))
    with pytest.raises(DataError, match="image size") as info:
        read_data(tmp_path)
    message = str(info.value)
    assert "a.png is 8x8" in message and "b.png is 10x12" in message
    data = read_data(tmp_path, image_size=(6, 5))
    assert data.X.shape == (2, 1, 5, 6)


def test_class_subfolders_give_labels(tmp_path: Path) -> None:
    for cls, count in [("cat", 2), ("ant", 1), ("dog", 3)]:
        for i in range(count):
            _save_image(tmp_path / cls / f"{i}.png", np.full((4, 4), i, dtype=np.uint8))
    _save_image(tmp_path / "stray.png", np.zeros((4, 4), dtype=np.uint8))  # ignored beside subfolders
    data = read_data(tmp_path)
    assert data.X.shape == (6, 1, 4, 4)
    np.testing.assert_array_equal(data.y, [0, 1, 1, 2, 2, 2])  # ant, cat, cat, dog, dog, dog
    np.testing.assert_array_equal(read_labels(tmp_path), data.y)


def test_folder_without_images_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no images"):
        read_data(tmp_path)


def test_existing_path_wins_over_builtin_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _save_image(tmp_path / "digits" / "one.png", np.zeros((3, 3), dtype=np.uint8))
    monkeypatch.chdir(tmp_path)
    assert read_data("digits").X.shape == (1, 1, 3, 3)


# ---------------------------------------------------------------- built-ins, errors


def test_digits_builtin() -> None:
    data = read_data("digits")
    assert data.X.shape == (1797, 1, 8, 8) and data.X.dtype == np.float32
    assert data.y is not None and data.y.shape == (1797,) and set(np.unique(data.y)) == set(range(10))
    assert data.X.max() == 16  # raw values
    assert read_data("digits[:1500]").X.shape == (1500, 1, 8, 8)


def test_unknown_suffix_missing_file_and_corrupt_files(tmp_path: Path) -> None:
    (tmp_path / "x.xlsx").write_bytes(b"whatever")
    with pytest.raises(DataError, match=r"\.npy.*\.parquet"):
        read_data(tmp_path / "x.xlsx")
    with pytest.raises(DataError, match=r"no such file: .*absent\.npy"):
        read_data(str(tmp_path / "absent.npy"))
    for name in ["bad.npy", "bad.npz", "bad.parquet"]:
        (tmp_path / name).write_bytes(b"this is not the format at all")
        with pytest.raises(DataError, match=re.escape(name)):
            read_data(tmp_path / name)


def test_write_array_refuses_existing_file_without_overwrite(tmp_path: Path, table: np.ndarray) -> None:
    path = tmp_path / "x.npy"
    write_array(path, table)
    with pytest.raises(OutputError, match="exists"):
        write_array(path, table * 2, overwrite=False)
    np.testing.assert_array_equal(np.load(path), table)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.npy"]  # no temporary file left
    with pytest.raises(OutputError, match=re.escape(".csv, .npy, .parquet")):
        write_array(tmp_path / "x.txt", table)


# ---------------------------------------------------------------- labels files


def test_label_files(tmp_path: Path) -> None:
    labels = np.array([3, 1, 4, 1, 5])
    np.save(tmp_path / "l.npy", labels)
    (tmp_path / "l.txt").write_text("\n".join(map(str, labels)) + "\n")
    (tmp_path / "l.csv").write_text("label\n" + "\n".join(map(str, labels)) + "\n")
    for name in ["l.npy", "l.txt", "l.csv"]:
        got = read_labels(tmp_path / name)
        assert got.dtype == np.int64
        np.testing.assert_array_equal(got, labels)
    np.testing.assert_array_equal(read_labels(f"{tmp_path / 'l.txt'}[1:3]"), labels[1:3])
    (tmp_path / "wide.csv").write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match="one column"):
        read_labels(tmp_path / "wide.csv")
    (tmp_path / "words.txt").write_text("0\ncat\n")
    with pytest.raises(DataError, match="'cat'"):
        read_labels(tmp_path / "words.txt")
    np.save(tmp_path / "frac.npy", np.array([0.0, 1.5]))
    with pytest.raises(DataError, match="whole numbers"):
        read_labels(tmp_path / "frac.npy")


def test_labels_from_dataset_spec(tmp_path: Path, table: np.ndarray) -> None:
    assert read_labels("digits[:10]").shape == (10,)
    write_array(tmp_path / "x.parquet", table)
    with pytest.raises(DataError, match="no labels"):
        read_labels(tmp_path / "x.parquet")


# ---------------------------------------------------------------- data home and downloads


def test_data_home_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ISTHMUS_DATA", str(tmp_path / "explicit"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data_home() == tmp_path / "explicit"
    monkeypatch.delenv("ISTHMUS_DATA")
    assert data_home() == tmp_path / "xdg" / "isthmus"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data_home() == tmp_path / "home" / ".cache" / "isthmus"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Path, dict[str, str]]]:
    """A loopback HTTP server serving small gzipped IDX files: (base URL, its folder, their SHA-256)."""
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    served = tmp_path / "served"
    served.mkdir()
    _idx_pair(served, "train", 12, gz=True, seed=1)
    _idx_pair(served, "t10k", 5, gz=True, seed=2)
    sums = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in served.iterdir()}
    handler = functools.partial(_QuietHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", served, sums
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_download_lands_in_data_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mirror: tuple[str, Path, dict[str, str]]
) -> None:
    url, served, sums = mirror
    monkeypatch.setenv("ISTHMUS_DATA", str(tmp_path / "home"))
    data = fetch_idx("mnist", base_urls=["http://127.0.0.1:1/", url], checksums=sums)
    assert data.X.shape == (12, 1, 28, 28) and data.y is not None and data.y.shape == (12,)
    folder = tmp_path / "home" / "mnist"
    assert sorted(p.name for p in folder.iterdir()) == [
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
    ]
    assert (folder / "train-images-idx3-ubyte.gz").read_bytes() == (served / "train-images-idx3-ubyte.gz").read_bytes()
    test = fetch_idx("fashion-mnist", split="test", base_urls=[url], checksums=sums)
    assert test.X.shape == (5, 1, 28, 28) and test.name == "fashion-mnist:test"
    # present files are read without the network
    again = fetch_idx("mnist", base_urls=["http://127.0.0.1:1/"], checksums=sums)
    np.testing.assert_array_equal(again.X, data.X)


def test_checksum_mismatch_keeps_no_file(tmp_path: Path, mirror: tuple[str, Path, dict[str, str]]) -> None:
    url, _, sums = mirror
    wrong = dict(sums, **{"train-images-idx3-ubyte.gz": "0" * 64})
    with pytest.raises(DownloadError, match=re.escape("train-images-idx3-ubyte.gz")) as info:
        fetch_idx("mnist", home=tmp_path / "home", base_urls=[url], checksums=wrong)
    assert "0" * 64 in str(info.value) and sums["train-images-idx3-ubyte.gz"] in str(info.value)
    folder = tmp_path / "home" / "mnist"
    assert not any(folder.glob("train-images*")) and not any(folder.glob(".*tmp"))


def test_unreachable_mirror_says_where_to_put_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens on it
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("ISTHMUS_DATA", str(tmp_path / "home"))
    with pytest.raises(DownloadError) as info:
        fetch_idx("mnist", split="test", base_urls=[f"http://127.0.0.1:{port}/"], timeout=5)
    message = str(info.value)
    assert str(tmp_path / "home" / "mnist") in message
    assert "t10k-images-idx3-ubyte.gz" in message and "t10k-labels-idx1-ubyte.gz" in message
    assert f"http://127.0.0.1:{port}/" in message


def test_unknown_dataset_and_split(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="fashion-mnist, mnist"):
        fetch_idx("cifar", home=tmp_path)
    with pytest.raises(DataError, match="test, train"):
        read_data("mnist:validation")
