"""Serve deployments of the dental-pano endpoint.

`ToothSegmenter` and `FindingDetector` wrap the two models; `DentalPipeline` wraps
`DentalAnalyzer` (pipeline.py: decode once, both models at the same time, findings),
handing it the two handles as its model calls. Model modules (torch, ultralytics) are
imported inside the replicas only, so binding this graph stays light.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from ray import serve
from ray.serve import Application
from ray.serve.handle import DeploymentHandle

from deployments.common.batching import (
    BATCH_KNOBS,
    apply_batch_knobs,
    call_per_item,
    raise_if_error,
)
from deployments.common.device import select_device
from deployments.common.metrics import ModelMetrics
from deployments.dental.config import DentalArgs
from deployments.dental.pipeline import DentalAnalyzer
from deployments.dental.structures import Detections, SegmentationResult


@serve.deployment(ray_actor_options={"num_cpus": 0.25}, max_ongoing_requests=8)
class ToothSegmenter:
    """Semantic segmentation into background + 32 teeth."""

    def __init__(self, args: DentalArgs) -> None:
        from deployments.dental.segmentation import load_segmentation_model

        self._model = load_segmentation_model(
            args.segmentation_weights, args.segmentation_backend, args.segmentation_arch,
            select_device(args.device, args.segmenter_gpu_memory_fraction),
            args.segmentation_max_side)
        # One forward pass at a time: concurrent passes on the replica's CPU threads (or
        # one GPU) only share it, multiplying every request's latency and memory for no
        # throughput; more throughput comes from replicas or `num_cpus` (torch threads).
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="segment")

    async def segment(self, image: np.ndarray) -> SegmentationResult:
        return await asyncio.get_running_loop().run_in_executor(self._executor,
                                                                self._model.predict, image)

    async def check_health(self) -> None:
        # Beside, not behind, queued requests: a tiny pass (~10 ms on a CPU thread).
        await asyncio.to_thread(self._model.check_health)


@serve.deployment(ray_actor_options={"num_cpus": 0.25}, max_ongoing_requests=16)
class FindingDetector:
    """YOLO instance segmentation of teeth and findings, batched across requests.

    `user_config` keys: max_batch_size, batch_wait_timeout_s (batching; 1 turns it
    off), imgsz, conf, iou, max_det (inference).
    """

    #: the user_config keys of inference itself (the batch knobs are BATCH_KNOBS)
    MODEL_KNOBS = frozenset({"imgsz", "conf", "iou", "max_det"})

    def __init__(self, args: DentalArgs) -> None:
        from deployments.dental.detection import load_detection_model

        self._model = load_detection_model(
            args.detection_weights, select_device(args.device, args.detector_gpu_memory_fraction),
            args.detection_model_config)
        self._metrics = ModelMetrics("FindingDetector")

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        unknown = set(user_config) - self.MODEL_KNOBS - BATCH_KNOBS
        if unknown:
            raise ValueError(f"unknown FindingDetector user_config keys {sorted(unknown)}; "
                             f"known: {sorted(self.MODEL_KNOBS | BATCH_KNOBS)}")
        apply_batch_knobs(self._detect_batch, user_config)
        self._model.configure(**{k: user_config[k] for k in self.MODEL_KNOBS & set(user_config)})

    async def detect(self, image: np.ndarray) -> Detections:
        return raise_if_error(await self._detect_batch(image))

    @serve.batch(max_batch_size=4, batch_wait_timeout_s=0.02)
    async def _detect_batch(self, images: list[np.ndarray]) -> list[Detections | Exception]:
        # Each image gets its own detections or its own error: one image the model fails
        # on must not fail the requests batched with it.
        with self._metrics.model_call(len(images)):
            return await asyncio.to_thread(call_per_item, self._model.predict, images)

    async def check_health(self) -> None:
        # Waits for a running batch at most (the model takes one pass at a time).
        await asyncio.to_thread(self._model.check_health)


# Orchestration (its own work is decoding and the report, in threads): a small CPU share,
# so configs/serve.yaml fits two cores; Ray still gives it one torch/OMP thread.
@serve.deployment(ray_actor_options={"num_cpus": 0.05}, max_ongoing_requests=32)
class DentalPipeline:
    """The dental-pano endpoint: `run(job)` with a RunPod-shaped job (see `DentalAnalyzer`)."""

    def __init__(self, segmenter: DeploymentHandle, detector: DeploymentHandle,
                 args: DentalArgs) -> None:
        self._analyzer = DentalAnalyzer(segmenter.segment.remote, detector.detect.remote, args)

    async def run(self, job: dict[str, Any]) -> dict[str, Any]:
        return await self._analyzer.run(job)


def build_dental_app(args: DentalArgs) -> Application:
    """The dental-pano graph: both model deployments bound into the pipeline."""
    segmenter = ToothSegmenter.bind(args)
    detector = FindingDetector.options(user_config=args.detector_user_config()).bind(args)
    return DentalPipeline.bind(segmenter, detector, args)
