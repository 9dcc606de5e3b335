"""How the job layer reaches an endpoint, knowing nothing of what it serves or runs on."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

from serve_app.jobs.model import Job
from serve_app.jobs.settings import EndpointSpec


class EndpointCaller(Protocol):
    """Runs a job somewhere. A run that fails raises `JobFailed` (the job's own fault:
    it ends FAILED) or `WorkerLost` (the infrastructure's: it is queued again); the
    caller translates whatever its backend raises into one of the two."""

    async def call(self, job: dict[str, Any]) -> Any:
        """Run a unary job and return its output."""

    async def method(self, name: str, *args: Any) -> Any:
        """Call another method of the endpoint (direct routes only)."""

    def stream(self, job: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """Run a job that reports events: {"progress": x}, {"chunk": x}, {"output": x}
        or {"error": message}."""


@dataclass(frozen=True)
class Endpoint:
    id: str
    spec: EndpointSpec
    caller: EndpointCaller
    #: the endpoint reports events (RunPod handlers: progress, streamed chunks)
    events: bool = False


def job_payload(job: Job) -> dict[str, Any]:
    """What an endpoint receives: RunPod's job shape."""
    payload: dict[str, Any] = {"id": job.id, "input": job.input}
    if job.s3_config:
        payload["s3Config"] = job.s3_config
    return payload
