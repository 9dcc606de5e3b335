"""The batch verbs in memory (a mixin of `InMemoryJobStore`, whose jobs, clock and
job-ending path it uses): held to the same contract as the SQL stores. Each method runs
without awaiting, so each is atomic on the event loop."""

from __future__ import annotations

import dataclasses
import uuid
from collections import Counter
from typing import Any

from serve_app.jobs.batches import (
    DRAFT_REQUEST,
    Batch,
    BatchRequest,
    BatchStatus,
    BatchStore,
    NewBatch,
    UnknownBatchRequest,
    counted,
    ending_status,
    not_draft,
    overdue,
    overdue_error,
    request_id,
    too_large,
    too_many,
    unknown,
)
from serve_app.jobs.model import Clock, Delivery, Job, JobStatus

_replace = dataclasses.replace


class MemoryBatchMixin(BatchStore):
    """Batch verbs for `InMemoryJobStore` (which supplies `_jobs`, `_deliveries`, `_clock`
    and `_end`)."""

    _clock: Clock
    _jobs: dict[str, Job]
    _deliveries: dict[str, Delivery]

    def _init_batches(self) -> None:
        self._batches: dict[str, Batch] = {}
        #: a DRAFT batch's requests by id, in the order they were added
        self._batch_drafts: dict[str, dict[str, Any]] = {}
        self._batch_next_seq: dict[str, int] = {}

    # -- helpers -------------------------------------------------------------------------
    def _live_batch(self, batch_id: str) -> Batch | None:
        batch = self._batches.get(batch_id)
        return batch if batch is not None and batch.expires_at > self._clock() else None

    def _draft(self, batch_id: str) -> Batch:
        batch = self._live_batch(batch_id)
        if batch is None:
            raise unknown(batch_id)
        if batch.status is not BatchStatus.DRAFT:
            raise not_draft(batch)
        return batch

    def _by_status(self, batch_id: str) -> dict[str, int]:
        now = self._clock()
        return dict(Counter(j.status.value for j in self._jobs.values()
                            if j.batch_id == batch_id and j.expires_at > now))

    def _counted(self, batch: Batch) -> Batch:
        if batch.ended_at is not None or batch.status is BatchStatus.DRAFT:
            return batch
        return counted(batch, self._by_status(batch.id))

    def _add_drafts(self, batch: Batch, inputs: list[Any]) -> Batch:
        seq = self._batch_next_seq.get(batch.id, 1)
        drafts = self._batch_drafts.setdefault(batch.id, {})
        for i, x in enumerate(inputs):
            drafts[request_id(batch.id, seq + i)] = x
        self._batch_next_seq[batch.id] = seq + len(inputs)
        self._batches[batch.id] = batch = _replace(batch, request_total=len(drafts))
        return batch

    def _conclude(self, batch: Batch, retention_ms: int) -> Batch | None:
        if batch.ended_at is not None:
            return None
        by_status = self._by_status(batch.id)
        final = counted(batch, by_status)
        if final.in_progress:
            return None
        now = self._clock()
        ended = _replace(final, status=ending_status(batch, by_status), ended_at=now,
                         expires_at=min(batch.expires_at, now + retention_ms))
        self._batches[batch.id] = ended
        for job in [j for j in self._jobs.values() if j.batch_id == batch.id]:
            self._jobs[job.id] = _replace(job, expires_at=min(job.expires_at, ended.expires_at))
        if ended.webhook:
            delivery_id = f"msg_{uuid.uuid4().hex}"
            self._deliveries[delivery_id] = Delivery(
                id=delivery_id, job_id=ended.id, endpoint=ended.endpoint, url=ended.webhook,
                payload=ended.summary(), created_at=now, next_attempt_at=now)
        return ended

    # -- the verbs -----------------------------------------------------------------------
    async def create_batch(self, batch: NewBatch, inputs: list[Any], max_active: int,
                           max_requests: int) -> Batch:
        now = self._clock()
        active = sum(1 for b in self._batches.values() if b.endpoint == batch.endpoint
                     and b.ended_at is None and b.expires_at > now)
        if active >= max_active:
            raise too_many(batch.endpoint, active, max_active)
        if len(inputs) > max_requests:
            raise too_large(batch.id, 0, len(inputs), max_requests)
        stored = Batch(id=batch.id, endpoint=batch.endpoint, status=BatchStatus.DRAFT,
                       created_at=batch.created_at, expires_at=batch.created_at + batch.ttl_ms,
                       owner=batch.owner, name=batch.name, webhook=batch.webhook)
        return self._add_drafts(stored, inputs)

    async def add_batch_requests(self, batch_id: str, inputs: list[Any],
                                 max_requests: int) -> Batch:
        batch = self._draft(batch_id)
        if batch.request_total + len(inputs) > max_requests:
            raise too_large(batch_id, batch.request_total, len(inputs), max_requests)
        return self._add_drafts(batch, inputs)

    async def remove_batch_request(self, batch_id: str, request_id: str) -> Batch:
        batch = self._draft(batch_id)
        drafts = self._batch_drafts.get(batch_id, {})
        if drafts.pop(request_id, None) is None:
            raise UnknownBatchRequest(f"batch {batch_id} holds no request {request_id!r}")
        self._batches[batch_id] = batch = _replace(batch, request_total=len(drafts))
        return batch

    async def finalize_batch(self, batch_id: str, execution_timeout_ms: int, ttl_ms: int,
                             retention_ms: int) -> Batch:
        batch = self._draft(batch_id)
        now, kept = self._clock(), ttl_ms + retention_ms
        for job_id, x in self._batch_drafts.pop(batch_id, {}).items():
            self._jobs[job_id] = Job(
                id=job_id, endpoint=batch.endpoint, status=JobStatus.IN_QUEUE, input=x,
                created_at=now, expires_at=now + kept,
                execution_timeout_ms=execution_timeout_ms, retention_ms=kept,
                low_priority=True, owner=batch.owner, batch_id=batch_id)
        self._batches[batch_id] = batch = _replace(
            batch, status=BatchStatus.FINALIZED, finalized_at=now, deadline_at=now + ttl_ms,
            expires_at=now + kept)
        return self._counted(batch)

    async def update_batch(self, batch_id: str, changes: dict[str, Any]) -> Batch:
        batch = self._live_batch(batch_id)
        if batch is None:
            raise unknown(batch_id)
        known = {k: v for k, v in changes.items() if k in ("name", "webhook")}
        self._batches[batch_id] = batch = _replace(batch, **known)
        return self._counted(batch)

    async def get_batch(self, batch_id: str) -> Batch | None:
        batch = self._live_batch(batch_id)
        return None if batch is None else self._counted(batch)

    async def list_batches(self, endpoint: str, owner: str | None, limit: int) -> list[Batch]:
        now = self._clock()
        found = sorted((b for b in self._batches.values() if b.endpoint == endpoint
                        and b.expires_at > now and owner in (None, b.owner)),
                       key=lambda b: (b.created_at, b.id), reverse=True)
        return [self._counted(b) for b in found[:limit]]

    async def batch_requests(self, batch_id: str, offset: int,
                             limit: int) -> tuple[list[BatchRequest], int]:
        batch = self._live_batch(batch_id)
        if batch is None:
            raise unknown(batch_id)
        if batch.status is BatchStatus.DRAFT:
            ids = sorted(self._batch_drafts.get(batch_id, {}))
            return [BatchRequest(i, DRAFT_REQUEST) for i in ids[offset:offset + limit]], len(ids)
        now = self._clock()
        jobs = sorted((j for j in self._jobs.values()
                       if j.batch_id == batch_id and j.expires_at > now), key=lambda j: j.id)
        return [BatchRequest(j.id, j.status.value, j.output, j.error, j.started_at,
                             j.completed_at) for j in jobs[offset:offset + limit]], len(jobs)

    async def cancel_batch(self, batch_id: str, retention_ms: int) -> Batch | None:
        batch = self._live_batch(batch_id)
        if batch is None or batch.ended_at is not None:
            return None if batch is None else self._counted(batch)
        now = self._clock()
        self._batches[batch_id] = batch = _replace(batch, cancelled_at=batch.cancelled_at or now)
        self._batch_drafts.pop(batch_id, None)
        self._end_queued(batch_id, JobStatus.CANCELLED, None)
        return self._conclude(batch, retention_ms) or self._counted(batch)

    def _end_queued(self, batch_id: str, status: JobStatus, error: str | None) -> None:
        now = self._clock()
        for job in [j for j in self._jobs.values() if j.batch_id == batch_id
                    and j.status is JobStatus.IN_QUEUE and j.expires_at > now]:
            self._end(job, status, error=error)  # type: ignore[attr-defined]

    async def conclude_batches(self, retention_ms: int) -> list[Batch]:
        now, ended = self._clock(), []
        for batch in [b for b in self._batches.values() if b.ended_at is None
                      and b.expires_at > now
                      and (b.status is not BatchStatus.DRAFT or b.cancelled_at is not None)]:
            if overdue(batch, now):
                self._end_queued(batch.id, JobStatus.FAILED, overdue_error(batch))
                self._batches[batch.id] = batch = _replace(batch, status=BatchStatus.FAILED)
            if (done := self._conclude(batch, retention_ms)) is not None:
                ended.append(done)
        return ended

    async def delete_expired_batches(self) -> int:
        now = self._clock()
        expired = [b.id for b in self._batches.values() if b.expires_at <= now]
        for batch_id in expired:
            del self._batches[batch_id]
            self._batch_drafts.pop(batch_id, None)
            self._batch_next_seq.pop(batch_id, None)
        return len(expired)
