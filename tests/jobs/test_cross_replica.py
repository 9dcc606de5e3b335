"""Two ingress replicas on one PostgreSQL store: a caller waiting on one replica wakes
when the other replica finishes the job, with no polling to rely on."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from serve_app.jobs.dispatcher import Dispatcher, Endpoint
from serve_app.jobs.model import JobStatus
from serve_app.jobs.service import JobService, Submission
from serve_app.jobs.store import JobStore, open_store
from serve_app.jobs.webhooks import WebhookSender
from serve_app.settings import EndpointSpec, JobSettings

pytestmark = pytest.mark.postgres

#: long enough that a waiter woken by polling would fail the test's own timeout
NO_POLLING = JobSettings(poll_interval_s=3600, sweep_interval_s=3600)


class SlowEcho:
    """An endpoint that takes a moment, so the job is still running when the wait starts."""

    async def call(self, job: dict[str, Any]) -> Any:
        await asyncio.sleep(0.3)
        return {"echo": job["input"]}


def replica(store_url: str) -> tuple[JobService, Dispatcher, JobStore]:
    store = open_store(store_url)
    spec = EndpointSpec(max_concurrency=1)
    endpoints = {"e": Endpoint("e", spec, SlowEcho())}
    webhooks = WebhookSender(1, 0, 1)
    dispatcher = Dispatcher(store, endpoints, NO_POLLING, webhooks)
    return JobService(store, dispatcher, webhooks, {"e": spec}, NO_POLLING), dispatcher, store


def test_a_wait_on_one_replica_ends_when_another_finishes(postgres_url: str) -> None:
    async def main() -> tuple[JobStatus, Any, JobStatus]:
        (runner, a, a_store), (waiter, b, b_store) = replica(postgres_url), replica(postgres_url)
        a.start()
        b.start()
        await asyncio.sleep(0.5)  # both idle loops have looked once; listeners connected
        job = await runner.submit("e", Submission(input={"x": 1}), sync=False)
        first = (await waiter.status("e", job.id)).status
        ended = await asyncio.wait_for(waiter.wait("e", job.id, wait_ms=3_600_000), 30)
        for dispatcher, store in ((a, a_store), (b, b_store)):
            await dispatcher.stop()
            await store.close()
        return first, ended.output, ended.status

    first, output, status = asyncio.run(main())
    assert first in {JobStatus.IN_QUEUE, JobStatus.IN_PROGRESS}
    assert status is JobStatus.COMPLETED and output == {"echo": {"x": 1}}
