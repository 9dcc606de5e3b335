"""The job-store interface. In-memory (tests), SQLite (one node) and PostgreSQL (cluster)
implement it; `serve_app.jobs.stores.open_store` picks one from a URL."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from serve_app.jobs.model import (
    Attempt,
    Claim,
    Delivery,
    Job,
    JobQuery,
    JobStatus,
    NewJob,
    WorkerRecord,
    Workload,
)

#: the error a job dead-lettered by lost runs ends with
LOST_MESSAGE = "worker lost {attempts} time(s); giving up. Last cause: {cause}"
LEASE_EXPIRED = "its lease expired (the ingress replica or node running it stopped)"
TIMED_OUT_MESSAGE = "execution exceeded policy.executionTimeout of {ms} ms"
#: how long after a job was cancelled or timed out its worker is told to stop it
STOP_WINDOW_MS = 10 * 60_000
#: stop signals remembered per worker (so each is sent once)
STOPPED_KEPT = 1000


def lost_to_worker(state: str | None) -> bool:
    """Whether a job a worker reports running is no longer its run (`state`: the job's
    status, "held" while the worker holds it, None when gone): queued again, held by
    another run, ended by the server (cancelled, timed out) or removed."""
    return state in (None, JobStatus.IN_QUEUE.value, JobStatus.IN_PROGRESS.value,
                     JobStatus.CANCELLED.value, JobStatus.TIMED_OUT.value)


class JobStore(ABC):
    """Durable job state shared by every ingress replica.

    A run holds a lease whose token (`Job.lease`, new for every claim) every write of
    that run names (`renew`, `set_progress`, `append_stream`, `finish`, `release`): a
    run whose lease expired, or whose job was cancelled or handed to another run, can no
    longer change the job.

    Every terminal transition (finish, cancel, a lost job dead-lettered) takes one path
    in each implementation: it happens only from a non-terminal state, so it happens
    once; in the same transaction it records the job's webhook delivery (the outbox);
    after commit it tells `watch_ended` listeners on this replica and, where the
    database can, on every other replica.

    A job's `input` is returned only where it is used: by `claim` (to run it). Elsewhere
    it is None: status answers never show it, and a polled job's input of megabytes is
    not read and decoded again on every poll.
    """

    @abstractmethod
    async def create(self, job: NewJob, max_queue: int, claim: Claim | None = None) -> Job:
        """Store a queued job; raise QueueFull past `max_queue` queued jobs of its endpoint
        (batch requests not counted). With `claim`, and no job of its endpoint queued that
        a claim would take first, store it claimed instead (IN_PROGRESS under a new lease
        of `claim.worker_id`), in the same transaction."""

    @abstractmethod
    async def get(self, job_id: str) -> Job | None:
        """The job, or None when unknown or expired."""

    @abstractmethod
    async def claim(self, endpoint: str, worker_id: str, lease_ms: int, limit: int,
                    batch_limit: int | None = None) -> list[Job]:
        """Move up to `limit` queued jobs (normal, then low priority, then batch requests;
        oldest first) to IN_PROGRESS under a new lease held by `worker_id`; at most
        `batch_limit` of them batch requests, when given."""

    @abstractmethod
    async def renew(self, job_id: str, lease: str, lease_ms: int) -> Job | None:
        """Extend the lease; None when the run must stop (cancelled, ended, expired, or
        the lease was lost)."""

    @abstractmethod
    async def set_progress(self, job_id: str, lease: str, output: Any) -> bool:
        """Set the output seen while IN_PROGRESS; False when the lease is not held."""

    @abstractmethod
    async def append_stream(self, job_id: str, lease: str, chunks: list[Any]) -> bool:
        """Add stream chunks for `/stream` to return once; False when the lease is not held."""

    @abstractmethod
    async def drain_stream(self, job_id: str) -> tuple[Job, list[Any]] | None:
        """The job and the chunks not returned before; they are removed as they are read."""

    @abstractmethod
    async def finish(self, job_id: str, lease: str, status: JobStatus, output: Any,
                     error: str | None) -> Job | None:
        """End a running job; None when the lease is no longer held."""

    @abstractmethod
    async def release(self, job_id: str, lease: str, cause: str | None,
                      max_attempts: int) -> Job | None:
        """Give a running job back to the queue at once, its stream cleared. With a
        `cause` the run was lost to the infrastructure and counts an attempt; at
        `max_attempts` the job ends FAILED naming the cause instead. Without one it was
        handed back (the replica is stopping) and counts nothing. None when the lease is
        no longer held."""

    @abstractmethod
    async def cancel(self, job_id: str) -> Job | None:
        """Cancel a queued or running job (a terminal one is left as it is)."""

    @abstractmethod
    async def retry(self, job_id: str) -> Job | None:
        """Queue a FAILED or TIMED_OUT job again with its output cleared (a user retry,
        not counted as a lost attempt); NotRetryable else."""

    @abstractmethod
    async def purge_queue(self, endpoint: str, owner: str | None = None) -> int:
        """Remove the endpoint's queued jobs (only `owner`'s, if given); running ones
        stay."""

    @abstractmethod
    async def shorten_ttl(self, job_id: str, ttl_ms: int) -> None:
        """Keep the job at most `ttl_ms` from now."""

    @abstractmethod
    async def counts(self, endpoint: str, owner: str | None = None) -> dict[str, int]:
        """Jobs per status name, plus `retried` (jobs run more than once); only
        `owner`'s, if given."""

    @abstractmethod
    async def workload(self, endpoints: list[str]) -> Workload:
        """Live jobs of these endpoints waiting or running: what replicas are needed for."""

    @abstractmethod
    async def list_jobs(self, query: JobQuery) -> list[Job]:
        """Live jobs matching `query`, newest first (ties by id, descending), without
        their inputs."""

    @abstractmethod
    async def requeue_expired_leases(self, max_attempts: int) -> list[Job]:
        """Running jobs whose lease ran out go back to the queue counting an attempt, or
        end FAILED at `max_attempts`. Returns every such job as it now is (IN_QUEUE or
        FAILED), without its input."""

    @abstractmethod
    async def delete_expired(self, delivery_retention_ms: int) -> int:
        """Remove jobs past `expires_at`, and deliveries finished longer ago than
        `delivery_retention_ms` whose job is gone. Pending deliveries stay."""

    @abstractmethod
    async def claim_deliveries(self, limit: int, lease_ms: int) -> list[Delivery]:
        """Up to `limit` pending deliveries that are due; each is pushed `lease_ms` into the
        future, so no other replica attempts it meanwhile (nor again, if this one dies)."""

    @abstractmethod
    async def record_attempt(self, delivery_id: str, attempt: Attempt, delivered: bool,
                             next_attempt_at: int | None) -> None:
        """Keep one attempt's outcome: DELIVERED, or PENDING until `next_attempt_at`, or
        FAILED when there is none."""

    @abstractmethod
    async def deliveries(self, job_id: str) -> list[Delivery]:
        """The job's webhook deliveries with their attempts, oldest first."""

    # -- external workers ------------------------------------------------------------------
    @abstractmethod
    async def worker_seen(self, endpoint: str, worker_id: str, *, took: bool = False,
                          reported: list[str] | None = None, version: str | None = None,
                          lease_ms: int | None = None) -> None:
        """Record that an external worker was heard from (`took`: it asked for jobs).
        With `reported` (a ping: the jobs it runs), remember them and extend the leases
        of those it holds by `lease_ms`."""

    @abstractmethod
    async def worker_stops(self, endpoint: str, worker_id: str) -> list[str]:
        """Jobs the worker should stop, each returned once: those it ran that were
        cancelled or timed out, and those it reported that it no longer holds."""

    @abstractmethod
    async def workers(self, endpoint: str, seen_since: int) -> list[WorkerRecord]:
        """The endpoint's external workers heard from since `seen_since` (epoch ms)."""

    @abstractmethod
    async def time_out_running(self, endpoints: list[str]) -> list[Job]:
        """End TIMED_OUT the running jobs of these endpoints past their execution timeout
        (jobs no dispatcher supervises: external workers'), returning them."""

    @abstractmethod
    def watch_ended(self, on_ended: Callable[[str, Job | None], None]) -> None:
        """From now on call `on_ended(job_id, job)`, on the running event loop, whenever a
        job ends here (`job` as it ended, its input left out) or, where the store can tell,
        on another replica (`job` None; possibly more than once for one end)."""

    @abstractmethod
    async def close(self) -> None:
        """Release connections."""
