"""pronunciation-assessment end to end through the application's real HTTP ingress.

The app is `serve_app.app.build_app` serving only `pronunciation-assessment` (fixture
`assess_base` in conftest.py): the direct route `POST /assess`, RunPod's job API under
`/v2` (`/runsync`, `/run` + `/status`), the real `runpod` SDK, audio from S3 (moto's
standalone server) through the job's `s3Config`, and bad audio or input through both the
direct route and the job facade.
"""

from __future__ import annotations

import base64
import struct
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import runpod

from tests.clients import runpod_sdk
from tests.workload import assert_described

ENDPOINT = "pronunciation-assessment"
JOBS = f"/v2/{ENDPOINT}"
FIXTURES = Path(__file__).parent / "fixtures"
FOX = "the quick brown fox jumps over the lazy dog"
TIMEOUT_S = 180
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"}


# ---------------------------------------------------------------- fixtures and helpers


@pytest.fixture(scope="module")
def client(assess_base: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=assess_base, timeout=TIMEOUT_S) as c:
        yield c


@pytest.fixture()
def sdk(assess_base: str) -> Iterator[None]:
    with runpod_sdk(assess_base):
        yield


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def recording(name: str) -> bytes:
    return (FIXTURES / f"{name}.wav").read_bytes()


def assessment(name: str, text: str = FOX) -> dict[str, Any]:
    """The endpoint's input: a committed recording (base64) and the reference sentence."""
    return {"audio": b64(recording(name)), "text": text, "language": "en-us"}


def flagged(result: dict[str, Any]) -> list[str]:
    return [w["word"] for w in result["words"] if w["verdict"] != "correct"]


def wait_job(client: httpx.Client, job_id: str, timeout_s: float = TIMEOUT_S) -> dict[str, Any]:
    """Poll /status until the job ends."""
    deadline = time.monotonic() + timeout_s
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        r = client.get(f"{JOBS}/status/{job_id}")
        assert r.status_code == 200, r.text
        body = r.json()
        if body["status"] in TERMINAL:
            return body
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not end within {timeout_s} s: {body}")


def assert_fox_flagged(result: dict[str, Any]) -> None:
    """The "box" recording against the fox sentence: "fox" (and at most one other word)
    is flagged, and its b is heard where the f was expected."""
    assert [w["word"] for w in result["words"]] == FOX.split()
    bad = flagged(result)
    assert "fox" in bad and len(bad) <= 2, [(w["word"], w["score"]) for w in result["words"]]
    fox = next(w for w in result["words"] if w["word"] == "fox")
    assert fox["verdict"] == "mispronounced" and fox["score"] < 60
    assert fox["start"] is not None and fox["start"] < fox["end"]
    assert "b" in result["recognized_phones"]
    assert result["score"] < 100 and result["per"] > 0


def wav(seconds: float, rate: int = 16_000, format_tag: int = 1, tone: bool = True) -> bytes:
    """A mono 16-bit WAV: a 220 Hz tone (or silence); `format_tag` 1 is PCM."""
    n = int(seconds * rate)
    if tone:
        import numpy as np

        t = np.arange(n) / rate
        data = (0.3 * 32767 * np.sin(2 * np.pi * 220 * t)).astype("<i2").tobytes()
    else:
        data = bytes(2 * n)
    fmt = struct.pack("<HHIIHH", format_tag, 1, rate, rate * 2, 2, 16)
    return (b"RIFF" + struct.pack("<I", 4 + 8 + len(fmt) + 8 + len(data)) + b"WAVE"
            + b"fmt " + struct.pack("<I", len(fmt)) + fmt
            + b"data" + struct.pack("<I", len(data)) + data)


@pytest.fixture(scope="module")
def fox_direct(client: httpx.Client) -> dict[str, Any]:
    """fox.wav against its own sentence through `POST /assess`."""
    r = client.post("/assess", json=assessment("fox"))
    assert r.status_code == 200, r.text[:500]
    return r.json()


# ---------------------------------------------------------------- the direct route


def test_endpoint_is_listed_with_its_route(client: httpx.Client) -> None:
    assert list(client.get("/endpoints").json()) == [ENDPOINT]
    assert_described(client, ENDPOINT, "/assess")


