"""The job layer's settings: how jobs are stored, leased, retried and reported.

The application settings (`serve_app.settings.AppArgs`) compose these with the model
families' own; nothing here knows which models exist.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, Field, field_validator

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


#: keys shorter than this are guessable, or a placeholder nobody replaced
MIN_KEY_CHARS = 16
PLACEHOLDER_KEY = re.compile(
    r"change.?me|replace|placeholder|example|your.?(api.?)?key|dummy|todo|password|"
    r"^(x+|a+|0+|1234.*|test|secret|key)$|^<.*>$|^\$\{.*\}$", re.IGNORECASE)


class ApiKeySpec(BaseModel):
    """One API key. A job belongs to the key that submitted it; an admin key sees all."""

    key: str = Field(repr=False)
    admin: bool = False

    @field_validator("key")
    @classmethod
    def _not_a_placeholder(cls, value: str) -> str:
        if (len(value) < MIN_KEY_CHARS or len(set(value)) < MIN_KEY_CHARS // 2
                or PLACEHOLDER_KEY.search(value)):
            raise ValueError(
                f"a placeholder or too short API key (at least {MIN_KEY_CHARS} random "
                "characters): generate one, e.g. with "
                "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`")
        return value


def _as_key_spec(value: Any) -> Any:
    return {"key": value} if isinstance(value, str) else value


#: keys, each a plain string or {"key": ..., "admin": ...}
KeySpecs = list[Annotated[ApiKeySpec, BeforeValidator(_as_key_spec)]]


class RateLimits(BaseModel):
    """Requests per `window_s` per caller (API key, or client address when the API is
    open) and route class; RunPod's defaults. Kept per ingress replica."""

    enabled: bool = True
    window_s: int = Field(10, ge=1, le=3600)
    run: int = Field(1000, ge=1)
    runsync: int = Field(2000, ge=1)
    #: /status, /status-sync and /stream
    status: int = Field(2000, ge=1)
    cancel: int = Field(100, ge=1)
    purge_queue: int = Field(2, ge=1)
    #: direct model routes (`POST /<route>`)
    direct: int = Field(2000, ge=1)
    #: everything else: /health, /dead-letter, /retry, webhook logs, listings
    other: int = Field(2000, ge=1)


class WorkerSettings(BaseModel):
    """How the queue treats external RunPod workers (`runpod.serverless.start` processes
    that pull jobs over HTTP)."""

    #: a worker's jobs go back to the queue when it has not pinged for this long; its
    #: pings come every RUNPOD_PING_INTERVAL (`python -m serve_app.worker_env` sets a
    #: third of this)
    lease_s: float = Field(30.0, ge=3)
    #: how long a job-take waits for a job before answering 204 (the SDK asks again at
    #: once, so an answer at once would spin; it gives up after 90 s)
    take_wait_s: float = Field(20.0, gt=0, lt=85)
    #: how long a job-stop poll waits for a job to stop before answering 204
    stop_wait_s: float = Field(30.0, gt=0, lt=85)
    #: a worker not heard from for this long is forgotten (until then /health counts it
    #: unhealthy)
    forget_after_s: float = Field(600.0, gt=0)
    #: the largest job-done or job-stream body (a result)
    result_limit_bytes: int = Field(20 * 1024 * 1024, ge=1_024)


class BatchSettings(BaseModel):
    """Batch jobs (RunPod's Batch Jobs API): limits, and how long requests are kept."""

    #: requests one batch may hold, counting every append
    max_requests: int = Field(5_000, ge=1)
    #: batches per endpoint that have not ended (DRAFT ones included); 429 past it
    max_active: int = Field(10, ge=1)
    #: bytes per `POST .../batch` or `.../batch/{id}/requests` body; 413 past it
    body_limit_bytes: int = Field(10 * 1024 * 1024, ge=1_024)
    #: a request's whole life from finalize (queue time included); a DRAFT batch never
    #: runs, and expires after this too
    request_ttl_ms: int = Field(7 * DAY_MS, ge=10_000)
    #: how long an ended batch and its requests' results are kept
    retention_ms: int = Field(DAY_MS, ge=1_000)


class JobSettings(BaseModel):
    #: sqlite:///relative/path, sqlite:////absolute/path, postgresql://user@host/db, or
    #: memory:// (one process, nothing kept: tests)
    store_url: str = "sqlite:///.serve_jobs/jobs.sqlite3"
    #: API keys accepted as `Authorization: Bearer <key>` or `Authorization: <key>`; all
    #: three sources below are merged; none at all means open (local development)
    api_keys: KeySpecs = Field(default_factory=list)
    #: a file read by each ingress replica at start: one key per line, `<key> admin` for
    #: an admin key, `#` comments
    api_keys_file: str | None = None
    #: an environment variable of the ingress replicas holding keys in the file's format
    #: (entries separated by newlines or commas)
    api_keys_env: str | None = None
    rate_limits: RateLimits = Field(default_factory=RateLimits)
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
    #: how often each replica reads the queue's gauges (jobs waiting, running) from the store
    metrics_interval_s: float = Field(5.0, gt=0)
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
    workers: WorkerSettings = Field(default_factory=WorkerSettings)
    batches: BatchSettings = Field(default_factory=BatchSettings)
    #: the share of each endpoint's concurrency that batch requests may hold (at least
    #: one slot): the rest stays free for interactive jobs
    batch_share: float = Field(0.1, gt=0, le=1)

    def batch_slots(self, max_concurrency: int) -> int:
        return max(1, int(max_concurrency * self.batch_share))

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
    #: POSTed the batch object when a batch of this endpoint ends, unless the batch names
    #: its own (`POST /batch?webhook=` or `PUT /batch/{id}`)
    batch_webhook: str | None = None
