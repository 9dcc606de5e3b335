"""`python -m serve_app.plan CONFIG [--cpus N] [--gpus N] [--node cpus=N,gpus=M ...]`.

Exit status: 0 when the plan holds, 1 when it does not (each problem on stderr), 2 when
the config or the flags are not usable.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from serve_app.plan.graph import ConfigError
from serve_app.plan.packing import Node
from serve_app.plan.planner import make_plan
from serve_app.plan.report import render

#: the resource Ray gives the head node only
HEAD_RESOURCE = "node:__internal_head__"


def parse_node(spec: str, index: int) -> Node:
    """`cpus=8,gpus=1[,name=gpu-a]` -> a Node (node<index> unless named)."""
    fields: dict[str, str] = {}
    for part in spec.split(","):
        key, sep, value = part.partition("=")
        if not sep or key.strip() not in {"cpus", "gpus", "name"}:
            raise argparse.ArgumentTypeError(
                f"--node {spec!r}: expected cpus=N[,gpus=M][,name=NAME]")
        fields[key.strip()] = value.strip()
    try:
        cpus = float(fields.get("cpus", "0"))
        gpus = int(fields.get("gpus", "0"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--node {spec!r}: {exc}") from exc
    if cpus < 0 or gpus < 0:
        raise argparse.ArgumentTypeError(f"--node {spec!r}: negative resources")
    return Node(fields.get("name") or f"node{index}", cpus, gpus)


def nodes_from_ray(ray_nodes: list[dict[str, Any]]) -> list[Node]:
    """Alive nodes of `ray.nodes()`, head first, with their total logical CPUs and GPUs.

    Totals, not what is free now: the question is whether the config fits the cluster,
    and an app already running there holds resources this config would replace.
    """
    alive = [n for n in ray_nodes if n.get("Alive")]
    alive.sort(key=lambda n: (HEAD_RESOURCE not in n.get("Resources", {}),
                              n.get("NodeManagerAddress", ""), n.get("NodeID", "")))
    nodes = []
    for i, n in enumerate(alive):
        resources = n.get("Resources", {})
        head = ", head" if HEAD_RESOURCE in resources else ""
        nodes.append(Node(f"node{i}", float(resources.get("CPU", 0)),
                          int(resources.get("GPU", 0)),
                          f"{n.get('NodeManagerAddress', '?')}{head}"))
    return nodes


def cluster_nodes() -> list[Node]:
    """The running cluster's nodes; the only place the plan connects to Ray."""
    import logging

    import ray

    ray.init(address="auto", logging_level=logging.ERROR, log_to_driver=False)
    try:
        return nodes_from_ray(ray.nodes())
    finally:
        ray.shutdown()  # disconnects this driver; the cluster keeps running


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m serve_app.plan",
        description="Where a Serve config's replicas go on the given nodes (or the running "
                    "cluster), and whether its GPU shares and CUDA memory caps hold.")
    p.add_argument("config", type=Path, help="a Serve config, e.g. configs/serve.gpu.yaml")
    p.add_argument("--app", help="application name, when the config has several")
    p.add_argument("--cpus", type=float, help="one node with this many logical CPUs")
    p.add_argument("--gpus", type=int, help="... and this many GPUs (default 0)")
    p.add_argument("--node", action="append", default=[], metavar="cpus=N,gpus=M[,name=X]",
                   help="a node; repeat for several, in the order to fill them")
    p.add_argument("--autoscaled", choices=("max", "min"), default="max",
                   help="pack autoscaling deployments at their max (default) or min replicas")
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    opts = p.parse_args(argv)
    if opts.node and (opts.cpus is not None or opts.gpus is not None):
        p.error("give --cpus/--gpus (one node) or --node (several), not both")
    try:
        if opts.node:
            nodes = [parse_node(spec, i) for i, spec in enumerate(opts.node)]
        elif opts.cpus is not None or opts.gpus is not None:
            nodes = [Node("node0", opts.cpus or 0.0, opts.gpus or 0)]
        else:
            nodes = cluster_nodes()
    except argparse.ArgumentTypeError as exc:
        p.error(str(exc))
    except ConnectionError as exc:  # ray.init finds no running cluster
        print(f"error: {exc}\nGive the resources instead: --cpus N --gpus N, or --node "
              f"cpus=N,gpus=M per node.", file=sys.stderr)
        return 2
    try:
        plan = make_plan(opts.config, nodes, opts.app, opts.autoscaled)
    except (ConfigError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(render(plan))
    if plan.problems:
        print(f"error: the plan does not hold ({len(plan.problems)} problem(s) above)",
              file=sys.stderr)
        return 1
    return 0
