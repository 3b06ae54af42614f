"""The bitstream: a compact container around an entropy-coded integer code (docs/format.md, section 4).

``write_stream`` / ``read_stream`` are the container alone: magic, version, dtype and shape, payload
length, payload, CRC-16. ``compress`` / ``decompress`` join it to a fitted model with a quantized
bottleneck: the code ``transform`` gives, coded with the model's integer tables (``entropy``), the coder
starting from a 20-bit tag of the model's fingerprint, which the decoder must end in. The fingerprint
thus travels inside the payload, where it costs (almost) no bytes: a one-image stream has 7 bytes of
overhead.

Every way a stream can be wrong raises its own subclass of :class:`BitstreamError`::

    DataError
    └── BitstreamError                  not a usable isthmus bitstream
        ├── NotABitstreamError          the magic bytes are missing: some other file
        ├── TruncatedBitstreamError     the stream ends before its header says it does
        ├── CorruptBitstreamError       checksum mismatch, bytes after the end, impossible header
        ├── BitstreamVersionError       written by a newer isthmus with a newer format
        └── WrongModelError             intact, but written by another model than the one decoding it
"""

from __future__ import annotations

import binascii
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from isthmus import pixelnet
from isthmus.data import check_finite
from isthmus.entropy import CdfTables, PayloadError, decode_symbols, encode_symbols
from isthmus.errors import ConfigError, DataError
from isthmus.lossless import PixelCoder, build_pixel_model, image_shape
from isthmus.rdo import search_code
from isthmus.shapes import samples_in, spatial_samples

if TYPE_CHECKING:
    from isthmus.fitted import Fitted

MAGIC = b"\x89I"
#: the newest bitstream version this isthmus reads; a writer gives each stream the lowest that describes it
FORMAT_VERSION = 5
#: the version of a fully convolutional model's streams, whose header stores each array's own shape (4.9)
SPATIAL_VERSION = 5
#: the first version whose lossless streams take their reconstruction exactly, in float64 on the CPU (4.6)
EXACT_SINCE = 4
#: the version a writer gives every lossless stream (the kind of pixel model is the model's)
LOSSLESS_VERSION = 4
#: bits of the model fingerprint that the coder starts from and must end in (docs/format.md, section 4.4)
TAG_BITS = 20
MAX_SAMPLES = 2**20
MAX_VALUES = 2**30
_MAX_NDIM = 8
_MAX_VARINT_BYTES = 9
_CHECKSUM_BYTES = 2
#: dtype code -> dtype (docs/format.md, section 4.2)
DTYPES: tuple[np.dtype[Any], ...] = tuple(
    np.dtype(name)
    for name in ("uint8", "uint16", "int8", "int16", "int32", "float16", "float32", "float64", "int64", "bool")
)


class BitstreamError(DataError):
    """A byte string is not a usable isthmus bitstream for this model."""


class NotABitstreamError(BitstreamError):
    """The data do not start with the bitstream's magic bytes: it is some other kind of file."""


class TruncatedBitstreamError(BitstreamError):
    """The stream ends before the end its header announces."""


class CorruptBitstreamError(BitstreamError):
    """The stream's bytes were changed: checksum mismatch, extra bytes, or a payload that does not decode."""


class BitstreamVersionError(BitstreamError):
    """The stream uses a newer format version than this isthmus reads."""


class WrongModelError(BitstreamError):
    """The stream was written by a different model than the one asked to decode it."""


class Header(NamedTuple):
    """A stream's header fields."""

    dtype: np.dtype[Any]  # the decoded array's dtype
    shape: tuple[int, ...]  # the decoded array's shape
    n_samples: int  # samples of the model's input shape that the shape holds
    lossless: bool = False  # the payload also codes every value exactly (docs/format.md, section 4.6)
    version: int = 1  # the bitstream format version: 2 or 3 for lossless streams with causal contexts or a pixel net
    arrays: tuple[tuple[int, ...], ...] = ()  # version 5: the shape of each array (images of any sizes), 4.9
    listed: bool = False  # version 5: the stream holds a list of arrays (form 1), not one array (form 0)


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF) of ``data``."""
    return binascii.crc_hqx(data, 0xFFFF)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


class _Reader:
    """Reads header fields from the front of a stream; running out of bytes means it was truncated."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int, what: str) -> bytes:
        if self.pos + n > len(self.data):
            raise TruncatedBitstreamError(
                f"the stream ends inside its {what} (after {len(self.data)} bytes); it is truncated"
            )
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def varint(self, what: str) -> int:
        value = 0
        for i in range(_MAX_VARINT_BYTES):
            byte = self.take(1, what)[0]
            value |= (byte & 0x7F) << (7 * i)
            if not byte & 0x80:
                if byte == 0 and i > 0:
                    raise CorruptBitstreamError(f"the {what} is not a minimal varint; the stream is corrupt")
                return value
        raise CorruptBitstreamError(f"the {what} is longer than {_MAX_VARINT_BYTES} bytes; the stream is corrupt")


