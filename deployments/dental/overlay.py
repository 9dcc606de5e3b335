"""Debug overlays: the semantic tooth map and the detected instances, drawn on the input.

Both return RGB uint8 arrays the size of the input image.
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence

import cv2
import numpy as np

from deployments.dental.structures import NUM_SEMANTIC_CLASSES, Instance, fdi_of_class


def palette(n: int) -> np.ndarray:
    """`n` well-separated RGB colours (golden-ratio hue steps)."""
    hues = (np.arange(n) * 0.618033988749895) % 1.0
    return np.array([[round(c * 255) for c in colorsys.hsv_to_rgb(h, 0.85, 1.0)] for h in hues],
                    dtype=np.uint8)


_TOOTH_COLOURS = palette(NUM_SEMANTIC_CLASSES)


def _font_scale(image: np.ndarray) -> float:
    return max(0.4, min(image.shape[:2]) / 900)


def _text(canvas: np.ndarray, text: str, origin: tuple[int, int], colour: tuple[int, int, int],
          scale: float) -> None:
    """Text with a dark outline so it reads on both bone and background."""
    thickness = max(1, round(scale * 2))
    x, y = origin
    # The outline is the same glyphs shifted, not a thicker stroke: OpenCV spaces thicker
    # glyphs further apart, which left a ghost of the text's end.
    for dx, dy in ((-1, -1), (1, -1), (-1, 1), (1, 1)):
        cv2.putText(canvas, text, (x + dx, y + dy), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    (0, 0, 0), thickness, cv2.LINE_AA)
    cv2.putText(canvas, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, thickness,
                cv2.LINE_AA)


def _banner(canvas: np.ndarray, text: str | None) -> np.ndarray:
    if text:
        scale = _font_scale(canvas)
        height = int(30 * scale) + 8
        canvas[:height] = (canvas[:height] * 0.3 + np.array([160, 0, 0]) * 0.7).astype(np.uint8)
        _text(canvas, text, (6, height - 6), (255, 255, 255), scale)
    return canvas


def _blend(canvas: np.ndarray, where: np.ndarray, colour: np.ndarray, alpha: float) -> None:
    canvas[where] = (canvas[where] * (1 - alpha) + colour * alpha).astype(np.uint8)


def semantic_overlay(image: np.ndarray, prob: np.ndarray, alpha: float = 0.45,
                     banner: str | None = None) -> np.ndarray:
    """Each pixel's most likely tooth coloured over the image, FDI numbers at tooth centres."""
    height, width = image.shape[:2]
    labels = prob.argmax(axis=0).astype(np.uint8)
    labels = cv2.resize(labels, (width, height), interpolation=cv2.INTER_NEAREST)
    canvas = image.copy()
    colours = _TOOTH_COLOURS[labels]
    teeth = labels > 0
    canvas[teeth] = (canvas[teeth] * (1 - alpha) + colours[teeth] * alpha).astype(np.uint8)
    scale = _font_scale(image)
    for index in np.unique(labels[teeth]):
        ys, xs = np.nonzero(labels == index)
        if len(ys) >= 50:  # stray pixels would only clutter the map with numbers
            colour = tuple(int(c) for c in _TOOTH_COLOURS[index])
            _text(canvas, fdi_of_class(int(index)), (int(xs.mean()), int(ys.mean())), colour, scale)
    return _banner(canvas, banner)


def instance_overlay(image: np.ndarray, instances: Sequence[Instance], min_score: float = 0.25,
                     alpha: float = 0.4, banner: str | None = None) -> np.ndarray:
    """Masks, boxes and `CLASS score` labels of instances scoring at least `min_score`."""
    canvas = image.copy()
    scale = _font_scale(image)
    class_colours = palette(max([i.class_id for i in instances], default=0) + 1)
    shown = sorted((i for i in instances if i.score >= min_score), key=lambda i: i.score)
    for inst in shown:  # ascending, so the most confident instances end up on top
        x0, y0, x1, y1 = inst.box
        colour = class_colours[inst.class_id]
        _blend(canvas[y0:y1, x0:x1], inst.mask, colour, alpha)
        rgb = tuple(int(c) for c in colour)
        cv2.rectangle(canvas, (x0, y0), (x1 - 1, y1 - 1), rgb, max(1, round(scale * 2)))
        _text(canvas, f"{inst.class_name} {inst.score:.2f}", (x0 + 2, max(y0 - 4, 12)), rgb, scale)
    return _banner(canvas, banner)
