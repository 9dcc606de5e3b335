"""Serve deployments of the PD family: the batched segmenter and the job pipeline.

`PDSegmenter` owns the UNet. Each signal's windows go one by one into a
`@serve.batch` queue, so windows of concurrent requests share model calls and
throughput grows with load. `PDPipeline` is the `pd-segmentation` endpoint: it takes a
RunPod-shaped job, checks and preprocesses the signals, fans the kept rows out to the
segmenter, and returns the original service's JSON report (or its HTML page).
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import os
from typing import Any

import numpy as np
from ray import serve
from ray.serve.handle import DeploymentHandle

from deployments.common.batching import (
    BATCH_KNOBS,
    apply_batch_knobs,
    call_per_item,
    raise_if_error,
)
from deployments.common.device import select_device
from deployments.common.errors import InputError, parse_input
from deployments.common.fetch import S3Config
from deployments.common.metrics import ModelMetrics
from deployments.pd import processing, report
from deployments.pd.config import DEFAULT_WEIGHTS_URI, PDArgs
from deployments.pd.inputs import PDInput, load_signals
from deployments.pd.processing import Segmentation, SegmentSettings, segmentation_from_logits

# Batch sizes kept for `batch_stats` (tests and the benchmark read them).
BATCH_HISTORY = 10_000
HEALTH_TIMEOUT_S = 10.0
# `@serve.batch` defaults until `reconfigure` sets others (build_pd_app sets PDArgs').
MAX_BATCH_SIZE = 64
BATCH_WAIT_TIMEOUT_S = 0.005
#: the user_config keys of segmentation itself
SEGMENT_KNOBS = frozenset({"threshold", "window_size", "overlap"})
# `segment` calls one segmenter replica takes at once, in jobs of the most signals a job
# may carry (PDLimits.max_rows): PDPipeline makes one call per signal, and calls past the
# limit wait in Serve's router, which retries with backoff of up to 0.5 s while the
# replica idles (at 128, 32 concurrent 8-signal jobs ran at a third of the model's speed).
# A waiting call costs a coroutine; memory is bounded upstream by PDLimits.
FULL_JOBS_AT_ONCE = 8
@serve.deployment(ray_actor_options={"num_cpus": 0.25})
class PDSegmenter:
    """UNet1D segmentation of preprocessed signals, windows batched across requests.

    user_config keys: threshold, window_size, overlap, max_batch_size (windows per
    model call), batch_wait_timeout_s. All apply to the next request, with no restart.
    """

    def __init__(self, weights_uri: str = DEFAULT_WEIGHTS_URI, device: str = "auto",
                 gpu_memory_fraction: float | None = None) -> None:
        # torch loads here, in the replica, never when the app is imported or built.
        import torch

        from deployments.pd.inference import PDModel

        self.weights_uri = weights_uri
        self.model = PDModel.from_uri(weights_uri, select_device(device, gpu_memory_fraction))
        self._torch_threads = torch.get_num_threads()
        self._metrics = ModelMetrics("PDSegmenter")
        self.settings = SegmentSettings()
        self.batching = apply_batch_knobs(self._predict, {})
        self._batch_sizes: collections.deque[int] = collections.deque(maxlen=BATCH_HISTORY)

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        unknown = set(user_config) - SEGMENT_KNOBS - BATCH_KNOBS
        if unknown:
            raise ValueError(f"unknown PDSegmenter user_config keys: {sorted(unknown)}")
        # Built whole and validated before it replaces the old one: a bad value leaves
        # the running settings in place.
        settings = dataclasses.replace(
            self.settings, **{k: user_config[k] for k in SEGMENT_KNOBS & set(user_config)})
        self.batching = apply_batch_knobs(self._predict, user_config)
        self.settings = settings

    def check_health(self) -> None:
        """Serve's periodic probe: the model answers a forward of one zero window on its
        device (about a millisecond on a CPU). Raising marks the replica unhealthy, and
        Serve replaces it."""
        logits = self.model.predict_windows(
            np.zeros((1, self.settings.window_size), dtype=np.float32))
        if logits.shape != (1, self.settings.window_size) or not np.isfinite(logits).all():
            raise RuntimeError(f"the PD model answered a probe window with shape "
                               f"{logits.shape} or non-finite logits")

    async def segment(self, signal: np.ndarray) -> Segmentation:
        """PD probabilities and regions of one preprocessed 1-D signal."""
        settings = self.settings  # one request, one set of settings, even mid-reconfigure
        signal = np.asarray(signal, dtype=np.float32)
        windows = processing.split_windows(signal, settings.window_size, settings.overlap)
        logits = await asyncio.gather(*(self._predict(window) for window in windows))
        return segmentation_from_logits(np.stack([raise_if_error(row) for row in logits]),
                                        signal.size, settings)

    @serve.batch(max_batch_size=MAX_BATCH_SIZE, batch_wait_timeout_s=BATCH_WAIT_TIMEOUT_S)
    async def _predict(self, windows: list[np.ndarray]) -> list[np.ndarray | Exception]:
        self._batch_sizes.append(len(windows))
        # Windows cut before and after a window_size change can share a batch: run
        # each length as its own stack.
        by_length: dict[int, list[int]] = collections.defaultdict(list)
        for i, window in enumerate(windows):
            by_length[window.size].append(i)
        out: list[np.ndarray | Exception] = [np.empty(0)] * len(windows)
        for indices in by_length.values():
            # On the event loop, not in a worker thread: the loop has nothing better to do
            # meanwhile, and a thread trading the GIL with the loop between torch ops
            # slowed each forward and halved the batches formed (28 windows, now 63, at
            # c=32 in bench/pd_throughput.py). Windows arriving meanwhile join the next batch.
            # Each window gets its own logits or its own error: a window that fails fails
            # only its own request, not the others batched with it.
            with self._metrics.model_call(len(indices)):
                logits = call_per_item(self._predict_stack, [windows[i] for i in indices])
            for i, row in zip(indices, logits, strict=True):
                out[i] = row
        return out

    def _predict_stack(self, windows: list[np.ndarray]) -> np.ndarray:
        return self.model.predict_windows(np.stack(windows))

    async def batch_stats(self, reset: bool = False) -> dict[str, Any]:
        """The window batch sizes formed so far (most recent last); optionally clear them."""
        sizes = list(self._batch_sizes)
        if reset:
            self._batch_sizes.clear()
        return {"batch_sizes": sizes, **self.batching}

    async def info(self) -> dict[str, Any]:
        return {"weights_uri": self.weights_uri, "device": str(self.model.device),
                "pid": os.getpid(), "torch_threads": self._torch_threads,
                "parameters": self.model.parameters,
                "settings": dataclasses.asdict(self.settings), "batching": dict(self.batching)}


@dataclasses.dataclass(frozen=True)
class _Analysis:
    report: dict[str, Any]
    processed: np.ndarray
    segmentations: list[Segmentation]


# Orchestration (its own work is preprocessing and the report, in threads): a small CPU
# share, so configs/serve.yaml fits two cores.
@serve.deployment(ray_actor_options={"num_cpus": 0.05}, max_ongoing_requests=64)
class PDPipeline:
    """The `pd-segmentation` endpoint: RunPod-shaped job in, the original's report out."""

    def __init__(self, segmenter: DeploymentHandle, args: PDArgs) -> None:
        self.segmenter = segmenter
        self.args = args
        self.preprocess_params = processing.PreprocessParams(
            chunk_rows=self.args.chunk_rows, min_peak=self.args.min_peak)

    async def run(self, job: dict[str, Any]) -> dict[str, Any]:
        """`{"id", "input": {...}, "s3Config"?}` -> the JSON report."""
        return (await self._analyse(job)).report

    async def render_html(self, job: dict[str, Any]) -> str:
        """The same analysis as `run`, as an HTML page with a plot per signal."""
        analysis = await self._analyse(job)
        return await asyncio.to_thread(report.render_html, analysis.report, analysis.processed,
                                       analysis.segmentations, self.args.limits.max_plot_rows)

    async def healthz(self) -> dict[str, Any]:
        model = await asyncio.wait_for(self.segmenter.info.remote(), HEALTH_TIMEOUT_S)
        return {"status": "ok", "model_loaded": True, "model": model}

    async def _analyse(self, job: dict[str, Any]) -> _Analysis:
        if not isinstance(job, dict):
            raise InputError("the job must be a JSON object with an input")
        request = parse_input(PDInput, job.get("input"))
        s3 = S3Config.from_request(job.get("s3Config"))
        signals = await asyncio.to_thread(load_signals, request, self.args.limits, s3)
        processed, keep = await asyncio.to_thread(processing.preprocess, signals,
                                                  self.preprocess_params)
        kept_rows = [int(i) for i in np.flatnonzero(keep)]
        # One call per signal: signals of one job spread over segmenter replicas, and
        # their windows join other jobs' windows in the replicas' batches.
        segmentations = await asyncio.wait_for(
            asyncio.gather(*(self.segmenter.segment.remote(processed[row])
                             for row in kept_rows)),
            self.args.segment_timeout_s)
        return _Analysis(report.build_report(len(signals), kept_rows, processed, segmentations),
                         processed, list(segmentations))


def build_pd_app(args: PDArgs) -> serve.Application:
    """The PD graph: PDPipeline -> PDSegmenter, bound from one PDArgs."""
    segmenter = PDSegmenter.options(
        user_config=args.segmenter_user_config(),
        max_ongoing_requests=FULL_JOBS_AT_ONCE * args.limits.max_rows,
    ).bind(args.weights_uri, args.device, args.gpu_memory_fraction)
    return PDPipeline.bind(segmenter, args)
