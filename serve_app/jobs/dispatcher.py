"""The worker loop: claims queued jobs and runs them against endpoint deployments.

Each ingress replica runs one dispatcher. Per endpoint it keeps at most
`max_concurrency` jobs running, each under a lease it renews while the job runs.
The store decides ownership, so several replicas (and restarts) can share one queue.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

from serve_app.jobs.model import Job, JobStatus, now_ms
from serve_app.jobs.store import JobStore
from serve_app.jobs.webhooks import WebhookSender
from serve_app.settings import EndpointSpec, JobSettings

logger = logging.getLogger("ray.serve")

#: how often a running job renews its lease and checks for cancellation
SUPERVISE_INTERVAL_S = 0.5


class EndpointCaller(Protocol):
    """How the dispatcher reaches an endpoint, knowing nothing of what it serves."""

    async def call(self, job: dict[str, Any]) -> Any:
        """Run a unary job and return its output."""

    async def method(self, name: str, *args: Any) -> Any:
        """Call another method of the endpoint (direct routes only)."""

    def stream(self, job: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """Run a job that reports events: {"progress": x}, {"chunk": x}, {"output": x}
        or {"error": message}."""


@dataclass(frozen=True)
class Endpoint:
    id: str
    spec: EndpointSpec
    caller: EndpointCaller
    #: the deployment reports events (RunPod handlers: progress, streamed chunks)
    events: bool = False


@dataclass(frozen=True)
class Outcome:
    status: JobStatus
    output: Any = None
    error: str | None = None


def error_message(exc: BaseException) -> str:
    """The user's exception, not Ray's wrapper around it."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException):
        exc = cause
    from deployments.common.errors import InputError

    if isinstance(exc, InputError):
        return str(exc)
    return f"{exc.__class__.__name__}: {exc}"


def job_payload(job: Job) -> dict[str, Any]:
    """What an endpoint receives: RunPod's job shape."""
    payload: dict[str, Any] = {"id": job.id, "input": job.input}
    if job.s3_config:
        payload["s3Config"] = job.s3_config
    return payload