def _shape_form(shape: tuple[int, ...], sample_shape: tuple[int, ...]) -> tuple[int, list[int]]:
    """(form, the varints that follow it) that describe ``shape`` (docs/format.md, section 4.3)."""
    if shape == (1, *sample_shape):
        return 0, []
    if len(shape) == len(sample_shape) + 1 and shape[1:] == sample_shape:
        return 1, [shape[0]]
    if shape == sample_shape:
        return 2, []
    return 3, [len(shape), *shape]


def n_samples(shape: tuple[int, ...], sample_shape: tuple[int, ...]) -> int:
    """How many samples of ``sample_shape`` an array of ``shape`` holds, or DataError if a stream cannot store it."""
    n_features = math.prod(sample_shape)
    size = math.prod(shape)
    if not shape or size == 0 or size % n_features or len(shape) > _MAX_NDIM:
        raise DataError(
            f"an array of shape {shape} cannot be compressed by this model: it must hold one or more whole "
            f"samples of shape {sample_shape}, in at most {_MAX_NDIM} dimensions"
        )
    if size // n_features > MAX_SAMPLES or size > MAX_VALUES:
        raise DataError(
            f"an array of shape {shape} is too large for one stream (at most {MAX_SAMPLES} samples and "
            f"{MAX_VALUES} values); compress it in parts"
        )
    return size // n_features


def write_stream(
    payload: bytes,
    *,
    dtype: Any,
    shape: tuple[int, ...],
    sample_shape: tuple[int, ...],
    lossless: bool = False,
    version: int = 1,
) -> bytes:
    """Wrap an entropy-coded ``payload`` in the container of docs/format.md, section 4.1.

    Parameters
    ----------
    payload : bytes
    dtype : dtype-like
        The decoded array's dtype, one of ``DTYPES``.
    shape : tuple of int
        The decoded array's shape: ``m`` samples of ``sample_shape``, ``m >= 1``.
    sample_shape : tuple of int
        The model's input shape.
    lossless : bool, default=False
        Set the lossless flag: ``payload`` is a code length, the code payload and the pixel payload.
    version : int, default=1
        The format version: 4 for a lossless stream as written now, 2 and 3 (and 1) for those written
        before (section 4.6).

    Returns
    -------
    bytes
    """
    code = DTYPES.index(np.dtype(dtype))
    if version not in range(1, FORMAT_VERSION + 1) or (version > 1 and not lossless):
        raise ValueError(f"version={version} must be 1, or 2 to {FORMAT_VERSION} for a lossless stream")
    n_samples(shape, sample_shape)
    form, fields = _shape_form(tuple(shape), tuple(sample_shape))
    head = MAGIC + _varint(version) + bytes([code | form << 4 | int(lossless) << 6])
    body = head + b"".join(_varint(v) for v in fields) + _varint(len(payload)) + payload
    return body + crc16(body).to_bytes(_CHECKSUM_BYTES, "little")


