"""The assessment graph on a real local Serve: the G2P and recognizer branches overlap,
the real G2P deployment plugs in, and bad audio comes back as InputError of its kind.
The recognizer's health check is tested on its plain class, without Ray."""

from __future__ import annotations

import asyncio
import base64
import struct
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from deployments.common.errors import ErrorKind, InputError
from deployments.pronunciation.config import AssessmentArgs, RecognizerArgs
from deployments.pronunciation.deployment import PhoneRecognizer, probe_recognizer
from deployments.pronunciation.types import Recognition

FIXTURES = Path(__file__).parent / "fixtures"
FOX = "the quick brown fox jumps over the lazy dog"
#: the stand-in G2P's extra latency: about the recognizer's (~0.4 s here), so overlap
#: is measurable
G2P_DELAY_S = 0.5


def job(text: str = FOX, audio: bytes | None = None) -> dict:
    audio = (FIXTURES / "fox.wav").read_bytes() if audio is None else audio
    return {"id": uuid.uuid4().hex,
            "input": {"audio": base64.b64encode(audio).decode(), "text": text,
                      "language": "en-us"}}


def deploy(g2p: object) -> tuple[str, object]:
    from ray import serve

    from deployments.pronunciation.deployment import AssessmentPipeline

    name = f"pronunciation-test-{uuid.uuid4().hex[:8]}"
    app = AssessmentPipeline.bind(g2p, PhoneRecognizer.bind(RecognizerArgs(device="cpu")),
                                  AssessmentArgs())
    return name, serve.run(app, name=name, route_prefix=f"/{name}")


@pytest.fixture(scope="module")
def real_pipeline(serve_port: int) -> Iterator[object]:
    from ray import serve

    from deployments.g2p.config import G2PArgs
    from deployments.g2p.deployment import build_g2p_app

    name, handle = deploy(build_g2p_app(G2PArgs(backends=["gruut"])))
    yield handle
    serve.delete(name)


@pytest.fixture(scope="module")
def slow_g2p_pipeline(serve_port: int) -> Iterator[object]:
    from ray import serve

    from deployments.g2p.types import G2PResult, WordPhones

    @serve.deployment(ray_actor_options={"num_cpus": 0.25})
    class SlowG2P:
        """Stand-in with the G2P deployment's interface: gruut's phones, plus a delay
        comparable to the recognizer's so that overlap (or its absence) shows."""

        async def phonemize(self, text: str, language: str = "en-us",
                            backend: str | None = None) -> G2PResult:
            from gruut import sentences

            await asyncio.sleep(G2P_DELAY_S)
            words = [WordPhones(word=w.text, phones=w.phonemes)
                     for s in sentences(text, lang=language) for w in s if w.is_spoken]
            return G2PResult.from_words(language, "gruut", words)

    name, handle = deploy(SlowG2P.bind())
    yield handle
    serve.delete(name)


def test_branches_run_concurrently(slow_g2p_pipeline: object) -> None:
    slow_g2p_pipeline.run.remote(job()).result(timeout_s=120)  # warm both branches
    saved = []
    for _ in range(3):
        t = slow_g2p_pipeline.run.remote(job()).result(timeout_s=120)["timings"]
        g2p, speech = t["g2p"], t["audio"] + t["recognizer"]
        assert g2p >= G2P_DELAY_S and t["recognizer"] > 0.1, t
        # Run one after the other, total would be at least g2p + speech; overlapped, it
        # is about the longer of the two.
        saved.append((g2p + speech - t["total"]) / min(g2p, speech))
    # at least half of the shorter branch was hidden behind the longer one
    assert sorted(saved)[1] > 0.5, saved


