"""The batch verbs over SQL, shared by the SQLite and PostgreSQL stores (a mixin of
`SqlJobStore`, whose transactions, clock and job-ending path it uses).

Writes that depend on a batch's state begin with a conditional UPDATE of its row: on
PostgreSQL that takes the row's lock, so an append racing a finalize either lands before
it or is refused, never half-moved. The active-batch limit is counted, then inserted, as
`create` does with the queue limit: on PostgreSQL two creates at once may pass it by one.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

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
from serve_app.jobs.model import BATCH_RANK, DeliveryState, JobStatus

if TYPE_CHECKING:
    from serve_app.jobs.sql import Query

BATCH_COLUMNS = ("id", "endpoint", "status", "owner", "name", "webhook", "created_at",
                 "expires_at", "finalized_at", "deadline_at", "cancelled_at", "ended_at",
                 "request_total", "completed", "failed")
SELECT_BATCH = "SELECT " + ", ".join(BATCH_COLUMNS) + " FROM batches"
RETURNING_BATCH = " RETURNING " + ", ".join(BATCH_COLUMNS)
DRAFT = f"status = '{BatchStatus.DRAFT.value}'"
LIVE_JOB = f"status IN ('{JobStatus.IN_QUEUE.value}', '{JobStatus.IN_PROGRESS.value}')"
#: draft rows per INSERT: 4 parameters each stays under SQLite's oldest limit of 999
DRAFT_ROWS_PER_INSERT = 200

BATCH_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS batches (
        id TEXT PRIMARY KEY,
        endpoint TEXT NOT NULL,
        status TEXT NOT NULL,
        owner TEXT,
        name TEXT,
        webhook TEXT,
        created_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL,
        finalized_at BIGINT,
        deadline_at BIGINT,
        cancelled_at BIGINT,
        ended_at BIGINT,
        request_total INTEGER NOT NULL DEFAULT 0,
        next_seq INTEGER NOT NULL DEFAULT 1,
        completed INTEGER NOT NULL DEFAULT 0,
        failed INTEGER NOT NULL DEFAULT 0
    )""",
    "CREATE INDEX IF NOT EXISTS batches_listing ON batches (endpoint, created_at)",
    "CREATE INDEX IF NOT EXISTS batches_expiry ON batches (expires_at)",
    # the sweep's look for batches to end reads only those not ended
    "CREATE INDEX IF NOT EXISTS batches_open ON batches (endpoint) WHERE ended_at IS NULL",
    # a DRAFT batch's requests, apart from `jobs` so that no claim sees them
    """CREATE TABLE IF NOT EXISTS batch_drafts (
        batch_id TEXT NOT NULL,
        id TEXT NOT NULL,
        input TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        PRIMARY KEY (batch_id, id)
    )""",
]


def row_to_batch(row: tuple) -> Batch:
    r = dict(zip(BATCH_COLUMNS, row, strict=True))
    return Batch(id=r["id"], endpoint=r["endpoint"], status=BatchStatus(r["status"]),
                 created_at=r["created_at"], expires_at=r["expires_at"],
                 request_total=r["request_total"], completed=r["completed"],
                 failed=r["failed"], owner=r["owner"], name=r["name"], webhook=r["webhook"],
                 finalized_at=r["finalized_at"], deadline_at=r["deadline_at"],
                 cancelled_at=r["cancelled_at"],
                 ended_at=r["ended_at"])


def _load(text: str | None) -> Any:
    return None if text is None else json.loads(text)


