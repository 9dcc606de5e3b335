"""A RunPod worker exactly as it would run on RunPod: progress, streaming, errors.

Served here by naming the module in `handlers:` of the config; the `start()` call at
the bottom is captured rather than run.

Input: {"steps": int (1-100), "delay_s": float (0-30, per step), "fail": str | null,
        "raise": str | null, "echo": any}. Out-of-range numbers fail the job with an error
        naming them: a worker reachable by anyone must bound the work it is asked for.
"""

import time

import runpod

MAX_STEPS = 100
MAX_DELAY_S = 30.0


def _bounded(job_input: dict, name: str, default: float, low: float, high: float) -> float:
    value = job_input.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ValueError(f"{name} must be a number from {low:g} to {high:g}")
    return value


def _stream_shape(job_input: dict) -> tuple[int, float]:
    return (int(_bounded(job_input, "chunks", 3, 0, MAX_STEPS)),
            float(_bounded(job_input, "delay_s", 0.0, 0.0, MAX_DELAY_S)))


def handler(job):
    job_input = job["input"]
    try:
        steps = int(_bounded(job_input, "steps", 1, 1, MAX_STEPS))
        delay_s = float(_bounded(job_input, "delay_s", 0.0, 0.0, MAX_DELAY_S))
    except ValueError as exc:
        return {"error": str(exc)}
    for step in range(steps):
        runpod.serverless.progress_update(job, {"step": step + 1, "of": steps})
        # Sleep in short slices so a cancelled or timed-out job stops promptly.
        end = time.monotonic() + delay_s
        while time.monotonic() < end:
            time.sleep(min(0.05, end - time.monotonic()))
    if job_input.get("fail"):
        return {"error": str(job_input["fail"])}
    if job_input.get("raise"):
        raise RuntimeError(str(job_input["raise"]))
    return {"echo": job_input.get("echo"), "steps": steps, "job_id": job["id"]}


def stream_handler(job):
    """A generator handler: each yield is one /stream chunk."""
    chunks, delay_s = _stream_shape(job["input"])
    for i in range(chunks):
        time.sleep(delay_s)
        yield {"index": i, "text": f"chunk {i}"}


async def async_stream_handler(job):
    """An async generator handler."""
    import asyncio

    chunks, delay_s = _stream_shape(job["input"])
    for i in range(chunks):
        await asyncio.sleep(delay_s)
        yield i


# RunPod workers call this at import; here it is captured, not run.
runpod.serverless.start({"handler": handler})
