"""The JobStore contract, identical for the in-memory, SQLite and PostgreSQL stores."""

from __future__ import annotations

import asyncio

import pytest

from serve_app.jobs.errors import NotRetryable, QueueFull
from serve_app.jobs.model import Attempt, Claim, DeliveryState, Job, JobQuery, JobStatus, NewJob
from serve_app.jobs.store import JobStore
from serve_app.jobs.stores import open_store
from tests.jobs.conftest import FakeClock


def new(job_id: str, clock: FakeClock, endpoint: str = "e", **kw) -> NewJob:
    defaults = dict(execution_timeout_ms=60_000, ttl_ms=60_000, retention_ms=60_000)
    return NewJob(id=job_id, endpoint=endpoint, input={"n": job_id}, created_at=clock(),
                  **(defaults | kw))


def run(coro):
    return asyncio.run(coro)


#: the endpoint's dead letters
failed = JobQuery(endpoint="e", statuses=(JobStatus.FAILED,))


def claim_one(store: JobStore, job_id: str, lease_ms: int = 5_000, endpoint: str = "e"):
    """Claim the endpoint's next job, which the test expects to be `job_id`."""
    (job,) = run(store.claim(endpoint, "w", lease_ms, 1))
    assert job.id == job_id
    return job


def test_create_claim_finish_round_trip(store: JobStore, clock: FakeClock) -> None:
    job = run(store.create(new("a", clock, webhook="http://x/y", s3_config={"k": 1}), 10))
    assert job.status is JobStatus.IN_QUEUE
    assert job.input is None and run(store.get("a")).input is None  # status reads skip it
    (claimed,) = run(store.claim("e", "w1", 5_000, 4))
    assert claimed.status is JobStatus.IN_PROGRESS and claimed.worker_id == "w1"
    assert claimed.input == {"n": "a"} and claimed.lease and claimed.s3_config == {"k": 1}
    assert claimed.started_at >= claimed.created_at
    done = run(store.finish("a", claimed.lease, JobStatus.COMPLETED, {"ok": True}, None))
    assert done.status is JobStatus.COMPLETED and done.output == {"ok": True}
    assert done.webhook == "http://x/y"
    assert run(store.get("a")).status_object()["output"] == {"ok": True}
    # the caller's s3Config (credentials) is gone once the job ended
    assert done.s3_config is None and run(store.get("a")).s3_config is None


def test_claim_orders_normal_before_low_priority_then_oldest(store: JobStore,
                                                             clock: FakeClock) -> None:
    for job_id, low in (("low", True), ("n1", False), ("n2", False)):
        run(store.create(new(job_id, clock, low_priority=low), 10))
        clock.advance(2)
    assert [j.id for j in run(store.claim("e", "w", 5_000, 2))] == ["n1", "n2"]
    assert [j.id for j in run(store.claim("e", "w", 5_000, 2))] == ["low"]
    assert run(store.claim("e", "w", 5_000, 2)) == []


def test_claims_never_hand_one_job_to_two_workers(shared_store_url: str) -> None:
    stores = [open_store(shared_store_url) for _ in range(3)]
    clock = FakeClock()

    async def main() -> list[str]:
        for i in range(30):
            await stores[0].create(new(f"j{i}", clock), 100)
        batches = await asyncio.gather(*(s.claim("e", f"w{k}", 5_000, 4)
                                         for _ in range(4) for k, s in enumerate(stores)))
        return [j.id for batch in batches for j in batch]

    ids = run(main())
    assert len(ids) == len(set(ids)) == 30
    for s in stores:
        run(s.close())


def test_queue_limit(store: JobStore, clock: FakeClock) -> None:
    run(store.create(new("a", clock), 2))
    run(store.create(new("b", clock), 2))
    with pytest.raises(QueueFull):
        run(store.create(new("c", clock), 2))
    run(store.create(new("other", clock, endpoint="f"), 2))  # per endpoint


def test_only_the_lease_holder_writes(store: JobStore, clock: FakeClock) -> None:
    run(store.create(new("a", clock), 10))
    lease = claim_one(store, "a").lease
    stolen = "w/not-the-lease"
    assert run(store.renew("a", stolen, 5_000)) is None
    assert run(store.finish("a", stolen, JobStatus.COMPLETED, 1, None)) is None
    assert run(store.set_progress("a", stolen, "stolen")) is False
    assert run(store.append_stream("a", stolen, ["stolen"])) is False
    assert run(store.release("a", stolen, "lost", 3)) is None
    assert run(store.get("a")).output is None
    assert run(store.set_progress("a", lease, {"p": 1})) is True
    assert run(store.renew("a", lease, 5_000)).output == {"p": 1}


