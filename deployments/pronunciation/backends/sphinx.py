"""pocketsphinx: offline English phone recognition, forced alignment and GOP.

The hypothesis never sees the reference text. "words" is the dictionary phones of the
words a large-vocabulary decode hears (the wheel's general English trigram LM and
CMUdict); "phones" the phone loop's (`allphone`, the wheel's phone bigram LM) own phones;
"auto" (default) the first when a text is given (GOP then judges the words), the second
otherwise. On the held-out evaluation set the phone
loop's PER against the own sentence was 0.53 (median) against 0.93 for another
sentence; the word decode's 0.21 against 0.91.

Goodness of pronunciation: the reference text is force-aligned at phone level, and each
phone's GOP is the log-likelihood ratio, per frame, of the forced phone against the free
phone loop over the same frames (Witt & Young 2000, with the loop's Viterbi path as the
denominator): 0 when no other phone sequence explains the frames better, very negative
when another sound does. Both scores are pocketsphinx's acoustic scores (log base
1.0001, relative to the best senone of each frame, so they compare directly).
"""

from __future__ import annotations

import math
import re
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from deployments.common.errors import InputError
from deployments.pronunciation.types import (
    AlignedPhone,
    AlignedWord,
    Recognition,
    RecognizedPhone,
)

#: CMU/ARPAbet (as in pocketsphinx's en-us model, no stress digits) to IPA.
#: AH is written ʌ; the scorer folds ʌ and ə together, since without stress they are
#: one English phoneme.
ARPABET_TO_IPA = {
    "AA": "ɑ", "AE": "æ", "AH": "ʌ", "AO": "ɔ", "AW": "aʊ", "AY": "aɪ", "B": "b",
    "CH": "tʃ", "D": "d", "DH": "ð", "EH": "ɛ", "ER": "ɚ", "EY": "eɪ", "F": "f", "G": "ɡ",
    "HH": "h", "IH": "ɪ", "IY": "i", "JH": "dʒ", "K": "k", "L": "l", "M": "m", "N": "n",
    "NG": "ŋ", "OW": "oʊ", "OY": "ɔɪ", "P": "p", "R": "ɹ", "S": "s", "SH": "ʃ", "T": "t",
    "TH": "θ", "UH": "ʊ", "UW": "u", "V": "v", "W": "w", "Y": "j", "Z": "z", "ZH": "ʒ",
}
FRAME_S = 0.01
FRAME_SAMPLES = 160
#: pocketsphinx keeps acoustic scores as log base 1.0001 shifted right by 10 bits
SCORE_TO_NATS = 1024 * math.log(1.0001)
#: logistic squashing of GOP (nats/frame) to a 0..1 confidence: -2.5 maps to 0.5. On the
#: Festival fixtures correctly spoken phones sit around -0.5..-2, a swapped phone (f said
#: as b) near -8.
GOP_MIDPOINT = -2.5
GOP_SCALE = 0.5
_WORD_RE = re.compile(r"[a-z][a-z']*")
#: pseudo-words (silence) that open and close the forced alignment
_OPEN, _CLOSE = "sil_open", "sil_close"
#: forced-alignment settings, tried in turn until one reaches the end of the text: the
#: defaults, then wide beams with dither (pocketsphinx's fixed seed), which aligned every
#: recording of the evaluation set the defaults could not (6% of them)
_ALIGN_CONFIGS: tuple[dict[str, object], ...] = (
    {}, {"beam": 1e-100, "wbeam": 1e-80, "pbeam": 1e-100, "dither": True})
#: the FSG search reports segment scores unshifted; the phone loop (and the state
#: aligner) in units of 2**10 of them
_FSG_SCALE = 1024.0


def gop_confidence(gop: float) -> float:
    z = max(min((gop - GOP_MIDPOINT) / GOP_SCALE, 50.0), -50.0)  # no overflow
    return 1.0 / (1.0 + math.exp(-z))


#: audio whose energy above NARROWBAND_HZ is under this share of the total came from an
#: 8 or 11.025 kHz source (resampling leaves that band empty)
NARROWBAND_HZ = 5600.0
NARROWBAND_SHARE = 1e-4


