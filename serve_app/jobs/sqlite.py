"""The embedded job store: one SQLite file in WAL mode, one writer thread."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from serve_app.jobs.model import Clock, now_ms
from serve_app.jobs.sql import Query, SqlJobStore

T = TypeVar("T")


class SQLiteJobStore(SqlJobStore):
    """Safe for several processes on one node (ingress replicas share the file).

    `synchronous=NORMAL` with WAL keeps every committed job through a process or Ray
    crash; only an OS crash or power loss can drop the last transactions.
    """

    def __init__(self, path: str, clock: Clock = now_ms) -> None:
        # One thread: SQLite serializes writers anyway, and this keeps one connection.
        super().__init__(threads=1, clock=clock)
        self._path = Path(path)
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._executor.submit(self._transaction, self._create_schema).result()

    def _existing_columns(self, q: Query) -> set[str]:
        return {row[1] for row in q("PRAGMA table_info(jobs)", ())}

    def _connection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self._path, timeout=30, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    def _transaction(self, work: Callable[[Query], T], write: bool = True) -> T:
        conn = self._connection()
        # IMMEDIATE takes the write lock up front, so read-then-write steps can't interleave
        # with another replica's. Reads take a WAL snapshot and never wait for writers.
        conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            result = work(lambda sql, params: conn.execute(sql, params).fetchall())
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result
