"""POWSM (and POWSM-CTC) phone recognition through ESPnet.

Loads the released files (ESPnet's config.yaml, the model .pth, the BPE model) from a
local directory or an s3:// prefix, and decodes with task `<pr>`, the request's
language symbol and no previous text (`<na>`). POWSM writes each phone between
slashes after a `<notimestamps>` marker: "<eng><pr><notimestamps>/p//h//o/".

Given the reference's canonical phones (`words`), the model's CTC head (POWSM-CTC's
output, or the attention model's auxiliary CTC) scores them: the encoder output of the
decode is kept, its CTC log-posteriors force-align the phones for times, and each phone's
GOP is a log-likelihood ratio against its likeliest rivals (ctc_gop.py). The committed
calibration is pocketsphinx's, so these GOPs feed word scores through the phones'
confidences until a POWSM calibration is made (evalset/calibrate.py) with real weights.

ESPnet is an optional extra (`pip install .[powsm]`, see the README for a recipe that
keeps torch as it is); it is imported only when this backend is built.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import math
import re
import sys
import tempfile
import threading
import time
import types
from pathlib import Path
from typing import Any

import numpy as np

from deployments.common.errors import InputError
from deployments.common.fetch import resolve_weights_dir
from deployments.pronunciation.ctc_gop import phone_gops
from deployments.pronunciation.scoring import normalize_phone, parse_slashed, word_key
from deployments.pronunciation.types import (
    AlignedPhone,
    AlignedWord,
    CanonicalWord,
    Recognition,
    RecognizedPhone,
)

#: request language (BCP-47, lower case) -> POWSM's ISO 639-3 symbol. A request may
#: also name the symbol itself ("<eng>") or its code ("eng").
LANGUAGE_SYMBOLS = {
    "en": "eng", "de": "deu", "fr": "fra", "es": "spa", "it": "ita", "pt": "por", "nl": "nld",
    "ru": "rus", "pl": "pol", "cs": "ces", "sv": "swe", "da": "dan", "nb": "nob", "no": "nor",
    "fi": "fin", "el": "ell", "tr": "tur", "ar": "ara", "he": "heb", "hi": "hin", "bn": "ben",
    "ur": "urd", "fa": "fas", "zh": "cmn", "cmn": "cmn", "yue": "yue", "ja": "jpn", "ko": "kor",
    "vi": "vie", "th": "tha", "id": "ind", "ms": "msa", "sw": "swa", "uk": "ukr", "hu": "hun",
    "ro": "ron", "ca": "cat",
}
_SPECIAL = re.compile(r"<[^>]*>")
_PATH_SUFFIXES = (".model", ".npz", ".pth", ".txt", ".yaml", ".json")


#: modules espnet2 imports at load time for features POWSM never uses; where they are
#: not installed an inert placeholder stands in. g2p_en (phoneme tokenizers) downloads
#: NLTK data when imported; hydra (only the S4 decoder's config helpers) pins
#: antlr4-python3-runtime 4.9, which breaks packages that need 4.13 (moto's server).
_UNUSED_IMPORTS = ("g2p_en", "hydra")


def prepare_espnet_import() -> None:
    """Call before importing espnet2 (see `_UNUSED_IMPORTS`)."""
    for name in _UNUSED_IMPORTS:
        if name not in sys.modules and importlib.util.find_spec(name) is None:
            placeholder = types.ModuleType(name)
            placeholder.__spec__ = importlib.machinery.ModuleSpec(name, None)
            sys.modules[name] = placeholder


def _import_espnet_inference(ctc: bool) -> type:
    prepare_espnet_import()
    try:
        if ctc:
            from espnet2.bin.s2t_inference_ctc import Speech2TextGreedySearch

            return Speech2TextGreedySearch
        from espnet2.bin.s2t_inference import Speech2Text

        return Speech2Text
    except ImportError as exc:
        raise RuntimeError(
            "the POWSM backends need ESPnet: install the `powsm` extra (see the README)"
        ) from exc


def _one(directory: Path, explicit: str | None, pattern: str, what: str) -> Path:
    if explicit:
        path = Path(explicit) if Path(explicit).is_absolute() else directory / explicit
        if not path.exists():
            raise FileNotFoundError(f"no {what} at {path}")
        return path
    found = sorted(directory.rglob(pattern))
    if len(found) != 1:
        raise FileNotFoundError(
            f"expected one {what} ({pattern}) under {directory}, found {len(found)}: "
            f"{[str(p.relative_to(directory)) for p in found][:5]}; name it in the settings")
    return found[0]


def _absolute_paths(value: Any, directory: Path) -> Any:
    """Released configs name their files relative to the recipe directory
    (bpemodel, normalize_conf.stats_file): point those into `directory`."""
    if isinstance(value, dict):
        return {k: _absolute_paths(v, directory) for k, v in value.items()}
    if isinstance(value, list):
        return [_absolute_paths(v, directory) for v in value]
    if (isinstance(value, str) and value.endswith(_PATH_SUFFIXES)
            and not Path(value).is_absolute() and (directory / value).exists()):
        return str(directory / value)
    return value


class PowsmBackend:
    def __init__(
        self,
        model_uri: str,
        ctc: bool = False,
        device: str = "cpu",
        config: str | None = None,
        model: str | None = None,
        bpemodel: str | None = None,
        decode_options: dict[str, Any] | None = None,
    ) -> None:
        """`config`, `model`, `bpemodel`: paths inside the model directory when it holds
        more than one candidate. `decode_options`: extra Speech2Text arguments
        (beam_size, ctc_weight, maxlenratio, ...)."""
        import yaml

        self.name = "powsm_ctc" if ctc else "powsm"
        self._ctc = ctc
        directory = resolve_weights_dir(model_uri)
        config_path = _one(directory, config, "config.yaml", "ESPnet config")
        model_path = _one(directory, model, "*.pth", "model file")
        bpe_path = _one(directory, bpemodel, "*.model", "BPE model")
        raw = yaml.safe_load(config_path.read_text(encoding="utf-8"))
        resolved = _absolute_paths(raw, directory)
        resolved["bpemodel"] = str(bpe_path)
        self._workdir = tempfile.TemporaryDirectory(prefix="powsm-")
        resolved_config = Path(self._workdir.name) / "config.yaml"
        resolved_config.write_text(yaml.safe_dump(resolved, allow_unicode=True),
                                   encoding="utf-8")
        inference = _import_espnet_inference(ctc)
        options = {"beam_size": 5, "ctc_weight": 0.0} if not ctc else {}
        options.update(decode_options or {})
        self._model = inference(
            s2t_train_config=str(resolved_config), s2t_model_file=str(model_path),
            bpemodel=str(bpe_path), device=device, task_sym="<pr>", **options)
        self._symbols = set(self._model.converter.token_list)
        conf = resolved.get("preprocessor_conf") or {}
        # The model was trained on fixed windows; the CTC decoder does not pad by itself.
        self._fs = int(conf.get("fs", 16_000))
        self._window = int(self._fs * conf.get("speech_length", 20))
        s2t = self._model.s2t_model
        self._ctc_head = getattr(s2t, "ctc", None)
        self._blank = int(getattr(s2t, "blank_id", 0))
        tokens = self._model.converter.token_list
        self._phone_tokens = {t[1:-1]: i for i, t in enumerate(tokens)
                              if len(t) > 2 and t[0] == t[-1] == "/"}
        self._phone_names = {i: phone for phone, i in self._phone_tokens.items()}
        self._encoded = threading.local()
        if self._ctc_head is not None:
            self._keep_encoder_output(s2t)

    def _keep_encoder_output(self, s2t: Any) -> None:
        """Keep each decode's encoder output (per thread) for the CTC GOP, so scoring the
        phones costs no second encoder pass."""
        encode = s2t.encode
        kept = self._encoded

        def encode_and_keep(*args: Any, **kwargs: Any) -> Any:
            kept.value = encode(*args, **kwargs)
            return kept.value

        s2t.encode = encode_and_keep

    def language_symbol(self, language: str) -> str | None:
        code = language.strip().lower().replace("_", "-")
        for candidate in (code.strip("<>"), LANGUAGE_SYMBOLS.get(code),
                          LANGUAGE_SYMBOLS.get(code.split("-")[0])):
            if candidate and f"<{candidate}>" in self._symbols:
                return f"<{candidate}>"
        return None

    def supports(self, language: str) -> bool:
        return self.language_symbol(language) is not None

    def recognize(self, audio: np.ndarray, language: str, text: str | None = None,
                  words: list[CanonicalWord] | None = None) -> Recognition:
        """`text` is not used (POWSM's `<pr>` task takes no prompt); `words`, when given,
        are aligned and scored by GOP through the CTC head."""
        symbol = self.language_symbol(language)
        if symbol is None:
            raise InputError(f"language {language!r} has no symbol in this POWSM model")
        started = time.perf_counter()
        speech = audio[: self._window]
        if self._ctc and len(speech) < self._window:
            speech = np.pad(speech, (0, self._window - len(speech)))
        results = self._model(speech, text_prev="<na>", lang_sym=symbol, task_sym="<pr>")
        if isinstance(results, tuple):  # (n-best, intermediate CTC outputs)
            results = results[0]
        hypothesis = results[0][0] or ""
        phones = [RecognizedPhone(phone=p) for p in parse_powsm_output(hypothesis)]
        warnings: list[str] = []
        alignment = None
        if words and self._ctc_head is not None:
            alignment = self._align(words, min(len(audio), self._window), warnings)
        return Recognition(backend=self.name, phones=phones, alignment=alignment,
                           warnings=warnings, decode_s=time.perf_counter() - started)

    def _log_posteriors(self, n_samples: int) -> tuple[np.ndarray, float]:
        """The last decode's CTC log-posteriors over the audio's frames, and a frame's
        seconds (POWSM-CTC decodes a padded window; its padding frames are dropped)."""
        import torch

        encoded, lengths = self._encoded.value
        if isinstance(encoded, tuple):  # (final, intermediate CTC outputs)
            encoded = encoded[0]
        with torch.no_grad():
            log_probs = self._ctc_head.log_softmax(encoded)[0, : int(lengths[0])]
        log_probs = log_probs.float().cpu().numpy().astype(np.float64)
        decoded = self._window if self._ctc else n_samples
        frame_s = decoded / self._fs / len(log_probs)
        return log_probs[: math.ceil(n_samples / self._fs / frame_s)], frame_s

    def _phone_token(self, phone: str) -> int | None:
        return self._phone_tokens.get(phone, self._phone_tokens.get(normalize_phone(phone)))

    def _align(self, words: list[CanonicalWord], n_samples: int,
               warnings: list[str]) -> list[AlignedWord] | None:
        placed = [(index, phone, token) for index, word in enumerate(words)
                  for phone in word.phones if (token := self._phone_token(phone)) is not None]
        missing = sum(len(w.phones) for w in words) - len(placed)
        if missing:
            warnings.append(f"{missing} reference phone(s) are not in this POWSM model's "
                            "phone set and have no GOP")
        if not placed:
            return None
        log_probs, frame_s = self._log_posteriors(n_samples)
        gops = phone_gops(log_probs, [token for *_, token in placed], self._blank,
                          list(self._phone_names))
        if gops is None:
            warnings.append("the audio is too short for the reference's phones: no GOP")
            return None
        by_word: dict[int, list[AlignedPhone]] = {}
        for (index, phone, _), gop in zip(placed, gops, strict=True):
            by_word.setdefault(index, []).append(AlignedPhone(
                phone=phone, start=round(gop.start * frame_s, 3),
                end=round(gop.end * frame_s, 3), gop=round(gop.gop, 4),
                confidence=math.exp(gop.gop), lpr=round(gop.lpr, 4),
                frames=gop.end - gop.start,
                rival=self._phone_names.get(gop.rival)))
        return [AlignedWord(word=word_key(words[index].word), start=phones[0].start,
                            end=phones[-1].end, phones=phones)
                for index, phones in by_word.items()]


def parse_powsm_output(text: str) -> list[str]:
    """"<eng><pr><notimestamps>/p//h//o/" -> ["p", "h", "o"]."""
    text = text.split("<notimestamps>")[-1]
    return parse_slashed(_SPECIAL.sub("", text))
