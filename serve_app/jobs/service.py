"""The job facade's verbs (submit, status, stream, cancel, retry, purge, health),
independent of HTTP: the routes translate requests into these calls."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from serve_app.jobs.dispatcher import Dispatcher
from serve_app.jobs.errors import UnknownEndpoint, UnknownJob
from serve_app.jobs.metrics import JobMetrics
from serve_app.jobs.model import Clock, Delivery, Job, JobQuery, JobStatus, NewJob, now_ms
from serve_app.jobs.settings import EndpointSpec, JobSettings
from serve_app.jobs.store import JobStore


@dataclass(frozen=True)
class Submission:
    """A validated `/run` or `/runsync` body."""

    input: dict[str, Any]
    webhook: str | None = None
    execution_timeout_ms: int | None = None
    ttl_ms: int | None = None
    low_priority: bool = False
    s3_config: dict[str, Any] | None = None
    #: who submitted it (an opaque id); None when the API is open
    owner: str | None = None


class JobService:
    """Verbs take `scope`: the owner whose jobs the caller may see, None for all."""

    def __init__(self, store: JobStore, dispatcher: Dispatcher,
                 endpoints: dict[str, EndpointSpec], settings: JobSettings,
                 clock: Clock = now_ms, metrics: JobMetrics | None = None) -> None:
        self._store = store
        self._metrics = metrics or JobMetrics()
        self._dispatcher = dispatcher
        self._endpoints = endpoints
        self._settings = settings
        self._clock = clock
        #: told of every job queued here (external workers' takes wait for them)
        self._queued_listeners: list[Callable[[str], None]] = []

    def on_queued(self, listener: Callable[[str], None]) -> None:
        self._queued_listeners.append(listener)

    def queued(self, endpoint: str) -> None:
        """Jobs were queued on `endpoint`: wake whoever runs them."""
        self._dispatcher.wake(endpoint)
        for listener in self._queued_listeners:
            listener(endpoint)

    def endpoint(self, endpoint_id: str) -> EndpointSpec:
        spec = self._endpoints.get(endpoint_id)
        if spec is None:
            raise UnknownEndpoint(f"unknown endpoint {endpoint_id!r}; serving: "
                                  f"{', '.join(sorted(self._endpoints))}")
        return spec

    async def _job(self, endpoint_id: str, job_id: str, scope: str | None) -> Job:
        self.endpoint(endpoint_id)
        job = await self._store.get(job_id)
        # Another owner's job is answered exactly like a missing one.
        if job is None or job.endpoint != endpoint_id or scope not in (None, job.owner):
            raise UnknownJob(f"no job {job_id!r} on endpoint {endpoint_id!r} "
                             "(unknown, or expired and removed)")
        return job

    async def submit(self, endpoint_id: str, submission: Submission, sync: bool) -> Job:
        spec = self.endpoint(endpoint_id)
        policy = self._settings.policy
        retention = self._settings.runsync_retention_ms if sync else self._settings.run_retention_ms
        job = NewJob(
            id=f"{'sync-' if sync else ''}{uuid.uuid4()}-u1",
            endpoint=endpoint_id,
            input=submission.input,
            execution_timeout_ms=submission.execution_timeout_ms
            or policy.execution_timeout_default_ms,
            ttl_ms=submission.ttl_ms or policy.ttl_default_ms,
            retention_ms=retention,
            low_priority=submission.low_priority,
            webhook=submission.webhook,
            s3_config=submission.s3_config,
            owner=submission.owner,
            created_at=self._clock(),
        )
        # With a slot free here, the store claims the job for this replica as it stores it
        # (unless jobs are queued ahead of it), and it starts without the queue's round trip.
        claim = self._dispatcher.reserve(endpoint_id)
        try:
            stored = await self._store.create(job, spec.max_queue, claim)
        except BaseException:
            if claim is not None:
                self._dispatcher.unreserve(endpoint_id)
            raise
        self._metrics.submitted(endpoint_id)
        if claim is None or stored.status is JobStatus.IN_QUEUE:
            if claim is not None:
                self._dispatcher.unreserve(endpoint_id)
            self.queued(endpoint_id)
        else:
            # The store returns no input (status answers never show it): run this one's.
            self._dispatcher.adopt(endpoint_id, replace(stored, input=job.input))
        return stored

    async def status(self, endpoint_id: str, job_id: str, scope: str | None,
                     ttl_ms: int | None = None) -> Job:
        job = await self._job(endpoint_id, job_id, scope)
        if ttl_ms is not None:
            await self._store.shorten_ttl(job_id, ttl_ms)
        return job

    async def wait(self, endpoint_id: str, job_id: str, scope: str | None,
                   wait_ms: int, current: Job | None = None) -> Job:
        """The job once it ends, or as it stands when `wait_ms` runs out. `current`: the
        job as the caller just had it from the store (a submission), not read again."""
        deadline = self._clock() + wait_ms
        job = current or await self._job(endpoint_id, job_id, scope)
        while True:
            remaining_s = (deadline - self._clock()) / 1000
            if job.status.terminal or remaining_s <= 0:
                return job
            # An end in this process comes with the job; otherwise read it.
            job = await self._dispatcher.wait_ended(job_id, remaining_s) \
                or await self._job(endpoint_id, job_id, scope)

    async def stream(self, endpoint_id: str, job_id: str, scope: str | None,
                     wait_ms: int) -> tuple[Job, list]:
        """New chunks; waits up to `wait_ms` for the first one while the job runs."""
        deadline = self._clock() + wait_ms
        if scope is not None:
            await self._job(endpoint_id, job_id, scope)  # before draining someone's chunks
        while True:
            self.endpoint(endpoint_id)
            drained = await self._store.drain_stream(job_id)
            if drained is None or drained[0].endpoint != endpoint_id:
                raise UnknownJob(f"no job {job_id!r} on endpoint {endpoint_id!r}")
            job, chunks = drained
            if chunks or job.status.terminal or self._clock() >= deadline:
                return job, chunks
            await asyncio.sleep(min(0.05, max(0.0, (deadline - self._clock()) / 1000)))

    async def cancel(self, endpoint_id: str, job_id: str, scope: str | None) -> Job:
        await self._job(endpoint_id, job_id, scope)
        job = await self._store.cancel(job_id)
        if job is None:
            raise UnknownJob(f"no job {job_id!r} on endpoint {endpoint_id!r}")
        if job.status is JobStatus.CANCELLED:
            self._metrics.ended(job)
            self._dispatcher.interrupt(endpoint_id, job_id)
            if job.webhook:
                self._dispatcher.wake_webhooks()
        return job

    async def retry(self, endpoint_id: str, job_id: str, scope: str | None) -> Job:
        await self._job(endpoint_id, job_id, scope)
        job = await self._store.retry(job_id)
        if job is None:
            raise UnknownJob(f"no job {job_id!r} on endpoint {endpoint_id!r}")
        self.queued(endpoint_id)
        return job

    async def purge_queue(self, endpoint_id: str, scope: str | None) -> int:
        self.endpoint(endpoint_id)
        return await self._store.purge_queue(endpoint_id, scope)

    async def dead_letters(self, endpoint_id: str, scope: str | None, limit: int) -> list[Job]:
        self.endpoint(endpoint_id)
        return await self._store.list_jobs(
            JobQuery(endpoint=endpoint_id, statuses=(JobStatus.FAILED,), owner=scope, limit=limit))

    async def list_jobs(self, query: JobQuery) -> list[Job]:
        """A page of jobs; `query.owner` is the caller's scope."""
        if query.endpoint is not None:
            self.endpoint(query.endpoint)
        return await self._store.list_jobs(query)

    async def webhook_deliveries(self, endpoint_id: str, job_id: str,
                                 scope: str | None) -> list[Delivery]:
        """The job's webhook deliveries with every attempt's outcome."""
        await self._job(endpoint_id, job_id, scope)
        return await self._store.deliveries(job_id)

    async def health(self, endpoint_id: str, scope: str | None) -> dict[str, dict[str, int]]:
        spec = self.endpoint(endpoint_id)
        counts = await self._store.counts(endpoint_id, scope)
        running = self._dispatcher.running_count(endpoint_id)
        return {
            "jobs": {
                "completed": counts["COMPLETED"],
                "failed": counts["FAILED"] + counts["TIMED_OUT"],
                "inProgress": counts["IN_PROGRESS"],
                "inQueue": counts["IN_QUEUE"],
                "retried": counts["retried"],
            },
            # Workers are this replica's job slots for the endpoint.
            "workers": {
                "idle": spec.max_concurrency - running,
                "running": running,
                "initializing": 0,
                "ready": spec.max_concurrency,
                "throttled": 0,
                "unhealthy": 0,
            },
        }
