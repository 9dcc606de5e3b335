"""How long the README's start command takes until every endpoint answers, against the
same start without model endpoints, in one run.

    python bench/start_time.py [--rounds 3]

Each round runs, one after the other (never two Rays at once), with no Ray running before:
1. the baseline: `serve run` of configs/serve.yaml with its `endpoints` emptied: Ray, Serve,
   HAProxy and the ingress with its job store, no model replica; ready when
   `GET /endpoints` answers;
2. `serve run configs/serve.yaml` as the README writes it; ready when every endpoint has
   answered a real job and every direct route a real call (tests/start_command.py, which
   the README start-command test shares).
Prints each round and the medians: seconds until ready, their ratio, and the target (every
endpoint answering within 60 s of the start on a 2-core machine without a GPU). On a
slower or busier machine both starts slow down; the ratio says what the models add.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.start_command import (  # noqa: E402
    CONFIG,
    START_COMMAND,
    answered_at,
    expected_of_the_config,
    serving,
)

TARGET_S = 60.0


def baseline_config(workdir: Path) -> Path:
    """configs/serve.yaml without its model endpoints (and their deployments' settings),
    with a job store of its own."""
    config = yaml.safe_load(CONFIG.read_text())
    (app,) = config["applications"]
    app["args"]["endpoints"] = {}
    app["args"]["jobs"]["store_url"] = f"sqlite:///{workdir}/jobs.sqlite3"
    app["deployments"] = [d for d in app.get("deployments", []) if d["name"] == "Ingress"]
    path = workdir / "serve.baseline.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def time_to_ready(config: Path, command: str, log: Path) -> float:
    expected = expected_of_the_config(config)
    with serving(command, log) as (server, started_at):
        answered_at(expected, server, started_at, log)
        return time.monotonic() - started_at


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rows: list[tuple[float, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        baseline = baseline_config(workdir)
        print("| round | baseline (no model endpoint) s | start command s | ratio |")
        print("|---|---|---|---|")
        for n in range(1, args.rounds + 1):
            base_s = time_to_ready(baseline, f"serve run {baseline}", workdir / "base.log")
            full_s = time_to_ready(CONFIG, START_COMMAND, workdir / "full.log")
            rows.append((base_s, full_s))
            print(f"| {n} | {base_s:.1f} | {full_s:.1f} | {full_s / base_s:.2f} |", flush=True)
    base_s = statistics.median(b for b, _ in rows)
    full_s = statistics.median(f for _, f in rows)
    print(f"| median | {base_s:.1f} | {full_s:.1f} | {full_s / base_s:.2f} |")
    verdict = "met" if full_s <= TARGET_S else "NOT met"
    print(f"\n`{START_COMMAND}`: every endpoint answered after {full_s:.1f} s (median of "
          f"{len(rows)}); target {TARGET_S:.0f} s: {verdict}. The models add "
          f"{full_s - base_s:.1f} s to the {base_s:.1f} s of Ray, Serve and the ingress.")


if __name__ == "__main__":
    main()
