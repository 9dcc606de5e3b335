"""The worker side of the queue without HTTP: takes, results, stops, health and timeouts
of external workers, over the in-memory store with the real service and dispatcher."""

from __future__ import annotations

import asyncio
import time

from serve_app.jobs.dispatcher import Dispatcher
from serve_app.jobs.memory import InMemoryJobStore
from serve_app.jobs.model import JobStatus, now_ms
from serve_app.jobs.service import JobService, Submission
from serve_app.jobs.settings import EndpointSpec, JobSettings, WorkerSettings
from serve_app.jobs.webhooks import WebhookDeliverer
from serve_app.jobs.workers import WorkerService
from tests.jobs.harness import FAST
from tests.jobs.test_dispatcher import Recorded

SETTINGS = FAST.model_copy(update={"workers": WorkerSettings(
    lease_s=3, take_wait_s=1, stop_wait_s=0.5), "metrics_interval_s": 0.05})


class External:
    """An ingress replica's job layer with one endpoint `x` served by external workers."""

    def __init__(self, settings: JobSettings = SETTINGS) -> None:
        self.store = InMemoryJobStore()
        self.metrics = Recorded()
        deliverer = WebhookDeliverer(self.store, settings, now_ms)
        self.dispatcher = Dispatcher(self.store, {}, settings, deliverer, metrics=self.metrics)
        spec = EndpointSpec()
        self.service = JobService(self.store, self.dispatcher, {"x": spec}, settings,
                                  metrics=self.metrics)
        self.workers = WorkerService(self.store, {"x": spec}, settings,
                                     self.dispatcher.wake_webhooks, metrics=self.metrics)
        self.service.on_queued(self.workers.notify_queued)
        self.dispatcher.add_sweeper(self.workers.sweep)
        self.dispatcher.report_queues_of(["x"])
        self.workers.start()
        self.dispatcher.start()

    async def submit(self, **kw: object) -> str:
        job = await self.service.submit("x", Submission(input={"n": 1}, **kw), sync=False)
        return job.id


def test_a_waiting_take_gets_a_job_submitted_meanwhile() -> None:
    async def main() -> None:
        r = External()
        take = asyncio.create_task(r.workers.take("x", "w1", 1))
        await asyncio.sleep(0.1)
        started = time.monotonic()
        job_id = await r.submit()
        (job,) = await take
        assert job.id == job_id and job.input == {"n": 1} and job.worker_id == "w1"
        assert time.monotonic() - started < 0.1  # woken, not found by a later poll
        assert await r.workers.take("x", "w1", 4) == []  # waited take_wait_s, then none
        await r.dispatcher.stop()

    asyncio.run(main())


def test_results_progress_errors_and_stale_posts() -> None:
    async def main() -> None:
        r = External()
        ids = [await r.submit() for _ in range(3)]
        jobs = await r.workers.take("x", "w1", 3)
        assert [j.id for j in jobs] == ids
        ok, bad, stolen = ids
        progress = await r.workers.done("x", "w1", ok, {"status": "IN_PROGRESS",
                                                         "output": {"step": 1}})
        assert progress.accepted and (await r.store.get(ok)).output == {"step": 1}
        assert (await r.workers.stream("x", "w1", ok, {"output": "c0"})).accepted
        assert (await r.workers.done("x", "w1", ok, {"output": 42, "stopPod": True})).accepted
        done = await r.service.status("x", ok, None)
        assert done.status is JobStatus.COMPLETED and done.output == 42
        await r.workers.done("x", "w1", bad, {"error": {"error_message": "boom"}})
        assert (await r.store.get(bad)).error == '{"error_message": "boom"}'
        # Another worker's post, or one after the end, changes nothing.
        stale = await r.workers.done("x", "w2", stolen, {"output": "forged"})
        assert not stale.accepted and "no longer run by worker w2" in stale.reason
        again = await r.workers.done("x", "w1", ok, {"output": "twice"})
        assert not again.accepted and (await r.store.get(ok)).output == 42
        await r.dispatcher.stop()

    asyncio.run(main())


def test_stops_health_and_timeouts() -> None:
    async def main() -> None:
        r = External()
        assert (await r.workers.health("x"))["initializing"] == 0
        await r.workers.ping("x", "w1", [], "1.12.0")
        assert (await r.workers.health("x"))["initializing"] == 1
        cancelled = await r.submit()
        late = await r.service.submit("x", Submission(input={}, execution_timeout_ms=200),
                                      sync=False)
        await r.workers.take("x", "w1", 2)
        assert (await r.workers.health("x"))["running"] == 1
        waiting = asyncio.create_task(r.workers.stops("x", "w1"))
        await asyncio.sleep(0.05)
        await r.service.cancel("x", cancelled, None)
        assert await waiting == [cancelled]  # woken by the cancel on this replica
        timed_out = await r.service.wait("x", late.id, None, 3_000)
        assert timed_out.status is JobStatus.TIMED_OUT  # the sweeper, not a dispatcher
        assert await r.workers.stops("x", "w1") == [late.id]
        assert await r.workers.stops("x", "w1") == []  # each once (after stop_wait_s)
        health = await r.workers.health("x")
        assert (health["idle"], health["running"], health["ready"]) == (1, 0, 1)
        assert ("queue", 0, 0) in r.metrics.events  # gauges of an endpoint run elsewhere
        assert ("ended", "TIMED_OUT", True) in r.metrics.events
        await r.dispatcher.stop()

    asyncio.run(main())
