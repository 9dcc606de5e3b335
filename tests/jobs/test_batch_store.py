"""The BatchStore contract, over the in-memory, SQLite and PostgreSQL stores."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

from serve_app.jobs.batches import (
    Batch,
    BatchNotDraft,
    BatchStatus,
    BatchTooLarge,
    NewBatch,
    TooManyBatches,
    UnknownBatch,
    UnknownBatchRequest,
)
from serve_app.jobs.model import BATCH_RANK, JobStatus, NewJob
from serve_app.jobs.stores import open_store
from tests.jobs.conftest import FakeClock

T = TypeVar("T")
DAY_MS = 86_400_000
TTL_MS, RETENTION_MS = 7 * DAY_MS, DAY_MS


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


async def new_batch(store: Any, clock: FakeClock, n: int, endpoint: str = "e",
                    owner: str | None = None, webhook: str | None = None,
                    batch_id: str = "b1", max_active: int = 10) -> Batch:
    batch = NewBatch(id=batch_id, endpoint=endpoint, created_at=clock(), ttl_ms=TTL_MS,
                     owner=owner, webhook=webhook)
    return await store.create_batch(batch, [{"i": i} for i in range(n)], max_active, 5_000)


async def finalized(store: Any, clock: FakeClock, n: int, **kw: Any) -> Batch:
    batch = await new_batch(store, clock, n, **kw)
    return await store.finalize_batch(batch.id, 60_000, TTL_MS, RETENTION_MS)


def test_a_draft_takes_and_loses_requests_in_order(store: Any, clock: FakeClock) -> None:
    async def main() -> None:
        batch = await new_batch(store, clock, 3)
        assert (batch.status, batch.request_total) == (BatchStatus.DRAFT, 3)
        batch = await store.add_batch_requests("b1", [{"i": 3}, {"i": 4}], 5_000)
        assert batch.request_total == 5 and batch.in_progress == 0
        page, total = await store.batch_requests("b1", 0, 10)
        ids = [r.id for r in page]
        assert total == 5 and ids == sorted(ids) and {r.status for r in page} == {"DRAFT"}
        batch = await store.remove_batch_request("b1", ids[1])
        assert batch.request_total == 4
        with pytest.raises(UnknownBatchRequest):
            await store.remove_batch_request("b1", ids[1])
        page, total = await store.batch_requests("b1", 1, 2)
        assert total == 4 and [r.id for r in page] == [ids[2], ids[3]]
        # Drafts are never claimed: they are not jobs yet.
        assert await store.claim("e", "w", 10_000, 10) == []
        # Ids given when added stay the jobs' ids; appended ones follow the first.
        batch = await store.finalize_batch("b1", 60_000, TTL_MS, RETENTION_MS)
        assert (batch.status, batch.request_total, batch.queued) == (BatchStatus.FINALIZED, 4, 4)
        jobs = await store.claim("e", "w", 10_000, 10)
        assert sorted(j.id for j in jobs) == [ids[0], *ids[2:]]
        assert all(j.batch_id == "b1" and j.queue_rank == BATCH_RANK for j in jobs)
        assert sorted(j.input["i"] for j in jobs) == [0, 2, 3, 4]

    run(main())


def test_limits_and_states_refuse_what_they_must(store: Any, clock: FakeClock) -> None:
    async def main() -> None:
        with pytest.raises(BatchTooLarge):
            await store.create_batch(NewBatch("big", "e", clock(), TTL_MS),
                                     [{}] * 5_001, 10, 5_000)
        await new_batch(store, clock, 4_999)
        with pytest.raises(BatchTooLarge):
            await store.add_batch_requests("b1", [{}, {}], 5_000)
        assert (await store.get_batch("b1")).request_total == 4_999  # none was added
        await store.add_batch_requests("b1", [{}], 5_000)
        await new_batch(store, clock, 0, batch_id="b2", max_active=2)
        with pytest.raises(TooManyBatches):
            await new_batch(store, clock, 0, batch_id="b3", max_active=2)
        # Another endpoint's batches count apart.
        await new_batch(store, clock, 0, batch_id="b4", endpoint="other", max_active=2)
        await store.finalize_batch("b2", 60_000, TTL_MS, RETENTION_MS)
        for refused in (store.add_batch_requests("b2", [{}], 5_000),
                        store.remove_batch_request("b2", "b2-000001"),
                        store.finalize_batch("b2", 60_000, TTL_MS, RETENTION_MS)):
            with pytest.raises(BatchNotDraft, match="FINALIZED"):
                await refused
        for unknown in (store.add_batch_requests("nope", [{}], 5_000),
                        store.remove_batch_request("nope", "x"),
                        store.finalize_batch("nope", 60_000, TTL_MS, RETENTION_MS),
                        store.update_batch("nope", {"name": "x"}),
                        store.batch_requests("nope", 0, 10)):
            with pytest.raises(UnknownBatch):
                await unknown
        assert await store.get_batch("nope") is None
        assert await store.cancel_batch("nope", RETENTION_MS) is None

    run(main())


def test_a_batch_ends_once_when_every_request_ended(store: Any, clock: FakeClock) -> None:
    async def main() -> None:
        await finalized(store, clock, 6, webhook="http://127.0.0.1:9/done")
        jobs = await store.claim("e", "w", 10_000, 10)
        for i, job in enumerate(jobs[:5]):
            status = JobStatus.FAILED if i % 2 else JobStatus.COMPLETED
            await store.finish(job.id, job.lease, status, {"ok": i}, "bad" if i % 2 else None)
        batch = await store.get_batch("b1")
        assert (batch.completed, batch.failed, batch.running, batch.queued) == (3, 2, 1, 0)
        assert await store.conclude_batches(RETENTION_MS) == []  # one still runs
        await store.finish(jobs[5].id, jobs[5].lease, JobStatus.TIMED_OUT, None, "slow")
        clock.advance(5)
        [ended] = await store.conclude_batches(RETENTION_MS)
        assert await store.conclude_batches(RETENTION_MS) == []  # once
        assert ended.status is BatchStatus.FINALIZED and ended.ended_at == clock()
        assert (ended.completed, ended.failed, ended.request_total) == (3, 3, 6)
        [delivery] = await store.deliveries("b1")
        assert delivery.url == "http://127.0.0.1:9/done"
        assert delivery.payload["requestCompleted"] == 3 and delivery.payload["status"] == \
            "FINALIZED" and delivery.payload["requestFailed"] == 3
        page, total = await store.batch_requests("b1", 0, 10)
        assert total == 6 and {r.status for r in page} == {"COMPLETED", "FAILED", "TIMED_OUT"}
        assert next(r for r in page if r.status == "COMPLETED").output == {"ok": 0}
        assert next(r for r in page if r.status == "FAILED").error == "bad"
        # Kept `retention` after its end, its requests with it; then removed.
        clock.advance(RETENTION_MS + 1)
        assert await store.delete_expired_batches() == 1
        assert await store.get_batch("b1") is None
        await store.delete_expired(0)
        assert await store.get(jobs[0].id) is None

    run(main())


def test_cancel_ends_queued_requests_at_once_and_the_batch_after_running_ones(
        store: Any, clock: FakeClock) -> None:
    async def main() -> None:
        await finalized(store, clock, 5, webhook="http://127.0.0.1:9/c")
        running = await store.claim("e", "w", 10_000, 2)
        batch = await store.cancel_batch("b1", RETENTION_MS)
        assert batch.status is BatchStatus.FINALIZED and batch.cancelled_at is not None
        assert (batch.running, batch.queued, batch.failed) == (2, 0, 3)
        assert await store.claim("e", "w", 10_000, 10) == []
        assert await store.conclude_batches(RETENTION_MS) == []
        for job in running:  # running ones finish normally
            assert (await store.finish(job.id, job.lease, JobStatus.COMPLETED, 1, None)
                    ).status is JobStatus.COMPLETED
        [ended] = await store.conclude_batches(RETENTION_MS)
        assert ended.status is BatchStatus.CANCELLED and (ended.completed, ended.failed) == (2, 3)
        assert len(await store.deliveries("b1")) == 1
        again = await store.cancel_batch("b1", RETENTION_MS)  # an ended batch stays as it is
        assert again.status is BatchStatus.CANCELLED and len(await store.deliveries("b1")) == 1

    run(main())


def test_a_cancelled_draft_ends_at_once(store: Any, clock: FakeClock) -> None:
    async def main() -> None:
        await new_batch(store, clock, 3)
        batch = await store.cancel_batch("b1", RETENTION_MS)
        assert batch.status is BatchStatus.CANCELLED and batch.ended_at is not None
        with pytest.raises(BatchNotDraft):
            await store.finalize_batch("b1", 60_000, TTL_MS, RETENTION_MS)
        assert await store.conclude_batches(RETENTION_MS) == []

    run(main())


def test_requests_not_run_within_the_ttl_fail_the_batch(store: Any,
                                                           clock: FakeClock) -> None:
    async def main() -> None:
        await finalized(store, clock, 3)
        [job] = await store.claim("e", "w", 10_000, 1)
        await store.finish(job.id, job.lease, JobStatus.COMPLETED, 1, None)
        clock.advance(TTL_MS)  # the queued two are past the batch's TTL, unrun
        await store.delete_expired(0)
        [ended] = await store.conclude_batches(RETENTION_MS)
        assert ended.status is BatchStatus.FAILED
        assert (ended.completed, ended.failed, ended.request_total) == (1, 2, 3)
        page, _ = await store.batch_requests("b1", 0, 10)
        assert sorted(r.status for r in page) == ["COMPLETED", "FAILED", "FAILED"]
        assert all("TTL" in r.error for r in page if r.status == "FAILED")

    run(main())


def test_requests_purged_from_the_queue_fail_the_batch(store: Any, clock: FakeClock) -> None:
    async def main() -> None:
        await finalized(store, clock, 3)
        assert await store.purge_queue("e") == 3
        [ended] = await store.conclude_batches(RETENTION_MS)
        assert ended.status is BatchStatus.FAILED and (ended.completed, ended.failed) == (0, 3)

    run(main())


def test_an_empty_batch_finalized_ends_at_the_next_sweep(store: Any, clock: FakeClock) -> None:
    async def main() -> None:
        batch = await finalized(store, clock, 0)
        assert batch.request_total == 0
        [ended] = await store.conclude_batches(RETENTION_MS)
        assert ended.status is BatchStatus.FINALIZED and ended.failed == 0

    run(main())


def test_listing_is_newest_first_and_scoped_and_attributes_update(store: Any,
                                                                 clock: FakeClock) -> None:
    async def main() -> None:
        await new_batch(store, clock, 1, batch_id="old", owner="alice")
        clock.advance(10)
        await new_batch(store, clock, 2, batch_id="new", owner="bob")
        assert [b.id for b in await store.list_batches("e", None, 10)] == ["new", "old"]
        assert [b.id for b in await store.list_batches("e", "alice", 10)] == ["old"]
        assert [b.id for b in await store.list_batches("e", None, 1)] == ["new"]
        assert await store.list_batches("other", None, 10) == []
        batch = await store.update_batch("old", {"name": "nightly", "webhook": "http://x/y"})
        assert (batch.name, batch.webhook) == ("nightly", "http://x/y")
        batch = await store.update_batch("old", {"webhook": None})
        assert (batch.name, batch.webhook) == ("nightly", None)

    run(main())


def test_interactive_jobs_are_claimed_before_batch_requests(store: Any,
                                                             clock: FakeClock) -> None:
    async def main() -> None:
        await finalized(store, clock, 3)
        clock.advance(10)
        await store.create(NewJob("late", "e", {}, 60_000, 60_000, 60_000), 100)
        first, *rest = await store.claim("e", "w", 10_000, 4, batch_limit=1)
        assert first.id == "late" and len(rest) == 1 and rest[0].batch_id == "b1"

    run(main())


def test_batches_and_their_requests_outlive_the_store(shared_store_url: str,
                                                      clock: FakeClock) -> None:
    async def write() -> None:
        store = open_store(shared_store_url, clock)
        await finalized(store, clock, 3)
        await new_batch(store, clock, 2, batch_id="draft")
        await store.close()

    async def read() -> None:
        store = open_store(shared_store_url, clock)
        batch = await store.get_batch("b1")
        assert (batch.status, batch.request_total, batch.queued) == (BatchStatus.FINALIZED, 3, 3)
        assert (await store.get_batch("draft")).request_total == 2
        # The draft keeps counting its request ids on from where it was.
        batch = await store.add_batch_requests("draft", [{}], 5_000)
        page, _ = await store.batch_requests("draft", 0, 10)
        assert [r.id for r in page] == ["draft-000001", "draft-000002", "draft-000003"]
        await store.close()

    run(write())
    run(read())


def test_replicas_sweeping_at_once_end_a_batch_once(shared_store_url: str,
                                                     clock: FakeClock) -> None:
    async def main() -> None:
        a, b = open_store(shared_store_url, clock), open_store(shared_store_url, clock)
        await finalized(a, clock, 20, webhook="http://127.0.0.1:9/once")
        for job in await b.claim("e", "w", 10_000, 20):
            await b.finish(job.id, job.lease, JobStatus.COMPLETED, 1, None)
        counted_a, counted_b = await a.get_batch("b1"), await b.get_batch("b1")
        assert counted_a.completed == counted_b.completed == 20  # the same, from either
        ended = await asyncio.gather(*(s.conclude_batches(RETENTION_MS)
                                       for s in (a, b, a, b)))
        assert sum(len(e) for e in ended) == 1
        assert len(await b.deliveries("b1")) == 1
        await a.close()
        await b.close()

    run(main())
