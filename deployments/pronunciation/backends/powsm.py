"""POWSM (and POWSM-CTC) phone recognition through ESPnet.

Loads the released files (ESPnet's config.yaml, the model .pth, the BPE model) from a
local directory or an s3:// prefix, and decodes with task `<pr>`, the request's
language symbol and no previous text (`<na>`). POWSM writes each phone between
slashes after a `<notimestamps>` marker: "<eng><pr><notimestamps>/p//h//o/".

ESPnet is an optional extra (`pip install .[powsm]`, see the README for a recipe that
keeps torch as it is); it is imported only when this backend is built.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import re
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import Any

import numpy as np

from deployments.common.errors import InputError
from deployments.common.fetch import resolve_weights_dir
from deployments.pronunciation.scoring import parse_slashed
from deployments.pronunciation.types import Recognition, RecognizedPhone

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
        self._window = int(conf.get("fs", 16_000) * conf.get("speech_length", 20))

    def language_symbol(self, language: str) -> str | None:
        code = language.strip().lower().replace("_", "-")
        for candidate in (code.strip("<>"), LANGUAGE_SYMBOLS.get(code),
                          LANGUAGE_SYMBOLS.get(code.split("-")[0])):
            if candidate and f"<{candidate}>" in self._symbols:
                return f"<{candidate}>"
        return None

    def supports(self, language: str) -> bool:
        return self.language_symbol(language) is not None

    def recognize(self, audio: np.ndarray, language: str, text: str | None = None) -> Recognition:
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
        return Recognition(backend=self.name, phones=phones,
                           decode_s=time.perf_counter() - started)


def parse_powsm_output(text: str) -> list[str]:
    """"<eng><pr><notimestamps>/p//h//o/" -> ["p", "h", "o"]."""
    text = text.split("<notimestamps>")[-1]
    return parse_slashed(_SPECIAL.sub("", text))
