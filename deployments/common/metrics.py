"""Batch sizes and inference time of a model deployment, as Ray metrics (exported on each
node's metrics port with Serve's own, prefixed `ray_`)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from ray.util.metrics import Histogram

BATCH_BOUNDARIES = [1, 2, 4, 8, 16, 32, 64, 128, 256]
#: milliseconds, 0.05 ms to ~40 s in steps of 20%: Prometheus (and Ray's export) can only
#: place an observation within its bucket, so sums and quantiles are as fine as these
MS_BOUNDARIES = [round(0.05 * 1.2 ** i, 3) for i in range(75)]


class ModelMetrics:
    def __init__(self, deployment: str) -> None:
        self._tags = {"deployment": deployment}
        self._batch = Histogram("rsp_model_batch_size", "Requests per model call",
                                BATCH_BOUNDARIES, tag_keys=("deployment",))
        self._inference = Histogram("rsp_model_inference_ms", "Time of one model call",
                                    MS_BOUNDARIES, tag_keys=("deployment",))
        self._wait = Histogram("rsp_model_batch_wait_ms", "Time a request waited for its "
                               "batch to start", MS_BOUNDARIES, tag_keys=("deployment",))
        self._request = Histogram("rsp_model_request_ms", "Time one request spent in the "
                                  "deployment's endpoint method", MS_BOUNDARIES,
                                  tag_keys=("deployment",))

    @contextmanager
    def request(self) -> Iterator[None]:
        """Time one request inside the block."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self._request.observe((time.perf_counter() - start) * 1000, tags=self._tags)

    def batch_started(self, queued_at: list[float]) -> None:
        """A batch starts: each request's wait since `time.perf_counter()` at its arrival."""
        now = time.perf_counter()
        for t in queued_at:
            self._wait.observe((now - t) * 1000, tags=self._tags)

    @contextmanager
    def model_call(self, batch_size: int) -> Iterator[None]:
        """Time the call inside the block and count its batch size."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self._inference.observe((time.perf_counter() - start) * 1000, tags=self._tags)
            self._batch.observe(batch_size, tags=self._tags)
