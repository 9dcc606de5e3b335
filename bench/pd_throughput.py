"""PD segmentation throughput: Serve at concurrency 1/8/32 vs the model in-process.

One run, on a private local Ray cluster, prints one table:
  - signals/s through Serve (PDPipeline -> PDSegmenter, via DeploymentHandles from this
    driver) at concurrency 1, 8 and 32, with the window batch sizes Serve formed;
  - the same model called in-process on batches of the size Serve formed at the highest
    concurrency, of max_batch_size and of 1, with the replica's torch thread count;
  - Serve with batching off (max_batch_size 1) at the highest concurrency.

    python -m bench.pd_throughput [--seconds 6] [--length 4096]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import time
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ray.serve.handle import DeploymentHandle

CONCURRENCY = (1, 8, 32)
APP = "pd-bench"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def drive(handle: DeploymentHandle, jobs: list[dict], concurrency: int, seconds: float
                ) -> tuple[float, float]:
    """Closed loop: `concurrency` callers each send one job after another. Returns
    (signals/s, median latency in ms)."""
    latencies: list[float] = []
    signals = 0
    deadline = time.perf_counter() + seconds

    async def caller(k: int) -> None:
        nonlocal signals
        i = k
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            report = await handle.run.remote(jobs[i % len(jobs)])
            latencies.append(time.perf_counter() - started)
            signals += report["total_samples_processed"]
            i += concurrency

    started = time.perf_counter()
    await asyncio.gather(*(caller(k) for k in range(concurrency)))
    return signals / (time.perf_counter() - started), 1000 * statistics.median(latencies)


def in_process(batch: int, windows_per_signal: int, seconds: float, threads: int) -> float:
    """Signals/s of the bare model on `batch`-window stacks, `threads` torch threads."""
    import torch

    from deployments.pd.config import DEFAULT_WEIGHTS_URI
    from deployments.pd.inference import PDModel

    torch.set_num_threads(threads)
    model = PDModel.from_uri(DEFAULT_WEIGHTS_URI)
    stack = np.random.default_rng(0).normal(0, 0.1, (batch, 1024)).astype(np.float32)
    model.predict_windows(stack)  # warm-up
    windows = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        model.predict_windows(stack)
        windows += batch
    return windows / (time.perf_counter() - started) / windows_per_signal


async def bench(args: argparse.Namespace) -> None:
    import ray
    from ray import serve

    from deployments.pd.config import PDArgs
    from deployments.pd.deployment import build_pd_app
    from deployments.pd.processing import split_windows
    from deployments.pd.synthetic import example_job_input

    signals = example_job_input(n_signals=16, length=args.length, seed=7)["signals"]
    jobs = [{"id": f"bench-{i}", "input": {"signals": [row]}} for i, row in enumerate(signals)]
    windows_per_signal = len(split_windows(np.zeros(args.length, dtype=np.float32)))

    ray.init(address="local", include_dashboard=False, log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": free_port()})
    base = PDArgs(max_batch_size=args.max_batch_size, batch_wait_timeout_s=0.005)
    rows: list[tuple[str, int, float, float, float]] = []
    try:
        for label, config in (("Serve, batching on", base),
                              ("Serve, batching off", base.model_copy(
                                  update={"max_batch_size": 1}))):
            pipeline = serve.run(build_pd_app(config), name=APP, route_prefix=None)
            segmenter = serve.get_deployment_handle("PDSegmenter", app_name=APP)
            threads = (await segmenter.info.remote())["torch_threads"]
            levels = CONCURRENCY if config.max_batch_size > 1 else CONCURRENCY[-1:]
            await drive(pipeline, jobs, 4, 2.0)  # warm-up
            for concurrency in levels:
                await segmenter.batch_stats.remote(reset=True)
                rate, p50 = await drive(pipeline, jobs, concurrency, args.seconds)
                sizes = (await segmenter.batch_stats.remote())["batch_sizes"]
                rows.append((label, concurrency, rate, float(np.mean(sizes)), p50))
        serve.delete(APP)
    finally:
        serve.shutdown()
        ray.shutdown()

    formed = max(1, round(rows[len(CONCURRENCY) - 1][3]))
    ceiling = in_process(formed, windows_per_signal, args.seconds, threads)
    full = in_process(args.max_batch_size, windows_per_signal, args.seconds, threads)
    unbatched = in_process(1, windows_per_signal, args.seconds, threads)
    print(f"\nPD throughput: one {args.length}-sample signal per job "
          f"({windows_per_signal} windows of 1024), one segmenter replica, "
          f"torch threads {threads}, {os.cpu_count()} CPUs\n")
    print("| path | concurrency | signals/s | mean window batch | p50 ms |")
    print("|---|---|---|---|---|")
    for label, concurrency, rate, batch, p50 in rows:
        print(f"| {label} | {concurrency} | {rate:.1f} | {batch:.1f} | {p50:.0f} |")
    print(f"| in-process model, batch {formed} | - | {ceiling:.1f} | {formed} | - |")
    print(f"| in-process model, batch {args.max_batch_size} | - | {full:.1f} | "
          f"{args.max_batch_size} | - |")
    print(f"| in-process model, batch 1 | - | {unbatched:.1f} | 1 | - |")
    top = rows[len(CONCURRENCY) - 1][2]
    print(f"\nServe c={CONCURRENCY[-1]} / in-process at batch {formed}: {top / ceiling:.2f}")
    print(f"batching on / off at c={CONCURRENCY[-1]}: {top / rows[-1][2]:.2f}")
    print(f"Serve c={CONCURRENCY[-1]} / c={CONCURRENCY[0]}: {top / rows[0][2]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="per measurement")
    parser.add_argument("--length", type=int, default=4096, help="samples per signal")
    parser.add_argument("--max-batch-size", type=int, default=64, help="windows per call")
    asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    main()
