"""An unexpected error answers a reference, never its class, message or traceback (they
may name internal addresses): the log holds those under the same reference."""

from __future__ import annotations

import logging
import re

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from serve_app.api.errors import install_error_handlers


def test_the_catch_all_answers_a_reference_only(caplog: pytest.LogCaptureFixture,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logging.getLogger("ray.serve"), "propagate", True)
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/boom")
    async def boom() -> None:
        raise ConnectionRefusedError("connect to 10.0.0.7:6379 refused")

    r = TestClient(app, raise_server_exceptions=False).get("/boom")
    assert r.status_code == 500
    found = re.fullmatch(r"internal error \(reference ([0-9a-f]{12})\)", r.json()["error"])
    assert found, r.text
    assert found[1] in caplog.text and "10.0.0.7:6379" in caplog.text
    assert "Traceback" in caplog.text and "GET /boom" in caplog.text
