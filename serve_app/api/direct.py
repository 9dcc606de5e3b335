"""Plain synchronous routes (`POST /<route>`): the endpoint's input in, its output out,
with no job record. Endpoints may also offer `POST /<route>/html` and
`GET /<route>/healthz` (see EndpointSpec)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from serve_app.api.deps import Runtime, RuntimeDep, caller, read_json
from serve_app.api.errors import ApiError, BadRequest
from serve_app.api.schemas import ErrorBody
from serve_app.catalog import description
from serve_app.jobs.endpoints import Endpoint
from serve_app.jobs.errors import UnknownEndpoint

router = APIRouter(tags=["direct"],
                   responses={c: {"model": ErrorBody} for c in (400, 401, 404, 413, 429, 504)})
#: each direct call is counted against the caller's `direct` rate; other routes `other`
Direct = Annotated[object, caller("direct")]
Other = Annotated[object, caller("other")]

#: a direct call waits at most this long; longer work belongs on /run
DIRECT_TIMEOUT_S = 300.0

T = TypeVar("T")


@router.get("/endpoints", summary="Served endpoints: routes, input and output JSON Schemas, "
            "a working example input, and which fields take file contents")
async def endpoints(runtime: RuntimeDep, _: Other) -> dict[str, Any]:
    return {name: {"route": f"/{e.spec.route}" if e.spec.route else None,
                   "jobs": f"/v2/{name}/run", **description(name)}
            for name, e in runtime.endpoints.items()}


def _endpoint(runtime: Runtime, route: str, feature: str | None = None) -> Endpoint:
    endpoint = next((e for e in runtime.endpoints.values() if e.spec.route == route), None)
    if endpoint is None or (feature and not getattr(endpoint.spec, feature)):
        suffix = f"/{feature}" if feature else ""
        raise UnknownEndpoint(f"no route /{route}{suffix}; see GET /endpoints")
    return endpoint


async def _job(request: Request, runtime: Runtime) -> dict[str, Any]:
    body = await read_json(request, runtime.settings.runsync_body_limit_bytes)
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object (the endpoint's input)")
    return {"id": f"direct-{uuid.uuid4()}", "input": body}


async def _answer(endpoint: Endpoint, work: Awaitable[T]) -> T:
    try:
        return await asyncio.wait_for(work, DIRECT_TIMEOUT_S)
    except asyncio.TimeoutError as exc:
        raise ApiError(f"no answer within {DIRECT_TIMEOUT_S:.0f} s; submit long work to "
                       f"/v2/{endpoint.id}/run", status_code=504) from exc


@router.post("/{route}", summary="Run an endpoint directly (see GET /endpoints)")
async def direct(route: str, request: Request, runtime: RuntimeDep, _: Direct) -> Any:
    endpoint = _endpoint(runtime, route)
    return await _answer(endpoint, endpoint.caller.call(await _job(request, runtime)))


#: the page is HTML, but its errors are JSON like every other route's
JSON_ERRORS = {c: {"description": "the problem, in `error`", "content": {"application/json": {
    "schema": {"$ref": "#/components/schemas/ErrorBody"}}}} for c in (400, 401, 404, 413, 429, 504)}


@router.post("/{route}/html", response_class=HTMLResponse, responses=JSON_ERRORS,
             summary="The endpoint's result as an HTML page with plots")
async def html(route: str, request: Request, runtime: RuntimeDep, _: Direct) -> HTMLResponse:
    endpoint = _endpoint(runtime, route, "html")
    job = await _job(request, runtime)
    return HTMLResponse(await _answer(endpoint, endpoint.caller.method("render_html", job)))


@router.get("/{route}/healthz", summary="The endpoint's model health")
async def healthz(route: str, runtime: RuntimeDep, _: Other) -> Any:
    endpoint = _endpoint(runtime, route, "healthz")
    return await _answer(endpoint, endpoint.caller.method("healthz"))
