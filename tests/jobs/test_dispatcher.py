"""The dispatcher and service on the in-memory store: at-least-once execution, one way
for a job to end, hand-back on stop. No Ray, no sleeps over 0.1 s."""

from __future__ import annotations

import asyncio
import re
from collections import Counter

from serve_app.jobs.memory import InMemoryJobStore
from serve_app.jobs.metrics import JobMetrics
from serve_app.jobs.model import Job, JobStatus
from serve_app.jobs.service import Submission
from tests.jobs.harness import FAST, FlakyStore, Scripted, ended, replica, submit, until


def test_a_job_runs_and_completes() -> None:
    async def main() -> None:
        endpoint = Scripted()
        r = replica(InMemoryJobStore(), endpoint)
        job = await ended(r, (await submit(r, x=1)).id)
        assert job.status is JobStatus.COMPLETED and job.output["echo"] == {"x": 1}
        assert endpoint.runs[job.id] == 1 and job.retries == 0
        await r.stop()

    asyncio.run(main())


def test_store_errors_during_renew_and_finish_keep_the_output() -> None:
    """Finding: a store error during lease renewal or finish dropped the output; the job
    stayed IN_PROGRESS until its lease ran out and then ran again."""
    async def main() -> None:
        store, endpoint = FlakyStore(), Scripted()
        # Renewals every 0.2 s: both during the work fail, then two finishes do.
        r = replica(store, endpoint, FAST.model_copy(update={"lease_s": 0.8}))
        store.failures.update({"renew": 2, "finish": 2})
        job = await ended(r, (await submit(r, sleep=0.45, x=2)).id)
        assert job.status is JobStatus.COMPLETED and job.output["echo"]["x"] == 2
        assert store.failures["renew"] == 0 and store.failures["finish"] == 0
        assert endpoint.runs[job.id] == 1 and job.attempts == 0
        await r.stop()

    asyncio.run(main())


def test_a_store_down_for_longer_than_the_lease_leaves_the_job_to_run_again() -> None:
    async def main() -> None:
        store, endpoint = FlakyStore(), Scripted()
        r = replica(store, endpoint)
        store.failures["finish"] = 10_000
        job_id = (await submit(r, x=3)).id
        await until(lambda: _runs(endpoint, job_id, 1))
        await asyncio.sleep(FAST.lease_s)  # finish retried until the lease ran out
        store.failures["finish"] = 0
        job = await ended(r, job_id)  # the sweeper requeued it; it ran again
        assert job.status is JobStatus.COMPLETED and job.attempts == 1
        assert endpoint.runs[job_id] == 2
        await r.stop()

    asyncio.run(main())


async def _runs(endpoint: Scripted, job_id: str, n: int) -> bool:
    return endpoint.runs[job_id] >= n


def test_a_lost_worker_puts_the_job_back_and_it_completes() -> None:
    """Finding: a model replica dying mid-job failed the job with Ray's error."""
    async def main() -> None:
        endpoint = Scripted()
        r = replica(InMemoryJobStore(), endpoint)
        job = await ended(r, (await submit(r, lost=2)).id)
        assert job.status is JobStatus.COMPLETED and job.output["run"] == 3
        assert job.attempts == 2 and job.retries == 2 and job.error is None
        await r.stop()

    asyncio.run(main())


def test_a_job_lost_max_attempts_times_is_dead_lettered_naming_the_cause() -> None:
    async def main() -> None:
        endpoint = Scripted()
        r = replica(InMemoryJobStore(), endpoint)
        job = await ended(r, (await submit(r, lost=99)).id)
        assert job.status is JobStatus.FAILED and endpoint.runs[job.id] == FAST.max_attempts
        assert "worker lost 3 time(s)" in job.error and "ActorDiedError: run 3 lost" in job.error
        assert [j.id for j in await r.service.dead_letters("e", None, 10)] == [job.id]
        await r.stop()

    asyncio.run(main())


def test_the_jobs_own_errors_fail_it_at_once() -> None:
    async def main() -> None:
        endpoint = Scripted()
        r = replica(InMemoryJobStore(), endpoint)
        bad_input = await ended(r, (await submit(r, fail="text must not be empty")).id)
        crashed = await ended(r, (await submit(r, crash="division by zero")).id)
        assert bad_input.status is crashed.status is JobStatus.FAILED
        assert bad_input.error == "text must not be empty"
        # a crash is logged under a reference; its text is not the caller's to read
        assert re.fullmatch(r"internal error \(reference [0-9a-f]{12}\)", crashed.error)
        assert endpoint.runs[bad_input.id] == endpoint.runs[crashed.id] == 1
        assert bad_input.attempts == crashed.attempts == 0
        await r.stop()

    asyncio.run(main())


