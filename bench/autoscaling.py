"""Queue-driven autoscaling on the local multi-node cluster: 200 PD jobs queued at once,
the PD segmenter's replicas over time as the queue fills, drains and empties.

    python bench/autoscaling.py [--jobs 200] [--max-replicas 6]

The cluster is `serve_app.local_cluster` (a head and two workers with one logical GPU
each) with configs/serve.gpu.yaml on a fresh PostgreSQL database, and the PDSegmenter
deployment under `serve_app.autoscaling:QueueDepthPolicy` from zero replicas. Prints one
line a second: seconds, jobs queued, jobs running, PDSegmenter replicas alive.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.cluster_faults import cluster_config  # noqa: E402
from serve_app.local_cluster import LocalCluster  # noqa: E402
from tests.workload import example  # noqa: E402

ENDPOINT = "pd-segmentation"


def autoscaled(max_replicas: int, per_replica: int) -> dict:
    config = cluster_config()
    app = config["applications"][0]
    for deployment in app["deployments"]:
        if deployment["name"] == "PDSegmenter":
            deployment.pop("num_replicas", None)
            deployment["autoscaling_config"] = {
                "min_replicas": 0, "initial_replicas": 0, "max_replicas": max_replicas,
                "downscale_delay_s": 15, "policy": {
                    "policy_function": "serve_app.autoscaling:QueueDepthPolicy",
                    "policy_kwargs": {"store_url": "(set below)", "endpoints": [ENDPOINT],
                                      "jobs_per_replica": per_replica}}}
    return config


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--max-replicas", type=int, default=6)
    parser.add_argument("--jobs-per-replica", type=int, default=8)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--state-dir", type=Path, default=Path("/tmp/rsp-autoscaling"))
    args = parser.parse_args()
    cluster = LocalCluster(autoscaled(args.max_replicas, args.jobs_per_replica),
                           args.state_dir, workers=2, worker_cpus=8)
    store_url = cluster.use_postgres(args.postgres)
    for d in cluster.config["applications"][0]["deployments"]:
        if "autoscaling_config" in d:
            d["autoscaling_config"]["policy"]["policy_kwargs"]["store_url"] = store_url
    try:
        cluster.up("/endpoints")
        client = httpx.Client(base_url=cluster.url, timeout=60)
        signals, _ = example(ENDPOINT)
        # Five copies of the example's signals: a job takes long enough to queue behind.
        body = {"signals": signals["signals"] * 5}
        print("idle: PDSegmenter replicas", len(cluster.replica_pids("PDSegmenter")))
        samples: list[tuple[float, int, int, int]] = []
        stop = threading.Event()
        started = time.monotonic()

        def sample() -> None:
            watcher = httpx.Client(base_url=cluster.url, timeout=30)
            while not stop.is_set():
                try:
                    jobs = watcher.get(f"/v2/{ENDPOINT}/health").json()["jobs"]
                    replicas = len(cluster.replica_pids("PDSegmenter"))
                except Exception:  # noqa: BLE001 - a missed sample is only a gap
                    continue
                samples.append((time.monotonic() - started, jobs["inQueue"],
                                jobs["inProgress"], replicas))
                t, queued, running, alive = samples[-1]
                print(f"{t:.0f}\t{queued}\t{running}\t{alive}", flush=True)
                if len(samples) > 30 and jobs["inQueue"] == jobs["inProgress"] == 0 \
                        and replicas == 0:
                    return
                time.sleep(1)

        print("s\tqueued\trunning\treplicas", flush=True)
        watcher = threading.Thread(target=sample)
        watcher.start()
        with ThreadPoolExecutor(8) as pool:
            ids = list(pool.map(lambda _: client.post(f"/v2/{ENDPOINT}/run", json={
                "input": body}).json()["id"], range(args.jobs)))
        watcher.join(timeout=900)
        stop.set()
        done = [client.get(f"/v2/{ENDPOINT}/status/{i}").json() for i in ids]
        completed = [d for d in done if d["status"] == "COMPLETED"
                     and d["output"]["total_samples_processed"] == len(body["signals"])]
        outcomes = Counter(d["status"] if d["status"] != "FAILED" else
                           f"FAILED: {d.get('error', '')[:80]}" for d in done)
        print("outcomes:", dict(outcomes))
        peak = max((s[3] for s in samples), default=0)
        drained = next((s[0] for s in samples if s[0] > 5 and s[1] == s[2] == 0), None)
        print(f"{len(completed)}/{len(ids)} completed; peak {peak} replicas "
              f"(max {args.max_replicas}); queue empty after {drained} s; "
              f"replicas at the end {samples[-1][3] if samples else None}")
        return 0 if len(completed) == len(ids) else 1
    finally:
        cluster.down()


if __name__ == "__main__":
    sys.exit(main())
