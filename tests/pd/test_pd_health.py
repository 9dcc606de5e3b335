"""Serve replaces a segmenter replica whose device stopped answering, found by the
deployment's own `check_health`, while jobs keep completing on the other replica.

Two real PDSegmenter replicas (the shipped class; the subclass only adds a way to make
one replica's model fail as a lost CUDA device does) behind the real PDPipeline.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import numpy as np
import pytest
from ray import serve
from ray.serve.handle import DeploymentHandle

from deployments.pd.config import PDArgs
from deployments.pd.deployment import PDPipeline, PDSegmenter

APP = "pd-health"
DEVICE_ERROR = "CUDA error: an illegal memory access was encountered"
REPLACED_WITHIN_S = 60


class BreakableSegmenter(PDSegmenter.func_or_class):
    def break_device(self) -> str:
        """From now on every forward fails, as on a GPU that hit a fatal error."""
        def lost(windows: np.ndarray) -> np.ndarray:
            raise RuntimeError(DEVICE_ERROR)

        self.model.predict_windows = lost
        return self.replica_id()

    def replica_id(self) -> str:
        return serve.get_replica_context().replica_id.unique_id


@pytest.fixture(scope="module")
def app(serve_port: int) -> Iterator[DeploymentHandle]:
    args = PDArgs()
    segmenter = serve.deployment(BreakableSegmenter).options(
        name="PDSegmenter", num_replicas=2, health_check_period_s=1,
        health_check_timeout_s=10, max_ongoing_requests=4096,
        ray_actor_options={"num_cpus": 0.1},
        user_config=args.segmenter_user_config(),
    ).bind(args.weights_uri, "cpu", None)
    yield serve.run(PDPipeline.bind(segmenter, args), name=APP, route_prefix=None)
    serve.delete(APP)


async def replica_ids(segmenter: DeploymentHandle, calls: int = 24) -> set[str]:
    return set(await asyncio.gather(*(segmenter.replica_id.remote() for _ in range(calls))))


def signal(seed: int) -> list[float]:
    return np.random.default_rng(seed).normal(size=2048).tolist()


def test_an_unhealthy_replica_is_replaced_while_jobs_complete(app: DeploymentHandle) -> None:
    asyncio.run(break_one_replica_under_load(app))


async def break_one_replica_under_load(app: DeploymentHandle) -> None:
    segmenter = serve.get_deployment_handle("PDSegmenter", app_name=APP)
    before = await replica_ids(segmenter)
    assert len(before) == 2, before
    outcomes: list[tuple[float, str]] = []  # (time, "ok" or the error)
    stop = asyncio.Event()

    async def submit_jobs() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            try:
                report = await app.run.remote({"id": f"job-{n}", "input": {"signals": signal(n)}})
                assert report["total_samples_processed"] == 1
                outcomes.append((time.monotonic(), "ok"))
            except Exception as exc:  # noqa: BLE001 - the test tallies every failure
                outcomes.append((time.monotonic(), str(exc)))
            await asyncio.sleep(0.05)

    load = asyncio.create_task(submit_jobs())
    await asyncio.sleep(2)
    broken = await segmenter.break_device.remote()
    broken_at = time.monotonic()
    deadline = broken_at + REPLACED_WITHIN_S
    while True:
        ids = await replica_ids(segmenter)
        if broken not in ids and len(ids) == 2:
            break
        assert time.monotonic() < deadline, f"replica {broken} still serving after " \
                                            f"{REPLACED_WITHIN_S} s: {ids}"
        await asyncio.sleep(0.5)
    replaced_at = time.monotonic()
    assert ids - before, "no new replica took the broken one's place"
    await asyncio.sleep(3)
    stop.set()
    await load

    failures = [error for _, error in outcomes if error != "ok"]
    assert all(DEVICE_ERROR in error for error in failures), failures[:3]
    # The healthy replica kept serving while the broken one was still being found ...
    assert any(t > broken_at and e == "ok" for t, e in outcomes if t < replaced_at)
    # ... and once it was replaced, every job completed.
    after = [e for t, e in outcomes if t > replaced_at + 0.5]
    assert len(after) >= 10 and set(after) == {"ok"}, after[:5]
