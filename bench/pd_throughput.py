"""PD segmentation throughput: signals/s through Serve over HTTP vs the model in-process.

One run, on a private local Ray cluster, prints one table:
  - signals/s through Serve: real HTTP to the application's direct route `POST /pd`
    (`serve_app.app.build_app` serving `pd-segmentation`: proxy -> ingress -> PDPipeline
    -> PDSegmenter), one signal per request, at concurrency 1, 8 and 32, with the window
    batch sizes the segmenter formed;
  - the same with batching off (the app deployed again with `pd.max_batch_size` 1, the
    segmenter's user_config) at the highest concurrency;
  - after each of those, while the replicas sit idle, the same checkpoint called
    in-process (the replica's torch thread count) on window stacks of the size that Serve
    measurement formed, so each pair sees the same load on a shared machine; and once at
    max_batch_size, the model's best batching.

    python bench/pd_throughput.py [--seconds 6] [--length 4096] [--haproxy]

Target (issue 5): at concurrency 32, Serve >= 0.7x the in-process model at the batch size
Serve formed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CONCURRENCY = (1, 8, 32)
APP = "pd-bench"


async def drive(url: str, bodies: list[bytes], concurrency: int, seconds: float
                ) -> tuple[float, float]:
    """Closed loop over HTTP: `concurrency` callers each POST one signal after another.
    Returns (signals/s, median latency in ms)."""
    import aiohttp

    latencies: list[float] = []
    signals = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=300)) as session:

        async def caller(k: int, deadline: float) -> None:
            nonlocal signals
            i = k
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                async with session.post(url, data=bodies[i % len(bodies)],
                                        headers={"content-type": "application/json"}) as r:
                    report = await r.json()
                    assert r.status == 200, report
                latencies.append(time.perf_counter() - started)
                signals += report["total_samples_processed"]
                i += concurrency

        # one request per caller first: connections open, replicas warm
        await asyncio.gather(*(caller(k, 0.0) for k in range(concurrency)))
        latencies.clear()
        signals = 0
        started = time.perf_counter()
        await asyncio.gather(*(caller(k, started + seconds) for k in range(concurrency)))
        elapsed = time.perf_counter() - started
    return signals / elapsed, 1000 * statistics.median(latencies)


class InProcess:
    """The same checkpoint called in this process on stacks of preprocessed windows, with
    the replica's torch thread count (measured while the Serve replicas sit idle)."""

    def __init__(self, threads: int, windows_per_signal: int) -> None:
        import torch

        from deployments.pd.config import DEFAULT_WEIGHTS_URI
        from deployments.pd.inference import PDModel

        torch.set_num_threads(threads)
        self.model = PDModel.from_uri(DEFAULT_WEIGHTS_URI)
        self.windows_per_signal = windows_per_signal

    def rate(self, batch: int, seconds: float) -> float:
        """Signals/s on `batch`-window stacks."""
        stack = np.random.default_rng(0).normal(0, 0.1, (batch, 1024)).astype(np.float32)
        self.model.predict_windows(stack)  # warm-up
        windows = 0
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            self.model.predict_windows(stack)
            windows += batch
        return windows / (time.perf_counter() - started) / self.windows_per_signal


Row = tuple[str, int, float, float, float, int, float]


