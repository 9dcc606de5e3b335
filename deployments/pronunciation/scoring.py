"""Score recognized phones against the canonical phones of the reference words.

Both sides are normalized the same way, aligned by Levenshtein with a backtrace
(substitution cost from phonological features, so that when the alignment has a
choice it pairs similar sounds), and counted:

    PER      = (S + D + I) / N_ref
    accuracy = (N_ref - S - D) / N_ref

Word verdicts come from goodness of pronunciation where the backend gives it and a
calibration for that backend exists (pocketsphinx: each reference phone's log-likelihood
ratio against a rival path over its aligned frames, `AlignedPhone.lpr`; POWSM's CTC GOP
has no calibration yet). Each phone has a class (function-word
vowel or consonant, stressed vowel, reduced vowel, stop, fricative, nasal, approximant)
with a threshold calibrated on the evaluation set's calibration voices
(calibration.json, from evalset/calibrate.py): the same small quantile of that class's
GOP over correctly read words, so a function word's weak vowel is judged against weak
vowels; narrowband audio (8/11 kHz sources, where fricatives score far lower) has its
own set. GOP is judged relative to the recording: less the mean GOP of its reference
phones (`gop_offset`; a voice or channel the acoustic model fits less well lowers every
phone), but never by more than the calibrated floor, the lowest mean of a correctly read
calibration recording (a reading worse than that overall is mispronounced, not unusual).
A phone's credit is a logistic of that relative GOP about its class threshold (0.5 at the
threshold), blended with "was it recognized" by `gop_weight` (default 1: GOP alone); a
word's score is 100 x its lowest phone credit, and it is mispronounced under the
calibrated word threshold (50: some phone below its class threshold) unless the caller
sets `word_threshold`.

Without calibrated GOP (POWSM, a failed alignment) the rule of before calibration applies: credit 1
per recognized phone (or the aligner's 0..1 confidence), a penalty per inserted phone,
the mean times 100, mispronounced under 60. The overall score is the phone-weighted mean
of the word scores.

PER and accuracy: with calibrated GOP, the recognized phones are the reference's, each
phone below its class threshold replaced by the phone the backend's rival path heard there
(or dropped when it heard none, or when the aligner did not reach it): PER is then the
share of phones the assessment judges wrong, consistent with the word verdicts, and
separates a reading of the sentence from a reading of another far better than a free
hypothesis (held-out: 97% of correct readings at least 2x, against 78% for the word
decode's). Without calibrated GOP they come from the backend's hypothesis.
"""

from __future__ import annotations

import json
import math
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

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


#: English function words: their vowels are reduced and their consonants short in fluent
#: speech, so they are judged against their own calibrated thresholds
FUNCTION_WORDS = frozenset("""
a an the this that these those some any each every no my your his her its our their
i me you he him she it we us they them who whom whose which what there here
in on at to of for from by with about into onto over under after before during through
between against without within upon off out up down than as like near since until
and or but nor so yet if because while when where though although
is am are was were be been being do does did have has had will would shall should can
could may might must not to
""".split())
_VOWEL_LETTERS = set("aeiouyɑɒæɐəɛɜɚɝɪɨʊʉʌɔøœɤɯʏɘɵ")
_PHONE_CLASSES = {
    "stop": {"p", "b", "t", "d", "k", "ɡ", "ʔ", "ɾ"},
    "fricative": {"f", "v", "θ", "ð", "s", "z", "ʃ", "ʒ", "h", "x", "ç", "tʃ", "dʒ", "ts", "dz"},
    "nasal": {"m", "n", "ŋ", "ɲ", "m̩", "n̩"},
    "approximant": {"l", "ɹ", "w", "j", "ɫ", "l̩", "ʍ"},
}
PHONE_CLASSES = ("function_vowel", "function_consonant", "vowel", "reduced", "stop",
                 "fricative", "nasal", "approximant", "consonant")


def is_vowel(phone: str) -> bool:
    return bool(phone) and unicodedata.normalize("NFD", phone)[0] in _VOWEL_LETTERS


def phone_class(phone: str, *, function_word: bool = False, stressed: bool | None = None) -> str:
    """The calibration class of a (normalized) phone. `stressed`: None when the
    canonical phones carry no stress marks at all (then vowels are full vowels)."""
    vowel = is_vowel(phone)
    if function_word:
        return "function_vowel" if vowel else "function_consonant"
    if vowel:
        return "reduced" if stressed is False else "vowel"
    base = unicodedata.normalize("NFD", phone)
    for candidate in (phone, base[:1]):  # the whole phone (dʒ), else its base letter
        for name, members in _PHONE_CLASSES.items():
            if candidate in members:
                return name
    return "consonant"


