"""Client-side helpers shared by the HTTP tests."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

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


class QuietHandler(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


class LocalHTTPServer:
    """A real HTTP server on a free loopback port, serving `handler` from a thread."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        from tests.conftest import free_port

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self.server.shutdown()
