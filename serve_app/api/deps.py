"""Request dependencies: the runtime, the caller (API key, rate limit), bounded JSON bodies."""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request

from deployments.common.outbound import OutboundPolicy
from serve_app.api.errors import BadRequest, PayloadTooLarge, Unauthorized
from serve_app.api.keys import Caller, KeyRing
from serve_app.api.ratelimit import RateLimiter
from serve_app.jobs.batches import BatchService
from serve_app.jobs.endpoints import Endpoint
from serve_app.jobs.service import JobService
from serve_app.jobs.settings import JobSettings
from serve_app.jobs.workers import WorkerService


@dataclass
class Runtime:
    """What the routes need, built once per ingress replica."""

    service: JobService
    endpoints: dict[str, Endpoint]
    settings: JobSettings
    keys: KeyRing
    limiter: RateLimiter
    #: checks webhook URLs when a job is submitted
    outbound: OutboundPolicy
    #: the worker side of the queue, for endpoints served by external workers
    workers: WorkerService
    #: each such endpoint's worker keys
    worker_keys: dict[str, KeyRing]
    #: batch jobs (RunPod's Batch Jobs API)
    batches: BatchService


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


#: JSON bodies nest at most this deep (json.loads recurses once per level: a few thousand
#: levels end in RecursionError) and hold integers of at most this many digits (Python
#: refuses to convert more than 4,300, and no endpoint takes numbers anywhere near this)
MAX_JSON_DEPTH = 64
MAX_JSON_INT_DIGITS = 100


async def read_json(request: Request, limit_bytes: int) -> Any:
    """The body parsed as JSON, refused with 413 as soon as it passes `limit_bytes` and
    with 400 when it is not strict UTF-8 JSON, nests deeper than MAX_JSON_DEPTH, holds a
    longer integer than MAX_JSON_INT_DIGITS or a string no UTF-8 answer could carry."""
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
    if _json_depth_over(body, MAX_JSON_DEPTH):
        raise BadRequest(f"request body nests arrays and objects more than {MAX_JSON_DEPTH} "
                         "levels deep")
    try:
        # Strict UTF-8, as RFC 8259 asks (json.loads would let surrogates through).
        text = body.decode()
        parsed = json.loads(text, parse_int=_bounded_int)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from exc
    if _SURROGATE_ESCAPE.search(text):
        try:  # a pair decodes to one character; an unpaired one cannot be encoded again
            json.dumps(parsed, ensure_ascii=False).encode()
        except UnicodeEncodeError as exc:
            raise BadRequest("request body holds an unpaired UTF-16 surrogate escape "
                             f"(\\u{ord(exc.object[exc.start]):x})") from exc
    return parsed


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
#: opening brackets step one level in, closing ones out (as signed bytes)
_DEPTH_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")
_NOT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[{]}")))


def _json_depth_over(body: bytes | bytearray, limit: int) -> bool:
    """Whether `body` nests arrays and objects deeper than `limit`, counted before parsing
    (brackets inside strings do not count): time linear in the body, memory at most its size."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False  # most bodies: too few brackets to nest that deep
    steps = _JSON_STRING.sub(b"", body).translate(_DEPTH_STEPS, _NOT_BRACKETS)
    return max(itertools.accumulate(memoryview(steps).cast("b")), default=0) > limit


def _bounded_int(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_JSON_INT_DIGITS:
        raise BadRequest(f"request body holds an integer of {len(digits.lstrip('-'))} digits; "
                         f"at most {MAX_JSON_INT_DIGITS} are accepted")
    return int(digits)
