"""Held-out evaluation of a PD checkpoint on synthetic signals: region F1 and IoU.

Regions are matched one to one, greedily by decreasing IoU; a pair counts as a true
positive when its IoU (overlap / union, in samples) is at least `min_iou` (0.5).
Unmatched predictions are false positives, unmatched true pulses false negatives, and
F1 = 2 TP / (2 TP + FP + FN) over the whole set. `mean_iou` is the mean, over true
pulses, of the IoU with the best-overlapping predicted region (0 when none overlaps);
`mask_iou` is the sample-level IoU of the PD class over the whole set.

Each signal is preprocessed on its own, as a one-signal request would be.

    python -m deployments.pd.evaluate [--weights URI] [--signals 200] [--seed 1000003]
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from deployments.pd import synthetic
from deployments.pd.config import DEFAULT_WEIGHTS_URI
from deployments.pd.inference import PDModel
from deployments.pd.processing import PreprocessParams, Region, SegmentSettings, preprocess

# Training draws its signals from seeds below this; evaluation uses seeds from here up.
HELD_OUT_SEED = 1_000_003
MIN_IOU = 0.5


def region_iou(a: Region, b: Region) -> float:
    overlap = min(a.end, b.end) - max(a.start, b.start)
    if overlap <= 0:
        return 0.0
    return overlap / (a.duration + b.duration - overlap)


def match_regions(truth: list[Region], predicted: list[Region],
                  min_iou: float = MIN_IOU) -> list[tuple[int, int, float]]:
    """One-to-one pairs (truth index, predicted index, IoU) with IoU >= min_iou."""
    candidates = sorted(
        ((region_iou(t, p), i, j) for i, t in enumerate(truth) for j, p in enumerate(predicted)),
        reverse=True)
    used_truth: set[int] = set()
    used_predicted: set[int] = set()
    pairs = []
    for iou, i, j in candidates:
        if iou < min_iou:
            break
        if i not in used_truth and j not in used_predicted:
            used_truth.add(i)
            used_predicted.add(j)
            pairs.append((i, j, iou))
    return pairs


def score_regions(truths: list[list[Region]], predictions: list[list[Region]],
                  min_iou: float = MIN_IOU) -> dict[str, float]:
    """Precision, recall, F1 and mean IoU of predicted regions against true ones."""
    tp = fp = fn = 0
    best_ious: list[float] = []
    for truth, predicted in zip(truths, predictions, strict=True):
        matched = len(match_regions(truth, predicted, min_iou))
        tp += matched
        fp += len(predicted) - matched
        fn += len(truth) - matched
        best_ious += [max((region_iou(t, p) for p in predicted), default=0.0) for t in truth]
    return {
        "precision": tp / (tp + fp) if tp + fp else 1.0,
        "recall": tp / (tp + fn) if tp + fn else 1.0,
        "f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0,
        "mean_iou": float(np.mean(best_ious)) if best_ious else 1.0,
        "true_regions": tp + fn,
        "predicted_regions": tp + fp,
    }


def evaluate(model: PDModel, n_signals: int = 200, seed: int = HELD_OUT_SEED,
             settings: SegmentSettings | None = None,
             params: synthetic.SyntheticParams | None = None) -> dict[str, float]:
    """Score `model` on `n_signals` fresh synthetic signals drawn from `seed`."""
    settings = settings or SegmentSettings()
    params = params or synthetic.SyntheticParams()
    data = synthetic.generate(n_signals, seed, params)
    processed, keep = preprocess(data.signals, PreprocessParams(chunk_rows=1))
    predictions: list[list[Region]] = []
    predicted_mask = np.zeros_like(data.masks)
    for row, signal in enumerate(processed):
        regions = model.segment(signal, settings).regions if keep[row] else []
        for region in regions:
            predicted_mask[row, region.start:region.end] = True
        predictions.append(regions)
    scores = score_regions(data.regions, predictions)
    union = np.logical_or(predicted_mask, data.masks).sum()
    scores["mask_iou"] = float(np.logical_and(predicted_mask, data.masks).sum() / union
                               ) if union else 1.0
    scores.update(signals=n_signals, seed=seed, signal_length=params.length)
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default=DEFAULT_WEIGHTS_URI)
    parser.add_argument("--signals", type=int, default=200)
    parser.add_argument("--seed", type=int, default=HELD_OUT_SEED)
    parser.add_argument("--length", type=int, default=synthetic.SyntheticParams.length)
    args = parser.parse_args()
    model = PDModel.from_uri(args.weights)
    print(json.dumps(evaluate(model, args.signals, args.seed,
                              params=synthetic.SyntheticParams(length=args.length)), indent=2))


if __name__ == "__main__":
    main()
