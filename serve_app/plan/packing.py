"""First-fit-decreasing packing of replicas onto nodes, on Ray's logical resources.

Mirrors what Ray checks, not where Ray's scheduler would choose to put things: CPUs are a
per-node amount; a fractional GPU request (< 1) must fit on ONE GPU of the node; a whole
request (1, 2, ...) takes that many entirely free GPUs. Quantities are kept in Ray's
fixed-point units (1/10000) so that shares such as 0.125 add up exactly. Replicas go in
order of GPU, then CPU, largest first (ties: deployment order, replica index), each to
the first node and first GPU that fit, so the result is deterministic. A placement found
here exists; Ray may still choose another (it spreads replicas), and first fit can miss a
placement that exists, so leave headroom.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

UNIT = 10_000  # Ray's resource resolution: quantities are multiples of 0.0001


def units(amount: float) -> int:
    return round(amount * UNIT)


def amount(count: int) -> float:
    return count / UNIT


@dataclass(frozen=True)
class Node:
    name: str
    cpus: float
    gpus: int = 0
    #: what the name stands for (address, head), shown in the summary
    label: str = ""


@dataclass(frozen=True)
class Replica:
    deployment: str
    index: int
    cpu: int  #: units
    gpu: int  #: units
    cap: float | None = None  #: CUDA memory cap, added up per GPU
    max_per_node: int | None = None


@dataclass
class NodeState:
    node: Node
    cpu_free: int
    gpu_free: list[int]
    #: CUDA caps of the replicas on each GPU: gpu index -> [(deployment, cap)]
    caps: dict[int, list[tuple[str, float]]] = field(default_factory=dict)
    per_deployment: Counter = field(default_factory=Counter)

    @classmethod
    def empty(cls, node: Node) -> NodeState:
        return cls(node, units(node.cpus), [UNIT] * node.gpus)

    def gpus_for(self, gpu: int) -> list[int] | None:
        """GPU indices that can take a `gpu`-unit request, None if none can."""
        if gpu == 0:
            return []
        if gpu < UNIT:
            fits = [i for i, free in enumerate(self.gpu_free) if free >= gpu]
            return fits[:1] or None
        whole = [i for i, free in enumerate(self.gpu_free) if free == UNIT]
        return whole[:gpu // UNIT] if len(whole) >= gpu // UNIT else None

    def free_text(self) -> str:
        gpus = ", ".join(f"GPU{i} {amount(free):g}" for i, free in enumerate(self.gpu_free))
        return f"{self.node.name} CPU {amount(self.cpu_free):g}" + (f", {gpus}" if gpus else "")


@dataclass
class Packing:
    states: list[NodeState]
    #: (deployment, replica index) -> (node name, GPU indices)
    placed: dict[tuple[str, int], tuple[str, tuple[int, ...]]]
    problems: list[str]


def pack(replicas: list[Replica], nodes: list[Node]) -> Packing:
    """Place every replica first-fit-decreasing; report each that finds no place."""
    states = [NodeState.empty(n) for n in nodes]
    placed: dict[tuple[str, int], tuple[str, tuple[int, ...]]] = {}
    problems = []
    order = sorted(enumerate(replicas), key=lambda p: (-p[1].gpu, -p[1].cpu, p[0]))
    for _, replica in order:
        spot = _first_fit(replica, states)
        if spot is None:
            free = "; ".join(s.free_text() for s in states) or "no nodes"
            limit = (f", at most {replica.max_per_node} per node"
                     if replica.max_per_node is not None else "")
            problems.append(
                f"not schedulable: {replica.deployment} replica {replica.index + 1} needs "
                f"{amount(replica.cpu):g} CPU and {_gpu_text(replica.gpu)}{limit}; "
                f"free: {free}")
            continue
        state, gpu_ids = spot
        state.cpu_free -= replica.cpu
        state.per_deployment[replica.deployment] += 1
        for i in gpu_ids:
            state.gpu_free[i] -= min(replica.gpu, UNIT)
            if replica.cap is not None:
                state.caps.setdefault(i, []).append((replica.deployment, replica.cap))
        placed[(replica.deployment, replica.index)] = (state.node.name, tuple(gpu_ids))
    return Packing(states, placed, problems)


def _first_fit(replica: Replica, states: list[NodeState]) -> tuple[NodeState, list[int]] | None:
    for state in states:
        if state.cpu_free < replica.cpu:
            continue
        if (replica.max_per_node is not None
                and state.per_deployment[replica.deployment] >= replica.max_per_node):
            continue
        gpu_ids = state.gpus_for(replica.gpu)
        if gpu_ids is not None:
            return state, gpu_ids
    return None


def _gpu_text(gpu: int) -> str:
    if gpu == 0:
        return "no GPU"
    if gpu < UNIT:
        return f"{amount(gpu):g} of one GPU"
    return f"{gpu // UNIT} whole GPU(s)"


def cap_problems(packing: Packing) -> list[str]:
    """Each GPU whose replicas' CUDA memory caps add up to more than the GPU."""
    problems = []
    for state in packing.states:
        for index, caps in sorted(state.caps.items()):
            total = sum(units(cap) for _, cap in caps)
            if total > UNIT:
                parts = ", ".join(f"{name} {cap:g}" for name, cap in caps)
                problems.append(f"CUDA memory caps on {state.node.name} GPU{index} add up to "
                                f"{amount(total):g} of the GPU ({parts}): more than it holds")
    return problems
