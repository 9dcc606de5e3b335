"""The PD family served by the whole application over real HTTP (shared by the HTTP and
notebook tests of this package, started once and deleted when the package is done)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

PD_APP = "pd-http"
PD_PREFIX = "/pdapp"


@pytest.fixture(scope="package")
def pd_base(serve_port: int,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`serve_app.app.build_app` serving only `pd-segmentation` (`/pd`, `/pd/html`,
    `/pd/healthz` and the job API) with a temporary SQLite job store, under its own
    route prefix beside other apps; the app's base URL, prefix included.
    """
    from ray import serve

    from serve_app.app import build_app

    store = tmp_path_factory.mktemp("pd-jobs") / "jobs.sqlite3"
    args = {"jobs": {"store_url": f"sqlite:///{store}", "poll_interval_s": 0.1},
            "endpoints": {"pd-segmentation": {"route": "pd", "html": True, "healthz": True}},
            "outbound": {"allow_networks": ["127.0.0.1/32"]}}  # the S3 server is local
    serve.run(build_app(args), name=PD_APP, route_prefix=PD_PREFIX)
    yield f"http://127.0.0.1:{serve_port}{PD_PREFIX}"
    serve.delete(PD_APP)