def read_stream(data: bytes, *, sample_shape: tuple[int, ...]) -> tuple[Header, bytes]:
    """Check a stream's container as docs/format.md, section 4.7 says; return its header and payload.

    Parameters
    ----------
    data : bytes
    sample_shape : tuple of int
        The reading model's input shape.

    Raises
    ------
    BitstreamError
        One of its subclasses, naming what is wrong.
    """
    data = bytes(data)
    if data[: len(MAGIC)] != MAGIC[: len(data)]:
        raise NotABitstreamError(
            f"the data do not start with the isthmus bitstream magic bytes {MAGIC.hex(' ')} (they start with "
            f"{data[:4].hex(' ') or 'nothing'}); it is not a stream written by compress"
        )
    reader = _Reader(data)
    reader.take(len(MAGIC), "magic bytes")
    version = reader.varint("format version")
    if version > FORMAT_VERSION:
        raise BitstreamVersionError(
            f"the stream uses bitstream format version {version}, newer than this isthmus reads "
            f"({FORMAT_VERSION}); upgrade isthmus"
        )
    if version < 1:
        raise CorruptBitstreamError(f"format version {version} does not exist (versions start at 1); corrupt stream")
    layout = reader.take(1, "layout byte")[0]
    form = (layout >> 4) & 0x3
    arrays: list[tuple[int, ...]] = []
    if version == SPATIAL_VERSION:
        arrays, fields = _read_arrays(reader, form), []
    elif form == 3:
        ndim = reader.varint("number of dimensions")
        if not 1 <= ndim <= _MAX_NDIM:
            raise CorruptBitstreamError(f"the shape has {ndim} dimensions (1 to {_MAX_NDIM} allowed); corrupt stream")
        fields = [reader.varint("shape") for _ in range(ndim)]
    else:
        fields = [reader.varint("number of samples")] if form == 1 else []
    length = reader.varint("payload length")
    end = reader.pos + length + _CHECKSUM_BYTES
    if len(data) < end:
        raise TruncatedBitstreamError(
            f"the stream is {len(data)} bytes long, but its header announces {end}; it is truncated"
        )
    if len(data) > end:
        raise CorruptBitstreamError(f"{len(data) - end} unexpected bytes follow the end of the stream")
    if crc16(data[: end - _CHECKSUM_BYTES]) != int.from_bytes(data[end - _CHECKSUM_BYTES :], "little"):
        raise CorruptBitstreamError("the stream's checksum does not match its bytes; it is corrupt")
    payload = data[reader.pos : reader.pos + length]
    if version == SPATIAL_VERSION:
        return _spatial_header(layout, form, arrays, tuple(sample_shape)), payload
    return _header(layout, form, fields, tuple(sample_shape), version), payload


def _read_arrays(reader: _Reader, form: int) -> list[tuple[int, ...]]:
    """A version-5 stream's array shapes (section 4.9): one array (form 0) or a count, then each's shape."""
    if form > 1:
        raise CorruptBitstreamError(f"shape form {form} is not defined in a version-5 stream (0 or 1); corrupt stream")
    count = 1 if form == 0 else reader.varint("number of arrays")
    if not 1 <= count <= MAX_SAMPLES:
        raise CorruptBitstreamError(f"the stream holds {count} arrays (1 to {MAX_SAMPLES} allowed); corrupt stream")
    shapes = []
    for _ in range(count):
        ndim = reader.varint("number of dimensions")
        if not 2 <= ndim <= _MAX_NDIM:
            raise CorruptBitstreamError(f"an array has {ndim} dimensions (2 to {_MAX_NDIM} allowed); corrupt stream")
        shapes.append(tuple(reader.varint("shape") for _ in range(ndim)))
    return shapes


def _spatial_header(layout: int, form: int, arrays: list[tuple[int, ...]], sample_shape: tuple[int, ...]) -> Header:
    """A version-5 header's meaning, once the checksum holds (section 4.9)."""
    if layout & 0xC0:
        raise CorruptBitstreamError(f"layout byte {layout:#04x} sets bit 6 or 7 in a version-5 stream; corrupt stream")
    code = layout & 0x0F
    if code >= len(DTYPES):
        raise CorruptBitstreamError(f"dtype code {code} is not defined (0 to {len(DTYPES) - 1}); corrupt stream")
    values = sum(math.prod(shape) for shape in arrays)
    if 0 in (v for shape in arrays for v in shape) or values > MAX_VALUES:
        raise CorruptBitstreamError(f"the arrays hold {values} values (1 to {MAX_VALUES} allowed, none empty); corrupt")
    try:
        images = sum(spatial_samples(shape, sample_shape)[0] for shape in arrays)
    except DataError:
        raise WrongModelError(
            f"the stream's arrays of shapes {arrays[:3]} are not images of this model's channels (its training "
            f"samples were {sample_shape}): it was written by another model; decode it with the model that "
            "compressed it"
        ) from None
    if images > MAX_SAMPLES:
        raise CorruptBitstreamError(f"the stream holds {images} images (at most {MAX_SAMPLES}); corrupt stream")
    return Header(DTYPES[code], arrays[0], images, False, SPATIAL_VERSION, tuple(arrays), form == 1)