def test_a_new_run_of_the_same_worker_gets_a_new_lease(store: JobStore,
                                                       clock: FakeClock) -> None:
    """A worker whose lease expired cannot write into the next run, even when that next
    run is its own."""
    run(store.create(new("a", clock), 10))
    first = claim_one(store, "a", lease_ms=10).lease
    clock.advance(20)
    run(store.requeue_expired_leases(3))
    second = claim_one(store, "a").lease
    assert first != second
    assert run(store.append_stream("a", first, ["old"])) is False
    assert run(store.finish("a", first, JobStatus.COMPLETED, "old", None)) is None
    assert run(store.finish("a", second, JobStatus.COMPLETED, "new", None)).output == "new"


def test_expired_leases_requeue_then_dead_letter(store: JobStore, clock: FakeClock) -> None:
    run(store.create(new("a", clock), 10))
    for expected in (1, 2):
        lease = claim_one(store, "a", lease_ms=1).lease
        clock.advance(10)
        (requeued,) = run(store.requeue_expired_leases(3))
        assert requeued.status is JobStatus.IN_QUEUE and requeued.input is None
        job = run(store.get("a"))
        assert job.status is JobStatus.IN_QUEUE and job.attempts == expected
        assert job.retries == expected
    claim_one(store, "a", lease_ms=1)
    clock.advance(10)
    (dead,) = run(store.requeue_expired_leases(3))
    assert dead.status is JobStatus.FAILED and "worker lost 3 time(s)" in dead.error
    assert dead.input is None
    assert "lease expired" in dead.error
    assert [j.id for j in run(store.list_jobs(failed))] == ["a"]
    # A run that lost its lease can no longer finish the job.
    assert run(store.finish("a", lease, JobStatus.COMPLETED, 1, None)) is None


def test_release_requeues_lost_runs_counting_attempts_and_hand_backs_not(
        store: JobStore, clock: FakeClock) -> None:
    run(store.create(new("a", clock), 10))
    handed = run(store.release("a", claim_one(store, "a").lease, None, 2))
    assert handed.status is JobStatus.IN_QUEUE and handed.attempts == 0
    lost = run(store.release("a", claim_one(store, "a").lease, "ActorDiedError: boom", 2))
    assert lost.status is JobStatus.IN_QUEUE and lost.attempts == 1
    dead = run(store.release("a", claim_one(store, "a").lease, "ActorDiedError: again", 2))
    assert dead.status is JobStatus.FAILED and dead.attempts == 2
    assert "worker lost 2 time(s)" in dead.error and "ActorDiedError: again" in dead.error
    assert [j.id for j in run(store.list_jobs(failed))] == ["a"]


def test_user_retries_are_counted_apart_from_lost_runs(store: JobStore,
                                                       clock: FakeClock) -> None:
    """Finding: after two user retries, one lost worker dead-lettered the job."""
    run(store.create(new("a", clock), 10))
    for _ in range(2):
        run(store.finish("a", claim_one(store, "a").lease, JobStatus.FAILED, None, "bad"))
        assert run(store.retry("a")).status is JobStatus.IN_QUEUE
    claim_one(store, "a", lease_ms=1)
    clock.advance(10)
    assert [j.status for j in run(store.requeue_expired_leases(3))] == [JobStatus.IN_QUEUE]
    job = run(store.get("a"))
    assert job.status is JobStatus.IN_QUEUE
    assert (job.user_retries, job.attempts, job.retries) == (2, 1, 3)


def test_stream_chunks_are_returned_once_in_order(store: JobStore, clock: FakeClock) -> None:
    run(store.create(new("a", clock), 10))
    lease = claim_one(store, "a").lease
    assert run(store.append_stream("a", lease, [1, 2]))
    assert run(store.append_stream("a", lease, [{"three": 3}]))
    job, chunks = run(store.drain_stream("a"))
    assert chunks == [1, 2, {"three": 3}] and job.status is JobStatus.IN_PROGRESS
    assert run(store.drain_stream("a"))[1] == []
    assert run(store.drain_stream("missing")) is None


