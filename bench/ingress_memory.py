"""The ingress replica's memory over many jobs: its RSS after the first 100 `/runsync`
jobs against its RSS after 10,000 (at c=32), in one run, the app as configs/serve.yaml
runs it (HAProxy, SQLite store).

    python bench/ingress_memory.py [--jobs 10000]

Target (issue 19): within 100 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.facade_overhead import runsync, start_app, use_shipped_serve_settings  # noqa: E402
from bench.fair_load import compete_fairly  # noqa: E402
from bench.job_stages import load, process_class  # noqa: E402

MB = 1 << 20


def ingress_rss() -> int:
    for process in psutil.process_iter():
        if process_class(process) == "ingress replica":
            try:
                return process.memory_info().rss
            except psutil.Error:
                continue
    raise LookupError("no ingress replica")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    opts = parser.parse_args()
    import ray
    from ray import serve

    use_shipped_serve_settings()  # as `serve run configs/serve.yaml` runs
    base = start_app({})
    compete_fairly()
    try:
        asyncio.run(load(runsync, base, 32, 100))
        time.sleep(2)
        first = ingress_rss()
        print(f"after 100 jobs: ingress RSS {first / MB:.1f} MB")
        done, started = 100, time.perf_counter()
        while done < opts.jobs:
            step = min(2_000, opts.jobs - done)
            asyncio.run(load(runsync, base, 32, step))
            done += step
            print(f"after {done} jobs: ingress RSS {ingress_rss() / MB:.1f} MB "
                  f"({done / (time.perf_counter() - started):.0f} jobs/s)", flush=True)
        time.sleep(2)
        last = ingress_rss()
        print(f"growth over {opts.jobs} jobs: {(last - first) / MB:+.1f} MB "
              f"(target: within 100 MB)")
    finally:
        serve.shutdown()
        ray.shutdown()


if __name__ == "__main__":
    main()
