"""A generated panoramic-like radiograph for tests, benchmarks and demos (no patient data).

Two arches of 16 bright, tooth-shaped ellipses on a darker jaw, with noise.
"""

from __future__ import annotations

import cv2
import numpy as np


def synthetic_radiograph(height: int = 256, width: int = 512, seed: int = 0,
                         bit_depth: int = 8) -> np.ndarray:
    """A grayscale (H, W) image, uint8, or uint16 using 12 bits when `bit_depth` is 16."""
    rng = np.random.default_rng(seed)
    image = np.full((height, width), 40, dtype=np.float32)
    cv2.ellipse(image, (width // 2, height // 2), (int(width * 0.45), int(height * 0.42)),
                0, 0, 360, 80, -1)
    for row, direction in ((0.33, -1), (0.67, 1)):
        for i in range(16):
            x = int(width * (0.12 + 0.76 * (i + 0.5) / 16))
            # the arch curves: teeth at the ends sit closer to the middle row
            y = int(height * row + direction * height * 0.06 * (1 - ((i - 7.5) / 7.5) ** 2))
            cv2.ellipse(image, (x, y), (max(2, width // 45), max(4, height // 9)), 0, 0, 360,
                        200 + 30 * rng.random(), -1)
    image += rng.normal(0, 6, image.shape)
    if bit_depth == 16:
        return np.clip(image * 16, 0, 4095).astype(np.uint16)
    return np.clip(image, 0, 255).astype(np.uint8)
