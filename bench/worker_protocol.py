"""Jobs/s through one external RunPod worker (the SDK's pull protocol over HTTP) against
the same trivial handler in a Ray replica, in one run.

    python bench/worker_protocol.py [--jobs 400] [--concurrency 16]

Both endpoints get the same `/runsync` load (closed loop, `--concurrency` callers). The
worker is `bench/echo_worker.py` run as `runpod.serverless.start` with the environment
`serve_app.worker_env` prints, once taking one job at a time (the SDK's default) and once
with a concurrency_modifier of 8 (the SDK then takes jobs with job-take-batch); the Ray
endpoint runs the same module as a handler deployment (max_concurrency 8). A last row
drives the same routes from a bare client loop (take-batch of 8, post each result), which
shows what the server sustains without the SDK's own pacing: the SDK sleeps 1 s whenever
its slots are full (`rp_scale.JobScaler.get_jobs`), so one SDK worker runs at most about
`concurrency` trivial jobs a second, here as on RunPod.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from serve_app.worker_env import worker_environment  # noqa: E402

KEY = "bench-worker-4f8a1c9e7d20"


def start_app() -> str:
    import ray
    from ray import serve

    from serve_app.app import build_app
    from tests.conftest import free_port

    ray.init(address="local", include_dashboard=False, log_to_driver=False)
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    store = Path(tempfile.mkdtemp()) / "bench.sqlite3"
    limits = {c: 10**7 for c in ("run", "runsync", "status", "direct", "other")}
    serve.run(build_app({
        "jobs": {"store_url": f"sqlite:///{store}", "rate_limits": limits},
        "endpoints": {},
        "handlers": {"in-ray": {"handler": "bench.echo_worker",
                                "endpoint": {"max_concurrency": 8}}},
        "workers": {"external": {"worker_keys": [KEY]}},
    }), name="bench", route_prefix="/")
    return f"http://127.0.0.1:{port}"


def start_worker(base: str, concurrency: int) -> subprocess.Popen:
    env = worker_environment("external", base, KEY, lease_s=30)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "RUNPOD_"))}
    worker = subprocess.Popen([sys.executable, str(REPO / "bench" / "echo_worker.py")],
                              env=clean | env | {"BENCH_CONCURRENCY": str(concurrency)},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # ready once /health counts it
        workers = httpx.get(f"{base}/v2/external/health", timeout=30).json()["workers"]
        if workers["idle"] + workers["running"] >= 1:
            return worker
        time.sleep(0.2)
    raise SystemExit("the worker did not join within 60 s")


def stop_worker(worker: subprocess.Popen) -> None:
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait()


async def jobs_per_s(base: str, endpoint: str, jobs: int, concurrency: int) -> float:
    queue: asyncio.Queue = asyncio.Queue()
    for i in range(jobs):
        queue.put_nowait(i)
    async with aiohttp.ClientSession(base_url=base,
                                     timeout=aiohttp.ClientTimeout(total=300)) as c:
        async def call(i: int) -> None:
            async with c.post(f"/v2/{endpoint}/runsync", json={"input": {"i": i}}) as r:
                body = await r.json()
                assert body["status"] == "COMPLETED" and body["output"]["echo"]["i"] == i, body

        for i in range(4):  # warm up
            await call(-1 - i)

        async def caller() -> None:
            while not queue.empty():
                await call(queue.get_nowait())

        started = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(concurrency)))
        return jobs / (time.perf_counter() - started)


async def protocol_worker(base: str, batch_size: int, stop: asyncio.Event) -> None:
    """A worker speaking the same routes with no SDK around them (no pause while full):
    what the server's side of the protocol sustains."""
    env = worker_environment("external", base, KEY, lease_s=30, worker_id="raw-worker")
    take = env["RUNPOD_WEBHOOK_GET_JOB"].replace("$ID", "raw-worker").replace(
        "/job-take/", "/job-take-batch/") + f"&batch_size={batch_size}&job_in_progress=0"
    done = env["RUNPOD_WEBHOOK_POST_OUTPUT"].replace("$RUNPOD_POD_ID", "raw-worker")
    async with aiohttp.ClientSession(headers={"Authorization": KEY}) as c:
        while not stop.is_set():
            async with c.get(take) as r:
                jobs = await r.json() if r.status == 200 else []

            async def finish(job: dict) -> None:
                url = done.replace("$ID", job["id"]) + "&isStream=false"
                async with c.post(url, data=json.dumps({"output": {"echo": job["input"]}})) as r:
                    assert r.status == 200, await r.text()

            await asyncio.gather(*(finish(job) for job in jobs))


async def with_protocol_worker(base: str, jobs: int, concurrency: int) -> float:
    stop = asyncio.Event()
    worker = asyncio.create_task(protocol_worker(base, 8, stop))
    try:
        return await jobs_per_s(base, "external", jobs, concurrency)
    finally:
        stop.set()
        await worker


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=16)
    opts = parser.parse_args()
    base = start_app()
    try:
        ray_rate = asyncio.run(jobs_per_s(base, "in-ray", opts.jobs, opts.concurrency))
        rows = [("Ray replica (RunpodHandler, 8 at once)", ray_rate)]
        for concurrency in (1, 8):
            worker = start_worker(base, concurrency)
            try:
                rate = asyncio.run(jobs_per_s(base, "external", opts.jobs, opts.concurrency))
            finally:
                stop_worker(worker)
            rows.append((f"one external worker, {concurrency} at once", rate))
        rate = asyncio.run(with_protocol_worker(base, opts.jobs, opts.concurrency))
        rows.append(("the protocol without the SDK, 8 at once", rate))
    finally:
        from ray import serve

        serve.shutdown()
    print(f"{opts.jobs} /runsync jobs at concurrency {opts.concurrency}, trivial handler")
    print(f"{'served by':44} {'jobs/s':>8} {'vs Ray':>7}")
    for name, rate in rows:
        print(f"{name:44} {rate:8.1f} {rate / ray_rate:6.2f}x")


if __name__ == "__main__":
    main()
