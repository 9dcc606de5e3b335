"""What the RunPod job facade costs over calling the model directly.

Measures `ipa-generation` through (a) the direct route POST /ipa, (b) /runsync, and
(c) /run + polling /status, (c') the same with the first poll at the client's learned
job duration, and (d) /run + one long-polled /status-sync, at concurrency 1 and 32, in
one run on one Serve instance, and prints p50/p99 latency and throughput as ratios of
(a), with the polls (c) and (c') made per job; each figure is the median of
interleaved rounds. Then, at c=32, (e) /status of a finished job alone, which prices one
poll against one direct call, and (f) GET /endpoints, which touches no job or model:
the price of any request through Serve's HTTP path here. Every row also shows the CPU
time all processes (replicas, HAProxy, Ray, this load generator) spent per call: on a
machine this bench saturates, throughput ratios follow the CPU ratios.

    python bench/facade_overhead.py [--haproxy] [--rounds 3] [--requests-c1 100]
                                    [--requests-c32 400]

Targets (issue 2): (b)/(c) p50 at c=1 <= 1.5x (a); throughput at c=32 >= 0.7x (a).
The load generator shares the machine and runs at the Ray workers' priority
(bench/fair_load.py).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import aiohttp
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TEXT = {"text": "The quick brown fox jumps over the lazy dog", "language": "en-us"}
#: (c) polls like a considerate client: first 5 ms after /run (whose answer already said
#: IN_QUEUE), then doubling up to 200 ms. Polling right after /run as well added a poll a
#: job that never saw the job done (c=1: 1.73x instead of 1.44x); a fixed 5 ms poll at
#: c=32 spends the ingress on IN_PROGRESS answers (0.45x).
POLL_FIRST_S, POLL_MAX_S = 0.005, 0.2


async def post(c: aiohttp.ClientSession, path: str, body: dict) -> dict:
    async with c.post(path, json=body) as r:
        answer = await r.json()
        assert r.status == 200, answer
        return answer


async def get(c: aiohttp.ClientSession, path: str) -> dict:
    async with c.get(path) as r:
        answer = await r.json()
        assert r.status == 200, answer
        return answer


async def direct(c: aiohttp.ClientSession) -> None:
    await post(c, "/ipa", TEXT)


async def runsync(c: aiohttp.ClientSession) -> str:
    """(b); returns the finished job's id."""
    body = await post(c, "/v2/ipa-generation/runsync", {"input": TEXT})
    assert body["status"] == "COMPLETED", body
    return body["id"]


def poll_waits(first: float | None) -> Iterator[float]:
    """Seconds to wait before each poll: `first` if given, then 5 ms doubling to 200 ms."""
    if first is not None:
        yield first
    wait = POLL_FIRST_S
    while True:
        yield wait
        wait = min(POLL_MAX_S, wait * 2)


class RunAndPoll:
    """(c), counting the /status requests each job took.

    With `learn`, the client waits before its first poll for the median time its recent
    jobs took on the server (`delayTime` + `executionTime` of their final status), as a
    client that knows its workload would; the doubling then starts again from 5 ms.
    """

    def __init__(self, learn: bool = False) -> None:
        self.polls: list[int] = []
        self.learn = learn
        self.recent_s: deque[float] = deque(maxlen=32)

    async def __call__(self, c: aiohttp.ClientSession) -> None:
        job = await post(c, "/v2/ipa-generation/run", {"input": TEXT})
        learned = statistics.median(self.recent_s) if self.learn and self.recent_s else None
        polls = 0
        for wait in poll_waits(learned):
            await asyncio.sleep(wait)
            body = await get(c, f"/v2/ipa-generation/status/{job['id']}")
            polls += 1
            if body["status"] == "COMPLETED":
                self.polls.append(polls)
                self.recent_s.append((body["delayTime"] + body["executionTime"]) / 1000)
                return
            assert body["status"] in {"IN_QUEUE", "IN_PROGRESS"}, body


async def run_and_long_poll(c: aiohttp.ClientSession) -> None:
    job = await post(c, "/v2/ipa-generation/run", {"input": TEXT})
    body = await get(c, f"/v2/ipa-generation/status-sync/{job['id']}?wait=60000")
    assert body["status"] == "COMPLETED", body


def cpu_seconds() -> float:
    """CPU time used so far by every process we can see: Ray's, HAProxy and our own."""
    total = 0.0
    for process in psutil.process_iter(["cpu_times"]):
        times = process.info["cpu_times"]
        if times is not None:
            total += times.user + times.system
    return total


Figures = tuple[float, float, float, float]  # p50 ms, p99 ms, req/s, CPU ms per call


def medians(runs: list[Figures]) -> Figures:
    """Per column, the median over rounds."""
    return tuple(statistics.median(column) for column in zip(*runs, strict=True))


async def run_once(base: str) -> str:
    """A finished job's id."""
    async with aiohttp.ClientSession(base_url=base) as c:
        return await runsync(c)


