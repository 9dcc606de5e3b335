"""The SQL both stores share. Statements use `?` placeholders; the PostgreSQL store
rewrites them. Each public method is one transaction run on a worker thread."""

from __future__ import annotations

import asyncio
import json
from abc import abstractmethod
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from serve_app.jobs.model import TERMINAL, Job, JobStatus, NewJob, now_ms
from serve_app.jobs.store import JobStore, NotRetryable, QueueFull

T = TypeVar("T")

COLUMNS = ("id", "endpoint", "status", "input", "created_at", "expires_at",
           "execution_timeout_ms", "retention_ms", "low_priority", "webhook", "s3_config",
           "output", "error", "started_at", "completed_at", "retries", "worker_id",
           "lease_expires_at")
SELECT = "SELECT " + ", ".join(COLUMNS) + " FROM jobs"
RETURNING = " RETURNING " + ", ".join(COLUMNS)
#: for status answers: the input can be megabytes and is never shown, so it is not read
_BRIEF = ", ".join("NULL" if c == "input" else c for c in COLUMNS)
SELECT_BRIEF = f"SELECT {_BRIEF} FROM jobs"
RETURNING_BRIEF = f" RETURNING {_BRIEF}"
TERMINAL_SQL = "(" + ", ".join(f"'{s.value}'" for s in TERMINAL) + ")"

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS jobs (
        id TEXT PRIMARY KEY,
        endpoint TEXT NOT NULL,
        status TEXT NOT NULL,
        input TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL,
        execution_timeout_ms BIGINT NOT NULL,
        retention_ms BIGINT NOT NULL,
        low_priority INTEGER NOT NULL DEFAULT 0,
        webhook TEXT,
        s3_config TEXT,
        output TEXT,
        error TEXT,
        started_at BIGINT,
        completed_at BIGINT,
        retries INTEGER NOT NULL DEFAULT 0,
        worker_id TEXT,
        lease_expires_at BIGINT
    )""",
    "CREATE INDEX IF NOT EXISTS jobs_queue ON jobs (endpoint, status, low_priority, created_at)",
    "CREATE INDEX IF NOT EXISTS jobs_expiry ON jobs (expires_at)",
    """CREATE TABLE IF NOT EXISTS job_stream (
        job_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        chunk TEXT NOT NULL,
        PRIMARY KEY (job_id, seq)
    )""",
]


def _dump(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def _load(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def row_to_job(row: tuple) -> Job:
    r = dict(zip(COLUMNS, row, strict=False))
    return Job(
        id=r["id"], endpoint=r["endpoint"], status=JobStatus(r["status"]),
        input=_load(r["input"]), created_at=r["created_at"], expires_at=r["expires_at"],
        execution_timeout_ms=r["execution_timeout_ms"], retention_ms=r["retention_ms"],
        low_priority=bool(r["low_priority"]), webhook=r["webhook"],
        s3_config=_load(r["s3_config"]), output=_load(r["output"]), error=r["error"],
        started_at=r["started_at"], completed_at=r["completed_at"], retries=r["retries"],
        worker_id=r["worker_id"], lease_expires_at=r["lease_expires_at"],
    )


Query = Callable[[str, tuple], list[tuple]]


class SqlJobStore(JobStore):
    """JobStore over a DB-API connection; subclasses supply connections and the dialect."""

    #: appended to the claim's inner SELECT so concurrent claimers skip each other's rows
    claim_lock = ""

    def __init__(self, threads: int) -> None:
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="jobstore")

    @abstractmethod
    def _transaction(self, work: Callable[[Query], T], write: bool = True) -> T:
        """Run `work` in one transaction on the calling (worker) thread; `write=False`
        promises it only reads, so it need not take a write lock."""

    def _announce_ended(self, q: Query, job_ids: list[str]) -> None:
        """Tell every replica's waiters that these jobs ended, at commit. A no-op where
        the database cannot notify: waiters then find out by polling."""

    def watch_ended(self, on_ended: Callable[[str], None]) -> None:
        """Nothing announces ends by default: waiters poll."""

    async def _run(self, work: Callable[[Query], T], write: bool = True) -> T:
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, self._transaction, work, write)

    async def close(self) -> None:
        self._executor.shutdown(wait=True)

    async def create(self, job: NewJob, max_queue: int) -> Job:
        def work(q: Query) -> Job:
            (queued,) = q("SELECT COUNT(*) FROM jobs WHERE endpoint = ? AND status = ?",
                          (job.endpoint, JobStatus.IN_QUEUE.value))[0]
            if queued >= max_queue:
                raise QueueFull(f"endpoint {job.endpoint!r} has {queued} queued jobs "
                                f"(limit {max_queue})")
            rows = q(
                "INSERT INTO jobs (id, endpoint, status, input, created_at, expires_at, "
                "execution_timeout_ms, retention_ms, low_priority, webhook, s3_config) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)" + RETURNING_BRIEF,
                (job.id, job.endpoint, JobStatus.IN_QUEUE.value, json.dumps(job.input),
                 job.created_at, job.created_at + job.ttl_ms, job.execution_timeout_ms,
                 job.retention_ms, int(job.low_priority), job.webhook, _dump(job.s3_config)),
            )
            return row_to_job(rows[0])

        return await self._run(work)

    async def get(self, job_id: str) -> Job | None:
        rows = await self._run(lambda q: q(SELECT_BRIEF + " WHERE id = ? AND expires_at > ?",
                                           (job_id, now_ms())), write=False)
        return row_to_job(rows[0]) if rows else None

    async def claim(self, endpoint: str, worker_id: str, lease_ms: int, limit: int) -> list[Job]:
        def work(q: Query) -> list[Job]:
            now = now_ms()
            rows = q(
                "UPDATE jobs SET status = ?, worker_id = ?, lease_expires_at = ?, "
                "started_at = ? WHERE id IN (SELECT id FROM jobs WHERE endpoint = ? AND "
                "status = ? AND expires_at > ? ORDER BY low_priority, created_at LIMIT ?"
                + self.claim_lock + ")" + RETURNING,
                (JobStatus.IN_PROGRESS.value, worker_id, now + lease_ms, now, endpoint,
                 JobStatus.IN_QUEUE.value, now, limit),
            )
            return sorted((row_to_job(r) for r in rows),
                          key=lambda j: (j.low_priority, j.created_at))

        return await self._run(work)

    async def renew(self, job_id: str, worker_id: str, lease_ms: int) -> Job | None:
        def work(q: Query) -> Job | None:
            rows = q("UPDATE jobs SET lease_expires_at = ? WHERE id = ? AND worker_id = ? "
                     "AND expires_at > ?" + RETURNING,
                     (now_ms() + lease_ms, job_id, worker_id, now_ms()))
            return row_to_job(rows[0]) if rows else None

        return await self._run(work)

    async def set_progress(self, job_id: str, worker_id: str, output: Any) -> None:
        await self._run(lambda q: q(
            "UPDATE jobs SET output = ? WHERE id = ? AND worker_id = ? AND status = ?",
            (json.dumps(output), job_id, worker_id, JobStatus.IN_PROGRESS.value)))

    async def append_stream(self, job_id: str, worker_id: str, chunks: list[Any]) -> None:
        def work(q: Query) -> None:
            owned = q("SELECT 1 FROM jobs WHERE id = ? AND worker_id = ? AND status = ?",
                      (job_id, worker_id, JobStatus.IN_PROGRESS.value))
            if not owned:
                return
            (last,) = q("SELECT COALESCE(MAX(seq), 0) FROM job_stream WHERE job_id = ?",
                        (job_id,))[0]
            for i, chunk in enumerate(chunks, start=last + 1):
                q("INSERT INTO job_stream (job_id, seq, chunk) VALUES (?, ?, ?)",
                  (job_id, i, json.dumps(chunk)))

        await self._run(work)

    async def drain_stream(self, job_id: str) -> tuple[Job, list[Any]] | None:
        def work(q: Query) -> tuple[Job, list[Any]] | None:
            rows = q(SELECT_BRIEF + " WHERE id = ? AND expires_at > ?", (job_id, now_ms()))
            if not rows:
                return None
            chunks = q("DELETE FROM job_stream WHERE job_id = ? RETURNING seq, chunk",
                       (job_id,))
            return row_to_job(rows[0]), [json.loads(c) for _, c in sorted(chunks)]

        return await self._run(work)

    async def finish(self, job_id: str, worker_id: str, status: JobStatus, output: Any,
                     error: str | None) -> Job | None:
        def work(q: Query) -> Job | None:
            now = now_ms()
            rows = q(
                "UPDATE jobs SET status = ?, output = ?, error = ?, completed_at = ?, "
                "lease_expires_at = NULL, "
                "expires_at = CASE WHEN expires_at < ? + retention_ms THEN expires_at "
                "ELSE ? + retention_ms END "
                "WHERE id = ? AND worker_id = ? AND status = ?" + RETURNING,
                (status.value, _dump(output), error, now, now, now, job_id, worker_id,
                 JobStatus.IN_PROGRESS.value),
            )
            if rows:
                self._announce_ended(q, [job_id])
            return row_to_job(rows[0]) if rows else None

        return await self._run(work)

    async def cancel(self, job_id: str) -> Job | None:
        def work(q: Query) -> Job | None:
            now = now_ms()
            q("UPDATE jobs SET status = ?, completed_at = ?, lease_expires_at = NULL, "
              "expires_at = CASE WHEN expires_at < ? + retention_ms THEN expires_at "
              "ELSE ? + retention_ms END "
              "WHERE id = ? AND expires_at > ? AND status NOT IN " + TERMINAL_SQL,
              (JobStatus.CANCELLED.value, now, now, now, job_id, now))
            rows = q(SELECT + " WHERE id = ? AND expires_at > ?", (job_id, now))
            if rows:
                self._announce_ended(q, [job_id])
            return row_to_job(rows[0]) if rows else None

        return await self._run(work)

    async def retry(self, job_id: str) -> Job | None:
        def work(q: Query) -> Job | None:
            now = now_ms()
            rows = q(SELECT_BRIEF + " WHERE id = ? AND expires_at > ?", (job_id, now))
            if not rows:
                return None
            job = row_to_job(rows[0])
            if job.status not in (JobStatus.FAILED, JobStatus.TIMED_OUT):
                raise NotRetryable(f"job {job_id} is {job.status.value}; only FAILED and "
                                   "TIMED_OUT jobs can be retried")
            q("DELETE FROM job_stream WHERE job_id = ?", (job_id,))
            rows = q(
                "UPDATE jobs SET status = ?, output = NULL, error = NULL, started_at = NULL, "
                "completed_at = NULL, worker_id = NULL, lease_expires_at = NULL, "
                "retries = retries + 1, expires_at = ? + ? WHERE id = ?" + RETURNING_BRIEF,
                (JobStatus.IN_QUEUE.value, now, max(job.expires_at - now, job.retention_ms,
                                                     job.execution_timeout_ms), job_id),
            )
            return row_to_job(rows[0])

        return await self._run(work)

    async def purge_queue(self, endpoint: str) -> int:
        def work(q: Query) -> int:
            rows = q("DELETE FROM jobs WHERE endpoint = ? AND status = ? RETURNING id",
                     (endpoint, JobStatus.IN_QUEUE.value))
            for (job_id,) in rows:
                q("DELETE FROM job_stream WHERE job_id = ?", (job_id,))
            return len(rows)

        return await self._run(work)

    async def shorten_ttl(self, job_id: str, ttl_ms: int) -> None:
        await self._run(lambda q: q(
            "UPDATE jobs SET expires_at = ? WHERE id = ? AND expires_at > ?",
            (now_ms() + ttl_ms, job_id, now_ms() + ttl_ms)))

    async def counts(self, endpoint: str) -> dict[str, int]:
        def work(q: Query) -> dict[str, int]:
            now = now_ms()
            rows = q("SELECT status, COUNT(*) FROM jobs WHERE endpoint = ? AND expires_at > ? "
                     "GROUP BY status", (endpoint, now))
            counts = {s.value: 0 for s in JobStatus} | {status: n for status, n in rows}
            (retried,) = q("SELECT COUNT(*) FROM jobs WHERE endpoint = ? AND expires_at > ? "
                           "AND retries > 0", (endpoint, now))[0]
            return counts | {"retried": retried}

        return await self._run(work, write=False)

    async def list_jobs(self, endpoint: str, status: JobStatus, limit: int) -> list[Job]:
        rows = await self._run(lambda q: q(
            SELECT_BRIEF + " WHERE endpoint = ? AND status = ? AND expires_at > ? "
            "ORDER BY created_at DESC LIMIT ?", (endpoint, status.value, now_ms(), limit)),
            write=False)
        return [row_to_job(r) for r in rows]

    async def requeue_expired_leases(self, max_retries: int) -> list[Job]:
        def work(q: Query) -> list[Job]:
            now = now_ms()
            failed = q(
                "UPDATE jobs SET status = ?, completed_at = ?, lease_expires_at = NULL, "
                "error = 'worker lost: the lease expired ' || CAST(retries + 1 AS TEXT) || "
                "' times; giving up' WHERE status = ? AND lease_expires_at < ? "
                "AND retries + 1 >= ?" + RETURNING,
                (JobStatus.FAILED.value, now, JobStatus.IN_PROGRESS.value, now, max_retries),
            )
            q("UPDATE jobs SET status = ?, worker_id = NULL, lease_expires_at = NULL, "
              "started_at = NULL, output = NULL, retries = retries + 1 "
              "WHERE status = ? AND lease_expires_at < ?",
              (JobStatus.IN_QUEUE.value, JobStatus.IN_PROGRESS.value, now))
            jobs = [row_to_job(r) for r in failed]
            self._announce_ended(q, [j.id for j in jobs])
            return jobs

        return await self._run(work)

    async def delete_expired(self) -> int:
        def work(q: Query) -> int:
            rows = q("DELETE FROM jobs WHERE expires_at <= ? RETURNING id", (now_ms(),))
            for (job_id,) in rows:
                q("DELETE FROM job_stream WHERE job_id = ?", (job_id,))
            return len(rows)

        return await self._run(work)
