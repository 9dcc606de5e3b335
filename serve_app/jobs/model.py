"""The job record and its states."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


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
    """One job as stored. Times are epoch milliseconds from `now_ms`."""

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
    retries: int = 0
    worker_id: str | None = None
    lease_expires_at: int | None = None

    def evolve(self, **changes: Any) -> Job:
        return dataclasses.replace(self, **changes)

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
    created_at: int = field(default_factory=now_ms)