def test_user_retries_do_not_use_up_the_lost_attempts() -> None:
    async def main() -> None:
        endpoint = Scripted()
        r = replica(InMemoryJobStore(), endpoint)
        job_id = (await submit(r, fail="bad")).id
        for _ in range(3):
            assert (await ended(r, job_id)).status is JobStatus.FAILED
            await r.service.retry("e", job_id, None)
        # Two lost runs now still leave one attempt: it completes.
        endpoint.runs[job_id] = 0
        endpoint.rescripted[job_id] = {"lost": 2}
        job = await ended(r, job_id)
        assert job.status is JobStatus.COMPLETED
        assert (job.user_retries, job.attempts) == (3, 2)
        await r.stop()

    asyncio.run(main())


def test_execution_timeout_ends_the_job_timed_out() -> None:
    async def main() -> None:
        endpoint = Scripted()
        r = replica(InMemoryJobStore(), endpoint)
        job = await r.service.submit("e", _submission(sleep=5, timeout_ms=80), sync=False)
        done = await ended(r, job.id)
        assert done.status is JobStatus.TIMED_OUT and "80 ms" in done.error
        assert endpoint.cancelled == [job.id]
        await r.stop()

    asyncio.run(main())


def _submission(sleep: float, timeout_ms: int):  # noqa: ANN202
    from serve_app.jobs.service import Submission

    return Submission(input={"sleep": sleep}, execution_timeout_ms=timeout_ms)


def test_cancel_interrupts_the_running_work() -> None:
    async def main() -> None:
        endpoint = Scripted()
        r = replica(InMemoryJobStore(), endpoint)
        job_id = (await submit(r, sleep=5)).id
        await until(lambda: _runs(endpoint, job_id, 1))
        assert (await r.service.cancel("e", job_id, None)).status is JobStatus.CANCELLED
        await until(lambda: _cancelled(endpoint, job_id))
        assert (await r.service.status("e", job_id, None)).status is JobStatus.CANCELLED
        await r.stop()

    asyncio.run(main())


async def _cancelled(endpoint: Scripted, job_id: str) -> bool:
    return job_id in endpoint.cancelled


def test_stopping_a_replica_hands_its_jobs_back_at_once() -> None:
    async def main() -> None:
        store, first_endpoint, second_endpoint = InMemoryJobStore(), Scripted(), Scripted()
        first = replica(store, first_endpoint)
        ids = [(await submit(first, sleep=0.05 if i else 5, i=i)).id for i in range(3)]
        await until(lambda: _all_started(first_endpoint, ids))
        await first.stop()
        for job_id in ids:
            job = await store.get(job_id)
            assert job.status is JobStatus.IN_QUEUE and job.attempts == 0, job
        assert set(first_endpoint.cancelled) == set(ids)
        second = replica(store, second_endpoint)
        for job_id in ids[1:]:
            assert (await ended(second, job_id)).status is JobStatus.COMPLETED
        await until(lambda: _runs(second_endpoint, ids[0], 1))
        await second.stop()

    asyncio.run(main())


async def _all_started(endpoint: Scripted, ids: list[str]) -> bool:
    return all(endpoint.runs[i] for i in ids)


def test_a_lost_streaming_run_leaves_no_chunks_behind() -> None:
    async def main() -> None:
        endpoint = Scripted()
        r = replica(InMemoryJobStore(), endpoint, events=True)
        job_id = (await submit(r, chunks=2, lost=1)).id
        job = await ended(r, job_id)
        assert job.status is JobStatus.COMPLETED and job.attempts == 1
        _, chunks = await r.service.stream("e", job_id, None, 0)
        assert chunks == ["run 2 chunk 0", "run 2 chunk 1"]
        assert job.output == chunks  # aggregated stream of the run that counted
        await r.stop()

    asyncio.run(main())


def test_stream_writes_survive_a_store_blink() -> None:
    async def main() -> None:
        store, endpoint = FlakyStore(), Scripted()
        r = replica(store, endpoint, events=True)
        store.failures["append_stream"] = 2
        job = await ended(r, (await submit(r, chunks=3)).id)
        assert job.status is JobStatus.COMPLETED and endpoint.runs[job.id] == 1
        assert job.output == [f"run 1 chunk {i}" for i in range(3)]
        await r.stop()

    asyncio.run(main())


class Recorded(JobMetrics):
    """Every report, in order."""

    def __init__(self) -> None:
        self.events: list[tuple] = []

    def submitted(self, endpoint: str) -> None:
        self.events.append(("submitted", endpoint))

    def ended(self, job: Job) -> None:
        self.events.append(("ended", job.status.value, job.delay_time_ms is not None))

    def requeued(self, endpoint: str, cause: str) -> None:
        self.events.append(("requeued", cause))

    def queue_state(self, endpoint: str, queued: int, running: int) -> None:
        self.events.append(("queue", queued, running))


