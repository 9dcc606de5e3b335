"""Decode the caller's radiograph into one RGB uint8 array.

Panoramic X-rays often come as 16-bit grayscale PNG (12 bits of real data is
common); both models take 8-bit, 3-channel input.
"""

from __future__ import annotations

import io
import warnings
from pathlib import PurePosixPath
from urllib.parse import urlparse

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from deployments.common.errors import InputError

SUPPORTED_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png"}


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
    array = array.astype(np.float64)
    lo, hi = float(array.min()), float(array.max())
    if hi <= lo:
        return np.zeros(array.shape, dtype=np.uint8)
    return np.round((array - lo) * (255.0 / (hi - lo))).astype(np.uint8)


def decode_image(data: bytes, max_pixels: int) -> tuple[np.ndarray, str]:
    """Decode JPEG/PNG bytes to an (H, W, 3) RGB uint8 array; also returns the format name.

    The pixel count is checked from the header before decoding, so a small file
    that expands to a huge bitmap is refused without allocating it.
    """
    try:
        with warnings.catch_warnings():
            # PIL warns (and past 2x its limit raises) on big images; we apply our own limit.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise InputError(f"image has too many pixels: {exc}", status_code=413) from exc
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError("the input is not a decodable image (expected JPEG or PNG)") from exc
    image_format = image.format
    if image_format not in SUPPORTED_FORMATS:
        raise InputError(f"unsupported image format {image_format}: send JPEG or PNG")
    width, height = image.size
    if width * height > max_pixels:
        raise InputError(f"image is {width}x{height} pixels, more than the limit of "
                         f"{max_pixels} pixels", status_code=413)
    if width < 2 or height < 2:
        raise InputError(f"image is {width}x{height} pixels, too small to analyse")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image.load()
            image = ImageOps.exif_transpose(image)
    except (OSError, ValueError, SyntaxError) as exc:
        raise InputError(f"the {image_format} image is corrupt or truncated: {exc}") from exc
    if image.mode in {"I", "I;16", "I;16B", "I;16L", "I;16N", "F"}:
        gray = to_uint8(np.asarray(image))
        rgb = np.repeat(gray[:, :, None], 3, axis=2)
    else:
        # L, LA, P, RGBA, CMYK...: PIL's conversion; alpha is dropped.
        rgb = np.asarray(image.convert("RGB"))
    return np.ascontiguousarray(rgb), image_format


def encode_jpeg(rgb: np.ndarray, quality: int = 90) -> bytes:
    """JPEG bytes of an RGB uint8 array."""
    import cv2

    ok, buffer = cv2.imencode(".jpg", np.ascontiguousarray(rgb[:, :, ::-1]),
                              [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buffer.tobytes()
