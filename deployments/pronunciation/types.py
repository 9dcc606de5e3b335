"""Typed values passed between the audio decoder, the recognizer and the scorer."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class RecognizedPhone(BaseModel):
    """One phone of the recognizer's own hypothesis (IPA), with times when it has them."""

    phone: str
    start: float | None = None
    end: float | None = None


class AlignedPhone(BaseModel):
    """A reference phone placed in time by forced alignment.

    `gop` is the mean per-frame acoustic log-likelihood (nats) of the forced phone
    relative to the best-scoring acoustic state (POWSM: the best token's CTC posterior)
    in each frame: 0 is as good as the model can explain those frames, very negative
    means another sound fits better. `confidence` squashes it to 0..1.
    """

    phone: str
    start: float
    end: float
    gop: float
    confidence: float = Field(ge=0, le=1)
    #: GOP proper (Witt & Young): log-likelihood ratio (nats/frame, <= 0) of this phone
    #: against the rival path (or the free phone loop) over the same frames; POWSM: of the
    #: reference against it with this phone replaced by its likeliest rival (ctc_gop.py).
    #: None from backends without it.
    lpr: float | None = None
    #: frames the aligner gave the phone (pocketsphinx: 10 ms; POWSM: its encoder's)
    frames: int | None = None
    #: the phone the rival path (the text's phones, any replaceable by another of its
    #: kind) put over most of these frames instead of this one; None where it kept it
    rival: str | None = None


class AlignedWord(BaseModel):
    word: str
    start: float
    end: float
    phones: list[AlignedPhone]


class Recognition(BaseModel):
    """What a recognizer backend returns for one utterance."""

    backend: str
    #: the backend's hypothesis: free phone recognition, or (pocketsphinx's "aligned")
    #: the rival path through the reference text's phones
    phones: list[RecognizedPhone]
    #: forced alignment of the reference words (times and GOP only), when the backend can
    alignment: list[AlignedWord] | None = None
    warnings: list[str] = Field(default_factory=list)
    decode_s: float = 0.0
    #: the audio holds nothing above ~5.5 kHz (an 8 or 11 kHz source): fricatives then
    #: score lower, and the calibration has thresholds of its own for it
    narrowband: bool | None = None
    #: the frequency warp (VTLN factor) the backend's passes used, where it chooses one
    warp: float | None = None


class CanonicalWord(BaseModel):
    """A reference word and its expected phones (from G2P or the caller's target IPA)."""

    word: str
    phones: list[str]


Op = Literal["match", "substitution", "deletion", "insertion"]
Verdict = Literal["correct", "mispronounced", "missing"]


class PhoneResult(BaseModel):
    op: Op
    expected: str | None
    recognized: str | None
    #: index into `words` of the reference word this phone belongs to (insertions: the
    #: word they fall in or after)
    word_index: int | None
    start: float | None = None
    end: float | None = None
    confidence: float | None = None
    #: goodness of pronunciation (nats/frame, <= 0; 0 = nothing on the rival path explains
    #: these frames better), when the backend aligns
    gop: float | None = None


class WordResult(BaseModel):
    index: int
    word: str
    expected_phones: list[str]
    recognized_phones: list[str]
    score: float = Field(ge=0, le=100)
    verdict: Verdict
    matches: int
    substitutions: int
    deletions: int
    insertions: int
    start: float | None = None
    end: float | None = None
    confidence: float | None = None


class AssessmentScores(BaseModel):
    target_ipa: str
    recognized_ipa: str
    target_phones: list[str]
    recognized_phones: list[str]
    phones: list[PhoneResult]
    words: list[WordResult]
    #: (S + D + I) / N_ref
    per: float
    #: (N_ref - S - D) / N_ref
    accuracy: float
    score: float = Field(ge=0, le=100)
    #: mean GOP confidence of the reference phones, when the backend gives it
    confidence: float | None = None
    counts: dict[str, int]
    #: the recording's mean GOP (not below the calibrated floor): phones' GOP is judged
    #: relative to it; None without calibrated GOP
    gop_offset: float | None = None


class AudioInfo(BaseModel):
    duration_s: float
    source_format: str
    source_sample_rate: int
    source_channels: int


class AssessmentResult(AssessmentScores):
    """The endpoint's output: the scores plus what was used and how long each stage took."""

    language: str
    recognizer: str
    g2p_backend: str | None
    audio: AudioInfo
    #: signal-quality and alignment problems that did not stop the assessment
    warnings: list[str]
    #: seconds: g2p, audio (fetch + decode), recognizer (handle call), recognizer_decode
    #: (inside the backend), scoring, total. total < g2p + audio + recognizer shows the
    #: two branches overlapping.
    timings: dict[str, float]
