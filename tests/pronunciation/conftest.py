"""The pronunciation family served by the whole application over real HTTP, started once
for this package (the HTTP tests and the notebook share it) and deleted when it is done."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

ASSESS_APP = "assess-http"
ASSESS_PREFIX = "/assessapp"


@pytest.fixture(scope="package")
def assess_base(serve_port: int,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`serve_app.app.build_app` serving only `pronunciation-assessment` (direct route
    `POST /assess` and the job API under `/v2`) with a temporary SQLite job store, under
    its own app name and route prefix beside other apps; the base URL, prefix included.
    """
    from ray import serve

    from serve_app.app import build_app

    store = tmp_path_factory.mktemp("assess-jobs") / "jobs.sqlite3"
    args = {"jobs": {"store_url": f"sqlite:///{store}", "poll_interval_s": 0.1},
            "endpoints": {"pronunciation-assessment": {"route": "assess"}},
            # gruut only: the canonical phones the family's tests are written against,
            # and one G2P backend less to load
            "g2p": {"default_backend": "gruut", "backends": ["gruut"]},
            "outbound": {"allow_networks": ["127.0.0.1/32"]}}  # the S3 server is local
    serve.run(build_app(args), name=ASSESS_APP, route_prefix=ASSESS_PREFIX)
    yield f"http://127.0.0.1:{serve_port}{ASSESS_PREFIX}"
    serve.delete(ASSESS_APP)


@pytest.fixture(scope="package")
def evalset_sample() -> tuple[list[dict], dict[str, dict]]:
    """The committed held-out sample (fixtures/evalset, `evalset/make.py --sample`): its
    manifest and its recognitions, as `evaluate` makes them, once for the package (the
    quality targets and the frequency-warp test read the same recognitions)."""
    from pathlib import Path

    from deployments.pronunciation.evaluate import load_manifest, recognitions

    sample = Path(__file__).parent / "fixtures" / "evalset"
    items = load_manifest(sample)
    return items, recognitions(sample, items)
