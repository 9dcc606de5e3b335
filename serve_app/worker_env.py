"""Print the environment an unmodified RunPod worker needs to pull an endpoint's jobs here.

    env $(python -m serve_app.worker_env my-endpoint --url http://HOST:8000) python worker.py

Each call makes a new worker id (RUNPOD_POD_ID): run it once per worker process.
The endpoint must be under `workers:` in the config, which also gives the worker key.
"""

from __future__ import annotations

import argparse
import os
import sys
import uuid
from pathlib import Path
from typing import Any

import yaml

from serve_app.api.keys import keys_from_env
from serve_app.settings import AppArgs, load_args


def worker_environment(endpoint: str, base_url: str, key: str, lease_s: float,
                       worker_id: str | None = None) -> dict[str, str]:
    """RUNPOD_* variables for one worker of `endpoint` served at `base_url` (the app's
    root, e.g. http://host:8000)."""
    root = f"{base_url.rstrip('/')}/v2/{endpoint}"
    # The SDK appends `&job_in_progress=...` and `&isStream=...`: the URLs need a query.
    query = "?worker=runpod"
    return {
        "RUNPOD_WEBHOOK_GET_JOB": f"{root}/job-take/$ID{query}",
        "RUNPOD_WEBHOOK_POST_OUTPUT": f"{root}/job-done/$RUNPOD_POD_ID/$ID{query}",
        "RUNPOD_WEBHOOK_POST_STREAM": f"{root}/job-stream/$RUNPOD_POD_ID/$ID{query}",
        "RUNPOD_WEBHOOK_PING": f"{root}/ping/$RUNPOD_POD_ID",
        # Three pings per lease: one or two may be lost before the jobs are. The SDK
        # counts whole seconds.
        "RUNPOD_PING_INTERVAL": str(max(1, int(lease_s / 3)) * 1000),
        "RUNPOD_POD_ID": worker_id or f"worker-{uuid.uuid4().hex[:12]}",
        "RUNPOD_AI_API_KEY": key,
        # RunPod's own start-up checks (4 GB free, 8.8.8.8 reachable) do not apply here.
        "RUNPOD_SKIP_AUTO_SYSTEM_CHECKS": "true",
    }


def app_args(config: Path, app_name: str | None) -> tuple[AppArgs, str]:
    """The validated args and route prefix of the config's application."""
    document: dict[str, Any] = yaml.safe_load(config.read_text())
    apps = document.get("applications") or []
    chosen = [a for a in apps if app_name in (None, a.get("name"))]
    if not chosen:
        raise SystemExit(f"{config}: no application {app_name!r}")
    return load_args(chosen[0].get("args")), chosen[0].get("route_prefix") or "/"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("endpoint", help="an endpoint under `workers:` in the config")
    parser.add_argument("--url", default="http://127.0.0.1:8000",
                        help="where workers reach the ingress (default %(default)s)")
    parser.add_argument("--config", type=Path, default=Path("configs/serve.yaml"))
    parser.add_argument("--app", default=None, help="the application's name in the config")
    parser.add_argument("--key", default=None, help="the worker key (default: the config's "
                        "first, or the first in its worker_keys_env variable)")
    parser.add_argument("--worker-id", default=None)
    options = parser.parse_args(argv)

    args, prefix = app_args(options.config, options.app)
    spec = args.workers.get(options.endpoint)
    if spec is None:
        raise SystemExit(f"{options.config}: endpoint {options.endpoint!r} is not under "
                         f"workers: (those are: {', '.join(sorted(args.workers)) or 'none'})")
    key = options.key or next(iter(k.key for k in spec.worker_keys), None)
    if key is None and spec.worker_keys_env and os.environ.get(spec.worker_keys_env):
        key = keys_from_env(spec.worker_keys_env, "worker_keys_env")[0].key
    if key is None:
        raise SystemExit(f"no worker key for {options.endpoint!r} here: pass --key")
    base = options.url.rstrip("/") + prefix.rstrip("/")
    env = worker_environment(options.endpoint, base, key, args.jobs.workers.lease_s,
                             options.worker_id)
    sys.stdout.write("".join(f"{name}={value}\n" for name, value in env.items()))


if __name__ == "__main__":
    main()
