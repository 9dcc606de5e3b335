"""RunPod's serverless queue API under /v2/{endpoint_id}."""

from __future__ import annotations

import base64
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import ValidationError

from deployments.common.errors import InputError, describe_validation
from deployments.common.outbound import OutboundPolicy, check_url_async
from serve_app.api.deps import Runtime, RuntimeDep, caller, read_json
from serve_app.api.errors import BadRequest
from serve_app.api.keys import Caller
from serve_app.api.schemas import (
    ErrorBody,
    HealthBody,
    JobListBody,
    JobRef,
    JobState,
    JobStatusBody,
    PurgeBody,
    RunRequest,
    StreamBody,
    WebhookDeliveryBody,
)
from serve_app.jobs.model import Job, JobQuery, JobStatus
from serve_app.jobs.service import Submission
from serve_app.jobs.settings import JobSettings

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (400, 401, 404, 413, 429)
}
RUN_BODY = {"requestBody": {"content": {"application/json": {
    "schema": RunRequest.model_json_schema(ref_template="#/components/schemas/{model}")}}}}

router = APIRouter(prefix="/v2/{endpoint_id}", tags=["jobs (RunPod API)"], responses=ERRORS)

#: a `wait` query parameter in ms; longer waits are clamped to the configured maximum
WaitMs = Annotated[int | None, Query(ge=0, le=2**31)]


def _in_range(name: str, value: int | None, low: int, high: int) -> int | None:
    if value is not None and not low <= value <= high:
        raise BadRequest(f"{name} must be between {low} and {high} ms, got {value}")
    return value


def parse_submission(body: Any, settings: JobSettings, owner: str | None) -> Submission:
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object with an 'input' object")
    if "input" not in body:
        raise BadRequest("request body has no 'input'")
    if not isinstance(body["input"], dict):
        raise BadRequest(f"'input' must be a JSON object, not {type(body['input']).__name__}")
    try:
        request = RunRequest.model_validate(body)
    except ValidationError as exc:
        raise BadRequest(f"invalid request: {describe_validation(exc)}") from exc
    policy, limits = request.policy, settings.policy
    return Submission(
        input=request.input,
        webhook=str(request.webhook) if request.webhook else None,
        execution_timeout_ms=_in_range("policy.executionTimeout",
                                       policy and policy.executionTimeout,
                                       limits.execution_timeout_min_ms,
                                       limits.execution_timeout_max_ms),
        ttl_ms=_in_range("policy.ttl", policy and policy.ttl, limits.ttl_min_ms, limits.ttl_max_ms),
        low_priority=bool(policy and policy.lowPriority),
        s3_config=request.s3Config.model_dump() if request.s3Config else None,
        owner=owner,
    )


async def check_webhook(submission: Submission, policy: OutboundPolicy) -> None:
    """Refuse a webhook the outbound policy would not deliver to (delivery checks again)."""
    if submission.webhook:
        try:
            await check_url_async(submission.webhook, policy)
        except InputError as exc:
            raise BadRequest(f"webhook {exc}") from None


async def read_submission(request: Request, runtime: Runtime, who: Caller,
                          limit_bytes: int) -> Submission:
    """The body of `/run` or `/runsync`, validated, its webhook checked, owned by `who`."""
    body = await read_json(request, limit_bytes)
    submission = parse_submission(body, runtime.settings, who.key_id)
    await check_webhook(submission, runtime.outbound)
    return submission


def clamp_wait(wait: int | None, default: int, low: int, high: int) -> int:
    return default if wait is None else max(low, min(high, wait))


@router.post("/run", response_model=JobRef, openapi_extra=RUN_BODY,
             summary="Queue a job")
async def run(endpoint_id: str, request: Request, runtime: RuntimeDep,
              who: Annotated[Caller, caller("run")]) -> dict[str, Any]:
    submission = await read_submission(request, runtime, who,
                                       runtime.settings.run_body_limit_bytes)
    job = await runtime.service.submit(endpoint_id, submission, sync=False)
    # RunPod's answer: accepted into the queue, even when this replica claimed it at once
    # (its first /status says IN_PROGRESS).
    return {"id": job.id, "status": JobStatus.IN_QUEUE.value}


