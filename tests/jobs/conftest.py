"""The store contract runs against every implementation: SQLite always, PostgreSQL where
a server is configured (RSP_TEST_POSTGRES_DSN, e.g. postgresql://postgres@127.0.0.1:5432/postgres)."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from serve_app.jobs.store import JobStore, open_store

POSTGRES_DSN = os.environ.get("RSP_TEST_POSTGRES_DSN")


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


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/jobs.sqlite3"
    return request.getfixturevalue("postgres_url")


@pytest.fixture()
def store(store_url: str) -> Iterator[JobStore]:
    s = open_store(store_url)
    yield s
    asyncio.run(s.close())
