"""A plain synchronous RunPod handler, unchanged from what runs on RunPod."""

import os
import time

import runpod


def handler(job):
    time.sleep(job["input"].get("sleep", 0))
    return {"echo": job["input"], "pid": os.getpid()}


runpod.serverless.start({"handler": handler})
