"""A RunPod worker exactly as it would run on RunPod: progress, streaming, errors.

Served here by naming the module in `handlers:` of the config; the `start()` call at
the bottom is captured rather than run.

Input: {"steps": int, "delay_s": float, "fail": str | null, "raise": str | null,
        "echo": any, "marker": path written when the work runs to its end}
"""

import time

import runpod


def handler(job):
    job_input = job["input"]
    steps = int(job_input.get("steps", 1))
    delay_s = float(job_input.get("delay_s", 0.0))
    for step in range(steps):
        runpod.serverless.progress_update(job, {"step": step + 1, "of": steps})
        # Sleep in short slices so a cancelled or timed-out job stops promptly.
        end = time.monotonic() + delay_s
        while time.monotonic() < end:
            time.sleep(min(0.05, end - time.monotonic()))
    if job_input.get("marker"):
        with open(job_input["marker"], "w") as f:
            f.write(job["id"])
    if job_input.get("fail"):
        return {"error": str(job_input["fail"])}
    if job_input.get("raise"):
        raise RuntimeError(str(job_input["raise"]))
    return {"echo": job_input.get("echo"), "steps": steps, "job_id": job["id"]}


def stream_handler(job):
    """A generator handler: each yield is one /stream chunk."""
    job_input = job["input"]
    for i in range(int(job_input.get("chunks", 3))):
        time.sleep(float(job_input.get("delay_s", 0.0)))
        yield {"index": i, "text": f"chunk {i}"}


async def async_stream_handler(job):
    """An async generator handler."""
    import asyncio

    for i in range(int(job["input"].get("chunks", 3))):
        await asyncio.sleep(float(job["input"].get("delay_s", 0.0)))
        yield i


# RunPod workers call this at import; here it is captured, not run.
runpod.serverless.start({"handler": handler})
