"""The worker loop: claims queued jobs and runs them against endpoints.

Each ingress replica runs one dispatcher. Per endpoint it keeps at most
`max_concurrency` jobs running, each under a lease it renews while the job runs. The
store decides ownership, so several replicas (and restarts) share one queue.

Execution is at-least-once. A job runs again when its run is lost to the
infrastructure (the caller raises `WorkerLost`, or the lease runs out because this
replica died) or when this replica stops (the job is handed back). The job's own errors
end it at once. Store errors while a job runs are retried until its lease would run out,
so a computed output is not dropped by a brief database outage.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from serve_app.jobs.endpoints import Endpoint, job_payload
from serve_app.jobs.errors import JobFailed, WorkerLost, logged_internal_error
from serve_app.jobs.metrics import JobMetrics
from serve_app.jobs.model import Claim, Clock, Job, JobStatus, now_ms
from serve_app.jobs.settings import JobSettings
from serve_app.jobs.store import TIMED_OUT_MESSAGE, JobStore
from serve_app.jobs.webhooks import WebhookDeliverer

logger = logging.getLogger("ray.serve")

T = TypeVar("T")

#: how often a running job renews its lease and checks for cancellation (at most; a
#: short lease is renewed four times per lease)
SUPERVISE_INTERVAL_S = 0.5
#: first wait before a failed store write is tried again; it doubles up to the cap
STORE_RETRY_S, STORE_RETRY_MAX_S = 0.05, 1.0
#: first wait before a run lost to the infrastructure is queued again; it doubles
LOST_RETRY_S = 0.5


@dataclass(frozen=True)
class Outcome:
    """How a run ended: a terminal state to write, or (`lost`) a cause to requeue for."""

    status: JobStatus | None = None
    output: Any = None
    error: str | None = None
    lost: str | None = None


class LeaseLost(Exception):
    """The run may no longer write the job: it was cancelled, ended, or handed over."""


@dataclass
class _End:
    """Waiters for one job's end, and when the store announced it."""

    event: asyncio.Event = field(default_factory=asyncio.Event)
    at: float = 0.0
    #: the job as it ended, when it ended in this process
    job: Job | None = None
    waiting: int = 0


@dataclass
class Run:
    job: Job
    #: until when the lease is surely ours: the last renewal plus the lease
    held_until: int

    @property
    def lease(self) -> str:
        assert self.job.lease is not None
        return self.job.lease


