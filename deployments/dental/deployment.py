"""Serve deployments of the dental-pano endpoint.

`ToothSegmenter` and `FindingDetector` wrap the two models; `DentalPipeline`
takes a RunPod-shaped job, decodes the image once, runs both models at the same
time, and combines them into findings. Model modules (torch, ultralytics) are
imported inside the replicas only, so binding this graph stays light.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from pydantic import ValidationError
from ray import serve
from ray.serve import Application
from ray.serve.handle import DeploymentHandle, DeploymentResponse

from deployments.common.batching import call_per_item, raise_if_error
from deployments.common.device import select_device
from deployments.common.errors import InputError
from deployments.common.fetch import S3Config, fetch_input
from deployments.common.metrics import ModelMetrics
from deployments.dental import report
from deployments.dental.config import (
    DEFAULT_ARCH,
    DEFAULT_DETECTOR_CONFIG,
    Arch,
    Backend,
    DentalArgs,
    DentalInput,
)
from deployments.dental.image import decode_image, image_stem
from deployments.dental.structures import Detections, SegmentationResult


@serve.deployment(ray_actor_options={"num_cpus": 0.25}, max_ongoing_requests=8)
class ToothSegmenter:
    """Semantic segmentation into background + 32 teeth."""

    def __init__(self, weights: str | None = None, backend: Backend = "torchvision",
                 arch: Arch = DEFAULT_ARCH, max_side: int = 1024, device: str = "auto",
                 gpu_memory_fraction: float | None = None) -> None:
        from deployments.dental.segmentation import load_segmentation_model

        self._model = load_segmentation_model(weights, backend, arch,
                                              select_device(device, gpu_memory_fraction), max_side)
        # One forward pass at a time: concurrent passes on the replica's CPU threads (or
        # one GPU) only share it, multiplying every request's latency and memory for no
        # throughput; more throughput comes from replicas or `num_cpus` (torch threads).
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="segment")

    async def segment(self, image: np.ndarray) -> SegmentationResult:
        return await asyncio.get_running_loop().run_in_executor(self._executor,
                                                                self._model.predict, image)


@serve.deployment(ray_actor_options={"num_cpus": 0.25}, max_ongoing_requests=16)
class FindingDetector:
    """YOLO instance segmentation of teeth and findings, batched across requests.

    `user_config` keys: max_batch_size, batch_wait_timeout_s (batching; 1 turns it
    off), imgsz, conf, iou, max_det (inference).
    """

    _KNOBS = {"max_batch_size", "batch_wait_timeout_s", "imgsz", "conf", "iou", "max_det"}

    def __init__(self, weights: str | None = None,
                 model_config: str = DEFAULT_DETECTOR_CONFIG, device: str = "auto",
                 gpu_memory_fraction: float | None = None) -> None:
        from deployments.dental.detection import load_detection_model

        self._model = load_detection_model(weights, select_device(device, gpu_memory_fraction),
                                           model_config)
        self._metrics = ModelMetrics("FindingDetector")

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        unknown = set(user_config) - self._KNOBS
        if unknown:
            raise ValueError(f"unknown FindingDetector user_config keys {sorted(unknown)}; "
                             f"known: {sorted(self._KNOBS)}")
        if "max_batch_size" in user_config:
            self._detect_batch.set_max_batch_size(int(user_config["max_batch_size"]))
        if "batch_wait_timeout_s" in user_config:
            self._detect_batch.set_batch_wait_timeout_s(float(user_config["batch_wait_timeout_s"]))
        self._model.configure(**{k: v for k, v in user_config.items()
                                 if k in {"imgsz", "conf", "iou", "max_det"}})

    async def detect(self, image: np.ndarray) -> Detections:
        return raise_if_error(await self._detect_batch(image))

    @serve.batch(max_batch_size=4, batch_wait_timeout_s=0.02)
    async def _detect_batch(self, images: list[np.ndarray]) -> list[Detections | Exception]:
        # Each image gets its own detections or its own error: one image the model fails
        # on must not fail the requests batched with it.
        with self._metrics.model_call(len(images)):
            return await asyncio.to_thread(call_per_item, self._model.predict, images)


async def _both(first: DeploymentResponse, second: DeploymentResponse,
                timeout_s: float) -> tuple[Any, Any]:
    """Await two already-started calls; on timeout, error or cancellation cancel both."""
    try:
        return tuple(await asyncio.wait_for(asyncio.gather(first, second), timeout_s))
    except BaseException:
        first.cancel()
        second.cancel()
        raise


# Orchestration (its own work is decoding and the report, in threads): a small CPU share,
# so configs/serve.yaml fits two cores; Ray still gives it one torch/OMP thread.
@serve.deployment(ray_actor_options={"num_cpus": 0.05}, max_ongoing_requests=32)
class DentalPipeline:
    """The dental-pano endpoint: `run(job)` with a RunPod-shaped job."""

    def __init__(self, segmenter: DeploymentHandle, detector: DeploymentHandle,
                 args: DentalArgs | dict[str, Any] | None = None) -> None:
        self._segmenter = segmenter
        self._detector = detector
        self._args = DentalArgs.model_validate(args or {})

    async def run(self, job: dict[str, Any]) -> dict[str, Any]:
        """`{"id", "input": {"image_url", "debug"?, "min_score"?}, "s3Config"?}` -> output.

        Without s3Config the CSV and overlays are inline (`csv_data`, base64
        `debug_images`); with it they go to the caller's bucket under
        `<output_prefix>/<job id>/` and the output carries presigned URLs.
        """
        started = time.perf_counter()
        args = self._args
        if not isinstance(job, dict) or not isinstance(job.get("input"), dict):
            raise InputError("the job needs an 'input' object")
        try:
            request = DentalInput.model_validate(job["input"])
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'input'}: {e['msg']}"
                                 for e in exc.errors())
            raise InputError(f"invalid input: {problems}") from exc
        job_id = str(job.get("id") or uuid.uuid4())
        s3 = S3Config.from_request(job.get("s3Config"))

        data = await asyncio.to_thread(fetch_input, request.image_url, args.max_image_bytes,
                                       args.outbound, args.fetch_timeout_s, s3)
        image, image_format = await asyncio.to_thread(decode_image, data, args.max_image_pixels)
        decoded = time.perf_counter()

        # Both calls start before either is awaited: the branches run at the same time.
        segmentation, detections = await _both(self._segmenter.segment.remote(image),
                                               self._detector.detect.remote(image),
                                               args.model_timeout_s)
        models_done = time.perf_counter()

        output, csv_text, jpegs = await asyncio.to_thread(
            report.build_output, image, segmentation, detections,
            image_stem(request.image_url, job_id),
            args.min_score if request.min_score is None else request.min_score,
            request.debug, args.overlay_min_score)
        if s3 is None:
            output.update(report.inline_outputs(csv_text, jpegs))
        else:
            output.update(await asyncio.to_thread(
                report.upload_outputs, s3, args.outbound,
                report.job_prefix(args.output_prefix, job_id), data,
                image_format, csv_text, jpegs, args.url_expires_s))
        finished = time.perf_counter()

        seg_s = segmentation.finished_at - segmentation.started_at
        det_s = detections.finished_at - detections.started_at
        overlap_s = (min(segmentation.finished_at, detections.finished_at)
                     - max(segmentation.started_at, detections.started_at))
        output["timings_ms"] = {
            "fetch_decode": round((decoded - started) * 1000, 1),
            "segmentation": round(seg_s * 1000, 1),
            "detection": round(det_s * 1000, 1),
            "branches_overlap": round(max(0.0, overlap_s) * 1000, 1),
            "models_wall": round((models_done - decoded) * 1000, 1),
            "postprocess": round((finished - models_done) * 1000, 1),
            "total": round((finished - started) * 1000, 1),
        }
        output["detection_batch_size"] = detections.batch_size
        return output


def build_dental_app(args: DentalArgs | None = None) -> Application:
    """The dental-pano graph: both model deployments bound into the pipeline."""
    args = args or DentalArgs()
    segmenter = ToothSegmenter.bind(**args.segmenter_kwargs())
    detector = FindingDetector.options(user_config=args.detector_user_config()).bind(
        **args.detector_kwargs())
    return DentalPipeline.bind(segmenter, detector, args.model_dump())
