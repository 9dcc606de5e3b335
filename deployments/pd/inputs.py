"""The `pd-segmentation` job input: schema, decoding, and the checks on signals.

Signals arrive as JSON arrays (one signal, or a list of equal-length signals) or as a
`.npy` / CSV file given by URL (`https://`, `s3://`, `data:`) or as base64. Sizes are
checked before anything large is converted: the JSON nesting lengths, the base64
length, and the `.npy` header's shape and dtype (read from the first bytes of the
base64, before the rest is decoded). An `.npy` is viewed in place, never copied before
its size is known; a CSV is parsed value by value and refused as soon as it passes a
limit, so parsing holds at most the accepted samples (8 bytes each) beside the file.
Everything the caller got wrong raises `InputError`, whose message never quotes the
file's content (a URL's body must not come back through an error).
"""

from __future__ import annotations

import array
import base64
import binascii
import codecs
import io
import itertools
import math
import re
from typing import Any, Literal, NamedTuple

import numpy as np
from pydantic import BaseModel, ConfigDict, model_validator

from deployments.common.errors import InputError, TooLarge
from deployments.common.fetch import S3Config, fetch_input
from deployments.pd.config import PDLimits

# Below this the high-pass filter's edge transients are most of the signal.
MIN_SAMPLES = 16
NPY_MAGIC = b"\x93NUMPY"
# Bytes read for an .npy header before the whole file is decoded or loaded: numpy pads
# headers to 64 or 128 bytes, so 768 is ample for any 1-D or 2-D numeric array.
NPY_HEADER_BYTES = 768
# Array kinds accepted in an .npy: signed and unsigned integers, floating point.
NPY_KINDS = "iuf"
# A CSV value: the bytes between separators (commas, semicolons, whitespace).
_CSV_VALUE = re.compile(rb"[^,;\s]+")
# A non-blank CSV line, from its first value to its end: blank lines are skipped in C.
_CSV_LINE = re.compile(rb"[^,;\s][^\n]*")


class PDInput(BaseModel):
    """`job["input"]`: exactly one of `signals`, `file_url`, `file_base64`."""

    model_config = ConfigDict(extra="forbid")

    signals: Any = None
    file_url: str | None = None
    file_base64: str | None = None
    format: Literal["npy", "csv"] | None = None  # default: sniffed from the bytes

    @model_validator(mode="after")
    def _one_source(self) -> PDInput:
        given = [name for name in ("signals", "file_url", "file_base64")
                 if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of signals, file_url or file_base64"
                             + (f" (got {', '.join(given)})" if given else ""))
        return self


def check_shape(rows: int, samples: int, limits: PDLimits) -> None:
    """Refuse shapes over the limits; called before the data is converted."""
    if rows == 0 or samples == 0:
        raise InputError("signals are empty")
    if rows > limits.max_rows:
        raise TooLarge(f"{rows} signals is more than the limit of {limits.max_rows}")
    if samples > limits.max_samples:
        raise TooLarge(
            f"signals of {samples} samples are longer than the limit of {limits.max_samples}")
    if rows * samples > limits.max_total_samples:
        raise TooLarge(f"{rows} x {samples} samples is more than the limit of "
                       f"{limits.max_total_samples} samples per request")
    if samples < MIN_SAMPLES:
        raise InputError(f"signals need at least {MIN_SAMPLES} samples, got {samples}")


def finish(array: np.ndarray, limits: PDLimits) -> np.ndarray:
    """A checked (rows, samples) float64 array: 1-D becomes one row; values all finite."""
    if array.ndim == 0 or array.ndim > 2:
        raise InputError(f"signals must be 1-D (one signal) or 2-D (one per row), "
                         f"got {array.ndim}-D with shape {list(array.shape)}")
    if array.ndim == 1:
        array = array[None, :]
    check_shape(array.shape[0], array.shape[1], limits)
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise InputError(f"signals must be real numbers, got dtype {array.dtype}")
    array = array.astype(np.float64, copy=False)
    bad = ~np.isfinite(array)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise InputError(f"signals contain {int(bad.sum())} NaN, infinite or null values "
                         f"(first at signal {row}, sample {col})")
    return array


