"""Batch jobs (RunPod's Batch Jobs API): up to `max_requests` requests under one id.

A batch is built while DRAFT: its requests wait in a table of their own, where no claim
can see them. Finalizing moves them into the job queue in one transaction, as ordinary
jobs with `batch_id` set: they queue behind every other job and hold at most
`JobSettings.batch_share` of each endpoint's slots (the dispatcher's rule), so batch work
never delays interactive jobs. Every count comes from the store, so any replica, before
or after a restart, answers the same.

A batch ends once (`ended_at` is set by one conditional write) when none of its requests
is waiting or running any more:
  - FINALIZED: every request ended (completed or failed; a failed request does not fail
    the batch),
  - CANCELLED: it was cancelled (its queued requests at once; running ones finished),
  - FAILED: the batch itself could not be carried out: requests still queued when its
    TTL (`BatchSettings.request_ttl_ms` from finalize) ran out (they end FAILED, saying
    so), or requests removed before they ended (the endpoint's queue was purged).
Its counts are frozen then, and its completion webhook (the batch's own, else the
endpoint's `batch_webhook`) goes into the webhook outbox in the same transaction, so it
is delivered once, signed, by any replica. An ended batch and its requests are kept
`BatchSettings.retention_ms`, never past the requests' TTL.
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from enum import Enum
from typing import TYPE_CHECKING, Any

from serve_app.jobs.model import Clock, JobStatus, now_ms

if TYPE_CHECKING:  # the stores import this module; these are above them
    from serve_app.jobs.dispatcher import Dispatcher
    from serve_app.jobs.service import JobService
    from serve_app.jobs.settings import EndpointSpec, JobSettings


class BatchStatus(str, Enum):
    DRAFT = "DRAFT"  #: taking requests; none runs yet
    FINALIZED = "FINALIZED"  #: locked: its requests run (and have run, once it ended)
    FAILED = "FAILED"  #: requests were not run in the batch's TTL, or removed unended
    CANCELLED = "CANCELLED"  #: cancelled, and none of its requests runs any more


#: the status a request shows while its batch is DRAFT (it is not queued yet)
DRAFT_REQUEST = "DRAFT"


class UnknownBatch(LookupError):
    """No such batch on the endpoint (never created, another owner's, or removed)."""


class UnknownBatchRequest(LookupError):
    """No such request in the batch."""


class BatchNotDraft(Exception):
    """Only a DRAFT batch takes or loses requests, or can be finalized."""


class BatchTooLarge(Exception):
    """The batch would hold more than `max_requests` requests."""


class TooManyBatches(Exception):
    """The endpoint has `max_active` batches that have not ended."""


@dataclass(frozen=True)
class NewBatch:
    id: str
    endpoint: str
    created_at: int
    #: a DRAFT batch never finalized is removed after this long
    ttl_ms: int
    owner: str | None = None
    name: str | None = None
    webhook: str | None = None


@dataclass(frozen=True)
class Batch:
    """One batch as stored, with its requests counted. Times are epoch ms."""

    id: str
    endpoint: str
    status: BatchStatus
    created_at: int
    expires_at: int
    request_total: int = 0
    #: waiting in the queue, and running (a DRAFT batch's requests are neither)
    queued: int = 0
    running: int = 0
    completed: int = 0
    #: FAILED, TIMED_OUT, CANCELLED, and requests removed before they ended
    failed: int = 0
    owner: str | None = None
    name: str | None = None
    webhook: str | None = None
    finalized_at: int | None = None
    #: requests still queued then end FAILED, and so does the batch (finalize + TTL)
    deadline_at: int | None = None
    cancelled_at: int | None = None
    ended_at: int | None = None

    @property
    def in_progress(self) -> int:
        return self.queued + self.running

    def summary(self) -> dict[str, Any]:
        """RunPod's batch object (also the completion webhook's payload)."""
        return {"id": self.id, "endpointId": self.endpoint, "status": self.status.value,
                "name": self.name, "requestTotal": self.request_total,
                "requestInProgress": self.in_progress, "requestCompleted": self.completed,
                "requestFailed": self.failed, "createdAt": self.created_at,
                "finalizedAt": self.finalized_at, "cancelledAt": self.cancelled_at,
                "endedAt": self.ended_at}


def counted(batch: Batch, by_status: dict[str, int]) -> Batch:
    """`batch` with its finalized requests counted from `by_status` (its live jobs per
    status): requests no longer stored that had not ended count as failed."""
    queued = by_status.get(JobStatus.IN_QUEUE.value, 0)
    running = by_status.get(JobStatus.IN_PROGRESS.value, 0)
    completed = by_status.get(JobStatus.COMPLETED.value, 0)
    return replace(batch, queued=queued, running=running, completed=completed,
                   failed=max(0, batch.request_total - queued - running - completed))


def ending_status(batch: Batch, by_status: dict[str, int]) -> BatchStatus:
    """How a batch none of whose requests waits or runs any more ends."""
    if batch.cancelled_at is not None:
        return BatchStatus.CANCELLED
    removed = batch.request_total - sum(by_status.values())
    failed = batch.status is BatchStatus.FAILED or removed > 0
    return BatchStatus.FAILED if failed else BatchStatus.FINALIZED


def overdue(batch: Batch, now: int) -> bool:
    """Whether the batch's queued requests are past its TTL and must be ended FAILED."""
    return (batch.status is BatchStatus.FINALIZED and batch.deadline_at is not None
            and batch.deadline_at <= now and batch.ended_at is None)


def overdue_error(batch: Batch) -> str:
    ttl_ms = (batch.deadline_at or 0) - (batch.finalized_at or 0)
    return f"not run within the batch's TTL of {ttl_ms} ms"


@dataclass(frozen=True)
class BatchRequest:
    """One request of a batch as `GET .../requests` shows it."""

    id: str
    status: str
    output: Any = None
    error: str | None = None
    started_at: int | None = None
    completed_at: int | None = None

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"id": self.id, "status": self.status,
                                "startedAt": iso(self.started_at),
                                "completedAt": iso(self.completed_at)}
        if self.output is not None:
            body["output"] = self.output
        if self.error is not None:
            body["error"] = self.error
        return body


