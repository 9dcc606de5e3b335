"""Score recognized phones against the canonical phones of the reference words.

Both sides are normalized the same way, aligned by Levenshtein with a backtrace
(substitution cost from phonological features, so that when the alignment has a
choice it pairs similar sounds), and counted:

    PER      = (S + D + I) / N_ref
    accuracy = (N_ref - S - D) / N_ref

Each reference phone earns credit 1 when recognized, else 0. Where the backend gives a
GOP-style confidence for it (forced alignment), the credit blends that in with weight
`gop_weight` (default 1: the confidence alone). pocketsphinx's phone loop hears about
40% of correctly spoken phones as something else (PER ~0.4 on clear synthetic
speech), too noisy to judge single words by; its aligner's acoustic evidence is not.
A word's score is its phones' mean credit, less a penalty per inserted phone, times
100; the overall score is the phone-weighted mean of the word scores. PER and accuracy
always come from the recognized phones alone.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from deployments.common.errors import InputError
from deployments.pronunciation.types import (
    AlignedPhone,
    AlignedWord,
    AssessmentScores,
    CanonicalWord,
    PhoneResult,
    Recognition,
    RecognizedPhone,
    WordResult,
)

#: stress, syllable and linking marks, tie bars: not part of a phone's identity here
_DROP = dict.fromkeys(map(ord, "ˈˌ'.‿͜͡|‖"), None)
#: one spelling per phone, after NFD (so composed and decomposed forms agree)
_TOKEN_MAP = {
    "g": "ɡ",
    "r": "ɹ",
    # one rhotic: the r-coloured vowels and their two-symbol spellings
    "ɝ": "ɚ", "ɜ˞": "ɚ", "ə˞": "ɚ", "ɚ": "ɚ", "əɹ": "ɚ", "ɜɹ": "ɚ", "ɹ̩": "ɚ",
    # stress is stripped, and without it English ʌ is ə
    "ʌ": "ə",
}
#: modifier letters that belong to the preceding symbol when segmenting plain IPA
_MODIFIERS = set("ːˑʰʷʲˠˤ˞ⁿˡ")
SUB_BASE_COST = 0.25


def normalize_phone(phone: str) -> str:
    """One phone's canonical spelling ("" when nothing phonetic is left)."""
    p = unicodedata.normalize("NFD", phone).translate(_DROP).strip()
    return _TOKEN_MAP.get(p, p)


def normalize_phones(phones: list[str]) -> list[str]:
    return [n for n in map(normalize_phone, phones) if n]


def segment_ipa(text: str) -> list[str]:
    """Split plain IPA (no slashes) into phones: a base symbol plus its diacritics and
    length/aspiration marks; a tie bar joins the next symbol (t͡ʃ)."""
    phones: list[str] = []
    join_next = False
    for ch in unicodedata.normalize("NFD", text):
        if ch.isspace():
            join_next = False
            continue
        if ch in "͜͡":
            join_next = True
            if phones:
                phones[-1] += ch
            continue
        if phones and (join_next or unicodedata.combining(ch) or ch in _MODIFIERS):
            phones[-1] += ch
        else:
            phones.append(ch)
        join_next = False
    return phones


def parse_target_ipa(text: str) -> list[CanonicalWord]:
    """Caller-supplied target IPA: whitespace separates words; within a word either the
    G2P family's "/h//ɛ//l//oʊ/" form or plain IPA."""
    words = []
    for chunk in text.split():
        if "/" in chunk:
            phones = [p for p in chunk.split("/") if p]
        else:
            phones = segment_ipa(chunk)
        phones = normalize_phones(phones)
        if phones:
            words.append(CanonicalWord(word=chunk, phones=phones))
    return words


def parse_slashed(text: str) -> list[str]:
    """"/p//h//o/" (POWSM, G2P) -> ["p", "h", "o"]."""
    return [p for p in text.replace(" ", "").split("/") if p]


@lru_cache(maxsize=1)
def _feature_table() -> object:
    import panphon

    return panphon.FeatureTable()