def test_chunks_of_an_abandoned_run_are_not_served(store: JobStore, clock: FakeClock) -> None:
    """Finding: after a lease expired and the job was requeued, the abandoned run's
    chunks were served to the client."""
    run(store.create(new("a", clock), 10))
    expired = claim_one(store, "a", lease_ms=1).lease
    run(store.append_stream("a", expired, ["from the lost run"]))
    clock.advance(10)
    run(store.requeue_expired_leases(3))
    assert run(store.drain_stream("a"))[1] == []
    run(store.create(new("b", clock, endpoint="f"), 10))
    released = claim_one(store, "b", endpoint="f").lease
    run(store.append_stream("b", released, ["from the lost run"]))
    run(store.release("b", released, "ActorDiedError", 3))
    assert run(store.drain_stream("b"))[1] == []
    claim_one(store, "a")
    claim_one(store, "b", endpoint="f")
    for job_id in ("a", "b"):
        run(store.append_stream(job_id, _lease_of(store, job_id), ["fresh"]))
        assert run(store.drain_stream(job_id))[1] == ["fresh"]


def test_cancel_retry_purge(store: JobStore, clock: FakeClock) -> None:
    for job_id in ("q1", "q2", "r"):
        run(store.create(new(job_id, clock), 10))
        clock.advance(1)
    assert run(store.cancel("q1")).status is JobStatus.CANCELLED
    assert run(store.cancel("q1")).status is JobStatus.CANCELLED  # idempotent
    assert run(store.cancel("missing")) is None
    with pytest.raises(NotRetryable):
        run(store.retry("q1"))
    lease = claim_one(store, "q2").lease
    run(store.finish("q2", lease, JobStatus.FAILED, None, "bad"))
    again = run(store.retry("q2"))
    assert again.status is JobStatus.IN_QUEUE and again.error is None
    assert again.user_retries == 1 and again.attempts == 0
    assert run(store.purge_queue("e")) == 2  # q2 and r; the cancelled one stays
    assert run(store.get("q1")).status is JobStatus.CANCELLED


def test_ttl_and_retention_expire_jobs(store: JobStore, clock: FakeClock) -> None:
    run(store.create(new("ttl", clock, ttl_ms=50), 10))
    run(store.create(new("kept", clock, retention_ms=50), 10))
    run(store.claim("e", "w", 5_000, 2))
    kept = run(store.get("kept"))
    run(store.finish("kept", run(store.renew("kept", _lease_of(store, "kept"), 5_000)).lease,
                     JobStatus.COMPLETED, 1, None))
    assert kept is not None
    clock.advance(100)
    assert run(store.get("ttl")) is None and run(store.get("kept")) is None
    assert run(store.delete_expired(60_000)) == 2
    run(store.create(new("short", clock), 10))
    run(store.shorten_ttl("short", 0))
    assert run(store.get("short")) is None


def _lease_of(store: JobStore, job_id: str) -> str:
    """The lease a claimed job holds, as the store reports it."""
    return run(store.get(job_id)).lease


def test_counts(store: JobStore, clock: FakeClock) -> None:
    for i in range(3):
        run(store.create(new(f"j{i}", clock), 10))
    run(store.claim("e", "w", 5_000, 1))
    counts = run(store.counts("e"))
    assert counts["IN_QUEUE"] == 2 and counts["IN_PROGRESS"] == 1 and counts["retried"] == 0


def test_jobs_and_deliveries_survive_reopening_the_store(shared_store_url: str) -> None:
    clock = FakeClock()
    first = open_store(shared_store_url, clock)
    run(first.create(new("durable", clock), 10))
    run(first.create(new("hooked", clock, webhook="http://127.0.0.1:9/h"), 10))
    run(first.cancel("hooked"))
    run(first.close())
    second = open_store(shared_store_url, clock)
    assert run(second.get("durable")).status is JobStatus.IN_QUEUE
    (delivery,) = run(second.claim_deliveries(10, 1_000))
    assert delivery.job_id == "hooked" and delivery.payload["status"] == "CANCELLED"
    run(second.close())


# -- one way for a job to end ---------------------------------------------------------------
def _deliveries(store: JobStore, job_id: str) -> list:
    return run(store.deliveries(job_id))


