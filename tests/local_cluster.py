"""A Ray cluster of its own for fault tests: `ray start --head --block` and `serve run`
of a config, each in its own process group, so a test can stop it gracefully
(`serve shutdown`) or kill all of it (SIGKILL), then start it again on the same store.

`ray stop` would kill every Ray cluster on the machine (the test session's too), so the
cluster is ended by signalling its own process groups.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx
import yaml

from serve_app.local_cluster import answers, wait_until
from tests.conftest import free_port

BIN = Path(sys.executable).parent
DEMO = "deployments.handlers.demo_worker"


class Cluster:
    def __init__(self, tmp: Path, args: dict[str, Any],
                 deployments: list[dict[str, Any]] | None = None, num_cpus: int = 4) -> None:
        self.gcs_port, self.dash_port, self.http_port = free_port(), free_port(), free_port()
        self.num_cpus = num_cpus
        self.app = "faults"
        self.config = tmp / "serve.yaml"
        self.config.write_text(yaml.safe_dump({
            "http_options": {"host": "127.0.0.1", "port": self.http_port},
            "applications": [{"name": self.app, "route_prefix": "/",
                              "import_path": "serve_app.app:build_app", "args": args,
                              "deployments": deployments or []}],
        }))
        # Its own temp dir (short: Ray's socket paths must fit 107 bytes), so the cluster
        # never becomes the machine's "current cluster" that a later `ray.init()` or
        # `serve run` would try to join after it is gone.
        self.ray_tmp = tempfile.mkdtemp(prefix="rsp-ray-")
        self.procs: list[subprocess.Popen] = []
        self.log_path = tmp / "cluster.log"
        self.log = self.log_path.open("ab")
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.dashboard = f"http://127.0.0.1:{self.dash_port}"

    def _spawn(self, *args: str) -> subprocess.Popen:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_ADDRESS")}
        env["RAY_AUTH_MODE"] = "disabled"  # a throwaway local cluster
        proc = subprocess.Popen(args, stdout=self.log, stderr=self.log, env=env,
                                start_new_session=True, cwd=Path(__file__).parents[1])
        self.procs.append(proc)
        return proc

    def start(self, ready_path: str) -> None:
        """Start Ray and `serve run`; return once GET `ready_path` answers 200."""
        self._spawn(str(BIN / "ray"), "start", "--head", "--block", f"--port={self.gcs_port}",
                    f"--num-cpus={self.num_cpus}", "--include-dashboard=true",
                    f"--temp-dir={self.ray_tmp}", f"--dashboard-port={self.dash_port}",
                    "--dashboard-host=127.0.0.1")
        wait_until(lambda: answers(self.dashboard), "ray start", log=self.log_path)
        self._spawn(str(BIN / "serve"), "run", str(self.config),
                    f"--address=127.0.0.1:{self.gcs_port}")
        wait_until(lambda: httpx.get(f"{self.url}{ready_path}", timeout=2).status_code == 200,
                   "serve run", log=self.log_path)

    def replica_pids(self, deployment: str) -> list[int]:
        """The live processes of a deployment's replicas, from the cluster's own state."""
        from ray.util.state import list_actors

        actors = list_actors(address=self.dashboard, filters=[
            ("class_name", "=", f"ServeReplica:{self.app}:{deployment}"),
            ("state", "=", "ALIVE")])
        return [a.pid for a in actors]

    def shutdown_serve(self) -> None:
        subprocess.run([str(BIN / "serve"), "shutdown", "-y", f"--address={self.dashboard}"],
                       stdout=self.log, stderr=self.log, timeout=120, check=True)

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        """End the cluster's processes (SIGTERM: what `ray stop` does; SIGKILL: a crash)."""
        for proc in reversed(self.procs):
            if proc.poll() is None:
                os.killpg(proc.pid, sig)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=30)
        self.procs.clear()
        # The cluster's workers are gone with it: nothing answers on its HTTP port.
        wait_until(lambda: not answers(self.url), "cluster shutdown")

    def kill_leftovers(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
