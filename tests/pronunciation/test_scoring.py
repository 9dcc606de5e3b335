"""The scorer on hand-written phones: normalization, alignment, counts, verdicts."""

from __future__ import annotations

import pytest

from deployments.common.errors import InputError
from deployments.pronunciation.scoring import (
    align,
    normalize_phone,
    parse_slashed,
    parse_target_ipa,
    score,
    segment_ipa,
)
from deployments.pronunciation.types import (
    AlignedPhone,
    AlignedWord,
    CanonicalWord,
    Recognition,
    RecognizedPhone,
)


def rec(phones: list[str], alignment: list[AlignedWord] | None = None) -> Recognition:
    return Recognition(backend="test", phones=[RecognizedPhone(phone=p) for p in phones],
                       alignment=alignment)


@pytest.mark.parametrize("raw,expected", [
    ("ˈɪ", "ɪ"), ("ˌoʊ", "oʊ"), ("g", "ɡ"), ("ɝ", "ɚ"), ("ɜ˞", "ɚ"), ("r", "ɹ"),
    ("t͡ʃ", "tʃ"), ("d͡ʒ", "dʒ"), ("ʌ", "ə"), ("ˈ", ""), ("|", ""),
])
def test_normalize_phone(raw: str, expected: str) -> None:
    assert normalize_phone(raw) == expected


def test_normalize_is_nfd() -> None:
    assert normalize_phone("\u00e3") == normalize_phone("a\u0303") == "a\u0303"


def test_segment_and_parse_target_ipa() -> None:
    assert segment_ipa("t͡ʃiːz") == ["t͡ʃ", "iː", "z"]
    words = parse_target_ipa("/h//ɛ//l//ˈoʊ/ wˈɝld")
    assert [w.phones for w in words] == [["h", "ɛ", "l", "oʊ"], ["w", "ɚ", "l", "d"]]
    assert parse_slashed("/p//h//o/") == ["p", "h", "o"]


def test_align_ops() -> None:
    assert align(list("kæt"), list("kæt")) == [("match", 0, 0), ("match", 1, 1),
                                               ("match", 2, 2)]
    assert align(list("kæt"), list("kt")) == [("match", 0, 0), ("deletion", 1, None),
                                              ("match", 2, 1)]
    assert align(list("kæt"), list("kæts")) == [("match", 0, 0), ("match", 1, 1),
                                                ("match", 2, 2), ("insertion", None, 3)]
    assert align(list("kæt"), list("bæt"))[0] == ("substitution", 0, 0)


def test_features_pair_similar_phones() -> None:
    # "pa" heard as "bza": pairing p with b (one feature apart) and inserting z beats
    # pairing p with z; plain Levenshtein could pick either.
    assert align(["p", "a"], ["b", "z", "a"]) == [
        ("substitution", 0, 0), ("insertion", None, 1), ("match", 1, 2)]


def test_counts_per_accuracy_and_words() -> None:
    words = [CanonicalWord(word="the", phones=["ð", "ə"]),
             CanonicalWord(word="fox", phones=["f", "ˈɑ", "k", "s"])]
    # "the box" (ʌ and ə are one phoneme once stress is gone), then an extra phone
    result = score(words, rec(["ð", "ʌ", "b", "ɑ", "k", "s", "t"]))
    assert result.counts == {"reference": 6, "recognized": 7, "match": 5, "substitution": 1,
                             "deletion": 0, "insertion": 1}
    assert result.per == pytest.approx(2 / 6, abs=1e-4)
    assert result.accuracy == pytest.approx(5 / 6, abs=1e-4)
    the, fox = result.words
    assert (the.verdict, the.score) == ("correct", 100.0)
    assert fox.verdict == "mispronounced"  # (3 matched - 1 inserted) / 4 phones = 50
    assert fox.score == 50.0 and fox.insertions == 1
    assert result.target_ipa == "ðə fɑks"
    assert result.score == pytest.approx((100 * 2 + 50 * 4) / 6, abs=0.1)


def test_missing_word() -> None:
    words = [CanonicalWord(word="big", phones=list("bɪɡ")),
             CanonicalWord(word="cat", phones=list("kæt"))]
    result = score(words, rec(list("bɪɡ")))
    assert [w.verdict for w in result.words] == ["correct", "missing"]
    assert result.per == pytest.approx(0.5)


def test_gop_confidence_drives_word_score_and_times() -> None:
    def phone(p: str, start: float, conf: float) -> AlignedPhone:
        return AlignedPhone(phone=p, start=start, end=start + 0.1, gop=0.0, confidence=conf)

    words = [CanonicalWord(word="fox", phones=list("fɑks"))]
    alignment = [AlignedWord(word="fox", start=0.0, end=0.4, phones=[
        phone("f", 0.0, 0.02), phone("ɑ", 0.1, 0.9), phone("k", 0.2, 0.9),
        phone("s", 0.3, 0.9)])]
    # The recognizer heard every phone right, but the aligner says f fits badly.
    result = score(words, rec(list("fɑks"), alignment), gop_weight=1.0)
    assert result.per == 0.0
    assert result.words[0].score == pytest.approx(100 * (0.02 + 0.9 * 3) / 4, abs=0.1)
    assert result.phones[0].start == 0.0 and result.phones[0].confidence == 0.02
    assert result.words[0].start == 0.0 and result.words[0].end == 0.4
    blended = score(words, rec(list("fɑks"), alignment), gop_weight=0.5)
    assert blended.words[0].score > result.words[0].score