@router.post("/runsync", response_model=JobStatusBody, response_model_exclude_unset=True,
             openapi_extra=RUN_BODY, summary="Run a job and wait for it (up to `wait` ms)")
async def runsync(endpoint_id: str, request: Request, runtime: RuntimeDep,
                  who: Annotated[Caller, caller("runsync")],
                  wait: WaitMs = None) -> dict[str, Any]:
    settings = runtime.settings
    submission = await read_submission(request, runtime, who,
                                       settings.runsync_body_limit_bytes)
    job = await runtime.service.submit(endpoint_id, submission, sync=True)
    wait_ms = clamp_wait(wait, settings.runsync_wait_default_ms, settings.runsync_wait_min_ms,
                         settings.runsync_wait_max_ms)
    job = await runtime.service.wait(endpoint_id, job.id, who.scope, wait_ms, current=job)
    if job.status.terminal:
        return job.status_object()
    return {"id": job.id, "status": job.status.value}


@router.api_route("/status/{job_id}", methods=["GET", "POST"], response_model=JobStatusBody,
                  response_model_exclude_none=True, summary="A job's status")
async def status(endpoint_id: str, job_id: str, runtime: RuntimeDep,
                 who: Annotated[Caller, caller("status")],
                 ttl: Annotated[int | None, Query(ge=0, le=2**53)] = None) -> dict[str, Any]:
    limits = runtime.settings.policy
    # A ttl below the minimum would delete the job on the spot.
    ttl = _in_range("ttl", ttl, limits.ttl_min_ms, limits.ttl_max_ms)
    return (await runtime.service.status(endpoint_id, job_id, who.scope, ttl)).status_object()


@router.api_route("/status-sync/{job_id}", methods=["GET", "POST"],
                  response_model=JobStatusBody, response_model_exclude_none=True,
                  summary="A job's status, long-polled until it ends or `wait` runs out")
async def status_sync(endpoint_id: str, job_id: str, runtime: RuntimeDep,
                      who: Annotated[Caller, caller("status")],
                      wait: WaitMs = None) -> dict[str, Any]:
    s = runtime.settings
    wait_ms = clamp_wait(wait, s.runsync_wait_default_ms, 0, s.runsync_wait_max_ms)
    return (await runtime.service.wait(endpoint_id, job_id, who.scope, wait_ms)).status_object()


@router.api_route("/stream/{job_id}", methods=["GET", "POST"], response_model=StreamBody,
                  summary="Stream chunks not returned before")
async def stream(endpoint_id: str, job_id: str, runtime: RuntimeDep,
                 who: Annotated[Caller, caller("status")],
                 wait: WaitMs = None) -> dict[str, Any]:
    wait_ms = clamp_wait(wait, 0, 0, runtime.settings.runsync_wait_max_ms)
    job, chunks = await runtime.service.stream(endpoint_id, job_id, who.scope, wait_ms)
    return {"status": job.status.value, "stream": [{"output": c} for c in chunks]}


@router.post("/cancel/{job_id}", response_model=JobRef, summary="Cancel a queued or running job")
async def cancel(endpoint_id: str, job_id: str, runtime: RuntimeDep,
                 who: Annotated[Caller, caller("cancel")]) -> dict[str, Any]:
    job = await runtime.service.cancel(endpoint_id, job_id, who.scope)
    return {"id": job.id, "status": job.status.value}


@router.post("/retry/{job_id}", response_model=JobRef,
             summary="Queue a FAILED or TIMED_OUT job again")
async def retry(endpoint_id: str, job_id: str, runtime: RuntimeDep,
                who: Annotated[Caller, caller("other")]) -> dict[str, Any]:
    job = await runtime.service.retry(endpoint_id, job_id, who.scope)
    return {"id": job.id, "status": job.status.value}


@router.post("/purge-queue", response_model=PurgeBody, summary="Remove queued jobs")
async def purge_queue(endpoint_id: str, runtime: RuntimeDep,
                      who: Annotated[Caller, caller("purge_queue")]) -> dict[str, Any]:
    removed = await runtime.service.purge_queue(endpoint_id, who.scope)
    return {"removed": removed, "status": "completed"}