def test_every_end_records_exactly_one_delivery(store: JobStore, clock: FakeClock) -> None:
    """Finding: five cancels of one job sent five webhooks."""
    hook = "http://127.0.0.1:9/hook"
    for job_id in ("done", "cancelled", "lost", "plain"):
        run(store.create(new(job_id, clock, webhook=None if job_id == "plain" else hook), 10))
    run(store.finish("done", claim_one(store, "done").lease, JobStatus.COMPLETED, 7, None))
    for _ in range(5):
        run(store.cancel("cancelled"))
        run(store.cancel("done"))  # a finished job stays as it is
    claim_one(store, "lost", lease_ms=1)
    clock.advance(10)
    run(store.requeue_expired_leases(1))
    run(store.cancel("plain"))
    statuses = {}
    for job_id in ("done", "cancelled", "lost"):
        (delivery,) = _deliveries(store, job_id)
        assert delivery.url == hook and delivery.state is DeliveryState.PENDING
        assert delivery.payload["input"] == {"n": job_id} and delivery.payload["webhook"] == hook
        statuses[job_id] = delivery.payload["status"]
    assert statuses == {"done": "COMPLETED", "cancelled": "CANCELLED", "lost": "FAILED"}
    assert _deliveries(store, "plain") == []
    assert run(store.get("done")).status is JobStatus.COMPLETED


def test_cancel_and_finish_race_to_one_end(store: JobStore, clock: FakeClock) -> None:
    run(store.create(new("a", clock, webhook="http://127.0.0.1:9/h"), 10))
    lease = claim_one(store, "a").lease

    async def race() -> list:
        return await asyncio.gather(
            store.finish("a", lease, JobStatus.COMPLETED, 1, None), store.cancel("a"),
            store.cancel("a"), store.finish("a", lease, JobStatus.COMPLETED, 2, None))

    results = run(race())
    final = run(store.get("a")).status
    assert final in (JobStatus.COMPLETED, JobStatus.CANCELLED)
    (delivery,) = _deliveries(store, "a")
    assert delivery.payload["status"] == final.value
    assert sum(r is not None and r.status is JobStatus.COMPLETED for r in results[::3]) \
        == (final is JobStatus.COMPLETED)


def test_a_finish_after_the_lease_was_lost_changes_nothing(store: JobStore,
                                                           clock: FakeClock) -> None:
    run(store.create(new("a", clock, webhook="http://127.0.0.1:9/h"), 10))
    lease = claim_one(store, "a", lease_ms=1).lease
    clock.advance(10)
    run(store.requeue_expired_leases(3))
    assert run(store.finish("a", lease, JobStatus.COMPLETED, "late", None)) is None
    assert run(store.get("a")).status is JobStatus.IN_QUEUE
    assert _deliveries(store, "a") == []


def test_ends_are_heard_by_this_replica(store: JobStore, clock: FakeClock) -> None:
    async def main() -> list[tuple[str, Job | None]]:
        heard: list[tuple[str, Job | None]] = []
        store.watch_ended(lambda job_id, job: heard.append((job_id, job)))
        for job_id in ("done", "cancelled", "lost"):
            await store.create(new(job_id, clock), 10)
        (done,) = await store.claim("e", "w", 5_000, 1)
        await store.finish("done", done.lease, JobStatus.COMPLETED, 1, None)
        await store.cancel("cancelled")
        await store.cancel("cancelled")
        await store.claim("e", "w", 1, 1)
        clock.advance(10)
        await store.requeue_expired_leases(max_attempts=1)
        return heard

    heard = run(main())
    # A store that also announces through the database may tell a listener twice.
    assert list(dict.fromkeys(job_id for job_id, _ in heard)) == ["done", "cancelled", "lost"]
    # An end made here comes with the job as it ended (a waiter need not read it again).
    here = {job_id: job for job_id, job in heard if job is not None}
    assert {k: (j.status, j.output, j.input) for k, j in here.items()} == {
        "done": (JobStatus.COMPLETED, 1, None), "cancelled": (JobStatus.CANCELLED, None, None),
        "lost": (JobStatus.FAILED, None, None)}


