"""A handler reporting progress with runpod.serverless.progress_update."""

import time

import runpod


def handler(job):
    for step in range(job["input"]["steps"]):
        runpod.serverless.progress_update(job, {"step": step})
        time.sleep(0.6)
    return {"steps": job["input"]["steps"]}


runpod.serverless.start({"handler": handler})
