"""The queue's side of the `runpod` SDK's worker protocol, independent of HTTP.

An endpoint can be served by external workers: unmodified `runpod.serverless.start`
processes that pull jobs (job-take), post results, progress and stream chunks
(job-done, job-stream), ping with the jobs they run, and long-poll for jobs to stop
(job-stop). The store holds everything (leases, the worker registry), so any ingress
replica answers any worker, and a restart loses nothing.

Leases: a take claims jobs under a lease of `workers.lease_s`; each ping extends the
leases of the jobs it names. A worker that stops pinging loses its jobs back to the queue
by the sweeper's usual rules (an attempt counted; FAILED at `max_attempts`).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from serve_app.jobs.errors import UnknownEndpoint, UnknownJob
from serve_app.jobs.metrics import JobMetrics
from serve_app.jobs.model import Clock, Job, JobQuery, JobStatus, now_ms
from serve_app.jobs.settings import EndpointSpec, JobSettings
from serve_app.jobs.store import JobStore

logger = logging.getLogger("ray.serve")

#: why a write of a run that lost its job (cancelled, timed out, re-leased) was refused
NOT_HELD = "the job is no longer this worker's run"
#: how often a held job-stop poll reads the store (ends on this replica wake it at once)
STOP_POLL_S = 1.0


@dataclass(frozen=True)
class Result:
    """What a job-done post did: `accepted` False when the job is no longer this worker's
    run (cancelled, timed out, given to another worker): the worker should drop it."""

    accepted: bool
    status: str
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"accepted": self.accepted, "status": self.status}
        if self.reason:
            body["reason"] = self.reason
        return body


class WorkerService:
    """The worker verbs for the endpoints in `endpoints` (those served by external
    workers). `wake_webhooks` is called when a job ended with a webhook to deliver."""

    def __init__(self, store: JobStore, endpoints: dict[str, EndpointSpec],
                 settings: JobSettings, wake_webhooks: Callable[[], None],
                 clock: Clock = now_ms, metrics: JobMetrics | None = None) -> None:
        self._store = store
        self._endpoints = endpoints
        self._settings = settings
        self._wake_webhooks = wake_webhooks
        self._clock = clock
        self._metrics = metrics or JobMetrics()
        self._lease_ms = int(settings.workers.lease_s * 1000)
        #: takes waiting for a job, per endpoint; a submission here sets and replaces it
        self._queued: dict[str, asyncio.Event] = {}
        #: job-stop polls waiting, per endpoint; a job ending here sets and replaces it
        self._ended: dict[str, asyncio.Event] = {}

    def start(self) -> None:
        self._store.watch_ended(self._on_ended)

    def serves(self, endpoint: str) -> bool:
        return endpoint in self._endpoints

    def _endpoint(self, endpoint: str) -> EndpointSpec:
        spec = self._endpoints.get(endpoint)
        if spec is None:
            raise UnknownEndpoint(f"endpoint {endpoint!r} is not served by external workers; "
                                  f"those are: {', '.join(sorted(self._endpoints)) or 'none'}")
        return spec

    # -- wake-ups ------------------------------------------------------------------------
    def notify_queued(self, endpoint: str) -> None:
        """A job was queued on `endpoint` (here): waiting takes claim at once."""
        event = self._queued.pop(endpoint, None)
        if event is not None:
            event.set()

    def _on_ended(self, _job_id: str, job: Job | None) -> None:
        # An end elsewhere (job None) is found by the polls themselves.
        if job is not None and (event := self._ended.pop(job.endpoint, None)) is not None:
            event.set()

    @staticmethod
    async def _wait(events: dict[str, asyncio.Event], endpoint: str, timeout_s: float) -> None:
        event = events.setdefault(endpoint, asyncio.Event())
        try:
            await asyncio.wait_for(event.wait(), timeout=max(0.0, timeout_s))
        except asyncio.TimeoutError:
            pass

    # -- the protocol --------------------------------------------------------------------
    async def take(self, endpoint: str, worker_id: str, limit: int) -> list[Job]:
        """Up to `limit` jobs for the worker, waiting up to `workers.take_wait_s` for the
        first: normal before low priority before batch requests, and batch requests at
        most their share (`batch_share`) of what the worker asked for."""
        self._endpoint(endpoint)
        await self._store.worker_seen(endpoint, worker_id, took=True)
        deadline = self._clock() + self._settings.workers.take_wait_s * 1000
        while True:
            jobs = await self._store.claim(endpoint, worker_id, self._lease_ms, limit,
                                           self._settings.batch_slots(limit))
            remaining_s = (deadline - self._clock()) / 1000
            if jobs or remaining_s <= 0:
                return jobs
            # Jobs queued on other replicas are found by polling.
            await self._wait(self._queued, endpoint,
                             min(remaining_s, self._settings.poll_interval_s))

    async def ping(self, endpoint: str, worker_id: str, job_ids: list[str],
                   version: str | None) -> None:
        """The worker is alive and runs `job_ids`: their leases are extended."""
        self._endpoint(endpoint)
        await self._store.worker_seen(endpoint, worker_id, reported=job_ids, version=version,
                                      lease_ms=self._lease_ms)

    async def stops(self, endpoint: str, worker_id: str) -> list[str]:
        """Jobs the worker must stop (cancelled, timed out, or no longer its run), waiting
        up to `workers.stop_wait_s` for one."""
        self._endpoint(endpoint)
        deadline = self._clock() + self._settings.workers.stop_wait_s * 1000
        try:
            while True:
                stops = await self._store.worker_stops(endpoint, worker_id)
                remaining_s = (deadline - self._clock()) / 1000
                if stops or remaining_s <= 0:
                    return stops
                await self._wait(self._ended, endpoint, min(remaining_s, STOP_POLL_S))
        except asyncio.CancelledError:
            # The worker's connection dropped mid-poll. The SDK never abandons a poll it
            # waits on (it gives up after 90 s, this answers within stop_wait_s), so its
            # process died: its jobs run again now rather than when its lease ends, which
            # its forked pinger, outliving it, could otherwise put off indefinitely.
            await asyncio.shield(self._lost(endpoint, worker_id))
            raise

    async def _lost(self, endpoint: str, worker_id: str) -> None:
        running = await self._store.list_jobs(JobQuery(
            endpoint=endpoint, statuses=(JobStatus.IN_PROGRESS,), limit=10_000))
        for job in running:
            if job.worker_id == worker_id and job.lease is not None:
                logger.warning("job %s: worker %s went away; queueing it again", job.id,
                               worker_id)
                after = await self._store.release(job.id, job.lease,
                                                  f"worker {worker_id} went away",
                                                  self._settings.max_attempts)
                if after is not None and after.status.terminal:
                    self._metrics.ended(after)  # dead-lettered
                elif after is not None:
                    self._metrics.requeued(endpoint, "worker_lost")
        self.notify_queued(endpoint)

    async def _held(self, endpoint: str, worker_id: str, job_id: str) -> Job | Result:
        """The job while this worker's run holds it, else why not."""
        self._endpoint(endpoint)
        job = await self._store.get(job_id)
        if job is None or job.endpoint != endpoint:
            raise UnknownJob(f"no job {job_id!r} on endpoint {endpoint!r} "
                             "(unknown, or expired and removed)")
        if job.status is not JobStatus.IN_PROGRESS or job.worker_id != worker_id:
            reason = (f"the job is {job.status.value}" if job.status.terminal
                      else f"the job is no longer run by worker {worker_id}")
            return Result(False, job.status.value, reason)
        return job

    async def done(self, endpoint: str, worker_id: str, job_id: str,
                   body: dict[str, Any]) -> Result:
        """A job-done post: a progress update (`status: IN_PROGRESS`), an error, or the
        final output. `stopPod` (the handler asked for a fresh worker) is logged: the
        worker process itself exits when its config says `refresh_worker`."""
        held = await self._held(endpoint, worker_id, job_id)
        if isinstance(held, Result):
            return held
        if body.get("stopPod"):
            logger.info("worker %s of %s asked to be refreshed after job %s", worker_id,
                        endpoint, job_id)
        if body.get("status") == JobStatus.IN_PROGRESS.value:
            ok = await self._store.set_progress(job_id, held.lease or "", body.get("output"))
            return Result(ok, JobStatus.IN_PROGRESS.value, None if ok else NOT_HELD)
        error = body.get("error")
        if error:
            status, message = JobStatus.FAILED, error if isinstance(error, str) \
                else json.dumps(error)
        else:
            status, message = JobStatus.COMPLETED, None
        ended = await self._store.finish(job_id, held.lease or "", status, body.get("output"),
                                         message)
        if ended is None:
            return Result(False, held.status.value, NOT_HELD)
        self._metrics.ended(ended)
        if ended.webhook:
            self._wake_webhooks()
        return Result(True, ended.status.value)

    async def stream(self, endpoint: str, worker_id: str, job_id: str,
                     body: dict[str, Any]) -> Result:
        """A job-stream post: one chunk (`output`) for `/stream`."""
        held = await self._held(endpoint, worker_id, job_id)
        if isinstance(held, Result):
            return held
        ok = await self._store.append_stream(job_id, held.lease or "", [body.get("output")])
        return Result(ok, JobStatus.IN_PROGRESS.value, None if ok else NOT_HELD)

    # -- what operators see --------------------------------------------------------------
    async def health(self, endpoint: str) -> dict[str, int]:
        """RunPod's `workers` counts: live workers (heard from within a lease) are
        initializing until they first ask for a job, then running or idle; those silent
        longer are unhealthy until forgotten."""
        self._endpoint(endpoint)
        now = self._clock()
        forget_ms = int(self._settings.workers.forget_after_s * 1000)
        counts = dict.fromkeys(("idle", "running", "initializing", "ready", "throttled",
                                "unhealthy"), 0)
        for worker in await self._store.workers(endpoint, now - forget_ms):
            if now - worker.last_seen > self._lease_ms:
                counts["unhealthy"] += 1
            elif worker.last_take is None:
                counts["initializing"] += 1
            else:
                counts["running" if worker.running else "idle"] += 1
        counts["ready"] = counts["idle"] + counts["running"]
        return counts

    async def sweep(self) -> bool:
        """End the jobs past their execution timeout (the job-stop channel then tells their
        workers); True when one has a webhook to deliver."""
        late = await self._store.time_out_running(list(self._endpoints))
        for job in late:
            logger.warning("job %s timed out on worker %s", job.id, job.worker_id)
            self._metrics.ended(job)
        return any(job.webhook for job in late)
