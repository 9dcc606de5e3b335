"""Request dependencies: the runtime, the caller (API key, rate limit), bounded JSON bodies."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request

from serve_app.api.errors import BadRequest, PayloadTooLarge, Unauthorized
from serve_app.api.keys import Caller, KeyRing
from serve_app.api.ratelimit import RateLimiter
from serve_app.jobs.endpoints import Endpoint
from serve_app.jobs.service import JobService
from serve_app.jobs.settings import JobSettings


@dataclass
class Runtime:
    """What the routes need, built once per ingress replica."""

    service: JobService
    endpoints: dict[str, Endpoint]
    settings: JobSettings
    keys: KeyRing
    limiter: RateLimiter


_runtime: Runtime | None = None


def install_runtime(runtime: Runtime) -> None:
    """Called once by the ingress replica. A module global rather than `app.state`:
    Serve runs a deserialized copy of the FastAPI app, not the object defined here."""
    global _runtime
    _runtime = runtime


def current_runtime() -> Runtime:
    if _runtime is None:
        raise RuntimeError("the ingress has not finished starting")
    return _runtime


async def get_runtime() -> Runtime:
    return current_runtime()


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def caller(route_class: str) -> Any:
    """A dependency: the authenticated caller, counted against `route_class`'s rate."""

    async def identify(request: Request, runtime: RuntimeDep) -> Caller:
        address = request.client.host if request.client else "unknown"
        found = runtime.keys.identify(request.headers.get("authorization", ""), address)
        if found is None:
            raise Unauthorized("missing or invalid API key (Authorization: Bearer <key>)")
        runtime.limiter.check(route_class, found.limiter_id)
        return found

    return Depends(identify)


async def read_json(request: Request, limit_bytes: int) -> Any:
    """The body parsed as JSON, refused with 413 as soon as it passes `limit_bytes`."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit_bytes:
        raise PayloadTooLarge(f"request body of {declared} bytes exceeds the limit of "
                              f"{limit_bytes} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit_bytes:
            raise PayloadTooLarge(f"request body exceeds the limit of {limit_bytes} bytes")
    if not body.strip():
        return None
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from exc
