"""How Ray's failures become job outcomes: a lost process or node requeues the job
(also when it reaches the ingress wrapped in a pipeline's task error); the job's own
errors fail it, input errors with their 4xx. Only an input error's message reaches the
caller: Ray's tracebacks, error classes and node addresses stay in the log, under a
reference the message names."""

from __future__ import annotations

import logging
import re

import pytest
from ray import exceptions as ray_errors
from ray.serve.exceptions import DeploymentUnavailableError

from deployments.common.errors import InputError, TooLarge, Unsupported
from serve_app.callers import translate
from serve_app.jobs.errors import JobFailed, WorkerLost

#: what Ray's task errors carry that no caller may see
REMOTE_TRACEBACK = ('Traceback (most recent call last):\n  File "/srv/models/pipeline.py", '
                    'line 7, in run\nZeroDivisionError: division by zero')
NODE_IP = "10.1.2.3"


def wrapped(cause: BaseException) -> ray_errors.RayTaskError:
    """What a pipeline replica's failure looks like at the ingress."""
    return ray_errors.RayTaskError("DentalPipeline.run", REMOTE_TRACEBACK, cause,
                                   pid=4242, ip=NODE_IP).as_instanceof_cause()


@pytest.fixture()
def serve_log(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
              ) -> pytest.LogCaptureFixture:
    """The ingress's log (Ray's `ray.serve` logger does not propagate by default)."""
    monkeypatch.setattr(logging.getLogger("ray.serve"), "propagate", True)
    return caplog


def assert_reference_only(message: str, log: pytest.LogCaptureFixture, label: str) -> None:
    """`message` names a reference and nothing of the failure; the log has it all."""
    found = re.fullmatch(rf"{label} \(reference ([0-9a-f]{{12}})\)", message)
    assert found, message
    assert found[1] in log.text and NODE_IP in log.text


@pytest.mark.parametrize("exc", [
    ray_errors.ActorDiedError(),
    ray_errors.ActorUnavailableError("unreachable", None),
    DeploymentUnavailableError("ipa"),
    wrapped(ray_errors.ActorDiedError()),
    wrapped(wrapped(ray_errors.NodeDiedError("node lost"))),
])
def test_infrastructure_failures_requeue(exc: Exception) -> None:
    with pytest.raises(WorkerLost) as info:
        translate(exc)
    assert re.fullmatch(r"worker lost \(reference [0-9a-f]{12}\)", str(info.value))


def test_a_lost_worker_names_no_ray_class_or_address(serve_log: pytest.LogCaptureFixture
                                                     ) -> None:
    died = ray_errors.ActorDiedError()
    died.error_msg = f"The actor died unexpectedly. (pid=4242, ip={NODE_IP})"
    with pytest.raises(WorkerLost) as info:
        translate(wrapped(died))
    assert_reference_only(str(info.value), serve_log, "worker lost")
    assert "ActorDiedError" in serve_log.text


@pytest.mark.parametrize("error", [InputError("no image_url"), TooLarge("image is 7000x7000"),
                                   Unsupported("unsupported image format GIF")])
def test_input_errors_fail_with_their_kind(error: InputError) -> None:
    with pytest.raises(JobFailed) as info:
        translate(wrapped(error))
    assert str(info.value) == str(error) and info.value.input_kind == error.kind.value
    with pytest.raises(JobFailed) as info:  # a pipeline's call to a model: wrapped twice
        translate(wrapped(wrapped(error)))
    assert str(info.value) == str(error) and info.value.input_kind == error.kind.value


@pytest.mark.parametrize("exc", [
    wrapped(ZeroDivisionError("division by zero")),
    wrapped(wrapped(ZeroDivisionError("division by zero"))),
    # a cause Ray could not carry over: the task error alone, its traceback in its text
    ray_errors.RayTaskError("DentalPipeline.run", REMOTE_TRACEBACK, None, ip=NODE_IP),
    ray_errors.GetTimeoutError(f"Get timed out on a task of node {NODE_IP}"),
])
def test_other_errors_fail_the_job_with_a_reference(
        exc: Exception, serve_log: pytest.LogCaptureFixture) -> None:
    with pytest.raises(JobFailed) as info:
        translate(exc)
    assert_reference_only(str(info.value), serve_log, "internal error")
    assert info.value.input_kind is None
