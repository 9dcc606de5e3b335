"""A Ray cluster of several nodes on one machine, with the application deployed on it.

    python -m serve_app.local_cluster up configs/serve.gpu.yaml --workers 2 \\
        --postgres postgresql://postgres@127.0.0.1:5432/postgres --state-dir /tmp/rsp-cluster
    python -m serve_app.local_cluster down --state-dir /tmp/rsp-cluster

`up` starts a head node (no GPU) and `--workers` worker nodes, each `ray start --block` in
its own process group and each worker declaring `--worker-gpus` logical GPUs (model code
falls back to the CPU where there is no CUDA), creates a fresh PostgreSQL database for
the job store when `--postgres` names a server, deploys the config with `serve deploy`
and waits until the ingress answers. `down` ends every process group it started (never by
process name: other Ray clusters on the machine are left alone). The fault tests and
benchmarks drive the same `LocalCluster` from Python.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check: Callable[[], Any], what: str, timeout_s: float = 300,
               log: Path | None = None) -> Any:
    """Poll `check` (any error counts as not yet: the cluster may be mid-fault) until it
    returns something true."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if result := check():
                return result
        except Exception:  # noqa: BLE001 - retried until the deadline
            pass
        time.sleep(0.25)
    tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
    raise TimeoutError(f"{what} did not happen within {timeout_s} s\n{tail}")


def answers(url: str) -> bool:
    try:
        httpx.get(url, timeout=1)
        return True
    except httpx.HTTPError:
        return False


@dataclass
class ClusterState:
    """What `down` needs to end a cluster that `up` started (kept in state.json)."""

    gcs_port: int = field(default_factory=free_port)
    dash_port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    ray_tmp: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="rsp-ray-"))
    #: process-group leaders: the head's, then each worker's `ray start --block`
    nodes: list[int] = field(default_factory=list)
    database: str | None = None
    admin_dsn: str | None = None


