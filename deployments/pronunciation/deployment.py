"""Serve deployments: the phone recognizer and the assessment pipeline.

`AssessmentPipeline` wraps `Assessor` (pipeline.py: G2P and fetch/decode/recognize
concurrently, then scoring), handing it the G2P and `PhoneRecognizer` handles as its
model calls.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import numpy as np
from ray import serve
from ray.serve import Application
from ray.serve.handle import DeploymentHandle

from deployments.common.device import select_device
from deployments.pronunciation.backends import build_backend
from deployments.pronunciation.config import AssessmentArgs, RecognizerArgs
from deployments.pronunciation.pipeline import Assessor
from deployments.pronunciation.scoring import substitution_cost
from deployments.pronunciation.types import CanonicalWord, Recognition

if TYPE_CHECKING:
    import torch

#: the health probe's audio: 0.1 s of silence at 16 kHz (pocketsphinx decodes it in ~10 ms)
PROBE_AUDIO = np.zeros(1600, dtype=np.float32)


@serve.deployment(ray_actor_options={"num_cpus": 0.25}, max_ongoing_requests=16)
class PhoneRecognizer:
    """16 kHz mono audio in, a `Recognition` (phones heard, optional alignment) out."""

    def __init__(self, args: RecognizerArgs) -> None:
        self._device = select_device(args.device, args.gpu_memory_fraction)
        self._backend = build_backend(args.backend, args.settings, str(self._device))

    async def recognize(self, audio: np.ndarray, language: str = "en-us",
                        text: str | None = None,
                        words: list[CanonicalWord] | None = None) -> Recognition:
        # Decoding is blocking C/torch work: keep it off the replica's event loop.
        return await asyncio.to_thread(self._backend.recognize, audio, language, text, words)

    async def check_health(self) -> None:
        await asyncio.to_thread(probe_recognizer, self._backend, self._device)


def probe_recognizer(backend: Any, device: torch.device) -> None:
    """Raise RuntimeError unless `backend` is usable, cheaply (Serve asks every 10 s): the
    backend's own `check_health` where it has one; else pocketsphinx decodes 0.1 s of
    silence (~10 ms), and other backends' device answers a tiny tensor operation (a POWSM
    decode costs a whole 20 s window on CTC)."""
    import torch

    if callable(own := getattr(backend, "check_health", None)):
        own()
        return
    try:
        if backend.name == "pocketsphinx":
            recognition = backend.recognize(PROBE_AUDIO, "en-us", None)
            if not isinstance(recognition, Recognition):
                raise TypeError(f"a {type(recognition).__name__}, not a Recognition")
        elif int(torch.ones(8, device=device).sum().item()) != 8:
            raise ArithmeticError(f"8 ones summed on {device} to something else")
    except Exception as exc:
        raise RuntimeError(f"the {backend.name} recognizer failed its probe: {exc!r}") from exc


# Orchestration (its own work is audio decoding and scoring, in threads): a small CPU share,
# so configs/serve.yaml fits two cores.
@serve.deployment(ray_actor_options={"num_cpus": 0.05}, max_ongoing_requests=32)
class AssessmentPipeline:
    """The `pronunciation-assessment` endpoint: `run(job)` with a RunPod-shaped job (see
    `Assessor`)."""

    def __init__(self, g2p: DeploymentHandle, recognizer: DeploymentHandle,
                 args: AssessmentArgs) -> None:
        self._assessor = Assessor(g2p.phonemize.remote, recognizer.recognize.remote, args)
        substitution_cost("p", "b")  # loads panphon's feature table now, not on a request

    async def run(self, job: dict[str, Any]) -> dict[str, Any]:
        """A RunPod-shaped job in, `AssessmentResult` JSON out; InputError for bad input."""
        return await self._assessor.run(job)


def build_pronunciation_app(args: AssessmentArgs, g2p: Application) -> Application:
    """The pronunciation graph: the pipeline bound to the (shared) G2P application and its
    own recognizer. Replicas and GPU shares come from the config's `deployments:`."""
    return AssessmentPipeline.bind(g2p, PhoneRecognizer.bind(args.recognizer), args)