def word_classes(word: str, raw_phones: list[str]) -> list[str]:
    """Classes of a canonical word's normalized phones, read off its raw (stress-marked)
    phones: an unstressed vowel of a word that marks stress somewhere is reduced."""
    function_word = word_key(word) in FUNCTION_WORDS
    marked = any(m in p for p in raw_phones for m in "ˈˌ")
    classes: list[str] = []
    carry = False
    for raw in raw_phones:
        stressed = carry or any(m in raw for m in "ˈˌ")
        phone = normalize_phone(raw)
        if not phone:
            carry = stressed  # a stress mark standing alone belongs to the next phone
            continue
        carry = False
        classes.append(phone_class(phone, function_word=function_word,
                                   stressed=stressed if marked else None))
    return classes


def word_key(word: str) -> str:
    """A word as aligners name it: lower case, without surrounding punctuation."""
    return word.lower().strip(".,!?;:\"'()")


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
    #: GOP (log-likelihood ratio against the rival path, nats/frame), when aligned
    lpr: float | None = None
    #: calibration class (function-word vowel, reduced vowel, stop, ...)
    klass: str = ""
    #: what the backend's rival path heard instead, where it replaced this phone
    rival: str | None = None


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
            if aligned[look].word == word_key(word.word):
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
                mine[i].lpr = forced[j].lpr
                mine[i].rival = normalize_phone(forced[j].rival) if forced[j].rival else None
        # A G2P phone the aligner's dictionary lacks takes the word's mean confidence.
        mean = float(np.mean([p.confidence for p in forced])) if forced else None
        lprs = [p.lpr for p in forced if p.lpr is not None]
        for p in mine:
            if p.confidence is None:
                p.confidence = mean
            if p.lpr is None and lprs:
                p.lpr = float(np.mean(lprs))
    return by_word


def score(words: list[CanonicalWord], recognition: Recognition, gop_weight: float = 1.0,
          word_threshold: float | None = None,
          calibration: dict | None | bool = True) -> AssessmentScores:
    """Compare the canonical phones of `words` with what the recognizer heard.

    `word_threshold`: words scoring below it are mispronounced; None: the calibrated
    threshold (or 60 for phones without GOP). `calibration`: True loads the committed
    calibration.json, a dict gives one (evalset/calibrate.py), None/False scores without.
    """
    if calibration is True:
        calibration = load_calibration()
    calibration = calibration or None
    if calibration and calibration.get("fitted_on", {}).get(
            "backend", recognition.backend) != recognition.backend:
        calibration = None  # another backend's GOP scale
    if calibration and recognition.narrowband and "classes_narrowband" in calibration:
        calibration = {**calibration, "classes": calibration["classes_narrowband"]}
    # Words left with no phones (G2P's punctuation "words", for one) have nothing to score.
    classes = [word_classes(w.word, w.phones) for w in words]
    kept = [(CanonicalWord(word=w.word, phones=normalize_phones(w.phones)), c)
            for w, c in zip(words, classes, strict=True)]
    kept = [(w, c) for w, c in kept if w.phones]
    words = [w for w, _ in kept]
    ref = [_RefPhone(phone, index, klass=klass) for index, (word, cls) in enumerate(kept)
           for phone, klass in zip(word.phones, cls, strict=True)]
    if not ref:
        raise InputError("the reference text has no words to pronounce")
    aligned_words = (_attach_alignment(words, recognition.alignment, ref)
                     if recognition.alignment else {})
    offset = None
    if calibration and "offset_floor" in calibration:
        offset = gop_offset([p.lpr for p in ref], calibration["offset_floor"])
    if offset is not None:
        calibration = {**calibration, "offset": offset}
    if calibration and any(p.lpr is not None for p in ref):
        hyp = _judged_phones(ref, calibration)
    else:
        hyp = [RecognizedPhone(phone=n, start=p.start, end=p.end)
               for p in recognition.phones if (n := normalize_phone(p.phone))]
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
            confidence=r.confidence if r else None,
            gop=round(r.lpr, 3) if r is not None and r.lpr is not None else None))

    word_results = [_word_result(index, word, phones, ref, aligned_words.get(index), gop_weight,
                                 word_threshold, calibration)
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
        gop_offset=round(offset, 3) if offset is not None else None,
    )


#: the word threshold when phones come without GOP (or without calibration): the
#: recognized-phones rule of before calibration
LEGACY_WORD_THRESHOLD = 60.0
CALIBRATION_FILE = Path(__file__).parent / "calibration.json"