def is_narrowband(audio: np.ndarray, rate: int = 16_000) -> bool:
    power = np.abs(np.fft.rfft(np.asarray(audio, dtype=np.float64))) ** 2
    freqs = np.fft.rfftfreq(len(audio), 1.0 / rate)
    total = float(power.sum())
    return total > 0 and float(power[freqs >= NARROWBAND_HZ].sum()) < NARROWBAND_SHARE * total


def _model_file(name: str) -> str:
    from pocketsphinx import get_model_path

    return get_model_path(name)


def _decode(decoder: object, pcm: bytes) -> None:
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()


def load_dictionary(path: str) -> dict[str, list[str]]:
    """word -> the dictionary's lines for it (all pronunciation variants)."""
    entries: dict[str, list[str]] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            head = line.split(" ", 1)[0]
            word = head.split("(", 1)[0]
            if word:
                entries.setdefault(word, []).append(line.rstrip("\n"))
    return entries


class PocketsphinxBackend:
    name = "pocketsphinx"

    def __init__(
        self,
        acoustic_model: str | None = None,
        dictionary: str | None = None,
        phone_lm: str | None = None,
        language_weight: float = 2.0,
        align: bool = True,
        hypothesis: str = "auto",
        word_lm: str | None = None,
    ) -> None:
        """`acoustic_model`, `dictionary`, `phone_lm`: paths replacing the en-us model in
        the pocketsphinx wheel. `language_weight`: weight of the phone bigram LM (2 gave
        the lowest PER on the fixtures; 1 and 4 were slightly worse). `align`: force-align
        the text, when one is given, for times and GOP. `hypothesis`: "words", "phones"
        (the phone loop's own phones, as before issue 14) or "auto" (default): words when
        a text is given, so that GOP judges the words and the hypothesis only gives PER,
        phones without one (target IPA only), where the hypothesis alone judges the words
        and a word decode would turn "box" said for "fox" into whichever word fits.
        `word_lm`: the language model of the word decode (default: the wheel's
        en-us.lm.bin)."""
        if hypothesis not in ("auto", "phones", "words"):
            raise ValueError("hypothesis must be 'auto', 'phones' or 'words', not "
                             f"{hypothesis!r}")
        # "words": the hypothesis is the dictionary phones of the words a large-vocabulary
        # decode (the wheel's general English LM, never the reference text) hears. Its PER
        # separates own and other sentences far better than the phone loop's, but it can
        # only "hear" dictionary words. The GOP still comes from the phone loop.
        self._hypothesis = hypothesis
        self._word_lm = word_lm or _model_file("en-us/en-us.lm.bin")
        self._dictionary_path = dictionary or _model_file("en-us/cmudict-en-us.dict")
        self._word_decoder: object | None = None
        self._word_lock = threading.Lock()
        self._hmm = acoustic_model or _model_file("en-us/en-us")
        self._dictionary = load_dictionary(dictionary or _model_file("en-us/cmudict-en-us.dict"))
        self._align_enabled = align
        # Phone-loop search: wide beams because there is no word constraint to prune by.
        self._allphone_config = dict(
            allphone=phone_lm or _model_file("en-us/en-us-phone.lm.bin"),
            lw=language_weight, beam=1e-20, pbeam=1e-20,
        )
        # The phone loop needs no words, but a Decoder loads a dictionary; a one-word one
        # loads in milliseconds where the full CMUdict takes most of a second.
        self._workdir = tempfile.TemporaryDirectory(prefix="pocketsphinx-")
        self._phone_loop_dict = Path(self._workdir.name) / "phone-loop.dict"
        self._phone_loop_dict.write_text("a AH\n", encoding="utf-8")

    def supports(self, language: str) -> bool:
        return language.lower().replace("_", "-").split("-")[0] == "en"

    def recognize(self, audio: np.ndarray, language: str, text: str | None = None) -> Recognition:
        if not self.supports(language):
            raise InputError(f"the pocketsphinx recognizer only knows English; got language "
                             f"{language!r} (configure the POWSM backend for other languages)")
        started = time.perf_counter()
        pcm = (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2").tobytes()
        decoder = self._decoder(self._phone_loop_dict, **self._allphone_config)
        _decode(decoder, pcm)
        segments = [(s.word, s.start_frame, s.end_frame) for s in decoder.seg()]
        loop = _loop_frame_scores(decoder, len(pcm) // 2 // FRAME_SAMPLES + 1)
        phones = [
            RecognizedPhone(phone=ARPABET_TO_IPA[word], start=round(start * FRAME_S, 3),
                            end=round((end + 1) * FRAME_S, 3))
            for word, start, end in segments
            if word in ARPABET_TO_IPA  # drops SIL and the +NSN+/+SPN+ noise models
        ]
        if self._hypothesis == "words" or (self._hypothesis == "auto" and text
                                           and self._align_enabled):
            phones = self._word_phones(pcm)
        warnings: list[str] = []
        alignment = None
        if text and self._align_enabled:
            alignment = self._align(pcm, text, warnings, loop)
        return Recognition(backend=self.name, phones=phones, alignment=alignment,
                           warnings=warnings, decode_s=time.perf_counter() - started,
                           narrowband=is_narrowband(audio))

    def _word_phones(self, pcm: bytes) -> list[RecognizedPhone]:
        """Phones of the words a large-vocabulary decode hears, timed by word (each word's
        span shared evenly by its phones). One decoder, loaded once (about a second),
        used under a lock."""
        with self._word_lock:
            if self._word_decoder is None:
                from pocketsphinx import Decoder

                self._word_decoder = Decoder(hmm=self._hmm, lm=self._word_lm,
                                             dict=self._dictionary_path, cmn="batch",
                                             loglevel="FATAL")
            decoder = self._word_decoder
            _decode(decoder, pcm)
            segments = [(s.word, s.start_frame, s.end_frame) for s in decoder.seg()]
        phones: list[RecognizedPhone] = []
        for word, first, last in segments:
            entries = self._dictionary.get(word.split("(", 1)[0])
            if not entries:
                continue  # <s>, </s>, <sil>, fillers
            line = next((e for e in entries if e.split(" ", 1)[0] == word), entries[0])
            arpabet = [p for p in line.split()[1:] if p in ARPABET_TO_IPA]
            step = (last + 1 - first) / max(len(arpabet), 1)
            for k, phone in enumerate(arpabet):
                phones.append(RecognizedPhone(
                    phone=ARPABET_TO_IPA[phone], start=round((first + k * step) * FRAME_S, 3),
                    end=round((first + (k + 1) * step) * FRAME_S, 3)))
        return phones

    def _decoder(self, dictionary: Path, **config: object) -> object:
        """A fresh decoder per utterance and search: a reused one carries state between
        utterances (the same audio decoded differently the second time) and pocketsphinx
        5.1 fails a second alignment on it. Batch CMN: normalise on this utterance alone."""
        from pocketsphinx import Decoder

        return Decoder(hmm=self._hmm, dict=str(dictionary), lm=None, cmn="batch",
                       loglevel="FATAL", **config)

    def _align(self, pcm: bytes, text: str, warnings: list[str],
               loop: np.ndarray) -> list[AlignedWord] | None:
        """Forced alignment, one pass at phone level: every phone of the text becomes a
        one-phone pseudo-word, so the FSG aligner's segments are the phones, with their
        frames and acoustic scores. (pocketsphinx 5.1's two-pass word-then-state
        alignment failed on about a quarter of the evaluation recordings: the word pass
        drops the last word now and then, and the state pass then fails, "Alignment failed
        in frame N"; the one-pass form is also cheaper.) Pseudo-words for silence open
        and close the sequence: the aligner otherwise stretches the first phone over the
        leading silence and may drop the last one."""
        words = _WORD_RE.findall(text.lower())
        unknown = sorted({w for w in words if w not in self._dictionary})
        if unknown:
            warnings.append("alignment: not in the aligner's dictionary, so without times: "
                            + ", ".join(unknown))
        known = [w for w in words if w in self._dictionary]
        if not known:
            return None
        tokens: list[str] = [_OPEN]
        lines = [f"{_OPEN} SIL", f"{_CLOSE} SIL"]
        owner: dict[str, tuple[int, str]] = {}
        for index, word in enumerate(known):
            # the dictionary's first pronunciation (the G2P phones are matched to it later)
            phones = self._dictionary[word][0].split()[1:]
            for k, phone in enumerate(phones):
                token = f"w{index}p{k}"
                tokens.append(token)
                lines.append(f"{token} {phone}")
                owner[token] = (index, phone)
        tokens.append(_CLOSE)
        with tempfile.TemporaryDirectory() as tmp:
            dict_path = Path(tmp) / "phones.dict"
            dict_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
            for config in _ALIGN_CONFIGS:
                decoder = self._decoder(dict_path, **config)
                decoder.set_align_text(" ".join(tokens))
                _decode(decoder, pcm)
                if decoder.hyp() is not None:
                    break
            else:
                warnings.append("alignment: the audio could not be aligned to the text, so "
                                "words have no times or confidences")
                return None
            logmath = decoder.get_logmath()
            segments = [(seg.word, seg.start_frame, seg.end_frame,
                         logmath.log(seg.ascore) if seg.ascore > 0 else -(2**30))
                        for seg in decoder.seg()]
        phones_by_word: dict[int, list[AlignedPhone]] = {}
        for token, first, last, ascore in segments:
            if token not in owner:
                continue  # silences, fillers, <s>, </s>
            index, arpabet = owner[token]
            phones_by_word.setdefault(index, []).append(
                _aligned_phone(arpabet, first, last - first + 1, ascore / _FSG_SCALE, loop))
        missing = [w for i, w in enumerate(known) if i not in phones_by_word]
        if missing:
            warnings.append("alignment: the aligner ran out of audio before: "
                            + ", ".join(missing))
        return [AlignedWord(word=known[i], start=phones[0].start, end=phones[-1].end,
                            phones=phones)
                for i, phones in sorted(phones_by_word.items())]


def _loop_frame_scores(decoder: object, n_frames: int) -> np.ndarray:
    """The free phone loop's acoustic score per frame (pocketsphinx's scaled units, relative
    to the best senone of each frame like the aligner's): each segment's acoustic score
    spread evenly over its frames. The Python API gives a segment's score as
    logmath.exp(score); its log is taken back here."""
    logmath = decoder.get_logmath()
    scores = np.zeros(max(n_frames, 1))
    for seg in decoder.seg():
        frames = seg.end_frame - seg.start_frame + 1
        if frames <= 0:
            continue
        raw = logmath.log(seg.ascore) if seg.ascore > 0 else -(2**20)
        if seg.end_frame >= len(scores):
            scores = np.pad(scores, (0, seg.end_frame + 1 - len(scores)))
        scores[seg.start_frame:seg.end_frame + 1] = raw / frames
    return scores


def _aligned_phone(arpabet: str, start: int, frames: int, score: float,
                   loop: np.ndarray) -> AlignedPhone:
    """`score`: the forced phone's acoustic score in the loop's units."""
    frames = max(frames, 1)
    # GOP (Witt & Young): log-likelihood ratio of the forced phone against the free phone
    # loop over the same frames, per frame. The loop is the unconstrained best path, so a
    # forced phone that scores better (different segment edges) is capped at 0.
    free = float(loop[start:start + frames].sum())
    lpr = min((score - free) * SCORE_TO_NATS / frames, 0.0)
    # the older confidence: the forced phone's score relative to the best senone per frame
    gop = score * SCORE_TO_NATS / frames
    return AlignedPhone(
        phone=ARPABET_TO_IPA.get(arpabet, arpabet), start=round(start * FRAME_S, 3),
        end=round((start + frames) * FRAME_S, 3), gop=round(gop, 3),
        confidence=round(gop_confidence(gop), 4), lpr=round(lpr, 3), frames=frames)
