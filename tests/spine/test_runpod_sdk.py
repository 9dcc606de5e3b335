"""Conformance: the real `runpod` SDK, pointed here, works unmodified."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
import runpod

from tests.clients import runpod_sdk
from tests.spine.conftest import API_KEY


@pytest.fixture()
def sdk(base_url: str) -> Iterator[None]:
    with runpod_sdk(base_url):
        yield


def test_run_status_output(sdk: None) -> None:
    job = runpod.Endpoint("demo").run({"steps": 2, "delay_s": 0.5, "echo": "sdk"})
    assert job.status() in {"IN_QUEUE", "IN_PROGRESS"}
    output = job.output(timeout=30)
    assert output == {"echo": "sdk", "steps": 2, "job_id": job.job_id}
    assert job.status() == "COMPLETED"


def test_run_sync_returns_the_output(sdk: None) -> None:
    output = runpod.Endpoint("ipa-generation").run_sync({"text": "hello"}, timeout=60)
    assert output["words"][0]["word"] == "hello"


def test_run_sync_polls_when_the_job_outlasts_runsync(sdk: None, base_url: str) -> None:
    # The SDK posts /runsync with no wait; this job outlasts nothing but takes the
    # polling branch if the server returned early. Either way the output arrives.
    output = runpod.Endpoint("demo").run_sync({"delay_s": 1.5, "echo": 7}, timeout=60)
    assert output["echo"] == 7


def test_stream_yields_every_chunk(sdk: None) -> None:
    job = runpod.Endpoint("stream").run({"chunks": 3, "delay_s": 0.3})
    chunks = list(job.stream())
    assert chunks == [{"index": i, "text": f"chunk {i}"} for i in range(3)]


def test_cancel(sdk: None) -> None:
    job = runpod.Endpoint("demo").run({"delay_s": 20})
    time.sleep(0.5)
    assert job.cancel() == {"id": job.job_id, "status": "CANCELLED"}
    assert job.status() == "CANCELLED"


def test_health_and_purge_queue(sdk: None) -> None:
    endpoint = runpod.Endpoint("serial")
    blocker = endpoint.run({"delay_s": 3})
    time.sleep(0.5)
    endpoint.run({})
    endpoint.run({})
    health = endpoint.health()
    assert health["jobs"]["inQueue"] == 2 and health["workers"]["running"] == 1
    assert endpoint.purge_queue() == {"removed": 2, "status": "completed"}
    blocker.cancel()


def test_failed_job_error_is_visible(sdk: None) -> None:
    job = runpod.Endpoint("demo").run({"fail": "broken input"})
    job.output(timeout=30)
    assert job.status() == "FAILED"
    assert job._fetch_job()["error"] == "broken input"


def test_sdk_key_is_sent_as_bearer(secured_url: str) -> None:
    runpod.api_key = API_KEY
    runpod.endpoint_url_base = f"{secured_url}/v2"
    assert runpod.Endpoint("demo").run_sync({"echo": "secure"}, timeout=60)["echo"] == "secure"
    runpod.api_key = "wrong"
    with pytest.raises(Exception, match="401"):
        runpod.Endpoint("demo").health()


def test_asyncio_client(sdk: None) -> None:
    import aiohttp
    from runpod import AsyncioEndpoint

    async def main() -> tuple:
        async with aiohttp.ClientSession() as session:
            endpoint = AsyncioEndpoint("demo", session)
            job = await endpoint.run({"echo": "async", "delay_s": 0.3})
            first = await job.status()
            output = await job.output(timeout=30)
            health = await endpoint.health()
            slow = await endpoint.run({"delay_s": 20})
            await asyncio.sleep(0.5)
            cancelled = await slow.cancel()
            purged = await endpoint.purge_queue()
            return first, output, health, cancelled, purged

    first, output, health, cancelled, purged = asyncio.run(main())
    assert first in {"IN_QUEUE", "IN_PROGRESS", "COMPLETED"}
    assert output["echo"] == "async"
    assert "jobs" in health and "workers" in health
    assert cancelled["status"] == "CANCELLED"
    assert purged["status"] == "completed"