class LocalCluster:
    def __init__(self, config: dict[str, Any], state_dir: Path, workers: int = 0,
                 head_cpus: float = 4, worker_cpus: float = 4, worker_gpus: float = 1,
                 env: dict[str, str] | None = None) -> None:
        self.state_dir = state_dir
        state_dir.mkdir(parents=True, exist_ok=True)
        self.state = ClusterState()
        self.workers, self.head_cpus = workers, head_cpus
        self.worker_cpus, self.worker_gpus = worker_cpus, worker_gpus
        self.env = env or {}
        self.config = _with_port(config, self.state.http_port)
        self.config_path = state_dir / "serve.yaml"
        self.log_path = state_dir / "cluster.log"
        self._procs: dict[int, subprocess.Popen] = {}
        self.url = f"http://127.0.0.1:{self.state.http_port}"
        self.dashboard = f"http://127.0.0.1:{self.state.dash_port}"
        self.app = self.config["applications"][0]["name"]

    # -- the job store -------------------------------------------------------------------
    def use_postgres(self, admin_dsn: str) -> str:
        """Create a fresh database on the server and point the application's store at it."""
        import psycopg

        name = f"rsp_cluster_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.state.database, self.state.admin_dsn = name, admin_dsn
        url = f"{admin_dsn.rpartition('/')[0]}/{name}"
        self.config["applications"][0]["args"].setdefault("jobs", {})["store_url"] = url
        return url

    # -- processes -----------------------------------------------------------------------
    def _spawn(self, *args: str) -> subprocess.Popen:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_ADDRESS")}
        env |= {"RAY_AUTH_MODE": "disabled"} | self.env  # a throwaway local cluster
        with self.log_path.open("ab") as log:
            proc = subprocess.Popen(args, stdout=log, stderr=log, env=env, cwd=REPO,
                                    start_new_session=True)
        self._procs[proc.pid] = proc
        return proc

    def _ray_start(self, *args: str) -> int:
        proc = self._spawn(str(BIN / "ray"), "start", "--block", f"--temp-dir={self.state.ray_tmp}",
                           *args)
        self.state.nodes.append(proc.pid)
        self._save()
        return proc.pid

    def start_ray(self) -> None:
        s = self.state
        self._ray_start("--head", f"--port={s.gcs_port}", f"--num-cpus={self.head_cpus}",
                        "--num-gpus=0", "--include-dashboard=true",
                        f"--dashboard-port={s.dash_port}", "--dashboard-host=127.0.0.1")
        wait_until(lambda: answers(self.dashboard), "the head node", log=self.log_path)
        for _ in range(self.workers):
            self.add_worker()

    def add_worker(self, timeout_s: float = 300) -> int:
        """Start a worker node and wait until it joined. One at a time: nodes starting
        together on one machine can pick the same free port and fail to bind. A start that
        gives up (`ray start` exits: "timed out during startup", seen with a busy GCS on 2
        cores) is started again, as a node supervisor would, until `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while True:
            leader = self._ray_start(f"--address=127.0.0.1:{self.state.gcs_port}",
                                     f"--num-cpus={self.worker_cpus}",
                                     f"--num-gpus={self.worker_gpus}")
            proc = self._procs[leader]
            wait_until(lambda n=leader: self._joined_or_gave_up(n), "the worker node to join",
                       max(1.0, deadline - time.monotonic()), self.log_path)
            if proc.poll() is None:
                return leader
            _end_group(leader, signal.SIGKILL, proc)
            self.state.nodes.remove(leader)
            self._save()
            if time.monotonic() >= deadline:
                raise TimeoutError(f"no worker node joined within {timeout_s} s")

    def _joined_or_gave_up(self, leader: int) -> bool:
        if self._procs[leader].poll() is not None:
            return True
        # This node by its id: a node just killed may still count as alive for a while.
        return self.node_id(leader) in {n["node_id"] for n in self.alive_nodes()}

    def alive_nodes(self) -> list[dict[str, Any]]:
        from ray.util.state import list_nodes

        return [n.__dict__ for n in list_nodes(address=self.dashboard)
                if n.state == "ALIVE"]

    def deploy(self, ready_path: str, timeout_s: float = 600) -> float:
        """`serve deploy` the config; return the seconds until GET `ready_path` answers."""
        self.config_path.write_text(yaml.safe_dump(self.config, sort_keys=False))
        started = time.monotonic()
        with self.log_path.open("ab") as log:
            subprocess.run([str(BIN / "serve"), "deploy", str(self.config_path),
                            f"--address={self.dashboard}"], stdout=log, stderr=log,
                           check=True, timeout=120, cwd=REPO)
        wait_until(lambda: httpx.get(f"{self.url}{ready_path}", timeout=3).status_code == 200,
                   "the application", timeout_s, self.log_path)
        return time.monotonic() - started

    def up(self, ready_path: str) -> float:
        self.start_ray()
        return self.deploy(ready_path)

    # -- faults --------------------------------------------------------------------------
    def replica_pids(self, deployment: str) -> list[int]:
        """Live processes of a deployment's replicas, from the cluster's own state."""
        from ray.util.state import list_actors

        return [a.pid for a in list_actors(address=self.dashboard, filters=[
            ("class_name", "=", f"ServeReplica:{self.app}:{deployment}"),
            ("state", "=", "ALIVE")], limit=1000)]

    def replica_nodes(self, deployment: str) -> list[str]:
        from ray.util.state import list_actors

        return [a.node_id for a in list_actors(address=self.dashboard, filters=[
            ("class_name", "=", f"ServeReplica:{self.app}:{deployment}"),
            ("state", "=", "ALIVE")], limit=1000)]

    def raylet_pid(self, node_leader: int) -> int:
        """The raylet started by one node's `ray start` (killing it loses the node)."""
        import psutil

        for child in psutil.Process(node_leader).children(recursive=True):
            if child.name() == "raylet":
                return child.pid
        raise LookupError(f"no raylet under process {node_leader}")

    def node_id(self, node_leader: int) -> str:
        """The Ray node id of one node's `ray start` process group (from its raylet)."""
        import psutil

        for arg in psutil.Process(self.raylet_pid(node_leader)).cmdline():
            if arg.startswith("--node_id="):
                return arg.split("=", 1)[1]
        raise LookupError(f"the raylet under process {node_leader} names no node id")

    # -- stopping ------------------------------------------------------------------------
    def shutdown_serve(self) -> None:
        with self.log_path.open("ab") as log:
            subprocess.run([str(BIN / "serve"), "shutdown", "-y",
                            f"--address={self.dashboard}"], stdout=log, stderr=log,
                           timeout=120, check=True)

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        """End every node (SIGTERM: what `ray stop` does; SIGKILL: a crash), workers first."""
        for leader in reversed(self.state.nodes):
            _end_group(leader, sig, self._procs.get(leader))
        self.state.nodes.clear()
        self._save()
        wait_until(lambda: not answers(self.url), "the cluster to stop", 120)

    def down(self) -> None:
        """Stop everything and drop the database it created."""
        for leader in reversed(self.state.nodes):
            _end_group(leader, signal.SIGKILL, self._procs.get(leader))
        self.state.nodes.clear()
        _drop_database(self.state)
        self.state.database = None
        self._save()

    def _save(self) -> None:
        (self.state_dir / "state.json").write_text(json.dumps(asdict(self.state)))