def test_end_to_end_with_the_real_g2p(real_pipeline: object) -> None:
    result = real_pipeline.run.remote(job()).result(timeout_s=120)
    assert result["recognizer"] == "pocketsphinx"
    assert [w["word"] for w in result["words"]] == FOX.split()
    assert result["per"] < 0.5 and result["score"] > 70
    assert result["target_ipa"].startswith("ðə kwɪk")
    assert all(w["start"] is not None for w in result["words"])
    assert result["audio"]["duration_s"] == pytest.approx(3.13, abs=0.01)
    assert {"g2p", "audio", "recognizer", "scoring", "total"} <= set(result["timings"])
    other = real_pipeline.run.remote(
        job("my father will visit seven cities in the spring")).result(timeout_s=120)
    assert other["per"] >= 2 * result["per"] and other["score"] < result["score"]


def wav(seconds: float, rate: int = 8000, format_tag: int = 1) -> bytes:
    data = bytes(int(seconds * rate) * 2)
    fmt = struct.pack("<HHIIHH", format_tag, 1, rate, rate * 2, 2, 16)
    return (b"RIFF" + struct.pack("<I", 4 + 8 + len(fmt) + 8 + len(data)) + b"WAVE"
            + b"fmt " + struct.pack("<I", len(fmt)) + fmt
            + b"data" + struct.pack("<I", len(data)) + data)


@pytest.mark.parametrize("audio,message,kind", [
    (b"not audio at all, just text" * 20, "could not be decoded", ErrorKind.UNSUPPORTED),
    (b"", "audio is empty", ErrorKind.BAD_INPUT),
    (wav(21), "limit is 20 s", ErrorKind.TOO_LARGE),
    (wav(2, format_tag=0x1234), "could not be decoded", ErrorKind.UNSUPPORTED),  # unknown codec
])
def test_bad_audio_is_an_input_error(real_pipeline: object, audio: bytes, message: str,
                                     kind: ErrorKind) -> None:
    with pytest.raises(InputError, match=message) as info:
        real_pipeline.run.remote(job(audio=audio)).result(timeout_s=120)
    assert info.value.kind is kind


def test_bad_input_and_language(real_pipeline: object) -> None:
    with pytest.raises(InputError, match="exactly one of audio"):
        real_pipeline.run.remote({"id": "x", "input": {"text": FOX}}).result(timeout_s=60)
    german = job()
    german["input"]["language"] = "de"
    # both branches refuse German (gruut here, pocketsphinx): the first refusal is the answer
    with pytest.raises(InputError, match="only knows English|not supported by the gruut"):
        real_pipeline.run.remote(german).result(timeout_s=120)
    german["input"].update(text=None, target_ipa="ˈaɪ̯ns")  # no G2P: the recognizer's answer
    with pytest.raises(InputError, match="only knows English"):
        real_pipeline.run.remote(german).result(timeout_s=120)


def test_recognizer_health_check_decodes_a_little_silence() -> None:
    recognizer = PhoneRecognizer.func_or_class(RecognizerArgs(device="cpu"))  # no Ray
    asyncio.run(recognizer.check_health())


class _Backend:
    def __init__(self, name: str, recognize: object = None) -> None:
        self.name = name
        self.recognize = recognize


def test_an_unusable_recognizer_fails_its_health_check() -> None:
    def crash(audio: np.ndarray, language: str, text: str | None) -> Recognition:
        raise RuntimeError("decoder state corrupted")

    with pytest.raises(RuntimeError, match="pocketsphinx recognizer failed its probe"):
        probe_recognizer(_Backend("pocketsphinx", crash), torch.device("cpu"))
    with pytest.raises(RuntimeError, match="not a Recognition"):
        probe_recognizer(_Backend("pocketsphinx", lambda *args: None), torch.device("cpu"))


def test_a_backend_with_its_own_health_check_is_asked_it() -> None:
    asked = []
    backend = _Backend("powsm")
    backend.check_health = lambda: asked.append(True)
    probe_recognizer(backend, torch.device("cpu"))
    assert asked == [True]
    # without one, a model backend's device answers a tiny operation (no 20 s decode)
    probe_recognizer(_Backend("powsm"), torch.device("cpu"))
