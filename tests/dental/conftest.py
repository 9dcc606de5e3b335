"""Fixtures of the dental tests: the S3 server helper, generated images, built weights."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest

from deployments.dental.synthetic import synthetic_radiograph
from tests.dental.dental_helpers import (
    DENTAL_APP,
    DENTAL_PREFIX,
    SERVER_BUCKET,
    S3Server,
    png_bytes,
)


@pytest.fixture(scope="session")
def s3(s3_server: str) -> S3Server:
    """The session's moto standalone S3 server (tests/conftest.py), with a client helper."""
    return S3Server(s3_server)


@pytest.fixture(scope="session")
def radiograph_png() -> bytes:
    """A generated 256x512 8-bit grayscale panoramic-like PNG."""
    return png_bytes(synthetic_radiograph(256, 512))


@pytest.fixture(scope="session")
def radiograph_data_uri(radiograph_png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(radiograph_png).decode()


@pytest.fixture(scope="session")
def built_weights(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Default checkpoints written by the build script, run as users run it."""
    import subprocess
    import sys

    out = tmp_path_factory.mktemp("dental-weights")
    subprocess.run([sys.executable, "-m", "deployments.dental.build_weights", "--out", str(out)],
                   check=True, capture_output=True, timeout=300)
    return {"segmentation": out / "deeplabv3.pth", "detection": out / "yolo-seg.pt"}


@pytest.fixture(scope="session")
def dental_base(serve_port: int,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`serve_app.app.build_app` serving only `dental-pano` (direct route `/dental`) with a
    temporary SQLite job store; the app's base URL (route prefix included).
    """
    from ray import serve

    from serve_app.app import build_app

    store = tmp_path_factory.mktemp("dental-jobs") / "jobs.sqlite3"
    args = {"jobs": {"store_url": f"sqlite:///{store}", "poll_interval_s": 0.1},
            "endpoints": {"dental-pano": {"route": "dental"}},
            # the file and S3 servers are local; one bucket is read with the server's
            # own credentials
            "outbound": {"allow_networks": ["127.0.0.1/32"],
                         "server_s3_buckets": [SERVER_BUCKET]}}
    serve.run(build_app(args), name=DENTAL_APP, route_prefix=DENTAL_PREFIX)
    yield f"http://127.0.0.1:{serve_port}{DENTAL_PREFIX}"
    serve.delete(DENTAL_APP)
