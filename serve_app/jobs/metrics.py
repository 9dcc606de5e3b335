"""What the job layer reports about its work. This base reports nothing (tests, tools);
the ingress passes one backed by Ray's metrics (`serve_app.metrics`)."""

from __future__ import annotations

from serve_app.jobs.model import Job


class JobMetrics:
    def submitted(self, endpoint: str) -> None:
        """A job was accepted into the queue."""

    def ended(self, job: Job) -> None:
        """A job reached a final status here (each end is reported by one replica)."""

    def requeued(self, endpoint: str, cause: str) -> None:
        """A run was lost and its job queued again: `lease_expired` or `worker_lost`."""

    def webhook_attempt(self, endpoint: str, outcome: str) -> None:
        """One delivery attempt: `delivered`, `retrying` or `failed` (given up)."""

    def queue_state(self, endpoint: str, queued: int, running: int) -> None:
        """The store's current counts, the same whichever replica reads them."""

    def stage(self, stage: str, seconds: float) -> None:
        """Time one job spent in one stage of its path here (`handoff`, `call`, `wake`, or
        `store_<method>` for one store statement); `bench/job_stages.py` reads them."""