@lru_cache(maxsize=4096)
def _features(phone: str) -> np.ndarray | None:
    # panphon has no r-coloured vowels; ə plus the rhotic approximant is close enough
    spelled = {"ɚ": "əɹ"}.get(phone, phone)
    vectors = _feature_table().word_to_vector_list(spelled, numeric=True)
    return np.mean(np.asarray(vectors, dtype=float), axis=0) if vectors else None


def substitution_cost(a: str, b: str) -> float:
    """0 for the same phone; else SUB_BASE_COST..1 growing with feature distance."""
    if a == b:
        return 0.0
    fa, fb = _features(a), _features(b)
    if fa is None or fb is None:
        return 1.0
    distance = float(np.mean(np.abs(fa - fb))) / 2  # features are -1/0/+1
    return SUB_BASE_COST + (1 - SUB_BASE_COST) * min(distance * 2, 1.0)


def align(ref: list[str], hyp: list[str]) -> list[tuple[str, int | None, int | None]]:
    """Levenshtein alignment with backtrace: (op, ref index, hyp index) in order."""
    n, m = len(ref), len(hyp)
    cost = np.zeros((n + 1, m + 1))
    cost[:, 0] = np.arange(n + 1)
    cost[0, :] = np.arange(m + 1)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            cost[i, j] = min(cost[i - 1, j - 1] + substitution_cost(ref[i - 1], hyp[j - 1]),
                             cost[i - 1, j] + 1, cost[i, j - 1] + 1)
    ops: list[tuple[str, int | None, int | None]] = []
    i, j = n, m
    while i > 0 or j > 0:
        if i > 0 and j > 0 and np.isclose(
                cost[i, j], cost[i - 1, j - 1] + substitution_cost(ref[i - 1], hyp[j - 1])):
            ops.append(("match" if ref[i - 1] == hyp[j - 1] else "substitution", i - 1, j - 1))
            i, j = i - 1, j - 1
        elif i > 0 and np.isclose(cost[i, j], cost[i - 1, j] + 1):
            ops.append(("deletion", i - 1, None))
            i -= 1
        else:
            ops.append(("insertion", None, j - 1))
            j -= 1
    return ops[::-1]


@dataclass
class _RefPhone:
    phone: str
    word: int
    start: float | None = None
    end: float | None = None
    confidence: float | None = None


def _attach_alignment(words: list[CanonicalWord], aligned: list[AlignedWord],
                      ref: list[_RefPhone]) -> dict[int, AlignedWord]:
    """Give reference phones the forced aligner's times and confidences.

    The aligner's words are matched to the reference words in order by spelling; within
    a word its phones (from its own dictionary) are aligned to the G2P phones, which
    may differ a little.
    """
    by_word: dict[int, AlignedWord] = {}
    k = 0
    for index, word in enumerate(words):
        for look in range(k, len(aligned)):
            if aligned[look].word == word.word.lower().strip(".,!?;:\"'()"):
                by_word[index] = aligned[look]
                k = look + 1
                break
    first = 0
    for index, word in enumerate(words):
        mine = ref[first:first + len(word.phones)]
        first += len(word.phones)
        if index not in by_word:
            continue
        forced: list[AlignedPhone] = by_word[index].phones
        pairs = align([p.phone for p in mine], normalize_phones([p.phone for p in forced]))
        for op, i, j in pairs:
            if op in ("match", "substitution"):
                mine[i].start, mine[i].end = forced[j].start, forced[j].end
                mine[i].confidence = forced[j].confidence
        # A G2P phone the aligner's dictionary lacks takes the word's mean confidence.
        mean = float(np.mean([p.confidence for p in forced])) if forced else None
        for p in mine:
            if p.confidence is None:
                p.confidence = mean
    return by_word


