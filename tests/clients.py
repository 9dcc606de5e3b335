"""Client-side helpers shared by the HTTP tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import runpod


@contextmanager
def runpod_sdk(base_url: str, api_key: str = "any-key-works-on-an-open-server") -> Iterator[None]:
    """Point the real `runpod` SDK at an app (what RUNPOD_ENDPOINT_BASE_URL does at import),
    restoring the module's settings afterwards."""
    saved = runpod.api_key, runpod.endpoint_url_base
    runpod.api_key, runpod.endpoint_url_base = api_key, f"{base_url}/v2"
    try:
        yield
    finally:
        runpod.api_key, runpod.endpoint_url_base = saved
