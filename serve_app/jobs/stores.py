"""Choosing a job store from its URL (above the implementations, which import the
interface)."""

from __future__ import annotations

from serve_app.jobs.model import Clock, now_ms
from serve_app.jobs.store import JobStore


def open_store(url: str, clock: Clock = now_ms) -> JobStore:
    """A store for `sqlite:///path`, `postgresql://...` or `memory://`."""
    if url.startswith("sqlite:///"):
        from serve_app.jobs.sqlite import SQLiteJobStore

        # sqlite:///relative/path, sqlite:////absolute/path (as SQLAlchemy spells them)
        return SQLiteJobStore(url[len("sqlite:///"):], clock)
    if url.startswith(("postgresql://", "postgres://")):
        from serve_app.jobs.postgres import PostgresJobStore

        return PostgresJobStore(url, clock)
    if url == "memory://":
        from serve_app.jobs.memory import InMemoryJobStore

        return InMemoryJobStore(clock)
    raise ValueError(f"unsupported job store URL {url!r}: use sqlite:///path, "
                     "postgresql://... or memory://")
