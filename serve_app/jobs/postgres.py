"""The cluster job store: PostgreSQL, shared by ingress replicas on many nodes.

Claims use `FOR UPDATE SKIP LOCKED`, so replicas polling the same queue never take the
same job and never wait on each other's locks. Job ends are announced with NOTIFY, so a
`/runsync` or `/status-sync` waiting on one replica wakes when another replica finishes.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from serve_app.jobs.model import Clock, Job, now_ms
from serve_app.jobs.sql import Query, SqlJobStore

T = TypeVar("T")

logger = logging.getLogger("ray.serve")

ENDED_CHANNEL = "rsp_job_ended"
#: how often the listener checks whether the store was closed
LISTEN_TICK_S = 0.5


class PostgresJobStore(SqlJobStore):
    claim_lock = " FOR UPDATE SKIP LOCKED"

    def __init__(self, dsn: str, clock: Clock = now_ms, threads: int = 4) -> None:
        import psycopg  # optional extra: pip install '.[postgres]'

        super().__init__(threads=threads, clock=clock)
        self._psycopg = psycopg
        self._dsn = dsn
        self._local = threading.local()
        self._connections: list[Any] = []
        self._closed = threading.Event()
        self._listener: threading.Thread | None = None
        self._executor.submit(self._transaction, self._create_schema).result()

    def _create_schema(self, q: Query) -> None:
        q("SELECT pg_advisory_xact_lock(7413002)", ())  # replicas starting together
        super()._create_schema(q)

    def _existing_columns(self, q: Query) -> set[str]:
        return {name for (name,) in q("SELECT column_name FROM information_schema.columns "
                                      "WHERE table_name = 'jobs' AND "
                                      "table_schema = current_schema()", ())}

    def _connection(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            conn = self._psycopg.connect(self._dsn, autocommit=False)
            self._local.conn = conn
            self._connections.append(conn)
        return conn

    def _transaction(self, work: Callable[[Query], T], write: bool = True) -> T:
        # Row locks are taken by the statements themselves; `write` changes nothing here.
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

    def _announce_ended(self, q: Query, job_ids: list[str]) -> None:
        for job_id in job_ids:
            q("SELECT pg_notify(?, ?)", (ENDED_CHANNEL, job_id))

    def watch_ended(self, on_ended: Callable[[str, Job | None], None]) -> None:
        super().watch_ended(on_ended)
        loop = asyncio.get_running_loop()
        self._listener = threading.Thread(target=self._listen, args=(loop, on_ended),
                                          name="jobstore-listen", daemon=True)
        self._listener.start()

    def _listen(self, loop: asyncio.AbstractEventLoop,
                on_ended: Callable[[str, Job | None], None]) -> None:
        while not self._closed.is_set():
            try:
                with self._psycopg.connect(self._dsn, autocommit=True) as conn:
                    conn.execute(f"LISTEN {ENDED_CHANNEL}")
                    while not self._closed.is_set():
                        for note in conn.notifies(timeout=LISTEN_TICK_S):
                            # Another replica's end (or this one's again): the id only.
                            loop.call_soon_threadsafe(on_ended, note.payload, None)
            except Exception:
                # Waiters still poll meanwhile; try again shortly.
                logger.exception("listening for job ends failed; reconnecting")
                self._closed.wait(1.0)

    async def close(self) -> None:
        self._closed.set()
        await super().close()
        if self._listener is not None:
            await asyncio.to_thread(self._listener.join)
        for conn in self._connections:
            conn.close()
