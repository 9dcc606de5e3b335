"""Phone recognizer backends behind one interface.

A backend takes 16 kHz mono float32 audio and returns a `Recognition`: the phones it
hears (free recognition, or pocketsphinx's rival path through the reference's phones)
and, where it can, a forced alignment of the reference words for times and GOP:
pocketsphinx aligns the reference text through its own dictionary, the POWSM backends
align the canonical phones they are given (`words`) to their CTC posteriors.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from deployments.pronunciation.types import CanonicalWord, Recognition

BACKENDS = ("pocketsphinx", "powsm", "powsm_ctc")
#: backends whose alignment needs the canonical phones (`words`), not only the text
ALIGNS_GIVEN_PHONES = frozenset({"powsm", "powsm_ctc"})


class PhoneRecognizerBackend(Protocol):
    name: str

    def supports(self, language: str) -> bool:
        """Whether this backend can recognise speech in `language` (e.g. "en-us")."""
        ...

    def recognize(self, audio: np.ndarray, language: str, text: str | None = None,
                  words: list[CanonicalWord] | None = None) -> Recognition:
        """Phones heard in `audio`; `text` (the reference words) or, for the backends of
        ALIGNS_GIVEN_PHONES, `words` (their canonical phones), when given, is aligned for
        times and GOP."""
        ...


def build_backend(name: str, settings: dict[str, Any] | None = None,
                  device: str = "cpu") -> PhoneRecognizerBackend:
    """Instantiate a backend by name; heavy imports and weight loading happen here."""
    settings = dict(settings or {})
    if name == "pocketsphinx":
        from deployments.pronunciation.backends.sphinx import PocketsphinxBackend

        return PocketsphinxBackend(**settings)
    if name in ("powsm", "powsm_ctc"):
        from deployments.pronunciation.backends.powsm import PowsmBackend

        return PowsmBackend(ctc=name == "powsm_ctc", device=device, **settings)
    raise ValueError(f"unknown recognizer backend {name!r} (choose from {', '.join(BACKENDS)})")
