"""The cluster job store: PostgreSQL, shared by ingress replicas on many nodes.

Claims use `FOR UPDATE SKIP LOCKED`, so replicas polling the same queue never take the
same job and never wait on each other's locks.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from serve_app.jobs.sql import SCHEMA, Query, SqlJobStore

T = TypeVar("T")


class PostgresJobStore(SqlJobStore):
    claim_lock = " FOR UPDATE SKIP LOCKED"

    def __init__(self, dsn: str, threads: int = 4) -> None:
        import psycopg  # optional extra: pip install '.[postgres]'

        super().__init__(threads=threads)
        self._psycopg = psycopg
        self._dsn = dsn
        self._local = threading.local()
        self._connections: list[Any] = []
        self._executor.submit(self._transaction, self._create_schema).result()

    @staticmethod
    def _create_schema(q: Query) -> None:
        q("SELECT pg_advisory_xact_lock(7413002)", ())  # replicas starting together
        for statement in SCHEMA:
            q(statement, ())

    def _connection(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            conn = self._psycopg.connect(self._dsn, autocommit=False)
            self._local.conn = conn
            self._connections.append(conn)
        return conn

    def _transaction(self, work: Callable[[Query], T]) -> T:
        conn = self._connection()

        def query(sql: str, params: tuple) -> list[tuple]:
            cur = conn.execute(sql.replace("?", "%s"), params)
            return cur.fetchall() if cur.description else []

        try:
            result = work(query)
        except BaseException:
            conn.rollback()
            raise
        conn.commit()
        return result

    async def close(self) -> None:
        await super().close()
        for conn in self._connections:
            conn.close()
