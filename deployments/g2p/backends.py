"""G2P backends behind one interface.

Each backend turns a batch of texts in one language into words with IPA phones.
Heavy imports happen in constructors, never at module import.
"""

from __future__ import annotations

import functools
import importlib.util
import re
import unicodedata
from typing import Any, Protocol

from deployments.common.errors import InputError
from deployments.g2p.types import WordPhones

WORD_RE = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")


class G2PBackend(Protocol):
    name: str

    def languages(self) -> set[str]:
        """Language codes this backend can handle as installed."""

    def phonemize(self, texts: list[str], language: str) -> list[list[WordPhones]]:
        """Words with phones for each text (same order)."""


def _check_language(backend: G2PBackend, language: str) -> None:
    if language not in backend.languages():
        known = ", ".join(sorted(backend.languages()))
        raise InputError(f"language {language!r} is not supported by the {backend.name} "
                         f"backend (supported: {known})")


@functools.cache
def _feature_table() -> Any:
    import panphon

    return panphon.FeatureTable()


def segment_ipa(ipa: str) -> list[str]:
    """Split an IPA string into phone segments (diacritics and ties kept with their base)."""
    segments = _feature_table().ipa_segs(unicodedata.normalize("NFD", ipa.replace(" ", "")))
    return [unicodedata.normalize("NFC", s) for s in segments]


class GruutBackend:
    """gruut with whichever `gruut-lang-*` packages are installed (English by default)."""

    name = "gruut"
    # gruut's own language codes -> the data package each one needs
    _DATA = {"ar": "ar", "ca-ce": "ca", "cs-cz": "cs", "de-de": "de", "en-us": "en", "en-gb": "en",
             "es-es": "es", "fa": "fa", "fr-fr": "fr", "it-it": "it", "lb": "lb", "nl": "nl",
             "pt": "pt", "ru-ru": "ru", "sv-se": "sv", "sw": "sw"}

    def __init__(self) -> None:
        from gruut import sentences

        self._sentences = sentences
        self._languages = {
            code for code, pkg in self._DATA.items()
            if importlib.util.find_spec(f"gruut_lang_{pkg}") is not None
        }
        # Short codes ("en", "de") name the first full code of that language.
        for code in sorted(self._languages):
            self._languages.add(code.split("-")[0])

    def languages(self) -> set[str]:
        return set(self._languages)

    def _gruut_code(self, language: str) -> str:
        if language in self._DATA:
            return language
        return next(c for c in sorted(self._DATA) if c.split("-")[0] == language)

    def phonemize(self, texts: list[str], language: str) -> list[list[WordPhones]]:
        _check_language(self, language)
        lang = self._gruut_code(language)
        results = []
        for text in texts:
            try:
                words = [
                    WordPhones(word=w.text, phones=list(w.phonemes))
                    for sentence in self._sentences(text, lang=lang)
                    for w in sentence
                    if w.is_spoken and w.phonemes
                ]
            except ArithmeticError as exc:
                # gruut spells numbers out with decimal arithmetic: one it cannot spell
                # ("1e309", 30 digits) is a problem of the text, not of the server.
                raise InputError("the text holds a number too large for the gruut backend to "
                                 "spell out: write it in words or use another backend") from exc
            results.append(words)
        return results


class EspeakBackend:
    """espeak-ng through phonemizer, using the library shipped by `espeakng-loader`."""

    name = "espeak"

    def __init__(self) -> None:
        import espeakng_loader
        from phonemizer.backend.espeak.wrapper import EspeakWrapper

        EspeakWrapper.set_library(espeakng_loader.get_library_path())
        EspeakWrapper.set_data_path(espeakng_loader.get_data_path())
        from phonemizer.backend import EspeakBackend as _Backend

        self._cls = _Backend
        self._languages = set(_Backend.supported_languages())
        self._backends: dict[str, object] = {}

    def languages(self) -> set[str]:
        return set(self._languages)

    def phonemize(self, texts: list[str], language: str) -> list[list[WordPhones]]:
        from phonemizer.separator import Separator

        _check_language(self, language)
        backend = self._backends.get(language)
        if backend is None:
            backend = self._cls(language, preserve_punctuation=False, with_stress=True,
                                language_switch="remove-flags")
            self._backends[language] = backend
        word_lists = [WORD_RE.findall(t) for t in texts]
        flat = [w for words in word_lists for w in words]
        # One call for the whole batch: espeak's per-call overhead dominates short texts.
        phonemized = backend.phonemize(flat, separator=Separator(phone=" ", word="|", syllable=""),
                                       strip=True, njobs=1) if flat else []
        out, i = [], 0
        for words in word_lists:
            out.append([WordPhones(word=w, phones=phonemized[i + k].replace("|", " ").split())
                        for k, w in enumerate(words)])
            i += len(words)
        return out


class TransformersBackend:
    """A CharsiuG2P-compatible ByT5/T5 checkpoint: one `<tag>: word` prompt per word."""

    name = "transformers"

    def __init__(self, model_dir: str, language_tags: dict[str, str], max_new_tokens: int,
                 device: object) -> None:
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

        self._tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self._model = AutoModelForSeq2SeqLM.from_pretrained(model_dir).to(device).eval()
        self._device = device
        self._tags = language_tags
        self._max_new_tokens = max_new_tokens

    def languages(self) -> set[str]:
        return set(self._tags)

    def phonemize(self, texts: list[str], language: str) -> list[list[WordPhones]]:
        import torch

        _check_language(self, language)
        word_lists = [WORD_RE.findall(t) for t in texts]
        flat = [w for words in word_lists for w in words]
        if not flat:
            return [[] for _ in texts]
        prompts = [f"<{self._tags[language]}>: {w.lower()}" for w in flat]
        batch = self._tokenizer(prompts, padding=True, return_tensors="pt").to(self._device)
        with torch.inference_mode():
            generated = self._model.generate(**batch, num_beams=1,
                                             max_new_tokens=self._max_new_tokens)
        decoded = self._tokenizer.batch_decode(generated, skip_special_tokens=True)
        out, i = [], 0
        for words in word_lists:
            out.append([WordPhones(word=w, phones=segment_ipa(decoded[i + k]))
                        for k, w in enumerate(words)])
            i += len(words)
        return out
