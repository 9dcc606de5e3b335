"""pocketsphinx: offline English phone recognition plus forced alignment.

The hypothesis comes from phone-loop (`allphone`) decoding with the phone bigram LM
shipped in the pocketsphinx wheel: it never sees the reference text. Forced alignment
of the reference words (the offline stand-in for MFA) only adds times and GOP-style
confidences for the reference phones.
"""

from __future__ import annotations

import math
import re
import tempfile
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
#: pocketsphinx keeps acoustic scores as log base 1.0001 shifted right by 10 bits
SCORE_TO_NATS = 1024 * math.log(1.0001)
#: logistic squashing of GOP (nats/frame) to a 0..1 confidence: -2.5 maps to 0.5. On the
#: Festival fixtures correctly spoken phones sit around -0.5..-2, a swapped phone (f said
#: as b) near -8.
GOP_MIDPOINT = -2.5
GOP_SCALE = 0.5
_WORD_RE = re.compile(r"[a-z][a-z']*")


def gop_confidence(gop: float) -> float:
    return 1.0 / (1.0 + math.exp(-(gop - GOP_MIDPOINT) / GOP_SCALE))


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
    ) -> None:
        """`acoustic_model`, `dictionary`, `phone_lm`: paths replacing the en-us model in
        the pocketsphinx wheel. `language_weight`: weight of the phone bigram LM (2 gave
        the lowest PER on the fixtures; 1 and 4 were slightly worse). `align`: force-align
        the text, when one is given, for times and confidences."""
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
        phones = [
            RecognizedPhone(phone=ARPABET_TO_IPA[word], start=round(start * FRAME_S, 3),
                            end=round((end + 1) * FRAME_S, 3))
            for word, start, end in segments
            if word in ARPABET_TO_IPA  # drops SIL and the +NSN+/+SPN+ noise models
        ]
        warnings: list[str] = []
        alignment = None
        if text and self._align_enabled:
            alignment = self._align(pcm, text, warnings)
        return Recognition(backend=self.name, phones=phones, alignment=alignment,
                           warnings=warnings, decode_s=time.perf_counter() - started)

    def _decoder(self, dictionary: Path, **config: object) -> object:
        """A fresh decoder per utterance and search: a reused one carries state between
        utterances (the same audio decoded differently the second time) and pocketsphinx
        5.1 fails a second alignment on it. Batch CMN: normalise on this utterance alone."""
        from pocketsphinx import Decoder

        return Decoder(hmm=self._hmm, dict=str(dictionary), lm=None, cmn="batch",
                       loglevel="FATAL", **config)

    def _align(self, pcm: bytes, text: str, warnings: list[str]) -> list[AlignedWord] | None:
        words = _WORD_RE.findall(text.lower())
        unknown = sorted({w for w in words if w not in self._dictionary})
        if unknown:
            warnings.append("alignment: not in the aligner's dictionary, so without times: "
                            + ", ".join(unknown))
        known = [w for w in words if w in self._dictionary]
        if not known:
            return None
        with tempfile.TemporaryDirectory() as tmp:
            dict_path = Path(tmp) / "words.dict"
            dict_path.write_text("\n".join(line for w in sorted(set(known))
                                           for line in self._dictionary[w]) + "\n",
                                 encoding="utf-8")
            # Only this sentence's words in its dictionary: loads in milliseconds.
            decoder = self._decoder(dict_path)
            try:
                decoder.set_align_text(" ".join(known))
                _decode(decoder, pcm)  # word-level alignment
                decoder.set_alignment()
                _decode(decoder, pcm)  # the sub-word pass that gives phone times and scores
                alignment = decoder.get_alignment()
            except RuntimeError:
                warnings.append("alignment: the audio could not be aligned to the text, so "
                                "words have no times or confidences")
                return None
            # Read everything out while `decoder` is alive: the alignment's entries point
            # into its memory.
            return [_aligned_word(word) for word in alignment
                    if word.name.split("(", 1)[0] in self._dictionary]  # drops <sil>, </s>


def _aligned_word(word: object) -> AlignedWord:
    phones = []
    for p in word:
        gop = p.score * SCORE_TO_NATS / max(p.duration, 1)
        phones.append(AlignedPhone(
            phone=ARPABET_TO_IPA.get(p.name, p.name), start=round(p.start * FRAME_S, 3),
            end=round((p.start + p.duration) * FRAME_S, 3), gop=round(gop, 3),
            confidence=round(gop_confidence(gop), 4)))
    return AlignedWord(word=word.name.split("(", 1)[0], start=round(word.start * FRAME_S, 3),
                       end=round((word.start + word.duration) * FRAME_S, 3), phones=phones)
