"""Webhooks: delivered on every terminal state, retried on failure, never failing a job."""

from __future__ import annotations

import time

import httpx

from tests.spine.conftest import Receiver, wait_for


def _wait_calls(receiver: Receiver, path: str, n: int, timeout_s: float = 20) -> list[dict]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        calls = receiver.received(path)
        if len(calls) >= n:
            return calls
        time.sleep(0.1)
    raise AssertionError(f"{path}: {len(receiver.received(path))} calls, wanted {n}")


def test_completed_job_posts_status_input_and_webhook(client: httpx.Client,
                                                      receiver: Receiver) -> None:
    url = receiver.url("/ok/completed")
    job = client.post("/v2/demo/run", json={"input": {"echo": "w"}, "webhook": url}).json()
    (payload,) = _wait_calls(receiver, "/ok/completed", 1)
    assert payload["id"] == job["id"] and payload["status"] == "COMPLETED"
    assert payload["output"]["echo"] == "w"
    assert payload["input"] == {"echo": "w"} and payload["webhook"] == url
    assert {"delayTime", "executionTime", "retries"} <= set(payload)


def test_failed_timed_out_and_cancelled_jobs_post_too(client: httpx.Client,
                                                      receiver: Receiver) -> None:
    client.post("/v2/demo/run", json={"input": {"fail": "nope"},
                                      "webhook": receiver.url("/ok/failed")})
    client.post("/v2/demo/run", json={"input": {"delay_s": 8},
                                      "policy": {"executionTimeout": 5000},
                                      "webhook": receiver.url("/ok/timeout")})
    job = client.post("/v2/demo/run", json={"input": {"delay_s": 5},
                                            "webhook": receiver.url("/ok/cancelled")}).json()
    client.post(f"/v2/demo/cancel/{job['id']}")
    assert _wait_calls(receiver, "/ok/failed", 1)[0]["error"] == "nope"
    assert _wait_calls(receiver, "/ok/cancelled", 1)[0]["status"] == "CANCELLED"
    assert _wait_calls(receiver, "/ok/timeout", 1)[0]["status"] == "TIMED_OUT"


def test_failing_receiver_gets_its_retries_and_the_job_still_completes(
        client: httpx.Client, receiver: Receiver) -> None:
    job = client.post("/v2/demo/run", json={"input": {}, "webhook": receiver.url("/fail/a")}).json()
    body = wait_for(client, f"/v2/demo/status/{job['id']}", lambda b: b["status"] == "COMPLETED")
    assert body["status"] == "COMPLETED"
    calls = _wait_calls(receiver, "/fail/a", 3)
    time.sleep(1.0)  # configured 0.3 s apart: no fourth attempt follows
    assert len(receiver.received("/fail/a")) == 3 == len(calls)
    assert all(c["id"] == job["id"] for c in calls)


def test_unreachable_receiver_does_not_fail_the_job(client: httpx.Client) -> None:
    body = client.post("/v2/demo/runsync", json={"input": {},
                                                 "webhook": "http://127.0.0.1:9/x"}).json()
    assert body["status"] == "COMPLETED"
