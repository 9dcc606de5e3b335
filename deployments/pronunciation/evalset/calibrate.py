"""Fit the GOP thresholds of the word verdicts on the calibration split.

    python -m deployments.pronunciation.evalset.make --out /tmp/pron-evalset --split calibration
    python -m deployments.pronunciation.evalset.calibrate /tmp/pron-evalset \
        --cache /tmp/pron-recognitions.json

writes deployments/pronunciation/calibration.json (committed; `scoring` loads it).

Procedure. Every calibration recording is recognized and force-aligned to its reference
sentence; each canonical phone gets its GOP (log posterior ratio of the forced phone
against the rival path over the same frames, nats per frame, see backends/sphinx.py;
with PRON_EVAL_BACKEND=powsm or powsm_ctc, POWSM's CTC GOP, see ctc_gop.py, and the
calibration is that backend's) and a class (function-word vowel / consonant, stressed
vowel, reduced vowel, stop, fricative, nasal, approximant). The phones of correctly read
words give, per class, the distribution of GOP under correct pronunciation, separately
for narrowband audio (the backend's `narrowband`: nothing above 5.6 kHz, an 8 or 11 kHz
source or voice), where fricatives score far lower. Each GOP is first taken relative to
its recording (less the recording's mean GOP, scoring.gop_offset), within the offset
floor: the lowest mean GOP of a correctly read calibration recording. A class's
threshold is its q-quantile of these: every class then has the same per-phone
false-alarm rate, whatever its typical GOP (a function word's reduced vowel scores far
lower than a stressed vowel and is not flagged for it). A phone's credit is a logistic
of GOP about that threshold (0.5 there, 0.9 at the class median); a word's score is 100
x its lowest phone credit, and a word under 50 (some phone below its class threshold) is
mispronounced. q is the largest value on a grid that keeps the share of correctly read
calibration words flagged within `--budget` (default 5%, half the 10% allowed, as room
for unseen voices); the recall of substituted words on the calibration split is reported
alongside, never used to tune anything else.
"""

from __future__ import annotations

import argparse
import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from deployments.pronunciation.evaluate import (
    Outcome,
    assess,
    backend_name,
    canonical,
    load_manifest,
    recognitions,
)
from deployments.pronunciation.scoring import (
    CALIBRATION_FILE,
    PHONE_CLASSES,
    gop_offset,
    normalize_phones,
    word_classes,
)
from deployments.pronunciation.types import PhoneResult

QUANTILES = (0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.07, 0.1)
MIN_PHONES = 30  # a class with fewer correct phones than this uses the pooled threshold
#: what each backend's `lpr` is, written into the calibration it fits
FEATURES = {
    "pocketsphinx": "GOP: forced phone vs rival path (any phone replaced by another of its "
                    "kind) log likelihood ratio, nats/frame, both paths rescored with each "
                    "phone in its triphone context, all senones scored every frame, each "
                    "word by its best-fitting pronunciation, under the recording's "
                    "best-fitting frequency warp; thresholds on GOP less the recording's "
                    "mean (not below offset_floor)",
    **dict.fromkeys(("powsm", "powsm_ctc"),
                    "GOP: CTC log likelihood of the reference vs the reference with the phone "
                    "replaced by its likeliest rival (ctc_gop.py), nats/frame"),
}


def calibration_outcomes(directory: Path, cache: Path | None, jobs: int,
                         split: str = "calibration") -> tuple[dict[str, dict], list[Outcome]]:
    """The split's recognitions and their uncalibrated assessments (phones with raw GOP)."""
    items = load_manifest(directory, split)
    recs = recognitions(directory, items, cache, jobs)
    return recs, assess(items, recs, directory, calibration=None)


def _reference_phones(outcome: Outcome) -> list[PhoneResult]:
    return [p for p in outcome.own.phones if p.expected is not None]


def offset_floor(outcomes: list[Outcome]) -> float:
    """The lowest mean phone GOP of a correctly read recording: the recording offset
    (scoring.gop_offset) is held within the range that voices and channels gave
    correct readings."""
    means = [np.mean(gops) for o in outcomes if o.item["kind"] == "correct"
             if (gops := [p.gop for p in _reference_phones(o) if p.gop is not None])]
    return round(float(min(means)), 4)


