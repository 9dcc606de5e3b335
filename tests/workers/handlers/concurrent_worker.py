"""An async handler the worker runs four at a time (concurrency_modifier)."""

import asyncio
import time

import runpod


async def handler(job):
    started = time.time()
    await asyncio.sleep(job["input"]["sleep"])
    return {"started": started, "ended": time.time()}


runpod.serverless.start({"handler": handler, "concurrency_modifier": lambda current: 4})
