"""Two ingress replicas on one PostgreSQL store: a caller waiting on one replica wakes
when the other replica finishes the job, with no polling to rely on."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from serve_app.jobs.model import JobStatus
from serve_app.jobs.service import Submission
from serve_app.jobs.settings import JobSettings
from serve_app.jobs.stores import open_store
from tests.jobs.harness import Replica, replica

pytestmark = pytest.mark.postgres

#: long enough that a waiter woken by polling would fail the test's own timeout
NO_POLLING = JobSettings(poll_interval_s=3600, sweep_interval_s=3600)


class SlowEcho:
    """An endpoint that takes a moment, so the job is still running when the wait starts."""

    async def call(self, job: dict[str, Any]) -> Any:
        await asyncio.sleep(0.3)
        return {"echo": job["input"]}


def pg_replica(store_url: str) -> Replica:
    return replica(open_store(store_url), SlowEcho(), NO_POLLING, max_concurrency=1,
                   start=False)


def test_a_wait_on_one_replica_ends_when_another_finishes(postgres_url: str) -> None:
    async def main() -> tuple[JobStatus, Any, JobStatus]:
        runner, waiter = pg_replica(postgres_url), pg_replica(postgres_url)
        runner.dispatcher.start()
        waiter.dispatcher.start()
        await asyncio.sleep(0.5)  # both idle loops have looked once; listeners connected
        job = await runner.service.submit("e", Submission(input={"x": 1}), sync=False)
        first = (await waiter.service.status("e", job.id, None)).status
        waiting = waiter.service.wait("e", job.id, None, wait_ms=3_600_000)
        ended = await asyncio.wait_for(waiting, 30)
        for r in (runner, waiter):
            await r.stop()
            await r.store.close()
        return first, ended.output, ended.status

    first, output, status = asyncio.run(main())
    assert first in {JobStatus.IN_QUEUE, JobStatus.IN_PROGRESS}
    assert status is JobStatus.COMPLETED and output == {"echo": {"x": 1}}
