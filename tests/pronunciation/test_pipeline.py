"""The assessment pipeline without Ray: stand-in G2P and recognizer calls, real audio
decoding and real scoring."""

from __future__ import annotations

import asyncio
import base64
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from deployments.common.errors import InputError, TooLarge, Unsupported
from deployments.g2p.types import G2PResult, WordPhones
from deployments.pronunciation.config import AssessmentArgs
from deployments.pronunciation.pipeline import Assessor
from deployments.pronunciation.types import CanonicalWord, Recognition, RecognizedPhone

FOX_WAV = (Path(__file__).parent / "fixtures" / "fox.wav").read_bytes()
#: "hello world" as G2P gives it, and as the stand-in recognizer hears it (one phone off)
HELLO = [WordPhones(word="hello", phones=["h", "ə", "l", "oʊ"]),
         WordPhones(word="world", phones=["w", "ɚ", "l", "d"])]
HEARD = ["h", "ə", "l", "oʊ", "w", "ɚ", "l", "t"]
CALL_S = 0.2


class StandIns:
    """G2P and recognizer calls taking CALL_S each; calls, their arguments and
    cancellations are recorded; `fail` names a call that raises instead."""

    def __init__(self, fail: str | None = None, error: Exception | None = None,
                 delay_s: float = CALL_S) -> None:
        self.fail, self.delay_s = fail, delay_s
        self.error = error or RuntimeError(f"{fail} crashed")
        self.calls: dict[str, tuple[Any, ...]] = {}
        self.cancelled: list[str] = []

    async def _work(self, name: str, *args: Any) -> None:
        self.calls[name] = args
        try:
            await asyncio.sleep(0.01 if self.fail == name else self.delay_s)
        except asyncio.CancelledError:
            self.cancelled.append(name)
            raise
        if self.fail == name:
            raise self.error

    async def g2p(self, text: str, language: str, backend: str | None) -> G2PResult:
        await self._work("g2p", text, language, backend)
        return G2PResult.from_words(language, "stand-in-g2p", HELLO)

    async def recognize(self, samples: np.ndarray, language: str, text: str | None,
                        words: list[CanonicalWord] | None) -> Recognition:
        await self._work("recognize", samples, language, text, words)
        return Recognition(backend="stand-in", phones=[RecognizedPhone(phone=p) for p in HEARD],
                           decode_s=0.123)


def job(**changes: Any) -> dict[str, Any]:
    return {"id": "j", "input": {"audio": base64.b64encode(FOX_WAV).decode(),
                                 "text": "hello world", **changes}}


def run(models: StandIns, payload: dict[str, Any], **args: Any) -> dict[str, Any]:
    return asyncio.run(Assessor(models.g2p, models.recognize, AssessmentArgs(**args)).run(payload))


def test_scores_the_recognized_phones_against_g2p_and_shows_the_overlap() -> None:
    models = StandIns()
    out = run(models, job(), g2p_backend="gruut")
    assert models.calls["g2p"] == ("hello world", "en-us", "gruut")
    samples, language, text, words = models.calls["recognize"]
    assert samples.dtype == np.float32 and len(samples) == pytest.approx(3.13 * 16_000, rel=0.01)
    # pocketsphinx (the default) aligns the text itself: it does not wait for G2P's phones
    assert (language, text, words) == ("en-us", "hello world", None)

    assert out["recognizer"] == "stand-in" and out["g2p_backend"] == "stand-in-g2p"
    assert [w["word"] for w in out["words"]] == ["hello", "world"]
    assert out["per"] == pytest.approx(1 / 8) and out["accuracy"] == pytest.approx(7 / 8)
    hello, world = out["words"]
    assert (hello["substitutions"], world["substitutions"]) == (0, 1)
    assert hello["score"] > world["score"]
    assert out["audio"]["duration_s"] == pytest.approx(3.13, abs=0.01)
    timings = out["timings"]
    assert {"g2p", "audio", "recognizer", "scoring", "recognizer_decode", "total"} <= set(timings)
    assert timings["recognizer_decode"] == 0.123
    # the branches overlapped: G2P ran while the audio was decoded and recognized
    branches_s = timings["total"] - timings["scoring"]
    assert branches_s < timings["g2p"] + timings["audio"] + timings["recognizer"] - 0.1, timings