def signals_from_json(value: object, limits: PDLimits) -> np.ndarray:
    """Signals from a JSON array of numbers, or of equal-length arrays of numbers."""
    if not isinstance(value, list):
        raise InputError("signals must be a JSON array of numbers or of arrays of numbers")
    if not value:
        raise InputError("signals are empty")
    if isinstance(value[0], list):
        if not all(isinstance(row, list) for row in value):
            raise InputError("signals mix arrays and numbers: give one array of numbers, "
                             "or an array of arrays")
        lengths = [len(row) for row in value]
        ragged = next((i for i, n in enumerate(lengths) if n != lengths[0]), None)
        if ragged is not None:
            raise InputError(f"signals must all have the same length: signal 0 has "
                             f"{lengths[0]} samples, signal {ragged} has {lengths[ragged]}")
        if value[0] and isinstance(value[0][0], list):
            raise InputError("signals must be 1-D (one signal) or 2-D (one per row), got 3-D "
                             "or deeper nesting")
        check_shape(len(value), lengths[0], limits)
    else:
        check_shape(1, len(value), limits)
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"signals must contain only numbers: {exc}") from exc
    return finish(array, limits)


class NpyHeader(NamedTuple):
    shape: tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool
    data_offset: int  # where the array's bytes start


def npy_header(prefix: bytes) -> NpyHeader:
    """Shape, dtype and layout from the start of an `.npy` file, without reading its data."""
    if not prefix.startswith(NPY_MAGIC):
        raise InputError("not a .npy file: it does not start with the .npy magic bytes")
    stream = io.BytesIO(prefix)
    try:
        version = np.lib.format.read_magic(stream)
        read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                else np.lib.format.read_array_header_2_0)
        shape, fortran_order, dtype = read(stream)
    except (ValueError, EOFError, SyntaxError, TypeError) as exc:
        # numpy's message quotes the header: say what is wrong, not what it holds.
        raise InputError(f"not a readable .npy file: its header is malformed or longer than "
                         f"{NPY_HEADER_BYTES} bytes") from exc
    return NpyHeader(shape, dtype, fortran_order, stream.tell())


def check_npy_header(prefix: bytes, limits: PDLimits) -> NpyHeader:
    """Refuse an `.npy` whose declared dtype or shape is unacceptable, before its data is
    read: only integers and floats, and no more samples than `limits` allow."""
    header = npy_header(prefix)
    shape, dtype = header.shape, header.dtype
    if dtype.hasobject:
        raise InputError(".npy files holding Python objects are not accepted")
    if dtype.kind not in NPY_KINDS or dtype.fields is not None:
        raise InputError(f".npy dtype {dtype.str} is not accepted: signals must be real "
                         "numbers (integers or floating point)")
    if len(shape) == 0 or len(shape) > 2:
        raise InputError(f"signals must be 1-D (one signal) or 2-D (one per row), "
                         f"got {len(shape)}-D with shape {list(shape)}")
    rows, samples = (1, shape[0]) if len(shape) == 1 else shape
    check_shape(rows, samples, limits)
    return header


def signals_from_npy(data: bytes, limits: PDLimits) -> np.ndarray:
    """Signals from `.npy` bytes: the header is checked, then the data is viewed in place."""
    header = check_npy_header(data[:NPY_HEADER_BYTES], limits)
    count = math.prod(header.shape)
    if len(data) - header.data_offset != count * header.dtype.itemsize:
        raise InputError("the .npy data does not match its header's shape and dtype "
                         "(the file is truncated or has bytes after the array)")
    flat = np.frombuffer(data, header.dtype, count, header.data_offset)
    return finish(flat.reshape(header.shape, order="F" if header.fortran_order else "C"), limits)


