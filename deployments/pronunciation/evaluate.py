"""Quality of the pronunciation assessment on the synthetic evaluation set (evalset/).

    python -m deployments.pronunciation.evalset.make --out /tmp/pron-evalset
    python -m deployments.pronunciation.evaluate /tmp/pron-evalset            # held-out
    python -m deployments.pronunciation.evaluate /tmp/pron-evalset --split calibration

Each recording goes through what the service does: `audio.decode_audio` (any format and
rate to 16 kHz mono), gruut for the canonical phones (the G2P family's default backend),
the recognizer backend with the reference text, and `scoring.score`. Correct readings are
also assessed against another sentence. Printed:

- PER separation: PER against another sentence / PER against the own sentence, per
  correct reading (target: >= 2 for >= 90% of them);
- word flags: recall of the substituted word (target >= 85%), the share of correctly read
  words flagged (target <= 10%), precision;
- distributions (percentiles) of PER, sentence scores and word scores;
- the same broken down by voice, format, sample rate and noise.

`--cache FILE` keeps the recognitions (JSON), so re-scoring after a change to scoring or
calibration takes seconds; `evalset/calibrate.py` reads the same cache.
"""

from __future__ import annotations

import argparse
import json
import os
from collections import defaultdict
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from deployments.pronunciation.types import AssessmentScores, CanonicalWord, Recognition

TARGET_RATIO = 2.0
TARGET_RATIO_SHARE = 0.90
TARGET_RECALL = 0.85
TARGET_FALSE_FLAGS = 0.10


def load_manifest(directory: Path, split: str | None = None) -> list[dict]:
    with open(directory / "manifest.jsonl", encoding="utf-8") as f:
        items = [json.loads(line) for line in f if line.strip()]
    return [it for it in items if split in (None, "all") or it["split"] == split]


_G2P: object | None = None
_BACKEND: object | None = None


def canonical(text: str) -> list[CanonicalWord]:
    """The G2P family's default (gruut) phones, as the pipeline gets them."""
    global _G2P
    if _G2P is None:
        from deployments.g2p.backends import GruutBackend

        _G2P = GruutBackend()
    words = _G2P.phonemize([text], "en-us")[0]
    return [CanonicalWord(word=w.word, phones=w.phones) for w in words]


def backend_name() -> str:
    """The recognizer evaluated: PRON_EVAL_BACKEND (default pocketsphinx), with settings
    from PRON_EVAL_SETTINGS (JSON). Keep one --cache per backend."""
    return os.environ.get("PRON_EVAL_BACKEND", "pocketsphinx")


def _backend() -> object:
    global _BACKEND
    if _BACKEND is None:
        from deployments.pronunciation.backends import build_backend

        _BACKEND = build_backend(backend_name(),
                                 json.loads(os.environ.get("PRON_EVAL_SETTINGS", "{}")))
    return _BACKEND


def _recognize(samples: np.ndarray, text: str) -> dict:
    """As the pipeline calls the backend: with G2P's phones where it aligns them."""
    from deployments.pronunciation.backends import ALIGNS_GIVEN_PHONES

    words = canonical(text) if backend_name() in ALIGNS_GIVEN_PHONES else None
    return _backend().recognize(samples, "en-us", text, words).model_dump()


def recognize_item(directory: Path, item: dict) -> dict:
    """The recognitions of one recording: against its own sentence and, for correct
    readings, against the other sentence (JSON-able)."""
    from deployments.pronunciation.audio import decode_audio

    audio = decode_audio((directory / item["file"]).read_bytes(), max_duration_s=20.0)
    out = {"own": _recognize(audio.samples, item["reference"])}
    if item["kind"] == "correct":
        out["other"] = _recognize(audio.samples, item["other"])
    return out


def recognitions(directory: Path, items: list[dict], cache: Path | None = None,
                 jobs: int = 1) -> dict[str, dict]:
    done: dict[str, dict] = {}
    if cache is not None and cache.exists():
        done = json.loads(cache.read_text(encoding="utf-8"))
    todo = [it for it in items if it["id"] not in done]
    if todo:
        with ProcessPoolExecutor(jobs) as pool:
            results = pool.map(recognize_item, [directory] * len(todo), todo, chunksize=4)
            for it, rec in zip(todo, results, strict=True):
                done[it["id"]] = rec
        if cache is not None:
            cache.write_text(json.dumps(done), encoding="utf-8")
    return done


@dataclass
class Outcome:
    item: dict
    own: AssessmentScores
    other: AssessmentScores | None


@dataclass
class Report:
    n: int = 0
    ratio_share: float = 0.0
    recall: float = 0.0
    false_flags: float = 0.0
    precision: float = 0.0
    lines: list[str] = field(default_factory=list)


def assess(items: Iterable[dict], recs: dict[str, dict], directory: Path | None = None,
           **score_args: object) -> list[Outcome]:
    from deployments.pronunciation.scoring import score

    outcomes = []
    for it in items:
        rec = recs[it["id"]]
        if rec["own"].get("narrowband") is None and directory is not None:
            # recognitions cached before the backend reported the audio's bandwidth
            from deployments.pronunciation.audio import decode_audio
            from deployments.pronunciation.backends.sphinx import is_narrowband

            audio = decode_audio((directory / it["file"]).read_bytes(), max_duration_s=20.0)
            for side in rec.values():
                side["narrowband"] = is_narrowband(audio.samples)
        own = score(canonical(it["reference"]), Recognition(**rec["own"]), **score_args)
        other = (score(canonical(it["other"]), Recognition(**rec["other"]), **score_args)
                 if "other" in rec else None)
        outcomes.append(Outcome(it, own, other))
    return outcomes


