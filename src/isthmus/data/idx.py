"""The IDX format of MNIST and Fashion-MNIST: decode, encode, and find the labels beside the images.

An IDX file is a header and a payload, every number big-endian::

    bytes 0-1   zero
    byte  2     dtype code (table below)
    byte  3     number of dimensions, ndim
    then        ndim unsigned 32-bit sizes
    then        the values, row-major, prod(sizes) of them

Files ending in ``.gz`` are gzip-compressed as a whole.
"""

from __future__ import annotations

import gzip
import math
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import numpy.typing as npt

from isthmus.data.limits import check_allocation
from isthmus.errors import DataError

# dtype code (byte 2 of the header) -> big-endian NumPy dtype
IDX_DTYPES: dict[int, np.dtype[np.generic]] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {dtype.newbyteorder(">"): code for code, dtype in IDX_DTYPES.items()}

# "train-images-idx3-ubyte.gz" -> "train-labels-idx1-ubyte.gz"; Kaggle's copies use ".idx3-ubyte"
_IMAGES_NAME = re.compile(r"^(?P<stem>.*)-images(?P<sep>[-.])idx3-ubyte(?P<gz>\.gz)?$")


def decode_idx(data: bytes, name: str) -> npt.NDArray[np.generic]:
    """Decode the bytes of an uncompressed IDX file.

    Parameters
    ----------
    data : bytes
        The whole file.
    name : str
        The file name, for messages.

    Returns
    -------
    ndarray
        The values with the shape the header gives, in native byte order.

    Raises
    ------
    DataError
        If the header is not an IDX header or the payload is shorter or longer than the header says.
    """
    shape, dtype, header_size = _parse_header(data, name)
    expected = math.prod(shape) * dtype.itemsize
    got = len(data) - header_size
    if got < expected:
        raise DataError(
            f"{name} is truncated: its header gives shape {shape} ({expected:,} bytes of data) "
            f"but only {got:,} bytes follow; download or copy the file again"
        )
    if got > expected:
        raise DataError(
            f"{name} has {got - expected} bytes after the data its header describes (shape {shape}); "
            "the file is corrupt or not an IDX file"
        )
    values = np.frombuffer(data, dtype=dtype, offset=header_size).reshape(shape)
    return values.astype(dtype.newbyteorder("="), copy=False)


def _parse_header(data: bytes, name: str) -> tuple[tuple[int, ...], np.dtype[np.generic], int]:
    """``(shape, dtype, header size)`` from the first bytes of an IDX file (all of the header, or more)."""
    if len(data) < 4:
        raise DataError(f"{name} is not an IDX file: it has only {len(data)} bytes, fewer than a header")
    zero, code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
        raise DataError(
            f"{name} is not an IDX file: it starts with bytes {data[:4].hex()}, "
            f"expected 0000 then a dtype code ({known}) and the number of dimensions"
        )
    header_size = 4 + 4 * ndim
    if ndim == 0 or len(data) < header_size:
        raise DataError(f"{name} is truncated or not an IDX file: its header says {ndim} dimensions")
    shape = struct.unpack(f">{ndim}I", data[4:header_size])
    return tuple(int(s) for s in shape), IDX_DTYPES[code], header_size


def encode_idx(array: npt.NDArray[np.generic]) -> bytes:
    """Encode ``array`` as the bytes of an uncompressed IDX file (the inverse of :func:`decode_idx`)."""
    dtype = array.dtype.newbyteorder(">")
    if dtype not in _CODES or array.ndim == 0:
        allowed = ", ".join(str(d.newbyteorder("=")) for d in IDX_DTYPES.values())
        raise DataError(f"IDX cannot hold a {array.ndim}-D {array.dtype} array; IDX holds {allowed}, 1-D or more")
    header = struct.pack(f">HBB{array.ndim}I", 0, _CODES[dtype], array.ndim, *array.shape)
    return header + np.ascontiguousarray(array, dtype=dtype).tobytes()


def read_idx(path: Path) -> npt.NDArray[np.generic]:
    """Read an IDX file, gunzipping it first when its name ends in ``.gz``.

    The header is read first: a file shorter than its header says, or whose data would not fit in
    memory, is refused before its data are read (or decompressed).
    """
    gz = path.name.lower().endswith(".gz")
    try:
        with gzip.open(path, "rb") if gz else open(path, "rb") as fh:
            head = fh.read(4)
            head += fh.read(4 * head[3]) if len(head) == 4 else b""
            shape, dtype, header_size = _parse_header(head, path.name)
            expected = math.prod(shape) * dtype.itemsize
            if not gz and path.stat().st_size < header_size + expected:
                decode_idx(head + fh.read(), path.name)  # raises: the file is truncated
            check_allocation(expected, f"{path} (shape {shape} {dtype.newbyteorder('=')})", "give a smaller file")
            data = head + fh.read(expected + 1)  # one byte more, to notice data past the end
    except (OSError, EOFError, zlib.error) as exc:
        if not gz:
            raise DataError(f"cannot read {path} ({exc})") from None
        raise DataError(f"{path} is not a complete gzip file ({exc}); download or copy it again") from None
    return decode_idx(data, path.name)


def labels_beside(images: Path) -> Path | None:
    """Return the labels file that belongs to an IDX images file, if it exists beside it."""
    match = _IMAGES_NAME.match(images.name)
    if match is None:
        return None
    labels = images.with_name(f"{match['stem']}-labels{match['sep']}idx1-ubyte{match['gz'] or ''}")
    return labels if labels.is_file() else None
