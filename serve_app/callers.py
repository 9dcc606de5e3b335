"""The job layer's way to a Ray Serve deployment: its handle's `run` method, with Ray's
failures translated into the job layer's two kinds (see `serve_app.jobs.errors`).

Only an input error's own message reaches the caller (a RunPod handler's exceptions
arrive as error events, with their own message, not here). Ray's errors carry remote
tracebacks and node addresses, and a model's internal failure is not the caller's to
read: those are logged under a reference that the caller's message names."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable
from typing import Any, NoReturn, TypeVar

from ray import exceptions as ray_errors
from ray.serve import exceptions as serve_errors
from ray.serve.handle import DeploymentHandle

from deployments.common.errors import cause_chain, input_error_in
from serve_app.jobs.errors import JobFailed, WorkerLost, logged_internal_error
from serve_app.jobs.metrics import JobMetrics

T = TypeVar("T")

#: what Ray raises when the process, node or deployment running a request went away:
#: the request did not fail, it was lost, and running it again is right
INFRASTRUCTURE_ERRORS: tuple[type[BaseException], ...] = (
    ray_errors.RayActorError,  # ActorDiedError, ActorUnavailableError
    ray_errors.NodeDiedError,
    ray_errors.WorkerCrashedError,
    ray_errors.LocalRayletDiedError,
    ray_errors.OutOfMemoryError,
    ray_errors.ObjectLostError,
    ray_errors.OwnerDiedError,
    ray_errors.RaySystemError,
    ray_errors.TaskUnschedulableError,
    ray_errors.ActorUnschedulableError,
    serve_errors.DeploymentUnavailableError,
    serve_errors.ReplicaUnavailableError,
    serve_errors.BackPressureError,
)


def translate(exc: Exception) -> NoReturn:
    """Raise what the job layer understands for an exception from a handle call."""
    if any(isinstance(e, INFRASTRUCTURE_ERRORS) for e in cause_chain(exc)):
        raise WorkerLost(logged_internal_error("the worker of a request was lost", exc,
                                               label="worker lost")) from exc
    if (error := input_error_in(exc)) is not None:
        raise JobFailed(str(error), error.kind.value) from None
    raise JobFailed(logged_internal_error("a request failed in its deployment", exc)) from exc


class HandleCaller:
    def __init__(self, handle: DeploymentHandle, metrics: JobMetrics | None = None) -> None:
        self._handle = handle
        self._metrics = metrics or JobMetrics()

    async def call(self, job: dict[str, Any]) -> Any:
        started = time.perf_counter()
        response = self._handle.run.remote(job)
        try:
            return await _awaited(response, response.cancel)
        finally:
            self._metrics.stage("call", time.perf_counter() - started)

    async def method(self, name: str, *args: Any) -> Any:
        """Another method of the endpoint's deployment (e.g. `healthz`, `render_html`)."""
        response = getattr(self._handle, name).remote(*args)
        return await _awaited(response, response.cancel)

    async def stream(self, job: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        events = self._handle.options(stream=True).run.remote(job)
        try:
            async for event in events:
                yield event
        except asyncio.CancelledError:
            events.cancel()
            raise
        except Exception as exc:
            translate(exc)


async def _awaited(response: Awaitable[T], cancel: Any) -> T:
    try:
        return await response
    except asyncio.CancelledError:
        # Reaches the replica as a CancelledError inside the running method.
        cancel()
        raise
    except Exception as exc:
        translate(exc)
