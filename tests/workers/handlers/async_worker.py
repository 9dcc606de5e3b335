"""An async RunPod handler that leaves a trace of how each job ended in `input.mark`."""

import asyncio
import os
from pathlib import Path

import runpod


async def handler(job):
    mark = Path(job["input"]["mark"]) if "mark" in job["input"] else None
    if mark:
        mark.write_text("started")
    try:
        await asyncio.sleep(job["input"].get("sleep", 0))
    except asyncio.CancelledError:
        if mark:
            mark.write_text("stopped")
        raise
    if mark:
        mark.write_text("finished")
    return {"echo": job["input"], "pid": os.getpid()}


runpod.serverless.start({"handler": handler})
