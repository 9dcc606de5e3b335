"""With API keys configured, a job belongs to the key that submitted it: another key
cannot see, change or count it; an admin key sees all. Rates are limited per key."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.spine.conftest import ADMIN_KEY, API_KEY, OTHER_KEY, wait_for

TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"}


def tenant(url: str, key: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60)


@pytest.fixture()
def alice(secured_url: str) -> Iterator[httpx.Client]:
    with tenant(secured_url, API_KEY) as c:
        yield c


@pytest.fixture()
def bob(secured_url: str) -> Iterator[httpx.Client]:
    with tenant(secured_url, OTHER_KEY) as c:
        yield c


@pytest.fixture()
def admin(secured_url: str) -> Iterator[httpx.Client]:
    with tenant(secured_url, ADMIN_KEY) as c:
        yield c


def test_another_key_gets_404_for_every_verb_on_a_job(alice: httpx.Client, bob: httpx.Client,
                                                      admin: httpx.Client) -> None:
    job = alice.post("/v2/demo/run", json={"input": {"delay_s": 2, "steps": 2}}).json()
    for method, path in (("GET", f"/status/{job['id']}"),
                         ("GET", f"/status/{job['id']}?ttl=10000"),
                         ("POST", f"/status-sync/{job['id']}?wait=0"),
                         ("GET", f"/stream/{job['id']}"),
                         ("POST", f"/cancel/{job['id']}"),
                         ("POST", f"/retry/{job['id']}"),
                         ("GET", f"/webhooks/{job['id']}")):
        r = bob.request(method, f"/v2/demo{path}")
        assert r.status_code == 404, (path, r.text)
        assert r.json()["error"].startswith(f"no job '{job['id']}'")  # as if it did not exist
    assert admin.get(f"/v2/demo/status/{job['id']}").status_code == 200
    done = wait_for(alice, f"/v2/demo/status/{job['id']}", lambda b: b["status"] in TERMINAL)
    assert done["status"] == "COMPLETED", "another key's cancel or ttl reached the job"


def test_dead_letters_health_and_purge_cover_the_callers_own_jobs(
        alice: httpx.Client, bob: httpx.Client, admin: httpx.Client) -> None:
    failed = alice.post("/v2/demo/runsync", json={"input": {"raise": "alice's secret"}}).json()
    assert failed["status"] == "FAILED"
    assert failed["id"] in [j["id"] for j in alice.get("/v2/demo/dead-letter").json()]
    assert failed["id"] in [j["id"] for j in admin.get("/v2/demo/dead-letter").json()]
    assert "alice's secret" not in bob.get("/v2/demo/dead-letter").text

    blocker = alice.post("/v2/serial/run", json={"input": {"delay_s": 3}}).json()
    queued = alice.post("/v2/serial/run", json={"input": {}}).json()
    wait_for(alice, f"/v2/serial/status/{blocker['id']}", lambda b: b["status"] == "IN_PROGRESS")
    assert bob.get("/v2/serial/health").json()["jobs"]["inQueue"] == 0
    assert alice.get("/v2/serial/health").json()["jobs"]["inQueue"] == 1
    assert admin.get("/v2/serial/health").json()["jobs"]["inProgress"] == 1
    assert bob.post("/v2/serial/purge-queue").json()["removed"] == 0
    assert alice.get(f"/v2/serial/status/{queued['id']}").json()["status"] == "IN_QUEUE"
    assert alice.post("/v2/serial/purge-queue").json()["removed"] == 1


@pytest.mark.parametrize("ttl", ["0", "9999", "1" * 30, "-1"])
def test_a_ttl_below_the_minimum_is_a_400_not_a_deletion(alice: httpx.Client, ttl: str) -> None:
    job = alice.post("/v2/demo/run", json={"input": {}}).json()
    r = alice.get(f"/v2/demo/status/{job['id']}?ttl={ttl}")
    assert r.status_code == 400 and "ttl" in r.json()["error"], r.text
    assert alice.get(f"/v2/demo/status/{job['id']}").status_code == 200


def test_rates_are_limited_per_key_with_retry_after(alice: httpx.Client,
                                                    bob: httpx.Client) -> None:
    # RunPod's default for /purge-queue: 2 requests per 10 s
    # (the key's earlier purges in this session count against it too)
    replies = [alice.post("/v2/demo/purge-queue") for _ in range(3)]
    assert {r.status_code for r in replies} <= {200, 429}
    limited = replies[-1]
    assert limited.status_code == 429 and "rate limit" in limited.json()["error"]
    assert 1 <= int(limited.headers["Retry-After"]) <= 10
    assert bob.post("/v2/demo/purge-queue").status_code == 200  # another key's own budget
    assert alice.get("/v2/demo/health").status_code == 200  # another route class


def test_job_listings_cover_the_callers_own_jobs(alice: httpx.Client, bob: httpx.Client,
                                                 admin: httpx.Client) -> None:
    job = alice.post("/v2/demo/runsync", json={"input": {"echo": "mine"}}).json()
    for path in ("/v2/demo/jobs", "/v2/jobs"):
        assert job["id"] in [j["id"] for j in alice.get(path).json()["jobs"]]
        assert job["id"] in [j["id"] for j in admin.get(path).json()["jobs"]]
        assert job["id"] not in [j["id"] for j in bob.get(path).json()["jobs"]]
