"""Where one job's time goes: a stage-by-stage account of `ipa-generation` through
`/runsync`, `/run` + `/status-sync` and the direct route, at concurrency 1 and 32.

The app runs as `configs/serve.yaml` runs it (HAProxy proxy, SQLite store, the shipped
G2P knobs). Stages come from the app's own Prometheus metrics (histograms with 20%
buckets), read from Ray's metrics port before and after each load and divided by the
jobs run:
  - client latency (the load generator's mean);
  - proxy + client: that latency less the time in the ingress app (`rsp_http_route_ms`);
  - ingress replica: the time in the ingress app, the sum of
      each store statement (`rsp_job_stage_ms`, stage `store_<method>`): statements per
      job and their time (claims include the dispatcher's idle polls, 5 a second);
      handoff: from the submission waking the dispatcher to the job claimed;
      call: the handle call to the model deployment, of which
        handle + queueing: the call less the time in G2P's `run` (`rsp_model_request_ms`),
        batch wait: time a request waited for its batch (`rsp_model_batch_wait_ms`),
        model: one batch's gruut call (`rsp_model_inference_ms`, per batch);
      wake: from the finish statement to the waiting request resuming;
      the ingress's own work: the rest (routing, validation, keys, limiter, JSON).
Then CPU per job of each process class (proxy, ingress, model replica, Ray's own
processes, the load generator), from every process's CPU time before and after.

    python bench/job_stages.py [--requests-c1 150] [--requests-c32 400]

At c=32 stages overlap in time: the rows are each job's own waits, averaged.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import urllib.request
from collections import defaultdict
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import psutil
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.facade_overhead import direct, run_and_long_poll, runsync  # noqa: E402
from bench.fair_load import compete_fairly  # noqa: E402

Metrics = dict[tuple[str, tuple[tuple[str, str], ...]], float]
SETTLE_S = 90
#: what must stop changing before a scrape counts: the requests, not the idle polls
SETTLE_ON = ("ray_rsp_http_route_ms_count", "ray_rsp_job_stage_ms_count",
             "ray_rsp_model_request_ms_count", "ray_rsp_model_inference_ms_count")


def scrape(port: int) -> Metrics:
    """Every `_sum` and `_count` sample on Ray's metrics port, summed over label sets
    that differ only in the labels this bench does not read."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
    out: Metrics = defaultdict(float)
    for family in text_string_to_metric_families(text.decode()):
        for sample in family.samples:
            if sample.name.endswith(("_sum", "_count")):
                keep = tuple(sorted((k, v) for k, v in sample.labels.items()
                                    if k in ("stage", "deployment")))
                out[(sample.name, keep)] += sample.value
    return out


def delta(before: Metrics, after: Metrics) -> Metrics:
    return {key: after.get(key, 0.0) - before.get(key, 0.0) for key in after}


def requests_seen(m: Metrics) -> Metrics:
    """The counts that grow with requests only (not with idle polls or sweeps)."""
    return {key: v for key, v in m.items() if key[0] in SETTLE_ON
            and not any(label.startswith("store_")
                        and label not in ("store_create", "store_finish")
                        for _, label in key[1])}


def settled(port: int, before: Metrics | None = None, requests: int = 0) -> Metrics:
    """The metrics, less `before`, once the ingress has reported at least `requests`
    requests and two scrapes 3 s apart agree on the request counts."""
    deadline = time.monotonic() + SETTLE_S
    last: Metrics | None = None
    while time.monotonic() < deadline:
        now = delta(before or {}, scrape(port))
        seen = sum(v for (name, _), v in now.items() if name == "ray_rsp_http_route_ms_count")
        if seen >= requests and last is not None and requests_seen(now) == requests_seen(last):
            return now
        last = now
        time.sleep(3)
    raise TimeoutError(f"the metrics did not settle within {SETTLE_S} s")


def value(d: Metrics, name: str, **labels: str) -> float:
    want = set(labels.items())
    return sum(v for (n, keep), v in d.items() if n == name and want <= set(keep))


def process_class(process: psutil.Process) -> str:
    if process.pid == os.getpid():
        return "load generator"
    try:
        command = " ".join(process.cmdline())
    except psutil.Error:
        return "other"
    for marker, name in (("ServeReplica:bench:Ingress", "ingress replica"),
                         ("ServeReplica:bench:G2P", "model replica (G2P)"),
                         ("haproxy", "proxy (HAProxy)"), ("HAProxyManager", "proxy (HAProxy)"),
                         ("ProxyActor", "proxy (HAProxy)")):
        if marker in command:
            return name
    if "ray" in command:
        return "Ray's own processes"
    return "other"


def cpu_times() -> dict[int, tuple[str, float]]:
    """Every process's class and CPU seconds so far, by pid."""
    out: dict[int, tuple[str, float]] = {}
    for process in psutil.process_iter():
        try:
            times = process.cpu_times()
            out[process.pid] = (process_class(process), times.user + times.system)
        except psutil.Error:
            continue
    return out


def cpu_by_class(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]
                 ) -> dict[str, float]:
    """CPU seconds spent between two snapshots, by class (processes in both only)."""
    out: dict[str, float] = defaultdict(float)
    for pid, (kind, seconds) in after.items():
        if pid in before:
            out[kind] += seconds - before[pid][1]
    return out


