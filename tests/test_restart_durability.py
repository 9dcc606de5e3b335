"""A job accepted with 200 survives `serve shutdown`, the Ray cluster going away, and a
new `serve run`, then completes. A job running at shutdown is handed back to the queue
at once, so with a 30 s lease it runs again within 5 s of the next start."""

from __future__ import annotations

import shutil
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.local_cluster import DEMO, Cluster, wait_until


@pytest.fixture()
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    args = {
        "jobs": {"store_url": f"sqlite:///{tmp_path}/jobs.sqlite3", "lease_s": 30,
                 "sweep_interval_s": 0.5},
        "endpoints": {},
        "handlers": {"serial": {"handler": DEMO, "endpoint": {"max_concurrency": 1}}},
    }
    # Shutdown must not simply wait for the running job to finish.
    c = Cluster(tmp_path, args, [{"name": "handler-serial", "graceful_shutdown_timeout_s": 1}])
    yield c
    c.kill_leftovers()
    shutil.rmtree(c.ray_tmp, ignore_errors=True)


def _stored_status(db: Path, job_id: str) -> tuple[str, str | None]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT status, lease FROM jobs WHERE id = ?", (job_id,)).fetchone()


def test_accepted_jobs_survive_a_full_restart(cluster: Cluster, tmp_path: Path) -> None:
    cluster.start("/v2/serial/health")
    url = f"{cluster.url}/v2/serial"
    running = httpx.post(f"{url}/run", json={"input": {"delay_s": 20, "echo": "running"}}).json()
    queued = httpx.post(f"{url}/run", json={"input": {"echo": "queued"}}).json()
    wait_until(lambda: httpx.get(f"{url}/status/{running['id']}").json()["status"]
               == "IN_PROGRESS", "job start")

    cluster.shutdown_serve()
    # Handed back by the stopping ingress, not left to its 30 s lease.
    assert _stored_status(tmp_path / "jobs.sqlite3", running["id"]) == ("IN_QUEUE", None)
    cluster.stop()
    cluster.start("/v2/serial/health")
    started = time.monotonic()
    wait_until(lambda: httpx.get(f"{url}/status/{running['id']}").json()["status"]
               == "IN_PROGRESS", "the handed-back job to run again", timeout_s=30)
    assert time.monotonic() - started < 5

    def final(job_id: str) -> dict:
        return wait_until(lambda: (b := httpx.get(f"{url}/status/{job_id}").json())["status"]
                          == "COMPLETED" and b, f"job {job_id} to complete", 120)

    first, second = final(running["id"]), final(queued["id"])
    assert first["output"]["echo"] == "running" and first["retries"] == 0  # handed back
    assert second["output"]["echo"] == "queued" and second["retries"] == 0
    cluster.shutdown_serve()
    cluster.stop()
