"""Fixtures of the dental tests: the S3 server helper, generated images, built weights."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from dental_helpers import S3Server, png_bytes

from deployments.dental.synthetic import synthetic_radiograph


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