class Dispatcher:
    def __init__(self, store: JobStore, endpoints: dict[str, Endpoint], settings: JobSettings,
                 webhooks: WebhookSender) -> None:
        self._store = store
        self._endpoints = endpoints
        self._settings = settings
        self._webhooks = webhooks
        self.worker_id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._wake = {name: asyncio.Event() for name in endpoints}
        self._running: dict[str, dict[str, asyncio.Task]] = {name: {} for name in endpoints}
        self._ended: dict[str, asyncio.Event] = {}
        self._loops: list[asyncio.Task] = []

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._loops = [loop.create_task(self._endpoint_loop(e)) for e in self._endpoints.values()]
        self._loops.append(loop.create_task(self._sweep_loop()))
        self._store.watch_ended(self.notify_ended)

    async def stop(self) -> None:
        for task in self._loops:
            task.cancel()
        for running in self._running.values():
            for task in running.values():
                task.cancel()

    # -- signals from the service ------------------------------------------------------
    def wake(self, endpoint: str) -> None:
        self._wake[endpoint].set()

    def running_count(self, endpoint: str) -> int:
        return len(self._running[endpoint])

    def interrupt(self, endpoint: str, job_id: str) -> None:
        """Cancel a job this replica is running (the store already says CANCELLED)."""
        task = self._running.get(endpoint, {}).get(job_id)
        if task is not None:
            task.cancel()

    def notify_ended(self, job_id: str) -> None:
        event = self._ended.pop(job_id, None)
        if event is not None:
            event.set()

    async def wait_ended(self, job_id: str, timeout_s: float) -> None:
        """Return when the job ends here or the store announces its end, or after a poll
        interval (stores that cannot announce)."""
        event = self._ended.setdefault(job_id, asyncio.Event())
        try:
            await asyncio.wait_for(event.wait(), timeout=min(timeout_s,
                                                             self._settings.poll_interval_s))
        except asyncio.TimeoutError:
            pass

    # -- loops ---------------------------------------------------------------------------
    async def _endpoint_loop(self, endpoint: Endpoint) -> None:
        wake, running = self._wake[endpoint.id], self._running[endpoint.id]
        lease_ms = int(self._settings.lease_s * 1000)
        while True:
            wake.clear()
            free = endpoint.spec.max_concurrency - len(running)
            jobs: list[Job] = []
            if free > 0:
                try:
                    jobs = await self._store.claim(endpoint.id, self.worker_id, lease_ms, free)
                except Exception:
                    logger.exception("claiming jobs for %s failed", endpoint.id)
            for job in jobs:
                task = asyncio.get_running_loop().create_task(self._execute(endpoint, job))
                running[job.id] = task
                task.add_done_callback(lambda _t, jid=job.id: self._job_done(endpoint.id, jid))
            if not jobs:
                try:
                    await asyncio.wait_for(wake.wait(), timeout=self._settings.poll_interval_s)
                except asyncio.TimeoutError:
                    pass

    def _job_done(self, endpoint: str, job_id: str) -> None:
        self._running[endpoint].pop(job_id, None)
        self._wake[endpoint].set()

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(self._settings.sweep_interval_s)
            try:
                for job in await self._store.requeue_expired_leases(
                        self._settings.max_lease_expiries):
                    logger.error("job %s dead-lettered: %s", job.id, job.error)
                    self._webhooks.send(job)
                await self._store.delete_expired()
            except Exception:
                logger.exception("sweeping jobs failed")

    # -- one job -------------------------------------------------------------------------
    async def _execute(self, endpoint: Endpoint, job: Job) -> None:
        work = asyncio.get_running_loop().create_task(self._invoke(endpoint, job))
        try:
            outcome = await self._supervise(job, work)
        except asyncio.CancelledError:
            # Cancelled by the caller (the store already holds CANCELLED) or by shutdown
            # (the lease will expire and the job is requeued).
            work.cancel()
            self.notify_ended(job.id)
            raise
        if outcome is None:
            self.notify_ended(job.id)
            return
        # The final status is written even if this task is cancelled meanwhile.
        finished = await asyncio.shield(self._store.finish(
            job.id, self.worker_id, outcome.status, outcome.output, outcome.error))
        self.notify_ended(job.id)
        if finished is not None:
            self._webhooks.send(finished)

    async def _supervise(self, job: Job, work: asyncio.Task) -> Outcome | None:
        """Wait for the work while renewing the lease; None when the job is no longer ours
        to finish (cancelled, expired, or handed to another worker)."""
        lease_ms = int(self._settings.lease_s * 1000)
        started = job.started_at or now_ms()
        timeout_at = started + job.execution_timeout_ms
        deadline = min(timeout_at, job.expires_at)
        while True:
            remaining_s = (deadline - now_ms()) / 1000
            if remaining_s <= 0:
                work.cancel()
                if now_ms() >= job.expires_at:
                    return None  # past its TTL: the sweeper removes it
                return Outcome(JobStatus.TIMED_OUT, error=(
                    f"execution exceeded policy.executionTimeout of "
                    f"{job.execution_timeout_ms} ms"))
            done, _ = await asyncio.wait({work}, timeout=min(SUPERVISE_INTERVAL_S, remaining_s))
            if done:
                return work.result()
            # Renewing also reads the job back: a cancel made on another replica shows here.
            current = await self._store.renew(job.id, self.worker_id, lease_ms)
            if current is None or current.status is not JobStatus.IN_PROGRESS:
                work.cancel()
                return None

    async def _invoke(self, endpoint: Endpoint, job: Job) -> Outcome:
        payload = job_payload(job)
        try:
            if not endpoint.events:
                return Outcome(JobStatus.COMPLETED, output=await endpoint.caller.call(payload))
            return await self._consume_events(endpoint, job, payload)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            return Outcome(JobStatus.FAILED, error=error_message(exc))

    async def _consume_events(self, endpoint: Endpoint, job: Job,
                              payload: dict[str, Any]) -> Outcome:
        chunks: list[Any] = []
        output: Any = None
        async for event in endpoint.caller.stream(payload):
            if "progress" in event:
                await self._store.set_progress(job.id, self.worker_id, event["progress"])
            elif "chunk" in event:
                chunks.append(event["chunk"])
                await self._store.append_stream(job.id, self.worker_id, [event["chunk"]])
            elif "error" in event:
                return Outcome(JobStatus.FAILED, error=str(event["error"]))
            elif "output" in event:
                output = event["output"]
        if chunks and (output is None or endpoint.spec.aggregate_stream):
            output = chunks
        return Outcome(JobStatus.COMPLETED, output=output)