def write_spatial_stream(payload: bytes, *, dtype: Any, arrays: list[tuple[int, ...]], listed: bool) -> bytes:
    """The version-5 container of section 4.9: ``arrays`` the shape of each array coded in ``payload``,
    ``listed`` for a list of arrays (else exactly one)."""
    if not arrays or (len(arrays) > 1 and not listed):
        raise ValueError(f"a version-5 stream holds one array, or a list of at least one; got {len(arrays)}")
    head = MAGIC + _varint(SPATIAL_VERSION) + bytes([DTYPES.index(np.dtype(dtype)) | int(listed) << 4])
    fields = [len(arrays)] if listed else []
    for shape in arrays:
        fields += [len(shape), *shape]
    body = head + b"".join(_varint(v) for v in fields) + _varint(len(payload)) + payload
    return body + crc16(body).to_bytes(_CHECKSUM_BYTES, "little")


def _header(layout: int, form: int, fields: list[int], sample_shape: tuple[int, ...], version: int = 1) -> Header:
    """The header's meaning, once the checksum holds: impossible fields are corruption (or a forgery),
    a shape that does not hold whole samples of this model's was written by another model."""
    if layout & 0x80:
        raise CorruptBitstreamError(f"layout byte {layout:#04x} sets the reserved bit 7; corrupt stream")
    code = layout & 0x0F
    lossless = bool(layout & 0x40)
    if code >= len(DTYPES):
        raise CorruptBitstreamError(f"dtype code {code} is not defined (0 to {len(DTYPES) - 1}); corrupt stream")
    if lossless and DTYPES[code] != np.uint8:
        raise CorruptBitstreamError(f"a lossless stream holds uint8 data, not {DTYPES[code]}; corrupt stream")
    if version > 1 and not lossless:
        raise CorruptBitstreamError(
            f"a version-{version} stream is lossless, but its lossless flag is not set; corrupt stream"
        )
    shape = {0: (1, *sample_shape), 1: (*fields, *sample_shape), 2: sample_shape}.get(form, tuple(fields))
    size = math.prod(shape)
    n_features = math.prod(sample_shape)
    if size == 0 or size > MAX_VALUES:
        raise CorruptBitstreamError(f"shape {shape} has {size} values (1 to {MAX_VALUES} allowed); corrupt stream")
    if size % n_features or size // n_features > MAX_SAMPLES:
        raise WrongModelError(
            f"the stream's array of shape {shape} does not hold 1 to {MAX_SAMPLES} whole samples of this model's "
            f"shape {sample_shape}: it was written by another model; decode it with the model that compressed it"
        )
    return Header(DTYPES[code], tuple(int(v) for v in shape), size // n_features, lossless, version)


# ---------------------------------------------------------------------------- a model's streams


def coding_state(fitted: Fitted) -> tuple[CdfTables, int]:
    """The model's integer coding tables and its fingerprint tag, or ConfigError for a model without them."""
    tables = fitted.net.bottleneck.tables
    fingerprint = fitted.fingerprint
    if tables is None or fingerprint is None:
        raise ConfigError(
            f"compress and decompress need a model trained with bottleneck='quantized' (this one has "
            f"bottleneck={fitted.net.config.bottleneck!r}); train one with preset 'compress'"
        )
    return tables, int(fingerprint, 16) >> (256 - TAG_BITS)  # the fingerprint's first TAG_BITS bits


def compress(fitted: Fitted, X: Any, *, lossless: bool = False, search: int = 0, lmbda: float | None = None) -> bytes:
    """The model's bitstream of ``X``: the rounded code of every sample, entropy-coded with its tables;
    with ``lossless``, also every value of 8-bit ``X``, coded given the code's reconstruction. With
    ``search`` > 0, :func:`isthmus.rdo.search_code` (gradient steps, then up to ``search`` greedy sweeps)
    improves the rounded code for ``loss + lmbda * bits`` (default: the model's own ``lmbda``), and the
    plainly rounded code's stream is kept when the searched one is larger at no smaller squared error. A fully
    convolutional model writes a version-5 stream of images of any sizes (:func:`compress_images`)."""
    tables, tag = coding_state(fitted)
    if fitted.spatial:
        return compress_images(fitted, X, lossless=lossless, search=search)
    weight = float(fitted.net.config.lmbda if lmbda is None else lmbda)
    if isinstance(search, bool) or not isinstance(search, int) or search < 0:
        raise ConfigError(f"search={search!r} must be an int >= 0 (sweeps of the code search; 0 rounds)")
    if not (math.isfinite(weight) and weight >= 0):
        raise ConfigError(f"lmbda={lmbda!r} must be a finite number >= 0")
    if hasattr(X, "detach"):  # a torch tensor
        X = X.detach().cpu().numpy()
    x = np.asarray(X)
    if x.dtype.byteorder not in "=|":
        x = x.astype(x.dtype.newbyteorder("="))
    if x.dtype not in DTYPES:
        raise DataError(f"cannot compress an array of dtype {x.dtype}; allowed: {', '.join(map(str, DTYPES))}")
    pixel_tables = _lossless_tables(fitted) if lossless else None
    if lossless and x.dtype != np.uint8:
        raise DataError(f"lossless compression stores 8-bit data; X has dtype {x.dtype}: pass X.astype(np.uint8)")
    sample_shape = tuple(fitted.input_shape)
    shape = tuple(int(s) for s in x.shape)
    m = samples_in(shape, sample_shape)  # never reshapes an array into samples it does not hold
    n_samples(shape, sample_shape)
    samples = x.reshape(m, *sample_shape).astype(np.float32)
    check_finite(samples, "X")
    scaled = fitted.scale(samples)
    code = fitted.encode(scaled)  # (m, n_components)
    if not np.all(np.isfinite(code)) or np.abs(code).max(initial=0.0) >= 2**31 - 1:
        raise DataError("the code of X is not finite or exceeds int32; X is far outside the training data's range")
    index = np.tile(np.arange(code.shape[1]), m)

    def payload_of(code: np.ndarray) -> bytes:
        payload = encode_symbols(np.rint(code).astype(np.int64).ravel(), tables, index, tag=tag)
        if pixel_tables is None:
            return payload
        pixels = _encode_pixels(fitted, x.reshape(m, -1), code, pixel_tables, exact=LOSSLESS_VERSION >= EXACT_SINCE)
        return _varint(len(payload)) + payload + pixels

    payload = payload_of(np.rint(code))
    if search:
        searched = search_code(fitted.net, tables, scaled, lmbda=weight, sweeps=search)
        payload = _never_worse(fitted, samples, np.rint(code), payload, searched, payload_of(searched), lossless)
    version = LOSSLESS_VERSION if pixel_tables is not None else 1  # the lossless version codes exact contexts
    return write_stream(
        payload, dtype=x.dtype, shape=shape, sample_shape=sample_shape, lossless=lossless, version=version
    )


def _never_worse(
    fitted: Fitted,
    samples: np.ndarray,
    plain: np.ndarray,
    plain_payload: bytes,
    searched: np.ndarray,
    searched_payload: bytes,
    lossless: bool,
) -> bytes:
    """The searched payload, unless the plainly rounded one is no larger at no lower quality.

    The search keeps, per sample, whichever code scores better under the model's own objective (its loss
    plus ``lmbda`` times the ideal bits), which need not be the squared error that PSNR measures, nor the
    real bytes of the stream. This settles it on those: a searched stream that is larger without a smaller
    squared error (in the caller's units) is never returned; a lossless stream, exact either way, is the
    smaller of the two.
    """
    if len(searched_payload) <= len(plain_payload):
        return searched_payload
    if lossless:
        return plain_payload
    errors = [float(np.square(fitted.decode(c).astype(np.float64) - samples).sum()) for c in (plain, searched)]
    return searched_payload if errors[1] < errors[0] else plain_payload


def decompress(fitted: Fitted, data: bytes) -> np.ndarray | list[np.ndarray]:
    """The array ``compress`` coded into ``data``, decoded with the model, in its stored dtype and shape."""
    tables, tag = coding_state(fitted)
    header, payload = read_stream(data, sample_shape=tuple(fitted.input_shape))
    if fitted.spatial != (header.version == SPATIAL_VERSION):
        writer = "a fully convolutional model (version 5)" if not fitted.spatial else "a model of fixed input size"
        raise WrongModelError(
            f"the stream was written by {writer}, but this model is {'' if fitted.spatial else 'not '}fully "
            "convolutional: decode it with the model that compressed it"
        )
    if fitted.spatial:
        return decompress_images(fitted, header, payload, tables, tag)
    n_components = len(tables.cdf)
    pixels = b""
    if header.lossless:
        pixel_tables = _lossless_tables(fitted)
        reader = _Reader(payload)
        length = reader.varint("code length")
        if reader.pos + length > len(payload):
            raise CorruptBitstreamError("the lossless payload's code length exceeds the payload; corrupt stream")
        payload, pixels = payload[reader.pos : reader.pos + length], payload[reader.pos + length :]
    _check_payload_size(header.n_samples * n_components, payload, tables, f"{header.n_samples} samples")
    index = np.tile(np.arange(n_components), header.n_samples)
    try:
        values = decode_symbols(payload, tables, index, tag=tag)
    except PayloadError:
        # the checksum held, so these are the bytes the writer wrote: another model's tables or tag wrote them
        raise WrongModelError(
            "the stream is intact but does not decode with this model (its payload does not end in this model's "
            "fingerprint tag): it was written by another model; decode it with the model that compressed it"
        ) from None
    code = values.reshape(header.n_samples, n_components).astype(np.float32)
    if header.lossless:
        pixel_values = _decode_pixels(fitted, pixels, code, pixel_tables, header.version)
        return pixel_values.astype(np.uint8).reshape(header.shape)
    return _as_dtype(fitted.decode(code).reshape(header.shape), header.dtype)


#: bits an ANS payload can hold beyond its values' information: the coder's 64-bit state and word padding
_PAYLOAD_SLACK_BITS = 96


def _check_payload_size(n_values: int, payload: bytes, tables: CdfTables, what: str) -> None:
    """Refuse, before decoding, a header announcing more values than the payload can hold.

    Each value costs at least ``-log2(p)`` bits of its table's most likely symbol ``p``, so a stream of
    ``n_values`` values, as many of each table, needs at least ``n_values * mean(min_bits)`` bits. A header
    forged (or written by another model) to claim a million samples around a few bytes would otherwise
    make the decoder produce them all.
    """
    freq = np.diff(tables.cdf.astype(np.int64), axis=1)  # (n_tables, max_length), zeros past each length
    min_bits = tables.precision - np.log2(freq.max(axis=1))  # (n_tables,)
    needed = n_values * float(min_bits.mean())
    if needed > 8 * len(payload) + _PAYLOAD_SLACK_BITS:
        raise WrongModelError(
            f"the stream announces {what}, which this model codes in at least "
            f"{math.ceil(needed / 8)} bytes, but its payload has {len(payload)}: it was written by another model "
            "(or forged); decode it with the model that compressed it"
        )


#: the stream version that named each kind of pixel model before version 4: a pixel network, counted causal
#: contexts, and the 256 tables of the first scheme (files from before the pixel model)
_PIXEL_KINDS = {
    1: "reconstruction contexts (stream version 1)",
    2: "causal contexts (stream version 2)",
    3: "a pixel network (stream version 3)",
}

#: what ``fit`` builds the pixel model of each ``pixel_model`` choice with (``config.CHOICES``), from the
#: rounded reconstruction and the values, ``(m, rows, columns)`` integers 0..255 each
PIXEL_MODELS: dict[str, Callable[..., PixelCoder]] = {
    "counts": build_pixel_model,
    "net": pixelnet.train_pixel_net,
}


def _lossless_tables(fitted: Fitted) -> PixelCoder:
    """The model's pixel model: a pixel network, counted contexts, or the 256 pixel tables of a file
    written before them."""
    tables = fitted.lossless_tables
    if tables is None:
        raise ConfigError(
            "lossless streams need a model fitted on 8-bit data (every value an integer 0..255), which holds the "
            "pixel tables; this model's training data were not 8-bit"
        )
    return tables


def _pixel_tag(fitted: Fitted) -> int:
    """The pixel payload's tag: the fingerprint's bits TAG_BITS to 2 * TAG_BITS - 1."""
    return (int(str(fitted.fingerprint), 16) >> (256 - 2 * TAG_BITS)) & ((1 << TAG_BITS) - 1)


def contexts(fitted: Fitted, code: np.ndarray, *, exact: bool = True) -> np.ndarray:
    """``(m * n_features,)`` each value's reconstruction from ``code``, rounded into 0..255: a part of its
    context in a lossless stream. ``exact`` (version 4): computed by :func:`exact_reconstruction`; else
    (versions 1 to 3) as ``decompress`` reconstructs, on the model's device, in its precision."""
    recon = exact_reconstruction(fitted, code) if exact else fitted.decode(code)
    return np.clip(np.rint(recon.reshape(-1)), 0, 255).astype(np.int64)


#: rows of a code decoded at a time in float64
_EXACT_BATCH = 256


def exact_reconstruction(fitted: Fitted, code: np.ndarray) -> np.ndarray:
    """The reconstruction of ``code`` ``(m, n_components)`` in float64, on the CPU: what a lossless stream's
    contexts are rounded from since version 4, the same on every machine but for summation order.

    In float32, two BLAS libraries give reconstructions a few units of 2**-24 apart, so that by estimate
    one value in 10**5 rounds differently; a GPU's bfloat16 rounded 0.5% of a test model's values
    differently; either way a stream written on one machine did not decode on the other. In float64 two
    machines are some 2**-50 apart: a value then rounds differently only if it lies within that of a
    half-integer, about once in 10**13 values (and a stream that meets one fails to decode, with
    ``WrongModelError``, rather than giving wrong values).
    """
    import copy

    import torch

    fitted.check_decoder("decode")
    decoder = copy.deepcopy(fitted.net.decoder).to(device="cpu", dtype=torch.float64).eval()  # ms for a small one
    z = torch.from_numpy(np.ascontiguousarray(code, dtype=np.float64))
    with torch.inference_mode():  # as net.decode does
        parts = [fitted.net.output(decoder(z[s : s + _EXACT_BATCH])).numpy() for s in range(0, len(z), _EXACT_BATCH)]
    shape = (len(code), *fitted.input_shape)
    return fitted.scaler.inverse_transform(np.concatenate(parts).reshape(shape), np.float64)


def _encode_pixels(fitted: Fitted, x: np.ndarray, code: np.ndarray, pixels: PixelCoder, *, exact: bool) -> bytes:
    """The pixel payload of ``x``, ``(m, n_features)`` uint8, given the code's reconstruction (:func:`contexts`)."""
    recon = contexts(fitted, code, exact=exact)  # (m * n_features,)
    image = (len(x), *image_shape(tuple(fitted.input_shape)))  # (m, rows, columns)
    return pixels.encode(x.reshape(image), recon.reshape(image), tag=_pixel_tag(fitted))


def _decode_pixels(fitted: Fitted, data: bytes, code: np.ndarray, pixels: PixelCoder, version: int) -> np.ndarray:
    """The values of a lossless stream of ``version``, decoded given the code's reconstruction: exact in
    version 4, coded by the model's pixel model; as ``decompress`` reconstructs before, where the version
    names the kind of pixel model."""
    have = pixels.stream_version
    if version < EXACT_SINCE and version != have:
        raise WrongModelError(
            f"the lossless stream has version {version}, but this model's pixel model is {_PIXEL_KINDS[have]}: it "
            "was written by another model; decode it with the model that compressed it"
        )
    recon = contexts(fitted, code, exact=version >= EXACT_SINCE)
    image = (len(code), *image_shape(tuple(fitted.input_shape)))  # (m, rows, columns)
    try:
        return pixels.decode(data, recon.reshape(image), tag=_pixel_tag(fitted))
    except PayloadError:
        raise WrongModelError(
            "the lossless stream's pixels do not decode with this model: it was written by another model, or "
            "on a machine whose network computes a different rounded reconstruction than this one's"
        ) from None


def build_lossless_tables(fitted: Fitted, x: np.ndarray, **options: Any) -> PixelCoder | None:
    """The pixel model of lossless streams, built on 8-bit training data ``x``; None for other data.

    The parameter ``pixel_model`` picks it: ``"counts"`` counts tables per causal context
    (:mod:`isthmus.lossless`), ``"net"`` trains a pixel network (:mod:`isthmus.pixelnet`; ``options`` go
    to its ``train_pixel_net``, its seed is the parameter ``random_state``, its progress bar follows
    ``verbose`` and it trains on the model's device).
    """
    flat = x.reshape(len(x), -1)
    if flat.size == 0 or flat.min() < 0 or flat.max() > 255 or not np.array_equal(flat, np.rint(flat)):
        return None
    image = (len(x), *image_shape(tuple(fitted.input_shape)))
    recon = contexts(fitted, fitted.encode(fitted.scale(x))).reshape(image)
    values = flat.astype(np.int64).reshape(image)
    kind = fitted.param("pixel_model")
    if kind != "net" and options:
        raise ConfigError(
            f"{', '.join(sorted(options))} train a pixel network: set pixel_model='net' first (this model has "
            f"pixel_model={kind!r})"
        )
    if kind == "net":
        options.setdefault("seed", fitted.param("random_state") or 0)
        options.setdefault("progress", bool(fitted.param("verbose")))
        options.setdefault("device", str(fitted.device))
    return PIXEL_MODELS[kind](recon, values, **options)


def _as_dtype(x: np.ndarray, dtype: np.dtype[Any]) -> np.ndarray:
    if dtype == np.bool_:
        return x >= 0.5
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return np.clip(np.rint(x), info.min, info.max).astype(dtype)
    return x.astype(dtype)


# ---------------------------------------------------------------------------- images of any sizes


def compress_images(fitted: Fitted, X: Any, *, lossless: bool = False, search: int = 0) -> bytes:
    """A fully convolutional model's version-5 stream (section 4.9) of ``X``: one array of images of one
    size, or a list of such arrays of any sizes, each coded as its code map and stored with its shape."""
    tables, tag = coding_state(fitted)
    if lossless:
        raise ConfigError(
            "lossless streams need a model of fixed input size, whose pixel model knows the image's shape; this "
            "model is fully convolutional: compress without lossless, or train a fixed-size model for lossless"
        )
    if search:
        raise ConfigError(
            f"search={search} optimizes a code vector; a fully convolutional model's code is a map, which the "
            "search does not handle: compress with search=0"
        )
    listed = isinstance(X, (list, tuple))
    arrays = [_as_array(a) for a in (X if listed else [X])]
    if not arrays:
        raise DataError("X is an empty list; give at least one image")
    dtypes = {a.dtype for a in arrays}
    if len(dtypes) > 1:
        raise DataError(f"the arrays of X have dtypes {sorted(map(str, dtypes))}; give them all one dtype")
    values, index = [], []
    for a in arrays:
        m, image = spatial_samples(a.shape, tuple(fitted.input_shape))  # DataError naming both shapes
        if a.size > MAX_VALUES or m > MAX_SAMPLES:
            raise DataError(f"an array of shape {a.shape} is too large for one stream; compress it in parts")
        samples = a.reshape(m, *image).astype(np.float32)
        check_finite(samples, "X")
        code = fitted.encode(fitted.scale(samples))  # (m, n_components, h, w)
        if not np.all(np.isfinite(code)) or np.abs(code).max(initial=0.0) >= 2**31 - 1:
            raise DataError("the code of X is not finite or exceeds int32; X is far outside the training data's range")
        values.append(np.rint(code).astype(np.int64).ravel())
        index.append(_channel_index(code.shape))
    payload = encode_symbols(np.concatenate(values), tables, np.concatenate(index), tag=tag)
    return write_spatial_stream(payload, dtype=arrays[0].dtype, arrays=[a.shape for a in arrays], listed=listed)


def decompress_images(
    fitted: Fitted, header: Header, payload: bytes, tables: CdfTables, tag: int
) -> np.ndarray | list[np.ndarray]:
    """The array (or list of arrays) of a version-5 stream, decoded with a fully convolutional model."""
    from isthmus.nets import stride_of

    stride = stride_of(fitted.net.config.hidden_layer_sizes)
    grids = []  # per array: the code's shape (m, n_components, h, w) and the image's (height, width)
    for shape in header.arrays:
        m, image = spatial_samples(shape, tuple(fitted.input_shape))
        height, width = image[-2:]
        grids.append((m, len(tables.cdf), -(-height // stride), -(-width // stride)))
    index = np.concatenate([_channel_index(grid) for grid in grids])
    _check_payload_size(len(index), payload, tables, f"images of {len(index)} code values")
    try:
        values = decode_symbols(payload, tables, index, tag=tag)
    except PayloadError:
        raise WrongModelError(
            "the stream is intact but does not decode with this model (its payload does not end in this model's "
            "fingerprint tag): it was written by another model; decode it with the model that compressed it"
        ) from None
    out, start = [], 0
    for shape, grid in zip(header.arrays, grids, strict=True):
        code = values[start : start + math.prod(grid)].reshape(grid).astype(np.float32)
        start += math.prod(grid)
        decoded = fitted.decode(code)[..., : shape[-2], : shape[-1]]  # cut back from the padded size
        out.append(_as_dtype(decoded.reshape(shape), header.dtype))
    return out if header.listed else out[0]


def _channel_index(shape: tuple[int, ...]) -> np.ndarray:
    """The table of each value of a code map ``(m, n_components, h, w)`` in row-major order: its channel."""
    return np.broadcast_to(np.arange(shape[1]).reshape(1, -1, 1, 1), shape).ravel()


def _as_array(X: Any) -> np.ndarray:
    """``X`` (an array or a torch tensor) as a native-endian array of one of ``DTYPES``."""
    x = np.asarray(X.detach().cpu().numpy() if hasattr(X, "detach") else X)
    if x.dtype.byteorder not in "=|":
        x = x.astype(x.dtype.newbyteorder("="))
    if x.dtype not in DTYPES:
        raise DataError(f"cannot compress an array of dtype {x.dtype}; allowed: {', '.join(map(str, DTYPES))}")
    return x