def measure(args: argparse.Namespace, bodies: list[bytes], windows_per_signal: int
            ) -> tuple[list[Row], float, int]:
    """Rows (label, concurrency, signals/s, mean window batch, p50 ms, batch formed,
    in-process signals/s at that batch), the in-process rate at max_batch_size, threads.

    Each Serve measurement is followed at once by the in-process one at the batch size it
    formed, so a pair sees the same load on a shared machine."""
    import ray
    from ray import serve

    from serve_app.app import build_app
    from tests.conftest import free_port

    ray.init(address="local", include_dashboard=False, log_to_driver=False)
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    url = f"http://127.0.0.1:{port}/pd"
    store = Path(tempfile.mkdtemp()) / "pd-bench.sqlite3"
    rows: list[Row] = []
    local: InProcess | None = None
    try:
        for label, batch in (("Serve HTTP /pd, batching on", args.max_batch_size),
                             ("Serve HTTP /pd, batching off", 1)):
            # Deployed again rather than reconfigured: `serve.run` starts fresh replicas
            # on every redeploy in Ray 2.60 anyway, so each config starts cold and equal.
            serve.run(build_app({
                "jobs": {"store_url": f"sqlite:///{store}"},
                "endpoints": {"pd-segmentation": {"route": "pd", "max_concurrency": 32}},
                "pd": {"max_batch_size": batch, "batch_wait_timeout_s": args.batch_wait_s},
            }), name=APP, route_prefix="/")
            segmenter = serve.get_deployment_handle("PDSegmenter", app_name=APP)
            info = segmenter.info.remote().result()
            assert info["batching"]["max_batch_size"] == batch, info
            local = local or InProcess(info["torch_threads"], windows_per_signal)
            asyncio.run(drive(url, bodies, 8, 2.0))  # warm-up
            levels = CONCURRENCY if batch > 1 else CONCURRENCY[-1:]
            for concurrency in levels:
                segmenter.batch_stats.remote(reset=True).result()
                rate, p50 = asyncio.run(drive(url, bodies, concurrency, args.seconds))
                sizes = segmenter.batch_stats.remote().result()["batch_sizes"]
                formed = max(1, round(float(np.mean(sizes))))
                alone = local.rate(formed, args.seconds)
                rows.append((label, concurrency, rate, float(np.mean(sizes)), p50, formed,
                             alone))
                print(f"  {label}, c={concurrency}: {rate:.1f} signals/s, window batch "
                      f"{np.mean(sizes):.1f}; in-process at batch {formed}: {alone:.1f}",
                      flush=True)
        serve.delete(APP)
        full = local.rate(args.max_batch_size, args.seconds)
    finally:
        serve.shutdown()
        ray.shutdown()
    threads = int(info["torch_threads"])
    return rows, full, threads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="per measurement")
    parser.add_argument("--length", type=int, default=4096, help="samples per signal")
    parser.add_argument("--max-batch-size", type=int, default=64, help="windows per call")
    parser.add_argument("--batch-wait-s", type=float, default=0.005,
                        help="the segmenter's batch_wait_timeout_s")
    parser.add_argument("--haproxy", action="store_true",
                        help="RAY_SERVE_ENABLE_HA_PROXY=1 (the README's faster proxy)")
    args = parser.parse_args()
    if args.haproxy:
        os.environ["RAY_SERVE_ENABLE_HA_PROXY"] = "1"

    from deployments.pd.processing import split_windows
    from deployments.pd.synthetic import example_job_input

    signals = example_job_input(n_signals=16, length=args.length, seed=7)["signals"]
    bodies = [json.dumps({"signals": row}).encode() for row in signals]
    windows_per_signal = len(split_windows(np.zeros(args.length, dtype=np.float32)))

    started = time.perf_counter()
    rows, full, threads = measure(args, bodies, windows_per_signal)
    c1 = rows[0][2]

    print(f"\nPD throughput: one {args.length}-sample signal per request "
          f"({windows_per_signal} windows of 1024) over HTTP to POST /pd, one segmenter "
          f"replica, torch threads {threads}, {os.cpu_count()} CPUs, "
          f"proxy {'HAProxy' if args.haproxy else 'default'}, {args.seconds:g} s each\n")
    print("| path | concurrency | signals/s | mean window batch | p50 ms | in-process "
          "signals/s at that batch | Serve / in-process | / Serve c=1 |")
    print("|---|---|---|---|---|---|---|---|")
    for label, concurrency, rate, batch, p50, formed, alone in rows:
        print(f"| {label} | {concurrency} | {rate:.1f} | {batch:.1f} | {p50:.0f} | "
              f"{alone:.1f} (batch {formed}) | {rate / alone:.2f} | {rate / c1:.2f} |")
    print(f"| in-process model | - | {full:.1f} | {args.max_batch_size} | - | - | - | - |")
    top_on = next(r for r in rows if r[1] == CONCURRENCY[-1])
    top_off = rows[-1]
    print(f"\nServe c={CONCURRENCY[-1]} / in-process at batch {top_on[5]} (target >= 0.7): "
          f"{top_on[2] / top_on[6]:.2f}")
    print(f"Serve c={CONCURRENCY[-1]} / in-process at batch {args.max_batch_size}: "
          f"{top_on[2] / full:.2f}")
    print(f"batching on / off at c={CONCURRENCY[-1]}: {top_on[2] / top_off[2]:.2f}")
    print(f"Serve c={CONCURRENCY[-1]} / c={CONCURRENCY[0]}: {top_on[2] / c1:.2f}")
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
