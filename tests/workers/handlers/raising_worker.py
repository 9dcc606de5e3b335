"""A handler that raises, and one input that returns an error instead."""

import runpod


def handler(job):
    if job["input"].get("returned"):
        return {"error": "returned error"}
    raise ValueError(f"bad thing: {job['input'].get('why')}")


runpod.serverless.start({"handler": handler})
