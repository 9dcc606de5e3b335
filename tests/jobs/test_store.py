"""The JobStore contract, identical for SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time

import pytest

from serve_app.jobs.model import JobStatus, NewJob
from serve_app.jobs.store import JobStore, NotRetryable, QueueFull, open_store


def new(job_id: str, endpoint: str = "e", **kw) -> NewJob:
    defaults = dict(execution_timeout_ms=60_000, ttl_ms=60_000, retention_ms=60_000)
    return NewJob(id=job_id, endpoint=endpoint, input={"n": job_id}, **(defaults | kw))


def run(coro):
    return asyncio.run(coro)


def test_create_claim_finish_round_trip(store: JobStore) -> None:
    job = run(store.create(new("a", webhook="http://x/y", s3_config={"k": 1}), 10))
    assert job.status is JobStatus.IN_QUEUE
    assert job.input is None and run(store.get("a")).input is None  # status reads skip it
    (claimed,) = run(store.claim("e", "w1", 5_000, 4))
    assert claimed.status is JobStatus.IN_PROGRESS and claimed.worker_id == "w1"
    assert claimed.input == {"n": "a"}
    assert claimed.started_at >= claimed.created_at
    done = run(store.finish("a", "w1", JobStatus.COMPLETED, {"ok": True}, None))
    assert done.status is JobStatus.COMPLETED and done.output == {"ok": True}
    assert done.input == {"n": "a"}  # for the webhook
    assert done.webhook == "http://x/y" and done.s3_config == {"k": 1}
    assert run(store.get("a")).status_object()["output"] == {"ok": True}


def test_claim_orders_normal_before_low_priority_then_oldest(store: JobStore) -> None:
    run(store.create(new("low", low_priority=True), 10))
    time.sleep(0.002)
    run(store.create(new("n1"), 10))
    time.sleep(0.002)
    run(store.create(new("n2"), 10))
    assert [j.id for j in run(store.claim("e", "w", 5_000, 2))] == ["n1", "n2"]
    assert [j.id for j in run(store.claim("e", "w", 5_000, 2))] == ["low"]
    assert run(store.claim("e", "w", 5_000, 2)) == []


def test_claims_never_hand_one_job_to_two_workers(store_url: str) -> None:
    stores = [open_store(store_url) for _ in range(3)]

    async def main() -> list[str]:
        for i in range(30):
            await stores[0].create(new(f"j{i}"), 100)
        batches = await asyncio.gather(*(s.claim("e", f"w{k}", 5_000, 4)
                                         for _ in range(4) for k, s in enumerate(stores)))
        return [j.id for batch in batches for j in batch]

    ids = run(main())
    assert len(ids) == len(set(ids)) == 30
    for s in stores:
        run(s.close())


def test_queue_limit(store: JobStore) -> None:
    run(store.create(new("a"), 2))
    run(store.create(new("b"), 2))
    with pytest.raises(QueueFull):
        run(store.create(new("c"), 2))
    run(store.create(new("other", endpoint="f"), 2))  # per endpoint


def test_only_the_lease_holder_writes(store: JobStore) -> None:
    run(store.create(new("a"), 10))
    run(store.claim("e", "w1", 5_000, 1))
    assert run(store.renew("a", "w2", 5_000)) is None
    assert run(store.finish("a", "w2", JobStatus.COMPLETED, 1, None)) is None
    run(store.set_progress("a", "w2", "stolen"))
    assert run(store.get("a")).output is None
    run(store.set_progress("a", "w1", {"p": 1}))
    assert run(store.renew("a", "w1", 5_000)).output == {"p": 1}


def test_expired_leases_requeue_then_dead_letter(store: JobStore) -> None:
    run(store.create(new("a"), 10))
    for expected_retries in (1, 2):
        run(store.claim("e", "w", 1, 1))
        time.sleep(0.01)
        assert run(store.requeue_expired_leases(3)) == []
        job = run(store.get("a"))
        assert job.status is JobStatus.IN_QUEUE and job.retries == expected_retries
    run(store.claim("e", "w", 1, 1))
    time.sleep(0.01)
    (dead,) = run(store.requeue_expired_leases(3))
    assert dead.status is JobStatus.FAILED and "lease expired 3 times" in dead.error
    assert [j.id for j in run(store.list_jobs("e", JobStatus.FAILED, 10))] == ["a"]
    # A worker that lost its lease can no longer finish the job.
    assert run(store.finish("a", "w", JobStatus.COMPLETED, 1, None)) is None


def test_stream_chunks_are_returned_once_in_order(store: JobStore) -> None:
    run(store.create(new("a"), 10))
    run(store.claim("e", "w", 5_000, 1))
    run(store.append_stream("a", "w", [1, 2]))
    run(store.append_stream("a", "w", [{"three": 3}]))
    job, chunks = run(store.drain_stream("a"))
    assert chunks == [1, 2, {"three": 3}] and job.status is JobStatus.IN_PROGRESS
    assert run(store.drain_stream("a"))[1] == []
    assert run(store.drain_stream("missing")) is None


def test_cancel_retry_purge(store: JobStore) -> None:
    run(store.create(new("q1"), 10))
    run(store.create(new("q2"), 10))
    run(store.create(new("r"), 10))
    assert run(store.cancel("q1")).status is JobStatus.CANCELLED
    assert run(store.cancel("q1")).status is JobStatus.CANCELLED  # idempotent
    with pytest.raises(NotRetryable):
        run(store.retry("q1"))
    claimed = run(store.claim("e", "w", 5_000, 1))
    assert [j.id for j in claimed] == ["q2"]
    run(store.finish("q2", "w", JobStatus.FAILED, None, "bad"))
    again = run(store.retry("q2"))
    assert again.status is JobStatus.IN_QUEUE and again.error is None and again.retries == 1
    assert run(store.purge_queue("e")) == 2  # q2 and r; the cancelled one stays
    assert run(store.get("q1")).status is JobStatus.CANCELLED


def test_ttl_and_retention_expire_jobs(store: JobStore) -> None:
    run(store.create(new("ttl", ttl_ms=50), 10))
    run(store.create(new("kept", retention_ms=50), 10))
    run(store.claim("e", "w", 5_000, 2))
    run(store.finish("kept", "w", JobStatus.COMPLETED, 1, None))
    time.sleep(0.1)
    assert run(store.get("ttl")) is None and run(store.get("kept")) is None
    assert run(store.delete_expired()) == 2
    run(store.create(new("short"), 10))
    run(store.shorten_ttl("short", 0))
    assert run(store.get("short")) is None


def test_counts(store: JobStore) -> None:
    for i in range(3):
        run(store.create(new(f"j{i}"), 10))
    run(store.claim("e", "w", 5_000, 1))
    counts = run(store.counts("e"))
    assert counts["IN_QUEUE"] == 2 and counts["IN_PROGRESS"] == 1 and counts["retried"] == 0


def test_jobs_survive_reopening_the_store(store_url: str) -> None:
    first = open_store(store_url)
    run(first.create(new("durable"), 10))
    run(first.close())
    second = open_store(store_url)
    assert run(second.get("durable")).status is JobStatus.IN_QUEUE
    run(second.close())


def test_every_replica_hears_of_job_ends(store_url: str) -> None:
    """PostgreSQL announces finished, cancelled and dead-lettered jobs to other replicas'
    waiters; SQLite cannot, and its waiters poll (nothing is announced)."""
    worker, other = open_store(store_url), open_store(store_url)
    announcing = store_url.startswith("postgres")

    async def main() -> list[str]:
        heard: asyncio.Queue[str] = asyncio.Queue()
        other.watch_ended(heard.put_nowait)
        await asyncio.sleep(0.5)  # the listener is connected
        for job_id in ("done", "cancelled", "lost"):
            await worker.create(new(job_id), 10)
        await worker.claim("e", "w1", 5_000, 1)
        await worker.finish("done", "w1", JobStatus.COMPLETED, 1, None)
        await worker.cancel("cancelled")
        await worker.claim("e", "w1", 1, 1)
        await asyncio.sleep(0.01)
        await worker.requeue_expired_leases(max_retries=1)
        got: list[str] = []
        try:
            while len(got) < 3:
                got.append(await asyncio.wait_for(heard.get(), timeout=5 if announcing else 1))
        except asyncio.TimeoutError:
            pass
        await other.close()
        return got

    got = run(main())
    run(worker.close())
    assert got == (["done", "cancelled", "lost"] if announcing else [])
