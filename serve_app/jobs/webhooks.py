"""Webhook delivery when a job ends.

The payload is built apart from sending; delivery errors are logged and counted, never
raised, so an unreachable receiver cannot fail or block a job.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx

from serve_app.jobs.model import Job

logger = logging.getLogger("ray.serve")


def webhook_payload(job: Job) -> dict[str, Any]:
    """RunPod's: the status object plus the job's `input` and `webhook`."""
    return job.status_object() | {"input": job.input, "webhook": job.webhook}


class WebhookSender:
    def __init__(self, attempts: int, retry_delay_s: float, timeout_s: float) -> None:
        self._attempts = attempts
        self._retry_delay_s = retry_delay_s
        self._client = httpx.AsyncClient(timeout=timeout_s)
        self._tasks: set[asyncio.Task] = set()
        #: outcomes, for /health-style inspection and the tests
        self.delivered = 0
        self.failed = 0

    def send(self, job: Job) -> None:
        """Deliver in the background (never awaited by the job's own path)."""
        if not job.webhook:
            return
        task = asyncio.get_running_loop().create_task(self._deliver(job.webhook,
                                                                    webhook_payload(job)))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, url: str, payload: dict[str, Any]) -> None:
        for attempt in range(1, self._attempts + 1):
            try:
                response = await self._client.post(url, json=payload)
                if 200 <= response.status_code < 300:
                    self.delivered += 1
                    logger.info("webhook for job %s delivered to %s (attempt %d)",
                                payload["id"], url, attempt)
                    return
                reason = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                reason = f"{exc.__class__.__name__}: {exc}"
            logger.warning("webhook for job %s to %s failed (attempt %d/%d): %s",
                           payload["id"], url, attempt, self._attempts, reason)
            if attempt < self._attempts:
                await asyncio.sleep(self._retry_delay_s)
        self.failed += 1

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await self._client.aclose()
