"""RunPod's Batch Jobs API under /v2/{endpoint_id}/batch.

A batch's completion webhook is the endpoint's `batch_webhook`, or the batch's own: the
create body is a bare array (RunPod's), so it comes as `POST /batch?webhook=<url>`
(and `&name=`) or later with `PUT /batch/{id}` `{"webhook": <url>}`. Either is checked
against the outbound policy as /run's webhook is.

Answers: 400 for a body that is not what the route takes or a batch past
`max_requests`; 404 for an unknown endpoint, batch or request; 409 for adding to,
removing from or finalizing a batch that is no longer DRAFT; 413 past the body limit;
429 past `max_active` batches of the endpoint that have not ended.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import HttpUrl, ValidationError

from deployments.common.errors import describe_validation
from serve_app.api.deps import Runtime, RuntimeDep, caller, read_json
from serve_app.api.errors import BadRequest
from serve_app.api.jobs import ERRORS, check_webhook
from serve_app.api.keys import Caller
from serve_app.api.schemas import (
    BatchAttributes,
    BatchBody,
    BatchItem,
    BatchRef,
    BatchRequestsBody,
)
from serve_app.jobs.service import Submission

router = APIRouter(prefix="/v2/{endpoint_id}/batch", tags=["batch jobs (RunPod API)"],
                   responses={**ERRORS, 409: ERRORS[400]})

BATCH_ARRAY = 'a JSON array of {"input": {...}} objects'


def _documented_body(schema: dict[str, Any]) -> dict[str, Any]:
    """The request body for the docs: the routes read and check bodies themselves (bounded
    by `read_json`, errors naming the element)."""
    return {"requestBody": {"required": True, "content": {"application/json": {
        "schema": schema}}}}


#: inlined (these models nest none): the docs' components do not hold them
ITEMS = {"type": "array", "items": BatchItem.model_json_schema(), "maxItems": 5000}
APPEND = {"type": "object", "properties": {"requests": ITEMS}, "required": ["requests"],
          "additionalProperties": False}


def parse_items(body: Any, where: str) -> list[dict[str, Any]]:
    """The inputs of `[{"input": {...}}, ...]`; 400 naming the first bad element."""
    if not isinstance(body, list):
        raise BadRequest(f"{where} must be {BATCH_ARRAY}, not {type(body).__name__}"
                         if body is not None else f"{where} must be {BATCH_ARRAY}; got none")
    inputs = []
    for i, item in enumerate(body):
        # The plain checks first: 5,000 good items should not each pass through pydantic.
        if isinstance(item, dict) and item.keys() == {"input"} and isinstance(
                item["input"], dict):
            inputs.append(item["input"])
            continue
        try:
            inputs.append(BatchItem.model_validate(item).input)
        except ValidationError as exc:
            raise BadRequest(f"{where}[{i}]: {describe_validation(exc)}") from None
    return inputs


async def checked_webhook(url: HttpUrl | None, runtime: Runtime) -> str | None:
    """The webhook URL, refused (400) where the outbound policy would not deliver."""
    if url is None:
        return None
    await check_webhook(Submission(input={}, webhook=str(url)), runtime.outbound)
    return str(url)


Limit = Annotated[int, Query(ge=1, le=1000)]


@router.post("", response_model=BatchRef, openapi_extra=_documented_body(ITEMS),
             summary="Create a DRAFT batch from an array of requests (may be empty)")
async def create(endpoint_id: str, request: Request, runtime: RuntimeDep,
                 who: Annotated[Caller, caller("run")],
                 webhook: Annotated[HttpUrl | None, Query(
                     description="POSTed the batch object when the batch ends")] = None,
                 name: Annotated[str | None, Query(max_length=256)] = None) -> dict[str, Any]:
    service = runtime.batches
    service.endpoint(endpoint_id)  # an unknown endpoint before reading megabytes
    limit = runtime.settings.batches.body_limit_bytes
    inputs = parse_items(await read_json(request, limit), "request body")
    batch = await service.create(endpoint_id, inputs, who.key_id, name,
                                 await checked_webhook(webhook, runtime))
    return {"id": batch.id, "status": batch.status.value}


@router.get("", response_model=list[BatchBody], summary="The endpoint's batches, newest first")
async def list_batches(endpoint_id: str, runtime: RuntimeDep,
                       who: Annotated[Caller, caller("other")],
                       limit: Limit = 100) -> list[dict[str, Any]]:
    return [b.summary() for b in await runtime.batches.list(endpoint_id, who.scope, limit)]


@router.get("/{batch_id}", response_model=BatchBody, summary="A batch and its counts")
async def get(endpoint_id: str, batch_id: str, runtime: RuntimeDep,
              who: Annotated[Caller, caller("other")]) -> dict[str, Any]:
    return (await runtime.batches.get(endpoint_id, batch_id, who.scope)).summary()


@router.put("/{batch_id}", response_model=BatchBody,
            openapi_extra=_documented_body(BatchAttributes.model_json_schema()),
            summary="Set a batch's attributes: `name`, `webhook`")
async def update(endpoint_id: str, batch_id: str, request: Request, runtime: RuntimeDep,
                 who: Annotated[Caller, caller("other")]) -> dict[str, Any]:
    raw = await read_json(request, runtime.settings.batches.body_limit_bytes)
    if not isinstance(raw, dict):
        raise BadRequest('request body must be a JSON object of attributes, e.g. {"name": ...}')
    try:
        attributes = BatchAttributes.model_validate(raw)
    except ValidationError as exc:
        raise BadRequest(f"invalid attributes: {describe_validation(exc)}") from None
    changes = attributes.model_dump(include=attributes.model_fields_set)
    if "webhook" in changes:
        changes["webhook"] = await checked_webhook(attributes.webhook, runtime)
    return (await runtime.batches.update(endpoint_id, batch_id, who.scope, changes)).summary()


@router.post("/{batch_id}/requests", response_model=BatchBody,
             openapi_extra=_documented_body(APPEND),
             summary="Add requests to a DRAFT batch")
async def add(endpoint_id: str, batch_id: str, request: Request, runtime: RuntimeDep,
              who: Annotated[Caller, caller("run")]) -> dict[str, Any]:
    service = runtime.batches
    await service.get(endpoint_id, batch_id, who.scope)  # an unknown batch before the body
    raw = await read_json(request, runtime.settings.batches.body_limit_bytes)
    if not isinstance(raw, dict) or "requests" not in raw:
        raise BadRequest(f'request body must be {{"requests": {BATCH_ARRAY}}}')
    if extra := set(raw) - {"requests"}:
        raise BadRequest(f"request body has unknown fields {sorted(extra)}")
    inputs = parse_items(raw["requests"], "requests")
    return (await service.add(endpoint_id, batch_id, who.scope, inputs)).summary()


@router.delete("/{batch_id}/requests/{request_id}", response_model=BatchBody,
               summary="Remove a request from a DRAFT batch")
async def remove(endpoint_id: str, batch_id: str, request_id: str, runtime: RuntimeDep,
                 who: Annotated[Caller, caller("other")]) -> dict[str, Any]:
    batch = await runtime.batches.remove(endpoint_id, batch_id, request_id, who.scope)
    return batch.summary()


@router.get("/{batch_id}/requests", response_model=BatchRequestsBody,
            response_model_exclude_unset=True,
            summary="A page of a batch's requests, in the order they were added")
async def requests(endpoint_id: str, batch_id: str, runtime: RuntimeDep,
                   who: Annotated[Caller, caller("other")],
                   offset: Annotated[int, Query(ge=0, le=2**31)] = 0,
                   limit: Limit = 100) -> dict[str, Any]:
    page, total = await runtime.batches.requests(endpoint_id, batch_id, who.scope, offset,
                                                  limit)
    return {"requests": [r.as_dict() for r in page], "total": total, "offset": offset,
            "limit": limit, "hasMore": offset + len(page) < total}


@router.post("/{batch_id}/finalize", response_model=BatchBody,
             summary="Lock a DRAFT batch and run its requests")
async def finalize(endpoint_id: str, batch_id: str, runtime: RuntimeDep,
                   who: Annotated[Caller, caller("other")]) -> dict[str, Any]:
    return (await runtime.batches.finalize(endpoint_id, batch_id, who.scope)).summary()


@router.post("/{batch_id}/cancel", response_model=BatchBody,
             summary="Cancel queued requests at once; the batch ends CANCELLED once running "
             "ones finish")
async def cancel(endpoint_id: str, batch_id: str, runtime: RuntimeDep,
                 who: Annotated[Caller, caller("other")]) -> dict[str, Any]:
    return (await runtime.batches.cancel(endpoint_id, batch_id, who.scope)).summary()
