"""A generator handler whose final output is every chunk (return_aggregate_stream)."""

import time

import runpod


def handler(job):
    for i in range(job["input"]["chunks"]):
        time.sleep(0.2)
        yield {"index": i}


runpod.serverless.start({"handler": handler, "return_aggregate_stream": True})
