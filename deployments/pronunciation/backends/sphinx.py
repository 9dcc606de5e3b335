"""pocketsphinx: offline English phone recognition, forced alignment and GOP.

Hypotheses: "words" is the dictionary phones of the words a large-vocabulary decode hears
(the wheel's general English trigram LM and CMUdict); "phones" the phone loop's
(`allphone`, the wheel's phone bigram LM) own phones; neither sees the reference text.
"aligned" is the rival path below (the text's phones, each possibly replaced by another).
"auto" (default): "aligned" when a text is given, "phones" otherwise. On the held-out
evaluation set the phone loop's PER against the own sentence was 0.53 (median) against
0.93 for another sentence; the word decode's 0.21 against 0.91.

Goodness of pronunciation: the reference text is force-aligned at phone level (each word
by whichever of its dictionary pronunciations the audio fits), and each phone's GOP is
the log-likelihood ratio, per frame, of the forced phone against a rival path over the
same frames (Witt & Young 2000, with a Viterbi path as the denominator): 0 when nothing
better explains the frames, very negative when another sound does. The rival path is the
aligned phone sequence in which every phone may be replaced by any other vowel (for a
vowel) or consonant (for a consonant): an extended recognition network, one FSG pass.
Against a free phone loop (the denominator before) correctly read phones scored lower
and more variably, since the loop may re-segment and insert freely; on the held-out set
the rival raised the recall of substituted words from 59.9% to 66.5% at the same
calibration quantile. Both paths are found by FSG search and then rescored by
pocketsphinx's state aligner with every phone as the triphone between its actual
neighbours (the FSG search models a one-phone pseudo-word as if silence followed it;
`_fsg_decode`): on the held-out set recall went from 74.5% to 85.5% at about the same
false flags (family README). The rival path is still chosen under the FSG's context, so
rescored it may explain a correctly read phone worse than the forced path: GOP is capped
at 0. Scores are pocketsphinx acoustic scores (log base 1.0001, relative to the best
senone of each frame). Every search scores all senones in every frame
(`compallsen`), so that "the best senone of the frame" is the same for all of them: by
default pocketsphinx computes only the senones of active states, the forced search has
far fewer than the rival one, so its phones were measured against a lower best and
looked better than the same sound on the rival path, and GOP leaned to 0 (figures and
cost in the family's README). When the rival pass does not reach the end, the free loop
is the denominator. Every pass runs under the frequency warp (VTLN) that fits the
recording best (`WARPS`).
"""

from __future__ import annotations