@pytest.mark.parametrize("backend", ["powsm", "powsm_ctc"])
def test_a_backend_aligning_given_phones_gets_g2ps_phones(backend: str) -> None:
    models = StandIns()
    out = run(models, job(), recognizer={"backend": backend})
    *_, words = models.calls["recognize"]
    assert words == [CanonicalWord(word=w.word, phones=w.phones) for w in HELLO]
    assert out["per"] == pytest.approx(1 / 8)
    # its recognition waited for G2P; the audio was still decoded beside it
    timings = out["timings"]
    assert timings["total"] - timings["scoring"] >= timings["g2p"] + timings["recognizer"]


def test_a_backend_aligning_given_phones_gets_target_ipa_phones() -> None:
    models = StandIns()
    run(models, job(text=None, target_ipa="/h//ə//l//oʊ/"), recognizer={"backend": "powsm"})
    *_, words = models.calls["recognize"]
    assert [w.phones for w in words] == [["h", "ə", "l", "oʊ"]] and "g2p" not in models.calls


def test_target_ipa_skips_g2p() -> None:
    models = StandIns()
    out = run(models, job(text=None, target_ipa="həloʊ /w//ɚ//l//d/"))
    assert "g2p" not in models.calls and "g2p" not in out["timings"]
    assert out["g2p_backend"] is None and out["target_ipa"].startswith("həloʊ")


@pytest.mark.parametrize(("payload", "error", "message"), [
    ({"id": "j"}, InputError, "input must be a JSON object"),
    ({"input": {"text": "hello"}}, InputError, "exactly one of audio"),
    (job(language=3), InputError, "language"),
    (job(audio=base64.b64encode(b"plain text, no sound" * 20).decode()), Unsupported,
     "could not be decoded as WAV, FLAC, OGG or MP3"),
    (job(audio="!!!"), InputError, "not valid base64"),
])
def test_bad_input(payload: dict[str, Any], error: type, message: str) -> None:
    models = StandIns()
    with pytest.raises(error, match=message):
        run(models, payload)
    assert "recognize" not in models.calls


def test_too_large_inputs() -> None:
    with pytest.raises(TooLarge, match="text has 12 characters; the limit is 5"):
        run(StandIns(), job(text="hello  world"), max_text_chars=5)
    with pytest.raises(TooLarge, match="the limit is 2 s"):
        run(StandIns(), job(), max_duration_s=2)
    with pytest.raises(TooLarge, match="larger than the limit of 1024 bytes"):
        run(StandIns(), job(), max_audio_bytes=1024)


@pytest.mark.parametrize(("failing", "other"), [("g2p", "recognize"), ("recognize", "g2p")])
def test_a_failing_call_fails_the_job_and_cancels_the_other(failing: str, other: str) -> None:
    models = StandIns(fail=failing, delay_s=5)
    started = time.perf_counter()
    with pytest.raises(RuntimeError, match=f"{failing} crashed"):
        run(models, job())
    assert time.perf_counter() - started < 2  # not waiting for the other's 5 s
    assert models.cancelled == [other]


def test_a_call_over_its_time_limit_fails_the_job() -> None:
    models = StandIns(delay_s=5)
    with pytest.raises(TimeoutError, match="g2p took longer than 0.5 s"):
        run(models, job(), call_timeout_s=0.5)
    assert sorted(models.cancelled) == ["g2p", "recognize"]  # neither is left running


def test_an_input_error_from_another_replica_comes_back_plain() -> None:
    class Wrapped(Exception):  # the shape of Ray's task error: the cause as an attribute
        def __init__(self, cause: BaseException) -> None:
            super().__init__("wrapped")
            self.cause = cause

    models = StandIns(fail="recognize",
                      error=Wrapped(InputError("the recognizer only knows English")))
    with pytest.raises(InputError, match="only knows English") as info:
        run(models, job())
    assert type(info.value) is InputError
    assert models.cancelled == ["g2p"]


def test_a_cancellable_response_is_cancelled_too() -> None:
    """Serve's DeploymentResponse keeps running in its replica unless cancelled itself."""
    cancelled = []

    class Response:
        def __await__(self) -> Any:
            return asyncio.sleep(5).__await__()

        def cancel(self) -> None:
            cancelled.append("g2p")

    models = StandIns(fail="recognize")
    assessor = Assessor(lambda *args: Response(), models.recognize, AssessmentArgs())
    with pytest.raises(RuntimeError, match="recognize crashed"):
        asyncio.run(assessor.run(job()))
    assert cancelled == ["g2p"]
