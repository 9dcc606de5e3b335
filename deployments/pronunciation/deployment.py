"""Serve deployments: the phone recognizer and the assessment pipeline.

    job ─► AssessmentPipeline ─┬─► G2P.phonemize(text)            (canonical phones)
                               └─► audio fetch/decode ─► PhoneRecognizer.recognize
                               ─► scoring.score ─► result

The two branches start before either is awaited, so the pipeline's latency is about
the slower branch, not the sum.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import Any, TypeVar

import numpy as np
from ray import serve
from ray.serve import Application
from ray.serve.handle import DeploymentHandle

from deployments.common.device import select_device, visible_gpus
from deployments.common.errors import InputError, parse_input
from deployments.common.fetch import S3Config, fetch_input
from deployments.pronunciation.audio import DecodedAudio, decode_audio
from deployments.pronunciation.backends import build_backend
from deployments.pronunciation.config import AssessmentArgs, AssessmentRequest
from deployments.pronunciation.scoring import parse_target_ipa, score, substitution_cost
from deployments.pronunciation.types import (
    AssessmentResult,
    AudioInfo,
    CanonicalWord,
    Recognition,
)

T = TypeVar("T")


@serve.deployment(ray_actor_options={"num_cpus": 0.25}, max_ongoing_requests=16)
class PhoneRecognizer:
    """16 kHz mono audio in, a `Recognition` (phones heard, optional alignment) out."""

    def __init__(self, backend: str = "pocketsphinx", settings: dict[str, Any] | None = None,
                 device: str = "auto", gpu_memory_fraction: float | None = None) -> None:
        self._device = select_device(device, gpu_memory_fraction)
        self._backend = build_backend(backend, settings, str(self._device))

    async def recognize(self, audio: np.ndarray, language: str = "en-us",
                        text: str | None = None) -> Recognition:
        # Decoding is blocking C/torch work: keep it off the replica's event loop.
        return await asyncio.to_thread(self._backend.recognize, audio, language, text)

    async def describe(self) -> dict:
        return {"backend": self._backend.name, "device": str(self._device),
                "cuda_visible_devices": visible_gpus()}


def _input_error(exc: BaseException) -> InputError | None:
    """The caller's error inside an exception from another replica (Ray wraps it)."""
    cause = getattr(exc, "cause", None) or exc
    if isinstance(cause, InputError):
        return InputError(str(cause.args[0]) if cause.args else str(cause),
                          getattr(cause, "status_code", 400))
    return None


# Orchestration (its own work is audio decoding and scoring, in threads): a small CPU share,
# so configs/serve.yaml fits two cores.
@serve.deployment(ray_actor_options={"num_cpus": 0.05}, max_ongoing_requests=32)
class AssessmentPipeline:
    """The `pronunciation-assessment` endpoint: G2P and recognition concurrently, then
    scoring."""

    def __init__(self, g2p: DeploymentHandle, recognizer: DeploymentHandle,
                 args: AssessmentArgs | dict | None = None) -> None:
        self._g2p = g2p
        self._recognizer = recognizer
        self._args = AssessmentArgs.model_validate(args or {})
        substitution_cost("p", "b")  # loads panphon's feature table now, not on a request

    async def run(self, job: dict) -> dict:
        """A RunPod-shaped job in, `AssessmentResult` JSON out; InputError for bad input."""
        request = parse_input(AssessmentRequest, job.get("input"))
        s3 = S3Config.from_request(job.get("s3Config"))
        result = await self.assess(request, s3)
        return result.model_dump()

    async def assess(self, request: AssessmentRequest,
                     s3: S3Config | None = None) -> AssessmentResult:
        args = self._args
        text = (request.text or "").strip() or None
        if text and len(text) > args.max_text_chars:
            raise InputError(f"text has {len(text)} characters; the limit is "
                             f"{args.max_text_chars}", status_code=413)
        started = time.perf_counter()
        timings: dict[str, float] = {}
        # Branch 1 starts first: G2P needs only the text.
        g2p_task = asyncio.create_task(self._timed(
            "g2p", self._g2p.phonemize.remote(text, request.language, args.g2p_backend), timings)
        ) if text and not request.target_ipa else None
        tasks = [t for t in (g2p_task,) if t]
        try:
            # Branch 2: fetch and decode the audio, then recognize.
            audio = await self._timed("audio", asyncio.to_thread(self._load_audio, request, s3),
                                      timings)
            rec_task = asyncio.create_task(self._timed(
                "recognizer",
                self._recognizer.recognize.remote(audio.samples, request.language, text),
                timings))
            tasks.append(rec_task)
            recognition: Recognition = await rec_task
            g2p_result = await g2p_task if g2p_task else None
            canonical = (
                [CanonicalWord(word=w.word, phones=w.phones) for w in g2p_result.words]
                if g2p_result else parse_target_ipa(request.target_ipa or ""))
        except BaseException:
            for task in tasks:
                task.cancel()
            raise
        if not canonical:
            raise InputError("the reference has no phones to assess against")
        t = time.perf_counter()
        scores = await asyncio.to_thread(score, canonical, recognition, args.gop_weight,
                                         args.word_threshold)
        timings["scoring"] = time.perf_counter() - t
        timings["recognizer_decode"] = recognition.decode_s
        timings["total"] = time.perf_counter() - started
        return AssessmentResult(
            **scores.model_dump(),
            language=request.language,
            recognizer=recognition.backend,
            # the backend that made the phones (args.g2p_backend None: G2P's default)
            g2p_backend=g2p_result.backend if g2p_result else None,
            audio=AudioInfo(duration_s=round(audio.duration_s, 3),
                            source_format=audio.source_format,
                            source_sample_rate=audio.source_sample_rate,
                            source_channels=audio.source_channels),
            warnings=audio.warnings + recognition.warnings,
            timings={k: round(v, 4) for k, v in timings.items()},
        )

    async def _timed(self, name: str, call: Awaitable[T], timings: dict[str, float]) -> T:
        """Await a model call with the configured timeout, recording its latency and
        turning a wrapped InputError from another replica back into a plain one."""
        t = time.perf_counter()
        try:
            return await asyncio.wait_for(call, self._args.call_timeout_s)
        except asyncio.TimeoutError:
            raise TimeoutError(f"{name} took longer than {self._args.call_timeout_s:g} s") \
                from None
        except Exception as exc:
            if (error := _input_error(exc)) is not None:
                raise error from None
            raise
        finally:
            timings[name] = time.perf_counter() - t

    def _load_audio(self, request: AssessmentRequest, s3: S3Config | None) -> DecodedAudio:
        args = self._args
        data = fetch_input(request.audio_url or request.audio or "", args.max_audio_bytes,
                           args.outbound, args.fetch_timeout_s, s3)
        return decode_audio(data, args.max_duration_s, args.warn_min_duration_s,
                            max_channels=args.max_channels,
                            max_sample_rate=args.max_sample_rate)


def build_pronunciation_app(g2p: Application,
                            args: AssessmentArgs | dict | None = None) -> Application:
    """The pronunciation graph for the application builder: the pipeline bound to the
    (shared) G2P application and its own recognizer."""
    args = AssessmentArgs.model_validate(args or {})
    rec = args.recognizer
    # Replicas and GPU shares come from the config's `deployments:` section.
    recognizer = PhoneRecognizer.bind(rec.backend, rec.settings, rec.device,
                                      rec.gpu_memory_fraction)
    return AssessmentPipeline.bind(g2p, recognizer, args.model_dump())