def iso(ms: int | None) -> str | None:
    """Epoch ms as ISO 8601 in UTC, to the millisecond."""
    if ms is None:
        return None
    at = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def request_id(batch_id: str, seq: int) -> str:
    """A request's id, given when it is added and kept as its job's id: in the order the
    requests were added."""
    return f"{batch_id}-{seq:06d}"


class BatchStore(ABC):
    """The batch verbs a job store implements; each is one transaction. A batch past its
    `expires_at` is unknown (None, or UnknownBatch from the verbs that change one)."""

    @abstractmethod
    async def create_batch(self, batch: NewBatch, inputs: list[Any], max_active: int,
                           max_requests: int) -> Batch:
        """Store a DRAFT batch holding `inputs`; TooManyBatches when its endpoint has
        `max_active` batches that have not ended, BatchTooLarge past `max_requests`."""

    @abstractmethod
    async def add_batch_requests(self, batch_id: str, inputs: list[Any],
                                 max_requests: int) -> Batch:
        """Add requests to a DRAFT batch (BatchNotDraft else), up to `max_requests` in
        all (BatchTooLarge past it, adding none)."""

    @abstractmethod
    async def remove_batch_request(self, batch_id: str, request_id: str) -> Batch:
        """Remove a request from a DRAFT batch; UnknownBatchRequest if it holds none."""

    @abstractmethod
    async def finalize_batch(self, batch_id: str, execution_timeout_ms: int, ttl_ms: int,
                             retention_ms: int) -> Batch:
        """Lock a DRAFT batch and queue its requests as jobs (ids kept, `batch_id` set);
        BatchNotDraft for any other batch. Requests not started within `ttl_ms` end FAILED
        (`conclude_batches`); the batch and its requests are kept `retention_ms` more."""

    @abstractmethod
    async def update_batch(self, batch_id: str, changes: dict[str, Any]) -> Batch:
        """Set the attributes named in `changes`: `name`, `webhook` (None clears one)."""

    @abstractmethod
    async def get_batch(self, batch_id: str) -> Batch | None:
        """The batch with its requests counted, or None."""

    @abstractmethod
    async def list_batches(self, endpoint: str, owner: str | None, limit: int) -> list[Batch]:
        """The endpoint's batches (only `owner`'s, if given), newest first, counted."""

    @abstractmethod
    async def batch_requests(self, batch_id: str, offset: int,
                             limit: int) -> tuple[list[BatchRequest], int]:
        """A page of the batch's requests in the order they were added, and how many it
        holds now."""

    @abstractmethod
    async def cancel_batch(self, batch_id: str, retention_ms: int) -> Batch | None:
        """Mark the batch cancelled and cancel its queued requests; it ends CANCELLED at
        once when none runs, else once the running ones have ended. An ended batch is
        left as it is. None when unknown."""

    @abstractmethod
    async def conclude_batches(self, retention_ms: int) -> list[Batch]:
        """End FAILED the queued requests of batches past their TTL (the batch then ends
        FAILED). End every batch that is finalized or cancelled and has no request waiting
        or running, each once: freeze its counts, keep it (and its requests) `retention_ms`
        more at most, and record its webhook delivery. Returns the batches ended now."""

    @abstractmethod
    async def delete_expired_batches(self) -> int:
        """Remove batches past `expires_at` with their draft requests (their jobs expire
        with them)."""


