"""Where tests.spine.marked_worker records the jobs it ran to their end (kept apart from
the worker: importing a RunPod worker module outside a replica starts its loop)."""

import tempfile
from pathlib import Path

#: one file per job id that ran to its end (in the replica's temp dir, on this machine)
FINISHED = Path(tempfile.gettempdir()) / "rsp-test-finished"


def finished(job_id: str) -> bool:
    return (FINISHED / job_id).exists()
