"""Every setting of the application, in one typed place.

`configs/serve.yaml` passes `args` to `serve_app.app:build_app`, which validates them
into `AppArgs` before anything starts; nothing else reads configuration.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, field_validator

from deployments.dental.config import DentalArgs
from deployments.g2p.config import G2PArgs
from deployments.pd.config import PDArgs
from deployments.pronunciation.config import AssessmentArgs

MINUTE_MS = 60_000
DAY_MS = 24 * 60 * MINUTE_MS


class PolicyLimits(BaseModel):
    """Defaults and allowed ranges of a job's `policy` (RunPod's, in ms)."""

    execution_timeout_default_ms: int = 10 * MINUTE_MS
    execution_timeout_min_ms: int = 5_000
    execution_timeout_max_ms: int = 7 * DAY_MS
    ttl_default_ms: int = DAY_MS
    ttl_min_ms: int = 10_000
    ttl_max_ms: int = 7 * DAY_MS


class JobSettings(BaseModel):
    #: sqlite:///relative/path, sqlite:////absolute/path, or postgresql://user@host/db
    store_url: str = "sqlite:///.serve_jobs/jobs.sqlite3"
    #: API keys accepted as `Authorization: Bearer <key>` or `Authorization: <key>`;
    #: empty means open (local development)
    api_keys: list[str] = Field(default_factory=list)
    run_retention_ms: int = Field(30 * MINUTE_MS, ge=1_000)
    runsync_retention_ms: int = Field(MINUTE_MS, ge=1_000)
    run_body_limit_bytes: int = Field(10 * 1024 * 1024, ge=1_024)
    runsync_body_limit_bytes: int = Field(20 * 1024 * 1024, ge=1_024)
    runsync_wait_default_ms: int = 90_000
    runsync_wait_min_ms: int = 1_000
    runsync_wait_max_ms: int = 300_000
    policy: PolicyLimits = Field(default_factory=PolicyLimits)
    #: a running job renews its lease twice a second; one not renewed for lease_s (its
    #: worker died) goes back to the queue
    lease_s: float = Field(30.0, gt=0)
    #: lease expiries after which a job ends FAILED (the dead-letter state)
    max_lease_expiries: int = Field(3, ge=1)
    #: how often an idle dispatcher looks for jobs queued by other replicas
    poll_interval_s: float = Field(0.2, gt=0)
    #: how often expired leases and expired jobs are swept
    sweep_interval_s: float = Field(1.0, gt=0)
    webhook_attempts: int = Field(3, ge=1)
    webhook_retry_delay_s: float = Field(10.0, ge=0)
    webhook_timeout_s: float = Field(10.0, gt=0)


class EndpointSpec(BaseModel):
    """How the facade treats one endpoint."""

    #: plain synchronous route (`POST /<route>`); None for job-only endpoints
    route: str | None = None
    #: jobs run at once by each ingress replica; match what the model deployments can take
    max_concurrency: int = Field(8, ge=1)
    #: queued jobs beyond this get 429
    max_queue: int = Field(10_000, ge=1)
    #: with a streaming endpoint the final output is the list of every chunk
    aggregate_stream: bool = True
    #: `POST /<route>/html` renders the deployment's `render_html(job)` page
    html: bool = False
    #: `GET /<route>/healthz` returns the deployment's `healthz()`
    healthz: bool = False


class HandlerSpec(BaseModel):
    """An unchanged RunPod worker handler served as an endpoint.

    `handler` is `package.module` (whose `runpod.serverless.start({...})` call is captured)
    or `package.module:function`.
    """

    handler: str
    endpoint: EndpointSpec = Field(default_factory=EndpointSpec)
    num_cpus: float = Field(0.05, ge=0)


class AppArgs(BaseModel):
    jobs: JobSettings = Field(default_factory=JobSettings)
    #: model endpoints to serve, by endpoint id; a family left out is not deployed
    endpoints: dict[str, EndpointSpec] = Field(
        default_factory=lambda: {"ipa-generation": EndpointSpec(route="ipa")})
    handlers: dict[str, HandlerSpec] = Field(default_factory=dict)
    g2p: G2PArgs = Field(default_factory=G2PArgs)
    dental: DentalArgs = Field(default_factory=DentalArgs)
    pd: PDArgs = Field(default_factory=PDArgs)
    pronunciation: AssessmentArgs = Field(default_factory=AssessmentArgs)

    @field_validator("endpoints")
    @classmethod
    def _known_endpoints(cls, value: dict[str, EndpointSpec]) -> dict[str, EndpointSpec]:
        unknown = set(value) - set(MODEL_ENDPOINTS)
        if unknown:
            raise ValueError(f"unknown model endpoints {sorted(unknown)}; "
                             f"known: {sorted(MODEL_ENDPOINTS)}")
        return value

    def all_endpoints(self) -> dict[str, EndpointSpec]:
        return {**self.endpoints, **{k: h.endpoint for k, h in self.handlers.items()}}


#: model endpoint ids this application knows how to build
MODEL_ENDPOINTS = ("ipa-generation", "pronunciation-assessment", "dental-pano",
                   "pd-segmentation")


def load_args(raw: dict[str, Any] | AppArgs | None) -> AppArgs:
    return raw if isinstance(raw, AppArgs) else AppArgs.model_validate(raw or {})
