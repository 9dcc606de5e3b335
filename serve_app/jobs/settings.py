"""The job layer's settings: how jobs are stored, leased, retried and reported.

The application settings (`serve_app.settings.AppArgs`) compose these with the model
families' own; nothing here knows which models exist.
"""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator

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
    #: sqlite:///relative/path, sqlite:////absolute/path, postgresql://user@host/db, or
    #: memory:// (one process, nothing kept: tests)
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
    #: ingress replica died) goes back to the queue
    lease_s: float = Field(30.0, gt=0)
    #: runs lost to the infrastructure (a worker or node died, a lease ran out) after
    #: which a job ends FAILED (the dead-letter state); user retries are counted apart
    max_attempts: int = Field(3, ge=1)
    #: how often an idle dispatcher looks for jobs queued by other replicas
    poll_interval_s: float = Field(0.2, gt=0)
    #: how often expired leases and expired jobs are swept
    sweep_interval_s: float = Field(1.0, gt=0)
    #: deliveries of one webhook before it is given up
    webhook_attempts: int = Field(3, ge=1)
    #: wait before the second attempt; it doubles for each later one
    webhook_retry_delay_s: float = Field(10.0, ge=0)
    webhook_retry_max_delay_s: float = Field(300.0, ge=0)
    webhook_timeout_s: float = Field(10.0, gt=0)
    #: Standard Webhooks secret (`whsec_<base64>`); when set every delivery is signed
    webhook_secret: str | None = None
    #: how long finished webhook deliveries (and their attempt logs) are kept
    webhook_retention_ms: int = Field(DAY_MS, ge=1_000)

    @field_validator("webhook_secret")
    @classmethod
    def _usable_secret(cls, value: str | None) -> str | None:
        if value is not None:
            from standardwebhooks.webhooks import Webhook

            try:
                Webhook(value)
            except Exception as exc:
                raise ValueError("webhook_secret must be base64, optionally prefixed "
                                 f"whsec_ (Standard Webhooks): {exc}") from None
        return value


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