def test_a_new_job_is_claimed_as_it_is_stored_only_with_none_queued_ahead(
        store: JobStore, clock: FakeClock) -> None:
    claim = Claim("w1", 5_000)
    first = run(store.create(new("first", clock), 10, claim))
    assert first.status is JobStatus.IN_PROGRESS and first.worker_id == "w1"
    assert first.lease and first.lease.startswith("w1/") and first.started_at == clock()
    assert first.lease_expires_at == clock() + 5_000 and first.input is None
    # its lease is a lease like a claim's: renewable, and the job finishes under it
    assert run(store.renew("first", first.lease, 5_000)) is not None
    run(store.create(new("queued", clock), 10))  # no claim: queued
    behind = run(store.create(new("behind", clock), 10, claim))
    assert behind.status is JobStatus.IN_QUEUE and behind.lease is None  # FIFO kept
    (claimed,) = run(store.claim("e", "w2", 5_000, 1))
    assert claimed.id == "queued"  # the older queued job goes first
    assert run(store.finish("first", first.lease, JobStatus.COMPLETED, "ok", None)).output == "ok"
    # the queue-full check counts as before
    with pytest.raises(QueueFull):
        run(store.create(new("over", clock), 1, claim))


def test_other_replicas_hear_of_job_ends(shared_store_url: str) -> None:
    """PostgreSQL announces finished, cancelled and dead-lettered jobs to other replicas'
    waiters; SQLite cannot, and its waiters poll (nothing is announced)."""
    clock = FakeClock()
    worker, other = open_store(shared_store_url, clock), open_store(shared_store_url, clock)
    announcing = shared_store_url.startswith("postgres")

    async def main() -> list[str]:
        heard: asyncio.Queue[str] = asyncio.Queue()

        def on_ended(job_id: str, job: Job | None) -> None:
            assert job is None  # another replica's end: the id only
            heard.put_nowait(job_id)

        other.watch_ended(on_ended)
        await asyncio.sleep(0.5)  # the listener is connected
        for job_id in ("done", "cancelled", "lost"):
            await worker.create(new(job_id, clock), 10)
        (done,) = await worker.claim("e", "w1", 5_000, 1)
        await worker.finish("done", done.lease, JobStatus.COMPLETED, 1, None)
        await worker.cancel("cancelled")
        await worker.claim("e", "w1", 1, 1)
        clock.advance(10)
        await worker.requeue_expired_leases(max_attempts=1)
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


# -- the webhook outbox -----------------------------------------------------------------------
def test_deliveries_are_claimed_once_and_keep_their_attempts(store: JobStore,
                                                             clock: FakeClock) -> None:
    run(store.create(new("a", clock, webhook="http://127.0.0.1:9/h"), 10))
    run(store.cancel("a"))
    (d,) = run(store.claim_deliveries(10, 1_000))
    assert run(store.claim_deliveries(10, 1_000)) == []  # claimed: not due meanwhile
    run(store.record_attempt(d.id, Attempt(clock(), 500, "HTTP 500", 3), False, clock() + 50))
    assert run(store.claim_deliveries(10, 1_000)) == []
    clock.advance(60)
    (again,) = run(store.claim_deliveries(10, 1_000))
    assert again.id == d.id and again.attempts[0].status_code == 500
    run(store.record_attempt(d.id, Attempt(clock(), 204, None, 2), True, None))
    (final,) = _deliveries(store, "a")
    assert final.state is DeliveryState.DELIVERED
    assert [a.status_code for a in final.attempts] == [500, 204]
    clock.advance(2_000)
    assert run(store.claim_deliveries(10, 1_000)) == []


def test_a_claimed_delivery_comes_due_again_if_its_deliverer_dies(store: JobStore,
                                                                  clock: FakeClock) -> None:
    run(store.create(new("a", clock, webhook="http://127.0.0.1:9/h"), 10))
    run(store.cancel("a"))
    (d,) = run(store.claim_deliveries(10, 1_000))
    clock.advance(1_001)
    assert [x.id for x in run(store.claim_deliveries(10, 1_000))] == [d.id]


def test_given_up_deliveries_are_kept_then_removed_with_their_job(store: JobStore,
                                                                  clock: FakeClock) -> None:
    run(store.create(new("a", clock, webhook="http://127.0.0.1:9/h", retention_ms=100), 10))
    run(store.cancel("a"))
    (d,) = run(store.claim_deliveries(10, 1_000))
    run(store.record_attempt(d.id, Attempt(clock(), None, "refused", 1), False, None))
    assert _deliveries(store, "a")[0].state is DeliveryState.FAILED
    clock.advance(200)
    run(store.delete_expired(1_000))
    assert len(_deliveries(store, "a")) == 1  # kept for its own retention
    clock.advance(1_000)
    run(store.delete_expired(1_000))
    assert _deliveries(store, "a") == []


