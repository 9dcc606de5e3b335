"""The dispatcher's way to an endpoint: a Serve deployment handle's `run` method."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from ray.serve.handle import DeploymentHandle


class HandleCaller:
    def __init__(self, handle: DeploymentHandle) -> None:
        self._handle = handle

    async def call(self, job: dict[str, Any]) -> Any:
        response = self._handle.run.remote(job)
        try:
            return await response
        except asyncio.CancelledError:
            # Reaches the replica as a CancelledError inside the running method.
            response.cancel()
            raise

    async def method(self, name: str, *args: Any) -> Any:
        """Another method of the endpoint's deployment (e.g. `healthz`, `render_html`)."""
        return await getattr(self._handle, name).remote(*args)

    async def stream(self, job: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        events = self._handle.options(stream=True).run.remote(job)
        try:
            async for event in events:
                yield event
        except asyncio.CancelledError:
            events.cancel()
            raise