class SqlBatchMixin(BatchStore):
    """Batch verbs for `SqlJobStore` (which supplies `_run`, `_end`, `_ended`, `_clock`)."""

    _clock: Callable[[], int]

    # -- helpers (inside a transaction) --------------------------------------------------
    def _batch_row(self, q: Query, batch_id: str, now: int) -> Batch | None:
        rows = q(SELECT_BATCH + " WHERE id = ? AND expires_at > ?", (batch_id, now))
        return row_to_batch(rows[0]) if rows else None

    @staticmethod
    def _by_status(q: Query, batch_id: str, now: int) -> dict[str, int]:
        return dict(q("SELECT status, COUNT(*) FROM jobs WHERE batch_id = ? AND expires_at > ? "
                      "GROUP BY status", (batch_id, now)))

    def _counted(self, q: Query, batch: Batch, now: int) -> Batch:
        """Ended batches keep the counts frozen at their end; DRAFT ones have none."""
        if batch.ended_at is not None or batch.status is BatchStatus.DRAFT:
            return batch
        return counted(batch, self._by_status(q, batch.id, now))

    def _refusal(self, q: Query, batch_id: str, now: int) -> Exception:
        """Why a conditional write on a DRAFT batch matched nothing (besides size)."""
        batch = self._batch_row(q, batch_id, now)
        return unknown(batch_id) if batch is None else not_draft(batch)

    @staticmethod
    def _insert_drafts(q: Query, batch_id: str, first_seq: int, inputs: list[Any],
                       now: int) -> None:
        rows = [(batch_id, request_id(batch_id, first_seq + i), json.dumps(x), now)
                for i, x in enumerate(inputs)]
        for start in range(0, len(rows), DRAFT_ROWS_PER_INSERT):
            chunk = rows[start:start + DRAFT_ROWS_PER_INSERT]
            q("INSERT INTO batch_drafts (batch_id, id, input, created_at) VALUES "
              + ", ".join("(?, ?, ?, ?)" for _ in chunk), tuple(v for r in chunk for v in r))

    def _conclude(self, q: Query, batch: Batch, now: int, retention_ms: int) -> Batch | None:
        """End `batch` if none of its requests waits or runs (and no one ended it first)."""
        by_status = self._by_status(q, batch.id, now)
        final = counted(batch, by_status)
        if final.in_progress:
            return None
        keep_until = now + retention_ms
        rows = q("UPDATE batches SET status = ?, ended_at = ?, completed = ?, failed = ?, "
                 "expires_at = CASE WHEN expires_at < ? THEN expires_at ELSE ? END "
                 "WHERE id = ? AND ended_at IS NULL" + RETURNING_BATCH,
                 (ending_status(batch, by_status).value, now, final.completed, final.failed,
                  keep_until, keep_until, batch.id))
        if not rows:
            return None
        ended = row_to_batch(rows[0])
        q("UPDATE jobs SET expires_at = ? WHERE batch_id = ? AND expires_at > ?",
          (ended.expires_at, batch.id, ended.expires_at))
        if ended.webhook:  # the outbox, as a job's end records its webhook
            q("INSERT INTO webhooks (id, job_id, endpoint, url, payload, created_at, state, "
              "next_attempt_at, attempts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
              (f"msg_{uuid.uuid4().hex}", ended.id, ended.endpoint, ended.webhook,
               json.dumps(ended.summary()), now, DeliveryState.PENDING.value, now, "[]"))
        return ended

    # -- the verbs -----------------------------------------------------------------------
    async def create_batch(self, batch: NewBatch, inputs: list[Any], max_active: int,
                           max_requests: int) -> Batch:
        def work(q: Query) -> Batch:
            (active,) = q("SELECT COUNT(*) FROM batches WHERE endpoint = ? AND ended_at IS NULL "
                          "AND expires_at > ?", (batch.endpoint, batch.created_at))[0]
            if active >= max_active:
                raise too_many(batch.endpoint, active, max_active)
            if len(inputs) > max_requests:
                raise too_large(batch.id, 0, len(inputs), max_requests)
            rows = q("INSERT INTO batches (id, endpoint, status, owner, name, webhook, "
                     "created_at, expires_at, request_total, next_seq) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)" + RETURNING_BATCH,
                     (batch.id, batch.endpoint, BatchStatus.DRAFT.value, batch.owner,
                      batch.name, batch.webhook, batch.created_at,
                      batch.created_at + batch.ttl_ms, len(inputs), len(inputs) + 1))
            self._insert_drafts(q, batch.id, 1, inputs, batch.created_at)
            return row_to_batch(rows[0])

        return await self._run(work)

    async def add_batch_requests(self, batch_id: str, inputs: list[Any],
                                 max_requests: int) -> Batch:
        def work(q: Query) -> Batch:
            now, n = self._clock(), len(inputs)
            rows = q("UPDATE batches SET request_total = request_total + ?, "
                     "next_seq = next_seq + ? WHERE id = ? AND " + DRAFT + " AND expires_at > ? "
                     "AND request_total + ? <= ? RETURNING next_seq",
                     (n, n, batch_id, now, n, max_requests))
            if not rows:
                batch = self._batch_row(q, batch_id, now)
                if batch is not None and batch.status is BatchStatus.DRAFT:
                    raise too_large(batch_id, batch.request_total, n, max_requests)
                raise self._refusal(q, batch_id, now)
            self._insert_drafts(q, batch_id, rows[0][0] - n, inputs, now)
            batch = self._batch_row(q, batch_id, now)
            assert batch is not None
            return batch

        return await self._run(work)

    async def remove_batch_request(self, batch_id: str, request_id: str) -> Batch:
        def work(q: Query) -> Batch:
            now = self._clock()
            rows = q("UPDATE batches SET request_total = request_total - 1 WHERE id = ? AND "
                     + DRAFT + " AND expires_at > ?" + RETURNING_BATCH, (batch_id, now))
            if not rows:
                raise self._refusal(q, batch_id, now)
            if not q("DELETE FROM batch_drafts WHERE batch_id = ? AND id = ? RETURNING id",
                     (batch_id, request_id)):
                raise UnknownBatchRequest(f"batch {batch_id} holds no request {request_id!r}")
            return row_to_batch(rows[0])

        return await self._run(work)

    async def finalize_batch(self, batch_id: str, execution_timeout_ms: int, ttl_ms: int,
                             retention_ms: int) -> Batch:
        def work(q: Query) -> Batch:
            now = self._clock()
            kept = ttl_ms + retention_ms
            rows = q("UPDATE batches SET status = ?, finalized_at = ?, deadline_at = ?, "
                     "expires_at = ? WHERE id = ? AND " + DRAFT + " AND expires_at > ?"
                     + RETURNING_BATCH, (BatchStatus.FINALIZED.value, now, now + ttl_ms,
                                         now + kept, batch_id, now))
            if not rows:
                raise self._refusal(q, batch_id, now)
            batch = row_to_batch(rows[0])
            # A request's job: queued behind all others (the batch rank), kept as long as
            # the batch (its end shortens that), so that its counts hold until then.
            q("INSERT INTO jobs (id, endpoint, status, input, created_at, expires_at, "
              "execution_timeout_ms, retention_ms, low_priority, owner, batch_id) "
              "SELECT id, ?, ?, input, ?, ?, ?, ?, ?, ?, batch_id FROM batch_drafts "
              "WHERE batch_id = ?",
              (batch.endpoint, JobStatus.IN_QUEUE.value, now, now + kept,
               execution_timeout_ms, kept, BATCH_RANK, batch.owner, batch_id))
            q("DELETE FROM batch_drafts WHERE batch_id = ?", (batch_id,))
            return self._counted(q, batch, now)

        return await self._run(work)

    async def update_batch(self, batch_id: str, changes: dict[str, Any]) -> Batch:
        names = [k for k in ("name", "webhook") if k in changes]

        def work(q: Query) -> Batch:
            now = self._clock()
            if names:
                q(f"UPDATE batches SET {', '.join(f'{k} = ?' for k in names)} "
                  "WHERE id = ? AND expires_at > ?",
                  (*(changes[k] for k in names), batch_id, now))
            batch = self._batch_row(q, batch_id, now)
            if batch is None:
                raise unknown(batch_id)
            return self._counted(q, batch, now)

        return await self._run(work)

    async def get_batch(self, batch_id: str) -> Batch | None:
        def work(q: Query) -> Batch | None:
            now = self._clock()
            batch = self._batch_row(q, batch_id, now)
            return None if batch is None else self._counted(q, batch, now)

        return await self._run(work, write=False)

    async def list_batches(self, endpoint: str, owner: str | None, limit: int) -> list[Batch]:
        by, args = ("", ()) if owner is None else (" AND owner = ?", (owner,))

        def work(q: Query) -> list[Batch]:
            now = self._clock()
            rows = q(SELECT_BATCH + f" WHERE endpoint = ? AND expires_at > ?{by} "
                     "ORDER BY created_at DESC, id DESC LIMIT ?", (endpoint, now, *args, limit))
            return [self._counted(q, row_to_batch(r), now) for r in rows]

        return await self._run(work, write=False)

    async def batch_requests(self, batch_id: str, offset: int,
                             limit: int) -> tuple[list[BatchRequest], int]:
        def work(q: Query) -> tuple[list[BatchRequest], int]:
            now = self._clock()
            batch = self._batch_row(q, batch_id, now)
            if batch is None:
                raise unknown(batch_id)
            if batch.status is BatchStatus.DRAFT:
                (total,) = q("SELECT COUNT(*) FROM batch_drafts WHERE batch_id = ?",
                             (batch_id,))[0]
                rows = q("SELECT id FROM batch_drafts WHERE batch_id = ? ORDER BY id "
                         "LIMIT ? OFFSET ?", (batch_id, limit, offset))
                return [BatchRequest(i, DRAFT_REQUEST) for (i,) in rows], total
            (total,) = q("SELECT COUNT(*) FROM jobs WHERE batch_id = ? AND expires_at > ?",
                         (batch_id, now))[0]
            rows = q("SELECT id, status, output, error, started_at, completed_at FROM jobs "
                     "WHERE batch_id = ? AND expires_at > ? ORDER BY id LIMIT ? OFFSET ?",
                     (batch_id, now, limit, offset))
            return [BatchRequest(i, s, _load(o), e, started, completed)
                    for i, s, o, e, started, completed in rows], total

        return await self._run(work, write=False)

    def _end_queued(self, q: Query, batch_id: str, status: JobStatus, error: str | None,
                    now: int) -> list:
        """End the batch's queued requests, the one way jobs end (`_ended`)."""
        from serve_app.jobs.sql import KEEP_AFTER_END, RETURNING  # sql.py imports this module

        return self._ended(q, q(
            "UPDATE jobs SET status = ?, error = ?, completed_at = ?, lease_expires_at = NULL, "
            + KEEP_AFTER_END + " WHERE batch_id = ? AND status = ? AND expires_at > ?"
            + RETURNING, (status.value, error, now, now, now, batch_id,
                          JobStatus.IN_QUEUE.value, now)))

    async def cancel_batch(self, batch_id: str, retention_ms: int) -> Batch | None:
        def work(q: Query) -> tuple[list, Batch | None]:
            now = self._clock()
            rows = q("UPDATE batches SET cancelled_at = COALESCE(cancelled_at, ?) WHERE id = ? "
                     "AND expires_at > ? AND ended_at IS NULL" + RETURNING_BATCH,
                     (now, batch_id, now))
            if not rows:  # unknown, or ended: left as it is
                batch = self._batch_row(q, batch_id, now)
                return [], None if batch is None else self._counted(q, batch, now)
            q("DELETE FROM batch_drafts WHERE batch_id = ?", (batch_id,))
            # Queued requests end now; running ones finish.
            ended = self._end_queued(q, batch_id, JobStatus.CANCELLED, None, now)
            batch = row_to_batch(rows[0])
            return ended, (self._conclude(q, batch, now, retention_ms)
                           or self._counted(q, batch, now))

        return await self._end(work)

    async def conclude_batches(self, retention_ms: int) -> list[Batch]:
        def due(q: Query) -> list[str]:
            now = self._clock()
            rows = q(SELECT_BATCH + " WHERE ended_at IS NULL AND expires_at > ? AND "
                     "(status <> ? OR cancelled_at IS NOT NULL)",
                     (now, BatchStatus.DRAFT.value))
            # Most sweeps find requests still to run: one indexed look each says so.
            return [b.id for b in map(row_to_batch, rows) if overdue(b, now)
                    or not q("SELECT 1 FROM jobs WHERE batch_id = ? AND " + LIVE_JOB
                             + " AND expires_at > ? LIMIT 1", (b.id, now))]

        def end(q: Query) -> tuple[list, list[Batch]]:
            now, failed_jobs, ended = self._clock(), [], []
            for batch_id in candidates:
                batch = self._batch_row(q, batch_id, now)
                if batch is None or batch.ended_at is not None:
                    continue  # another replica was first
                if overdue(batch, now):
                    failed_jobs += self._end_queued(q, batch_id, JobStatus.FAILED,
                                                    overdue_error(batch), now)
                    rows = q("UPDATE batches SET status = ? WHERE id = ?" + RETURNING_BATCH,
                             (BatchStatus.FAILED.value, batch_id))
                    batch = row_to_batch(rows[0])
                if (done := self._conclude(q, batch, now, retention_ms)) is not None:
                    ended.append(done)
            return failed_jobs, ended

        # Read first: the write (SQLite's write lock) only when a batch looks due.
        candidates = await self._run(due, write=False)
        return await self._end(end) if candidates else []

    async def delete_expired_batches(self) -> int:
        def work(q: Query) -> int:
            rows = q("DELETE FROM batches WHERE expires_at <= ? RETURNING id", (self._clock(),))
            for (batch_id,) in rows:
                q("DELETE FROM batch_drafts WHERE batch_id = ?", (batch_id,))
            return len(rows)

        return await self._run(work)
