"""A job accepted with 200 survives `serve shutdown`, the Ray cluster going away, and a
new `serve run`, then completes.

The cluster here is a separate `ray start --head --block` process: `ray stop` would kill
every Ray cluster on the machine (this test session's too), so the test ends that one
cluster by signalling its process group, which is what `ray stop` does to it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.conftest import free_port

BIN = Path(sys.executable).parent
DEMO = "deployments.handlers.demo_worker"


class Cluster:
    def __init__(self, tmp: Path) -> None:
        self.gcs_port, self.dash_port, self.http_port = free_port(), free_port(), free_port()
        self.config = tmp / "serve.yaml"
        self.config.write_text(yaml.safe_dump({
            "http_options": {"host": "127.0.0.1", "port": self.http_port},
            "applications": [{
                "name": "durable", "route_prefix": "/", "import_path": "serve_app.app:build_app",
                "args": {
                    "jobs": {"store_url": f"sqlite:///{tmp}/jobs.sqlite3", "lease_s": 2,
                             "sweep_interval_s": 0.5},
                    "endpoints": {},
                    "handlers": {"serial": {"handler": DEMO,
                                            "endpoint": {"max_concurrency": 1}}},
                },
                # Shutdown must not simply wait for the running job to finish.
                "deployments": [{"name": "handler-serial", "graceful_shutdown_timeout_s": 1}],
            }],
        }))
        # Its own temp dir (short: Ray's socket paths must fit 107 bytes), so the cluster
        # never becomes the machine's "current cluster" that a later `ray.init()` or
        # `serve run` would try to join after it is gone.
        self.ray_tmp = tempfile.mkdtemp(prefix="rsp-ray-")
        self.procs: list[subprocess.Popen] = []
        self.log_path = tmp / "cluster.log"
        self.log = self.log_path.open("ab")
        self.url = f"http://127.0.0.1:{self.http_port}"

    def _spawn(self, *args: str) -> subprocess.Popen:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_ADDRESS")}
        env["RAY_AUTH_MODE"] = "disabled"  # a throwaway local cluster
        proc = subprocess.Popen(args, stdout=self.log, stderr=self.log, env=env,
                                start_new_session=True, cwd=Path(__file__).parents[1])
        self.procs.append(proc)
        return proc

    def start(self) -> None:
        self._spawn(str(BIN / "ray"), "start", "--head", "--block", f"--port={self.gcs_port}",
                    "--num-cpus=4", "--include-dashboard=true", f"--temp-dir={self.ray_tmp}",
                    f"--dashboard-port={self.dash_port}", "--dashboard-host=127.0.0.1")
        self._wait(lambda: _answers(f"http://127.0.0.1:{self.dash_port}"), "ray start",
                   log=self.log_path)
        self._spawn(str(BIN / "serve"), "run", str(self.config),
                    f"--address=127.0.0.1:{self.gcs_port}")
        self._wait(lambda: httpx.get(f"{self.url}/v2/serial/health", timeout=2).status_code
                   == 200, "serve run", log=self.log_path)

    def stop(self) -> None:
        """`serve shutdown`, then end the cluster."""
        subprocess.run([str(BIN / "serve"), "shutdown", "-y",
                        f"--address=http://127.0.0.1:{self.dash_port}"],
                       stdout=self.log, stderr=self.log, timeout=120, check=True)
        for proc in reversed(self.procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
        self.procs.clear()
        # The cluster's workers are gone with it: nothing answers on its HTTP port.
        self._wait(lambda: not _answers(self.url), "cluster shutdown")

    @staticmethod
    def _wait(check, what: str, timeout_s: float = 300, log: Path | None = None) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if check():
                    return
            except (httpx.HTTPError, OSError):
                pass
            time.sleep(0.5)
        tail = log.read_text(errors="replace")[-3000:] if log else ""
        raise AssertionError(f"{what} did not happen within {timeout_s} s\n{tail}")


def _answers(url: str) -> bool:
    try:
        httpx.get(url, timeout=1)
        return True
    except httpx.HTTPError:
        return False


@pytest.fixture()
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path)
    yield c
    for proc in c.procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    shutil.rmtree(c.ray_tmp, ignore_errors=True)


def test_accepted_jobs_survive_a_full_restart(cluster: Cluster) -> None:
    cluster.start()
    running = httpx.post(f"{cluster.url}/v2/serial/run",
                         json={"input": {"delay_s": 20, "echo": "running"}}).json()
    queued = httpx.post(f"{cluster.url}/v2/serial/run", json={"input": {"echo": "queued"}}).json()
    Cluster._wait(lambda: httpx.get(f"{cluster.url}/v2/serial/status/{running['id']}")
                  .json()["status"] == "IN_PROGRESS", "job start")

    cluster.stop()
    cluster.start()

    def final(job_id: str) -> dict:
        body: dict = {}
        Cluster._wait(lambda: (body.update(httpx.get(
            f"{cluster.url}/v2/serial/status/{job_id}").json()) or
            body["status"] == "COMPLETED"), f"job {job_id} to complete", 120)
        return body

    first, second = final(running["id"]), final(queued["id"])
    assert first["retries"] == 1, first  # its lease expired with the old cluster
    assert first["output"]["echo"] == "running"
    assert second["output"]["echo"] == "queued" and second["retries"] == 0
    cluster.stop()
