"""The store contract runs against every implementation: in-memory and SQLite always,
PostgreSQL where a server is configured (RSP_TEST_POSTGRES_DSN, e.g.
postgresql://postgres@127.0.0.1:5432/postgres; .ci/run sets it)."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from serve_app.jobs.model import now_ms
from serve_app.jobs.store import JobStore
from serve_app.jobs.stores import open_store

POSTGRES_DSN = os.environ.get("RSP_TEST_POSTGRES_DSN")


class FakeClock:
    """Epoch ms that move only when a test says so: leases and TTLs expire without
    sleeping."""

    def __init__(self) -> None:
        self.ms = now_ms()

    def __call__(self) -> int:
        return self.ms

    def advance(self, ms: int) -> None:
        self.ms += ms


def _fresh_postgres_db() -> tuple[str, str]:
    import psycopg

    name = f"rsp_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = POSTGRES_DSN.rpartition("/")
    return name, f"{base}/{name}"


def _drop_postgres_db(name: str) -> None:
    import psycopg

    with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture()
def postgres_url() -> Iterator[str]:
    """A fresh, empty database on the configured server."""
    if not POSTGRES_DSN:
        pytest.skip("PostgreSQL store tests need a server: set RSP_TEST_POSTGRES_DSN "
                    "(e.g. postgresql://postgres@127.0.0.1:5432/postgres); .ci/run does")
    name, url = _fresh_postgres_db()
    yield url
    _drop_postgres_db(name)


def _url(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if kind == "memory":
        return "memory://"
    if kind == "sqlite":
        return f"sqlite:///{tmp_path}/jobs.sqlite3"
    return request.getfixturevalue("postgres_url")


POSTGRES = pytest.param("postgres", marks=pytest.mark.postgres)


@pytest.fixture(params=["memory", "sqlite", POSTGRES])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return _url(request.param, request, tmp_path)


@pytest.fixture(params=["sqlite", POSTGRES])
def shared_store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store that several processes (replicas) open at once, and that outlives them."""
    return _url(request.param, request, tmp_path)


@pytest.fixture()
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture()
def store(store_url: str, clock: FakeClock) -> Iterator[JobStore]:
    s = open_store(store_url, clock)
    yield s
    asyncio.run(s.close())
