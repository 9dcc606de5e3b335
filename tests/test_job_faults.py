"""Fault tests on a real Ray cluster with real signals: a model replica SIGKILLed under
20 running jobs, and the whole application SIGKILLed with 50 webhooks pending against a
receiver that is down."""

from __future__ import annotations

import base64
import os
import shutil
import signal
from pathlib import Path

import httpx
from standardwebhooks.webhooks import Webhook

from tests.clients import Receiver
from tests.conftest import free_port
from tests.local_cluster import DEMO, Cluster, wait_until

SECRET = "whsec_" + base64.b64encode(b"fault-test secret, 32 bytes long").decode()


def _statuses(url: str, ids: list[str]) -> dict[str, dict]:
    return {i: httpx.get(f"{url}/status/{i}", timeout=10).json() for i in ids}


def test_sigkill_of_the_model_replica_loses_no_job(tmp_path: Path) -> None:
    args = {
        # A 60 s lease: the jobs come back through the lost-worker path, not lease expiry.
        "jobs": {"store_url": f"sqlite:///{tmp_path}/jobs.sqlite3", "lease_s": 60},
        "endpoints": {},
        "handlers": {"demo": {"handler": DEMO, "endpoint": {"max_concurrency": 20}}},
    }
    cluster = Cluster(tmp_path, args, [{"name": "handler-demo", "max_ongoing_requests": 32}])
    try:
        cluster.start("/v2/demo/health")
        url = f"{cluster.url}/v2/demo"
        # 15 s a job: long enough that all 20 are seen running on a slow, shared machine
        ids = [httpx.post(f"{url}/run", json={"input": {"delay_s": 15, "echo": i}}).json()["id"]
               for i in range(20)]
        # Every job has reported progress from inside the replica: all 20 run on it.
        wait_until(lambda: all(s.get("output") == {"step": 1, "of": 1}
                               for s in _statuses(url, ids).values()), "20 jobs running", 120)
        (pid,) = cluster.replica_pids("handler-demo")
        os.kill(pid, signal.SIGKILL)
        final = wait_until(lambda: (s := _statuses(url, ids)) and all(
            b["status"] in ("COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT")
            for b in s.values()) and s, "every job to end", 180)
        assert sorted(b["status"] for b in final.values()) == ["COMPLETED"] * 20, final
        assert sorted(b["output"]["echo"] for b in final.values()) == list(range(20))
        assert all(b["retries"] >= 1 for b in final.values())  # lost once, run again
        assert cluster.replica_pids("handler-demo") != [pid]
    finally:
        cluster.kill_leftovers()
        shutil.rmtree(cluster.ray_tmp, ignore_errors=True)


def test_webhooks_pending_at_a_crash_arrive_after_restart(tmp_path: Path) -> None:
    receiver_port = free_port()  # nothing listens there yet: the receiver is down
    args = {
        "jobs": {"store_url": f"sqlite:///{tmp_path}/jobs.sqlite3", "webhook_secret": SECRET,
                 "webhook_attempts": 100, "webhook_retry_delay_s": 0.5,
                 "webhook_retry_max_delay_s": 2, "webhook_timeout_s": 2},
        "outbound": {"allow_networks": ["127.0.0.1/32"]},  # the receiver is local
        "endpoints": {},
        "handlers": {"demo": {"handler": DEMO, "endpoint": {"max_concurrency": 16}}},
    }
    cluster = Cluster(tmp_path, args)
    receiver: Receiver | None = None
    try:
        cluster.start("/v2/demo/health")
        url = f"{cluster.url}/v2/demo"
        hook = f"http://127.0.0.1:{receiver_port}/ok/hook"
        ids = [httpx.post(f"{url}/run", json={"input": {"echo": i}, "webhook": hook}).json()["id"]
               for i in range(50)]

        def all_tried() -> bool:
            for job_id in ids:
                (delivery,) = httpx.get(f"{url}/webhooks/{job_id}", timeout=10).json()
                if delivery["state"] != "PENDING" or not delivery["attempts"]:
                    return False
            return True

        wait_until(all_tried, "a failed attempt at every webhook", 120)
        assert all(s["status"] == "COMPLETED" for s in _statuses(url, ids).values())
        cluster.stop(signal.SIGKILL)  # the whole application, with 50 webhooks owed

        receiver = Receiver(receiver_port)
        cluster.start("/v2/demo/health")
        wait_until(lambda: len({b["id"] for b in receiver.received("/ok/hook")}) == 50,
                   "every webhook to arrive", 120)
        assert {b["id"] for b in receiver.received("/ok/hook")} == set(ids)
        for _, raw, headers in receiver.raw:
            assert Webhook(SECRET).verify(raw, headers)["status"] == "COMPLETED"
        (delivery,) = httpx.get(f"{url}/webhooks/{ids[0]}").json()
        assert delivery["state"] == "DELIVERED" and delivery["attempts"][-1]["statusCode"] == 200
    finally:
        cluster.kill_leftovers()
        if receiver is not None:
            receiver.close()
        shutil.rmtree(cluster.ray_tmp, ignore_errors=True)
