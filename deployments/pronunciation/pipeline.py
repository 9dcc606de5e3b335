"""The pronunciation-assessment endpoint's logic, without Ray: a request in, scores out.

    request ─┬─► g2p(text, language, backend)                      (canonical phones)
             └─► fetch + decode audio ─► recognize(samples, language, text, words)
             ─► scoring.score ─► AssessmentResult

`g2p` and `recognize` are async callables (the Serve deployment passes its handles'
`.remote`; tests pass plain coroutines). Both branches start before either is awaited, so
the latency is about the slower branch, not the sum; if one fails or runs out of time,
the other is cancelled. A backend that aligns the canonical phones themselves (POWSM's
CTC GOP) gets them as `words`, so its recognition waits for G2P (milliseconds); the
others get None and run beside it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import numpy as np

from deployments.common.errors import InputError, TooLarge, input_error_in, parse_input
from deployments.common.fetch import S3Config, fetch_input
from deployments.g2p.types import G2PResult
from deployments.pronunciation.audio import DecodedAudio, decode_audio
from deployments.pronunciation.backends import ALIGNS_GIVEN_PHONES
from deployments.pronunciation.config import AssessmentArgs, AssessmentRequest
from deployments.pronunciation.scoring import parse_target_ipa, score
from deployments.pronunciation.types import (
    AssessmentResult,
    AudioInfo,
    CanonicalWord,
    Recognition,
)

T = TypeVar("T")
G2P = Callable[[str, str, str | None], Awaitable[G2PResult]]
Recognize = Callable[[np.ndarray, str, str | None, list[CanonicalWord] | None],
                     Awaitable[Recognition]]


class Assessor:
    """`run(job)` / `assess(request)`: G2P and recognition concurrently, then scoring;
    InputError for the caller's mistakes."""

    def __init__(self, g2p: G2P, recognize: Recognize, args: AssessmentArgs) -> None:
        self._g2p = g2p
        self._recognize = recognize
        self._args = args
        self._aligns_phones = args.recognizer.backend in ALIGNS_GIVEN_PHONES

    async def run(self, job: dict[str, Any]) -> dict[str, Any]:
        """A RunPod-shaped job in, `AssessmentResult` JSON out."""
        if not isinstance(job, dict):
            raise InputError(f"the job must be a JSON object, not {type(job).__name__}")
        request = parse_input(AssessmentRequest, job.get("input"))
        s3 = S3Config.from_request(job.get("s3Config"))
        return (await self.assess(request, s3)).model_dump()

    async def assess(self, request: AssessmentRequest,
                     s3: S3Config | None = None) -> AssessmentResult:
        args = self._args
        text = (request.text or "").strip() or None
        if text and len(text) > args.max_text_chars:
            raise TooLarge(f"text has {len(text)} characters; the limit is "
                           f"{args.max_text_chars}")
        started = time.perf_counter()
        timings: dict[str, float] = {}
        audio, recognition, g2p_result = await self._branches(request, text, s3, timings)
        canonical = _canonical(request, g2p_result)
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

    async def _branches(self, request: AssessmentRequest, text: str | None,
                        s3: S3Config | None, timings: dict[str, float]
                        ) -> tuple[DecodedAudio, Recognition, G2PResult | None]:
        """G2P of the text (unless target_ipa is given) beside fetch, decode and
        recognition of the audio; the first failure cancels whatever still runs."""
        calls: list[Awaitable[Any]] = []  # the model calls made, to cancel on failure

        def model_call(name: str, call: Awaitable[T]) -> Awaitable[T]:
            calls.append(call)
            return self._timed(name, call, timings)

        async def speech() -> tuple[DecodedAudio, Recognition]:
            audio = await self._timed("audio", asyncio.to_thread(self._load_audio, request, s3),
                                      timings)
            words = (_canonical(request, await g2p if g2p else None)
                     if self._aligns_phones else None)
            return audio, await model_call(
                "recognizer", self._recognize(audio.samples, request.language, text, words))

        # G2P starts first: it needs only the text.
        g2p = (asyncio.ensure_future(model_call(
            "g2p", self._g2p(text, request.language, self._args.g2p_backend)))
            if text and not request.target_ipa else None)
        branches = [asyncio.ensure_future(speech()), *([g2p] if g2p else [])]
        try:
            (audio, recognition), *g2p_result = await asyncio.gather(*branches)
        except BaseException:
            for future in [*branches, *calls]:
                if callable(getattr(future, "cancel", None)):  # Serve's DeploymentResponse too
                    future.cancel()
            raise
        return audio, recognition, g2p_result[0] if g2p_result else None

    async def _timed(self, name: str, call: Awaitable[T], timings: dict[str, float]) -> T:
        """Await a call within `call_timeout_s`, recording its latency, and turn the
        caller's error from another replica (Ray wraps it) back into a plain one."""
        t = time.perf_counter()
        try:
            return await asyncio.wait_for(call, self._args.call_timeout_s)
        except TimeoutError:
            raise TimeoutError(f"{name} took longer than {self._args.call_timeout_s:g} s") \
                from None
        except Exception as exc:
            if (error := input_error_in(exc)) is not None:
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


def _canonical(request: AssessmentRequest, g2p_result: G2PResult | None) -> list[CanonicalWord]:
    """The reference's words and phones: G2P's, or the caller's `target_ipa`."""
    canonical = ([CanonicalWord(word=w.word, phones=w.phones) for w in g2p_result.words]
                 if g2p_result else parse_target_ipa(request.target_ipa or ""))
    if not canonical:
        raise InputError("the reference has no phones to assess against")
    return canonical
