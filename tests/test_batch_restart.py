"""A 5,000-request batch survives a full restart of the application half way (`serve
shutdown`, the Ray cluster stopped, a new `serve run` on the same SQLite store) and runs
to its end with every request accounted for."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.local_cluster import DEMO, Cluster, wait_until

N = 5_000
#: every 50th request fails (the demo worker returns an error): 100 in all
FAILING = range(0, N, 50)
#: the last requests take a while each: at least 2,000 x 0.4 s / 32 slots = 25 s of work
#: remain when the restart begins, so the batch cannot end before it however fast the
#: first half ran
SLOW = range(3 * N // 5, N)


@pytest.fixture()
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    args = {
        "jobs": {"store_url": f"sqlite:///{tmp_path}/jobs.sqlite3", "sweep_interval_s": 0.5,
                 "batch_share": 1.0},
        "endpoints": {},
        "handlers": {"demo": {"handler": DEMO, "endpoint": {"max_concurrency": 32}}},
    }
    c = Cluster(tmp_path, args)
    yield c
    c.kill_leftovers()
    shutil.rmtree(c.ray_tmp, ignore_errors=True)


def test_a_5000_request_batch_survives_a_restart_half_way(cluster: Cluster) -> None:
    cluster.start("/v2/demo/health")
    url = f"{cluster.url}/v2/demo/batch"
    inputs = [{"input": {"fail": "bad"} if i in FAILING else
               {"echo": i, "delay_s": 0.4} if i in SLOW else {"echo": i}} for i in range(N)]
    batch_id = httpx.post(url, json=inputs, timeout=60).json()["id"]
    assert httpx.post(f"{url}/{batch_id}/finalize", timeout=60).json()["status"] == "FINALIZED"

    def summary() -> dict:
        return httpx.get(f"{url}/{batch_id}", timeout=10).json()

    before = wait_until(lambda: (b := summary())["requestCompleted"] >= N // 2 and b,
                        "half the batch to run", timeout_s=120)
    cluster.shutdown_serve()
    cluster.stop()
    cluster.start("/v2/demo/health")
    after = summary()
    assert after["status"] == "FINALIZED" and after["requestTotal"] == N
    assert after["requestCompleted"] >= before["requestCompleted"]  # nothing done was lost
    assert after["requestCompleted"] + after["requestFailed"] < N, "ended before the restart"

    final = wait_until(lambda: (b := summary())["endedAt"] and b, "the batch to end",
                       timeout_s=180)
    assert final["status"] == "FINALIZED" and final["requestInProgress"] == 0
    assert final["requestCompleted"] + final["requestFailed"] == final["requestTotal"] == N
    assert final["requestFailed"] == len(FAILING)
    # Every request is there, once, with its own result.
    seen: dict[str, dict] = {}
    for offset in range(0, N, 1_000):
        page = httpx.get(f"{url}/{batch_id}/requests?offset={offset}&limit=1000",
                         timeout=30).json()
        seen |= {r["id"]: r for r in page["requests"]}
    assert len(seen) == N
    ordered = [seen[k] for k in sorted(seen)]
    assert all(r["status"] == "COMPLETED" and r["output"]["echo"] == i
               for i, r in enumerate(ordered) if i not in FAILING)
    assert all(ordered[i]["status"] == "FAILED" for i in FAILING)
    cluster.shutdown_serve()
    cluster.stop()