def test_direct_route_scores_its_own_sentence(fox_direct: dict[str, Any]) -> None:
    result = fox_direct
    assert result["recognizer"] == "pocketsphinx" and result["g2p_backend"] == "gruut"
    assert result["target_ipa"].startswith("ðə kwɪk")
    assert [w["word"] for w in result["words"]] == FOX.split()
    assert flagged(result) == [], [(w["word"], w["score"]) for w in result["words"]]
    for word in result["words"]:
        assert word["verdict"] == "correct" and 60 <= word["score"] <= 100
        assert 0 <= word["start"] < word["end"] <= 3.2
    starts = [w["start"] for w in result["words"]]
    assert starts == sorted(starts)
    assert result["per"] < 0.5 and result["score"] > 70
    assert 0 < result["confidence"] <= 1
    assert result["audio"] == {"duration_s": pytest.approx(3.13, abs=0.01),
                               "source_format": "WAV", "source_sample_rate": 16000,
                               "source_channels": 1}
    assert result["warnings"] == []
    assert {"g2p", "audio", "recognizer", "scoring", "total"} <= set(result["timings"])


def test_direct_route_flags_fox_and_against_its_own_text_passes(client: httpx.Client) -> None:
    r = client.post("/assess", json=assessment("box"))
    assert r.status_code == 200, r.text[:500]
    assert_fox_flagged(box := r.json())
    own = client.post("/assess", json=assessment("box", FOX.replace("fox", "box"))).json()
    assert next(w for w in own["words"] if w["word"] == "box")["verdict"] == "correct"
    assert own["score"] > box["score"]


def test_target_ipa_instead_of_text(client: httpx.Client, fox_direct: dict[str, Any]) -> None:
    """The caller's own phones (no G2P, so the words are named by their phones).

    Without text pocketsphinx has nothing to force-align, so there are no times or GOP
    and the verdicts are the phone loop's alone (which mishears many clear phones): only
    the plumbing and the flagged "fox" (fɑks) are checked here."""
    body = {"audio": b64(recording("box")), "target_ipa": fox_direct["target_ipa"]}
    r = client.post("/assess", json=body)
    assert r.status_code == 200, r.text[:500]
    result = r.json()
    assert result["g2p_backend"] is None and "g2p" not in result["timings"]
    assert result["target_ipa"] == fox_direct["target_ipa"]
    words = fox_direct["target_ipa"].split()
    assert [w["word"] for w in result["words"]] == words and words[3] == "fɑks"
    fox = result["words"][3]
    assert fox["verdict"] == "mispronounced" and "b" in fox["recognized_phones"], fox


# ---------------------------------------------------------------- the job facade


def test_runsync_flags_fox(client: httpx.Client) -> None:
    r = client.post(f"{JOBS}/runsync", json={"input": assessment("box")})
    assert r.status_code == 200, r.text[:500]
    job = r.json()
    assert job["status"] == "COMPLETED", job
    assert_fox_flagged(job["output"])


def test_run_and_status_flag_fox(client: httpx.Client) -> None:
    r = client.post(f"{JOBS}/run", json={"input": assessment("box")})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "IN_QUEUE"
    job = wait_job(client, r.json()["id"])
    assert job["status"] == "COMPLETED", job
    assert_fox_flagged(job["output"])
    assert job["executionTime"] > 0


def test_runpod_sdk_run_sync_and_run(sdk: None, fox_direct: dict[str, Any]) -> None:
    endpoint = runpod.Endpoint(ENDPOINT)
    own = endpoint.run_sync(assessment("fox"), timeout=TIMEOUT_S)
    # the same recording and sentence give the same assessment whichever way it came
    assert own["per"] == fox_direct["per"] and own["score"] == fox_direct["score"]
    assert flagged(own) == []
    job = endpoint.run(assessment("box"))
    output = job.output(timeout=TIMEOUT_S)
    assert job.status() == "COMPLETED"
    assert_fox_flagged(output)


def test_audio_from_s3_with_the_jobs_s3_config(sdk: None, s3_server: str) -> None:
    import boto3

    bucket = f"assess-{uuid.uuid4().hex[:8]}"
    s3 = boto3.client("s3", endpoint_url=s3_server, aws_access_key_id="testing",
                      aws_secret_access_key="testing", region_name="us-east-1")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="audio/box.wav", Body=recording("box"))
    s3_config = {"accessId": "testing", "accessSecret": "testing", "bucketName": bucket,
                 "endpointUrl": s3_server}
    endpoint = runpod.Endpoint(ENDPOINT)
    output = endpoint.run_sync({"input": {"audio_url": f"s3://{bucket}/audio/box.wav",
                                          "text": FOX},
                                "s3Config": s3_config}, timeout=TIMEOUT_S)
    assert_fox_flagged(output)
    assert output["audio"]["duration_s"] > 2

    job = endpoint.run({"input": {"audio_url": f"s3://{bucket}/audio/absent.wav", "text": FOX},
                        "s3Config": s3_config})
    job.output(timeout=TIMEOUT_S)
    assert job.status() == "FAILED"
    assert f"could not read s3://{bucket}/audio/absent.wav" in job._fetch_job()["error"]


