"""Exceptions map to JSON error responses in this one place."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from deployments.common.errors import ErrorKind, describe_validation
from serve_app.jobs.batches import (
    BatchNotDraft,
    BatchTooLarge,
    TooManyBatches,
    UnknownBatch,
    UnknownBatchRequest,
)
from serve_app.jobs.errors import (
    JobFailed,
    NotRetryable,
    QueueFull,
    UnknownEndpoint,
    UnknownJob,
    WorkerLost,
    logged_internal_error,
)

logger = logging.getLogger("ray.serve")


class ApiError(Exception):
    """An error the caller caused; subclasses carry the status code."""

    status_code = 400

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        if status_code is not None:
            self.status_code = status_code


class BadRequest(ApiError):
    status_code = 400


class Unauthorized(ApiError):
    status_code = 401


class PayloadTooLarge(ApiError):
    status_code = 413


class TooManyRequests(ApiError):
    status_code = 429

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.headers = {"Retry-After": str(retry_after_s)}


STATUS_BY_TYPE: dict[type[Exception], int] = {
    UnknownEndpoint: 404,
    UnknownJob: 404,
    QueueFull: 429,
    NotRetryable: 400,
    #: a direct call whose worker was lost: the caller may try again
    WorkerLost: 503,
    UnknownBatch: 404,
    UnknownBatchRequest: 404,
    #: adding to, removing from or finalizing a batch no longer DRAFT
    BatchNotDraft: 409,
    BatchTooLarge: 400,
    #: too many active batches on the endpoint: try again once one ended
    TooManyBatches: 429,
}


def _json(status: int, message: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": message})


def _fixed_status(status: int):  # noqa: ANN202 - a Starlette exception handler
    async def handler(_: Request, exc: Exception) -> JSONResponse:
        return _json(status, str(exc))

    return handler


#: the answer to a synchronous call whose input a model refused, by what is wrong with it
STATUS_BY_INPUT_KIND: dict[str, int] = {
    ErrorKind.BAD_INPUT.value: 400,
    ErrorKind.TOO_LARGE.value: 413,
    ErrorKind.UNSUPPORTED.value: 415,
}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        response = _json(exc.status_code, str(exc))
        response.headers.update(getattr(exc, "headers", {}))
        return response

    @app.exception_handler(JobFailed)
    async def _job_failed(_: Request, exc: JobFailed) -> JSONResponse:
        # The input's fault (4xx) or the model's (500) in a direct call.
        return _json(STATUS_BY_INPUT_KIND.get(exc.input_kind or "", 500), str(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _json(400, "invalid request: " + describe_validation(exc, skip=("body",)))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _json(exc.status_code, str(exc.detail))

    for exc_type, status in STATUS_BY_TYPE.items():
        app.add_exception_handler(exc_type, _fixed_status(status))

    @app.exception_handler(Exception)
    async def _other(request: Request, exc: Exception) -> JSONResponse:
        return _json(500, logged_internal_error(
            f"unhandled error in {request.method} {request.url.path}", exc))