def score(words: list[CanonicalWord], recognition: Recognition, gop_weight: float = 1.0,
          word_threshold: float = 60.0) -> AssessmentScores:
    """Compare the canonical phones of `words` with what the recognizer heard."""
    # Words left with no phones (G2P's punctuation "words", for one) have nothing to score.
    words = [w for w in (CanonicalWord(word=w.word, phones=normalize_phones(w.phones))
                         for w in words) if w.phones]
    ref = [_RefPhone(phone, index) for index, word in enumerate(words) for phone in word.phones]
    if not ref:
        raise InputError("the reference text has no words to pronounce")
    hyp: list[RecognizedPhone] = [
        RecognizedPhone(phone=n, start=p.start, end=p.end)
        for p in recognition.phones if (n := normalize_phone(p.phone))
    ]
    aligned_words = (_attach_alignment(words, recognition.alignment, ref)
                     if recognition.alignment else {})
    ops = align([p.phone for p in ref], [p.phone for p in hyp])

    phones: list[PhoneResult] = []
    last_word = 0
    for op, i, j in ops:
        r = ref[i] if i is not None else None
        h = hyp[j] if j is not None else None
        if r is not None:
            last_word = r.word
        start = r.start if r is not None and r.start is not None else (h.start if h else None)
        end = r.end if r is not None and r.end is not None else (h.end if h else None)
        phones.append(PhoneResult(
            op=op, expected=r.phone if r else None, recognized=h.phone if h else None,
            word_index=r.word if r else last_word, start=start, end=end,
            confidence=r.confidence if r else None))

    word_results = [_word_result(index, word, phones, ref, aligned_words.get(index), gop_weight,
                                 word_threshold)
                    for index, word in enumerate(words)]
    n_ref = len(ref)
    counts = {op: sum(p.op == op for p in phones)
              for op in ("match", "substitution", "deletion", "insertion")}
    s, d, i = counts["substitution"], counts["deletion"], counts["insertion"]
    confidences = [p.confidence for p in ref if p.confidence is not None]
    overall = sum(w.score * len(w.expected_phones) for w in word_results) / n_ref
    return AssessmentScores(
        target_ipa=" ".join("".join(w.phones) for w in words),
        recognized_ipa="".join(p.phone for p in hyp),
        target_phones=[p.phone for p in ref],
        recognized_phones=[p.phone for p in hyp],
        phones=phones,
        words=word_results,
        per=round((s + d + i) / n_ref, 4),
        accuracy=round((n_ref - s - d) / n_ref, 4),
        score=round(overall, 1),
        confidence=round(float(np.mean(confidences)), 4) if confidences else None,
        counts={"reference": n_ref, "recognized": len(hyp), **counts},
    )


def _word_result(index: int, word: CanonicalWord, phones: list[PhoneResult],
                 ref: list[_RefPhone], aligned: AlignedWord | None, gop_weight: float,
                 threshold: float) -> WordResult:
    mine = [p for p in phones if p.word_index == index]
    counts = {op: sum(p.op == op for p in mine)
              for op in ("match", "substitution", "deletion", "insertion")}
    own_ref = [p for p in ref if p.word == index]
    confidences = [p.confidence for p in own_ref if p.confidence is not None]
    has_gop = len(confidences) == len(own_ref)
    credit = 0.0
    for p in mine:
        if p.op == "insertion":
            continue
        heard = 1.0 if p.op == "match" else 0.0
        credit += (gop_weight * p.confidence + (1 - gop_weight) * heard) if has_gop else heard
    credit -= counts["insertion"] * ((1 - gop_weight) if has_gop else 1.0)
    value = round(100 * max(credit, 0.0) / len(own_ref), 1)
    heard_any = counts["match"] + counts["substitution"] > 0
    confident = has_gop and float(np.mean(confidences)) >= 0.5
    if not heard_any and not confident:
        verdict = "missing"
    elif value >= threshold:
        verdict = "correct"
    else:
        verdict = "mispronounced"
    times = [(p.start, p.end) for p in mine if p.start is not None and p.end is not None]
    start = aligned.start if aligned else (min(t[0] for t in times) if times else None)
    end = aligned.end if aligned else (max(t[1] for t in times) if times else None)
    return WordResult(
        index=index, word=word.word, expected_phones=word.phones,
        recognized_phones=[p.recognized for p in mine if p.recognized],
        score=value, verdict=verdict, matches=counts["match"],
        substitutions=counts["substitution"], deletions=counts["deletion"],
        insertions=counts["insertion"], start=start, end=end,
        confidence=round(float(np.mean(confidences)), 4) if confidences else None,
    )
