"""What can go wrong in the job layer, and how an endpoint tells the dispatcher how a run
ended badly. Callers that wrap a real backend (a Ray deployment handle, an external
worker) translate its failures into `JobFailed` or `WorkerLost`."""

from __future__ import annotations

import logging
import uuid

logger = logging.getLogger("ray.serve")


class QueueFull(Exception):
    """The endpoint's queue holds its maximum number of jobs."""


class NotRetryable(Exception):
    """Only FAILED and TIMED_OUT jobs can be retried."""


class UnknownEndpoint(LookupError):
    """No endpoint of that id is served here."""


class UnknownJob(LookupError):
    """No such job on the endpoint (never submitted, or expired and removed)."""


class JobFailed(Exception):
    """The job's own failure (its input, or an exception in the work itself): the job ends
    FAILED at once with this message. `input_kind` names what is wrong with the input when
    the input is at fault (the HTTP boundary answers a synchronous caller with the matching
    4xx), None for other failures."""

    def __init__(self, message: str, input_kind: str | None = None) -> None:
        super().__init__(message)
        self.input_kind = input_kind


class WorkerLost(Exception):
    """The infrastructure lost the run (a worker process or node died, the backend was
    unavailable or redeployed): the job goes back to the queue, counting an attempt."""


def logged_internal_error(what: str, exc: BaseException, label: str = "internal error") -> str:
    """Log `exc` with its traceback under a new reference and return the message a caller
    gets instead: `<label> (reference <id>)`. Tracebacks, Ray's error classes and the
    internal addresses they name stay in the log."""
    reference = uuid.uuid4().hex[:12]
    logger.error("%s (reference %s)", what, reference, exc_info=exc)
    return f"{label} (reference {reference})"
