"""Dental-pano latency and throughput, in one run, through Serve DeploymentHandles.

    python bench/dental_latency.py [--height 512 --width 1024 --sequential 8 --concurrent 16]

Prints:
1. per-image end-to-end latency of the pipeline, each branch's latency and their
   overlap (the branches run concurrently when the models' wall time is below the
   sum of the two branches);
2. images/s of the detector alone and of the whole pipeline under concurrent load,
   with detector batching on (`max_batch_size` > 1) and off (1), switched through
   `user_config` without restarting replicas.

It starts its own local Ray cluster and Serve instance on a free port, and uses
untrained default weights (speed does not depend on training).
"""

from __future__ import annotations

import argparse
import socket
import statistics
import time
from typing import Any

import numpy as np
import ray
from ray import serve

from deployments.dental.config import DentalArgs
from deployments.dental.deployment import build_dental_app
from deployments.dental.image import encode_jpeg
from deployments.dental.synthetic import synthetic_radiograph

APP = "dental-bench"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def data_uri(height: int, width: int) -> str:
    import base64

    gray = synthetic_radiograph(height, width)
    return "data:image/jpeg;base64," + base64.b64encode(
        encode_jpeg(np.repeat(gray[:, :, None], 3, axis=2))).decode()


def deploy(args: DentalArgs) -> Any:
    return serve.run(build_dental_app(args), name=APP, route_prefix=f"/{APP}")


def ms(values: list[float]) -> str:
    return f"{statistics.median(values):7.0f} ms (mean {statistics.fmean(values):6.0f})"


def sequential(pipeline: Any, uri: str, n: int) -> None:
    e2e, seg, det, overlap, models = [], [], [], [], []
    for i in range(n):
        started = time.perf_counter()
        out = pipeline.run.remote({"id": f"seq-{i}", "input": {"image_url": uri}}).result()
        e2e.append((time.perf_counter() - started) * 1000)
        t = out["timings_ms"]
        seg.append(t["segmentation"])
        det.append(t["detection"])
        overlap.append(t["branches_overlap"])
        models.append(t["models_wall"])
    sums = [s + d for s, d in zip(seg, det, strict=True)]
    print(f"\n1. one image at a time, {n} images (median, mean)")
    print(f"   end-to-end (client)          {ms(e2e)}")
    print(f"   segmentation branch          {ms(seg)}")
    print(f"   detection branch             {ms(det)}")
    print(f"   sum of the two branches      {ms(sums)}")
    print(f"   both branches, wall          {ms(models)}")
    print(f"   time both ran at once        {ms(overlap)}")
    print(f"   -> overlap in {sum(o > 0 for o in overlap)}/{n} images; branch wall is "
          f"{statistics.fmean(models) / statistics.fmean(sums):.0%} of the branch sum")


def throughput(calls: list[Any]) -> tuple[float, list[Any]]:
    """Start every call, then wait for all: (calls per second, results)."""
    started = time.perf_counter()
    responses = [call() for call in calls]
    results = [response.result() for response in responses]
    return len(calls) / (time.perf_counter() - started), results


def load(pipeline: Any, detector: Any, image: np.ndarray, uri: str, n: int, batch: int) -> None:
    detector.detect.remote(image).result()  # the new batch setting is in place
    det_rate, detections = throughput([lambda: detector.detect.remote(image)] * n)
    job = {"id": "load", "input": {"image_url": uri}}
    job_rate, outputs = throughput([lambda: pipeline.run.remote(job)] * n)
    print(f"   max_batch_size={batch}: detector alone {det_rate:5.2f} images/s "
          f"(batches up to {max(d.batch_size for d in detections)}), pipeline "
          f"{job_rate:5.2f} images/s (batches up to "
          f"{max(o['detection_batch_size'] for o in outputs)})")


def main(options: argparse.Namespace) -> None:
    uri = data_uri(options.height, options.width)
    image = np.repeat(synthetic_radiograph(options.height, options.width)[:, :, None], 3, axis=2)
    base = DentalArgs(max_batch_size=options.batch, batch_wait_timeout_s=0.05)
    started = time.perf_counter()
    pipeline = deploy(base)
    detector = serve.get_deployment_handle("FindingDetector", app_name=APP)
    print(f"deployed in {time.perf_counter() - started:.1f} s; image {options.height}x"
          f"{options.width}; segmenter {base.segmentation_arch} (max side "
          f"{base.segmentation_max_side}), detector {base.detection_model_config} "
          f"imgsz {base.detection_imgsz}; each replica num_cpus 0.25")
    for i in range(2):
        pipeline.run.remote({"id": f"warm-{i}", "input": {"image_url": uri}}).result()
    sequential(pipeline, uri, options.sequential)

    print(f"\n2. {options.concurrent} requests at once")
    for batch in (options.batch, 1):
        deploy(base.model_copy(update={"max_batch_size": batch}))  # user_config only
        load(pipeline, detector, image, uri, options.concurrent, batch)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--sequential", type=int, default=8)
    parser.add_argument("--concurrent", type=int, default=16)
    parser.add_argument("--batch", type=int, default=8, help="max_batch_size when batching is on")
    options = parser.parse_args()
    wall = time.perf_counter()
    ray.init(address="local", num_cpus=4, include_dashboard=False, log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": free_port()})
    try:
        main(options)
    finally:
        serve.delete(APP)
        serve.shutdown()
        ray.shutdown()
    print(f"\ntotal bench wall time {time.perf_counter() - wall:.0f} s")
