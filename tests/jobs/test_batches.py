"""Batch jobs through the service and a running dispatcher on the in-memory store: states,
limits, owners, cancel, the completion webhook, batch requests behind interactive jobs
and within their share of the slots, and 5,000 requests run to their end."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest

from serve_app.jobs.batches import (
    Batch,
    BatchNotDraft,
    BatchService,
    BatchStatus,
    BatchTooLarge,
    TooManyBatches,
    UnknownBatch,
)
from serve_app.jobs.errors import UnknownEndpoint
from serve_app.jobs.memory import InMemoryJobStore
from serve_app.jobs.model import JobStatus
from serve_app.jobs.settings import BatchSettings, JobSettings
from tests.clients import Receiver
from tests.jobs.harness import FAST, Replica, Scripted, replica, submit, until


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


class Counting(Scripted):
    """Scripted, keeping the most batch requests and all jobs it ran at once."""

    def __init__(self) -> None:
        super().__init__()
        self.now = {"batch": 0, "all": 0}
        self.most = {"batch": 0, "all": 0}

    async def call(self, job: dict[str, Any]) -> Any:
        kinds = ("batch", "all") if job["id"].startswith("batch-") else ("all",)
        for k in kinds:
            self.now[k] += 1
            self.most[k] = max(self.most[k], self.now[k])
        try:
            return await super().call(job)
        finally:
            for k in kinds:
                self.now[k] -= 1


def batch_replica(endpoint: Scripted, settings: JobSettings = FAST,
                  max_concurrency: int = 8) -> tuple[Replica, BatchService]:
    r = replica(InMemoryJobStore(), endpoint, settings, max_concurrency=max_concurrency,
                start=False)
    batches = BatchService(r.store, r.service, r.dispatcher, settings)  # type: ignore[arg-type]
    r.dispatcher.add_sweeper(batches.sweep)
    r.dispatcher.start()
    return r, batches


async def ended_batch(batches: BatchService, batch_id: str, timeout_s: float = 5.0) -> Batch:
    async def done() -> bool:
        return (await batches.get("e", batch_id, None)).ended_at is not None

    await until(done, timeout_s)
    return await batches.get("e", batch_id, None)


def test_a_batch_runs_to_its_end_and_its_webhook_fires_once(receiver: Receiver) -> None:
    async def main() -> None:
        r, batches = batch_replica(Scripted())
        batch = await batches.create("e", [{"x": 1}, {"fail": "no"}], None, "first",
                                     receiver.url("/ok/batch"))
        assert batch.status is BatchStatus.DRAFT
        batch = await batches.add("e", batch.id, None, [{"x": 2}, {"x": 3}])
        page, _ = await batches.requests("e", batch.id, None, 0, 10)
        batch = await batches.remove("e", batch.id, page[3].id, None)
        assert batch.request_total == 3
        await asyncio.sleep(0.1)  # a DRAFT batch runs nothing
        assert (await batches.get("e", batch.id, None)).completed == 0
        batch = await batches.finalize("e", batch.id, None)
        assert batch.status is BatchStatus.FINALIZED
        final = await ended_batch(batches, batch.id)
        assert final.status is BatchStatus.FINALIZED  # a failed request fails no batch
        assert (final.completed, final.failed, final.request_total) == (2, 1, 3)
        await until(lambda: _received(receiver, "/ok/batch", 1))
        await asyncio.sleep(0.2)  # several sweeps and delivery rounds later: still once
        (payload,) = receiver.received("/ok/batch")
        assert payload["id"] == batch.id and payload["status"] == "FINALIZED"
        assert (payload["requestCompleted"], payload["requestFailed"]) == (2, 1)
        assert payload["name"] == "first"
        page, total = await batches.requests("e", batch.id, None, 0, 10)
        assert total == 3 and [p.status for p in page] == ["COMPLETED", "FAILED", "COMPLETED"]
        assert page[0].output["echo"] == {"x": 1} and page[1].error == "no"
        await r.stop()

    asyncio.run(main())


async def _received(receiver: Receiver, path: str, n: int) -> bool:
    return len(receiver.received(path)) >= n


def test_the_endpoints_webhook_serves_batches_without_their_own(receiver: Receiver) -> None:
    async def main() -> None:
        r, batches = batch_replica(Scripted())
        r.service.endpoint("e").batch_webhook = receiver.url("/ok/endpoint")
        batch = await batches.create("e", [{"x": 1}], None)
        await batches.finalize("e", batch.id, None)
        await ended_batch(batches, batch.id)
        await until(lambda: _received(receiver, "/ok/endpoint", 1))
        await r.stop()

    asyncio.run(main())


def test_limits_states_and_owners() -> None:
    async def main() -> None:
        settings = FAST.model_copy(update={"batches": BatchSettings(max_requests=5,
                                                                    max_active=2)})
        r, batches = batch_replica(Scripted(), settings)
        mine = await batches.create("e", [{}] * 5, "alice")
        await asyncio.sleep(0.002)  # newest first, by creation time
        with pytest.raises(BatchTooLarge):
            await batches.add("e", mine.id, "alice", [{}])
        with pytest.raises(BatchTooLarge):
            await batches.create("e", [{}] * 6, "alice")
        theirs = await batches.create("e", [], "bob")
        with pytest.raises(TooManyBatches):
            await batches.create("e", [], "carol")
        # Another owner's batch is answered as unknown, to every verb.
        for call in (batches.get("e", mine.id, "bob"), batches.add("e", mine.id, "bob", [{}]),
                     batches.finalize("e", mine.id, "bob"), batches.cancel("e", mine.id, "bob"),
                     batches.requests("e", mine.id, "bob", 0, 1),
                     batches.update("e", mine.id, "bob", {"name": "x"}),
                     batches.get("e", "batch-nope", None)):
            with pytest.raises(UnknownBatch):
                await call
        assert [b.id for b in await batches.list("e", "bob", 10)] == [theirs.id]
        assert [b.id for b in await batches.list("e", None, 10)] == [theirs.id, mine.id]
        with pytest.raises(UnknownEndpoint):
            await batches.get("nope", mine.id, None)
        await batches.finalize("e", mine.id, "alice")
        with pytest.raises(BatchNotDraft):
            await batches.add("e", mine.id, "alice", [{}])
        with pytest.raises(BatchNotDraft):
            await batches.finalize("e", mine.id, "alice")
        await ended_batch(batches, mine.id)
        # An ended batch no longer counts as active.
        await batches.create("e", [], "carol")
        await r.stop()

    asyncio.run(main())


def test_cancel_ends_queued_requests_at_once_and_lets_running_ones_finish(
        receiver: Receiver) -> None:
    async def main() -> None:
        endpoint = Scripted()
        settings = FAST.model_copy(update={"batch_share": 0.5})
        r, batches = batch_replica(endpoint, settings, max_concurrency=4)  # 2 batch slots
        batch = await batches.create("e", [{"sleep": 0.4}] * 10, None,
                                     webhook=receiver.url("/ok/cancel"))
        await batches.finalize("e", batch.id, None)

        async def two_running() -> bool:
            return (await batches.get("e", batch.id, None)).running == 2

        await until(two_running)
        cancelled = await batches.cancel("e", batch.id, None)
        assert cancelled.status is BatchStatus.FINALIZED and cancelled.ended_at is None
        assert (cancelled.running, cancelled.queued, cancelled.failed) == (2, 0, 8)
        final = await ended_batch(batches, batch.id)
        assert final.status is BatchStatus.CANCELLED
        assert (final.completed, final.failed) == (2, 8)  # the running two finished
        assert endpoint.cancelled == [] and sum(endpoint.runs.values()) == 2
        await until(lambda: _received(receiver, "/ok/cancel", 1))
        assert receiver.received("/ok/cancel")[0]["status"] == "CANCELLED"
        await r.stop()

    asyncio.run(main())


def test_interactive_jobs_run_first_and_batch_requests_keep_to_their_share() -> None:
    async def main() -> None:
        endpoint = Counting()
        share = FAST.model_copy(update={"batch_share": 0.25})  # 2 of 8 slots
        r, batches = batch_replica(endpoint, share, max_concurrency=8)
        batch = await batches.create("e", [{"sleep": 0.05}] * 40, None)
        await batches.finalize("e", batch.id, None)
        await asyncio.sleep(0.1)
        delays = []
        for _ in range(10):  # interactive jobs arriving while the batch runs
            job = await submit(r, sleep=0.02)
            await until(lambda j=job: _started(r, j.id))
            delays.append((await r.service.status("e", job.id, None)).delay_time_ms)
            await asyncio.sleep(0.02)
        final = await ended_batch(batches, batch.id)
        assert final.completed == 40
        assert endpoint.most["batch"] == 2  # its share of the 8 slots, used
        assert max(delays) < 50, delays  # never behind the 38 queued batch requests
        await r.stop()

    asyncio.run(main())


async def _started(r: Replica, job_id: str) -> bool:
    return (await r.service.status("e", job_id, None)).status is not JobStatus.IN_QUEUE


def test_5000_requests_run_to_completion_some_failing() -> None:
    async def main() -> None:
        settings = FAST.model_copy(update={"batch_share": 1.0})
        r, batches = batch_replica(Scripted(), settings, max_concurrency=64)
        inputs = [{"fail": "bad input"} if i % 10 == 0 else {"i": i} for i in range(5_000)]
        batch = await batches.create("e", inputs[:2_500], None)
        await batches.add("e", batch.id, None, inputs[2_500:])
        started = time.monotonic()
        await batches.finalize("e", batch.id, None)
        final = await ended_batch(batches, batch.id, timeout_s=120)
        assert final.status is BatchStatus.FINALIZED and final.request_total == 5_000
        assert (final.completed, final.failed) == (4_500, 500)
        assert final.completed + final.failed == final.request_total
        page, total = await batches.requests("e", batch.id, None, 4_990, 100)
        assert total == 5_000 and len(page) == 10
        print(f"5,000 requests ran in {time.monotonic() - started:.1f} s")
        await r.stop()

    asyncio.run(main())
