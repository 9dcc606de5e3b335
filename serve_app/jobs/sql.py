"""The SQL both stores share. Statements use `?` placeholders; the PostgreSQL store
rewrites them. Each public method is one transaction run on a worker thread."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from abc import abstractmethod
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from serve_app.jobs.errors import NotRetryable, QueueFull
from serve_app.jobs.model import (
    BATCH_RANK,
    TERMINAL,
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
    webhook_payload,
)
from serve_app.jobs.sql_batches import BATCH_SCHEMA, SqlBatchMixin
from serve_app.jobs.store import (
    LEASE_EXPIRED,
    LOST_MESSAGE,
    STOP_WINDOW_MS,
    STOPPED_KEPT,
    TIMED_OUT_MESSAGE,
    JobStore,
    lost_to_worker,
)

T = TypeVar("T")

COLUMNS = ("id", "endpoint", "status", "input", "created_at", "expires_at",
           "execution_timeout_ms", "retention_ms", "low_priority", "webhook", "s3_config",
           "output", "error", "started_at", "completed_at", "attempts", "user_retries",
           "worker_id", "lease", "lease_expires_at", "owner", "batch_id")
SELECT = "SELECT " + ", ".join(COLUMNS) + " FROM jobs"
RETURNING = " RETURNING " + ", ".join(COLUMNS)
#: for status answers: the input can be megabytes and is never shown, so it is not read
_BRIEF = ", ".join("NULL" if c == "input" else c for c in COLUMNS)
SELECT_BRIEF = f"SELECT {_BRIEF} FROM jobs"
RETURNING_BRIEF = f" RETURNING {_BRIEF}"
NOT_TERMINAL = "status NOT IN (" + ", ".join(f"'{s.value}'" for s in TERMINAL) + ")"
RUNNING = f"status = '{JobStatus.IN_PROGRESS.value}'"
#: a job ended now is kept `retention_ms` more, never past its TTL
KEEP_AFTER_END = ("expires_at = CASE WHEN expires_at < ? + retention_ms THEN expires_at "
                  "ELSE ? + retention_ms END")
#: what a run given back to the queue loses
REQUEUE = (f"status = '{JobStatus.IN_QUEUE.value}', worker_id = NULL, lease = NULL, "
           "lease_expires_at = NULL, started_at = NULL, output = NULL")

DELIVERY_COLUMNS = ("id", "job_id", "endpoint", "url", "payload", "created_at", "state",
                    "next_attempt_at", "attempts")
SELECT_DELIVERY = "SELECT " + ", ".join(DELIVERY_COLUMNS) + " FROM webhooks"

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
        attempts INTEGER NOT NULL DEFAULT 0,
        user_retries INTEGER NOT NULL DEFAULT 0,
        worker_id TEXT,
        lease TEXT,
        lease_expires_at BIGINT,
        owner TEXT,
        batch_id TEXT
    )""",
    "CREATE INDEX IF NOT EXISTS jobs_queue ON jobs (endpoint, status, low_priority, created_at)",
    "CREATE INDEX IF NOT EXISTS jobs_expiry ON jobs (expires_at)",
    # a batch's requests (counts, pages) and the jobs a worker holds (pings, stops)
    "CREATE INDEX IF NOT EXISTS jobs_batch ON jobs (batch_id, status)",
    "CREATE INDEX IF NOT EXISTS jobs_worker ON jobs (worker_id, status)",
    # job listings, newest first per endpoint
    "CREATE INDEX IF NOT EXISTS jobs_listing ON jobs (endpoint, created_at)",
    # Partial: the planner then never prefers it for claims, whatever the statistics say
    # of the queue (bench/store_scale.py found claims reading every queued job through
    # a full (status, lease) index after an ANALYZE taken with an empty queue).
    "DROP INDEX IF EXISTS jobs_leases",
    f"CREATE INDEX IF NOT EXISTS jobs_running_leases ON jobs (lease_expires_at) "
    f"WHERE status = '{JobStatus.IN_PROGRESS.value}'",
    """CREATE TABLE IF NOT EXISTS job_stream (
        job_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        chunk TEXT NOT NULL,
        PRIMARY KEY (job_id, seq)
    )""",
    """CREATE TABLE IF NOT EXISTS webhooks (
        id TEXT PRIMARY KEY,
        job_id TEXT NOT NULL,
        endpoint TEXT NOT NULL,
        url TEXT NOT NULL,
        payload TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        state TEXT NOT NULL,
        next_attempt_at BIGINT NOT NULL,
        attempts TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS webhooks_due ON webhooks (state, next_attempt_at)",
    "CREATE INDEX IF NOT EXISTS webhooks_job ON webhooks (job_id)",
    # The sweep removes old finished deliveries; without it that scans the outbox.
    "CREATE INDEX IF NOT EXISTS webhooks_created ON webhooks (created_at)",
    # external workers: `reported` the job ids of the last ping, `stopped` those already
    # sent down the job-stop channel (JSON lists)
    """CREATE TABLE IF NOT EXISTS workers (
        endpoint TEXT NOT NULL,
        id TEXT NOT NULL,
        first_seen BIGINT NOT NULL,
        last_seen BIGINT NOT NULL,
        last_take BIGINT,
        version TEXT,
        reported TEXT NOT NULL DEFAULT '[]',
        stopped TEXT NOT NULL DEFAULT '[]',
        PRIMARY KEY (endpoint, id)
    )""",
]
#: columns added since the first release, for job tables that predate them
ADDED_COLUMNS = {"attempts": "INTEGER NOT NULL DEFAULT 0",
                 "user_retries": "INTEGER NOT NULL DEFAULT 0", "lease": "TEXT",
                 "owner": "TEXT", "batch_id": "TEXT"}


def _dump(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def _load(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def row_to_job(row: tuple) -> Job:
    r = dict(zip(COLUMNS, row, strict=True))
    return Job(
        id=r["id"], endpoint=r["endpoint"], status=JobStatus(r["status"]),
        input=_load(r["input"]), created_at=r["created_at"], expires_at=r["expires_at"],
        execution_timeout_ms=r["execution_timeout_ms"], retention_ms=r["retention_ms"],
        low_priority=bool(r["low_priority"]), webhook=r["webhook"],
        s3_config=_load(r["s3_config"]), output=_load(r["output"]), error=r["error"],
        started_at=r["started_at"], completed_at=r["completed_at"], attempts=r["attempts"],
        user_retries=r["user_retries"], worker_id=r["worker_id"], lease=r["lease"],
        lease_expires_at=r["lease_expires_at"], owner=r["owner"], batch_id=r["batch_id"],
    )


def row_to_delivery(row: tuple) -> Delivery:
    r = dict(zip(DELIVERY_COLUMNS, row, strict=True))
    return Delivery(
        id=r["id"], job_id=r["job_id"], endpoint=r["endpoint"], url=r["url"],
        payload=json.loads(r["payload"]), created_at=r["created_at"],
        state=DeliveryState(r["state"]), next_attempt_at=r["next_attempt_at"],
        attempts=tuple(Attempt(**a) for a in json.loads(r["attempts"])),
    )


Query = Callable[[str, tuple], list[tuple]]


def _owned(owner: str | None) -> tuple[str, tuple]:
    """The WHERE clause (and its argument) keeping only `owner`'s jobs; none for all."""
    return ("", ()) if owner is None else (" AND owner = ?", (owner,))