@lru_cache(maxsize=4)
def load_calibration(path: str | None = None) -> dict | None:
    """Calibrated GOP thresholds (evalset/calibrate.py writes them); None when absent."""
    file = Path(path) if path else CALIBRATION_FILE
    if not file.exists():
        return None
    return json.loads(file.read_text(encoding="utf-8"))


def _judged_phones(ref: list[_RefPhone], calibration: dict) -> list[RecognizedPhone]:
    """The reference phones as the calibrated GOP judges them (see the module's docstring)."""
    heard = []
    for r in ref:
        if r.lpr is None:
            continue
        if phone_credit(r.lpr, r.klass, calibration) >= 0.5:
            heard.append(RecognizedPhone(phone=r.phone, start=r.start, end=r.end))
        elif r.rival and r.rival != r.phone:
            heard.append(RecognizedPhone(phone=r.rival, start=r.start, end=r.end))
    return heard


def gop_offset(gops: list[float | None], floor: float) -> float | None:
    """What a recording's phones are judged relative to: the mean GOP of its reference
    phones that have one (None when none has), but not below `floor` (the lowest mean of a
    correctly read calibration recording). A voice or channel the acoustic model fits less
    well lowers every phone; a reading lower overall than any correct one is
    mispronounced, not unusual."""
    values = [g for g in gops if g is not None]
    return max(float(np.mean(values)), floor) if values else None


def phone_credit(gop: float, klass: str, calibration: dict) -> float:
    """0..1: a logistic of the phone's GOP, less the recording's `offset` where the
    calibration has one, about its class's calibrated threshold (0.5 at the threshold, 0.9
    at the class's median for correctly read phones)."""
    classes = calibration["classes"]
    c = classes.get(klass) or classes["default"]
    z = (gop - calibration.get("offset", 0.0) - c["threshold"]) / c["scale"]
    return 1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0)))


def _word_result(index: int, word: CanonicalWord, phones: list[PhoneResult],
                 ref: list[_RefPhone], aligned: AlignedWord | None, gop_weight: float,
                 threshold: float | None,
                 calibration: dict | None = None) -> WordResult:
    mine = [p for p in phones if p.word_index == index]
    counts = {op: sum(p.op == op for p in mine)
              for op in ("match", "substitution", "deletion", "insertion")}
    own_ref = [p for p in ref if p.word == index]
    confidences = [p.confidence for p in own_ref if p.confidence is not None]
    heard_any = counts["match"] + counts["substitution"] > 0
    calibrated = calibration is not None and all(p.lpr is not None for p in own_ref)
    if calibrated:
        # Each phone's calibrated GOP credit (blended with "was it heard" by gop_weight);
        # the word is as good as its calibrated aggregate of them (min: its worst phone).
        heard = [1.0 if p.op == "match" else 0.0 for p in mine if p.op != "insertion"]
        credits = [gop_weight * phone_credit(r.lpr, r.klass, calibration)
                   + (1 - gop_weight) * h for r, h in zip(own_ref, heard, strict=True)]
        aggregate = min if calibration.get("aggregate", "min") == "min" else np.mean
        value = round(100 * float(aggregate(credits)), 1)
        confident = float(np.mean(credits)) >= 0.5
        limit = calibration["word_threshold"] if threshold is None else threshold
    else:
        has_gop = len(confidences) == len(own_ref)
        credit = 0.0
        for p in mine:
            if p.op == "insertion":
                continue
            heard_one = 1.0 if p.op == "match" else 0.0
            credit += ((gop_weight * p.confidence + (1 - gop_weight) * heard_one) if has_gop
                       else heard_one)
        credit -= counts["insertion"] * ((1 - gop_weight) if has_gop else 1.0)
        value = round(100 * max(credit, 0.0) / len(own_ref), 1)
        confident = has_gop and float(np.mean(confidences)) >= 0.5
        limit = LEGACY_WORD_THRESHOLD if threshold is None else threshold
    if not heard_any and not confident:
        verdict = "missing"
    elif value >= limit:
        verdict = "correct"
    else:
        verdict = "mispronounced"
    times = [(p.start, p.end) for p in mine if p.start is not None and p.end is not None]
    start = aligned.start if aligned else (min(t[0] for t in times) if times else None)
    end = aligned.end if aligned else (max(t[1] for t in times) if times else None)
    return WordResult(
        index=index, word=word.word, expected_phones=word.phones,
        recognized_phones=[p.recognized for p in mine if p.recognized],
        score=min(max(value, 0.0), 100.0), verdict=verdict, matches=counts["match"],
        substitutions=counts["substitution"], deletions=counts["deletion"],
        insertions=counts["insertion"], start=start, end=end,
        confidence=round(float(np.mean(confidences)), 4) if confidences else None,
    )