class BatchService:
    """The batch verbs, independent of HTTP. Like JobService's, they take `scope`: the
    owner whose batches the caller may see (None for all); another owner's batch is
    answered exactly like a missing one."""

    def __init__(self, store: BatchStore, jobs: JobService, dispatcher: Dispatcher,
                 settings: JobSettings, clock: Clock = now_ms) -> None:
        self._store = store
        self._jobs = jobs
        self._dispatcher = dispatcher
        self._settings = settings
        self._limits = settings.batches
        self._clock = clock

    def endpoint(self, endpoint_id: str) -> EndpointSpec:
        """The endpoint's spec; UnknownEndpoint if none is served here."""
        return self._jobs.endpoint(endpoint_id)

    async def _batch(self, endpoint_id: str, batch_id: str, scope: str | None) -> Batch:
        self._jobs.endpoint(endpoint_id)
        batch = await self._store.get_batch(batch_id)
        if batch is None or batch.endpoint != endpoint_id or scope not in (None, batch.owner):
            raise UnknownBatch(f"no batch {batch_id!r} on endpoint {endpoint_id!r} "
                               "(unknown, or ended and removed)")
        return batch

    async def create(self, endpoint_id: str, inputs: list[Any], owner: str | None,
                     name: str | None = None, webhook: str | None = None) -> Batch:
        """A DRAFT batch holding `inputs`. Its completion webhook is `webhook`, else the
        endpoint's `batch_webhook` (resolved now, so a later config change leaves it)."""
        spec = self._jobs.endpoint(endpoint_id)
        batch = NewBatch(id=f"batch-{uuid.uuid4()}", endpoint=endpoint_id,
                         created_at=self._clock(), ttl_ms=self._limits.request_ttl_ms,
                         owner=owner, name=name, webhook=webhook or spec.batch_webhook)
        return await self._store.create_batch(batch, inputs, self._limits.max_active,
                                              self._limits.max_requests)

    async def add(self, endpoint_id: str, batch_id: str, scope: str | None,
                  inputs: list[Any]) -> Batch:
        await self._batch(endpoint_id, batch_id, scope)
        return await self._store.add_batch_requests(batch_id, inputs, self._limits.max_requests)

    async def remove(self, endpoint_id: str, batch_id: str, request_id: str,
                     scope: str | None) -> Batch:
        await self._batch(endpoint_id, batch_id, scope)
        return await self._store.remove_batch_request(batch_id, request_id)

    async def finalize(self, endpoint_id: str, batch_id: str, scope: str | None) -> Batch:
        await self._batch(endpoint_id, batch_id, scope)
        batch = await self._store.finalize_batch(
            batch_id, self._settings.policy.execution_timeout_default_ms,
            self._limits.request_ttl_ms, self._limits.retention_ms)
        self._jobs.queued(endpoint_id)  # whoever runs the endpoint: dispatcher or workers
        return batch

    async def update(self, endpoint_id: str, batch_id: str, scope: str | None,
                     changes: dict[str, Any]) -> Batch:
        await self._batch(endpoint_id, batch_id, scope)
        return await self._store.update_batch(batch_id, changes)

    async def get(self, endpoint_id: str, batch_id: str, scope: str | None) -> Batch:
        return await self._batch(endpoint_id, batch_id, scope)

    async def list(self, endpoint_id: str, scope: str | None, limit: int) -> list[Batch]:
        self._jobs.endpoint(endpoint_id)
        return await self._store.list_batches(endpoint_id, scope, limit)

    async def requests(self, endpoint_id: str, batch_id: str, scope: str | None,
                       offset: int, limit: int) -> tuple[list[BatchRequest], int]:
        await self._batch(endpoint_id, batch_id, scope)
        return await self._store.batch_requests(batch_id, offset, limit)

    async def cancel(self, endpoint_id: str, batch_id: str, scope: str | None) -> Batch:
        await self._batch(endpoint_id, batch_id, scope)
        batch = await self._store.cancel_batch(batch_id, self._limits.retention_ms)
        if batch is None:
            raise UnknownBatch(f"no batch {batch_id!r} on endpoint {endpoint_id!r}")
        if batch.ended_at is not None and batch.webhook:
            self._dispatcher.wake_webhooks()
        return batch

    async def sweep(self) -> bool:
        """A dispatcher sweeper: end the batches that are done and remove expired ones;
        True when an ended batch left a webhook to deliver."""
        ended = await self._store.conclude_batches(self._limits.retention_ms)
        await self._store.delete_expired_batches()
        return any(b.webhook for b in ended)


def not_draft(batch: Batch) -> BatchNotDraft:
    return BatchNotDraft(f"batch {batch.id} is {batch.status.value}: requests can be added, "
                         "removed and finalized only while it is DRAFT")


def too_large(batch_id: str, total: int, adding: int, max_requests: int) -> BatchTooLarge:
    return BatchTooLarge(f"batch {batch_id} would hold {total + adding} requests; at most "
                         f"{max_requests} are allowed")


def too_many(endpoint: str, active: int, max_active: int) -> TooManyBatches:
    return TooManyBatches(f"endpoint {endpoint!r} has {active} batches that have not ended "
                          f"(limit {max_active}): cancel one or wait for one to end")


def unknown(batch_id: str) -> UnknownBatch:
    return UnknownBatch(f"no batch {batch_id!r} (unknown, or ended and removed)")
