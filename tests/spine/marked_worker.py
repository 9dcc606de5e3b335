"""The demo worker, leaving a trace of each job it ran to its end, so tests can check
that cancelled and timed-out work stopped. Test-only: the shipped demo writes no files."""

from deployments.handlers.demo_worker import handler as demo_handler
from tests.spine.traces import FINISHED


def handler(job):
    result = demo_handler(job)
    FINISHED.mkdir(exist_ok=True)
    (FINISHED / job["id"]).write_text("finished")
    return result