@router.get("/health", response_model=HealthBody, summary="Job and worker counts")
async def health(endpoint_id: str, runtime: RuntimeDep,
                 who: Annotated[Caller, caller("other")]) -> dict[str, Any]:
    body = await runtime.service.health(endpoint_id, who.scope)
    if runtime.workers.serves(endpoint_id):
        body["workers"] = await runtime.workers.health(endpoint_id)
    return body


@router.get("/dead-letter", response_model=list[JobStatusBody], response_model_exclude_none=True,
            summary="FAILED jobs, newest first (lease exhaustion, handler errors)")
async def dead_letter(endpoint_id: str, runtime: RuntimeDep,
                      who: Annotated[Caller, caller("other")],
                      limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[dict[str, Any]]:
    jobs = await runtime.service.dead_letters(endpoint_id, who.scope, limit)
    return [j.status_object() for j in jobs]


@router.get("/webhooks/{job_id}", response_model=list[WebhookDeliveryBody],
            summary="A job's webhook deliveries: state and every attempt's outcome")
async def webhooks(endpoint_id: str, job_id: str, runtime: RuntimeDep,
                   who: Annotated[Caller, caller("other")]) -> list[dict[str, Any]]:
    deliveries = await runtime.service.webhook_deliveries(endpoint_id, job_id, who.scope)
    return [d.as_dict() for d in deliveries]


StatusFilter = Annotated[list[JobState] | None, Query(
    description="only jobs in these states (repeat the parameter for several)")]
EpochMs = Annotated[int | None, Query(ge=0, le=2**53, description="epoch ms")]
PageSize = Annotated[int, Query(ge=1, le=1000)]


def encode_cursor(job: Job) -> str:
    return base64.urlsafe_b64encode(f"{job.created_at}:{job.id}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[int, str]:
    try:
        created_at, _, job_id = base64.urlsafe_b64decode(cursor.encode()).decode().partition(":")
        return int(created_at), job_id
    except (ValueError, UnicodeError) as exc:
        raise BadRequest("cursor is not one this server gave out (use `next` as given)") from exc


async def job_page(runtime: Runtime, who: Caller, endpoint_id: str | None,
                   status: list[JobState] | None, since: int | None, until: int | None,
                   limit: int, cursor: str | None) -> dict[str, Any]:
    query = JobQuery(endpoint=endpoint_id, statuses=tuple(JobStatus(s) for s in status or ()),
                     owner=who.scope, created_from=since, created_to=until,
                     after=decode_cursor(cursor) if cursor else None, limit=limit)
    jobs = await runtime.service.list_jobs(query)
    return {"jobs": [j.status_object() | {"endpointId": j.endpoint, "createdAt": j.created_at}
                     for j in jobs],
            "next": encode_cursor(jobs[-1]) if len(jobs) == limit else None}


@router.get("/jobs", response_model=JobListBody, response_model_exclude_none=True,
            summary="The endpoint's jobs, newest first, a page at a time")
async def list_jobs(endpoint_id: str, runtime: RuntimeDep,
                    who: Annotated[Caller, caller("other")], status: StatusFilter = None,
                    since: EpochMs = None, until: EpochMs = None, limit: PageSize = 100,
                    cursor: str | None = None) -> dict[str, Any]:
    return await job_page(runtime, who, endpoint_id, status, since, until, limit, cursor)


#: routes over every endpoint
all_endpoints = APIRouter(prefix="/v2", tags=["jobs (RunPod API)"], responses=ERRORS)


@all_endpoints.get("/jobs", response_model=JobListBody, response_model_exclude_none=True,
                   summary="Jobs of every endpoint, newest first, a page at a time")
async def list_all_jobs(runtime: RuntimeDep, who: Annotated[Caller, caller("other")],
                        status: StatusFilter = None, since: EpochMs = None,
                        until: EpochMs = None, limit: PageSize = 100,
                        cursor: str | None = None) -> dict[str, Any]:
    return await job_page(runtime, who, None, status, since, until, limit, cursor)
