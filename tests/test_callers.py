"""How Ray's failures become job outcomes: a lost process or node requeues the job
(also when it reaches the ingress wrapped in a pipeline's task error); the job's own
errors fail it, input errors with their 4xx."""

from __future__ import annotations

import pytest
from ray import exceptions as ray_errors
from ray.serve.exceptions import DeploymentUnavailableError

from deployments.common.errors import InputError
from serve_app.callers import translate
from serve_app.jobs.errors import JobFailed, WorkerLost


def wrapped(cause: BaseException) -> ray_errors.RayTaskError:
    """What a pipeline replica's failure looks like at the ingress."""
    return ray_errors.RayTaskError("DentalPipeline.run", "Traceback ...", cause)


@pytest.mark.parametrize("exc", [
    ray_errors.ActorDiedError(),
    ray_errors.ActorUnavailableError("unreachable", None),
    DeploymentUnavailableError("ipa"),
    wrapped(ray_errors.ActorDiedError()),
    wrapped(wrapped(ray_errors.NodeDiedError("node lost"))),
])
def test_infrastructure_failures_requeue(exc: Exception) -> None:
    with pytest.raises(WorkerLost):
        translate(exc)


def test_input_errors_fail_with_their_status() -> None:
    with pytest.raises(JobFailed) as info:
        translate(wrapped(InputError("image is 7000x7000", status_code=413)))
    assert str(info.value) == "image is 7000x7000" and info.value.status_code == 413


def test_other_errors_fail_the_job() -> None:
    with pytest.raises(JobFailed) as info:
        translate(wrapped(ZeroDivisionError("division by zero")))
    assert str(info.value) == "ZeroDivisionError: division by zero"
    assert info.value.status_code is None
