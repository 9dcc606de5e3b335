"""The job record, its states, and the webhook deliveries a job's end leaves behind."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

#: a source of epoch milliseconds; stores, dispatchers and services take one so that
#: tests can move time by hand
Clock = Callable[[], int]


def now_ms() -> int:
    """The one clock every timestamp and duration comes from (wall time, ms)."""
    return int(time.time() * 1000)


class JobStatus(str, Enum):
    IN_QUEUE = "IN_QUEUE"  #: accepted, waiting for a worker slot
    IN_PROGRESS = "IN_PROGRESS"  #: claimed by a dispatcher holding a lease
    COMPLETED = "COMPLETED"  #: finished with output
    FAILED = "FAILED"  #: finished with an error (also the dead-letter state)
    CANCELLED = "CANCELLED"  #: cancelled by the caller, queued or running
    TIMED_OUT = "TIMED_OUT"  #: ran past policy.executionTimeout

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED,
                      JobStatus.TIMED_OUT})


@dataclass(frozen=True)
class Job:
    """One job as stored. Times are epoch milliseconds from the store's clock."""

    id: str
    endpoint: str
    status: JobStatus
    input: Any
    created_at: int
    #: the job is removed (404) after this: min(submission + ttl, completion + retention)
    expires_at: int
    execution_timeout_ms: int
    #: how long a result is kept after the job ends (30 min for /run, 1 min for /runsync)
    retention_ms: int
    low_priority: bool = False
    webhook: str | None = None
    s3_config: dict | None = None
    output: Any = None
    error: str | None = None
    started_at: int | None = None
    completed_at: int | None = None
    #: runs lost to the infrastructure (decides dead-lettering)
    attempts: int = 0
    #: runs asked for again with /retry
    user_retries: int = 0
    worker_id: str | None = None
    #: the token of the current run's lease: every write of a run names it, so a run
    #: that lost its lease (even to the same worker) can no longer change the job
    lease: str | None = None
    lease_expires_at: int | None = None
    #: who submitted it (an opaque id, e.g. an API key's fingerprint); None if open
    owner: str | None = None
    #: the batch this job is a request of; batch requests queue behind every other job
    batch_id: str | None = None

    @property
    def queue_rank(self) -> int:
        """Claim order: normal jobs, then lowPriority ones, then batch requests."""
        return queue_rank(self.low_priority, self.batch_id)

    @property
    def retries(self) -> int:
        """RunPod's `retries`: how many times the job was run again."""
        return self.attempts + self.user_retries

    @property
    def delay_time_ms(self) -> int | None:
        return None if self.started_at is None else self.started_at - self.created_at

    @property
    def execution_time_ms(self) -> int | None:
        if self.started_at is None:
            return None
        end = self.completed_at if self.completed_at is not None else now_ms()
        return end - self.started_at

    def status_object(self) -> dict[str, Any]:
        """RunPod's status object."""
        body: dict[str, Any] = {"id": self.id, "status": self.status.value}
        if self.delay_time_ms is not None:
            body["delayTime"] = self.delay_time_ms
        if self.execution_time_ms is not None:
            body["executionTime"] = self.execution_time_ms
        if self.output is not None:
            body["output"] = self.output
        if self.error is not None:
            body["error"] = self.error
        if self.worker_id is not None:
            body["workerId"] = self.worker_id
        body["retries"] = self.retries
        return body


@dataclass(frozen=True)
class NewJob:
    """What a submission carries before the store gives it times and a state."""

    id: str
    endpoint: str
    input: Any
    execution_timeout_ms: int
    ttl_ms: int
    retention_ms: int
    low_priority: bool = False
    webhook: str | None = None
    s3_config: dict | None = None
    owner: str | None = None
    batch_id: str | None = None
    created_at: int = field(default_factory=now_ms)

    @property
    def queue_rank(self) -> int:
        return queue_rank(self.low_priority, self.batch_id)


#: the queue rank of batch requests: behind normal (0) and lowPriority (1) jobs
BATCH_RANK = 2


def queue_rank(low_priority: bool, batch_id: str | None) -> int:
    return BATCH_RANK if batch_id is not None else int(low_priority)


@dataclass(frozen=True)
class Claim:
    """A worker asking to run a new job at once, if no job of its endpoint waits ahead of
    it (see `JobStore.create`): saves the claim's round trip and the dispatcher's hop."""

    worker_id: str
    lease_ms: int

    def new_lease(self) -> str:
        return f"{self.worker_id}/{uuid.uuid4().hex[:12]}"


@dataclass(frozen=True)
class JobQuery:
    """Which live jobs to list, newest first; every field left empty matches all."""

    endpoint: str | None = None
    statuses: tuple[JobStatus, ...] = ()
    owner: str | None = None
    #: created at or after (epoch ms)
    created_from: int | None = None
    #: created before (epoch ms)
    created_to: int | None = None
    #: keyset pagination: the (created_at, id) of the last job of the previous page
    after: tuple[int, str] | None = None
    limit: int = 100


@dataclass(frozen=True)
class Workload:
    """Jobs waiting and running on some endpoints (what autoscaling sizes replicas by)."""

    queued: int = 0
    #: queued with policy.lowPriority: they never call for more replicas (RunPod's rule)
    queued_low_priority: int = 0
    running: int = 0


@dataclass(frozen=True)
class WorkerRecord:
    """An external worker as the store last heard of it."""

    endpoint: str
    id: str
    first_seen: int
    last_seen: int
    #: when it last asked for jobs; None while it never has (still initializing)
    last_take: int | None = None
    #: the runpod SDK version its pings report
    version: str | None = None
    #: the jobs its last ping said it runs
    reported: tuple[str, ...] = ()
    #: jobs the store says it holds now (IN_PROGRESS under its id)
    running: int = 0


def webhook_payload(job: Job) -> dict[str, Any]:
    """RunPod's: the status object plus the job's `input` and `webhook`."""
    return job.status_object() | {"input": job.input, "webhook": job.webhook}


class DeliveryState(str, Enum):
    PENDING = "PENDING"  #: waiting for its next attempt
    DELIVERED = "DELIVERED"  #: the receiver answered 2xx
    FAILED = "FAILED"  #: every attempt failed; given up


@dataclass(frozen=True)
class Attempt:
    """One try at delivering a webhook."""

    at: int
    status_code: int | None
    error: str | None
    duration_ms: int

    def as_dict(self) -> dict[str, Any]:
        return {"at": self.at, "statusCode": self.status_code, "error": self.error,
                "durationMs": self.duration_ms}


@dataclass(frozen=True)
class Delivery:
    """A webhook owed for one terminal state of one job: written in the same transaction
    as that state (the outbox), delivered by any replica, kept with its attempts."""

    id: str
    job_id: str
    endpoint: str
    url: str
    payload: dict[str, Any]
    created_at: int
    state: DeliveryState = DeliveryState.PENDING
    next_attempt_at: int = 0
    attempts: tuple[Attempt, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "jobId": self.job_id, "url": self.url,
                "state": self.state.value, "createdAt": self.created_at,
                "nextAttemptAt": self.next_attempt_at if self.state is DeliveryState.PENDING
                else None, "attempts": [a.as_dict() for a in self.attempts]}
