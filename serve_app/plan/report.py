"""The plan as text: a row per deployment, a line per node, then the verdict."""

from __future__ import annotations

from collections import Counter

from serve_app.plan.packing import UNIT, NodeState, amount, units
from serve_app.plan.planner import Plan

HEADER = ("deployment", "replicas", "CPU each", "GPU each", "CUDA cap", "placed")


def render(plan: Plan) -> str:
    nodes = ", ".join(_node_title(n.name, n.cpus, n.gpus, n.label) for n in plan.nodes)
    lines = [f"{plan.config}: application {plan.app.app_name!r} on {nodes}", ""]
    rows = [HEADER]
    total_replicas, total_cpu, total_gpu = 0, 0, 0
    for d in plan.app.deployments:
        count = d.replicas(plan.autoscaled)
        total_replicas += count
        total_cpu += units(d.cpus) * count
        total_gpu += units(d.gpus) * count
        cap = plan.cap(d.name)
        rows.append((d.name, d.replicas_text(), f"{d.cpus:g}", _or_dash(d.gpus),
                     _or_dash(cap), _placed(plan, d.name, count)))
    rows.append(("total", str(total_replicas), f"{amount(total_cpu):g}",
                 f"{amount(total_gpu):g}", "", ""))
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
              for r in rows]
    if any(d.autoscaling for d in plan.app.deployments):
        lines.append(f"(autoscaling deployments packed at their {plan.autoscaled} replicas)")
    lines += [f"note: {d.name} also asks for {d.unplanned}, which the plan does not pack"
              for d in plan.app.deployments if d.unplanned]
    lines.append("")
    lines += [_node_use(state) for state in plan.packing.states]
    lines.append("")
    if plan.problems:
        lines.append(f"does NOT hold ({len(plan.problems)} problem(s)):")
        lines += [f"- {p}" for p in plan.problems]
    else:
        lines.append("holds: every replica has a place, and the CUDA caps on each GPU fit it")
    return "\n".join(lines)


def _node_title(name: str, cpus: float, gpus: int, label: str) -> str:
    about = f"{cpus:g} CPU, {gpus} GPU" + (f", {label}" if label else "")
    return f"{name} ({about})"


def _or_dash(value: float | None) -> str:
    return "-" if not value else f"{value:g}"


def _placed(plan: Plan, deployment: str, count: int) -> str:
    spots: Counter = Counter()
    for i in range(count):
        spot = plan.packing.placed.get((deployment, i))
        if spot is None:
            spots["NOT PLACED"] += 1
        else:
            node, gpus = spot
            spots[node + "".join(f"/GPU{g}" for g in gpus)] += 1
    return ", ".join(where if n == 1 else f"{where} x{n}" for where, n in spots.items())


def _node_use(state: NodeState) -> str:
    node = state.node
    used = units(node.cpus) - state.cpu_free
    text = (f"{node.name}: CPU {amount(used):g} of {node.cpus:g} used "
            f"({amount(state.cpu_free):g} free)")
    for i, free in enumerate(state.gpu_free):
        caps = state.caps.get(i, [])
        cap_total = amount(sum(units(c) for _, c in caps))
        text += f"; GPU{i} {amount(UNIT - free):g} shared, CUDA caps {cap_total:g}"
    return text
