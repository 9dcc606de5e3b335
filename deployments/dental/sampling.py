"""Bilinear resampling of a box of image pixels from a grid of another size.

Both models work on resized images; findings and masks are wanted in image
coordinates but only inside each instance's box, so we resample boxes rather than
whole maps (a whole 33-class map at full resolution is hundreds of MB).
"""

from __future__ import annotations

import numpy as np


def pixel_centers(start: int, stop: int, gain: float, pad: float = 0.0) -> np.ndarray:
    """Grid coordinates of image pixels `start..stop-1` on a grid scaled by `gain`, offset by `pad`.

    Pixel centres map to pixel centres (the convention of cv2.resize and
    `align_corners=False`), so a gain of 1 and pad of 0 samples exactly.
    """
    return (np.arange(start, stop, dtype=np.float64) + 0.5) * gain - 0.5 + pad


def resample(array: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Sample `array[..., h, w]` bilinearly at float `rows` x `cols`; returns `(..., n, m)` float32.

    Coordinates outside the grid are clamped to its edge.
    """
    h, w = array.shape[-2:]
    rows = np.clip(rows, 0, h - 1)
    cols = np.clip(cols, 0, w - 1)
    r0 = np.floor(rows).astype(np.intp)
    c0 = np.floor(cols).astype(np.intp)
    r1 = np.minimum(r0 + 1, h - 1)
    c1 = np.minimum(c0 + 1, w - 1)
    wr = (rows - r0).astype(np.float32)[:, None]
    wc = (cols - c0).astype(np.float32)[None, :]

    def at(r: np.ndarray, c: np.ndarray) -> np.ndarray:
        return array[..., r[:, None], c[None, :]].astype(np.float32)

    top = at(r0, c0) * (1 - wc) + at(r0, c1) * wc
    bottom = at(r1, c0) * (1 - wc) + at(r1, c1) * wc
    return top * (1 - wr) + bottom * wr
