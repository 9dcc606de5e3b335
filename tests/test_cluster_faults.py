"""Fault drills on a local multi-node cluster (a head and two workers with one logical GPU
each, configs/serve.gpu.yaml with two ingress replicas, a PostgreSQL job store): with jobs
of every model endpoint in flight, a model replica SIGKILLed, an ingress replica
SIGKILLed, a worker node's raylet SIGKILLed, PostgreSQL restarted, the webhook receiver
down for 30 s. After each, with no manual step, every accepted job ends COMPLETED, every
webhook arrives and the service answers again. `bench/cluster_faults.py` runs the same
drills with 1,000 jobs per fault."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.cluster_faults import Drill, Hooks, Result, faults, start_cluster
from serve_app.local_cluster import LocalCluster
from tests.jobs.conftest import POSTGRES_DSN

pytestmark = pytest.mark.postgres
JOBS = 20


@pytest.fixture(scope="module")
def drills(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalCluster, Hooks]]:
    if not POSTGRES_DSN or not shutil.which("pg_ctlcluster"):
        pytest.skip("the cluster drills need a PostgreSQL server of this machine "
                    "(RSP_TEST_POSTGRES_DSN, pg_ctlcluster); .ci/run sets it")
    hooks = Hooks()
    cluster = start_cluster(tmp_path_factory.mktemp("cluster"), POSTGRES_DSN)
    yield cluster, hooks
    cluster.down()
    hooks.close()


FAULTS = ["model replica SIGKILL", "ingress replica SIGKILL", "worker node raylet SIGKILL",
          "PostgreSQL restart", "webhook receiver down 30 s"]


@pytest.mark.parametrize("fault", FAULTS)
def test_every_accepted_job_completes_through_the_fault(
        fault: str, drills: tuple[LocalCluster, Hooks], tmp_path: Path) -> None:
    cluster, hooks = drills
    inject, restore = faults(cluster, hooks)[fault]
    result: Result = Drill(cluster, hooks).run(fault, inject, JOBS, restore, timeout_s=900)
    print(result.row())
    assert result.accepted == JOBS, result
    assert (result.completed, result.failed, result.lost) == (JOBS, 0, 0), result
    assert result.webhooks_missing == 0, result
