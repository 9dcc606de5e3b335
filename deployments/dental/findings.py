"""Per-tooth findings from semantic probabilities and detected instances (pure numpy).

The algorithm is the original dental-pano-ai post-processing:

- Instances of each finding class are read from the detector by class name
  (teeth: any name starting with TOOTH, then tooth non-maximum suppression by
  intersection over the smaller mask, since per-FDI tooth classes duplicate).
- For one instance, each tooth's share is the mean over the instance's pixels of
  the tooth's probability, discounted where `d` instances of that finding overlap
  (`1 - (1 - p) ** (1 / d)`, so d overlapping instances together count about as
  much as one), with background dropped and shares normalised to sum to 1.
- A finding's per-tooth score is the instance score times the share; instances
  combine by noisy-OR (`1 - prod(1 - s)`).
- Teeth use the share alone (as in the original): tooth presence is the noisy-OR
  of shares, and MISSING = 1 - presence.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

import numpy as np

from deployments.dental.sampling import pixel_centers, resample
from deployments.dental.structures import FindingEntry, FindingType, Instance

TOOTH_NMS_THRESHOLD = 0.3
CSV_COLUMNS = ("file_name", "fdi", "finding", "score")


def instances_of(instances: Sequence[Instance], finding: FindingType) -> list[Instance]:
    """The instances that evidence `finding`, matched on class name like the original."""
    name = finding.value.upper()
    if finding is FindingType.MISSING:
        return [i for i in instances if i.class_name.upper().startswith(name)]
    return [i for i in instances if i.class_name.upper() == name]


def intersection_over_minimum(a: Instance, b: Instance, epsilon: float = 1e-5) -> float:
    """Mask intersection over the smaller mask's area."""
    ax0, ay0, ax1, ay1 = a.box
    bx0, by0, bx1, by1 = b.box
    x0, y0, x1, y1 = max(ax0, bx0), max(ay0, by0), min(ax1, bx1), min(ay1, by1)
    if x0 >= x1 or y0 >= y1:
        return 0.0
    overlap = np.logical_and(a.mask[y0 - ay0:y1 - ay0, x0 - ax0:x1 - ax0],
                             b.mask[y0 - by0:y1 - by0, x0 - bx0:x1 - bx0]).sum()
    return float(overlap / (min(a.area, b.area) + epsilon))


def suppress_overlapping(instances: Sequence[Instance], threshold: float) -> list[Instance]:
    """Greedy NMS by intersection over minimum, best score first."""
    remaining = sorted(instances, key=lambda i: i.score, reverse=True)
    kept: list[Instance] = []
    while remaining:
        best = remaining.pop(0)
        kept.append(best)
        remaining = [i for i in remaining if intersection_over_minimum(best, i) < threshold]
    return kept


def _prob_in_box(prob: np.ndarray, image_size: tuple[int, int],
                 box: tuple[int, int, int, int]) -> np.ndarray:
    """`prob` (C, h, w) resampled to the image pixels of `box`: (C, y1 - y0, x1 - x0)."""
    x0, y0, x1, y1 = box
    height, width = image_size
    grid_h, grid_w = prob.shape[-2:]
    if (grid_h, grid_w) == (height, width):
        return prob[:, y0:y1, x0:x1].astype(np.float32)
    rows = pixel_centers(y0, y1, grid_h / height)
    cols = pixel_centers(x0, x1, grid_w / width)
    return resample(prob, rows, cols)


def tooth_shares(prob: np.ndarray, image_size: tuple[int, int],
                 instances: Sequence[Instance]) -> list[np.ndarray]:
    """Each instance's share of every semantic class (index 0, background, is 0).

    `prob` is (C, h, w) on any grid covering the image; `instances` are those of
    one finding, whose overlaps discount each other.
    """
    height, width = image_size
    overlap = np.zeros((height, width), dtype=np.uint16)
    for inst in instances:
        x0, y0, x1, y1 = inst.box
        overlap[y0:y1, x0:x1] += inst.mask
    shares = []
    for inst in instances:
        x0, y0, x1, y1 = inst.box
        p = _prob_in_box(prob, image_size, inst.box)[:, inst.mask]  # (C, n pixels)
        d = overlap[y0:y1, x0:x1][inst.mask].astype(np.float32)
        discounted = 1.0 - np.power(np.clip(1.0 - p, 0.0, 1.0), 1.0 / d)
        share = discounted.mean(axis=1)
        share[0] = 0.0
        total = share.sum()
        shares.append(share / total if total > 0 else np.zeros_like(share))
    return shares


def compute_findings(prob: np.ndarray, image_size: tuple[int, int],
                     instances: Sequence[Instance]) -> list[FindingEntry]:
    """All findings for all 32 teeth (8 x 32 entries, in the original's CSV order)."""
    num_classes = prob.shape[0]
    entries: list[FindingEntry] = []
    for finding in FindingType:
        chosen = [i for i in instances_of(instances, finding) if i.area > 0]
        if finding is FindingType.MISSING:
            chosen = suppress_overlapping(chosen, TOOTH_NMS_THRESHOLD)
        shares = tooth_shares(prob, image_size, chosen)
        if finding is FindingType.MISSING:
            scores = shares
        else:
            scores = [inst.score * share for inst, share in zip(chosen, shares, strict=True)]
        combined = (1.0 - np.prod(1.0 - np.stack(scores), axis=0) if scores
                    else np.zeros(num_classes, dtype=np.float32))
        if finding is FindingType.MISSING:
            combined = 1.0 - combined
        entries.extend(FindingEntry(tooth_index=i, finding=finding, score=float(combined[i]))
                       for i in range(1, num_classes))
    return entries


def findings_csv(entries: Sequence[FindingEntry], file_name: str) -> str:
    """The original's CSV: `file_name, fdi, finding, score`, one row per entry."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerows((file_name, e.fdi, e.finding.name, repr(e.score)) for e in entries)
    return out.getvalue()
