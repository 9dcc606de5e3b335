"""What an open web console costs the service.

The job API's throughput at concurrency 32 (`/v2/ipa-generation/runsync` with the G2P
example) with no console open, with the console's overview open in headless Chromium
(it refreshes every endpoint's /health and the replica table every 3 s), and with its job
list open (GET /v2/jobs every 3 s), in one run on one Serve instance; each figure is the
median of interleaved rounds. Prints req/s, p50 and the CPU all processes spent per call
(Chromium's included), each as a ratio of no console, and the console's own requests/s.

    python bench/console_cost.py [--haproxy] [--rounds 3] [--requests 1500]

Target (issue 16): throughput with a console open >= 0.9x without. Needs Debian's
`chromium` and Playwright (the `test` extra). The load generator and Chromium share the
machine at the Ray workers' priority (bench/fair_load.py).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.facade_overhead import Figures, measure, medians, post  # noqa: E402
from serve_app.catalog import MODEL_FAMILIES  # noqa: E402

if TYPE_CHECKING:
    from playwright.async_api import Browser

CONCURRENCY = 32
EXAMPLE = {"input": MODEL_FAMILIES["ipa-generation"].example()}
#: what the browser has open in each mode: a console view, or nothing
MODES = {"no console": None, "overview open": "#/overview", "job list open": "#/jobs"}


async def runsync(c: aiohttp.ClientSession) -> None:
    body = await post(c, "/v2/ipa-generation/runsync", EXAMPLE)
    assert body["status"] == "COMPLETED", body


async def measure_with(browser: Browser, base: str, view: str | None,
                       total: int) -> tuple[Figures, float]:
    """The load's figures with `view` open in a fresh page (none: no page); and the
    console's requests per second while it ran."""
    if view is None:
        return await measure(runsync, base, CONCURRENCY, total), 0.0
    page = await browser.new_page()
    requests = 0

    def count(_: object) -> None:
        nonlocal requests
        requests += 1

    await page.goto(f"{base}/console/{view}")
    await page.wait_for_selector("main h2")
    page.on("request", count)
    started = asyncio.get_running_loop().time()
    figures = await measure(runsync, base, CONCURRENCY, total)
    elapsed = asyncio.get_running_loop().time() - started
    await page.close()
    return figures, requests / elapsed


async def bench(base: str, chromium: str, rounds: int, total: int) -> None:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium)
        runs: dict[str, list[Figures]] = {mode: [] for mode in MODES}
        console_rps: dict[str, list[float]] = {mode: [] for mode in MODES}
        # Rounds interleave the modes, so a slow spell on a shared machine hits them all.
        for _ in range(rounds):
            for mode, view in MODES.items():
                figures, rps = await measure_with(browser, base, view, total)
                runs[mode].append(figures)
                console_rps[mode].append(rps)
        await browser.close()
    _, _, base_rps, base_cpu = medians(runs["no console"])
    print(f"{'c=32 /runsync':<16}{'req/s':>8}{'ratio':>8}{'p50 ms':>9}{'cpu ms':>8}"
          f"{'cpu ratio':>11}{'console req/s':>15}")
    for mode in MODES:
        p50, _, rps, cpu = medians(runs[mode])
        print(f"{mode:<16}{rps:>8.1f}{rps / base_rps:>8.2f}{p50:>9.1f}{cpu:>8.2f}"
              f"{cpu / base_cpu:>11.2f}{max(console_rps[mode]):>15.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--haproxy", action="store_true",
                        help="RAY_SERVE_ENABLE_HA_PROXY=1 (the README's recommended proxy)")
    parser.add_argument("--requests", type=int, default=1500,
                        help="per measurement: several of the console's 3 s refreshes")
    parser.add_argument("--rounds", type=int, default=3)
    opts = parser.parse_args()
    chromium = shutil.which("chromium")
    if chromium is None:
        sys.exit("needs Debian's chromium on PATH (apt-get install -y chromium)")
    if opts.haproxy:
        os.environ["RAY_SERVE_ENABLE_HA_PROXY"] = "1"

    import ray
    from ray import serve

    from bench.facade_overhead import start_app
    from bench.fair_load import compete_fairly

    base = start_app({"handlers": {"demo": {"handler": "deployments.handlers.demo_worker"}}})
    compete_fairly()  # Chromium, started after this, inherits the priority too
    print(f"proxy: {'HAProxy' if opts.haproxy else 'default'}; cores: {os.cpu_count()}; "
          f"{opts.rounds} rounds of {opts.requests} requests per mode")
    asyncio.run(bench(base, chromium, opts.rounds, opts.requests))
    serve.shutdown()
    ray.shutdown()


if __name__ == "__main__":
    main()