def _with_port(config: dict[str, Any], port: int) -> dict[str, Any]:
    config = json.loads(json.dumps(config))  # a copy
    config["http_options"] = {**config.get("http_options", {}), "host": "127.0.0.1",
                              "port": port}
    return config


def _end_group(leader: int, sig: signal.Signals,
               proc: subprocess.Popen | None = None) -> None:
    """Signal a process group and wait (30 s at most) until none of it is left."""
    try:
        os.killpg(leader, sig)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc is not None:
            proc.poll()  # reap our own child: a zombie still counts as in the group
        try:
            os.killpg(leader, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    try:
        os.killpg(leader, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _drop_database(state: ClusterState) -> None:
    if state.database and state.admin_dsn:
        import psycopg

        with psycopg.connect(state.admin_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{state.database}" WITH (FORCE)')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serve_app.local_cluster",
                                     description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the nodes, the job store and the application")
    up.add_argument("config", type=Path)
    up.add_argument("--workers", type=int, default=2)
    up.add_argument("--worker-gpus", type=float, default=1)
    up.add_argument("--worker-cpus", type=float, default=4)
    up.add_argument("--head-cpus", type=float, default=4)
    up.add_argument("--postgres", help="a PostgreSQL server's DSN; a fresh database is made")
    up.add_argument("--state-dir", type=Path, default=Path("/tmp/rsp-cluster"))
    down = sub.add_parser("down", help="end what `up` started")
    down.add_argument("--state-dir", type=Path, default=Path("/tmp/rsp-cluster"))
    args = parser.parse_args(argv)
    if args.command == "down":
        state = ClusterState(**json.loads((args.state_dir / "state.json").read_text()))
        for leader in reversed(state.nodes):
            _end_group(leader, signal.SIGKILL)
        _drop_database(state)
        (args.state_dir / "state.json").unlink()
        print("stopped")
        return 0
    cluster = LocalCluster(yaml.safe_load(args.config.read_text()), args.state_dir,
                           args.workers, args.head_cpus, args.worker_cpus, args.worker_gpus)
    if args.postgres:
        print("job store:", cluster.use_postgres(args.postgres))
    try:
        took = cluster.up("/endpoints")
    except BaseException:
        cluster.down()
        raise
    print(f"{1 + args.workers} nodes; application ready after {took:.0f} s at {cluster.url} "
          f"(dashboard {cluster.dashboard}); stop with: python -m serve_app.local_cluster "
          f"down --state-dir {args.state_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
