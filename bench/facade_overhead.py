"""What the RunPod job facade costs over calling the model directly.

Measures `ipa-generation` through (a) the direct route POST /ipa, (b) /runsync, and
(c) /run + polling /status, and (d) /run + one long-polled /status-sync, at concurrency
1 and 32, in one run on one Serve instance, and prints p50/p99 latency and throughput
as ratios of (a).

    python bench/facade_overhead.py [--haproxy] [--requests-c1 100] [--requests-c32 400]

Targets (issue 2): (b)/(c) p50 at c=1 <= 1.5x (a); throughput at c=32 >= 0.7x (a).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TEXT = {"text": "The quick brown fox jumps over the lazy dog", "language": "en-us"}
#: (c) polls like a considerate client: first after 5 ms, then backing off to 200 ms.
#: A fixed 5 ms poll at c=32 spends the ingress on IN_PROGRESS answers (measured: 0.45x).
POLL_FIRST_S, POLL_MAX_S = 0.005, 0.2


async def direct(c: httpx.AsyncClient) -> None:
    r = await c.post("/ipa", json=TEXT)
    assert r.status_code == 200, r.text


async def runsync(c: httpx.AsyncClient) -> None:
    r = await c.post("/v2/ipa-generation/runsync", json={"input": TEXT})
    assert r.json()["status"] == "COMPLETED", r.text


async def run_and_poll(c: httpx.AsyncClient) -> None:
    job = (await c.post("/v2/ipa-generation/run", json={"input": TEXT})).json()
    interval = POLL_FIRST_S
    while True:
        body = (await c.get(f"/v2/ipa-generation/status/{job['id']}")).json()
        if body["status"] == "COMPLETED":
            return
        assert body["status"] in {"IN_QUEUE", "IN_PROGRESS"}, body
        await asyncio.sleep(interval)
        interval = min(POLL_MAX_S, interval * 2)


async def run_and_long_poll(c: httpx.AsyncClient) -> None:
    job = (await c.post("/v2/ipa-generation/run", json={"input": TEXT})).json()
    body = (await c.get(f"/v2/ipa-generation/status-sync/{job['id']}?wait=60000")).json()
    assert body["status"] == "COMPLETED", body


async def measure(call: Callable[[httpx.AsyncClient], Awaitable[None]], base: str,
                  concurrency: int, total: int) -> tuple[float, float, float]:
    latencies: list[float] = []
    queue: asyncio.Queue = asyncio.Queue()
    for _ in range(total):
        queue.put_nowait(None)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as c:
        for _ in range(min(concurrency, 8)):  # warm connections and the model
            await call(c)

        async def worker() -> None:
            while not queue.empty():
                queue.get_nowait()
                t0 = time.perf_counter()
                await call(c)
                latencies.append(time.perf_counter() - t0)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return statistics.median(latencies) * 1000, p99 * 1000, total / wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--haproxy", action="store_true",
                        help="RAY_SERVE_ENABLE_HA_PROXY=1 (the README's recommended proxy)")
    parser.add_argument("--requests-c1", type=int, default=100)
    parser.add_argument("--requests-c32", type=int, default=400)
    opts = parser.parse_args()
    if opts.haproxy:
        os.environ["RAY_SERVE_ENABLE_HA_PROXY"] = "1"

    import ray
    from ray import serve

    from serve_app.app import build_app
    from tests.conftest import free_port

    ray.init(address="local", include_dashboard=False, log_to_driver=False)
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    store = Path(tempfile.mkdtemp()) / "bench.sqlite3"
    serve.run(build_app({"jobs": {"store_url": f"sqlite:///{store}"},
                         "endpoints": {"ipa-generation": {"route": "ipa",
                                                          "max_concurrency": 32}}}),
              name="bench", route_prefix="/")
    base = f"http://127.0.0.1:{port}"
    modes = {"(a) direct /ipa": direct, "(b) /runsync": runsync,
             "(c) /run + /status": run_and_poll,
             "(d) /run + status-sync": run_and_long_poll}
    print(f"proxy: {'HAProxy' if opts.haproxy else 'default'}; cores: {os.cpu_count()}")
    print(f"{'mode':<22}{'conc':>5}{'p50 ms':>9}{'p99 ms':>9}{'req/s':>8}"
          f"{'p50/(a)':>9}{'req/s/(a)':>11}")
    for concurrency, total in ((1, opts.requests_c1), (32, opts.requests_c32)):
        baseline: tuple[float, float, float] | None = None
        for name, call in modes.items():
            p50, p99, rps = asyncio.run(measure(call, base, concurrency, total))
            baseline = baseline or (p50, p99, rps)
            print(f"{name:<22}{concurrency:>5}{p50:>9.1f}{p99:>9.1f}{rps:>8.1f}"
                  f"{p50 / baseline[0]:>9.2f}{rps / baseline[2]:>11.2f}")
    serve.shutdown()
    ray.shutdown()


if __name__ == "__main__":
    main()
