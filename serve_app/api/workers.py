"""The worker side of the queue: the routes an unmodified `runpod.serverless.start`
worker calls when its RUNPOD_WEBHOOK_* variables point here
(`python -m serve_app.worker_env <endpoint>` prints them).

The SDK's shapes: job-take answers one job `{"id", "input", ...}` (job-take-batch a
list) or 204; job-stop answers `{"jobsToStop": [ids]}` or 204; job-done and job-stream
bodies are JSON sent as form-encoded; pings are GETs naming the jobs the worker runs
(`job_id=a,b`). Workers authenticate with their endpoint's worker key, sent as the
`Authorization` header.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from serve_app.api.deps import RuntimeDep, read_json
from serve_app.api.errors import BadRequest, Unauthorized
from serve_app.api.schemas import ErrorBody
from serve_app.jobs.endpoints import job_payload

router = APIRouter(prefix="/v2/{endpoint_id}", tags=["workers (RunPod worker protocol)"],
                   responses={code: {"model": ErrorBody} for code in (400, 401, 404, 413)})

#: RUNPOD_POD_ID: a uuid from the SDK, or what `worker_env` made
WorkerId = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")]


async def _authorized(endpoint_id: str, request: Request, runtime: RuntimeDep) -> None:
    # Before anything else: a caller without this endpoint's worker key learns nothing,
    # not even whether the endpoint exists or who serves it.
    keys = runtime.worker_keys.get(endpoint_id)
    address = request.client.host if request.client else "unknown"
    if keys is None or keys.identify(request.headers.get("authorization", ""), address) is None:
        raise Unauthorized(f"missing or invalid worker key for endpoint {endpoint_id!r} "
                           "(RUNPOD_AI_API_KEY; only endpoints under `workers:` take workers)")


Worker = Depends(_authorized)
NO_CONTENT = Response(status_code=204)


async def _result_body(request: Request, runtime: RuntimeDep) -> dict[str, Any]:
    body = await read_json(request, runtime.settings.workers.result_limit_bytes)
    if not isinstance(body, dict):
        raise BadRequest("a job-done or job-stream body must be a JSON object")
    return body


@router.get("/job-take/{worker_id}", dependencies=[Worker], summary="Take a job (long-poll)")
async def job_take(endpoint_id: str, worker_id: WorkerId, runtime: RuntimeDep,
                   job_in_progress: Annotated[int | None, Query(ge=0, le=1)] = None) -> Any:
    jobs = await runtime.workers.take(endpoint_id, worker_id, 1)
    return job_payload(jobs[0]) if jobs else NO_CONTENT


@router.get("/job-take-batch/{worker_id}", dependencies=[Worker],
            summary="Take up to batch_size jobs (long-poll)")
async def job_take_batch(endpoint_id: str, worker_id: WorkerId, runtime: RuntimeDep,
                         batch_size: Annotated[int, Query(ge=1, le=1000)] = 1,
                         job_in_progress: Annotated[int | None, Query(ge=0, le=1)] = None
                         ) -> Any:
    jobs = await runtime.workers.take(endpoint_id, worker_id, batch_size)
    return [job_payload(job) for job in jobs] if jobs else NO_CONTENT


@router.get("/job-stop/{worker_id}", dependencies=[Worker],
            summary="Jobs to stop: cancelled, timed out or lost (long-poll)")
async def job_stop(endpoint_id: str, worker_id: WorkerId, runtime: RuntimeDep) -> Any:
    stops = await runtime.workers.stops(endpoint_id, worker_id)
    return {"jobsToStop": stops} if stops else NO_CONTENT


@router.post("/job-done/{worker_id}/{job_id}", dependencies=[Worker],
             summary="A job's result, error or progress update")
async def job_done(endpoint_id: str, worker_id: WorkerId, job_id: str, request: Request,
                   runtime: RuntimeDep, isStream: bool = False) -> dict[str, Any]:  # noqa: N803
    body = await _result_body(request, runtime)
    return (await runtime.workers.done(endpoint_id, worker_id, job_id, body)).as_dict()


@router.post("/job-stream/{worker_id}/{job_id}", dependencies=[Worker],
             summary="One streamed chunk of a generator handler")
async def job_stream(endpoint_id: str, worker_id: WorkerId, job_id: str, request: Request,
                     runtime: RuntimeDep, isStream: bool = True) -> dict[str, Any]:  # noqa: N803
    body = await _result_body(request, runtime)
    return (await runtime.workers.stream(endpoint_id, worker_id, job_id, body)).as_dict()


@router.get("/ping/{worker_id}", dependencies=[Worker],
            summary="Heartbeat: the worker is alive and runs these jobs")
async def ping(endpoint_id: str, worker_id: WorkerId, runtime: RuntimeDep,
               job_id: str | None = None, runpod_version: str | None = None) -> dict[str, Any]:
    job_ids = [j for j in (job_id or "").split(",") if j]
    await runtime.workers.ping(endpoint_id, worker_id, job_ids, runpod_version)
    return {"ok": True, "jobs": len(job_ids)}
