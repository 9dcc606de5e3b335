"""The application served by real Ray Serve, with real HTTP to its ingress.

Endpoints: `ipa-generation` (the G2P model) and unchanged RunPod worker handlers:
`demo` (progress, errors), `serial` (one job at a time, a queue of 5), `stream` and
`astream` (generator handlers). A second app under /secured has API keys.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.clients import Receiver

API_KEY = "spine-7f3a9c2e-41d8-b6e0"
#: a second tenant and an admin of the secured app
OTHER_KEY = "spine-other-5c1e8d7a-93b2"
ADMIN_KEY = "spine-admin-e2a94f60-7bd1"
DEMO = "deployments.handlers.demo_worker"
#: the demo worker, recording which jobs ran to their end (tests.spine.marked_worker)
MARKED = "tests.spine.marked_worker:handler"


def app_args(store: Path, **jobs: Any) -> dict[str, Any]:
    return {
        "jobs": {"store_url": f"sqlite:///{store}", "lease_s": 2, "poll_interval_s": 0.1,
                 "sweep_interval_s": 0.3, "webhook_retry_delay_s": 0.3,
                 "run_retention_ms": 120_000, "runsync_retention_ms": 3_000,
                 # the serial fixture purges after every test
                 "rate_limits": {"purge_queue": 1000}, "policy": {"ttl_min_ms": 1000},
                 **jobs},
        "endpoints": {"ipa-generation": {"route": "ipa"}},
        # the webhook receivers are local servers
        "outbound": {"allow_networks": ["127.0.0.1/32"]},
        "handlers": {
            "demo": {"handler": MARKED},
            "serial": {"handler": MARKED, "endpoint": {"max_concurrency": 1, "max_queue": 5}},
            "stream": {"handler": f"{DEMO}:stream_handler"},
            "astream": {"handler": f"{DEMO}:async_stream_handler"},
        },
    }


@pytest.fixture(scope="session")
def base_url(serve_port: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from ray import serve

    from serve_app.app import build_app

    store = tmp_path_factory.mktemp("jobs") / "jobs.sqlite3"
    serve.run(build_app(app_args(store)), name="spine", route_prefix="/")
    yield f"http://127.0.0.1:{serve_port}"
    serve.delete("spine")


@pytest.fixture(scope="session")
def secured_url(serve_port: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from ray import serve

    from serve_app.app import build_app

    args = app_args(tmp_path_factory.mktemp("secured") / "jobs.sqlite3",
                    api_keys=[API_KEY, OTHER_KEY, {"key": ADMIN_KEY, "admin": True}],
                    rate_limits={}, policy={})  # RunPod's defaults
    args["endpoints"] = {}
    args["handlers"] = {"demo": {"handler": DEMO},
                        "serial": {"handler": DEMO, "endpoint": {"max_concurrency": 1}}}
    serve.run(build_app(args), name="secured", route_prefix="/secured")
    yield f"http://127.0.0.1:{serve_port}/secured"
    serve.delete("secured")


@pytest.fixture()
def client(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=120) as c:
        yield c


@pytest.fixture()
def serial(client: httpx.Client) -> Iterator[str]:
    """The one-at-a-time endpoint, left empty after each test."""
    yield "/v2/serial"
    client.post("/v2/serial/purge-queue")
    for job in client.get("/v2/serial/dead-letter").json():
        client.post(f"/v2/serial/cancel/{job['id']}")


def wait_for(client: httpx.Client, url: str, predicate, timeout_s: float = 60) -> dict:
    """Poll `url` until `predicate(body)` holds; fail with the last body otherwise."""
    deadline = time.monotonic() + timeout_s
    body: dict = {}
    while time.monotonic() < deadline:
        response = client.get(url)
        body = response.json() if response.status_code == 200 else {"_http": response.status_code}
        if predicate(body):
            return body
        time.sleep(0.1)
    raise AssertionError(f"{url} never satisfied the condition; last: {body}")


@pytest.fixture(scope="session")
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()
