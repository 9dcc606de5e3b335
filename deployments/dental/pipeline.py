"""The dental-pano endpoint's logic, without Ray: a job in, its output out.

    job ─► fetch + decode ─┬─► segment(image) ─┐
                           └─► detect(image)  ─┴─► DentalReport ─► inline | upload (S3)

`segment` and `detect` are async callables (the Serve deployment passes its handles'
`.remote`; tests pass plain coroutines). Both start before either is awaited, so the
models run at the same time; if one fails or time runs out, the other is cancelled.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np

from deployments.common.errors import InputError, input_error_in, parse_input
from deployments.common.fetch import S3Config, fetch_input
from deployments.common.uploads import job_prefix
from deployments.dental.config import DentalArgs, DentalInput
from deployments.dental.image import decode_image, image_stem
from deployments.dental.report import build_report
from deployments.dental.structures import Detections, SegmentationResult

Segment = Callable[[np.ndarray], Awaitable[SegmentationResult]]
Detect = Callable[[np.ndarray], Awaitable[Detections]]


class DentalAnalyzer:
    """`run(job)`: a RunPod-shaped job in, the endpoint's output (a dict) out; InputError
    for the caller's mistakes."""

    def __init__(self, segment: Segment, detect: Detect, args: DentalArgs) -> None:
        self._segment = segment
        self._detect = detect
        self._args = args

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
        request = parse_input(DentalInput, job["input"])
        job_id = str(job.get("id") or uuid.uuid4())
        s3 = S3Config.from_request(job.get("s3Config"))

        data = await asyncio.to_thread(fetch_input, request.image_url, args.max_image_bytes,
                                       args.outbound, args.fetch_timeout_s, s3)
        image, image_format = await asyncio.to_thread(decode_image, data, args.max_image_pixels)
        decoded = time.perf_counter()
        segmentation, detections = await self._models(image)
        models_done = time.perf_counter()

        report = await asyncio.to_thread(
            build_report, image, segmentation, detections, image_stem(request.image_url, job_id),
            args.min_score if request.min_score is None else request.min_score,
            request.debug, args.overlay_min_score)
        if s3 is None:
            output = report.inline()
        else:
            output = await asyncio.to_thread(
                report.upload, s3, args.outbound, job_prefix(args.output_prefix, job_id), data,
                image_format, args.url_expires_s)
        finished = time.perf_counter()

        output["timings_ms"] = timings_ms(segmentation, detections, started=started,
                                          decoded=decoded, models_done=models_done,
                                          finished=finished)
        output["detection_batch_size"] = detections.batch_size
        return output

    async def _models(self, image: np.ndarray) -> tuple[SegmentationResult, Detections]:
        """Both models on one image at the same time, within `model_timeout_s`; on an error,
        timeout or cancellation neither call is left running."""
        calls = (self._segment(image), self._detect(image))
        tasks = [asyncio.ensure_future(call) for call in calls]
        try:
            segmentation, detections = await asyncio.wait_for(asyncio.gather(*tasks),
                                                              self._args.model_timeout_s)
        except BaseException as exc:
            cancel(calls, tasks)
            if isinstance(exc, asyncio.TimeoutError):
                raise TimeoutError(f"the dental models took longer than "
                                   f"{self._args.model_timeout_s:g} s") from None
            if isinstance(exc, Exception) and (error := input_error_in(exc)) is not None:
                raise error from None
            raise
        return segmentation, detections


def timings_ms(segmentation: SegmentationResult, detections: Detections, *, started: float,
               decoded: float, models_done: float, finished: float) -> dict[str, float]:
    """The stages' milliseconds: the pipeline's own (perf_counter) and each model's call
    (wall clock), with how long the two calls overlapped."""
    overlap_s = (min(segmentation.finished_at, detections.finished_at)
                 - max(segmentation.started_at, detections.started_at))
    return {name: round(seconds * 1000, 1) for name, seconds in {
        "fetch_decode": decoded - started,
        "segmentation": segmentation.finished_at - segmentation.started_at,
        "detection": detections.finished_at - detections.started_at,
        "branches_overlap": max(0.0, overlap_s),
        "models_wall": models_done - decoded,
        "postprocess": finished - models_done,
        "total": finished - started,
    }.items()}


def cancel(calls: tuple[Awaitable[Any], ...], tasks: list[asyncio.Future[Any]]) -> None:
    """Cancel the tasks awaiting the calls, and the calls themselves where they can be
    (a Serve `DeploymentResponse`: cancelling the task awaiting it does not stop the
    replica's work)."""
    for call, task in zip(calls, tasks, strict=True):
        task.cancel()
        if callable(getattr(call, "cancel", None)):
            call.cancel()