class SqlJobStore(SqlBatchMixin, JobStore):
    """JobStore over a DB-API connection; subclasses supply connections and the dialect."""

    #: appended to the claims' inner SELECTs so concurrent claimers skip each other's rows
    claim_lock = ""

    def __init__(self, threads: int, clock: Clock) -> None:
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="jobstore")
        self._clock = clock
        self._listeners: list[Callable[[str, Job | None], None]] = []

    @abstractmethod
    def _transaction(self, work: Callable[[Query], T], write: bool = True) -> T:
        """Run `work` in one transaction on the calling (worker) thread; `write=False`
        promises it only reads, so it need not take a write lock."""

    @abstractmethod
    def _existing_columns(self, q: Query) -> set[str]:
        """The columns the jobs table has now."""

    def _create_schema(self, q: Query) -> None:
        for statement in SCHEMA + BATCH_SCHEMA:
            q(statement, ())
        for name in ADDED_COLUMNS.keys() - self._existing_columns(q):
            q(f"ALTER TABLE jobs ADD COLUMN {name} {ADDED_COLUMNS[name]}", ())

    def _announce_ended(self, q: Query, job_ids: list[str]) -> None:
        """Tell other replicas' listeners, at commit. A no-op where the database cannot
        notify: their waiters find out by polling."""

    def watch_ended(self, on_ended: Callable[[str, Job | None], None]) -> None:
        self._listeners.append(on_ended)

    async def _run(self, work: Callable[[Query], T], write: bool = True) -> T:
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, self._transaction, work, write)

    async def close(self) -> None:
        self._executor.shutdown(wait=True)

    # -- the one way a job ends ----------------------------------------------------------
    def _ended(self, q: Query, rows: list[tuple]) -> list[Job]:
        """Inside the transaction that ended these jobs (their rows as RETURNING gave
        them): record each one's webhook delivery and announce the end."""
        jobs = [row_to_job(r) for r in rows]
        now = self._clock()
        for i, job in enumerate(jobs):
            if job.s3_config is not None:
                # The caller's s3Config (credentials) is not kept past the job's end.
                q("UPDATE jobs SET s3_config = NULL WHERE id = ?", (job.id,))
                jobs[i] = dataclasses.replace(job, s3_config=None)
            if job.webhook:
                q("INSERT INTO webhooks (id, job_id, endpoint, url, payload, created_at, "
                  "state, next_attempt_at, attempts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                  (f"msg_{uuid.uuid4().hex}", job.id, job.endpoint, job.webhook,
                   json.dumps(webhook_payload(job)), now, DeliveryState.PENDING.value, now,
                   "[]"))
        self._announce_ended(q, [j.id for j in jobs])
        return jobs

    async def _end(self, work: Callable[[Query], tuple[list[Job], T]]) -> T:
        """Run a transaction that ends jobs through `_ended` (and returns them beside its
        result); tell this replica's listeners once it committed."""
        ended, result = await self._run(work)
        for job in ended:
            brief = dataclasses.replace(job, input=None)
            for listener in self._listeners:
                listener(job.id, brief)
        return result

    # -- the verbs -----------------------------------------------------------------------
    async def create(self, job: NewJob, max_queue: int, claim: Claim | None = None) -> Job:
        def work(q: Query) -> Job:
            # Batch requests have limits of their own and wait behind every other job: they
            # neither fill the queue nor keep a new job from being claimed at once.
            queued, ahead = q(
                "SELECT COALESCE(SUM(CASE WHEN low_priority < ? THEN 1 ELSE 0 END), 0), "
                "COALESCE(SUM(CASE WHEN low_priority <= ? THEN 1 ELSE 0 END), 0) "
                "FROM jobs WHERE endpoint = ? AND status = ?",
                (BATCH_RANK, job.queue_rank, job.endpoint, JobStatus.IN_QUEUE.value))[0]
            if queued >= max_queue:
                raise QueueFull(f"endpoint {job.endpoint!r} has {queued} queued jobs "
                                f"(limit {max_queue})")
            status, worker, lease, lease_expires_at, started_at = \
                JobStatus.IN_QUEUE, None, None, None, None
            if claim is not None and ahead == 0:
                now = self._clock()
                status, worker, lease, lease_expires_at, started_at = \
                    JobStatus.IN_PROGRESS, claim.worker_id, claim.new_lease(), \
                    now + claim.lease_ms, now
            rows = q(
                "INSERT INTO jobs (id, endpoint, status, input, created_at, expires_at, "
                "execution_timeout_ms, retention_ms, low_priority, webhook, s3_config, owner, "
                "worker_id, lease, lease_expires_at, started_at, batch_id) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)" + RETURNING_BRIEF,
                (job.id, job.endpoint, status.value, json.dumps(job.input),
                 job.created_at, job.created_at + job.ttl_ms, job.execution_timeout_ms,
                 job.retention_ms, job.queue_rank, job.webhook, _dump(job.s3_config),
                 job.owner, worker, lease, lease_expires_at, started_at, job.batch_id),
            )
            return row_to_job(rows[0])

        return await self._run(work)

    async def get(self, job_id: str) -> Job | None:
        rows = await self._run(lambda q: q(SELECT_BRIEF + " WHERE id = ? AND expires_at > ?",
                                           (job_id, self._clock())), write=False)
        return row_to_job(rows[0]) if rows else None

    async def claim(self, endpoint: str, worker_id: str, lease_ms: int, limit: int,
                    batch_limit: int | None = None) -> list[Job]:
        lease = f"{worker_id}/{uuid.uuid4().hex[:12]}"

        def take(q: Query, ranks: str, now: int, n: int) -> list[tuple]:
            return q(
                "UPDATE jobs SET status = ?, worker_id = ?, lease = ?, lease_expires_at = ?, "
                "started_at = ? WHERE id IN (SELECT id FROM jobs WHERE endpoint = ? AND "
                f"status = ? AND {ranks} AND expires_at > ? "
                "ORDER BY low_priority, created_at LIMIT ?" + self.claim_lock + ")" + RETURNING,
                (JobStatus.IN_PROGRESS.value, worker_id, lease, now + lease_ms, now, endpoint,
                 JobStatus.IN_QUEUE.value, now, n),
            ) if n > 0 else []

        def work(q: Query) -> list[Job]:
            now = self._clock()
            if batch_limit is None:
                rows = take(q, "1 = 1", now, limit)
            else:  # batch requests only in what is left, and at most batch_limit of them
                rows = take(q, f"low_priority < {BATCH_RANK}", now, limit)
                rows += take(q, f"low_priority = {BATCH_RANK}", now,
                             min(limit - len(rows), batch_limit))
            return sorted((row_to_job(r) for r in rows), key=lambda j: (j.queue_rank,
                                                                        j.created_at))

        return await self._run(work)

    async def renew(self, job_id: str, lease: str, lease_ms: int) -> Job | None:
        def work(q: Query) -> Job | None:
            now = self._clock()
            rows = q("UPDATE jobs SET lease_expires_at = ? WHERE id = ? AND lease = ? AND "
                     + RUNNING + " AND expires_at > ?" + RETURNING_BRIEF,
                     (now + lease_ms, job_id, lease, now))
            return row_to_job(rows[0]) if rows else None

        return await self._run(work)

    async def set_progress(self, job_id: str, lease: str, output: Any) -> bool:
        rows = await self._run(lambda q: q(
            "UPDATE jobs SET output = ? WHERE id = ? AND lease = ? AND " + RUNNING
            + " RETURNING id", (json.dumps(output), job_id, lease)))
        return bool(rows)

    async def append_stream(self, job_id: str, lease: str, chunks: list[Any]) -> bool:
        def work(q: Query) -> bool:
            if not q("SELECT 1 FROM jobs WHERE id = ? AND lease = ? AND " + RUNNING,
                     (job_id, lease)):
                return False
            (last,) = q("SELECT COALESCE(MAX(seq), 0) FROM job_stream WHERE job_id = ?",
                        (job_id,))[0]
            for i, chunk in enumerate(chunks, start=last + 1):
                q("INSERT INTO job_stream (job_id, seq, chunk) VALUES (?, ?, ?)",
                  (job_id, i, json.dumps(chunk)))
            return True

        return await self._run(work)

    async def drain_stream(self, job_id: str) -> tuple[Job, list[Any]] | None:
        def work(q: Query) -> tuple[Job, list[Any]] | None:
            rows = q(SELECT_BRIEF + " WHERE id = ? AND expires_at > ?", (job_id, self._clock()))
            if not rows:
                return None
            chunks = q("DELETE FROM job_stream WHERE job_id = ? RETURNING seq, chunk",
                       (job_id,))
            return row_to_job(rows[0]), [json.loads(c) for _, c in sorted(chunks)]

        return await self._run(work)

    async def finish(self, job_id: str, lease: str, status: JobStatus, output: Any,
                     error: str | None) -> Job | None:
        def work(q: Query) -> tuple[list[Job], Job | None]:
            now = self._clock()
            ended = self._ended(q, q(
                "UPDATE jobs SET status = ?, output = ?, error = ?, completed_at = ?, "
                "lease_expires_at = NULL, " + KEEP_AFTER_END +
                " WHERE id = ? AND lease = ? AND " + RUNNING + RETURNING,
                (status.value, _dump(output), error, now, now, now, job_id, lease)))
            return ended, ended[0] if ended else None

        return await self._end(work)

    async def release(self, job_id: str, lease: str, cause: str | None,
                      max_attempts: int) -> Job | None:
        def work(q: Query) -> tuple[list[Job], Job | None]:
            now = self._clock()
            counted = 1 if cause else 0
            failed = self._ended(q, q(
                "UPDATE jobs SET status = ?, error = ?, completed_at = ?, "
                "lease_expires_at = NULL, attempts = attempts + 1, " + KEEP_AFTER_END +
                " WHERE id = ? AND lease = ? AND " + RUNNING + " AND attempts + ? >= ?"
                + RETURNING,
                (JobStatus.FAILED.value,
                 LOST_MESSAGE.format(attempts=max_attempts, cause=cause), now, now, now,
                 job_id, lease, counted, max_attempts))) if cause else []
            if failed:
                return failed, failed[0]
            q("DELETE FROM job_stream WHERE job_id = ? AND EXISTS (SELECT 1 FROM jobs "
              "WHERE id = ? AND lease = ? AND " + RUNNING + ")", (job_id, job_id, lease))
            rows = q("UPDATE jobs SET " + REQUEUE + ", attempts = attempts + ? "
                     "WHERE id = ? AND lease = ? AND " + RUNNING + RETURNING_BRIEF,
                     (counted, job_id, lease))
            return [], row_to_job(rows[0]) if rows else None

        return await self._end(work)

    async def cancel(self, job_id: str) -> Job | None:
        def work(q: Query) -> tuple[list[Job], Job | None]:
            now = self._clock()
            ended = self._ended(q, q(
                "UPDATE jobs SET status = ?, completed_at = ?, lease_expires_at = NULL, "
                + KEEP_AFTER_END + " WHERE id = ? AND expires_at > ? AND " + NOT_TERMINAL
                + RETURNING, (JobStatus.CANCELLED.value, now, now, now, job_id, now)))
            if ended:
                return ended, ended[0]
            rows = q(SELECT_BRIEF + " WHERE id = ? AND expires_at > ?", (job_id, now))
            return [], row_to_job(rows[0]) if rows else None

        return await self._end(work)

    async def retry(self, job_id: str) -> Job | None:
        def work(q: Query) -> Job | None:
            now = self._clock()
            rows = q(SELECT_BRIEF + " WHERE id = ? AND expires_at > ?", (job_id, now))
            if not rows:
                return None
            job = row_to_job(rows[0])
            if job.status not in (JobStatus.FAILED, JobStatus.TIMED_OUT):
                raise NotRetryable(f"job {job_id} is {job.status.value}; only FAILED and "
                                   "TIMED_OUT jobs can be retried")
            q("DELETE FROM job_stream WHERE job_id = ?", (job_id,))
            rows = q(
                "UPDATE jobs SET " + REQUEUE + ", error = NULL, completed_at = NULL, "
                "attempts = 0, user_retries = user_retries + 1, expires_at = ? + ? "
                "WHERE id = ?" + RETURNING_BRIEF,
                (now, max(job.expires_at - now, job.retention_ms, job.execution_timeout_ms),
                 job_id),
            )
            return row_to_job(rows[0])

        return await self._run(work)

    async def purge_queue(self, endpoint: str, owner: str | None = None) -> int:
        by, args = _owned(owner)

        def work(q: Query) -> int:
            rows = q(f"DELETE FROM jobs WHERE endpoint = ? AND status = ?{by} RETURNING id",
                     (endpoint, JobStatus.IN_QUEUE.value, *args))
            for (job_id,) in rows:
                q("DELETE FROM job_stream WHERE job_id = ?", (job_id,))
            return len(rows)

        return await self._run(work)

    async def shorten_ttl(self, job_id: str, ttl_ms: int) -> None:
        def work(q: Query) -> None:
            until = self._clock() + ttl_ms
            q("UPDATE jobs SET expires_at = ? WHERE id = ? AND expires_at > ?",
              (until, job_id, until))

        await self._run(work)

    async def counts(self, endpoint: str, owner: str | None = None) -> dict[str, int]:
        by, args = _owned(owner)

        def work(q: Query) -> dict[str, int]:
            now = self._clock()
            rows = q(f"SELECT status, COUNT(*) FROM jobs WHERE endpoint = ? AND expires_at > ?"
                     f"{by} GROUP BY status", (endpoint, now, *args))
            counts = {s.value: 0 for s in JobStatus} | {status: n for status, n in rows}
            (retried,) = q(f"SELECT COUNT(*) FROM jobs WHERE endpoint = ? AND expires_at > ?"
                           f"{by} AND attempts + user_retries > 0", (endpoint, now, *args))[0]
            return counts | {"retried": retried}

        return await self._run(work, write=False)

    async def workload(self, endpoints: list[str]) -> Workload:
        if not endpoints:
            return Workload()

        def work(q: Query) -> Workload:
            marks = ", ".join("?" for _ in endpoints)
            rows = q(f"SELECT status, low_priority, COUNT(*) FROM jobs WHERE endpoint IN ({marks}) "
                     "AND status IN (?, ?) AND expires_at > ? GROUP BY status, low_priority",
                     (*endpoints, JobStatus.IN_QUEUE.value, JobStatus.IN_PROGRESS.value,
                      self._clock()))
            n: dict[tuple[str, bool], int] = {}
            for status, rank, count in rows:
                n[status, bool(rank)] = n.get((status, bool(rank)), 0) + count
            queued = JobStatus.IN_QUEUE.value
            return Workload(queued=n.get((queued, False), 0),
                            queued_low_priority=n.get((queued, True), 0),
                            running=sum(c for (s, _), c in n.items() if s != queued))

        return await self._run(work, write=False)

    async def list_jobs(self, query: JobQuery) -> list[Job]:
        where, args = ["expires_at > ?"], [self._clock()]
        if query.endpoint is not None:
            where.append("endpoint = ?")
            args.append(query.endpoint)
        if query.statuses:
            where.append(f"status IN ({', '.join('?' for _ in query.statuses)})")
            args += [s.value for s in query.statuses]
        if query.owner is not None:
            where.append("owner = ?")
            args.append(query.owner)
        if query.created_from is not None:
            where.append("created_at >= ?")
            args.append(query.created_from)
        if query.created_to is not None:
            where.append("created_at < ?")
            args.append(query.created_to)
        if query.after is not None:
            # (created_at, id) < (?, ?), spelled out: SQLite and PostgreSQL both use it
            where.append("(created_at < ? OR (created_at = ? AND id < ?))")
            args += [query.after[0], query.after[0], query.after[1]]
        sql = (f"{SELECT_BRIEF} WHERE {' AND '.join(where)} "
               "ORDER BY created_at DESC, id DESC LIMIT ?")
        rows = await self._run(lambda q: q(sql, (*args, query.limit)), write=False)
        return [row_to_job(r) for r in rows]

    async def requeue_expired_leases(self, max_attempts: int) -> list[Job]:
        def work(q: Query) -> tuple[list[Job], list[Job]]:
            now = self._clock()
            failed = self._ended(q, q(
                "UPDATE jobs SET status = ?, completed_at = ?, lease_expires_at = NULL, "
                "attempts = attempts + 1, error = ?, " + KEEP_AFTER_END +
                " WHERE " + RUNNING + " AND lease_expires_at < ? AND attempts + 1 >= ?"
                + RETURNING,
                (JobStatus.FAILED.value, now,
                 LOST_MESSAGE.format(attempts=max_attempts, cause=LEASE_EXPIRED), now, now,
                 now, max_attempts)))
            requeued = [row_to_job(r) for r in q(
                "UPDATE jobs SET " + REQUEUE + ", attempts = attempts + 1 WHERE " + RUNNING
                + " AND lease_expires_at < ?" + RETURNING_BRIEF, (now,))]
            for job in requeued:
                q("DELETE FROM job_stream WHERE job_id = ?", (job.id,))
            return failed, [dataclasses.replace(j, input=None) for j in failed] + requeued

        return await self._end(work)

    async def delete_expired(self, delivery_retention_ms: int) -> int:
        def work(q: Query) -> int:
            now = self._clock()
            rows = q("DELETE FROM jobs WHERE expires_at <= ? RETURNING id", (now,))
            for (job_id,) in rows:
                q("DELETE FROM job_stream WHERE job_id = ?", (job_id,))
            q("DELETE FROM workers WHERE last_seen < ?", (now - delivery_retention_ms,))
            q("DELETE FROM webhooks WHERE state <> ? AND created_at < ? AND "
              "NOT EXISTS (SELECT 1 FROM jobs WHERE jobs.id = webhooks.job_id)",
              (DeliveryState.PENDING.value, now - delivery_retention_ms))
            return len(rows)

        return await self._run(work)

    # -- external workers ------------------------------------------------------------------
    async def worker_seen(self, endpoint: str, worker_id: str, *, took: bool = False,
                          reported: list[str] | None = None, version: str | None = None,
                          lease_ms: int | None = None) -> None:
        def work(q: Query) -> None:
            now = self._clock()
            q("INSERT INTO workers (endpoint, id, first_seen, last_seen, last_take, version, "
              "reported) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (endpoint, id) DO UPDATE SET "
              "last_seen = excluded.last_seen, "
              "last_take = COALESCE(excluded.last_take, workers.last_take), "
              "version = COALESCE(excluded.version, workers.version), "
              "reported = CASE WHEN ? THEN excluded.reported ELSE workers.reported END",
              (endpoint, worker_id, now, now, now if took else None, version,
               json.dumps(reported or []), reported is not None))
            if reported and lease_ms is not None:
                marks = ", ".join("?" for _ in reported)
                q(f"UPDATE jobs SET lease_expires_at = ? WHERE id IN ({marks}) AND "
                  "endpoint = ? AND worker_id = ? AND " + RUNNING,
                  (now + lease_ms, *reported, endpoint, worker_id))

        await self._run(work)

    async def worker_stops(self, endpoint: str, worker_id: str) -> list[str]:
        def work(q: Query) -> list[str]:
            now = self._clock()
            rows = q("SELECT reported, stopped FROM workers WHERE endpoint = ? AND id = ?",
                     (endpoint, worker_id))
            if not rows:
                return []
            reported, stopped = json.loads(rows[0][0]), json.loads(rows[0][1])
            stops = [i for (i,) in q(
                "SELECT id FROM jobs WHERE worker_id = ? AND endpoint = ? AND status IN (?, ?) "
                "AND completed_at >= ?", (worker_id, endpoint, JobStatus.CANCELLED.value,
                                          JobStatus.TIMED_OUT.value, now - STOP_WINDOW_MS))]
            if reported:
                marks = ", ".join("?" for _ in reported)
                states = dict(q(f"SELECT id, CASE WHEN {RUNNING} AND worker_id = ? THEN 'held' "
                                f"ELSE status END FROM jobs WHERE id IN ({marks})",
                                (worker_id, *reported)))
                stops += [i for i in reported if lost_to_worker(states.get(i))]
            new = list(dict.fromkeys(i for i in stops if i not in stopped))
            if new:
                q("UPDATE workers SET stopped = ? WHERE endpoint = ? AND id = ?",
                  (json.dumps((stopped + new)[-STOPPED_KEPT:]), endpoint, worker_id))
            return new

        return await self._run(work)

    async def workers(self, endpoint: str, seen_since: int) -> list[WorkerRecord]:
        def work(q: Query) -> list[WorkerRecord]:
            running = dict(q("SELECT worker_id, COUNT(*) FROM jobs WHERE endpoint = ? AND "
                             + RUNNING + " GROUP BY worker_id", (endpoint,)))
            return [WorkerRecord(endpoint, worker_id, first, last, take, version,
                                 tuple(json.loads(reported)), running.get(worker_id, 0))
                    for worker_id, first, last, take, version, reported in q(
                        "SELECT id, first_seen, last_seen, last_take, version, reported "
                        "FROM workers WHERE endpoint = ? AND last_seen >= ? ORDER BY id",
                        (endpoint, seen_since))]

        return await self._run(work, write=False)

    async def time_out_running(self, endpoints: list[str]) -> list[Job]:
        if not endpoints:
            return []

        def work(q: Query) -> tuple[list[Job], list[Job]]:
            now = self._clock()
            marks = ", ".join("?" for _ in endpoints)
            ended = self._ended(q, q(
                "UPDATE jobs SET status = ?, "
                "error = CAST(? AS TEXT) || execution_timeout_ms || ' ms', completed_at = ?, "
                "lease_expires_at = NULL, " + KEEP_AFTER_END +
                f" WHERE endpoint IN ({marks}) AND " + RUNNING +
                " AND started_at + execution_timeout_ms <= ?" + RETURNING,
                (JobStatus.TIMED_OUT.value, TIMED_OUT_MESSAGE.removesuffix("{ms} ms"), now, now,
                 now, *endpoints, now)))
            return ended, [dataclasses.replace(j, input=None) for j in ended]

        return await self._end(work)

    # -- the webhook outbox --------------------------------------------------------------
    async def claim_deliveries(self, limit: int, lease_ms: int) -> list[Delivery]:
        def work(q: Query) -> list[Delivery]:
            now = self._clock()
            ids = [i for (i,) in q("SELECT id FROM webhooks WHERE state = ? AND "
                                   "next_attempt_at <= ? ORDER BY next_attempt_at LIMIT ?"
                                   + self.claim_lock,
                                   (DeliveryState.PENDING.value, now, limit))]
            deliveries = []
            for delivery_id in ids:
                rows = q("UPDATE webhooks SET next_attempt_at = ? WHERE id = ? RETURNING "
                         + ", ".join(DELIVERY_COLUMNS), (now + lease_ms, delivery_id))
                deliveries.append(row_to_delivery(rows[0]))
            return deliveries

        return await self._run(work)

    async def record_attempt(self, delivery_id: str, attempt: Attempt, delivered: bool,
                             next_attempt_at: int | None) -> None:
        def work(q: Query) -> None:
            rows = q("SELECT attempts FROM webhooks WHERE id = ?", (delivery_id,))
            if not rows:
                return
            log = json.loads(rows[0][0]) + [dataclasses.asdict(attempt)]
            state = (DeliveryState.DELIVERED if delivered else DeliveryState.FAILED
                     if next_attempt_at is None else DeliveryState.PENDING)
            q("UPDATE webhooks SET attempts = ?, state = ?, next_attempt_at = ? WHERE id = ?",
              (json.dumps(log), state.value, next_attempt_at or attempt.at, delivery_id))

        await self._run(work)

    async def deliveries(self, job_id: str) -> list[Delivery]:
        rows = await self._run(lambda q: q(SELECT_DELIVERY + " WHERE job_id = ? "
                                           "ORDER BY created_at", (job_id,)), write=False)
        return [row_to_delivery(r) for r in rows]