class Dispatcher:
    def __init__(self, store: JobStore, endpoints: dict[str, Endpoint], settings: JobSettings,
                 webhooks: WebhookDeliverer, clock: Clock = now_ms,
                 metrics: JobMetrics | None = None) -> None:
        self._store = store
        self._metrics = metrics or JobMetrics()
        self._endpoints = endpoints
        self._settings = settings
        self._webhooks = webhooks
        self._clock = clock
        self._lease_ms = int(settings.lease_s * 1000)
        self._renew_s = min(SUPERVISE_INTERVAL_S, settings.lease_s / 4)
        self.worker_id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._wake = {name: asyncio.Event() for name in endpoints}
        #: when a submission first woke each endpoint's loop since its last claim
        self._woken_at: dict[str, float] = {}
        self._wake_webhooks = asyncio.Event()
        self._running: dict[str, dict[str, asyncio.Task]] = {name: {} for name in endpoints}
        #: whether jobs may wait in the store that this replica had no room for
        self._backlog: dict[str, bool] = {name: True for name in endpoints}
        #: slots promised to submissions in flight (`reserve`)
        self._reserved: dict[str, int] = {name: 0 for name in endpoints}
        #: the batch requests among the running jobs
        self._running_batch: dict[str, set[str]] = {name: set() for name in endpoints}
        self._ended: dict[str, _End] = {}
        #: more work for the sweep loop (other parts of the job layer); each returns
        #: whether it left webhooks to deliver
        self._sweepers: list[Callable[[], Awaitable[bool]]] = []
        #: endpoints run elsewhere whose queue gauges this replica reports too
        self._gauged: list[str] = []
        self._loops: list[asyncio.Task] = []
        self._stopping = False

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._loops = [loop.create_task(self._endpoint_loop(e)) for e in self._endpoints.values()]
        self._loops += [loop.create_task(self._sweep_loop()),
                        loop.create_task(self._webhook_loop())]
        self._store.watch_ended(self._on_ended)

    async def stop(self) -> None:
        """Stop claiming and hand the jobs running here back to the queue at once, rather
        than leave them until their leases expire."""
        self._stopping = True
        for task in self._loops:
            task.cancel()
        running = [t for tasks in self._running.values() for t in tasks.values()]
        for task in running:
            task.cancel()
        await asyncio.gather(*self._loops, *running, return_exceptions=True)

    def add_sweeper(self, sweep: Callable[[], Awaitable[bool]]) -> None:
        """Run `sweep` on every sweep interval (before `start`)."""
        self._sweepers.append(sweep)

    def report_queues_of(self, endpoints: list[str]) -> None:
        """Report the queue gauges of these endpoints too (ones external workers run)."""
        self._gauged += endpoints

    # -- signals from the service --------------------------------------------------------
    def wake(self, endpoint: str) -> None:
        if endpoint not in self._wake:
            return  # not run here
        self._woken_at.setdefault(endpoint, time.perf_counter())
        self._wake[endpoint].set()

    def wake_webhooks(self) -> None:
        self._wake_webhooks.set()

    def running_count(self, endpoint: str) -> int:
        return len(self._running.get(endpoint, ()))

    def interrupt(self, endpoint: str, job_id: str) -> None:
        """Stop a job this replica is running (the store already says CANCELLED)."""
        task = self._running.get(endpoint, {}).get(job_id)
        if task is not None:
            task.cancel()

    def _on_ended(self, job_id: str, job: Job | None) -> None:
        end = self._ended.pop(job_id, None)
        if end is not None:
            end.at, end.job = time.perf_counter(), job
            end.event.set()

    async def wait_ended(self, job_id: str, timeout_s: float) -> Job | None:
        """Return when the store says the job ended, or after a poll interval (stores that
        cannot announce ends on other replicas): the ended job when it ended in this
        process, else None (read it from the store)."""
        end = self._ended.setdefault(job_id, _End())
        end.waiting += 1
        try:
            await asyncio.wait_for(end.event.wait(), timeout=min(timeout_s,
                                                                 self._settings.poll_interval_s))
        except asyncio.TimeoutError:
            return None
        finally:
            end.waiting -= 1
            # A job that ends elsewhere, or never, must not leave its entry behind.
            if not end.waiting and self._ended.get(job_id) is end:
                del self._ended[job_id]
        self._metrics.stage("wake", time.perf_counter() - end.at)
        return end.job

    # -- a new job run at once, without the queue's round trip ---------------------------
    def reserve(self, endpoint: str) -> Claim | None:
        """A claim on a free slot of this replica for a job about to be submitted; give it
        back with `adopt` (the store claimed the job) or `unreserve` (it queued it)."""
        if (not self._loops or self._stopping or endpoint not in self._endpoints
                or self._free(endpoint) <= 0):
            return None  # not running jobs (yet, or any more), or full
        self._reserved[endpoint] += 1
        return Claim(self.worker_id, self._lease_ms)

    def adopt(self, endpoint: str, job: Job) -> None:
        """Run `job`, which the store created claimed under a reservation of this replica."""
        self._reserved[endpoint] -= 1
        self._start(self._endpoints[endpoint], job)

    def unreserve(self, endpoint: str) -> None:
        self._reserved[endpoint] -= 1

    def _free(self, endpoint: str) -> int:
        spec = self._endpoints[endpoint].spec
        return spec.max_concurrency - len(self._running[endpoint]) - self._reserved[endpoint]

    def _batch_free(self, endpoint: str) -> int:
        """Batch requests this replica may start now: they hold at most their share of
        the endpoint's slots, so interactive jobs always find room."""
        cap = self._settings.batch_slots(self._endpoints[endpoint].spec.max_concurrency)
        return cap - len(self._running_batch[endpoint])

    def _start(self, endpoint: Endpoint, job: Job) -> None:
        task = asyncio.get_running_loop().create_task(self._execute(endpoint, job))
        self._running[endpoint.id][job.id] = task
        if job.batch_id is not None:
            self._running_batch[endpoint.id].add(job.id)
        task.add_done_callback(lambda _t, jid=job.id: self._job_done(endpoint.id, jid))

    # -- loops ---------------------------------------------------------------------------
    async def _endpoint_loop(self, endpoint: Endpoint) -> None:
        wake = self._wake[endpoint.id]
        # The loops also check the flag: on Python < 3.12 a `wait_for` whose event is set
        # as the task is cancelled swallows the cancellation.
        while not self._stopping:
            wake.clear()
            free = self._free(endpoint.id)
            jobs: list[Job] = []
            if free > 0:
                batch_free = self._batch_free(endpoint.id)
                try:
                    jobs = await self._store.claim(endpoint.id, self.worker_id,
                                                   self._lease_ms, free, batch_free)
                except Exception:
                    logger.exception("claiming jobs for %s failed", endpoint.id)
                # As many as there was room for: more may wait behind them.
                self._backlog[endpoint.id] = len(jobs) == free or (
                    batch_free > 0 and sum(j.batch_id is not None for j in jobs) == batch_free)
            else:
                self._backlog[endpoint.id] = True  # woken while full: a job waits
            if jobs and (woken_at := self._woken_at.pop(endpoint.id, None)) is not None:
                self._metrics.stage("handoff", time.perf_counter() - woken_at)
            for job in jobs:
                self._start(endpoint, job)
            try:
                await asyncio.wait_for(wake.wait(), timeout=self._settings.poll_interval_s)
            except asyncio.TimeoutError:
                pass

    def _job_done(self, endpoint: str, job_id: str) -> None:
        self._running[endpoint].pop(job_id, None)
        self._running_batch[endpoint].discard(job_id)
        # A freed slot is worth a claim only if jobs may wait for it; otherwise new ones
        # wake the loop themselves, and the poll finds the rest.
        if self._backlog[endpoint]:
            self._wake[endpoint].set()

    async def _sweep_loop(self) -> None:
        next_gauges = 0.0
        while not self._stopping:
            await asyncio.sleep(self._settings.sweep_interval_s)
            try:
                for job in await self._store.requeue_expired_leases(self._settings.max_attempts):
                    if job.status is JobStatus.FAILED:
                        logger.error("job %s dead-lettered: %s", job.id, job.error)
                        self._metrics.ended(job)
                    else:
                        self._metrics.requeued(job.endpoint, "lease_expired")
                await self._store.delete_expired(self._settings.webhook_retention_ms)
                for sweep in self._sweepers:
                    if await sweep():
                        self.wake_webhooks()
                if time.monotonic() >= next_gauges:
                    next_gauges = time.monotonic() + self._settings.metrics_interval_s
                    await self._report_queue_state()
            except Exception:
                logger.exception("sweeping jobs failed")

    async def _report_queue_state(self) -> None:
        for name in [*self._endpoints, *self._gauged]:
            workload = await self._store.workload([name])
            self._metrics.queue_state(name, workload.queued + workload.queued_low_priority,
                                      workload.running)

    async def _webhook_loop(self) -> None:
        """Deliver what any replica's job ends left in the outbox: at once for ends here,
        within a sweep interval for the rest."""
        while not self._stopping:
            self._wake_webhooks.clear()
            try:
                await self._webhooks.deliver_due()
            except Exception:
                logger.exception("delivering webhooks failed")
            try:
                await asyncio.wait_for(self._wake_webhooks.wait(),
                                       timeout=self._settings.sweep_interval_s)
            except asyncio.TimeoutError:
                pass

    # -- one job -------------------------------------------------------------------------
    async def _execute(self, endpoint: Endpoint, job: Job) -> None:
        run = Run(job, self._clock() + self._lease_ms)
        work = asyncio.get_running_loop().create_task(self._invoke(endpoint, run))
        try:
            outcome = await self._supervise(run, work)
        except asyncio.CancelledError:
            work.cancel()
            if self._stopping:  # hand the job back; a cancelled job is no longer ours
                await asyncio.shield(self._persist(run, "hand back", lambda: self._store.release(
                    job.id, run.lease, None, self._settings.max_attempts)))
            raise
        if outcome is not None:
            # The end is written even if this task is cancelled meanwhile.
            await asyncio.shield(self._conclude(endpoint, run, outcome))

    async def _supervise(self, run: Run, work: asyncio.Task[Outcome | None]) -> Outcome | None:
        """Wait for the work while renewing the lease; None when the job is no longer this
        run's to end (cancelled, past its TTL, or the lease was lost)."""
        job = run.job
        timeout_at = (job.started_at or self._clock()) + job.execution_timeout_ms
        deadline = min(timeout_at, job.expires_at)
        while True:
            remaining_s = (deadline - self._clock()) / 1000
            if remaining_s <= 0:
                work.cancel()
                if self._clock() >= job.expires_at:
                    return None  # past its TTL: the sweeper removes it
                return Outcome(JobStatus.TIMED_OUT,
                               error=TIMED_OUT_MESSAGE.format(ms=job.execution_timeout_ms))
            done, _ = await asyncio.wait({work}, timeout=min(self._renew_s, remaining_s))
            if done:
                return work.result()
            # Renewing also reads the job back: a cancel made on another replica shows here.
            try:
                current = await self._store.renew(job.id, run.lease, self._lease_ms)
            except Exception:
                if self._clock() < run.held_until:
                    logger.warning("renewing the lease of job %s failed; retrying", job.id,
                                   exc_info=True)
                    continue
                logger.error("job %s: the lease could not be renewed before it ran out; "
                             "leaving the job to be run again", job.id)
                current = None
            if current is None:
                work.cancel()
                return None
            run.held_until = self._clock() + self._lease_ms

    async def _invoke(self, endpoint: Endpoint, run: Run) -> Outcome | None:
        payload = job_payload(run.job)
        try:
            if not endpoint.events:
                return Outcome(JobStatus.COMPLETED, output=await endpoint.caller.call(payload))
            return await self._consume_events(endpoint, run, payload)
        except asyncio.CancelledError:
            raise
        except LeaseLost:
            return None
        except WorkerLost as exc:
            return Outcome(lost=str(exc) or exc.__class__.__name__)
        except JobFailed as exc:
            return Outcome(JobStatus.FAILED, error=str(exc))
        except Exception as exc:
            # Not the caller's to read (a bug here, or a caller that did not translate)
            return Outcome(JobStatus.FAILED, error=logged_internal_error(
                f"job {run.job.id} failed unexpectedly", exc))

    async def _consume_events(self, endpoint: Endpoint, run: Run,
                              payload: dict[str, Any]) -> Outcome:
        chunks: list[Any] = []
        output: Any = None
        job_id, lease = run.job.id, run.lease
        async for event in endpoint.caller.stream(payload):
            if "progress" in event:
                await self._owned(run, "progress", lambda e=event: self._store.set_progress(
                    job_id, lease, e["progress"]))
            elif "chunk" in event:
                chunks.append(event["chunk"])
                await self._owned(run, "stream", lambda e=event: self._store.append_stream(
                    job_id, lease, [e["chunk"]]))
            elif "error" in event:
                return Outcome(JobStatus.FAILED, error=str(event["error"]))
            elif "output" in event:
                output = event["output"]
        if chunks and (output is None or endpoint.spec.aggregate_stream):
            output = chunks
        return Outcome(JobStatus.COMPLETED, output=output)

    async def _owned(self, run: Run, what: str, write: Callable[[], Awaitable[bool]]) -> None:
        """A write of the run that the store refuses once the lease is not held."""
        if not await self._persist(run, what, write):
            raise LeaseLost(run.job.id)

    async def _conclude(self, endpoint: Endpoint, run: Run, outcome: Outcome) -> None:
        job = run.job
        if outcome.lost is not None:
            # Let the platform replace what was lost before the job runs again.
            await asyncio.sleep(min(LOST_RETRY_S * 2 ** job.attempts,
                                    max(0.0, (run.held_until - self._clock()) / 2000)))
            logger.warning("job %s: run lost (%s); queueing it again", job.id, outcome.lost)
            ended = await self._persist(run, "requeue", lambda: self._store.release(
                job.id, run.lease, outcome.lost, self._settings.max_attempts))
            if ended is not None and ended.status is JobStatus.FAILED:
                logger.error("job %s dead-lettered: %s", job.id, ended.error)
            elif ended is not None:
                self._metrics.requeued(endpoint.id, "worker_lost")
            self.wake(endpoint.id)
        else:
            ended = await self._persist(run, "finish", lambda: self._store.finish(
                job.id, run.lease, outcome.status or JobStatus.FAILED, outcome.output,
                outcome.error))
        if ended is not None and ended.status.terminal:
            self._metrics.ended(ended)
            if ended.webhook:
                self.wake_webhooks()

    async def _persist(self, run: Run, what: str, write: Callable[[], Awaitable[T]]) -> T | None:
        """Do a store write of this run, trying again with backoff while the lease is
        surely held; None when the store stayed unreachable that long."""
        delay_s = STORE_RETRY_S
        while True:
            try:
                return await write()
            except Exception:
                if self._clock() + delay_s * 1000 >= run.held_until:
                    logger.exception("job %s: %s failed until its lease ran out; the job "
                                     "will run again", run.job.id, what)
                    return None
                logger.warning("job %s: %s failed; retrying in %.2f s", run.job.id, what,
                               delay_s, exc_info=True)
                await asyncio.sleep(delay_s)
                delay_s = min(2 * delay_s, STORE_RETRY_MAX_S)
