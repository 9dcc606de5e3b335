"""The job layer's reports as Ray metrics, exported with Serve's own `ray_serve_*` ones on
each node's metrics export port (Ray prefixes these with `ray_`)."""

from __future__ import annotations

import time

from ray.util.metrics import Counter, Gauge, Histogram
from starlette.types import ASGIApp, Receive, Scope, Send

from deployments.common.metrics import MS_BOUNDARIES
from serve_app.jobs.metrics import JobMetrics
from serve_app.jobs.model import Job

#: milliseconds, from a warm direct call to a long batch job
TIME_BOUNDARIES_MS = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000,
                      30_000, 60_000, 300_000, 1_800_000]



class RayJobMetrics(JobMetrics):
    def __init__(self) -> None:
        by_endpoint = ("endpoint",)
        self._submitted = Counter("rsp_jobs_submitted", "Jobs accepted into the queue",
                                  tag_keys=by_endpoint)
        self._ended = Counter("rsp_jobs_ended", "Jobs that reached a final status",
                              tag_keys=("endpoint", "status"))
        self._delay = Histogram("rsp_job_delay_ms", "Time from submission to the start of "
                                "the run that ended the job", TIME_BOUNDARIES_MS,
                                tag_keys=by_endpoint)
        self._execution = Histogram("rsp_job_execution_ms", "Run time of the run that ended "
                                    "the job", TIME_BOUNDARIES_MS, tag_keys=by_endpoint)
        self._requeued = Counter("rsp_job_requeues", "Runs lost and their jobs queued again",
                                 tag_keys=("endpoint", "cause"))
        self._webhooks = Counter("rsp_webhook_attempts", "Webhook delivery attempts",
                                 tag_keys=("endpoint", "outcome"))
        self._stage = Histogram("rsp_job_stage_ms", "Time a job spent in one stage of its "
                                "path through the ingress (store statements, hand-off to "
                                "the dispatcher, the model call, waking its waiter)",
                                MS_BOUNDARIES, tag_keys=("stage",))
        # Every ingress replica reads the same store, so aggregate with max, not sum.
        self._queued = Gauge("rsp_jobs_in_queue", "Jobs waiting (from the job store)",
                             tag_keys=by_endpoint)
        self._running = Gauge("rsp_jobs_in_progress", "Jobs running (from the job store)",
                              tag_keys=by_endpoint)

    def submitted(self, endpoint: str) -> None:
        self._submitted.inc(tags={"endpoint": endpoint})

    def ended(self, job: Job) -> None:
        tags = {"endpoint": job.endpoint}
        self._ended.inc(tags=tags | {"status": job.status.value})
        if job.delay_time_ms is not None:
            self._delay.observe(job.delay_time_ms, tags=tags)
        if job.execution_time_ms is not None:
            self._execution.observe(job.execution_time_ms, tags=tags)

    def requeued(self, endpoint: str, cause: str) -> None:
        self._requeued.inc(tags={"endpoint": endpoint, "cause": cause})

    def webhook_attempt(self, endpoint: str, outcome: str) -> None:
        self._webhooks.inc(tags={"endpoint": endpoint, "outcome": outcome})

    def queue_state(self, endpoint: str, queued: int, running: int) -> None:
        self._queued.set(queued, tags={"endpoint": endpoint})
        self._running.set(running, tags={"endpoint": endpoint})

    def stage(self, stage: str, seconds: float) -> None:
        self._stage.observe(seconds * 1000, tags={"stage": stage})


class RouteTimer:
    """ASGI middleware: the time each HTTP request spends in the ingress app, from its
    arrival to its last byte sent (`rsp_http_route_ms`; Serve's own latency metrics have
    buckets too coarse to account for a few milliseconds)."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app
        self._histogram: Histogram | None = None  # made in the replica, on first use

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = time.perf_counter()
        try:
            await self._app(scope, receive, send)
        finally:
            if self._histogram is None:
                self._histogram = Histogram("rsp_http_route_ms", "Time an HTTP request spent "
                                            "in the ingress app", MS_BOUNDARIES)
            self._histogram.observe((time.perf_counter() - started) * 1000)
