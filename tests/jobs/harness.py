"""A job layer without Ray or HTTP servers of its own: the in-memory store, scripted
endpoints and a store that fails on demand, for fast tests of the dispatcher, the
service and webhook delivery."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from serve_app.jobs.dispatcher import Dispatcher
from serve_app.jobs.endpoints import Endpoint
from serve_app.jobs.errors import JobFailed, WorkerLost
from serve_app.jobs.memory import InMemoryJobStore
from serve_app.jobs.metrics import JobMetrics
from serve_app.jobs.model import Job, JobStatus, now_ms
from serve_app.jobs.service import JobService, Submission
from serve_app.jobs.settings import EndpointSpec, JobSettings
from serve_app.jobs.store import JobStore
from serve_app.jobs.webhooks import WebhookDeliverer

#: short enough that no test sleeps long: leases renew every 50 ms
FAST = JobSettings(lease_s=0.2, poll_interval_s=0.02, sweep_interval_s=0.05,
                   webhook_retry_delay_s=0.01, webhook_timeout_s=2, max_attempts=3)


class Scripted:
    """An endpoint whose input says what a run does: `sleep` seconds, then lose the
    worker (`lost`: the first n runs of the job), fail (`fail`), or echo. `chunks`
    streams that many chunks first (an events endpoint)."""

    def __init__(self) -> None:
        self.runs: Counter[str] = Counter()
        self.cancelled: list[str] = []
        #: scripts that replace a job's input from its next run on
        self.rescripted: dict[str, dict[str, Any]] = {}

    async def _start(self, job: dict[str, Any]) -> dict[str, Any]:
        self.runs[job["id"]] += 1
        spec = self.rescripted.get(job["id"], job["input"])
        try:
            await asyncio.sleep(spec.get("sleep", 0))
        except asyncio.CancelledError:
            self.cancelled.append(job["id"])
            raise
        if self.runs[job["id"]] <= spec.get("lost", 0):
            raise WorkerLost(f"ActorDiedError: run {self.runs[job['id']]} lost")
        if "fail" in spec:
            raise JobFailed(spec["fail"])
        if "crash" in spec:
            raise RuntimeError(spec["crash"])
        return spec

    async def call(self, job: dict[str, Any]) -> Any:
        spec = await self._start(job)
        return {"echo": spec, "run": self.runs[job["id"]]}

    async def method(self, name: str, *args: Any) -> Any:
        raise NotImplementedError(name)

    async def stream(self, job: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        run = self.runs[job["id"]] + 1
        for i in range(job["input"].get("chunks", 0)):
            yield {"chunk": f"run {run} chunk {i}"}
            await asyncio.sleep(0.01)
        spec = await self._start(job)
        yield {"output": {"echo": spec, "run": run}}


class FlakyStore(InMemoryJobStore):
    """Raises on the named methods for their next n calls: a database blinking."""

    def __init__(self) -> None:
        super().__init__()
        self.failures: Counter[str] = Counter()

    def _maybe_fail(self, method: str) -> None:
        if self.failures[method] > 0:
            self.failures[method] -= 1
            raise ConnectionError(f"{method}: the database went away")

    async def renew(self, *args: Any, **kw: Any) -> Job | None:
        self._maybe_fail("renew")
        return await super().renew(*args, **kw)

    async def finish(self, *args: Any, **kw: Any) -> Job | None:
        self._maybe_fail("finish")
        return await super().finish(*args, **kw)

    async def append_stream(self, *args: Any, **kw: Any) -> bool:
        self._maybe_fail("append_stream")
        return await super().append_stream(*args, **kw)


@dataclass
class Replica:
    """One ingress replica's job layer."""

    service: JobService
    dispatcher: Dispatcher
    deliverer: WebhookDeliverer
    store: JobStore

    async def stop(self) -> None:
        await self.dispatcher.stop()
        await self.deliverer.close()


def replica(store: JobStore, endpoint: Scripted, settings: JobSettings = FAST,
            events: bool = False, max_concurrency: int = 8, start: bool = True,
            metrics: JobMetrics | None = None) -> Replica:
    spec = EndpointSpec(max_concurrency=max_concurrency)
    endpoints = {"e": Endpoint("e", spec, endpoint, events)}
    deliverer = WebhookDeliverer(store, settings, now_ms, metrics=metrics)
    dispatcher = Dispatcher(store, endpoints, settings, deliverer, metrics=metrics)
    service = JobService(store, dispatcher, {"e": spec}, settings, metrics=metrics)
    if start:
        dispatcher.start()
    return Replica(service, dispatcher, deliverer, store)


async def submit(r: Replica, webhook: str | None = None, **spec: Any) -> Job:
    return await r.service.submit("e", Submission(input=spec, webhook=webhook), sync=False)


async def until(predicate, timeout_s: float = 5.0) -> None:  # noqa: ANN001
    """Wait, in steps of 10 ms, for an async predicate."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def ended(r: Replica, job_id: str) -> Job:
    job = await r.service.wait("e", job_id, None, 5_000)
    assert job.status.terminal, job
    return job


TERMINAL = {s for s in JobStatus if s.terminal}
