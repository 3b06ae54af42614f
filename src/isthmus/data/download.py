"""MNIST and Fashion-MNIST: read them from the data home, downloading and verifying missing files.

The files live in ``data_home()/<name>/`` under their original names. A missing file is fetched from
the mirrors in order, checked against its SHA-256 and written atomically, so an interrupted or wrong
download never leaves a file behind. Files already present are read as they are (either the ``.gz``
file or its gunzipped twin), which lets people without network access put them there by hand.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

from isthmus._files import write_bytes_atomic
from isthmus.data.dataset import Dataset, as_dataset
from isthmus.data.idx import read_idx
from isthmus.errors import DataError, DownloadError

_TIMEOUT_S = 60.0


class IdxSource(NamedTuple):
    """Where a named IDX dataset comes from and what its files must hash to."""

    mirrors: tuple[str, ...]
    sha256: Mapping[str, str]  # file name -> expected SHA-256 (hex)


# SHA-256 sums as listed in tensorflow/datasets, tensorflow_datasets/url_checksums/{mnist,fashion_mnist}.txt.
IDX_SOURCES: Mapping[str, IdxSource] = {
    "fashion-mnist": IdxSource(
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        sha256={
            "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
            "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
            "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
            "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
        },
    ),
    "mnist": IdxSource(
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
        ),
        sha256={
            "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
            "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
            "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        },
    ),
}
# split -> file name prefix
IDX_SPLITS: Mapping[str, str] = {"test": "t10k", "train": "train"}


def data_home() -> Path:
    """The folder that holds downloaded datasets.

    Returns
    -------
    Path
        ``$ISTHMUS_DATA`` when set, else ``$XDG_CACHE_HOME/isthmus``, else ``~/.cache/isthmus``.
        The folder is not created here.
    """
    explicit = os.environ.get("ISTHMUS_DATA")
    if explicit:
        return Path(explicit).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME")
    return (Path(cache).expanduser() if cache else Path.home() / ".cache") / "isthmus"


def fetch_idx(
    name: str,
    *,
    split: str = "train",
    home: Path | None = None,
    base_urls: Sequence[str] | None = None,
    checksums: Mapping[str, str] | None = None,
    timeout: float = _TIMEOUT_S,
) -> Dataset:
    """Load MNIST or Fashion-MNIST, downloading the files that are missing.

    Parameters
    ----------
    name : {"mnist", "fashion-mnist"}
        The dataset.
    split : {"train", "test"}
        60,000 training or 10,000 test images.
    home : Path or None
        The data home; default :func:`data_home`. Files go to ``home/name/``.
    base_urls : sequence of str or None
        Mirrors to try in order instead of the built-in ones; a file's URL is the mirror plus its name.
    checksums : mapping of str to str or None
        Expected SHA-256 per file name instead of the built-in ones.
    timeout : float
        Seconds to wait for a mirror to answer.

    Returns
    -------
    Dataset
        Images of shape (n_images, 1, 28, 28) with raw pixel values 0-255, and int64 labels 0-9.

    Raises
    ------
    DataError
        If ``name`` or ``split`` is unknown, or a file present is not a valid IDX file.
    DownloadError
        If a missing file cannot be downloaded (the message says where to put it by hand) or the
        download does not match its SHA-256.
    """
    if name not in IDX_SOURCES:
        raise DataError(f"unknown IDX dataset {name!r}; choose one of {', '.join(sorted(IDX_SOURCES))}")
    if split not in IDX_SPLITS:
        raise DataError(f"{name} has no split {split!r}; choose one of {', '.join(sorted(IDX_SPLITS))}")
    source = IDX_SOURCES[name]
    folder = (home if home is not None else data_home()) / name
    prefix = IDX_SPLITS[split]
    files = [f"{prefix}-images-idx3-ubyte.gz", f"{prefix}-labels-idx1-ubyte.gz"]
    mirrors = tuple(base_urls) if base_urls is not None else source.mirrors
    expected = checksums if checksums is not None else source.sha256

    missing = [f for f in files if _present(folder / f) is None]
    for file in missing:
        _download(file, folder, mirrors, expected, timeout, missing)
    images, labels = (read_idx(_present(folder / f) or folder / f) for f in files)
    return as_dataset(images, labels, name if split == "train" else f"{name}:{split}")


def _present(gz_path: Path) -> Path | None:
    """The file to read for ``gz_path``: itself, else its gunzipped twin, else None."""
    for candidate in (gz_path, gz_path.with_suffix("")):
        if candidate.is_file():
            return candidate
    return None


def _download(
    file: str,
    folder: Path,
    mirrors: Sequence[str],
    expected: Mapping[str, str],
    timeout: float,
    missing: Sequence[str],
) -> None:
    """Fetch ``file`` from the first mirror that serves it with the expected SHA-256."""
    if file not in expected:
        raise DownloadError(f"no SHA-256 is known for {file}; pass checksums={{{file!r}: '<sha256>'}}")
    failures: list[str] = []
    mismatch: DownloadError | None = None
    for mirror in mirrors:
        url = mirror if mirror.endswith("/") else mirror + "/"
        url += file
        try:
            request = urllib.request.Request(url, headers={"User-Agent": "isthmus"})
            with urllib.request.urlopen(request, timeout=timeout) as response:
                payload = response.read()
        except (OSError, http.client.HTTPException, ValueError) as exc:
            failures.append(f"{url}: {getattr(exc, 'reason', None) or exc}")
            continue
        got = hashlib.sha256(payload).hexdigest()
        if got != expected[file]:
            mismatch = DownloadError(
                f"{file} downloaded from {url} failed its checksum: expected SHA-256 {expected[file]}, "
                f"got {got}; the file was not kept - try again later or put a good copy in {folder}"
            )
            continue
        write_bytes_atomic(folder / file, payload)
        return
    if mismatch is not None:
        raise mismatch
    raise DownloadError(
        f"could not download {file} ({'; '.join(failures) or 'no mirrors given'}). "
        f"To use it offline, put these files in {folder}: {', '.join(missing)} "
        f"(get them from {mirrors[0] if mirrors else 'the dataset website'})"
    )