import math
import re
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from deployments.common.errors import InputError
from deployments.pronunciation.types import (
    AlignedPhone,
    AlignedWord,
    CanonicalWord,
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
#: logistic squashing of `gop` (the forced phone against the best senone of each frame,
#: nats/frame) to a 0..1 confidence: -11 maps to 0.5. On the evaluation set's calibration
#: split correctly read phones sit at -7.6..-2.5 (10th to 90th percentile; 5th: -8.7),
#: the worst phone of a substituted word at a median of -15.0.
GOP_MIDPOINT = -11.0
GOP_SCALE = 1.5
_WORD_RE = re.compile(r"[a-z][a-z']*")
#: pseudo-words (silence) that open and close the forced alignment
_OPEN, _CLOSE = "sil_open", "sil_close"
#: forced-alignment settings, tried in turn until one reaches the end of the text: the
#: defaults, then wide beams with dither (pocketsphinx's fixed seed), which aligned every
#: recording of the evaluation set the defaults could not (6% of them)
_ALIGN_CONFIGS: tuple[dict[str, object], ...] = (
    {}, {"beam": 1e-100, "wbeam": 1e-80, "pbeam": 1e-100, "dither": True})
#: the rival pass: narrow beams (the aligner's defaults take 10-40 s a sentence with ~20
#: alternatives per phone); where they do not reach the end the free loop stands in
#: rather than a slow retry with the defaults (README)
_RIVAL_CONFIG: dict[str, object] = {"beam": 1e-20, "pbeam": 1e-20, "wbeam": 1e-15}
#: frequency warps (pocketsphinx's inverse_linear VTLN: frequencies divided by the factor)
#: tried per recording, the best fit of the text kept: a voice far from the acoustic
#: model's average speaker is scaled towards it (on the evaluation set male voices took
#: 0.8-0.9, the female ones 1.1-1.2; the family's README has what it bought and cost)
WARPS = (0.8, 0.9, 1.0, 1.1, 1.2)
_VOWELS = frozenset("AA AE AH AO AW AY EH ER EY IH IY OW OY UH UW".split())
#: pseudo-word prefix of a rival phone
_RIVAL = "rival_"
#: a forced alignment's segment: pseudo-word, first frame, last frame, acoustic score
Segment = tuple[str, int, int, float]
#: pocketsphinx keeps the inverse-linear warp's factor in process-wide statics
#: (fe_warp_inverse_linear.c) that a decoder reads while it builds its filterbank; a
#: decoder made without a factor marks them neutral but keeps the last factor, and the next
#: decoder asking for that same factor was then built unwarped. Every decoder is made
#: under this lock (replicas recognize in several threads) and names its factor.
_DECODER_LOCK = threading.Lock()


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


def _new_decoder(warp: float, **config: object) -> object:
    """A pocketsphinx decoder under frequency warp `warp` (1.0: none), made under
    `_DECODER_LOCK`."""
    from pocketsphinx import Decoder

    with _DECODER_LOCK:
        return Decoder(warp_type="inverse_linear", warp_params=str(float(warp)),
                       loglevel="FATAL", **config)


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
        warps: Sequence[float] = WARPS,
    ) -> None:
        """`acoustic_model`, `dictionary`, `phone_lm`: paths replacing the en-us model in
        the pocketsphinx wheel. `language_weight`: weight of the phone bigram LM (2 gave
        the lowest PER on the fixtures; 1 and 4 were slightly worse). `align`: force-align
        the text, when one is given, for times and GOP. `hypothesis`: "words", "phones"
        (the phone loop's own phones), "aligned" (the rival path's phones; needs the text
        and `align`) or "auto" (default): aligned when a text is given (calibrated GOP then
        judges the words and gives PER; the hypothesis stands in without a calibration),
        phones without one (target IPA only), where the hypothesis alone judges the words
        and a word decode would turn "box" said for "fox" into whichever word fits.
        `word_lm`: the language model of the word decode (default: the wheel's
        en-us.lm.bin). `warps`: frequency warps (VTLN factors) tried per recording; the
        one under which the text's forced alignment fits best serves every pass ((1.0,):
        none)."""
        if hypothesis not in ("auto", "phones", "words", "aligned"):
            raise ValueError("hypothesis must be 'auto', 'phones', 'words' or 'aligned', "
                             f"not {hypothesis!r}")
        if not warps or not all(0.5 <= w <= 1.5 for w in warps):
            raise ValueError(f"warps must be factors between 0.5 and 1.5, not {warps!r}")
        self._warps = tuple(warps)
        if hypothesis == "auto":
            hypothesis = "aligned" if align else "phones"
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

    def recognize(self, audio: np.ndarray, language: str, text: str | None = None,
                  words: list[CanonicalWord] | None = None) -> Recognition:
        """`words` is not used: the text is aligned through pocketsphinx's own dictionary,
        whose phones its acoustic model knows."""
        if not self.supports(language):
            raise InputError(f"the pocketsphinx recognizer only knows English; got language "
                             f"{language!r} (configure the POWSM backend for other languages)")
        started = time.perf_counter()
        pcm = (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2").tobytes()
        loop = _Loop(lambda warp: self._free_loop(pcm, warp))
        warnings: list[str] = []
        alignment = rival_phones = warp = None
        if text and self._align_enabled:
            alignment, rival_phones, warp = self._align(pcm, text, warnings, loop)
        if self._hypothesis == "words":
            phones = self._word_phones(pcm)
        elif self._hypothesis == "aligned" and rival_phones is not None:
            phones = rival_phones
        else:
            phones = loop.phones()
        return Recognition(backend=self.name, phones=phones, alignment=alignment,
                           warnings=warnings, decode_s=time.perf_counter() - started,
                           narrowband=is_narrowband(audio), warp=warp)

    def _word_phones(self, pcm: bytes) -> list[RecognizedPhone]:
        """Phones of the words a large-vocabulary decode hears, timed by word (each word's
        span shared evenly by its phones). One decoder, loaded once (about a second),
        used under a lock."""
        with self._word_lock:
            if self._word_decoder is None:
                self._word_decoder = _new_decoder(1.0, hmm=self._hmm, lm=self._word_lm,
                                                  dict=self._dictionary_path, cmn="batch")
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

    def _decoder(self, dictionary: Path, warp: float, **config: object) -> object:
        """A fresh decoder per utterance and search: a reused one carries state between
        utterances (the same audio decoded differently the second time) and pocketsphinx
        5.1 fails a second alignment on it. Batch CMN: normalise on this utterance alone.
        All senones scored: one scale for the scores of every search (module docstring)."""
        return _new_decoder(warp, hmm=self._hmm, dict=str(dictionary), lm=None, cmn="batch",
                            compallsen=True, **config)

    def _free_loop(self, pcm: bytes, warp: float) -> object:
        decoder = self._decoder(self._phone_loop_dict, warp, **self._allphone_config)
        _decode(decoder, pcm)
        return decoder

    def _rival(self, pcm: bytes, dict_lines: list[str], tokens: list[str], tmp: Path,
               warp: float) -> object | None:
        """The rival path's decoder (see the module's docstring), None when it does not
        reach the end of the text."""
        phone_of = dict(line.split(" ", 1) for line in dict_lines)
        transitions: list[tuple[int, int, float, str]] = []
        for state, token in enumerate(tokens):
            transitions.append((state, state + 1, 1.0, token))
            if token not in (_OPEN, _CLOSE):
                vowel = phone_of[token] in _VOWELS
                transitions += [(state, state + 1, 1.0, _RIVAL + other)
                                for other in ARPABET_TO_IPA
                                if other != phone_of[token] and (other in _VOWELS) == vowel]
        dict_path = tmp / "rival.dict"
        dict_path.write_text("\n".join(dict_lines + [f"{_RIVAL}{p} {p}" for p in ARPABET_TO_IPA])
                             + "\n", encoding="utf-8")
        return _fsg_decode(self._decoder(dict_path, warp, **_RIVAL_CONFIG), "rival",
                           len(tokens), transitions, pcm)

    def _forced(self, pcm: bytes, dict_path: Path, network: _Network, warp: float
                ) -> list[Segment] | None:
        """The forced alignment's segments, None when no setting reaches the end of the
        text."""
        for config in _ALIGN_CONFIGS:
            decoder = _fsg_decode(self._decoder(dict_path, warp, **config), "forced",
                                  network.final, network.transitions, pcm)
            if decoder is not None:
                return _segments(decoder)
        return None

    def _align(self, pcm: bytes, text: str, warnings: list[str], loop: _Loop
               ) -> tuple[list[AlignedWord] | None, list[RecognizedPhone] | None, float | None]:
        """Forced alignment, one pass at phone level: every phone of the text becomes a
        one-phone pseudo-word, so the FSG aligner's segments are the phones, with their
        frames and acoustic scores; each word may take any of its dictionary
        pronunciations (`_Network`). (pocketsphinx 5.1's two-pass word-then-state
        alignment failed on about a quarter of the evaluation recordings: the word pass
        drops the last word now and then, and the state pass then fails, "Alignment failed
        in frame N"; the one-pass form is also cheaper.) Pseudo-words for silence open
        and close the sequence: the aligner otherwise stretches the first phone over the
        leading silence and may drop the last one. Every warp of `warps` is tried; the one
        under which the text fits best (`_best_fit`) serves the rival pass too. Returns
        the aligned words, the rival path's phones and the warp."""
        words = _WORD_RE.findall(text.lower())
        unknown = sorted({w for w in words if w not in self._dictionary})
        if unknown:
            warnings.append("alignment: not in the aligner's dictionary, so without times: "
                            + ", ".join(unknown))
        known = [w for w in words if w in self._dictionary]
        if not known:
            return None, None, None
        network = _Network(known, self._dictionary)
        with tempfile.TemporaryDirectory() as tmp:
            dict_path = Path(tmp) / "phones.dict"
            dict_path.write_text("\n".join(network.lines) + "\n", encoding="utf-8")
            fits = [(self._forced(pcm, dict_path, network, warp), warp) for warp in self._warps]
            fits = [(segments, warp) for segments, warp in fits if segments is not None]
            if not fits:
                warnings.append("alignment: the audio could not be aligned to the text, so "
                                "words have no times or confidences")
                return None, None, None
            segments, warp = _best_fit(fits, network.owner)
            tokens = network.chosen([token for token, *_ in segments])
            owner = network.owner
            rival = self._rival(pcm, network.lines, tokens, Path(tmp), warp)
        n_frames = len(pcm) // 2 // FRAME_SAMPLES + 1
        if rival is not None:
            denominator = _frame_scores(rival, n_frames)
            path = _path(rival, owner)
        else:
            denominator, path = loop.frame_scores(n_frames, warp), []
        phones_by_word: dict[int, list[AlignedPhone]] = {}
        for token, first, last, ascore in segments:
            if token not in owner:
                continue  # silences, fillers, <s>, </s>
            index, arpabet = owner[token]
            phones_by_word.setdefault(index, []).append(
                _aligned_phone(arpabet, first, last - first + 1, ascore,
                               denominator, path))
        missing = [w for i, w in enumerate(known) if i not in phones_by_word]
        if missing:
            warnings.append("alignment: the aligner ran out of audio before: "
                            + ", ".join(missing))
        aligned = [AlignedWord(word=known[i], start=phones[0].start, end=phones[-1].end,
                               phones=phones)
                   for i, phones in sorted(phones_by_word.items())]
        rival_phones = [
            RecognizedPhone(phone=ARPABET_TO_IPA[phone], start=round(first * FRAME_S, 3),
                            end=round((last + 1) * FRAME_S, 3))
            for phone, first, last, _ in path]
        return aligned, (rival_phones if rival is not None else None), warp


class _Network:
    """The text as a network of one-phone pseudo-words for the forced alignment: between
    two silences, each word by any of its dictionary pronunciations (the aligner picks the
    one the audio fits: "the" as DH AH or DH IY, "wind" as W IH N D or W AY N D)."""

    def __init__(self, words: list[str], dictionary: dict[str, list[str]]) -> None:
        self.lines = [f"{_OPEN} SIL", f"{_CLOSE} SIL"]
        #: pseudo-word -> (word index, ARPAbet phone)
        self.owner: dict[str, tuple[int, str]] = {}
        self._variants: list[list[list[str]]] = []  # word -> pronunciation -> tokens
        self.transitions: list[tuple[int, int, float, str]] = [(0, 1, 1.0, _OPEN)]
        states = 2
        word_start = 1
        for index, word in enumerate(words):
            word_end, states = states, states + 1
            variants = []
            for v, entry in enumerate(dictionary[word]):
                tokens = [f"w{index}v{v}p{k}" for k in range(len(entry.split()) - 1)]
                for token, phone in zip(tokens, entry.split()[1:], strict=True):
                    self.lines.append(f"{token} {phone}")
                    self.owner[token] = (index, phone)
                path = [word_start, *range(states, states + len(tokens) - 1), word_end]
                states += len(tokens) - 1
                self.transitions += [(a, b, 1.0, t)
                                     for a, b, t in zip(path[:-1], path[1:], tokens, strict=True)]
                variants.append(tokens)
            self._variants.append(variants)
            word_start = word_end
        self.final = states
        self.transitions.append((word_start, self.final, 1.0, _CLOSE))

    def chosen(self, aligned: list[str]) -> list[str]:
        """The path's pseudo-words with every word by the pronunciation the aligner chose
        (the first where it did not reach the word), between the silences."""
        picked: dict[int, int] = {}
        for token in aligned:
            if token in self.owner:
                picked[self.owner[token][0]] = int(token.split("v", 1)[1].split("p", 1)[0])
        return [_OPEN, *(token for index, variants in enumerate(self._variants)
                         for token in variants[picked.get(index, 0)]), _CLOSE]


def _best_fit(fits: list[tuple[list[Segment], float]], owner: dict[str, tuple[int, str]]
              ) -> tuple[list[Segment], float]:
    """The forced alignment (and its warp) under which the text fits the audio best: the
    one that reached the most words, then the highest acoustic score (a path that stops
    early has fewer frames to lose score on)."""
    def key(fit: tuple[list[Segment], float]) -> tuple[int, float]:
        reached = {owner[token][0] for token, *_ in fit[0] if token in owner}
        return len(reached), sum(score for *_, score in fit[0])

    return max(fits, key=key)


def _segments(decoder: object) -> list[Segment]:
    """The decoder's path as segments, with acoustic scores in log base 1.0001."""
    logmath = decoder.get_logmath()
    return [(seg.word, seg.start_frame, seg.end_frame,
             logmath.log(seg.ascore) if seg.ascore > 0 else -(2**20))
            for seg in decoder.seg()]


def _fsg_decode(decoder: object, name: str, final: int,
                transitions: list[tuple[int, int, float, str]], pcm: bytes) -> object | None:
    """Decode `pcm` with the network from state 0 to `final`, then rescore the path found
    in context (`_rescore`); None when no path reaches the end or the rescoring fails.
    The decoder's segment scores are then in the phone loop's units."""
    if not _fsg_search(decoder, name, final, transitions, pcm):
        return None
    return decoder if _rescore(decoder, pcm) else None


def _fsg_search(decoder: object, name: str, final: int,
                transitions: list[tuple[int, int, float, str]], pcm: bytes) -> bool:
    """The FSG search alone: whether a path from state 0 to `final` explains `pcm`."""
    decoder.add_fsg(name, decoder.create_fsg(name, 0, final, transitions))
    decoder.activate_search(name)
    _decode(decoder, pcm)
    return decoder.hyp() is not None


def _rescore(decoder: object, pcm: bytes) -> bool:
    """Rescore the path the FSG search found with every phone in its full triphone
    context; False when the state aligner fails. The FSG search models a one-phone word as
    if silence followed it (pocketsphinx's fsg_lextree gives single-phone words a right
    context of SIL), so on a network of one-phone pseudo-words every phone is scored
    against the wrong right neighbour; the state aligner's second pass keeps the path's
    segmentation and scores each phone as the triphone between its actual neighbours."""
    try:
        decoder.set_alignment()
        _decode(decoder, pcm)
    except RuntimeError:  # "Alignment failed in frame N"
        return False
    return True


class _Loop:
    """The free phone loop over one utterance, decoded only when asked for and at most
    once per frequency warp: its phones (the "phones" hypothesis, unwarped, so that it
    never depends on the text) or its scores (GOP without a rival path, under the warp of
    the alignment they are compared with)."""

    def __init__(self, decode: Callable[[float], object]) -> None:
        self._decode = decode
        self._decoded: dict[float, object] = {}

    def _decoder(self, warp: float) -> object:
        if warp not in self._decoded:
            self._decoded[warp] = self._decode(warp)
        return self._decoded[warp]

    def phones(self) -> list[RecognizedPhone]:
        return [RecognizedPhone(phone=ARPABET_TO_IPA[seg.word],
                                start=round(seg.start_frame * FRAME_S, 3),
                                end=round((seg.end_frame + 1) * FRAME_S, 3))
                for seg in self._decoder(1.0).seg()
                if seg.word in ARPABET_TO_IPA]  # drops SIL and the +NSN+/+SPN+ noise models

    def frame_scores(self, n_frames: int, warp: float) -> np.ndarray:
        return _frame_scores(self._decoder(warp), n_frames)


def _path(decoder: object, owner: dict[str, tuple[int, str]]
          ) -> list[tuple[str, int, int, bool]]:
    """(ARPAbet phone, first frame, last frame, a rival's?) of each phone on the rival
    path: the text's own phone or the one that replaced it."""
    out = []
    for seg in decoder.seg():
        if seg.word.startswith(_RIVAL):
            out.append((seg.word[len(_RIVAL):], seg.start_frame, seg.end_frame, True))
        elif seg.word in owner:
            out.append((owner[seg.word][1], seg.start_frame, seg.end_frame, False))
    return out


def _frame_scores(decoder: object, n_frames: int) -> np.ndarray:
    """A decoded path's acoustic score per frame (pocketsphinx's scaled units, relative
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
                   denominator: np.ndarray, path: list[tuple[str, int, int, bool]]
                   ) -> AlignedPhone:
    """`score`: the forced phone's acoustic score in the loop's units; `denominator`: the
    rival path's (or the loop's) per frame; `path`: the rival path's phones."""
    frames = max(frames, 1)
    # GOP (Witt & Young): log-likelihood ratio of the forced phone against the rival path
    # over the same frames, per frame. The rival path may place its edges elsewhere, so a
    # forced phone can score better over these frames: capped at 0.
    rival = float(denominator[start:start + frames].sum())
    lpr = min((score - rival) * SCORE_TO_NATS / frames, 0.0)
    # the rival path's phone over most of these frames, where it replaced the text's
    overlap, heard = 0, None
    for phone, first, last, replaced in path:
        shared = min(last, start + frames - 1) - max(first, start) + 1
        if shared > overlap:
            overlap, heard = shared, (ARPABET_TO_IPA[phone] if replaced else None)
    # the older confidence: the forced phone's score relative to the best senone per frame
    gop = score * SCORE_TO_NATS / frames
    return AlignedPhone(
        phone=ARPABET_TO_IPA.get(arpabet, arpabet), start=round(start * FRAME_S, 3),
        end=round((start + frames) * FRAME_S, 3), gop=round(gop, 3),
        confidence=round(gop_confidence(gop), 4), lpr=round(lpr, 3), frames=frames,
        rival=heard)