def test_empty_reference_is_refused() -> None:
    with pytest.raises(InputError, match="no words to pronounce"):  # the caller's, a 4xx
        score([CanonicalWord(word=",", phones=["|"])], rec(["a"]))


def test_phone_classes() -> None:
    from deployments.pronunciation.scoring import word_classes

    assert word_classes("the", ["ð", "ə"]) == ["function_consonant", "function_vowel"]
    assert word_classes("seven", ["s", "ˈɛ", "v", "ə", "n"]) == [
        "fricative", "vowel", "fricative", "reduced", "nasal"]
    assert word_classes("judge", ["d͡ʒ", "ˈʌ", "d͡ʒ"]) == ["fricative", "vowel", "fricative"]
    # no stress marks anywhere (plain target IPA): vowels are full vowels
    assert word_classes("cat", ["k", "æ", "t"]) == ["stop", "vowel", "stop"]


CALIBRATION = {
    "classes": {
        "function_vowel": {"threshold": -9.0, "scale": 3.0},
        "function_consonant": {"threshold": -6.0, "scale": 2.0},
        "vowel": {"threshold": -5.0, "scale": 2.0},
        "stop": {"threshold": -6.0, "scale": 2.0},
        "fricative": {"threshold": -8.0, "scale": 3.0},
        "default": {"threshold": -7.0, "scale": 2.5},
    },
    "aggregate": "min",
    "word_threshold": 50.0,
}


def gop_phone(p: str, start: float, lpr: float) -> AlignedPhone:
    return AlignedPhone(phone=p, start=start, end=start + 0.1, gop=lpr, confidence=0.5,
                        lpr=lpr, frames=10)


def test_calibrated_gop_verdicts() -> None:
    words = [CanonicalWord(word="the", phones=["ð", "ə"]),
             CanonicalWord(word="fox", phones=["f", "ˈɑ", "k", "s"])]
    alignment = [
        # "the": its reduced vowel at -7 would fail a stressed vowel's -5, not its own -9
        AlignedWord(word="the", start=0.0, end=0.2, phones=[
            gop_phone("ð", 0.0, -1.0), gop_phone("ʌ", 0.1, -7.0)]),
        # "fox" said as "box": the f fits badly, the rest well
        AlignedWord(word="fox", start=0.2, end=0.6, phones=[
            gop_phone("f", 0.2, -11.0), gop_phone("ɑ", 0.3, -0.5),
            gop_phone("k", 0.4, -1.0), gop_phone("s", 0.5, -0.8)]),
    ]
    result = score(words, rec(["ð", "ə", "b", "ɑ", "k", "s"], alignment),
                   calibration=CALIBRATION)
    the, fox = result.words
    assert the.verdict == "correct" and the.score > 50
    assert fox.verdict == "mispronounced" and fox.score < 50
    f = next(p for p in result.phones if p.expected == "f")
    assert f.gop == -11.0 and f.start == 0.2
    # the word score is its worst phone's credit: f at 1 scale under its threshold
    assert fox.score == pytest.approx(100 / (1 + 2.718281828 ** 1), abs=0.1)
    # a caller's threshold overrides the calibrated one
    strict = score(words, rec(["ð", "ə", "b", "ɑ", "k", "s"], alignment),
                   word_threshold=0.0, calibration=CALIBRATION)
    assert [w.verdict for w in strict.words] == ["correct", "correct"]
    # without calibration the rule of before applies (confidence 0.5 < 60)
    legacy = score(words, rec(["ð", "ə", "b", "ɑ", "k", "s"], alignment), calibration=None)
    assert [w.verdict for w in legacy.words] == ["mispronounced", "mispronounced"]


