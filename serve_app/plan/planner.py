"""A resource plan: the config's deployments, their GPU rules, and a packing onto nodes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from serve_app.plan.gpu_rules import gpu_problems, model_gpu
from serve_app.plan.graph import AppPlanInput, load_application
from serve_app.plan.packing import Node, Packing, Replica, cap_problems, pack, units


@dataclass(frozen=True)
class Plan:
    config: Path
    app: AppPlanInput
    nodes: list[Node]
    autoscaled: str  #: "max" or "min": which end of autoscaling ranges was packed
    packing: Packing
    problems: list[str]

    def cap(self, deployment: str) -> float | None:
        """The CUDA memory cap a deployment's replicas set, None when they set none."""
        model = model_gpu(deployment, self.app.args)
        return model.cap if model else None


def make_plan(config: Path, nodes: list[Node], app_name: str | None = None,
              autoscaled: str = "max") -> Plan:
    """Plan `config`'s application on `nodes`; `problems` is empty when it all holds."""
    app = load_application(config, app_name)
    replicas = []
    for d in app.deployments:
        model = model_gpu(d.name, app.args)
        cap = model.cap if model else None
        replicas += [Replica(d.name, i, units(d.cpus), units(d.gpus), cap,
                             d.max_replicas_per_node)
                     for i in range(d.replicas(autoscaled))]
    packing = pack(replicas, nodes)
    have_gpus = any(n.gpus for n in nodes)
    problems = (packing.problems + gpu_problems(app.deployments, app.args, have_gpus)
                + cap_problems(packing))
    return Plan(config, app, nodes, autoscaled, packing, problems)