def test_every_submission_end_and_requeue_is_reported_once() -> None:
    metrics = Recorded()

    async def main() -> None:
        r = replica(InMemoryJobStore(), Scripted(),
                    FAST.model_copy(update={"metrics_interval_s": 0.05}), metrics=metrics)
        ok, bad = await submit(r), await submit(r, fail="no")
        lost = await submit(r, lost=1)
        slow = await submit(r, sleep=5)
        for job in (ok, bad, lost):
            await ended(r, job.id)
        await r.service.cancel("e", slow.id, None)
        await until(lambda: _reported(metrics, ("queue", 0, 0)))
        await r.stop()

    asyncio.run(main())
    events = metrics.events
    assert events.count(("submitted", "e")) == 4
    ends = sorted(e[1] for e in events if e[0] == "ended")
    assert ends == ["CANCELLED", "COMPLETED", "COMPLETED", "FAILED"]
    assert all(e[2] for e in events if e[0] == "ended")  # each with its delay time
    assert events.count(("requeued", "worker_lost")) == 1


def test_an_expired_lease_is_reported_as_a_requeue() -> None:
    metrics = Recorded()

    async def main() -> None:
        store = InMemoryJobStore()
        dead = replica(store, Scripted(), metrics=metrics, start=False)
        await submit(dead, sleep=60)
        await store.claim("e", "gone", 10, 1)  # a replica that died holding the lease
        sweeper = replica(store, Scripted(), metrics=metrics)
        await until(lambda: _reported(metrics, ("requeued", "lease_expired")))
        await sweeper.stop()

    asyncio.run(main())


async def _reported(metrics: Recorded, event: tuple) -> bool:
    return event in metrics.events


class CountingStore(InMemoryJobStore):
    """Counts the store statements the job path makes."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: Counter[str] = Counter()

    async def claim(self, *args: object, **kw: object) -> list[Job]:
        self.calls["claim"] += 1
        return await super().claim(*args, **kw)

    async def get(self, *args: object, **kw: object) -> Job | None:
        self.calls["get"] += 1
        return await super().get(*args, **kw)


def test_with_a_slot_free_a_job_starts_as_it_is_stored_and_its_waiter_reads_nothing() -> None:
    """Insert-and-claim in one statement: no claim round trip, no dispatcher hop; the
    waiter gets the ended job from the end itself, not from another read."""
    async def main() -> None:
        store, endpoint = CountingStore(), Scripted()
        slow = FAST.model_copy(update={"poll_interval_s": 60})  # no idle polls to count
        r = replica(store, endpoint, settings=slow, max_concurrency=2)
        await asyncio.sleep(0.05)  # the loop's first claim (the store may hold old jobs)
        store.calls.clear()
        job = await r.service.submit("e", Submission(input={"x": 1}), sync=True)
        # claimed as stored, and running here already
        assert job.status is JobStatus.IN_PROGRESS and r.dispatcher.running_count("e") == 1
        done = await r.service.wait("e", job.id, None, 5_000, current=job)
        assert done.status is JobStatus.COMPLETED and done.output["echo"] == {"x": 1}
        assert store.calls == {}, store.calls  # no claim, no read
        await r.stop()

    asyncio.run(main())


def test_a_job_submitted_behind_queued_ones_waits_its_turn() -> None:
    """With every slot taken the job queues (IN_QUEUE); a freed slot claims it, oldest
    first, and a freed slot with nothing queued claims nothing."""
    async def main() -> None:
        store, endpoint = CountingStore(), Scripted()
        slow = FAST.model_copy(update={"poll_interval_s": 60})
        r = replica(store, endpoint, settings=slow, max_concurrency=1)
        await asyncio.sleep(0.05)
        first = await submit(r, sleep=0.1)
        second, third = await submit(r, y=2), await submit(r, z=3)
        assert (await store.get(first.id)).status is JobStatus.IN_PROGRESS
        assert (await store.get(second.id)).status is JobStatus.IN_QUEUE
        done = [await ended(r, j.id) for j in (first, second, third)]
        assert [j.status for j in done] == [JobStatus.COMPLETED] * 3
        assert done[1].started_at <= done[2].started_at  # in order
        await asyncio.sleep(0.05)
        store.calls.clear()
        lone = await ended(r, (await submit(r, w=4)).id)
        await asyncio.sleep(0.05)
        assert lone.status is JobStatus.COMPLETED and store.calls["claim"] == 0
        await r.stop()

    asyncio.run(main())
