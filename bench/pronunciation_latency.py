"""Pronunciation-assessment latency and throughput, in one run, through DeploymentHandles.

    python bench/pronunciation_latency.py [--sequential 10 --jobs 40 --concurrency 8]

Prints, for the 3.1 s Festival recording of "the quick brown fox jumps over the lazy
dog" (tests/pronunciation/fixtures/fox.wav):
1. each stage alone: G2P (phonemize), recognizer (pocketsphinx forced alignment + the
   rival pass for GOP, on decoded audio), and the whole pipeline end to end, at concurrency 1;
2. the pipeline's own per-stage timings and how much of the branch time overlapped;
3. jobs/s of the pipeline with `--concurrency` jobs in flight.

It starts its own local Ray cluster and Serve instance on a free port.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import socket
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

import ray
import soundfile as sf
from ray import serve

from deployments.g2p.config import G2PArgs
from deployments.g2p.deployment import build_g2p_app
from deployments.pronunciation.config import AssessmentArgs
from deployments.pronunciation.deployment import build_pronunciation_app

APP = "pronunciation-bench"
AUDIO = Path(__file__).parent.parent / "tests" / "pronunciation" / "fixtures" / "fox.wav"
TEXT = "the quick brown fox jumps over the lazy dog"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ms(values: list[float]) -> str:
    return (f"p50 {statistics.median(values) * 1000:6.0f} ms   "
            f"mean {statistics.fmean(values) * 1000:6.0f} ms")


def job() -> dict:
    return {"id": uuid.uuid4().hex,
            "input": {"audio": base64.b64encode(AUDIO.read_bytes()).decode(), "text": TEXT,
                      "language": "en-us"}}


def timed(call: Any) -> float:
    started = time.perf_counter()
    call.result(timeout_s=300)
    return time.perf_counter() - started


async def throughput(pipeline: Any, jobs: int, concurrency: int) -> float:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(jobs):
        queue.put_nowait(i)

    async def worker() -> None:
        while not queue.empty():
            queue.get_nowait()
            await pipeline.run.remote(job())

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return jobs / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequential", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=40)
    parser.add_argument("--concurrency", type=int, default=8)
    opts = parser.parse_args()

    ray.init(address="local", num_cpus=8, include_dashboard=False, log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": free_port()})
    args = AssessmentArgs()
    g2p_app = build_g2p_app(G2PArgs(backends=["gruut"]))
    pipeline = serve.run(build_pronunciation_app(args, g2p_app), name=APP,
                         route_prefix=f"/{APP}")
    g2p = serve.get_deployment_handle("G2P", APP)
    recognizer = serve.get_deployment_handle("PhoneRecognizer", APP)
    audio, _ = sf.read(AUDIO, dtype="float32")
    print(f"audio: {AUDIO.name}, {len(audio) / 16000:.2f} s; "
          f"{opts.sequential} sequential calls per stage")

    pipeline.run.remote(job()).result(timeout_s=300)  # warm every replica
    g2p_s = [timed(g2p.phonemize.remote(TEXT, "en-us")) for _ in range(opts.sequential)]
    rec_s = [timed(recognizer.recognize.remote(audio, "en-us", TEXT))
             for _ in range(opts.sequential)]
    results, e2e_s = [], []
    for _ in range(opts.sequential):
        started = time.perf_counter()
        results.append(pipeline.run.remote(job()).result(timeout_s=300))
        e2e_s.append(time.perf_counter() - started)

    print("\n1. each stage alone (concurrency 1)")
    print(f"   G2P phonemize          {ms(g2p_s)}")
    print(f"   recognizer recognize   {ms(rec_s)}")
    print(f"   pipeline end to end    {ms(e2e_s)}")

    print("\n2. inside the pipeline (its own timings)")
    for stage in ("g2p", "audio", "recognizer", "recognizer_decode", "scoring", "total"):
        print(f"   {stage:22s} {ms([r['timings'][stage] for r in results])}")
    overlap = [r["timings"]["total"] / (r["timings"]["g2p"] + r["timings"]["audio"]
                                        + r["timings"]["recognizer"] + r["timings"]["scoring"])
               for r in results]
    print(f"   total / sum of stages  {statistics.median(overlap):.2f} "
          "(1.0 = no overlap; the G2P branch runs while audio is decoded and recognized)")
    print(f"   result: PER {results[0]['per']}, score {results[0]['score']}")

    rate = asyncio.run(throughput(pipeline, opts.jobs, opts.concurrency))
    print(f"\n3. throughput: {rate:.2f} jobs/s with {opts.concurrency} in flight "
          f"({opts.jobs} jobs)")
    serve.delete(APP)
    ray.shutdown()


if __name__ == "__main__":
    main()