def test_workload_counts_waiting_and_running_jobs_apart_from_low_priority(
        store: JobStore, clock: FakeClock) -> None:
    for i in range(5):
        run(store.create(new(f"n{i}", clock), 10))
        clock.advance(1)
    for i in range(3):
        run(store.create(new(f"low{i}", clock, low_priority=True), 10))
    run(store.create(new("elsewhere", clock, endpoint="f"), 10))
    run(store.claim("e", "w", 5_000, 2))
    run(store.cancel("n4"))
    w = run(store.workload(["e"]))
    assert (w.queued, w.queued_low_priority, w.running) == (2, 3, 2)
    assert run(store.workload(["e", "f"])).queued == 3
    assert run(store.workload([])).queued == 0


def test_owner_scopes_counts_listings_and_purges(store: JobStore, clock: FakeClock) -> None:
    for job_id, owner in (("a1", "alice"), ("a2", "alice"), ("b1", "bob"), ("open", None)):
        run(store.create(new(job_id, clock, owner=owner), 10))
    assert run(store.get("a1")).owner == "alice"
    assert run(store.counts("e", "alice"))["IN_QUEUE"] == 2
    assert run(store.counts("e", "bob"))["IN_QUEUE"] == 1
    assert run(store.counts("e"))["IN_QUEUE"] == 4
    bobs = JobQuery(endpoint="e", statuses=(JobStatus.IN_QUEUE,), owner="bob")
    assert [j.id for j in run(store.list_jobs(bobs))] == ["b1"]
    assert run(store.purge_queue("e", "alice")) == 2
    assert run(store.get("a1")) is None and run(store.get("b1")) is not None
    assert run(store.purge_queue("e")) == 2


@pytest.mark.parametrize("ending", ["cancel", "fail", "lease-lost"])
def test_s3_credentials_are_dropped_however_a_job_ends(store: JobStore, clock: FakeClock,
                                                       ending: str) -> None:
    run(store.create(new("s", clock, s3_config={"accessSecret": "hunter2"}), 10))
    claimed = claim_one(store, "s", lease_ms=1_000)
    if ending == "cancel":
        run(store.cancel("s"))
    elif ending == "fail":
        run(store.finish("s", claimed.lease, JobStatus.FAILED, None, "boom"))
    else:
        clock.advance(2_000)
        run(store.requeue_expired_leases(max_attempts=1))
    ended = run(store.get("s"))
    assert ended.status.terminal and ended.s3_config is None


def test_listing_filters_and_pages_newest_first_by_keyset(store: JobStore,
                                                           clock: FakeClock) -> None:
    # five jobs created in the same ms (ties broken by id), then two later, one elsewhere
    for job_id in ("a", "b", "c", "d", "e"):
        run(store.create(new(job_id, clock), 100))
    start = clock()
    clock.advance(5)
    for job_id in ("f", "g"):
        run(store.create(new(job_id, clock), 100))
    run(store.create(new("x", clock, endpoint="other"), 100))
    run(store.cancel("f"))

    pages, after = [], None
    while True:
        page = run(store.list_jobs(JobQuery(endpoint="e", limit=3, after=after)))
        if not page:
            break
        pages.append([j.id for j in page])
        after = (page[-1].created_at, page[-1].id)
    assert pages == [["g", "f", "e"], ["d", "c", "b"], ["a"]]
    assert all(j.input is None for j in run(store.list_jobs(JobQuery())))
    assert [j.id for j in run(store.list_jobs(JobQuery(limit=2)))] == ["x", "g"]
    queued_later = JobQuery(endpoint="e", statuses=(JobStatus.IN_QUEUE,),
                            created_from=start + 1)
    assert [j.id for j in run(store.list_jobs(queued_later))] == ["g"]
    assert [j.id for j in run(store.list_jobs(JobQuery(created_to=start + 1)))] == [
        "e", "d", "c", "b", "a"]
    cancelled = JobQuery(endpoint="e", statuses=(JobStatus.CANCELLED, JobStatus.FAILED))
    assert [j.id for j in run(store.list_jobs(cancelled))] == ["f"]
