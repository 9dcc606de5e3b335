"""The job-store interface. SQLite (embedded) and PostgreSQL (cluster) implement it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from serve_app.jobs.model import Job, JobStatus, NewJob


class QueueFull(Exception):
    """The endpoint's queue holds its maximum number of jobs."""


class NotRetryable(Exception):
    """Only FAILED and TIMED_OUT jobs can be retried."""


class JobStore(ABC):
    """Durable job state shared by every ingress replica.

    Writes by a worker (`renew`, `set_progress`, `append_stream`, `finish`) only take
    effect while that worker still holds the job's lease, so a job whose lease expired
    and was handed to another worker cannot be finished twice.

    A job's `input` is returned only where it is used: by `claim` (to run it) and by the
    ends a webhook reports (`finish`, `cancel`, `requeue_expired_leases`). Elsewhere it is
    None: status answers never show it, and a polled job's input of megabytes is not
    read and decoded again on every poll.
    """

    @abstractmethod
    async def create(self, job: NewJob, max_queue: int) -> Job:
        """Store a queued job; raise QueueFull past `max_queue` queued jobs of its endpoint."""

    @abstractmethod
    async def get(self, job_id: str) -> Job | None:
        """The job, or None when unknown or expired."""

    @abstractmethod
    async def claim(self, endpoint: str, worker_id: str, lease_ms: int, limit: int) -> list[Job]:
        """Move up to `limit` queued jobs (normal before low priority, oldest first) to
        IN_PROGRESS under a lease held by `worker_id`."""

    @abstractmethod
    async def renew(self, job_id: str, worker_id: str, lease_ms: int) -> Job | None:
        """Extend the lease; return the job as stored now (a CANCELLED status tells the worker
        to stop), or None when the job is gone or no longer this worker's."""

    @abstractmethod
    async def set_progress(self, job_id: str, worker_id: str, output: Any) -> None:
        """Set the output seen while IN_PROGRESS."""

    @abstractmethod
    async def append_stream(self, job_id: str, worker_id: str, chunks: list[Any]) -> None:
        """Add stream chunks for `/stream` to return once."""

    @abstractmethod
    async def drain_stream(self, job_id: str) -> tuple[Job, list[Any]] | None:
        """The job and the chunks not returned before; they are removed as they are read."""

    @abstractmethod
    async def finish(self, job_id: str, worker_id: str, status: JobStatus, output: Any,
                     error: str | None) -> Job | None:
        """End a running job; None when the worker no longer holds it."""

    @abstractmethod
    async def cancel(self, job_id: str) -> Job | None:
        """Cancel a queued or running job (a terminal one is left as it is)."""

    @abstractmethod
    async def retry(self, job_id: str) -> Job | None:
        """Queue a FAILED or TIMED_OUT job again with its output cleared; NotRetryable else."""

    @abstractmethod
    async def purge_queue(self, endpoint: str) -> int:
        """Remove the endpoint's queued jobs; running ones stay."""

    @abstractmethod
    async def shorten_ttl(self, job_id: str, ttl_ms: int) -> None:
        """Keep the job at most `ttl_ms` from now."""

    @abstractmethod
    async def counts(self, endpoint: str) -> dict[str, int]:
        """Jobs per status name, plus `retried` (jobs with retries > 0)."""

    @abstractmethod
    async def list_jobs(self, endpoint: str, status: JobStatus, limit: int) -> list[Job]:
        """Jobs of one status, newest first (e.g. the FAILED dead letters)."""

    @abstractmethod
    async def requeue_expired_leases(self, max_retries: int) -> list[Job]:
        """Running jobs whose lease ran out go back to the queue with retries + 1, or end
        FAILED once retries reach `max_retries`. Returns the jobs that failed."""

    @abstractmethod
    async def delete_expired(self) -> int:
        """Remove jobs past `expires_at`."""

    @abstractmethod
    def watch_ended(self, on_ended: Callable[[str], None]) -> None:
        """From now on call `on_ended(job_id)`, on the running event loop, whenever a job
        ends on any replica. Stores that cannot notify leave it to waiters to poll."""

    @abstractmethod
    async def close(self) -> None:
        """Release connections."""


def open_store(url: str) -> JobStore:
    """A store for `sqlite:///path` or `postgresql://...`."""
    if url.startswith("sqlite:///"):
        from serve_app.jobs.sqlite import SQLiteJobStore

        # sqlite:///relative/path, sqlite:////absolute/path (as SQLAlchemy spells them)
        return SQLiteJobStore(url[len("sqlite:///"):])
    if url.startswith(("postgresql://", "postgres://")):
        from serve_app.jobs.postgres import PostgresJobStore

        return PostgresJobStore(url)
    raise ValueError(f"unsupported job store URL {url!r}: use sqlite:///path or postgresql://")
