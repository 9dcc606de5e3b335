"""Decode the caller's radiograph into one RGB uint8 array.

Panoramic X-rays often come as 16-bit grayscale PNG (12 bits of real data is
common); both models take 8-bit, 3-channel input.

Size is checked from the header (PIL's `Image.open` reads only that) before any pixel
is decoded: the pixel count against `max_pixels`, and the decoded bytes (pixels x the
mode's bytes per pixel) against the budget of an RGB image of `max_pixels`. Decoding
then holds the decoded image, one 8-bit copy and the RGB result, not float copies.
"""

from __future__ import annotations

import io
import warnings
from pathlib import PurePosixPath
from urllib.parse import urlparse

import numpy as np
from PIL import Image, ImageMode, ImageOps, PngImagePlugin, UnidentifiedImageError

from deployments.common.errors import InputError, TooLarge, Unsupported

SUPPORTED_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png"}
# Decoded bytes allowed per allowed pixel: the budget is the RGB output of `max_pixels`, so
# a 16-bit grayscale image (2 bytes a pixel) fits at the pixel limit and wider modes
# (RGBA, 32-bit) get proportionally fewer pixels.
BUDGET_BYTES_PER_PIXEL = 3
HIGH_BIT_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
# Rows stretched at a time from a high-bit-depth image: the float temporaries stay small.
STRETCH_ROWS = 256
# PIL inflates a PNG's compressed text chunks while it opens the file, up to 64 MB by
# default, before any size can be checked; radiographs need none of that text. The
# setting is PIL's module-wide one: this process decodes only callers' images.
PngImagePlugin.MAX_TEXT_MEMORY = 1024 * 1024


def image_stem(ref: str, fallback: str) -> str:
    """A file-name stem for the CSV's `file_name` column: the URL's file name, or `fallback`.

    Inline data has no name, so the caller passes something stable such as the job id.
    """
    if "://" not in ref:
        return fallback
    stem = PurePosixPath(urlparse(ref).path).stem
    return stem or fallback


def to_uint8(array: np.ndarray) -> np.ndarray:
    """Stretch a high-bit-depth image linearly from its own min..max onto 0..255.

    Dividing by 257 would leave a 12-bit X-ray stored in 16 bits nearly black;
    stretching the range actually used keeps all its contrast and stays monotonic.
    """
    lo, hi = float(array.min()), float(array.max())
    out = np.zeros(array.shape, dtype=np.uint8)
    if hi <= lo:
        return out
    scale = 255.0 / (hi - lo)
    for start in range(0, array.shape[0], STRETCH_ROWS):
        block = array[start:start + STRETCH_ROWS].astype(np.float64)
        out[start:start + STRETCH_ROWS] = np.round((block - lo) * scale)
    return out


def bytes_per_pixel(mode: str) -> int:
    """Bytes a decoded pixel of PIL `mode` takes as an array (I;16: 2, RGB: 3, I: 4)."""
    info = ImageMode.getmode(mode)
    return len(info.bands) * np.dtype(info.typestr).itemsize


def check_size(width: int, height: int, mode: str, max_pixels: int) -> None:
    """Refuse, from the header's numbers, an image too large to decode."""
    if width * height > max_pixels:
        raise TooLarge(f"image is {width}x{height} pixels, more than the limit of "
                       f"{max_pixels} pixels")
    decoded, budget = width * height * bytes_per_pixel(mode), max_pixels * BUDGET_BYTES_PER_PIXEL
    if decoded > budget:
        raise TooLarge(f"image is {width}x{height} pixels of mode {mode}: {decoded} bytes "
                       f"decoded, more than the limit of {budget} bytes")
    if width < 2 or height < 2:
        raise InputError(f"image is {width}x{height} pixels, too small to analyse")


def decode_image(data: bytes, max_pixels: int) -> tuple[np.ndarray, str]:
    """Decode JPEG/PNG bytes to an (H, W, 3) RGB uint8 array; also returns the format name.

    The pixel count and decoded size are checked from the header before decoding, so a
    small file that expands to a huge bitmap is refused without allocating it.
    """
    try:
        with warnings.catch_warnings():
            # PIL warns (and past 2x its limit raises) on big images; we apply our own limit.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise TooLarge(f"image has too many pixels: {exc}") from exc
    except (UnidentifiedImageError, OSError, ImportError) as exc:
        # ImportError: where ultralytics is imported (the detector, tests) it patches
        # `Image.open` to import pi-heif for any unidentified image, which may be absent.
        raise Unsupported("the input is not a decodable image (expected JPEG or PNG)") from exc
    except (ValueError, SyntaxError) as exc:  # PIL's limits, such as MAX_TEXT_MEMORY
        raise InputError("the image's header or metadata is malformed or too large") from exc
    image_format = image.format
    if image_format not in SUPPORTED_FORMATS:
        raise Unsupported(f"unsupported image format {image_format}: send JPEG or PNG")
    check_size(*image.size, image.mode, max_pixels)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image.load()
            image = ImageOps.exif_transpose(image)
    except (OSError, ValueError, SyntaxError) as exc:
        raise InputError(f"the {image_format} image is corrupt or truncated: {exc}") from exc
    if image.mode in HIGH_BIT_MODES or image.mode == "L":
        # Grayscale (most X-rays): one 8-bit plane repeated into three channels; the
        # decoded image is released before the RGB array is made.
        gray = np.asarray(image)
        del image
        if gray.dtype != np.uint8:
            gray = to_uint8(gray)
        rgb = np.repeat(gray[:, :, None], 3, axis=2)
    else:
        # LA, P, RGBA, CMYK...: PIL's conversion (alpha is dropped); RGB as it is, since
        # converting would copy it.
        rgb = np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
    return np.ascontiguousarray(rgb), image_format


def encode_jpeg(rgb: np.ndarray, quality: int = 90) -> bytes:
    """JPEG bytes of an RGB uint8 array."""
    import cv2

    ok, buffer = cv2.imencode(".jpg", np.ascontiguousarray(rgb[:, :, ::-1]),
                              [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buffer.tobytes()
