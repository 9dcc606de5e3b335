"""Pydantic models at the HTTP boundary (RunPod's field names)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl

JobState = Literal["IN_QUEUE", "IN_PROGRESS", "COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"]


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    executionTimeout: int | None = Field(None, description="ms; the job ends TIMED_OUT past it")
    ttl: int | None = Field(None, description="ms; the job's whole life, queue time included")
    lowPriority: bool = Field(False, description="queued behind normal jobs")


class S3ConfigBody(BaseModel):
    accessId: str
    accessSecret: str
    bucketName: str
    endpointUrl: str | None = None


class RunRequest(BaseModel):
    """Body of `/run` and `/runsync`."""

    model_config = ConfigDict(extra="allow")

    input: dict[str, Any] = Field(description="The endpoint's input object.",
                                  examples=[{"text": "Hello world", "language": "en-us"}])
    webhook: HttpUrl | None = Field(None, description="POSTed the status object when the job ends")
    policy: Policy | None = None
    s3Config: S3ConfigBody | None = None


class JobStatusBody(BaseModel):
    id: str
    status: JobState
    delayTime: int | None = None
    executionTime: int | None = None
    output: Any = None
    error: str | None = None
    workerId: str | None = None
    retries: int = 0


class JobListItem(JobStatusBody):
    endpointId: str
    createdAt: int = Field(description="epoch ms")


class JobListBody(BaseModel):
    jobs: list[JobListItem] = Field(description="newest first")
    next: str | None = Field(None, description="pass as `cursor` for the next page; null "
                             "on the last page")


class JobRef(BaseModel):
    id: str
    status: JobState


class StreamChunk(BaseModel):
    output: Any


class StreamBody(BaseModel):
    status: JobState
    stream: list[StreamChunk]


class PurgeBody(BaseModel):
    removed: int
    status: Literal["completed"] = "completed"


class HealthJobs(BaseModel):
    completed: int
    failed: int
    inProgress: int
    inQueue: int
    retried: int


class HealthWorkers(BaseModel):
    idle: int
    running: int
    initializing: int
    ready: int
    throttled: int
    unhealthy: int


class HealthBody(BaseModel):
    jobs: HealthJobs
    workers: HealthWorkers


class ErrorBody(BaseModel):
    error: str


class WebhookAttemptBody(BaseModel):
    at: int = Field(description="epoch ms")
    statusCode: int | None = Field(None, description="the receiver's HTTP status, if any")
    error: str | None = Field(None, description="why the attempt failed, if it did")
    durationMs: int


class WebhookDeliveryBody(BaseModel):
    id: str = Field(description="sent as `webhook-id`; the same on every attempt")
    jobId: str
    url: str
    state: Literal["PENDING", "DELIVERED", "FAILED"]
    createdAt: int
    nextAttemptAt: int | None = None
    attempts: list[WebhookAttemptBody]


BatchState = Literal["DRAFT", "FINALIZED", "FAILED", "CANCELLED"]


class BatchRef(BaseModel):
    id: str
    status: BatchState


class BatchBody(BaseModel):
    """RunPod's batch object."""

    id: str
    endpointId: str
    status: BatchState
    name: str | None = None
    requestTotal: int
    requestInProgress: int = Field(description="queued or running")
    requestCompleted: int
    requestFailed: int = Field(description="FAILED, TIMED_OUT or CANCELLED, or removed "
                               "before they ended")
    createdAt: int = Field(description="epoch ms")
    finalizedAt: int | None = Field(None, description="epoch ms")
    cancelledAt: int | None = Field(None, description="epoch ms")
    endedAt: int | None = Field(None, description="epoch ms; set once, when the batch ended")


class BatchItem(BaseModel):
    """One request of a batch."""

    model_config = ConfigDict(extra="forbid")

    input: dict[str, Any] = Field(examples=[{"text": "Hello world", "language": "en-us"}])


class BatchAttributes(BaseModel):
    """Body of `PUT /batch/{id}`: the attributes to set (null clears one)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, max_length=256)
    webhook: HttpUrl | None = Field(None, description="POSTed the batch object when it ends")


class BatchRequestBody(BaseModel):
    id: str
    status: Literal["DRAFT", "IN_QUEUE", "IN_PROGRESS", "COMPLETED", "FAILED", "CANCELLED",
                    "TIMED_OUT"]
    output: Any = None
    error: str | None = None
    startedAt: str | None = Field(None, description="ISO 8601")
    completedAt: str | None = Field(None, description="ISO 8601")


class BatchRequestsBody(BaseModel):
    requests: list[BatchRequestBody]
    total: int
    offset: int
    limit: int
    hasMore: bool