def collect(recs: dict[str, dict], outcomes: list[Outcome], floor: float,
            narrowband: bool = False) -> list[tuple[bool, list[tuple[str, float]]]]:
    """(substituted?, [(class, GOP less the recording's offset) per phone]) for every word
    of every reading of the given bandwidth (as the backend detects it)."""
    words_out = []
    for outcome in outcomes:
        if bool(recs[outcome.item["id"]]["own"].get("narrowband")) != narrowband:
            continue
        ref = _reference_phones(outcome)
        canon = [w for w in canonical(outcome.item["reference"]) if normalize_phones(w.phones)]
        classes = [c for w in canon for c in word_classes(w.word, w.phones)]
        if len(classes) != len(ref):
            continue
        offset = gop_offset([p.gop for p in ref], floor)
        by_word: dict[int, list[tuple[str, float]]] = defaultdict(list)
        complete: dict[int, bool] = defaultdict(lambda: True)
        for p, klass in zip(ref, classes, strict=True):
            if p.gop is None:
                complete[p.word_index] = False
            else:
                by_word[p.word_index].append((klass, p.gop - offset))
        for w in outcome.own.words:
            if complete[w.index] and by_word[w.index]:
                words_out.append((w.index == outcome.item["changed_word"], by_word[w.index]))
    return words_out


def fit(words: list[tuple[bool, list[tuple[str, float]]]], q: float) -> dict:
    null: dict[str, list[float]] = defaultdict(list)
    for changed, phones in words:
        if not changed:
            for klass, gop in phones:
                null[klass].append(gop)
    pooled = [g for v in null.values() for g in v]
    classes = {}
    for klass in (*PHONE_CLASSES, "default"):
        values = null.get(klass, [])
        if len(values) < MIN_PHONES:
            values = pooled
        threshold = float(np.quantile(values, q))
        median = float(np.median(values))
        scale = max((median - threshold) / math.log(9), 0.05)
        classes[klass] = {"threshold": round(threshold, 4), "scale": round(scale, 4),
                          "n": len(null.get(klass, []))}
    return {"classes": classes, "quantile": q, "aggregate": "min", "word_threshold": 50.0}


def rates(words: list[tuple[bool, list[tuple[str, float]]]], cal: dict) -> tuple[float, float]:
    """(recall of substituted words, share of correct words flagged) under `cal`."""
    hit = subs = false = fine = 0
    for changed, phones in words:
        flagged = any(g < (cal["classes"].get(k) or cal["classes"]["default"])["threshold"]
                      for k, g in phones)
        if changed:
            subs, hit = subs + 1, hit + flagged
        else:
            fine, false = fine + 1, false + flagged
    return hit / max(subs, 1), false / max(fine, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--cache", type=Path)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--budget", type=float, default=0.05,
                        help="share of correctly read calibration words allowed flagged")
    parser.add_argument("--out", type=Path, default=CALIBRATION_FILE)
    args = parser.parse_args()
    recs, outcomes = calibration_outcomes(args.directory, args.cache, args.jobs)
    floor = offset_floor(outcomes)
    wide = collect(recs, outcomes, floor)
    narrow = collect(recs, outcomes, floor, narrowband=True)
    words = wide + narrow
    print(f"{len(words)} calibration words ({sum(c for c, _ in words)} substituted; "
          f"{len(narrow)} from narrowband audio)")
    chosen = None
    for q in QUANTILES:
        cal, narrow_cal = fit(wide, q), fit(narrow, q)
        (r1, f1), (r2, f2) = rates(wide, cal), rates(narrow, narrow_cal)
        subs_w, subs_n = sum(c for c, _ in wide), sum(c for c, _ in narrow)
        recall = (r1 * subs_w + r2 * subs_n) / max(subs_w + subs_n, 1)
        false = (f1 * (len(wide) - subs_w) + f2 * (len(narrow) - subs_n)) / max(
            len(words) - subs_w - subs_n, 1)
        print(f"q={q:<7} recall {recall:6.1%}  correct words flagged {false:6.1%}")
        if false <= args.budget:
            cal["classes_narrowband"] = narrow_cal["classes"]
            cal["offset_floor"] = floor
            chosen = (cal, recall, false)
    if chosen is None:
        raise SystemExit("no quantile keeps the false flags within the budget")
    cal, recall, false = chosen
    voices = sorted({it["voice"] for it in load_manifest(args.directory, "calibration")})
    cal["fitted_on"] = {
        "split": "calibration", "voices": voices, "words": len(words),
        "substituted_words": sum(c for c, _ in words), "budget": args.budget,
        "recall": round(recall, 4), "correct_words_flagged": round(false, 4),
        "feature": FEATURES[backend_name()], "backend": backend_name(),
    }
    args.out.write_text(json.dumps(cal, indent=1) + "\n", encoding="utf-8")
    print(f"q={cal['quantile']}: recall {recall:.1%}, correct words flagged {false:.1%} "
          f"-> {args.out}")


if __name__ == "__main__":
    main()
