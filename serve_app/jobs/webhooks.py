"""Webhook delivery from the store's outbox.

A job's end writes its delivery in the same transaction (see `JobStore`); any replica's
dispatcher then claims due deliveries and POSTs them, so a delivery survives the crash
of the replica that ended the job. Each attempt is recorded; failures back off and are
never raised: an unreachable receiver cannot fail or block a job. With a secret set,
each delivery is signed in the Standard Webhooks scheme.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime, timezone

import httpx
from standardwebhooks.webhooks import Webhook

from serve_app.jobs.metrics import JobMetrics
from serve_app.jobs.model import Attempt, Clock, Delivery
from serve_app.jobs.settings import JobSettings
from serve_app.jobs.store import JobStore

logger = logging.getLogger("ray.serve")

#: deliveries attempted at once by one replica
BATCH = 32


def signed_headers(secret: str, delivery_id: str, at_ms: int, body: bytes) -> dict[str, str]:
    """Standard Webhooks headers: the receiver verifies `v1,<base64 HMAC-SHA256 of
    id.timestamp.body>` with the shared secret."""
    timestamp = datetime.fromtimestamp(at_ms // 1000, tz=timezone.utc)
    return {"webhook-id": delivery_id, "webhook-timestamp": str(at_ms // 1000),
            "webhook-signature": Webhook(secret).sign(delivery_id, timestamp, body)}


class WebhookDeliverer:
    def __init__(self, store: JobStore, settings: JobSettings, clock: Clock,
                 client: httpx.AsyncClient | None = None,
                 metrics: JobMetrics | None = None) -> None:
        self._store = store
        self._metrics = metrics or JobMetrics()
        self._settings = settings
        self._clock = clock
        self._client = client or httpx.AsyncClient(timeout=settings.webhook_timeout_s)
        #: a claimed delivery is not attempted elsewhere for this long
        self._claim_ms = int((2 * settings.webhook_timeout_s + 5) * 1000)

    async def deliver_due(self) -> int:
        """Attempt every due delivery (a batch at a time); return how many were tried."""
        tried = 0
        while deliveries := await self._store.claim_deliveries(BATCH, self._claim_ms):
            await asyncio.gather(*(self._attempt(d) for d in deliveries))
            tried += len(deliveries)
        return tried

    def _next_attempt_at(self, attempts_made: int) -> int | None:
        s = self._settings
        if attempts_made >= s.webhook_attempts:
            return None
        delay_s = min(s.webhook_retry_max_delay_s,
                      s.webhook_retry_delay_s * 2 ** (attempts_made - 1))
        return self._clock() + int(delay_s * 1000)

    async def _attempt(self, delivery: Delivery) -> None:
        body = json.dumps(delivery.payload).encode()
        started = self._clock()
        headers = {"content-type": "application/json"}
        if self._settings.webhook_secret:
            headers |= signed_headers(self._settings.webhook_secret, delivery.id, started, body)
        status_code: int | None = None
        error: str | None = None
        try:
            response = await self._client.post(delivery.url, content=body, headers=headers)
            status_code = response.status_code
            if not 200 <= status_code < 300:
                error = f"HTTP {status_code}"
        except httpx.HTTPError as exc:
            error = f"{exc.__class__.__name__}: {exc}"
        attempt = Attempt(at=started, status_code=status_code, error=error,
                          duration_ms=self._clock() - started)
        made = len(delivery.attempts) + 1
        next_at = None if error is None else self._next_attempt_at(made)
        await self._store.record_attempt(delivery.id, attempt, error is None, next_at)
        self._metrics.webhook_attempt(delivery.endpoint, "delivered" if error is None
                                      else "retrying" if next_at else "failed")
        if error is None:
            logger.info("webhook %s for job %s delivered (attempt %d)", delivery.id,
                        delivery.job_id, made)
        else:
            logger.warning("webhook %s for job %s to %s failed (attempt %d/%d): %s%s",
                           delivery.id, delivery.job_id, delivery.url, made,
                           self._settings.webhook_attempts, error,
                           "" if next_at else "; giving up")

    async def close(self) -> None:
        await self._client.aclose()