def _flags(outcomes: list[Outcome]) -> tuple[int, int, int, int]:
    """(substituted words flagged, substituted words, correct words flagged, correct words)."""
    hit = subs = false = fine = 0
    for o in outcomes:
        changed = o.item["changed_word"]
        for w in o.own.words:
            flagged = w.verdict != "correct"
            if changed is not None and w.index == changed:
                subs += 1
                hit += flagged
            else:
                fine += 1
                false += flagged
    return hit, subs, false, fine


def _pct(values: list[float]) -> str:
    if not values:
        return "-"
    p = np.percentile(values, [5, 25, 50, 75, 95])
    return " ".join(f"{v:6.2f}" for v in p)


def summarize(outcomes: list[Outcome], breakdown: bool = True) -> Report:
    rep = Report(n=len(outcomes))
    lines = rep.lines
    correct = [o for o in outcomes if o.other is not None]
    ratios = [o.other.per / max(o.own.per, 1e-3) for o in correct]
    rep.ratio_share = float(np.mean([r >= TARGET_RATIO for r in ratios])) if ratios else 0.0
    hit, subs, false, fine = _flags(outcomes)
    rep.recall = hit / subs if subs else 0.0
    rep.false_flags = false / fine if fine else 0.0
    rep.precision = hit / (hit + false) if hit + false else 1.0
    lines.append(f"recordings: {len(outcomes)} ({len(correct)} correct readings, "
                 f"{subs} with a substituted word)")
    lines.append(f"PER other/own >= {TARGET_RATIO}: {rep.ratio_share:.1%} of correct readings "
                 f"(target >= {TARGET_RATIO_SHARE:.0%}); median ratio "
                 f"{np.median(ratios) if ratios else 0:.2f}")
    lines.append(f"substituted word flagged (recall): {rep.recall:.1%} ({hit}/{subs}; "
                 f"target >= {TARGET_RECALL:.0%})")
    for kind in ("word", "phone"):
        h, s, _, _ = _flags([o for o in outcomes if o.item["kind"] == kind])
        if s:
            lines.append(f"  {kind} substitutions: {h / s:.1%} ({h}/{s})")
    lines.append(f"correctly read words flagged: {rep.false_flags:.1%} ({false}/{fine}; "
                 f"target <= {TARGET_FALSE_FLAGS:.0%}); flag precision {rep.precision:.1%}")
    lines.append("distributions (percentiles 5 25 50 75 95):")
    lines.append(f"  PER own sentence      {_pct([o.own.per for o in correct])}")
    lines.append(f"  PER other sentence    {_pct([o.other.per for o in correct])}")
    lines.append(f"  PER ratio other/own   {_pct(ratios)}")
    lines.append(f"  score own (correct)   {_pct([o.own.score for o in correct])}")
    lines.append(f"  score other sentence  {_pct([o.other.score for o in correct])}")
    substituted = [o.own.score for o in outcomes if o.item["kind"] != "correct"]
    lines.append(f"  score, one word subst {_pct(substituted)}")
    ok_words = [w.score for o in outcomes for w in o.own.words
                if w.index != o.item["changed_word"]]
    bad_words = [w.score for o in outcomes for w in o.own.words
                 if w.index == o.item["changed_word"]]
    lines.append(f"  word score, correct   {_pct(ok_words)}")
    lines.append(f"  word score, substit.  {_pct(bad_words)}")
    if breakdown:
        for key in ("voice", "format", "sample_rate", "channels", "snr_db", "stretch"):
            groups: dict[object, list[Outcome]] = defaultdict(list)
            for o in outcomes:
                groups[o.item[key]].append(o)
            lines.append(f"by {key}:  (PER-ratio share, recall, false flags, n)")
            for value in sorted(groups, key=str):
                g = summarize(groups[value], breakdown=False)
                lines.append(f"  {str(value):18s} {g.ratio_share:6.1%} {g.recall:6.1%} "
                             f"{g.false_flags:6.1%} {g.n:4d}")
    return rep


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", type=Path, help="made by evalset.make (manifest.jsonl)")
    parser.add_argument("--split", default="heldout",
                        choices=("heldout", "calibration", "all"))
    parser.add_argument("--cache", type=Path, help="JSON file keeping the recognitions")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--failures", action="store_true",
                        help="list the misflagged words and the low PER ratios")
    args = parser.parse_args()
    items = load_manifest(args.directory, args.split)
    recs = recognitions(args.directory, items, args.cache, args.jobs)
    outcomes = assess(items, recs, args.directory)
    report = summarize(outcomes)
    print(f"split: {args.split}")
    print("\n".join(report.lines))
    if args.failures:
        for o in outcomes:
            bad = [f"{w.word}({w.score:.0f}{'*' if w.index == o.item['changed_word'] else ''})"
                   for w in o.own.words
                   if (w.verdict != "correct") != (w.index == o.item["changed_word"])]
            ratio = o.other.per / max(o.own.per, 1e-3) if o.other else None
            if bad or (ratio is not None and ratio < TARGET_RATIO):
                print(o.item["id"], o.item["format"], o.item["sample_rate"],
                      f"per={o.own.per:.2f}", f"ratio={ratio:.2f}" if ratio else "",
                      " ".join(bad), "|", o.item["spoken"])


if __name__ == "__main__":
    main()
