"""Benchmarks run their load generator on the machine they measure."""

from __future__ import annotations

import os

#: Ray starts worker processes (every Serve replica) at this niceness.
RAY_WORKER_NICENESS = 15


def compete_fairly() -> None:
    """Lower this process to the Ray workers' priority.

    Left at niceness 0, the load generator takes the CPU first and starves the replicas
    it measures (on 2 cores: ~0.9 of a core to the client, the ingress at half a core).
    """
    os.nice(max(0, RAY_WORKER_NICENESS - os.nice(0)))