def signals_from_csv(data: bytes, limits: PDLimits) -> np.ndarray:
    """One signal per line (comma, semicolon, tab or space separated); a header line is
    skipped. A single column of numbers is read as one signal.

    Values are parsed one by one into a float64 buffer, and parsing stops as soon as a
    row, the row count or the total passes `limits`: memory is the accepted samples.
    """
    start = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    lines = _CSV_LINE.finditer(data, start)
    first = next(lines, None)
    if first is None:
        raise InputError("signals are empty")
    head = _CSV_VALUE.match(data, first.start()).group()
    if not _is_utf8(head):
        raise InputError("CSV input is not UTF-8 text (for .npy give format 'npy')")
    if not _is_number(head):
        first = next(lines, None)  # a header line
        if first is None:
            raise InputError("signals are empty")
    values = array.array("d")
    width = _read_csv_row(data, first, values, 1, limits.max_samples)
    if width > limits.max_samples:
        raise TooLarge(f"CSV data row 1 has more than {limits.max_samples} values: signals "
                       f"are limited to {limits.max_samples} samples")
    rows = 1
    for line in lines:
        rows += 1
        # One column is one signal, its rows the samples; otherwise each row is a signal.
        if width == 1 and rows > limits.max_samples:
            raise TooLarge(f"the CSV column has more than {limits.max_samples} values: "
                           f"signals are limited to {limits.max_samples} samples")
        if width > 1 and rows > limits.max_rows:
            raise TooLarge(f"the CSV has more than {limits.max_rows} rows: the limit is "
                           f"{limits.max_rows} signals")
        if rows * width > limits.max_total_samples:
            raise TooLarge(f"the CSV has more than {limits.max_total_samples} values: the "
                           f"limit is {limits.max_total_samples} samples per request")
        found = _read_csv_row(data, line, values, rows, width)
        if found != width:
            raise InputError(f"CSV rows must all have the same number of values: the first "
                             f"has {width}, data row {rows} has "
                             f"{found if found < width else 'more'}")
    shape = (1, rows) if width == 1 else (rows, width)
    check_shape(*shape, limits)
    return finish(np.frombuffer(values, np.float64).reshape(shape), limits)


def _read_csv_row(data: bytes, line: re.Match[bytes], values: array.array, row: int,
                  cap: int) -> int:
    """Append the numbers of one CSV line to `values`, reading at most `cap` + 1 of them;
    the count read."""
    before = len(values)
    found = itertools.islice(_CSV_VALUE.finditer(data, line.start(), line.end()), cap + 1)
    try:
        values.extend(map(float, map(re.Match.group, found)))
    except ValueError:
        # `extend` appended the values before the bad one: its position is the count.
        column = len(values) - before
        bad = next(itertools.islice(_CSV_VALUE.finditer(data, line.start(), line.end()),
                                    column, None)).group()
        if not _is_utf8(bad):
            raise InputError("CSV input is not UTF-8 text (for .npy give format 'npy')") from None
        raise InputError(f"CSV values must be numbers: data row {row}, value {column + 1} is "
                         "not a number") from None
    return len(values) - before


def _is_number(text: bytes) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _is_utf8(text: bytes) -> bool:
    try:
        text.decode()
    except UnicodeDecodeError:
        return False
    return True


def _peek_base64(encoded: str) -> bytes:
    """The first bytes behind base64 text, decoding only its first characters."""
    chars = NPY_HEADER_BYTES * 4 // 3
    head = re.sub(r"\s+", "", encoded[:2 * chars])[:chars]
    head = head[:len(head) // 4 * 4]
    try:
        return base64.b64decode(head, altchars=b"-_" if "-" in head or "_" in head else None)
    except (binascii.Error, ValueError) as exc:
        raise InputError(f"file_base64 is not valid base64: {exc}") from exc


def load_signals(request: PDInput, limits: PDLimits, s3: S3Config | None = None) -> np.ndarray:
    """The request's signals as a checked (rows, samples) float64 array.

    Blocking (it may fetch a URL): call it off the event loop.
    """
    if request.signals is not None:
        return signals_from_json(request.signals, limits)
    if request.file_base64 is not None:
        encoded = request.file_base64
        payload = encoded.partition(",")[2] if encoded.startswith("data:") else encoded
        prefix = _peek_base64(payload)
        if request.format != "csv" and prefix.startswith(NPY_MAGIC):
            check_npy_header(prefix, limits)
        ref = encoded
    else:
        ref = request.file_url
        if not re.match(r"^(https?|s3|data):", ref, re.IGNORECASE):
            raise InputError("file_url must be an https://, http://, s3:// or data: URL")
    data = fetch_input(ref, limits.max_input_bytes, limits.outbound, limits.fetch_timeout_s, s3)
    fmt = request.format or ("npy" if data.startswith(NPY_MAGIC) else "csv")
    return signals_from_npy(data, limits) if fmt == "npy" else signals_from_csv(data, limits)
