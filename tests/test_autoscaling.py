"""The queue-driven autoscaling policy, on a real SQLite job store and Serve's own
AutoscalingContext: scale from zero on queued jobs, never for low-priority ones, down only
after the delay."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from ray.serve.config import AutoscalingConfig, AutoscalingContext

from serve_app.autoscaling import QueueDepthPolicy, replicas_for
from serve_app.jobs.model import NewJob, Workload
from serve_app.jobs.stores import open_store


def ctx(current: int, handle_requests: float = 0, downscale_delay_s: float = 0.2
        ) -> AutoscalingContext:
    config = AutoscalingConfig(min_replicas=0, max_replicas=8, target_ongoing_requests=4,
                               downscale_delay_s=downscale_delay_s)
    return AutoscalingContext(
        deployment_id=None, deployment_name="PDSegmenter", app_name="models",
        current_num_replicas=current, target_num_replicas=current, running_replicas=[],
        total_num_requests=handle_requests, total_queued_requests=0, aggregated_metrics={},
        raw_metrics={}, capacity_adjusted_min_replicas=0, capacity_adjusted_max_replicas=8,
        policy_state={}, last_scale_up_time=None, last_scale_down_time=None,
        current_time=None, config=config)


def test_replicas_follow_jobs_and_ignore_low_priority() -> None:
    assert replicas_for(Workload(queued=9), 0, 4, current=0) == 3
    assert replicas_for(Workload(queued=1, running=2), 0, 4, current=0) == 1
    assert replicas_for(Workload(), 13, 4, current=1) == 4  # direct calls count too
    assert replicas_for(Workload(queued_low_priority=50), 0, 4, current=0) == 0
    assert replicas_for(Workload(queued_low_priority=50), 0, 4, current=3) == 3
    assert replicas_for(Workload(queued=4, queued_low_priority=50), 0, 4, current=0) == 1


async def _reading(policy: QueueDepthPolicy, context: AutoscalingContext,
                   done: Callable[[dict], bool]) -> dict:
    """Call the policy until its reading of the store satisfies `done` (5 s at most)."""
    deadline = time.monotonic() + 5
    while not done(state := policy(context)[1]):
        assert time.monotonic() < deadline, state
        await asyncio.sleep(0.01)
    return state


def test_the_policy_reads_the_queue_and_scales_down_after_the_delay(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/jobs.sqlite3"

    async def main() -> list[int]:
        store = open_store(url)
        for i in range(10):
            await store.create(NewJob(id=f"j{i}", endpoint="pd", input={}, ttl_ms=60_000,
                                      execution_timeout_ms=60_000, retention_ms=60_000,
                                      low_priority=i >= 6), 100)
        await store.create(NewJob(id="other", endpoint="ipa", input={}, ttl_ms=60_000,
                                  execution_timeout_ms=60_000, retention_ms=60_000), 100)
        policy = QueueDepthPolicy(url, ["pd"], poll_interval_s=0.01)
        seen = [policy(ctx(0))[0]]  # before the first reading: nothing known
        state = await _reading(policy, ctx(0), lambda s: s["queued"] == 6)
        assert state == {"queued": 6, "queued_low_priority": 4, "running": 0}
        seen.append(policy(ctx(0))[0])
        await store.purge_queue("pd")
        drained = ctx(2, downscale_delay_s=0.5)
        await _reading(policy, drained, lambda s: s["queued"] == 0)
        lower_since = time.monotonic()
        seen.append(policy(drained)[0])  # the queue drained: down only after the delay
        await asyncio.sleep(max(0.0, 0.55 - (time.monotonic() - lower_since)))
        seen.append(policy(drained)[0])
        await store.close()
        return seen

    assert asyncio.run(main()) == [0, 2, 2, 0]
