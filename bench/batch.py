"""Batch jobs against `/run`, in one run on one Serve instance (the G2P endpoint
`ipa-generation`, SQLite store, `configs/serve.yaml`'s Serve switches):

  (a) accepting 5,000 inputs: one `POST /batch` holding them all + `POST .../finalize`,
      against 5,000 `POST /run` calls at concurrency 32 (each queue drained first);
  (b) interactive `/runsync` latency (p50, p95, concurrency 1) with no batch, and while a
      5,000-request batch runs on the same endpoint.

    python bench/batch.py [--inputs 5000] [--runsync 200] [--batch-share 0.25]

Targets (batch jobs issue): (a) the batch accepted >= 10x faster; (b) p50 and p95 during
the batch <= 1.5x those with none. The load generator shares the machine and runs at the
Ray workers' priority (bench/fair_load.py).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.facade_overhead import (  # noqa: E402
    TEXT,
    get,
    post,
    runsync,
    start_app,
    use_shipped_serve_settings,
)
from bench.fair_load import compete_fairly  # noqa: E402
from serve_app.jobs.settings import JobSettings  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

ENDPOINT = "/v2/ipa-generation"
RUN_CONCURRENCY = 32


async def accept_runs(c: aiohttp.ClientSession, n: int) -> float:
    """Seconds to have `n` /run calls accepted, `RUN_CONCURRENCY` at a time."""
    left = iter(range(n))

    async def worker() -> None:
        for _ in left:
            body = await post(c, f"{ENDPOINT}/run", {"input": TEXT})
            assert body["status"] == "IN_QUEUE", body

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(RUN_CONCURRENCY)))
    return time.perf_counter() - started


async def accept_batch(c: aiohttp.ClientSession, n: int) -> tuple[float, str]:
    """Seconds to create a batch of `n` inputs and finalize it; and its id."""
    started = time.perf_counter()
    created = await post(c, f"{ENDPOINT}/batch", [{"input": TEXT}] * n)
    finalized = await post(c, f"{ENDPOINT}/batch/{created['id']}/finalize", {})
    assert finalized["status"] == "FINALIZED" and finalized["requestTotal"] == n, finalized
    return time.perf_counter() - started, created["id"]


async def drained(c: aiohttp.ClientSession) -> None:
    """Wait until the endpoint has no job queued or running."""
    while True:
        jobs = (await get(c, f"{ENDPOINT}/health"))["jobs"]
        if jobs["inQueue"] + jobs["inProgress"] == 0:
            return
        await asyncio.sleep(0.5)


async def runsync_latencies(c: aiohttp.ClientSession, n: int) -> list[float]:
    """`n` /runsync calls one after another; their latencies in ms, sorted."""
    latencies = []
    for _ in range(n):
        started = time.perf_counter()
        await runsync(c)
        latencies.append((time.perf_counter() - started) * 1000)
    return sorted(latencies)


def p(latencies: list[float], q: float) -> float:
    return latencies[min(len(latencies) - 1, int(len(latencies) * q))]


async def bench(base: str, inputs: int, calls: int, share: float, concurrency: int) -> None:
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(base_url=base, timeout=timeout,
                                     connector=aiohttp.TCPConnector(limit=64)) as c:
        for _ in range(20):  # warm connections and the model
            await runsync(c)
        quiet = await runsync_latencies(c, calls)

        run_s = await accept_runs(c, inputs)
        await drained(c)
        batch_s, batch_id = await accept_batch(c, inputs)
        await asyncio.sleep(1.0)  # the batch's requests under way
        busy = await runsync_latencies(c, calls)
        during = await get(c, f"{ENDPOINT}/batch/{batch_id}")
        await post(c, f"{ENDPOINT}/batch/{batch_id}/cancel", {})

    slots = JobSettings(batch_share=share).batch_slots(concurrency)
    print(f"cores: {os.cpu_count()}; store: SQLite; endpoint: ipa-generation (max_concurrency "
          f"{concurrency}, batch_share {share}: {slots} slot(s) for batch requests)")
    print(f"\n(a) accepting {inputs:,} inputs")
    print(f"{'how':<42}{'seconds':>10}{'inputs/s':>12}")
    print(f"{f'{inputs:,} x POST /run, c={RUN_CONCURRENCY}':<42}{run_s:>10.2f}"
          f"{inputs / run_s:>12.0f}")
    print(f"{'one POST /batch + POST /finalize':<42}{batch_s:>10.2f}{inputs / batch_s:>12.0f}")
    print(f"{'ratio (target >= 10x)':<42}{run_s / batch_s:>10.1f}x")

    print(f"\n(b) /runsync latency, c=1, {calls} calls each")
    print(f"{'when':<42}{'p50 ms':>10}{'p95 ms':>10}")
    print(f"{'no batch':<42}{statistics.median(quiet):>10.1f}{p(quiet, 0.95):>10.1f}")
    print(f"{'during a 5,000-request batch':<42}{statistics.median(busy):>10.1f}"
          f"{p(busy, 0.95):>10.1f}")
    print(f"{'ratio (target <= 1.5x)':<42}"
          f"{statistics.median(busy) / statistics.median(quiet):>9.2f}x"
          f"{p(busy, 0.95) / p(quiet, 0.95):>9.2f}x")
    progress = during["requestCompleted"] + during["requestFailed"]
    print(f"the batch had {progress:,} of {during['requestTotal']:,} requests done when the "
          f"measurement ended ({'still running' if during['endedAt'] is None else 'ENDED'})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=5_000)
    parser.add_argument("--runsync", type=int, default=200, help="/runsync calls per phase")
    parser.add_argument("--batch-share", type=float, default=JobSettings().batch_share,
                        help="jobs.batch_share: the endpoint's slots batch requests may hold "
                        "(default: the shipped %(default)s)")
    opts = parser.parse_args()
    use_shipped_serve_settings()  # as `serve run configs/serve.yaml` runs
    # start_app's job settings, with the batch share; the limiter's limits raised as there;
    # the endpoint as configs/serve.yaml declares it
    store = Path(tempfile.mkdtemp()) / "bench.sqlite3"
    limits = {c: 10**7 for c in ("run", "runsync", "status", "direct", "other")}
    shipped = yaml.safe_load((REPO / "configs" / "serve.yaml").read_text())
    endpoint = shipped["applications"][0]["args"]["endpoints"]["ipa-generation"]
    base = start_app({"jobs": {"store_url": f"sqlite:///{store}", "rate_limits": limits,
                               "batch_share": opts.batch_share},
                      "endpoints": {"ipa-generation": endpoint}})
    compete_fairly()  # after Ray's own processes have started at normal priority
    try:
        asyncio.run(bench(base, opts.inputs, opts.runsync, opts.batch_share,
                          endpoint["max_concurrency"]))
    finally:
        import ray
        from ray import serve

        serve.shutdown()
        ray.shutdown()


if __name__ == "__main__":
    main()
