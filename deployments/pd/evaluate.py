"""Held-out evaluation of a PD checkpoint on synthetic signals: region F1 and IoU.

Regions are matched one to one, greedily by decreasing IoU; a pair counts as a true
positive when its IoU (overlap / union, in samples) is at least `min_iou` (`--iou`; the
issue's target is region F1 >= 0.9 at IoU 0.2, and 0.5 is reported beside it). Unmatched
predictions are false positives, unmatched true pulses false negatives, and F1 = 2 TP /
(2 TP + FP + FN) over the whole set. `mean_iou` is the mean, over true pulses, of the IoU
with the best-overlapping predicted region (0 when none overlaps); `mask_iou` is the
sample-level IoU of the PD class over the whole set.

Each signal is preprocessed on its own, as a one-signal request would be. By default every
generator family of `synthetic.FAMILIES` is scored (the sidecar says which of them the
checkpoint was trained without: those are the held-out families), plus `classic` (the
first generator, `synthetic.generate`). The scores are offline: nothing here runs in the
service.

    python -m deployments.pd.evaluate [--weights URI] [--signals 100] [--iou 0.2 0.5]
        [--families gaussian tone_burst ...] [--seed 1000003]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from deployments.pd import synthetic
from deployments.pd.config import DEFAULT_WEIGHTS_URI
from deployments.pd.inference import PDModel
from deployments.pd.processing import PreprocessParams, Region, SegmentSettings, preprocess

# Training draws its signals from seeds below this; evaluation uses seeds from here up.
HELD_OUT_SEED = 1_000_003
MIN_IOU = 0.5  # the default of `match_regions` / `score_regions`
TARGET_IOU = 0.2  # the matching threshold for region F1
REPORT_IOUS = (0.2, 0.5)


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


def _segment_all(model: PDModel, signals: list[np.ndarray],
                 settings: SegmentSettings) -> list[list[Region]]:
    """Each signal preprocessed alone (a one-signal request) and segmented."""
    predictions = []
    for raw in signals:
        processed, keep = preprocess(np.asarray(raw)[None, :], PreprocessParams(chunk_rows=1))
        predictions.append(model.segment(processed[0], settings).regions if keep[0] else [])
    return predictions


def _mask_iou(masks: list[np.ndarray], predictions: list[list[Region]]) -> float:
    inter = union = 0
    for mask, regions in zip(masks, predictions, strict=True):
        predicted = np.zeros_like(mask)
        for region in regions:
            predicted[region.start:region.end] = True
        inter += int(np.logical_and(predicted, mask).sum())
        union += int(np.logical_or(predicted, mask).sum())
    return inter / union if union else 1.0


def evaluate(model: PDModel, n_signals: int = 200, seed: int = HELD_OUT_SEED,
             settings: SegmentSettings | None = None,
             params: synthetic.SyntheticParams | None = None,
             min_iou: float = MIN_IOU) -> dict[str, float]:
    """Score `model` on `n_signals` fresh signals of the first generator drawn from `seed`."""
    settings = settings or SegmentSettings()
    params = params or synthetic.SyntheticParams()
    data = synthetic.generate(n_signals, seed, params)
    predictions = _segment_all(model, list(data.signals), settings)
    scores = score_regions(data.regions, predictions, min_iou)
    scores["mask_iou"] = _mask_iou(list(data.masks), predictions)
    scores.update(signals=n_signals, seed=seed, signal_length=params.length, min_iou=min_iou)
    return scores


def evaluate_family(model: PDModel, family: str, n_signals: int = 100,
                    seed: int = HELD_OUT_SEED, ious: tuple[float, ...] = REPORT_IOUS,
                    settings: SegmentSettings | None = None) -> dict[str, object]:
    """Region scores of `model` on `n_signals` signals of one generator family (`classic`
    is the first generator at its defaults), at each IoU threshold of `ious`."""
    settings = settings or SegmentSettings()
    if family == "classic":
        data = synthetic.generate(n_signals, seed)
        signals, masks, truths = list(data.signals), list(data.masks), data.regions
    else:
        fam = synthetic.generate_family(family, n_signals, seed)
        signals, masks, truths = fam.signals, fam.masks, fam.regions
    predictions = _segment_all(model, signals, settings)
    out: dict[str, object] = {
        "signals": n_signals, "seed": seed,
        "lengths": [min(len(x) for x in signals), max(len(x) for x in signals)],
        "mask_iou": round(_mask_iou(masks, predictions), 4)}
    for iou in ious:
        out[f"iou_{iou:g}"] = {k: round(v, 4) if isinstance(v, float) else v
                               for k, v in score_regions(truths, predictions, iou).items()}
    return out


def evaluate_families(model: PDModel, families: list[str], n_signals: int = 100,
                      seed: int = HELD_OUT_SEED, ious: tuple[float, ...] = REPORT_IOUS
                      ) -> dict[str, dict[str, object]]:
    return {name: evaluate_family(model, name, n_signals, seed, ious) for name in families}


def _train_without(job: tuple[str, int, float, int, int]) -> tuple[str, dict[str, object]]:
    """Train the shipped recipe without `family` and score the result on it."""
    import torch

    from deployments.pd import train

    family, steps, smoothness, n_signals, seed = job
    torch.set_num_threads(1)
    families = tuple(f for f in train.TRAIN_FAMILIES_ALL if f != family)
    network, seconds = train.train(steps, 8, 8, 4, 3e-3, 0, families, smoothness)
    scores = evaluate_family(PDModel(network), family, n_signals, seed)
    return family, {"trained_on": list(families), "steps": steps,
                    "seconds": round(seconds, 1), **scores}


def leave_one_family_out(families: list[str], steps: int, smoothness: float,
                         n_signals: int = 100, seed: int = HELD_OUT_SEED, jobs: int = 1
                         ) -> dict[str, dict[str, object]]:
    """For each family, a model trained on all the others (and `classic`), tested on it."""
    work = [(f, steps, smoothness, n_signals, seed) for f in families]
    if jobs <= 1:
        results = [_train_without(w) for w in work]
    else:
        from multiprocessing import get_context

        with get_context("spawn").Pool(jobs) as pool:
            results = pool.map(_train_without, work, chunksize=1)
    return dict(results)


def _sidecar(weights: str) -> dict[str, object]:
    """The JSON sidecar next to a local or `package://` checkpoint, or {}."""
    from deployments.common.fetch import resolve_weights

    try:
        path = Path(resolve_weights(weights)).with_suffix(".json")
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default=DEFAULT_WEIGHTS_URI)
    parser.add_argument("--signals", type=int, default=100, help="per family")
    parser.add_argument("--seed", type=int, default=HELD_OUT_SEED)
    parser.add_argument("--iou", type=float, nargs="+", default=list(REPORT_IOUS),
                        help="IoU thresholds at which regions match (first one: the summary)")
    parser.add_argument("--families", nargs="+",
                        default=["classic", *synthetic.FAMILIES],
                        choices=["classic", *synthetic.FAMILIES])
    parser.add_argument("--leave-one-out", action="store_true",
                        help="instead: for each of --families, train the shipped recipe "
                             "without it and test on it (minutes of CPU per family)")
    parser.add_argument("--steps", type=int, default=None,
                        help="with --leave-one-out: training steps (default: the sidecar's)")
    parser.add_argument("--jobs", type=int, default=1, help="with --leave-one-out")
    parser.add_argument("--output", type=Path, help="also write the JSON here")
    args = parser.parse_args()
    if args.leave_one_out:
        recipe = _sidecar(args.weights).get("training", {})
        steps = args.steps or int(recipe.get("steps", 1500))
        families = [f for f in args.families if f != "classic"]
        results = leave_one_family_out(families, steps, float(recipe.get("smoothness", 0.0)),
                                       args.signals, args.seed, args.jobs)
        for name, s in results.items():
            r = s[f"iou_{args.iou[0]:g}"]
            print(f"{name:11s} left out: F1 {r['f1']:.3f}  P {r['precision']:.3f}  "
                  f"R {r['recall']:.3f}  ({s['seconds']:.0f} s training)", flush=True)
        text = json.dumps(results, indent=2)
        print(text)
        if args.output:
            args.output.write_text(text + "\n")
        return
    model = PDModel.from_uri(args.weights)
    trained_on = _sidecar(args.weights).get("training", {}).get("families")
    scores = evaluate_families(model, args.families, args.signals, args.seed, tuple(args.iou))
    key = f"iou_{args.iou[0]:g}"
    for name, s in scores.items():
        seen = "?" if trained_on is None else ("trained" if name in trained_on or
                                               name == "classic" else "HELD OUT")
        r = s[key]
        print(f"{name:11s} {seen:8s} F1 {r['f1']:.3f}  P {r['precision']:.3f}  "
              f"R {r['recall']:.3f}  true {r['true_regions']:4d}  "
              f"predicted {r['predicted_regions']:4d}  ({key})", flush=True)
    print(json.dumps(scores, indent=2))
    if args.output:
        args.output.write_text(json.dumps(scores, indent=2) + "\n")


if __name__ == "__main__":
    main()