async def load(call: Callable[[aiohttp.ClientSession], Awaitable[object]], base: str,
               concurrency: int, total: int) -> list[float]:
    latencies: list[float] = []
    remaining = [total]
    async with aiohttp.ClientSession(base_url=base, timeout=aiohttp.ClientTimeout(total=120),
                                     connector=aiohttp.TCPConnector(limit=concurrency)) as c:
        async def worker() -> None:
            while remaining[0] > 0:
                remaining[0] -= 1
                t0 = time.perf_counter()
                await call(c)
                latencies.append(time.perf_counter() - t0)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


#: store statements a job makes itself; the rest are the sweeper's and webhook loop's
JOB_STATEMENTS = ("store_create", "store_claim", "store_get", "store_finish", "store_renew")


def account(name: str, concurrency: int, latencies: list[float], d: Metrics,
            cpu: dict[str, float], requests_per_job: int) -> None:
    jobs = len(latencies)
    client = statistics.mean(latencies) * 1000
    ingress = value(d, "ray_rsp_http_route_ms_sum") / jobs
    replica = value(d, "ray_rsp_model_request_ms_sum", deployment="G2P") / jobs
    stages = {dict(labels)["stage"]: (value(d, "ray_rsp_job_stage_ms_sum", **dict(labels)),
                                      value(d, "ray_rsp_job_stage_ms_count", **dict(labels)))
              for (n, labels) in d if n == "ray_rsp_job_stage_ms_sum" and labels}
    per_job = {stage: total / jobs for stage, (total, _) in stages.items()}
    batches = value(d, "ray_rsp_model_inference_ms_count", deployment="G2P")
    rows: list[tuple[str, float, str]] = [
        ("client latency (mean)", client,
         f"p50 {statistics.median(latencies) * 1000:.1f} ms"),
        ("proxy + client", client - ingress, "latency less the time in the ingress"),
        ("ingress replica", ingress, f"{requests_per_job} request(s) a job"),
    ]
    for stage in JOB_STATEMENTS:
        total, count = stages.get(stage, (0.0, 0.0))
        if count:
            rows.append((f"  {stage}", total / jobs,
                         f"{count / jobs:.2f} a job, {total / count:.2f} ms each"))
    for stage, note in (("handoff", "submission -> claimed by the dispatcher"),
                        ("call", "handle call to the model deployment"),
                        ("wake", "finish -> the waiting request resumed")):
        if stage in stages:
            rows.append((f"  {stage}", per_job[stage], note))
    rows += [
        ("    handle + queueing", per_job.get("call", 0.0) - replica,
         "call less the G2P replica's time"),
        ("    batch wait", value(d, "ray_rsp_model_batch_wait_ms_sum", deployment="G2P") / jobs,
         ""),
        ("    model", value(d, "ray_rsp_model_inference_ms_sum", deployment="G2P")
         / max(batches, 1), f"one batch; {jobs / max(batches, 1):.1f} jobs a batch"),
        # Claims are inside the handoff (or the idle polls): not subtracted twice.
        ("  ingress's own work", ingress - sum(per_job.get(s, 0.0) for s in (
            "store_create", "store_get", "store_finish", "handoff", "call", "wake")),
         "routing, validation, keys, limiter, JSON, response"),
    ]
    background = sum(total for stage, (total, _) in stages.items()
                     if stage.startswith("store_") and stage not in JOB_STATEMENTS)
    rows.append(("(sweeper + webhook statements)", background / jobs, "not in the job's path"))
    print(f"\n{name}, c={concurrency}, {jobs} jobs")
    for label, ms, note in rows:
        print(f"  {label:<32}{ms:>8.2f} ms  {note}")
    print("  CPU ms per job: " + ", ".join(
        f"{k} {v / jobs * 1000:.2f}" for k, v in sorted(cpu.items(), key=lambda kv: -kv[1])
        if v > 0 and k != "other") + f" (other processes on the machine: "
        f"{cpu.get('other', 0.0) / jobs * 1000:.2f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests-c1", type=int, default=150)
    parser.add_argument("--requests-c32", type=int, default=400)
    opts = parser.parse_args()
    import ray
    from ray import serve

    from bench.facade_overhead import start_app, use_shipped_serve_settings
    from tests.conftest import free_port

    use_shipped_serve_settings()  # as `serve run configs/serve.yaml` runs
    metrics_port = free_port()
    # Workers report their metrics every second (Ray's default is 10 s), so that a scrape
    # taken once two in a row agree holds every request made before it.
    base = start_app({}, ray_options={"_metrics_export_port": metrics_port,
                                      "_system_config": {"metrics_report_interval_ms": 1000}})
    compete_fairly()
    modes = {"/runsync": (runsync, 1), "/run + /status-sync": (run_and_long_poll, 2),
             "direct /ipa": (direct, 1)}
    try:
        for concurrency, total in ((1, opts.requests_c1), (32, opts.requests_c32)):
            for name, (call, requests_per_job) in modes.items():
                asyncio.run(load(call, base, min(concurrency, 8), 16))  # warm
                before_metrics = settled(metrics_port)  # the warm-up reported
                before_cpu = cpu_times()
                latencies = asyncio.run(load(call, base, concurrency, total))
                cpu = cpu_by_class(before_cpu, cpu_times())
                d = settled(metrics_port, before_metrics, total * requests_per_job)
                account(name, concurrency, latencies, d, cpu, requests_per_job)
    finally:
        serve.shutdown()
        ray.shutdown()


if __name__ == "__main__":
    main()
