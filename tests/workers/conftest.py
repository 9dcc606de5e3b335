"""External RunPod workers against the real app: worker processes running only the
`runpod` SDK and a handler file, joined by the environment `serve_app.worker_env`
prints, and jobs sent with the `runpod` SDK client."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

HANDLERS = Path(__file__).parent / "handlers"
WORKER_KEY = "wk-3d9f1a7c5e2b8046"
CLIENT_KEY = "client-8e41c0d2b7a95f36"
#: endpoint -> handler file; each endpoint is served by external workers only
ENDPOINTS = {"w-sync": "sync_worker.py", "w-async": "async_worker.py",
             "w-stream": "stream_worker.py", "w-conc": "concurrent_worker.py",
             "w-progress": "progress_worker.py", "w-raise": "raising_worker.py",
             "w-refresh": "refresh_worker.py", "w-kill": "async_worker.py"}
PREFIX = "/wk"


def app_args(store: Path) -> dict[str, Any]:
    return {
        "jobs": {"store_url": f"sqlite:///{store}", "poll_interval_s": 0.1,
                 "sweep_interval_s": 0.3, "api_keys": [CLIENT_KEY],
                 "policy": {"execution_timeout_min_ms": 1000},
                 "workers": {"lease_s": 3, "take_wait_s": 2, "stop_wait_s": 2}},
        "endpoints": {},
        "handlers": {"wk-demo": {"handler": "deployments.handlers.demo_worker"}},
        "workers": {name: {"worker_keys": [WORKER_KEY]} for name in ENDPOINTS},
    }


@pytest.fixture(scope="session")
def worker_app(serve_port: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """The app, and a config file naming it for `serve_app.worker_env`."""
    from ray import serve

    from serve_app.app import build_app

    root = tmp_path_factory.mktemp("workers")
    args = app_args(root / "jobs.sqlite3")
    config = root / "serve.yaml"
    config.write_text(yaml.safe_dump({"applications": [
        {"name": "workers", "route_prefix": PREFIX, "import_path": "serve_app.app:build_app",
         "args": args}]}))
    serve.run(build_app(args), name="workers", route_prefix=PREFIX)
    yield {"url": f"http://127.0.0.1:{serve_port}{PREFIX}",
           "server": f"http://127.0.0.1:{serve_port}", "config": config, "logs": root}
    serve.delete("workers")


class Worker:
    """One worker process (its own session: a SIGKILL to the group ends it and the ping
    process it forked, as a container's end does)."""

    def __init__(self, endpoint: str, app: dict, env: dict[str, str]) -> None:
        self.endpoint, self.id = endpoint, env["RUNPOD_POD_ID"]
        self.log = app["logs"] / f"{self.id}.log"
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "RUNPOD_"))}
        self.process = subprocess.Popen(
            [sys.executable, str(HANDLERS / ENDPOINTS[endpoint])], env=clean | env,
            stdout=self.log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)

    def kill(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=10)


def worker_env(app: dict, endpoint: str) -> dict[str, str]:
    """What the documented command prints, parsed as `env $(...)` would."""
    out = subprocess.run(
        [sys.executable, "-m", "serve_app.worker_env", endpoint, "--url", app["server"],
         "--config", str(app["config"])], capture_output=True, text=True, check=True,
        timeout=60).stdout
    return dict(line.split("=", 1) for line in out.split())


@pytest.fixture()
def start_worker(worker_app: dict) -> Iterator[Callable[[str], Worker]]:
    started: list[Worker] = []

    def start(endpoint: str) -> Worker:
        worker = Worker(endpoint, worker_app, worker_env(worker_app, endpoint))
        started.append(worker)
        wait_until(lambda: worker.id in seen_workers(worker_app, endpoint),
                   f"worker {worker.id} to ping", 30, worker)
        return worker

    yield start
    for worker in started:
        worker.kill()


def seen_workers(app: dict, endpoint: str) -> str:
    """The ids of the endpoint's workers that have asked for a job, from the store."""
    import sqlite3

    store = Path(app["config"]).parent / "jobs.sqlite3"
    with sqlite3.connect(store) as conn:
        rows = conn.execute("SELECT id FROM workers WHERE endpoint = ? AND last_take IS NOT "
                            "NULL", (endpoint,)).fetchall()
    return " ".join(r[0] for r in rows)


def health(app: dict, endpoint: str) -> dict:
    return httpx.get(f"{app['url']}/v2/{endpoint}/health",
                     headers={"Authorization": CLIENT_KEY}, timeout=30).json()


def wait_until(predicate: Callable[[], Any], what: str, timeout_s: float = 30,
               worker: Worker | None = None) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.1)
    log = worker.log.read_text()[-3000:] if worker else ""
    raise AssertionError(f"timed out waiting for {what}\n{log}")