def test_calibrated_per_counts_the_phones_judged_wrong() -> None:
    """With calibrated GOP, PER counts the phones below their class threshold (each heard
    as the rival path's phone there, or not at all), whatever the free hypothesis says."""
    words = [CanonicalWord(word="fox", phones=["f", "ˈɑ", "k", "s"])]
    f = gop_phone("f", 0.2, -11.0).model_copy(update={"rival": "b"})
    k = gop_phone("k", 0.4, -12.0)  # judged wrong, but the rival path kept it
    alignment = [AlignedWord(word="fox", start=0.2, end=0.6, phones=[
        f, gop_phone("ɑ", 0.3, -0.5), k, gop_phone("s", 0.5, -0.8)])]
    garbage = rec(["m", "i", "u", "z", "ʃ", "ʃ"], alignment)
    result = score(words, garbage, calibration=CALIBRATION)
    assert result.recognized_phones == ["b", "ɑ", "s"]
    assert result.counts["substitution"] == 1 and result.counts["deletion"] == 1
    assert result.per == 0.5 and result.accuracy == 0.5
    ops = {p.expected: (p.op, p.recognized) for p in result.phones}
    assert ops["f"] == ("substitution", "b") and ops["k"] == ("deletion", None)
    # every phone above its threshold: PER 0, the hypothesis notwithstanding
    clean = [AlignedWord(word="fox", start=0.2, end=0.6, phones=[
        gop_phone(p, 0.2 + 0.1 * i, -0.5) for i, p in enumerate(["f", "ɑ", "k", "s"])])]
    assert score(words, rec(["m", "i"], clean), calibration=CALIBRATION).per == 0.0
    # without calibration PER comes from the hypothesis
    assert score(words, garbage, calibration=None).per > 1.0


def test_a_calibration_applies_to_its_own_backend_only() -> None:
    """GOP scales differ between backends (pocketsphinx's senone ratios, POWSM's CTC
    ratios): another backend's calibration is not applied."""
    words = [CanonicalWord(word="fox", phones=["f", "ˈɑ", "k", "s"])]
    clean = [AlignedWord(word="fox", start=0.2, end=0.6, phones=[
        gop_phone(p, 0.2 + 0.1 * i, -0.5) for i, p in enumerate(["f", "ɑ", "k", "s"])])]
    garbage = rec(["m", "i"], clean)  # backend "test"
    fitted = {**CALIBRATION, "fitted_on": {"backend": "test"}}
    assert score(words, garbage, calibration=fitted).per == 0.0
    other = {**CALIBRATION, "fitted_on": {"backend": "pocketsphinx"}}
    assert score(words, garbage, calibration=other).per > 0.5  # from the hypothesis


def test_gop_is_judged_relative_to_the_recording() -> None:
    """With an offset floor in the calibration, phones are judged against the recording's
    mean GOP (a voice the acoustic model fits less well lowers every phone), held within
    the floor (a reading lower overall than any correct one stays mispronounced)."""
    words = [CanonicalWord(word="fox", phones=["f", "ˈɑ", "k", "s"]),
             CanonicalWord(word="jumps", phones=["dʒ", "ˈʌ", "m", "p", "s"])]

    def reading(gops: list[float]) -> Recognition:
        phones = [gop_phone(p, 0.1 * i, g) for i, (p, g)
                  in enumerate(zip(["f", "ɑ", "k", "s", "dʒ", "ʌ", "m", "p", "s"], gops,
                                   strict=True))]
        return rec([], [AlignedWord(word="fox", start=0.0, end=0.4, phones=phones[:4]),
                        AlignedWord(word="jumps", start=0.4, end=0.9, phones=phones[4:])])

    relative = {**CALIBRATION, "offset_floor": -8.0}
    # a voice the model fits less well: every phone at -6, fox's k at -13
    low_voice = reading([-6.0, -6.0, -13.0, -6.0, -6.0, -6.0, -6.0, -6.0, -6.0])
    result = score(words, low_voice, calibration=relative)
    assert result.gop_offset == pytest.approx(-61 / 9, abs=1e-3)
    assert [w.verdict for w in result.words] == ["mispronounced", "correct"]
    assert [p.expected for p in result.phones if p.op != "match"] == ["k"]
    # absolute thresholds (no floor in the calibration) flag the vowels at -6 as well
    absolute = score(words, low_voice, calibration=CALIBRATION)
    assert [w.verdict for w in absolute.words] == ["mispronounced", "mispronounced"]
    assert absolute.gop_offset is None
    # a reading below every correct one (all at -16): the offset stops at the floor
    garbage = reading([-16.0] * 9)
    held = score(words, garbage, calibration=relative)
    assert held.gop_offset == -8.0
    assert [w.verdict for w in held.words] == ["mispronounced", "mispronounced"]
    unbounded = score(words, garbage, calibration={**CALIBRATION, "offset_floor": -99.0})
    assert [w.verdict for w in unbounded.words] == ["correct", "correct"]
    # no GOP at all (nothing aligned): no offset either
    unaligned = score(words, rec(["f", "ɑ", "k", "s"]), calibration=relative)
    assert unaligned.gop_offset is None


def test_committed_calibration_loads() -> None:
    from deployments.pronunciation.scoring import PHONE_CLASSES, load_calibration

    cal = load_calibration()
    assert cal is not None and set(PHONE_CLASSES) <= set(cal["classes"])
    assert cal["word_threshold"] == 50.0 and 0 < cal["quantile"] < 0.2
    assert cal["fitted_on"]["backend"] == "pocketsphinx"
    # function-word vowels are judged against their own, lower, threshold
    assert cal["classes"]["function_vowel"]["threshold"] < cal["classes"]["vowel"]["threshold"]