# ---------------------------------------------------------------- bad audio and input

BAD_INPUTS = {
    # name: (input, status of the direct route, what the error names)
    "not-audio": ({"audio": b64(b"not audio at all, just text " * 20), "text": FOX}, 415,
                  "the audio could not be decoded as WAV, FLAC, OGG or MP3"),
    "empty-string": ({"audio": "", "text": FOX}, 400, "audio is empty"),
    "empty-recording": ({"audio": b64(wav(0)), "text": FOX}, 400, "the audio holds no samples"),
    "too-long": ({"audio": b64(wav(21, rate=8000)), "text": FOX}, 413,
                 "the audio lasts 21.0 s; the limit is 20 s"),
    "unknown-codec": ({"audio": b64(wav(2, format_tag=0x1234)), "text": FOX}, 415,
                      "the audio could not be decoded as WAV, FLAC, OGG or MP3"),
    "low-sample-rate": ({"audio": b64(wav(2, rate=4000)), "text": FOX}, 400,
                        "the audio's sample rate is 4000 Hz; at least 8000 Hz is needed"),
    # a truncated copy: 1001 characters cannot be base64
    "bad-base64": ({"audio": b64(recording("fox"))[:1001], "text": FOX}, 400,
                   "base64 data is not valid base64"),
    "no-reference": ({"audio": b64(recording("fox"))}, 400,
                     "give text (the reference sentence) or target_ipa"),
    "no-audio": ({"text": FOX}, 400, "give exactly one of audio (base64) or audio_url"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_direct_route(client: httpx.Client, case: str) -> None:
    body, status, message = BAD_INPUTS[case]
    r = client.post("/assess", json=body)
    assert r.status_code == status, r.text[:500]
    error = r.json()["error"]
    assert message in error and "Traceback" not in error, error


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_fails_the_job(client: httpx.Client, case: str) -> None:
    body, _, message = BAD_INPUTS[case]
    r = client.post(f"{JOBS}/runsync", json={"input": body})
    assert r.status_code == 200, r.text[:500]
    job = r.json()
    assert job["status"] == "FAILED", job
    assert message in job["error"] and "Traceback" not in job["error"], job["error"]
    assert "output" not in job or job["output"] is None


def test_bad_audio_through_run_and_the_sdk(client: httpx.Client, sdk: None) -> None:
    body, _, message = BAD_INPUTS["too-long"]
    job_id = client.post(f"{JOBS}/run", json={"input": body}).json()["id"]
    job = wait_job(client, job_id)
    assert job["status"] == "FAILED" and message in job["error"], job
    sdk_job = runpod.Endpoint(ENDPOINT).run(BAD_INPUTS["not-audio"][0])
    sdk_job.output(timeout=TIMEOUT_S)
    assert sdk_job.status() == "FAILED"
    assert BAD_INPUTS["not-audio"][2] in sdk_job._fetch_job()["error"]


def test_still_serving_after_bad_input(client: httpx.Client, fox_direct: dict[str, Any]) -> None:
    """Runs after the bad-input tests (file order): nothing broke the replicas."""
    r = client.post("/assess", json=assessment("fox"))
    assert r.status_code == 200, r.text[:500]
    again = r.json()
    assert again["per"] == fox_direct["per"] and again["score"] == fox_direct["score"]
    # and no job was left stuck behind a failure
    health = client.get(f"{JOBS}/health").json()
    assert health["jobs"]["inQueue"] == health["jobs"]["inProgress"] == 0, health
    assert health["workers"]["running"] == 0, health


def test_a_text_g2p_cannot_read_fails_only_its_own_assessment(client: httpx.Client) -> None:
    """Assessments share the G2P's batches: one with "1e309" in its text failed the others
    batched with it; now it alone is a 400."""
    from concurrent.futures import ThreadPoolExecutor

    texts = [FOX, f"{FOX} 1e309", FOX]
    with ThreadPoolExecutor(len(texts)) as pool:
        answers = list(pool.map(
            lambda text: client.post("/assess", json=assessment("fox", text)), texts))
    assert [r.status_code for r in answers] == [200, 400, 200], [r.text[:200] for r in answers]
    assert "a number too large for the gruut backend" in answers[1].json()["error"]
