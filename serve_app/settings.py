"""Every setting of the application, in one typed place.

`configs/serve.yaml` passes `args` to `serve_app.app:build_app`, which validates them
into `AppArgs` before anything starts; nothing else reads configuration.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, field_validator, model_validator

from deployments.common.outbound import OutboundPolicy
from deployments.dental.config import DentalArgs
from deployments.g2p.config import G2PArgs
from deployments.pd.config import PDArgs
from deployments.pronunciation.config import AssessmentArgs
from serve_app.catalog import MODEL_FAMILIES
from serve_app.jobs.settings import EndpointSpec, JobSettings, KeySpecs


class HandlerSpec(BaseModel):
    """An unchanged RunPod worker handler served as an endpoint.

    `handler` is `package.module` (whose `runpod.serverless.start({...})` call is captured)
    or `package.module:function`.
    """

    handler: str
    endpoint: EndpointSpec = Field(default_factory=EndpointSpec)
    num_cpus: float = Field(0.05, ge=0)


class WorkerEndpointSpec(BaseModel):
    """An endpoint served by external RunPod workers: unmodified `runpod.serverless.start`
    processes anywhere that can reach the ingress, pulling its jobs over HTTP
    (`python -m serve_app.worker_env <endpoint>` prints their environment)."""

    endpoint: EndpointSpec = Field(default_factory=EndpointSpec)
    #: keys a worker of this endpoint authenticates with (RUNPOD_AI_API_KEY); client API
    #: keys are not accepted on the worker routes, nor these on the client routes
    worker_keys: KeySpecs = Field(default_factory=list)
    #: an environment variable of the ingress replicas holding more worker keys (one per
    #: line or comma-separated)
    worker_keys_env: str | None = None

    @model_validator(mode="after")
    def _has_keys(self) -> WorkerEndpointSpec:
        if not self.worker_keys and not self.worker_keys_env:
            raise ValueError("an endpoint served by external workers needs worker_keys or "
                             "worker_keys_env: the worker routes hand out inputs and take "
                             "results, and are never open")
        return self


class AppArgs(BaseModel):
    jobs: JobSettings = Field(default_factory=JobSettings)
    #: model endpoints to serve, by endpoint id; a family left out is not deployed
    endpoints: dict[str, EndpointSpec] = Field(
        default_factory=lambda: {"ipa-generation": EndpointSpec(route="ipa")})
    handlers: dict[str, HandlerSpec] = Field(default_factory=dict)
    #: endpoints served by external RunPod workers instead of a Ray deployment
    workers: dict[str, WorkerEndpointSpec] = Field(default_factory=dict)
    g2p: G2PArgs = Field(default_factory=G2PArgs)
    dental: DentalArgs = Field(default_factory=DentalArgs)
    pd: PDArgs = Field(default_factory=PDArgs)
    pronunciation: AssessmentArgs = Field(default_factory=AssessmentArgs)
    #: where client-given URLs (inputs, webhooks, S3 endpoints) may lead, and which buckets
    #: the server reads and writes with its own credentials
    outbound: OutboundPolicy = Field(default_factory=OutboundPolicy)

    @field_validator("endpoints")
    @classmethod
    def _known_endpoints(cls, value: dict[str, EndpointSpec]) -> dict[str, EndpointSpec]:
        unknown = set(value) - set(MODEL_FAMILIES)
        if unknown:
            raise ValueError(f"unknown model endpoints {sorted(unknown)}; "
                             f"known: {sorted(MODEL_FAMILIES)}")
        return value

    @model_validator(mode="after")
    def _one_server_per_endpoint(self) -> AppArgs:
        for name in self.workers:
            if name in self.endpoints or name in self.handlers:
                raise ValueError(f"endpoint {name!r} is configured twice: under workers and "
                                 "under endpoints or handlers")
        return self

    def all_endpoints(self) -> dict[str, EndpointSpec]:
        return {**self.endpoints, **{k: h.endpoint for k, h in self.handlers.items()},
                **{k: w.endpoint for k, w in self.workers.items()}}


def load_args(raw: dict[str, Any] | AppArgs | None) -> AppArgs:
    return raw if isinstance(raw, AppArgs) else AppArgs.model_validate(raw or {})
