"""Unmodified RunPod workers pull jobs from this queue (issue 17, items 1 and 2)."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import runpod

from tests.clients import runpod_sdk
from tests.workers.conftest import (
    CLIENT_KEY,
    WORKER_KEY,
    Worker,
    health,
    wait_until,
)

Start = Callable[[str], Worker]


@pytest.fixture()
def sdk(worker_app: dict) -> Iterator[None]:
    with runpod_sdk(worker_app["url"], CLIENT_KEY):
        yield


def status(app: dict, endpoint: str, job_id: str) -> dict:
    return httpx.get(f"{app['url']}/v2/{endpoint}/status/{job_id}",
                     headers={"Authorization": CLIENT_KEY}, timeout=30).json()


def test_sync_handler(sdk: None, worker_app: dict, start_worker: Start) -> None:
    worker = start_worker("w-sync")
    job = runpod.Endpoint("w-sync").run({"text": "hi"})
    assert job.output(timeout=30)["echo"] == {"text": "hi"}
    body = status(worker_app, "w-sync", job.job_id)
    assert body["status"] == "COMPLETED" and body["workerId"] == worker.id
    assert body["output"]["pid"] == worker.process.pid
    assert runpod.Endpoint("w-sync").run_sync({"n": 2}, timeout=30)["echo"] == {"n": 2}


def test_async_handler(sdk: None, start_worker: Start) -> None:
    start_worker("w-async")
    assert runpod.Endpoint("w-async").run_sync({"sleep": 0.2}, timeout=30)["echo"] == \
        {"sleep": 0.2}


def test_generator_streams_and_aggregates(sdk: None, worker_app: dict,
                                          start_worker: Start) -> None:
    start_worker("w-stream")
    job = runpod.Endpoint("w-stream").run({"chunks": 4})
    assert list(job.stream()) == [{"index": i} for i in range(4)]
    body = status(worker_app, "w-stream", job.job_id)
    assert body["status"] == "COMPLETED"
    assert body["output"] == [{"index": i} for i in range(4)]  # return_aggregate_stream


def test_concurrency_modifier_runs_four_at_once(sdk: None, start_worker: Start) -> None:
    start_worker("w-conc")
    jobs = [runpod.Endpoint("w-conc").run({"sleep": 1.5}) for _ in range(8)]
    spans = [job.output(timeout=60) for job in jobs]
    # The most jobs running at any moment: at most 4, and 4 were reached.
    moments = sorted([(s["started"], 1) for s in spans] + [(s["ended"], -1) for s in spans])
    running = peak = 0
    for _, step in moments:
        running += step
        peak = max(peak, running)
    assert peak == 4


def test_progress_updates_show_in_status(sdk: None, worker_app: dict,
                                         start_worker: Start) -> None:
    start_worker("w-progress")
    job = runpod.Endpoint("w-progress").run({"steps": 4})
    seen = wait_until(lambda: (b := status(worker_app, "w-progress", job.job_id))["status"]
                      == "IN_PROGRESS" and b.get("output") and b, "a progress update")
    assert seen["output"]["step"] in range(4)
    assert job.output(timeout=30) == {"steps": 4}


def test_errors_fail_the_job(sdk: None, worker_app: dict, start_worker: Start) -> None:
    start_worker("w-raise")
    raised = runpod.Endpoint("w-raise").run({"why": "on purpose"})
    body = wait_until(lambda: (b := status(worker_app, "w-raise", raised.job_id))["status"]
                      == "FAILED" and b, "the raising job to fail")
    error = json.loads(body["error"])  # the SDK's error object, as RunPod's cloud shows it
    assert error["error_message"] == "bad thing: on purpose"
    assert "ValueError" in error["error_type"]
    returned = runpod.Endpoint("w-raise").run({"returned": True})
    body = wait_until(lambda: (b := status(worker_app, "w-raise", returned.job_id))["status"]
                      == "FAILED" and b, "the returned error")
    assert body["error"] == "returned error"


def test_sigkill_mid_job_completes_on_a_second_worker(sdk: None, worker_app: dict,
                                                      start_worker: Start,
                                                      tmp_path: Path) -> None:
    first = start_worker("w-kill")
    mark = tmp_path / "mark"
    job = runpod.Endpoint("w-kill").run({"sleep": 3, "mark": str(mark)})
    wait_until(lambda: mark.exists() and mark.read_text() == "started", "the job to start")
    assert status(worker_app, "w-kill", job.job_id)["workerId"] == first.id
    first.kill()
    second = start_worker("w-kill")
    assert job.output(timeout=60)["pid"] == second.process.pid
    body = status(worker_app, "w-kill", job.job_id)
    assert body["workerId"] == second.id and body["retries"] == 1
    counts = health(worker_app, "w-kill")["workers"]
    assert counts["unhealthy"] >= 1 and counts["idle"] + counts["running"] >= 1


def test_sigkill_of_the_main_process_alone(sdk: None, worker_app: dict, start_worker: Start,
                                           tmp_path: Path) -> None:
    """The SDK's forked pinger outlives its main process and goes on naming the job: the
    dropped job-stop connection, not the lease, tells the server the worker is gone."""
    first = start_worker("w-kill")
    mark = tmp_path / "mark"
    job = runpod.Endpoint("w-kill").run({"sleep": 3, "mark": str(mark)})
    wait_until(lambda: mark.exists() and mark.read_text() == "started", "the job to start")
    os.kill(first.process.pid, signal.SIGKILL)
    time.sleep(4)  # past the 3 s lease: only the pinger's pings could have kept it
    second = start_worker("w-kill")
    assert job.output(timeout=60)["pid"] == second.process.pid
    assert status(worker_app, "w-kill", job.job_id)["retries"] == 1


def test_cancel_stops_the_job_in_the_worker(sdk: None, worker_app: dict, start_worker: Start,
                                            tmp_path: Path) -> None:
    start_worker("w-async")
    mark = tmp_path / "mark"
    job = runpod.Endpoint("w-async").run({"sleep": 60, "mark": str(mark)})
    wait_until(lambda: mark.exists() and mark.read_text() == "started", "the job to start")
    assert job.cancel()["status"] == "CANCELLED"
    wait_until(lambda: mark.read_text() == "stopped", "the worker to stop the job", 15)
    # The worker is free again.
    assert runpod.Endpoint("w-async").run_sync({"after": 1}, timeout=30)["echo"] == {"after": 1}


def test_execution_timeout_stops_the_job(worker_app: dict, start_worker: Start,
                                         tmp_path: Path) -> None:
    start_worker("w-async")
    mark = tmp_path / "mark"
    job = httpx.post(f"{worker_app['url']}/v2/w-async/run", headers={
        "Authorization": CLIENT_KEY}, json={"input": {"sleep": 60, "mark": str(mark)},
                                            "policy": {"executionTimeout": 2000}}).json()
    body = wait_until(lambda: (b := status(worker_app, "w-async", job["id"]))["status"]
                      == "TIMED_OUT" and b, "the job to time out", 20)
    assert "2000 ms" in body["error"]
    wait_until(lambda: mark.read_text() == "stopped", "the worker to stop the job", 15)


def test_refresh_worker_exits_after_its_job(sdk: None, start_worker: Start) -> None:
    worker = start_worker("w-refresh")
    assert runpod.Endpoint("w-refresh").run_sync({}, timeout=30)["pid"] == worker.process.pid
    assert worker.process.wait(timeout=30) == 0  # the SDK ends the process for a fresh one


def test_health_counts_live_workers(worker_app: dict, start_worker: Start) -> None:
    before = health(worker_app, "w-conc")["workers"]
    start_worker("w-conc")
    after = health(worker_app, "w-conc")["workers"]
    assert after["idle"] == before["idle"] + 1
    assert after["ready"] == after["idle"] + after["running"]


def test_worker_routes_refuse_strangers(worker_app: dict) -> None:
    url = f"{worker_app['url']}/v2"
    take = "job-take/w1?job_in_progress=0"
    for key in ("", CLIENT_KEY, "wrong-key-0123456789"):
        answer = httpx.get(f"{url}/w-sync/{take}", headers={"Authorization": key})
        assert answer.status_code == 401 and "worker key" in answer.json()["error"]
    # A worker key is not a client key either.
    answer = httpx.post(f"{url}/w-sync/run", headers={"Authorization": WORKER_KEY},
                        json={"input": {}})
    assert answer.status_code == 401
    auth = {"Authorization": WORKER_KEY}
    # Unknown endpoints and Ray-served ones take no worker key: nothing is told apart.
    for endpoint in ("nope", "wk-demo"):
        answer = httpx.get(f"{url}/{endpoint}/{take}", headers=auth)
        assert answer.status_code == 401 and "workers:" in answer.json()["error"]
    answer = httpx.get(f"{url}/w-sync/job-take/bad%20id?x=1", headers=auth)
    assert answer.status_code == 400 and "error" in answer.json()
    answer = httpx.post(f"{url}/w-sync/job-done/w1/no-such-job?isStream=false", headers=auth,
                        content=b'{"output": 1}')
    assert answer.status_code == 404
    answer = httpx.post(f"{url}/w-sync/job-done/w1/x?isStream=false", headers=auth,
                        content=b"[1, 2]")
    assert answer.status_code == 400 and "JSON object" in answer.json()["error"]


def test_a_stale_result_is_not_taken(worker_app: dict) -> None:
    """A result from a worker that does not hold the job (lost lease, cancelled) is
    answered `accepted: false` and changes nothing."""
    url, auth = f"{worker_app['url']}/v2/w-sync", {"Authorization": CLIENT_KEY}
    job = httpx.post(f"{url}/run", headers=auth, json={"input": {"stale": 1}}).json()
    httpx.post(f"{url}/cancel/{job['id']}", headers=auth)
    answer = httpx.post(f"{url}/job-done/intruder/{job['id']}?isStream=false",
                        headers={"Authorization": WORKER_KEY}, content=b'{"output": "forged"}')
    assert answer.status_code == 200 and answer.json()["accepted"] is False
    body = status(worker_app, "w-sync", job["id"])
    assert body["status"] == "CANCELLED" and "output" not in body


def test_take_waits_then_answers_204(worker_app: dict) -> None:
    started = time.monotonic()
    answer = httpx.get(f"{worker_app['url']}/v2/w-refresh/job-take/idle-1?job_in_progress=0",
                       headers={"Authorization": WORKER_KEY}, timeout=30)
    assert answer.status_code == 204 and time.monotonic() - started >= 1.5  # take_wait_s 2


def test_a_batch_runs_on_external_workers(worker_app: dict, start_worker: Start) -> None:
    worker = start_worker("w-sync")
    url, auth = f"{worker_app['url']}/v2/w-sync", {"Authorization": CLIENT_KEY}
    batch = httpx.post(f"{url}/batch", headers=auth,
                       json=[{"input": {"n": i}} for i in range(6)]).json()
    assert httpx.post(f"{url}/batch/{batch['id']}/finalize", headers=auth).status_code == 200
    done = wait_until(lambda: (b := httpx.get(f"{url}/batch/{batch['id']}", headers=auth)
                               .json())["requestCompleted"] == 6 and b, "the batch to run", 60)
    assert done["requestFailed"] == 0
    page = httpx.get(f"{url}/batch/{batch['id']}/requests", headers=auth).json()
    assert sorted(r["output"]["echo"]["n"] for r in page["requests"]) == list(range(6))
    assert {r["output"]["pid"] for r in page["requests"]} == {worker.process.pid}