async def measure(call: Callable[[aiohttp.ClientSession], Awaitable[object]], base: str,
                  concurrency: int, total: int) -> Figures:
    latencies: list[float] = []
    queue: asyncio.Queue = asyncio.Queue()
    for _ in range(total):
        queue.put_nowait(None)
    async with aiohttp.ClientSession(base_url=base, timeout=aiohttp.ClientTimeout(total=120),
                                     connector=aiohttp.TCPConnector(limit=concurrency)) as c:
        for _ in range(min(concurrency, 8)):  # warm connections and the model
            await call(c)

        async def worker() -> None:
            while not queue.empty():
                queue.get_nowait()
                t0 = time.perf_counter()
                await call(c)
                latencies.append(time.perf_counter() - t0)

        cpu, started = cpu_seconds(), time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return statistics.median(latencies) * 1000, p99 * 1000, total / wall, cpu / total * 1000


def use_shipped_serve_settings() -> dict[str, str]:
    """Set, for the Ray this process starts, the Serve switches `configs/serve.yaml` gives
    its controller (`controller_options.runtime_env.env_vars`: the proxy and Serve's
    request path), as `serve run configs/serve.yaml` would; they are returned."""
    import yaml

    config = yaml.safe_load((Path(__file__).resolve().parents[1] / "configs" / "serve.yaml")
                            .read_text())
    env = config.get("controller_options", {}).get("runtime_env", {}).get("env_vars", {})
    os.environ.update(env)
    return env


def start_app(extra_args: dict, ray_options: dict | None = None) -> str:
    """Ray, Serve on a free port and the G2P endpoint (plus `extra_args`) with a fresh
    SQLite store; the base URL."""
    import ray
    from ray import serve

    from serve_app.app import build_app
    from tests.conftest import free_port

    ray.init(address="local", include_dashboard=False, log_to_driver=False,
             **(ray_options or {}))
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    store = Path(tempfile.mkdtemp()) / "bench.sqlite3"
    # The limiter stays on (its cost is part of the facade's); the limits are raised
    # because the load generator is one caller.
    limits = {c: 10**7 for c in ("run", "runsync", "status", "direct", "other")}
    serve.run(build_app({"jobs": {"store_url": f"sqlite:///{store}", "rate_limits": limits},
                         "endpoints": {"ipa-generation": {"route": "ipa",
                                                          "max_concurrency": 32}},
                         **extra_args}),
              name="bench", route_prefix="/")
    return f"http://127.0.0.1:{port}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--haproxy", action="store_true",
                        help="RAY_SERVE_ENABLE_HA_PROXY=1 (the README's recommended proxy)")
    parser.add_argument("--requests-c1", type=int, default=100)
    parser.add_argument("--requests-c32", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3,
                        help="interleaved rounds per mode; the table shows their medians")
    opts = parser.parse_args()
    if opts.haproxy:
        os.environ["RAY_SERVE_ENABLE_HA_PROXY"] = "1"

    import ray
    from ray import serve

    from bench.fair_load import compete_fairly

    base = start_app({})
    compete_fairly()  # after Ray's own processes have started at normal priority
    print(f"proxy: {'HAProxy' if opts.haproxy else 'default'}; cores: {os.cpu_count()}")
    print(f"{'mode':<22}{'conc':>5}{'p50 ms':>9}{'p99 ms':>9}{'req/s':>8}{'p50/(a)':>9}"
          f"{'req/s/(a)':>11}{'cpu ms':>8}{'cpu/(a)':>9}{'polls/job':>11}")
    for concurrency, total in ((1, opts.requests_c1), (32, opts.requests_c32)):
        pollers = {"(c) /run + /status": RunAndPoll(),
                   "(c') learned 1st poll": RunAndPoll(learn=True)}
        modes = {"(a) direct /ipa": direct, "(b) /runsync": runsync, **pollers,
                 "(d) /run + status-sync": run_and_long_poll}
        # Rounds interleave the modes, so a slow spell on a shared machine hits them all.
        runs: dict[str, list[Figures]] = {name: [] for name in modes}
        for _ in range(opts.rounds):
            for name, call in modes.items():
                runs[name].append(asyncio.run(measure(call, base, concurrency, total)))
        a_p50, _, a_rps, a_cpu = medians(runs["(a) direct /ipa"])
        for name in modes:
            p50, p99, rps, cpu = medians(runs[name])
            polls = f"{statistics.mean(pollers[name].polls):>11.1f}" if name in pollers else ""
            print(f"{name:<22}{concurrency:>5}{p50:>9.1f}{p99:>9.1f}{rps:>8.1f}"
                  f"{p50 / a_p50:>9.2f}{rps / a_rps:>11.2f}{cpu:>8.2f}{cpu / a_cpu:>9.2f}{polls}")
    finished = asyncio.run(run_once(base))

    async def status_of_finished(c: aiohttp.ClientSession) -> None:
        await get(c, f"/v2/ipa-generation/status/{finished}")

    async def endpoints(c: aiohttp.ClientSession) -> None:
        await get(c, "/endpoints")

    singles = {"(e) /status alone": status_of_finished, "(f) GET /endpoints": endpoints}
    for name, call in singles.items():
        _, _, rps, cpu = asyncio.run(measure(call, base, 32, 10 * opts.requests_c32))
        print(f"{name:<22}{32:>5}{rps:>26.1f}{rps / a_rps:>20.2f}{cpu:>8.2f}{cpu / a_cpu:>9.2f}")
        print(f"    one request costs about 1/{a_cpu / cpu:.1f} of a direct call's CPU")
    serve.shutdown()
    ray.shutdown()


if __name__ == "__main__":
    main()
