"""The store's side of external workers (registry, ping leases, stop signals, timeouts)
and batch-request claim order, identical for the in-memory, SQLite and PostgreSQL
stores."""

from __future__ import annotations

import pytest

from serve_app.jobs.errors import QueueFull
from serve_app.jobs.model import Claim, JobStatus
from serve_app.jobs.store import JobStore
from tests.jobs.conftest import FakeClock
from tests.jobs.test_store import new, run


def test_batch_requests_queue_last_and_within_their_limit(store: JobStore,
                                                          clock: FakeClock) -> None:
    for job_id, kw in (("b1", {"batch_id": "B", "low_priority": True}),
                       ("b2", {"batch_id": "B", "low_priority": True}),
                       ("low", {"low_priority": True}), ("n", {})):
        run(store.create(new(job_id, clock, **kw), 10))
        clock.advance(2)
    assert [j.id for j in run(store.claim("e", "w", 5_000, 4, 1))] == ["n", "low", "b1"]
    assert run(store.claim("e", "w", 5_000, 4, 0)) == []
    (b2,) = run(store.claim("e", "w", 5_000, 4))
    assert b2.id == "b2" and b2.batch_id == "B"
    workload = run(store.workload(["e"]))
    assert workload.queued == 0 and workload.running == 4


def test_pings_extend_the_leases_of_the_jobs_named(store: JobStore, clock: FakeClock) -> None:
    for job_id in ("a", "b"):
        run(store.create(new(job_id, clock), 10))
    run(store.worker_seen("e", "w1", took=True))
    run(store.claim("e", "w1", 3_000, 2))
    clock.advance(2_000)
    run(store.worker_seen("e", "w1", reported=["a"], version="1.12.0", lease_ms=3_000))
    clock.advance(2_000)  # b's lease ran out, a's was extended
    requeued = run(store.requeue_expired_leases(3))
    assert [j.id for j in requeued] == ["b"]
    assert run(store.get("a")).status is JobStatus.IN_PROGRESS
    # Another worker's ping extends nothing of w1's.
    clock.advance(2_000)
    run(store.worker_seen("e", "w2", reported=["a"], lease_ms=60_000))
    clock.advance(1_500)
    assert [j.id for j in run(store.requeue_expired_leases(3))] == ["a"]


def test_workers_registry(store: JobStore, clock: FakeClock) -> None:
    run(store.worker_seen("e", "w1", reported=[], version="1.12.0"))
    clock.advance(10)
    run(store.worker_seen("e", "w2", took=True))
    run(store.create(new("a", clock), 10))
    run(store.claim("e", "w2", 3_000, 1))
    w1, w2 = run(store.workers("e", 0))
    assert (w1.id, w1.last_take, w1.version, w1.running) == ("w1", None, "1.12.0", 0)
    assert (w2.id, w2.last_take is not None, w2.running) == ("w2", True, 1)
    assert w2.first_seen == w2.last_seen and w1.first_seen < w2.first_seen
    assert [w.id for w in run(store.workers("e", clock() - 5))] == ["w2"]
    assert run(store.workers("other", 0)) == []


def test_stop_signals_are_sent_once(store: JobStore, clock: FakeClock) -> None:
    for job_id in ("cancelled", "lost", "kept", "done"):
        run(store.create(new(job_id, clock), 10))
    run(store.worker_seen("e", "w1", took=True))
    jobs = {j.id: j for j in run(store.claim("e", "w1", 3_000, 4))}
    run(store.finish("done", jobs["done"].lease, JobStatus.COMPLETED, 1, None))
    run(store.worker_seen("e", "w1", reported=["lost", "kept", "done"], lease_ms=3_000))
    run(store.cancel("cancelled"))
    run(store.release("lost", jobs["lost"].lease, "gone", 3))  # queued again
    assert sorted(run(store.worker_stops("e", "w1"))) == ["cancelled", "lost"]
    assert run(store.worker_stops("e", "w1")) == []
    assert run(store.worker_stops("e", "unknown")) == []


def test_running_jobs_time_out(store: JobStore, clock: FakeClock) -> None:
    run(store.create(new("slow", clock, execution_timeout_ms=5_000), 10))
    run(store.create(new("other", clock, endpoint="f", execution_timeout_ms=5_000), 10))
    run(store.claim("e", "w1", 60_000, 1))
    run(store.claim("f", "w1", 60_000, 1))
    assert run(store.time_out_running(["e"])) == []
    clock.advance(5_000)
    (late,) = run(store.time_out_running(["e"]))
    assert late.id == "slow" and late.status is JobStatus.TIMED_OUT
    assert late.error == "execution exceeded policy.executionTimeout of 5000 ms"
    assert run(store.get("other")).status is JobStatus.IN_PROGRESS  # not an endpoint named
    assert run(store.worker_stops("e", "w1")) == []  # no worker row: nothing to stop
    run(store.worker_seen("e", "w1"))
    assert run(store.worker_stops("e", "w1")) == ["slow"]


def test_queued_batch_requests_neither_fill_the_queue_nor_hold_back_a_claim(
        store: JobStore, clock: FakeClock) -> None:
    for i in range(3):
        run(store.create(new(f"b{i}", clock, batch_id="B", low_priority=True), 10))
    job = run(store.create(new("now", clock), 2, Claim("w", 5_000)))
    assert job.status is JobStatus.IN_PROGRESS  # claimed in the insert, batch or not
    low = run(store.create(new("low", clock, low_priority=True), 2, Claim("w", 5_000)))
    assert low.status is JobStatus.IN_PROGRESS
    run(store.create(new("q1", clock), 2))
    queued = run(store.create(new("q2", clock), 2, Claim("w", 5_000)))
    assert queued.status is JobStatus.IN_QUEUE  # q1 waits ahead of it
    with pytest.raises(QueueFull):
        run(store.create(new("q3", clock), 2))
