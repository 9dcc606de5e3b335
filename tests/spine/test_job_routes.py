"""Every route of RunPod's queue API against the running application."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.spine.conftest import wait_for
from tests.spine.traces import finished

TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"}


def test_run_then_status_completes_with_honest_times(client: httpx.Client) -> None:
    started = time.monotonic()
    r = client.post("/v2/demo/run", json={"input": {"steps": 2, "delay_s": 0.3, "echo": "hi"}})
    assert r.status_code == 200
    job = r.json()
    assert job["status"] == "IN_QUEUE" and job["id"].endswith("-u1")
    body = wait_for(client, f"/v2/demo/status/{job['id']}", lambda b: b["status"] in TERMINAL)
    wall_ms = (time.monotonic() - started) * 1000
    assert body["status"] == "COMPLETED"
    assert body["output"] == {"echo": "hi", "steps": 2, "job_id": job["id"]}
    assert body["retries"] == 0 and body["workerId"]
    # The handler slept 0.6 s; execution time covers it and delay + execution fit the wall.
    assert 600 <= body["executionTime"] <= wall_ms
    assert 0 <= body["delayTime"] <= wall_ms - body["executionTime"] + 50


def test_progress_update_is_the_output_while_in_progress(client: httpx.Client) -> None:
    job = client.post("/v2/demo/run", json={"input": {"steps": 3, "delay_s": 0.6}}).json()
    body = wait_for(client, f"/v2/demo/status/{job['id']}",
                    lambda b: b["status"] == "IN_PROGRESS" and b.get("output"))
    assert body["output"]["of"] == 3 and 1 <= body["output"]["step"] <= 3
    final = wait_for(client, f"/v2/demo/status/{job['id']}", lambda b: b["status"] in TERMINAL)
    assert final["output"]["steps"] == 3  # the result replaced the progress


def test_runsync_returns_the_full_status_object(client: httpx.Client) -> None:
    r = client.post("/v2/ipa-generation/runsync",
                    json={"input": {"text": "hello world", "language": "en-us"}})
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "COMPLETED" and body["id"].startswith("sync-")
    assert [w["word"] for w in body["output"]["words"]] == ["hello", "world"]
    assert body["output"]["ipa"].startswith("/h//")
    assert {"delayTime", "executionTime", "retries"} <= set(body)


def test_runsync_wait_returns_the_running_job_for_polling(client: httpx.Client) -> None:
    started = time.monotonic()
    r = client.post("/v2/demo/runsync?wait=1000", json={"input": {"delay_s": 3}})
    elapsed = time.monotonic() - started
    body = r.json()
    assert r.status_code == 200 and set(body) == {"id", "status"}
    assert body["status"] in {"IN_QUEUE", "IN_PROGRESS"}
    assert 0.9 <= elapsed < 2.5  # waited the clamped 1000 ms, not the 3 s of work
    final = wait_for(client, f"/v2/demo/status/{body['id']}", lambda b: b["status"] in TERMINAL)
    assert final["status"] == "COMPLETED"


def test_runsync_wait_is_clamped_to_at_least_one_second(client: httpx.Client) -> None:
    started = time.monotonic()
    body = client.post("/v2/demo/runsync?wait=1", json={"input": {"delay_s": 2}}).json()
    assert time.monotonic() - started >= 0.95
    assert body["status"] in {"IN_QUEUE", "IN_PROGRESS"}


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_status_sync_long_polls_until_terminal(client: httpx.Client, method: str) -> None:
    job = client.post("/v2/demo/run", json={"input": {"delay_s": 1}}).json()
    started = time.monotonic()
    body = client.request(method, f"/v2/demo/status-sync/{job['id']}?wait=20000").json()
    assert body["status"] == "COMPLETED"
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_status_accepts_get_and_post(client: httpx.Client, method: str) -> None:
    job = client.post("/v2/demo/run", json={"input": {}}).json()
    r = client.request(method, f"/v2/demo/status/{job['id']}")
    assert r.status_code == 200 and r.json()["id"] == job["id"]


@pytest.mark.parametrize("endpoint", ["stream", "astream"])
def test_stream_is_drained_on_read_and_aggregated(client: httpx.Client, endpoint: str) -> None:
    job = client.post(f"/v2/{endpoint}/run", json={"input": {"chunks": 4, "delay_s": 0.2}}).json()
    seen: list = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        body = client.post(f"/v2/{endpoint}/stream/{job['id']}?wait=500").json()
        seen += [c["output"] for c in body["stream"]]
        if body["status"] in TERMINAL and not body["stream"]:
            break
    assert len(seen) == 4, seen  # each chunk exactly once
    again = client.get(f"/v2/{endpoint}/stream/{job['id']}").json()
    assert again == {"status": "COMPLETED", "stream": []}
    final = client.get(f"/v2/{endpoint}/status/{job['id']}").json()
    assert final["output"] == seen  # aggregate_stream: the final output is every chunk


def test_cancel_interrupts_running_work(client: httpx.Client) -> None:
    job = client.post("/v2/demo/run", json={"input": {"delay_s": 4}}).json()
    wait_for(client, f"/v2/demo/status/{job['id']}", lambda b: b["status"] == "IN_PROGRESS")
    r = client.post(f"/v2/demo/cancel/{job['id']}")
    assert r.status_code == 200 and r.json() == {"id": job["id"], "status": "CANCELLED"}
    time.sleep(5)
    assert not finished(job["id"]), "the cancelled handler ran to its end"
    assert client.get(f"/v2/demo/status/{job['id']}").json()["status"] == "CANCELLED"
    health = client.get("/v2/demo/health").json()
    assert health["workers"]["running"] == 0


def test_cancel_a_queued_job_never_runs_it(client: httpx.Client, serial: str) -> None:
    blocker = client.post(f"{serial}/run", json={"input": {"delay_s": 3}}).json()
    queued = client.post(f"{serial}/run", json={"input": {}}).json()
    r = client.post(f"{serial}/cancel/{queued['id']}", json={"any": "body"})
    assert r.json()["status"] == "CANCELLED"
    wait_for(client, f"{serial}/status/{blocker['id']}", lambda b: b["status"] in TERMINAL)
    time.sleep(0.5)
    assert finished(blocker["id"]) and not finished(queued["id"])
    assert client.get(f"{serial}/status/{queued['id']}").json()["status"] == "CANCELLED"


def test_retry_requeues_failed_jobs_only(client: httpx.Client) -> None:
    job = client.post("/v2/demo/run", json={"input": {"fail": "boom"}}).json()
    failed = wait_for(client, f"/v2/demo/status/{job['id']}", lambda b: b["status"] in TERMINAL)
    assert failed["status"] == "FAILED" and failed["error"] == "boom"
    r = client.post(f"/v2/demo/retry/{job['id']}")
    assert r.status_code == 200 and r.json() == {"id": job["id"], "status": "IN_QUEUE"}
    again = wait_for(client, f"/v2/demo/status/{job['id']}",
                     lambda b: b["status"] in TERMINAL and b["retries"] == 1)
    assert again["status"] == "FAILED"

    ok = client.post("/v2/demo/runsync", json={"input": {}}).json()
    r = client.post(f"/v2/demo/retry/{ok['id']}")
    assert r.status_code == 400 and "only FAILED and TIMED_OUT" in r.json()["error"]


def test_raised_exception_fails_the_job_with_its_message(client: httpx.Client) -> None:
    body = client.post("/v2/demo/runsync", json={"input": {"raise": "kaput"}}).json()
    assert body["status"] == "FAILED" and body["error"] == "RuntimeError: kaput"


def test_purge_queue_removes_queued_jobs_only(client: httpx.Client, serial: str) -> None:
    running = client.post(f"{serial}/run", json={"input": {"delay_s": 2}}).json()
    wait_for(client, f"{serial}/status/{running['id']}", lambda b: b["status"] == "IN_PROGRESS")
    queued = [client.post(f"{serial}/run", json={"input": {}}).json() for _ in range(3)]
    r = client.post(f"{serial}/purge-queue")
    assert r.status_code == 200 and r.json() == {"removed": 3, "status": "completed"}
    for job in queued:
        assert client.get(f"{serial}/status/{job['id']}").status_code == 404
    done = wait_for(client, f"{serial}/status/{running['id']}", lambda b: b["status"] in TERMINAL)
    assert done["status"] == "COMPLETED"


def test_queue_full_is_429(client: httpx.Client, serial: str) -> None:
    client.post(f"{serial}/run", json={"input": {"delay_s": 3}})
    time.sleep(0.5)
    codes = [client.post(f"{serial}/run", json={"input": {}}).status_code for _ in range(7)]
    assert codes.count(200) == 5 and codes[5:] == [429, 429]
    body = client.post(f"{serial}/run", json={"input": {}}).json()
    assert "queued jobs" in body["error"]
    assert client.get(f"{serial}/health").json()["jobs"]["inQueue"] == 5


def test_low_priority_runs_behind_normal_jobs(client: httpx.Client, serial: str) -> None:
    blocker = client.post(f"{serial}/run", json={"input": {"delay_s": 1.5}}).json()
    wait_for(client, f"{serial}/status/{blocker['id']}", lambda b: b["status"] == "IN_PROGRESS")
    low = client.post(f"{serial}/run", json={"input": {}, "policy": {"lowPriority": True}}).json()
    normal = client.post(f"{serial}/run", json={"input": {}}).json()
    done = {j["id"]: wait_for(client, f"{serial}/status/{j['id']}",
                              lambda b: b["status"] in TERMINAL) for j in (low, normal)}
    # delayTime is measured from each job's own submission, low was submitted first.
    low_start = done[low["id"]]["delayTime"]
    normal_start = done[normal["id"]]["delayTime"]
    assert normal_start < low_start


def test_health_counts_jobs_and_workers(client: httpx.Client) -> None:
    before = client.get("/v2/demo/health").json()
    client.post("/v2/demo/runsync", json={"input": {}})
    client.post("/v2/demo/runsync", json={"input": {"fail": "x"}})
    after = client.get("/v2/demo/health").json()
    assert set(after["jobs"]) == {"completed", "failed", "inProgress", "inQueue", "retried"}
    assert set(after["workers"]) == {"idle", "running", "initializing", "ready", "throttled",
                                     "unhealthy"}
    assert all(isinstance(v, int) for part in after.values() for v in part.values())
    assert after["jobs"]["completed"] == before["jobs"]["completed"] + 1
    assert after["jobs"]["failed"] == before["jobs"]["failed"] + 1


def test_execution_timeout_ends_timed_out_and_interrupts(client: httpx.Client) -> None:
    job = client.post("/v2/demo/run", json={"input": {"delay_s": 9},
                                            "policy": {"executionTimeout": 5000}}).json()
    body = wait_for(client, f"/v2/demo/status/{job['id']}", lambda b: b["status"] in TERMINAL)
    assert body["status"] == "TIMED_OUT"
    assert "executionTimeout of 5000 ms" in body["error"]
    assert 5000 <= body["executionTime"] < 8000
    time.sleep(4.5)
    assert not finished(job["id"])
    r = client.post(f"/v2/demo/retry/{job['id']}")
    assert r.json()["status"] == "IN_QUEUE"  # TIMED_OUT jobs can be retried
    client.post(f"/v2/demo/cancel/{job['id']}")


def test_ttl_removes_a_job_that_never_ran(client: httpx.Client, serial: str) -> None:
    blocker = client.post(f"{serial}/run", json={"input": {"delay_s": 12}}).json()
    job = client.post(f"{serial}/run", json={"input": {}, "policy": {"ttl": 10_000}}).json()
    assert client.get(f"{serial}/status/{job['id']}").json()["status"] == "IN_QUEUE"
    time.sleep(10.5)
    r = client.get(f"{serial}/status/{job['id']}")
    assert r.status_code == 404 and "expired" in r.json()["error"]
    client.post(f"{serial}/cancel/{blocker['id']}")


def test_status_ttl_param_shortens_retention(client: httpx.Client) -> None:
    # this app's policy.ttl_min_ms is 1000; the job would be kept 3 s otherwise
    job = client.post("/v2/demo/runsync", json={"input": {}}).json()
    assert client.get(f"/v2/demo/status/{job['id']}?ttl=1000").status_code == 200
    time.sleep(1.3)
    assert client.get(f"/v2/demo/status/{job['id']}").status_code == 404


def test_results_are_kept_for_the_configured_retention(client: httpx.Client) -> None:
    # This app keeps /runsync results 3 s and /run results 120 s.
    sync_job = client.post("/v2/demo/runsync", json={"input": {}}).json()
    run_job = client.post("/v2/demo/run", json={"input": {}}).json()
    wait_for(client, f"/v2/demo/status/{run_job['id']}", lambda b: b["status"] in TERMINAL)
    time.sleep(3.5)
    assert client.get(f"/v2/demo/status/{sync_job['id']}").status_code == 404
    assert client.get(f"/v2/demo/status/{run_job['id']}").status_code == 200


def test_openapi_docs_are_served(client: httpx.Client) -> None:
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert "/v2/{endpoint_id}/run" in paths and "/v2/{endpoint_id}/purge-queue" in paths


def test_dead_letter_lists_failed_jobs_newest_first(client: httpx.Client) -> None:
    first = client.post("/v2/demo/runsync", json={"input": {"fail": "first"}}).json()
    second = client.post("/v2/demo/runsync", json={"input": {"fail": "second"}}).json()
    ok = client.post("/v2/demo/runsync", json={"input": {}}).json()
    listed = client.get("/v2/demo/dead-letter?limit=50").json()
    ids = [j["id"] for j in listed]
    assert ids.index(second["id"]) < ids.index(first["id"])
    assert ok["id"] not in ids and all(j["status"] == "FAILED" for j in listed)


def test_jobs_are_listed_newest_first_a_page_at_a_time(client: httpx.Client) -> None:
    since = int(time.time() * 1000)
    ids = [client.post("/v2/demo/run", json={"input": {"echo": i}}).json()["id"]
           for i in range(5)]
    for job_id in ids:
        wait_for(client, f"/v2/demo/status/{job_id}", lambda b: b["status"] in TERMINAL)
    failed = client.post("/v2/demo/runsync", json={"input": {"fail": "listed"}}).json()["id"]
    seen, cursor = [], None
    while True:
        params = {"since": since, "limit": 2} | ({"cursor": cursor} if cursor else {})
        page = client.get("/v2/demo/jobs", params=params).json()
        seen += page["jobs"]
        cursor = page.get("next")
        if cursor is None:
            break
    assert [j["id"] for j in seen] == [failed, *reversed(ids)]
    assert {j["endpointId"] for j in seen} == {"demo"}
    assert all(j["status"] == "COMPLETED" and "output" in j for j in seen[1:])
    only_failed = client.get("/v2/demo/jobs", params={"since": since, "status": "FAILED"})
    assert [j["id"] for j in only_failed.json()["jobs"]] == [failed]
    everywhere = client.get("/v2/jobs", params={"since": since, "limit": 1000}).json()
    assert set(ids) <= {j["id"] for j in everywhere["jobs"]}


@pytest.mark.parametrize(("query", "words"), [("cursor=!!", "cursor"), ("limit=0", "limit"),
                                              ("status=DONE", "status"),
                                              ("since=" + "9" * 30, "since")])
def test_bad_listing_queries_are_400(client: httpx.Client, query: str, words: str) -> None:
    r = client.get(f"/v2/demo/jobs?{query}")
    assert r.status_code == 400 and words in r.json()["error"], r.text
