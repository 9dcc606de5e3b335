"""Plain synchronous routes (`POST /<route>`): the endpoint's input in, its output out,
with no job record."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from fastapi import APIRouter, Depends, Request

from deployments.common.errors import InputError
from serve_app.api.deps import RuntimeDep, read_json, require_api_key
from serve_app.api.errors import ApiError, BadRequest
from serve_app.api.schemas import ErrorBody
from serve_app.jobs.service import UnknownEndpoint

router = APIRouter(tags=["direct"], dependencies=[Depends(require_api_key)],
                   responses={c: {"model": ErrorBody} for c in (400, 401, 404, 413, 504)})

#: a direct call waits at most this long; longer work belongs on /run
DIRECT_TIMEOUT_S = 300.0


@router.get("/endpoints", summary="Served endpoints and their direct routes")
async def endpoints(runtime: RuntimeDep) -> dict[str, Any]:
    return {name: {"route": f"/{e.spec.route}" if e.spec.route else None,
                   "jobs": f"/v2/{name}/run"}
            for name, e in runtime.endpoints.items()}


@router.post("/{route}", summary="Run an endpoint directly (see GET /endpoints)")
async def direct(route: str, request: Request, runtime: RuntimeDep) -> Any:
    endpoint = next((e for e in runtime.endpoints.values() if e.spec.route == route), None)
    if endpoint is None:
        raise UnknownEndpoint(f"no route /{route}; see GET /endpoints")
    body = await read_json(request, runtime.settings.runsync_body_limit_bytes)
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object (the endpoint's input)")
    job = {"id": f"direct-{uuid.uuid4()}", "input": body}
    try:
        return await asyncio.wait_for(endpoint.caller.call(job), DIRECT_TIMEOUT_S)
    except asyncio.TimeoutError as exc:
        raise ApiError(f"no answer within {DIRECT_TIMEOUT_S:.0f} s; submit long work to "
                       f"/v2/{endpoint.id}/run", status_code=504) from exc
    except InputError as exc:
        cause = getattr(exc, "cause", exc)  # unwrap Ray's RayTaskError
        raise InputError(str(cause), getattr(cause, "status_code", 400)) from None
