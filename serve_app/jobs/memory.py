"""An in-memory job store: one process, nothing kept. For fast tests of the dispatcher,
the service and webhook delivery, held to the same contract as the database stores.

Every method runs without awaiting, so each is atomic on the event loop."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from typing import Any

from serve_app.jobs.errors import NotRetryable, QueueFull
from serve_app.jobs.memory_batches import MemoryBatchMixin
from serve_app.jobs.model import (
    BATCH_RANK,
    Attempt,
    Claim,
    Clock,
    Delivery,
    DeliveryState,
    Job,
    JobQuery,
    JobStatus,
    NewJob,
    WorkerRecord,
    Workload,
    now_ms,
    webhook_payload,
)
from serve_app.jobs.store import (
    LEASE_EXPIRED,
    LOST_MESSAGE,
    STOP_WINDOW_MS,
    STOPPED_KEPT,
    TIMED_OUT_MESSAGE,
    JobStore,
    lost_to_worker,
)

_replace = dataclasses.replace


class InMemoryJobStore(MemoryBatchMixin, JobStore):
    def __init__(self, clock: Clock = now_ms) -> None:
        self._clock = clock
        self._jobs: dict[str, Job] = {}
        self._streams: dict[str, list[Any]] = {}
        self._deliveries: dict[str, Delivery] = {}
        self._listeners: list[Callable[[str, Job | None], None]] = []
        self._init_batches()
        self._workers: dict[tuple[str, str], WorkerRecord] = {}
        #: stop signals already sent, per worker
        self._stopped: dict[tuple[str, str], list[str]] = {}

    # -- helpers -------------------------------------------------------------------------
    def _live(self, job_id: str) -> Job | None:
        job = self._jobs.get(job_id)
        return job if job is not None and job.expires_at > self._clock() else None

    def _held(self, job_id: str, lease: str) -> Job | None:
        job = self._jobs.get(job_id)
        ok = job is not None and job.lease == lease and job.status is JobStatus.IN_PROGRESS
        return job if ok else None

    @staticmethod
    def _brief(job: Job) -> Job:
        return _replace(job, input=None)

    def _end(self, job: Job, status: JobStatus, **changes: Any) -> Job:
        """The one way a job ends here: from a non-terminal state only; records its
        webhook delivery and tells the listeners."""
        assert not job.status.terminal
        now = self._clock()
        # The caller's s3Config (credentials) is not kept past the job's end.
        ended = _replace(job, status=status, completed_at=now, lease_expires_at=None,
                         expires_at=min(job.expires_at, now + job.retention_ms),
                         s3_config=None, **changes)
        self._jobs[job.id] = ended
        if ended.webhook:
            delivery_id = f"msg_{uuid.uuid4().hex}"
            self._deliveries[delivery_id] = Delivery(
                id=delivery_id, job_id=ended.id, endpoint=ended.endpoint, url=ended.webhook,
                payload=webhook_payload(ended), created_at=now, next_attempt_at=now)
        for listener in self._listeners:
            listener(ended.id, self._brief(ended))
        return ended

    def _requeue(self, job: Job, counted: int) -> Job:
        self._streams.pop(job.id, None)
        queued = _replace(job, status=JobStatus.IN_QUEUE, worker_id=None, lease=None,
                          lease_expires_at=None, started_at=None, output=None,
                          attempts=job.attempts + counted)
        self._jobs[job.id] = queued
        return queued

    # -- the verbs -----------------------------------------------------------------------
    async def create(self, job: NewJob, max_queue: int, claim: Claim | None = None) -> Job:
        waiting = [j.queue_rank for j in self._jobs.values()
                   if j.endpoint == job.endpoint and j.status is JobStatus.IN_QUEUE]
        queued = sum(rank < BATCH_RANK for rank in waiting)  # batches have their own limits
        if queued >= max_queue:
            raise QueueFull(f"endpoint {job.endpoint!r} has {queued} queued jobs "
                            f"(limit {max_queue})")
        stored = Job(id=job.id, endpoint=job.endpoint, status=JobStatus.IN_QUEUE,
                     input=job.input, created_at=job.created_at,
                     expires_at=job.created_at + job.ttl_ms,
                     execution_timeout_ms=job.execution_timeout_ms,
                     retention_ms=job.retention_ms, low_priority=job.low_priority,
                     webhook=job.webhook, s3_config=job.s3_config, owner=job.owner,
                     batch_id=job.batch_id)
        if claim is not None and not any(rank <= job.queue_rank for rank in waiting):
            now = self._clock()
            stored = _replace(stored, status=JobStatus.IN_PROGRESS, worker_id=claim.worker_id,
                              lease=claim.new_lease(), lease_expires_at=now + claim.lease_ms,
                              started_at=now)
        self._jobs[job.id] = stored
        return self._brief(stored)

    async def get(self, job_id: str) -> Job | None:
        job = self._live(job_id)
        return None if job is None else self._brief(job)

    async def claim(self, endpoint: str, worker_id: str, lease_ms: int, limit: int,
                    batch_limit: int | None = None) -> list[Job]:
        now = self._clock()
        lease = f"{worker_id}/{uuid.uuid4().hex[:12]}"
        queued = sorted((j for j in self._jobs.values() if j.endpoint == endpoint
                         and j.status is JobStatus.IN_QUEUE and j.expires_at > now),
                        key=lambda j: (j.queue_rank, j.created_at))
        if batch_limit is not None:
            batch = [j for j in queued if j.queue_rank == BATCH_RANK][:batch_limit]
            queued = [j for j in queued if j.queue_rank != BATCH_RANK] + batch
        queued = queued[:limit]
        claimed = [_replace(j, status=JobStatus.IN_PROGRESS, worker_id=worker_id, lease=lease,
                            lease_expires_at=now + lease_ms, started_at=now) for j in queued]
        self._jobs.update((j.id, j) for j in claimed)
        return claimed

    async def renew(self, job_id: str, lease: str, lease_ms: int) -> Job | None:
        job = self._held(job_id, lease)
        if job is None or job.expires_at <= self._clock():
            return None
        self._jobs[job_id] = job = _replace(job, lease_expires_at=self._clock() + lease_ms)
        return self._brief(job)

    async def set_progress(self, job_id: str, lease: str, output: Any) -> bool:
        job = self._held(job_id, lease)
        if job is not None:
            self._jobs[job_id] = _replace(job, output=output)
        return job is not None

    async def append_stream(self, job_id: str, lease: str, chunks: list[Any]) -> bool:
        if self._held(job_id, lease) is None:
            return False
        self._streams.setdefault(job_id, []).extend(chunks)
        return True

    async def drain_stream(self, job_id: str) -> tuple[Job, list[Any]] | None:
        job = self._live(job_id)
        if job is None:
            return None
        return self._brief(job), self._streams.pop(job_id, [])

    async def finish(self, job_id: str, lease: str, status: JobStatus, output: Any,
                     error: str | None) -> Job | None:
        job = self._held(job_id, lease)
        return None if job is None else self._end(job, status, output=output, error=error)

    async def release(self, job_id: str, lease: str, cause: str | None,
                      max_attempts: int) -> Job | None:
        job = self._held(job_id, lease)
        if job is None:
            return None
        counted = 1 if cause else 0
        if cause and job.attempts + counted >= max_attempts:
            return self._end(job, JobStatus.FAILED, attempts=job.attempts + counted,
                             error=LOST_MESSAGE.format(attempts=max_attempts, cause=cause))
        return self._brief(self._requeue(job, counted))

    async def cancel(self, job_id: str) -> Job | None:
        job = self._live(job_id)
        if job is None:
            return None
        return job if job.status.terminal else self._end(job, JobStatus.CANCELLED)

    async def retry(self, job_id: str) -> Job | None:
        job = self._live(job_id)
        if job is None:
            return None
        if job.status not in (JobStatus.FAILED, JobStatus.TIMED_OUT):
            raise NotRetryable(f"job {job_id} is {job.status.value}; only FAILED and "
                               "TIMED_OUT jobs can be retried")
        now = self._clock()
        queued = self._requeue(job, 0)
        queued = _replace(queued, error=None, completed_at=None, attempts=0,
                          user_retries=job.user_retries + 1,
                          expires_at=now + max(job.expires_at - now, job.retention_ms,
                                               job.execution_timeout_ms))
        self._jobs[job_id] = queued
        return self._brief(queued)

    async def purge_queue(self, endpoint: str, owner: str | None = None) -> int:
        purged = [j.id for j in self._jobs.values() if j.endpoint == endpoint
                  and j.status is JobStatus.IN_QUEUE and owner in (None, j.owner)]
        for job_id in purged:
            del self._jobs[job_id]
            self._streams.pop(job_id, None)
        return len(purged)

    async def shorten_ttl(self, job_id: str, ttl_ms: int) -> None:
        job = self._live(job_id)
        until = self._clock() + ttl_ms
        if job is not None and job.expires_at > until:
            self._jobs[job_id] = _replace(job, expires_at=until)

    async def counts(self, endpoint: str, owner: str | None = None) -> dict[str, int]:
        now = self._clock()
        live = [j for j in self._jobs.values() if j.endpoint == endpoint
                and j.expires_at > now and owner in (None, j.owner)]
        counts = {s.value: sum(1 for j in live if j.status is s) for s in JobStatus}
        return counts | {"retried": sum(1 for j in live if j.retries > 0)}

    async def workload(self, endpoints: list[str]) -> Workload:
        now = self._clock()
        live = [j for j in self._jobs.values() if j.endpoint in endpoints and j.expires_at > now]
        queued = [j for j in live if j.status is JobStatus.IN_QUEUE]
        return Workload(queued=sum(j.queue_rank == 0 for j in queued),
                        queued_low_priority=sum(j.queue_rank > 0 for j in queued),
                        running=sum(j.status is JobStatus.IN_PROGRESS for j in live))

    async def list_jobs(self, query: JobQuery) -> list[Job]:
        now = self._clock()

        def wanted(j: Job) -> bool:
            return (j.expires_at > now and query.endpoint in (None, j.endpoint)
                    and (not query.statuses or j.status in query.statuses)
                    and query.owner in (None, j.owner)
                    and (query.created_from is None or j.created_at >= query.created_from)
                    and (query.created_to is None or j.created_at < query.created_to)
                    and (query.after is None or (j.created_at, j.id) < query.after))

        found = sorted(filter(wanted, self._jobs.values()), key=lambda j: (j.created_at, j.id),
                       reverse=True)
        return [self._brief(j) for j in found[:query.limit]]

    async def requeue_expired_leases(self, max_attempts: int) -> list[Job]:
        now = self._clock()
        expired = []
        for job in [j for j in self._jobs.values() if j.status is JobStatus.IN_PROGRESS
                    and j.lease_expires_at is not None and j.lease_expires_at < now]:
            if job.attempts + 1 >= max_attempts:
                expired.append(self._end(job, JobStatus.FAILED, attempts=job.attempts + 1,
                                         error=LOST_MESSAGE.format(attempts=max_attempts,
                                                                   cause=LEASE_EXPIRED)))
            else:
                expired.append(self._requeue(job, 1))
        return [self._brief(j) for j in expired]

    async def delete_expired(self, delivery_retention_ms: int) -> int:
        now = self._clock()
        expired = [j.id for j in self._jobs.values() if j.expires_at <= now]
        for job_id in expired:
            del self._jobs[job_id]
            self._streams.pop(job_id, None)
        for key, worker in list(self._workers.items()):
            if worker.last_seen < now - delivery_retention_ms:
                del self._workers[key]
                self._stopped.pop(key, None)
        for d in list(self._deliveries.values()):
            if (d.state is not DeliveryState.PENDING and d.job_id not in self._jobs
                    and d.created_at < now - delivery_retention_ms):
                del self._deliveries[d.id]
        return len(expired)

    # -- external workers ------------------------------------------------------------------
    async def worker_seen(self, endpoint: str, worker_id: str, *, took: bool = False,
                          reported: list[str] | None = None, version: str | None = None,
                          lease_ms: int | None = None) -> None:
        now = self._clock()
        key = (endpoint, worker_id)
        known = self._workers.get(key) or WorkerRecord(endpoint, worker_id, now, now)
        self._workers[key] = _replace(
            known, last_seen=now, last_take=now if took else known.last_take,
            version=version or known.version,
            reported=known.reported if reported is None else tuple(reported))
        for job_id in reported or () if lease_ms is not None else ():
            job = self._jobs.get(job_id)
            if (job is not None and job.endpoint == endpoint and job.worker_id == worker_id
                    and job.status is JobStatus.IN_PROGRESS):
                self._jobs[job_id] = _replace(job, lease_expires_at=now + lease_ms)

    def _worker_state(self, job_id: str, worker_id: str) -> str | None:
        job = self._jobs.get(job_id)
        if job is None:
            return None
        held = job.status is JobStatus.IN_PROGRESS and job.worker_id == worker_id
        return "held" if held else job.status.value

    async def worker_stops(self, endpoint: str, worker_id: str) -> list[str]:
        key = (endpoint, worker_id)
        worker = self._workers.get(key)
        if worker is None:
            return []
        since = self._clock() - STOP_WINDOW_MS
        stops = [j.id for j in self._jobs.values() if j.endpoint == endpoint
                 and j.worker_id == worker_id and j.completed_at is not None
                 and j.completed_at >= since
                 and j.status in (JobStatus.CANCELLED, JobStatus.TIMED_OUT)]
        stops += [i for i in worker.reported if lost_to_worker(self._worker_state(i, worker_id))]
        stopped = self._stopped.setdefault(key, [])
        new = list(dict.fromkeys(i for i in stops if i not in stopped))
        self._stopped[key] = (stopped + new)[-STOPPED_KEPT:]
        return new

    async def workers(self, endpoint: str, seen_since: int) -> list[WorkerRecord]:
        found = []
        for (ep, worker_id), worker in sorted(self._workers.items()):
            if ep == endpoint and worker.last_seen >= seen_since:
                running = sum(1 for j in self._jobs.values() if j.endpoint == endpoint
                              and j.worker_id == worker_id and j.status is JobStatus.IN_PROGRESS)
                found.append(_replace(worker, running=running))
        return found

    async def time_out_running(self, endpoints: list[str]) -> list[Job]:
        now = self._clock()
        late = [j for j in self._jobs.values() if j.endpoint in endpoints
                and j.status is JobStatus.IN_PROGRESS and j.started_at is not None
                and j.started_at + j.execution_timeout_ms <= now]
        return [self._brief(self._end(j, JobStatus.TIMED_OUT, error=TIMED_OUT_MESSAGE.format(
            ms=j.execution_timeout_ms))) for j in late]

    # -- the webhook outbox --------------------------------------------------------------
    async def claim_deliveries(self, limit: int, lease_ms: int) -> list[Delivery]:
        now = self._clock()
        due = sorted((d for d in self._deliveries.values()
                      if d.state is DeliveryState.PENDING and d.next_attempt_at <= now),
                     key=lambda d: d.next_attempt_at)[:limit]
        claimed = [_replace(d, next_attempt_at=now + lease_ms) for d in due]
        self._deliveries.update((d.id, d) for d in claimed)
        return claimed

    async def record_attempt(self, delivery_id: str, attempt: Attempt, delivered: bool,
                             next_attempt_at: int | None) -> None:
        d = self._deliveries.get(delivery_id)
        if d is None:
            return
        state = (DeliveryState.DELIVERED if delivered else DeliveryState.FAILED
                 if next_attempt_at is None else DeliveryState.PENDING)
        self._deliveries[delivery_id] = _replace(
            d, state=state, attempts=(*d.attempts, attempt),
            next_attempt_at=next_attempt_at or attempt.at)

    async def deliveries(self, job_id: str) -> list[Delivery]:
        return sorted((d for d in self._deliveries.values() if d.job_id == job_id),
                      key=lambda d: d.created_at)

    def watch_ended(self, on_ended: Callable[[str, Job | None], None]) -> None:
        self._listeners.append(on_ended)

    async def close(self) -> None:
        """Nothing to release."""
