"""Webhook delivery from the outbox, to a real local receiver: one delivery per end,
retries with backoff, the attempts kept, Standard Webhooks signatures, and deliveries
left behind by a replica that died."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from itertools import pairwise

import pytest
from standardwebhooks.webhooks import Webhook

from serve_app.jobs.memory import InMemoryJobStore
from serve_app.jobs.model import DeliveryState, JobStatus
from tests.clients import Receiver
from tests.jobs.harness import FAST, Scripted, ended, replica, submit, until

SECRET = "whsec_" + base64.b64encode(b"a shared secret of 32 bytes......").decode()


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


async def _received(receiver: Receiver, path: str, n: int) -> None:
    async def enough() -> bool:
        return len(receiver.received(path)) >= n

    await until(enough)


def test_repeated_cancels_deliver_one_webhook(receiver: Receiver) -> None:
    """Finding: a second (and fifth) POST /cancel sent the webhook again."""
    async def main() -> None:
        store = InMemoryJobStore()
        r = replica(store, Scripted())
        job = await submit(r, webhook=receiver.url("/ok/c"), sleep=5)
        await until(lambda: _status(r, job.id, JobStatus.IN_PROGRESS))
        for _ in range(5):
            assert (await r.service.cancel("e", job.id, None)).status is JobStatus.CANCELLED
        await _received(receiver, "/ok/c", 1)
        await asyncio.sleep(0.1)  # well past several delivery rounds
        (payload,) = receiver.received("/ok/c")
        assert payload["status"] == "CANCELLED" and payload["id"] == job.id
        assert payload["input"] == {"sleep": 5}
        (delivery,) = await r.service.webhook_deliveries("e", job.id, None)
        assert delivery.state is DeliveryState.DELIVERED and len(delivery.attempts) == 1
        await r.stop()

    asyncio.run(main())


async def _status(r, job_id: str, status: JobStatus) -> bool:  # noqa: ANN001
    return (await r.service.status("e", job_id, None)).status is status


def test_failed_attempts_back_off_and_are_kept(receiver: Receiver) -> None:
    async def main() -> None:
        settings = FAST.model_copy(update={"webhook_attempts": 4,
                                           "webhook_retry_delay_s": 0.02})
        r = replica(InMemoryJobStore(), Scripted(), settings)
        job = await submit(r, webhook=receiver.url("/fail/x"))
        await ended(r, job.id)

        async def given_up() -> bool:
            (d,) = await r.service.webhook_deliveries("e", job.id, None)
            return d.state is DeliveryState.FAILED

        await until(given_up)
        (delivery,) = await r.service.webhook_deliveries("e", job.id, None)
        assert [a.status_code for a in delivery.attempts] == [500] * 4
        assert all(a.error == "HTTP 500" for a in delivery.attempts)
        gaps = [b.at - a.at for a, b in pairwise(delivery.attempts)]
        assert gaps[0] >= 20 and gaps[1] >= 40 and gaps[2] >= 80, gaps  # doubling
        assert len(receiver.received("/fail/x")) == 4
        assert (await r.service.status("e", job.id, None)).status is JobStatus.COMPLETED
        await r.stop()

    asyncio.run(main())


def test_deliveries_are_signed_in_the_standard_webhooks_scheme(receiver: Receiver) -> None:
    async def main() -> None:
        settings = FAST.model_copy(update={"webhook_secret": SECRET})
        r = replica(InMemoryJobStore(), Scripted(), settings)
        job = await submit(r, webhook=receiver.url("/ok/signed"), x=1)
        await ended(r, job.id)
        await _received(receiver, "/ok/signed", 1)
        await r.stop()
        return job.id

    job_id = asyncio.run(main())
    ((_, raw, headers),) = receiver.raw
    verified = Webhook(SECRET).verify(raw, headers)
    assert verified["id"] == job_id and verified["status"] == "COMPLETED"
    assert headers["webhook-id"].startswith("msg_")
    with pytest.raises(Exception, match="signature"):
        Webhook(SECRET).verify(raw.replace(b"COMPLETED", b"FAILED"), headers)
    wrong = "whsec_" + base64.b64encode(b"another secret").decode()
    with pytest.raises(Exception, match="signature"):
        Webhook(wrong).verify(raw, headers)


def test_a_delivery_left_by_a_dead_replica_is_sent_by_another(receiver: Receiver) -> None:
    """Finding: pending webhook retries lived in one replica's memory."""
    async def main() -> None:
        store = InMemoryJobStore()
        # The replica that ends the job never gets to deliver: its dispatcher is gone.
        dying = replica(store, Scripted(), start=False)
        job = await submit(dying, webhook=receiver.url("/ok/orphan"))
        await dying.service.cancel("e", job.id, None)
        assert receiver.received("/ok/orphan") == []
        survivor = replica(store, Scripted())
        await _received(receiver, "/ok/orphan", 1)
        assert receiver.received("/ok/orphan")[0]["status"] == "CANCELLED"
        await survivor.stop()
        await dying.deliverer.close()

    asyncio.run(main())


def test_an_unreachable_receiver_never_fails_the_job() -> None:
    async def main() -> None:
        settings = FAST.model_copy(update={"webhook_attempts": 2})
        r = replica(InMemoryJobStore(), Scripted(), settings)
        job = await submit(r, webhook="http://127.0.0.1:9/nothing-listens")
        assert (await ended(r, job.id)).status is JobStatus.COMPLETED

        async def given_up() -> bool:
            (d,) = await r.service.webhook_deliveries("e", job.id, None)
            return d.state is DeliveryState.FAILED

        await until(given_up)
        (delivery,) = await r.service.webhook_deliveries("e", job.id, None)
        assert all(a.status_code is None and "Connect" in a.error for a in delivery.attempts)
        await r.stop()

    asyncio.run(main())
