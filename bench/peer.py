"""This project's job path against what its users run today, in one run on one machine.

The same G2P work (`ipa-generation`: gruut, "the quick brown fox jumps over the lazy
dog") served by
  - the `runpod` SDK's local test server (`python handler.py --rp_serve_api`: one
    process, FastAPI, no queue, no durability): POST /runsync,
  - a plain uvicorn + FastAPI app doing the work in its route: POST /ipa,
  - this project as `configs/serve.yaml` runs it (HAProxy proxy, SQLite job store):
    `/v2/ipa-generation/runsync`, `/run` + one `/status-sync`, and the direct route /ipa,
at concurrency 1 and 32. Prints p50, p99, req/s, the CPU every process spent per call, and
the ratios to the runpod server; each figure is the median of interleaved rounds.

    python bench/peer.py [--rounds 3] [--requests-c1 100] [--requests-c32 400]

Targets (issue 19): /runsync req/s at c=32 >= 0.6x the runpod server's, and its p50 at
c=1 <= 3x. The peers run at the Ray workers' niceness, as does the load generator
(bench/fair_load.py).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.facade_overhead import (  # noqa: E402
    TEXT,
    Figures,
    direct,
    measure,
    medians,
    post,
    run_and_long_poll,
    runsync,
    start_app,
    use_shipped_serve_settings,
)
from bench.fair_load import RAY_WORKER_NICENESS, compete_fairly  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
STARTUP_S = 120


async def runpod_runsync(c: aiohttp.ClientSession) -> None:
    body = await post(c, "/runsync", {"input": TEXT})
    assert body["status"] == "COMPLETED", body


def start_peer(command: list[str], base: str, probe: Callable[[httpx.Client], int]
               ) -> subprocess.Popen:
    """`command` at the Ray workers' niceness, in its own session; returns once `probe`
    answers 200, or raises at the deadline."""
    server = subprocess.Popen(["nice", "-n", str(RAY_WORKER_NICENESS), *command], cwd="/tmp",
                              stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                              start_new_session=True)
    deadline = time.monotonic() + STARTUP_S
    with httpx.Client(base_url=base, timeout=5) as client:
        while time.monotonic() < deadline:
            try:
                if probe(client) == 200:
                    return server
            except httpx.HTTPError:
                pass
            if server.poll() is not None:
                raise RuntimeError(f"{command} exited with {server.returncode}")
            time.sleep(0.5)
    server.kill()
    raise TimeoutError(f"{command} did not answer within {STARTUP_S} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests-c1", type=int, default=100)
    parser.add_argument("--requests-c32", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3)
    opts = parser.parse_args()
    from tests.conftest import free_port

    python = sys.executable
    rp_port, fa_port = free_port(), free_port()
    rp_base, fa_base = f"http://127.0.0.1:{rp_port}", f"http://127.0.0.1:{fa_port}"
    peers = [
        start_peer([python, str(REPO / "bench" / "peer_handler.py"), "--rp_serve_api",
                    "--rp_api_port", str(rp_port)], rp_base,
                   lambda c: c.post("/runsync", json={"input": TEXT}).status_code),
        start_peer([python, "-m", "uvicorn", "bench.peer_handler:app", "--port", str(fa_port),
                    "--app-dir", str(REPO), "--log-level", "warning"], fa_base,
                   lambda c: c.post("/ipa", json=TEXT).status_code),
    ]
    try:
        shipped = use_shipped_serve_settings()  # as `serve run configs/serve.yaml` runs
        base = start_app({})
        compete_fairly()
        modes: dict[str, tuple[Callable[[aiohttp.ClientSession], Awaitable[object]], str]] = {
            "runpod local /runsync": (runpod_runsync, rp_base),
            "uvicorn + FastAPI": (direct, fa_base),
            "this: /runsync": (runsync, base),
            "this: /run + status-sync": (run_and_long_poll, base),
            "this: direct /ipa": (direct, base),
        }
        print(f"cores: {os.cpu_count()}; Serve settings: {shipped or 'defaults'}; "
              f"store: SQLite; {opts.rounds} interleaved rounds, medians")
        print(f"{'server':<26}{'conc':>5}{'p50 ms':>9}{'p99 ms':>9}{'req/s':>8}{'cpu ms':>8}"
              f"{'p50/rp':>8}{'req/s/rp':>10}")
        for concurrency, total in ((1, opts.requests_c1), (32, opts.requests_c32)):
            runs: dict[str, list[Figures]] = {name: [] for name in modes}
            for _ in range(opts.rounds):
                for name, (call, url) in modes.items():
                    runs[name].append(asyncio.run(measure(call, url, concurrency, total)))
            rp_p50, _, rp_rps, _ = medians(runs["runpod local /runsync"])
            for name in modes:
                p50, p99, rps, cpu = medians(runs[name])
                print(f"{name:<26}{concurrency:>5}{p50:>9.1f}{p99:>9.1f}{rps:>8.1f}{cpu:>8.2f}"
                      f"{p50 / rp_p50:>8.2f}{rps / rp_rps:>10.2f}")
    finally:
        for peer in peers:
            os.killpg(peer.pid, 9)
        import ray
        from ray import serve

        if ray.is_initialized():
            serve.shutdown()
            ray.shutdown()


if __name__ == "__main__":
    main()
