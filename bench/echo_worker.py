"""A trivial RunPod worker (echoes its input), run by bench/worker_protocol.py both as an
external worker process and inside a Ray replica. BENCH_CONCURRENCY jobs at once."""

import os

import runpod


def handler(job):
    return {"echo": job["input"]}


runpod.serverless.start({"handler": handler, "concurrency_modifier":
                         lambda _current: int(os.environ.get("BENCH_CONCURRENCY", "1"))})
