"""Session-wide fixtures: one real local Ray cluster and Serve on a free port.

Ray starts once per test session (starting it per test costs seconds each). It
declares one logical GPU so fractional-GPU placement can be checked on a machine
without one; model code still runs on the CPU where CUDA is absent.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest

os.environ.setdefault("YOLO_OFFLINE", "true")
os.environ.setdefault("YOLO_AUTOINSTALL", "false")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """test_start_command.py runs first: its `serve run` starts a Ray of its
    own, before any test starts this session's cluster."""
    first = [item for item in items if item.path.name == "test_start_command.py"]
    items[:] = first + [item for item in items if item not in first]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


#: where the session's Ray node exports metrics for Prometheus
METRICS_PORT = free_port()


@pytest.fixture(scope="session")
def ray_cluster(s3_server: str) -> Iterator[None]:
    """Started after the S3 test server, so replicas inherit its AWS_* variables and
    boto3's default chain reaches it from inside Ray too."""
    import ray

    ray.init(address="local", num_cpus=8, num_gpus=1, include_dashboard=False,
             log_to_driver=False, _metrics_export_port=METRICS_PORT)
    yield
    ray.shutdown()


@pytest.fixture(scope="session")
def serve_port(ray_cluster: None) -> Iterator[int]:
    """Serve's HTTP proxy on a free port (tests run beside other Serve instances)."""
    from ray import serve

    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    yield port
    serve.shutdown()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """A real S3-compatible server (moto's standalone server) on a free port.

    boto3's default chain finds it through AWS_ENDPOINT_URL and the test credentials.
    """
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    saved = {k: os.environ.get(k) for k in S3_ENV}
    os.environ.update(S3_ENV | {"AWS_ENDPOINT_URL": url})
    yield url
    server.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
          "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": ""}
