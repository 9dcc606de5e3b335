"""Client-side helpers shared by the HTTP tests."""

from __future__ import annotations

import json
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

    def __init__(self, handler: type[BaseHTTPRequestHandler], port: int | None = None) -> None:
        from tests.conftest import free_port

        self.port = port or free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()  # free the port: a test may listen on it again


class Receiver(LocalHTTPServer):
    """A real local webhook receiver: paths under /ok answer 200, others 500. It keeps
    each call's path, parsed body, raw body and headers."""

    def __init__(self, port: int | None = None) -> None:
        self.calls: list[tuple[str, dict]] = []
        self.raw: list[tuple[str, bytes, dict[str, str]]] = []
        receiver = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.raw.append((self.path, raw, dict(self.headers.items())))
                receiver.calls.append((self.path, json.loads(raw)))
                self.send_response(200 if self.path.startswith("/ok") else 500)
                self.end_headers()

        super().__init__(Handler, port)

    def received(self, path: str) -> list[dict]:
        return [body for p, body in self.calls if p == path]
