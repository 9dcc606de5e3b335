"""Queue-driven autoscaling: a Ray Serve autoscaling policy that sizes a model
deployment by the job queue of the endpoints that use it.

Configured per deployment in the config's `deployments:` section:

    - name: PDSegmenter
      autoscaling_config:
        min_replicas: 0          # 0: scale to zero when no job waits or runs
        max_replicas: 4
        downscale_delay_s: 30
        policy:
          policy_function: serve_app.autoscaling:QueueDepthPolicy
          policy_kwargs: {store_url: "sqlite:///.serve_jobs/jobs.sqlite3",
                          endpoints: [pd-segmentation], jobs_per_replica: 16}

Replicas wanted = ceil(jobs waiting or running / jobs_per_replica), or the requests the
deployment's handles hold (direct routes), whichever is larger. Jobs queued with
`policy.lowPriority` never call for a replica (RunPod's rule): they only keep the
replicas that exist from scaling down while they wait. Fewer replicas are asked for only
once the lower need has lasted `downscale_delay_s`. Serve keeps the answer between
`min_replicas` and `max_replicas`.

The policy runs in Serve's controller. It reads the store once per `poll_interval_s` in
a one-shot task (never blocking the controller's loop) and decides on the last reading.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import Any

from ray.serve.config import AutoscalingContext

from serve_app.jobs.model import Workload
from serve_app.jobs.store import JobStore
from serve_app.jobs.stores import open_store

logger = logging.getLogger("ray.serve")


def replicas_for(workload: Workload, handle_requests: float, per_replica: float,
                 current: int) -> int:
    """Replicas the jobs (and direct requests) call for, before any delay or bounds."""
    wanted = math.ceil(max(workload.queued + workload.running, handle_requests) / per_replica)
    with_low = math.ceil((workload.queued + workload.queued_low_priority + workload.running)
                         / per_replica)
    # Low-priority work may use the replicas that exist, never add one.
    return max(wanted, min(current, with_low))


class QueueDepthPolicy:
    def __init__(self, store_url: str, endpoints: list[str],
                 jobs_per_replica: float | None = None, poll_interval_s: float = 1.0) -> None:
        self._store_url = store_url
        self._endpoints = list(endpoints)
        self._per_replica = jobs_per_replica
        self._poll_interval_s = poll_interval_s
        self._store: JobStore | None = None
        self._task: asyncio.Task | None = None
        self._polled_at = 0.0
        self._workload = Workload()
        #: when the need first fell below the replicas there are (None: it did not)
        self._lower_since: float | None = None

    async def _poll(self) -> None:
        try:
            if self._store is None:
                self._store = open_store(self._store_url)
            self._workload = await self._store.workload(self._endpoints)
        except Exception:  # noqa: BLE001 - keep the last reading; log and try again
            logger.exception("reading the job queue for autoscaling failed")

    def __call__(self, ctx: AutoscalingContext) -> tuple[int, dict[str, Any]]:
        now = time.monotonic()
        if (self._task is None or self._task.done()) and \
                now - self._polled_at >= self._poll_interval_s:
            self._polled_at = now
            self._task = asyncio.get_running_loop().create_task(self._poll())
        per_replica = self._per_replica or ctx.config.get_target_ongoing_requests()
        current = ctx.current_num_replicas
        wanted = replicas_for(self._workload, ctx.total_num_requests, per_replica, current)
        if wanted >= current:
            self._lower_since = None
        else:
            self._lower_since = self._lower_since or now
            if now - self._lower_since < ctx.config.downscale_delay_s:
                wanted = current
        w = self._workload
        return wanted, {"queued": w.queued, "queued_low_priority": w.queued_low_priority,
                        "running": w.running}
