"""Job stores at scale: the claim + finish rate and a status read with 1,000 vs 200,000 jobs.

One run measures each store, SQLite (a temporary file) and PostgreSQL (a temporary
database this script creates and drops; SQLite alone when the server is unreachable),
with the jobs table prefilled to 1,000 and to 200,000 jobs, and prints per store and
size:
  - claim + finish jobs/s (the headline): `--jobs` queued jobs of one endpoint are
    claimed (`claim(endpoint, worker, lease_ms, up to 8)`) and each ended COMPLETED with
    a few hundred bytes of output (`finish`) by `--concurrency` claimers at once, as a
    dispatcher drives the store; the jobs were created beforehand through the store's
    `create` by as many concurrent submitters, whose rate is shown apart;
  - the p50 and p95 of one status read (`get`) of a random prefilled job, `--reads`
    reads one at a time;
  - for information (no target), the p50 of one sweep (`requeue_expired_leases` then
    `delete_expired`), which every dispatcher runs each `sweep_interval_s`.
The table's figures are medians over `--rounds` rounds. Within a round the two sizes
take turns: the jobs are created, then claimed and finished, in 8 parts alternating
between the sizes, and the status reads alternate in blocks of 50, so a slow spell of
this shared machine falls on both sizes alike; the ratios are the medians of the rounds'
paired 200k/1k ratios. After each round the jobs it added are deleted again, so every
round sees the prefilled table.

The prefill is realistic: jobs of four endpoints created over the past day, mostly
COMPLETED with outputs of a few hundred bytes, some FAILED (a few CANCELLED and
TIMED_OUT), 15% with a webhook and its finished delivery in the outbox, all expiring in
the future (a deployment keeping results two days), so every row is live. Rows are
inserted with the store's own columns (`serve_app.jobs.sql.COLUMNS`) into the schema the
store created, 10,000 a transaction (executemany on SQLite, COPY on PostgreSQL).
PostgreSQL's tables are then VACUUM ANALYZEd, as autovacuum would have done by the time
a table got that large; SQLite's are left as the store leaves them (it runs no ANALYZE).

    python bench/store_scale.py [--rounds 3] [--jobs 2000] [--reads 2000] [--explain]
                                [--pg-dsn postgresql://postgres@127.0.0.1:5432/postgres]

Targets: at 200,000 jobs, claim + finish >= 0.7x the rate at 1,000, and the status p50
at most 1/0.7 (1.43x) of the p50 at 1,000. When a store misses one (or with
`--explain`), the query plans of the store's statements (create, claim, finish, get,
requeue_expired_leases, delete_expired, claim_deliveries) at 200,000 jobs are printed:
EXPLAIN QUERY PLAN for SQLite, EXPLAIN (ANALYZE, BUFFERS) rolled back for PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from serve_app.jobs.model import JobStatus, NewJob, now_ms  # noqa: E402
from serve_app.jobs.sql import COLUMNS, DELIVERY_COLUMNS  # noqa: E402
from serve_app.jobs.store import JobStore  # noqa: E402
from serve_app.jobs.stores import open_store  # noqa: E402

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
MINUTE_MS, DAY_MS = 60_000, 86_400_000
#: the endpoint the measured jobs go to; it also has prefilled (ended) jobs
ENDPOINT = "ipa-generation"
#: prefilled jobs per endpoint, in proportion (configs/serve.yaml's endpoints)
ENDPOINTS = {"ipa-generation": 50, "pronunciation-assessment": 25, "pd-segmentation": 15,
             "dental-pano": 10}
ENDED = {JobStatus.COMPLETED: 90, JobStatus.FAILED: 7, JobStatus.CANCELLED: 2,
         JobStatus.TIMED_OUT: 1}
WEBHOOK_SHARE, LOW_PRIORITY_SHARE = 0.15, 0.05
#: prefilled results are kept two days after they end, so every prefilled row is live
FILLER_RETENTION_MS = 2 * DAY_MS
LEASE_MS, CLAIM_LIMIT, MAX_QUEUE = 30_000, 8, 10_000
BATCH = 10_000
TARGET = 0.7

WORDS = ("the quick brown fox jumps over lazy dog she sells sea shells by shore peter "
         "piper picked peck of pickled peppers how much wood would woodchuck chuck").split()
ERRORS = ("CUDA out of memory. Tried to allocate 2.00 GiB",
          "worker lost 3 time(s); giving up. Last cause: its lease expired (the ingress "
          "replica or node running it stopped)",
          "ValueError: audio is empty", "handler raised TimeoutError: upstream model busy")

#: claim+finish/s, create/s, status p50 ms, status p95 ms, sweep p50 ms
Figures = tuple[float, float, float, float, float]
SWEEPS = 20
#: status reads in a row on one store before the other store's turn
READ_BLOCK = 50
#: parts a round's jobs are created and claimed in, the sizes taking turns
CHUNKS = 8


def sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


def an_input(rng: random.Random) -> dict[str, Any]:
    return {"text": sentence(rng, rng.randint(6, 16)), "language": "en-us"}


def an_output(rng: random.Random) -> dict[str, Any]:
    """A few hundred bytes of JSON, like an IPA transcription with per-word timings."""
    words = [{"word": w, "ipa": w[::-1], "start": round(i * 0.31, 2), "end": round(i * 0.31
              + 0.28, 2)} for i, w in enumerate(sentence(rng, rng.randint(3, 6)).split())]
    return {"ipa": " ".join(w["ipa"] for w in words), "words": words, "model": "g2p-en-1.2"}


#: the order `filler` builds job rows in: the store's columns (checked), named in the INSERT
FILLER_COLUMNS = ("id", "endpoint", "status", "input", "created_at", "expires_at",
                  "execution_timeout_ms", "retention_ms", "low_priority", "webhook",
                  "s3_config", "output", "error", "started_at", "completed_at", "attempts",
                  "user_retries", "worker_id", "lease", "lease_expires_at")
#: the order of delivery rows
FILLER_DELIVERY_COLUMNS = ("id", "job_id", "endpoint", "url", "payload", "created_at", "state",
                           "next_attempt_at", "attempts")


def filler(n: int, now: int, rng: random.Random) -> tuple[list[tuple], list[tuple], list[str]]:
    """`n` ended jobs created over the past day (rows in FILLER_COLUMNS order), the webhook
    deliveries their ends left (FILLER_DELIVERY_COLUMNS), and the jobs' ids."""
    assert sorted(FILLER_COLUMNS) == sorted(COLUMNS), "the store's columns changed"
    assert sorted(FILLER_DELIVERY_COLUMNS) == sorted(DELIVERY_COLUMNS), "deliveries changed"
    inputs = [json.dumps(an_input(rng)) for _ in range(64)]
    outputs = [json.dumps(an_output(rng)) for _ in range(64)]
    workers = [f"node{i}-{rng.randrange(1000, 99999)}-{rng.getrandbits(24):06x}"
               for i in range(6)]
    endpoints = rng.choices(list(ENDPOINTS), list(ENDPOINTS.values()), k=n)
    statuses = rng.choices(list(ENDED), list(ENDED.values()), k=n)
    errors = {JobStatus.FAILED: ERRORS, JobStatus.TIMED_OUT:
              ("execution exceeded policy.executionTimeout of 600000 ms",)}
    random_ = rng.random
    jobs, deliveries, ids = [], [], []
    for endpoint, status in zip(endpoints, statuses, strict=True):
        h = f"{rng.getrandbits(128):032x}"
        job_id = (f"{'sync-' if random_() < 0.03 else ''}"
                  f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}-u1")
        created = now - int(random_() * DAY_MS)
        started = created + 5 + int(random_() * 3_000)
        completed = min(now, started + 50 + int(random_() * 20_000))
        worker = workers[int(random_() * len(workers))]
        webhook = (f"https://hooks.example.com/runpod/{int(random_() * 40)}"
                   if random_() < WEBHOOK_SHARE else None)
        job_input = inputs[int(random_() * len(inputs))]
        output = outputs[int(random_() * len(outputs))] if status is JobStatus.COMPLETED \
            else None
        error = rng.choice(errors[status]) if status in errors else None
        attempts = int(random_() < 0.02)
        jobs.append((
            job_id, endpoint, status.value, job_input, created,
            completed + FILLER_RETENTION_MS, 600_000, FILLER_RETENTION_MS,
            int(random_() < LOW_PRIORITY_SHARE), webhook, None, output, error, started,
            completed, attempts, int(random_() < 0.005), worker,
            f"{worker}/{rng.getrandbits(48):012x}", None))
        ids.append(job_id)
        if webhook:
            delivered = random_() < 0.95
            # webhook_payload(job) as JSON: the status object, input and webhook
            payload = (f'{{"id": "{job_id}", "status": "{status.value}", "delayTime": '
                       f'{started - created}, "executionTime": {completed - started}, '
                       f'"retries": {attempts}, "output": {output or "null"}, '
                       f'"input": {job_input}, "webhook": "{webhook}"}}')
            attempt = (f'[{{"at": {completed + 5}, "status_code": '
                       f'{200 if delivered else 503}, "error": null, '
                       f'"duration_ms": {20 + int(random_() * 400)}}}]')
            deliveries.append((f"msg_{rng.getrandbits(128):032x}", job_id, endpoint, webhook,
                               payload, completed, "DELIVERED" if delivered else "FAILED",
                               completed + 5, attempt))
    return jobs, deliveries, ids


def insert_sql(table: str, columns: Sequence[str], mark: str) -> str:
    return (f"INSERT INTO {table} ({', '.join(columns)}) "
            f"VALUES ({', '.join([mark] * len(columns))})")


class Database:
    """One store's database, also reached through a plain connection of its own."""

    name: str
    url: str

    def insert(self, jobs: list[tuple], deliveries: list[tuple]) -> None:
        raise NotImplementedError

    def settle(self) -> None:
        """After the prefill: what the database does on its own by the time a table is this
        large."""

    def delete(self, ids: list[str]) -> None:
        """Remove jobs a round added, with their deliveries."""
        raise NotImplementedError

    def explain(self, sql: str, params: tuple) -> list[str]:
        raise NotImplementedError

    def drop(self) -> None:
        raise NotImplementedError


class SQLiteDatabase(Database):
    name = "sqlite"

    def __init__(self, size: int) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="store_scale_")
        path = Path(self._dir.name) / f"jobs_{size}.sqlite3"
        self.url = f"sqlite:///{path}"
        self._path = path
        self._conn: sqlite3.Connection | None = None

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:  # after the store made the file and its schema
            self._conn = sqlite3.connect(self._path, timeout=30, isolation_level=None)
            # this connection only: the prefill's random-key index inserts stay in memory
            self._conn.execute("PRAGMA cache_size = -262144")
            self._conn.execute("PRAGMA synchronous = NORMAL")
        return self._conn

    def _batches(self, sql: str, rows: list[tuple]) -> None:
        for start in range(0, len(rows), BATCH):
            self.conn.execute("BEGIN")
            self.conn.executemany(sql, rows[start:start + BATCH])
            self.conn.execute("COMMIT")

    def insert(self, jobs: list[tuple], deliveries: list[tuple]) -> None:
        self._batches(insert_sql("jobs", FILLER_COLUMNS, "?"), jobs)
        self._batches(insert_sql("webhooks", FILLER_DELIVERY_COLUMNS, "?"), deliveries)

    def delete(self, ids: list[str]) -> None:
        self.conn.execute("BEGIN")
        self.conn.executemany("DELETE FROM webhooks WHERE job_id = ?", [(i,) for i in ids])
        self.conn.executemany("DELETE FROM job_stream WHERE job_id = ?", [(i,) for i in ids])
        self.conn.executemany("DELETE FROM jobs WHERE id = ?", [(i,) for i in ids])
        self.conn.execute("COMMIT")

    def explain(self, sql: str, params: tuple) -> list[str]:
        rows = self.conn.execute("EXPLAIN QUERY PLAN " + sql, params).fetchall()
        depth = {0: 0}
        lines = []
        for node, parent, _, detail in rows:
            depth[node] = depth.get(parent, 0) + 1
            lines.append("  " * depth[node] + detail)
        return lines

    def drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._dir.cleanup()


class PostgresDatabase(Database):
    name = "postgresql"

    def __init__(self, admin_dsn: str, size: int) -> None:
        import psycopg

        self._psycopg = psycopg
        self._admin_dsn = admin_dsn
        self._db = f"store_scale_{os.getpid()}_{size}"
        with psycopg.connect(admin_dsn, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {self._db}")
            admin.execute(f"CREATE DATABASE {self._db}")
        self.url = urlsplit(admin_dsn)._replace(path=f"/{self._db}").geturl()
        self._conn: Any = None

    @property
    def conn(self) -> Any:
        if self._conn is None:
            self._conn = self._psycopg.connect(self.url, autocommit=True)
        return self._conn

    def _batches(self, table: str, columns: Sequence[str], rows: list[tuple]) -> None:
        # COPY: PostgreSQL's bulk path (executemany took 13 s to 47 s for 200,000 jobs on
        # this loaded machine, COPY 7 s)
        for start in range(0, len(rows), BATCH):
            with self.conn.transaction(), self.conn.cursor() as cur, \
                    cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows[start:start + BATCH]:
                    copy.write_row(row)

    def insert(self, jobs: list[tuple], deliveries: list[tuple]) -> None:
        self._batches("jobs", FILLER_COLUMNS, jobs)
        self._batches("webhooks", FILLER_DELIVERY_COLUMNS, deliveries)

    def settle(self) -> None:
        self.conn.execute("VACUUM ANALYZE jobs")
        self.conn.execute("VACUUM ANALYZE webhooks")

    def delete(self, ids: list[str]) -> None:
        with self.conn.transaction():
            self.conn.execute("DELETE FROM webhooks WHERE job_id = ANY(%s)", (ids,))
            self.conn.execute("DELETE FROM job_stream WHERE job_id = ANY(%s)", (ids,))
            self.conn.execute("DELETE FROM jobs WHERE id = ANY(%s)", (ids,))
        # so that every round starts from the same table, not from the last one's dead rows
        self.conn.execute("VACUUM jobs")
        self.conn.execute("VACUUM webhooks")

    def explain(self, sql: str, params: tuple) -> list[str]:
        with self.conn.transaction(force_rollback=True):
            rows = self.conn.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) "
                                     + sql.replace("?", "%s"), params).fetchall()
        return ["  " + line for (line,) in rows]

    def drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
        with self._psycopg.connect(self._admin_dsn, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {self._db} WITH (FORCE)")


def new_jobs(n: int, rng: random.Random) -> list[NewJob]:
    """What `/run` submits: a small input, RunPod's default TTL, 10% with a webhook."""
    inputs = [an_input(rng) for _ in range(16)]
    return [NewJob(id=f"{uuid.uuid4()}-u1", endpoint=ENDPOINT, input=rng.choice(inputs),
                   execution_timeout_ms=600_000, ttl_ms=DAY_MS, retention_ms=30 * MINUTE_MS,
                   webhook="https://hooks.example.com/runpod/bench" if i % 10 == 0 else None)
            for i in range(n)]


async def create_all(store: JobStore, jobs: list[NewJob], concurrency: int) -> float:
    """Submit `jobs` with `concurrency` submitters; the seconds it took."""
    pending = iter(jobs)

    async def submitter() -> None:
        for job in pending:
            await store.create(job, MAX_QUEUE)

    started = time.perf_counter()
    await asyncio.gather(*(submitter() for _ in range(concurrency)))
    return time.perf_counter() - started


async def claim_and_finish(store: JobStore, n: int, output: dict, concurrency: int) -> float:
    """Claim `n` queued jobs and finish each, `concurrency` claimers at once; the seconds
    it took."""
    reserved = finished = 0

    async def claimer(k: int) -> None:
        nonlocal reserved, finished
        while reserved < n:
            want = min(CLAIM_LIMIT, n - reserved)
            reserved += want
            claimed = await store.claim(ENDPOINT, f"bench-worker-{k}", LEASE_MS, want)
            reserved -= want - len(claimed)
            if not claimed:
                return
            for job in claimed:
                assert job.lease is not None
                done = await store.finish(job.id, job.lease, JobStatus.COMPLETED, output, None)
                assert done is not None and done.status is JobStatus.COMPLETED, done
                finished += 1

    started = time.perf_counter()
    await asyncio.gather(*(claimer(k) for k in range(concurrency)))
    assert finished == n, (finished, n)
    return time.perf_counter() - started


async def status_read(store: JobStore, job_id: str) -> float:
    started = time.perf_counter()
    job = await store.get(job_id)
    assert job is not None and job.status.terminal, job_id
    return time.perf_counter() - started


async def sweep(store: JobStore) -> float:
    """What every dispatcher does each sweep_interval_s (1 s)."""
    started = time.perf_counter()
    await store.requeue_expired_leases(3)
    await store.delete_expired(DAY_MS)
    return time.perf_counter() - started


async def one_round(stores: dict[int, JobStore], dbs: dict[int, Database],
                    prefilled: dict[int, list[str]], order: list[int], output: dict,
                    opts: argparse.Namespace, rng: random.Random) -> dict[int, Figures]:
    """Both sizes' jobs are created, then claimed and finished, the sizes taking turns
    in CHUNKS parts, and their status reads and sweeps take turns in blocks of
    READ_BLOCK, so both sizes see the same moments of the machine; then the round's jobs
    are deleted."""
    added = {size: new_jobs(opts.jobs, rng) for size in order}
    create_s = dict.fromkeys(order, 0.0)
    claim_finish_s = dict.fromkeys(order, 0.0)
    parts = [(c * opts.jobs // CHUNKS, (c + 1) * opts.jobs // CHUNKS) for c in range(CHUNKS)]
    for c, (lo, hi) in enumerate(parts):
        for size in order if c % 2 == 0 else order[::-1]:
            create_s[size] += await create_all(stores[size], added[size][lo:hi],
                                               opts.concurrency)
    for c, (lo, hi) in enumerate(parts):
        for size in order if c % 2 == 0 else order[::-1]:
            claim_finish_s[size] += await claim_and_finish(stores[size], hi - lo, output,
                                                           opts.concurrency)
    reads: dict[int, list[float]] = {size: [] for size in order}
    sweeps: dict[int, list[float]] = {size: [] for size in order}
    for block in range(-(-opts.reads // READ_BLOCK)):
        for size in order if block % 2 == 0 else order[::-1]:
            for job_id in rng.choices(prefilled[size], k=READ_BLOCK):
                reads[size].append(await status_read(stores[size], job_id))
            if block % max(1, opts.reads // READ_BLOCK // SWEEPS) == 0:
                sweeps[size].append(await sweep(stores[size]))
    figures = {}
    for size in order:
        dbs[size].delete([j.id for j in added[size]])
        latencies = sorted(reads[size])
        figures[size] = (opts.jobs / claim_finish_s[size], opts.jobs / create_s[size],
                         statistics.median(latencies) * 1000,
                         latencies[min(len(latencies) - 1, int(len(latencies) * 0.95))] * 1000,
                         statistics.median(sweeps[size]) * 1000)
    return figures


def record_statements(store: Any) -> tuple[dict[str, tuple[str, tuple]], Callable[[str], None]]:
    """Make the store note each distinct statement it runs, with the verb that ran it
    first and its parameters (wraps its private `_transaction`: a bench-only probe)."""
    seen: dict[str, tuple[str, tuple]] = {}
    verb = ["?"]
    original = store._transaction

    def transaction(work: Callable, write: bool = True) -> Any:
        def noting(q: Callable[[str, tuple], list[tuple]]) -> Any:
            def query(sql: str, params: tuple) -> list[tuple]:
                seen.setdefault(sql, (verb[0], params))
                return q(sql, params)

            return work(query)

        return original(noting, write)

    store._transaction = transaction

    def now_running(name: str) -> None:
        verb[0] = name

    return seen, now_running


async def explain_all(store: JobStore, db: Database, rng: random.Random) -> None:
    """Run each verb once and print the plans of the statements it ran."""
    seen, verb = record_statements(store)
    (job,) = new_jobs(1, rng)
    job = dataclasses.replace(job, webhook="https://hooks.example.com/runpod/explain")
    verb("create")
    await store.create(job, MAX_QUEUE)
    verb("claim")
    (claimed,) = await store.claim(ENDPOINT, "bench-explain", LEASE_MS, CLAIM_LIMIT)
    verb("finish")
    assert claimed.lease is not None
    await store.finish(claimed.id, claimed.lease, JobStatus.COMPLETED, {"ipa": "x"}, None)
    verb("get")
    await store.get(job.id)
    verb("requeue_expired_leases")
    await store.requeue_expired_leases(3)
    verb("delete_expired")
    await store.delete_expired(DAY_MS)
    verb("claim_deliveries")
    await store.claim_deliveries(16, LEASE_MS)
    for sql, (name, params) in seen.items():
        if not sql.lstrip().upper().startswith(("SELECT", "UPDATE", "DELETE")) or \
                "pg_notify" in sql:
            continue  # inserts have no plan worth reading; NOTIFY has none
        print(f"-- {name}: {sql}")
        for line in db.explain(sql, params):
            print(line)
    db.delete([job.id])


async def bench_database(kind: type[Database], sizes: list[int], opts: argparse.Namespace,
                         rng: random.Random) -> dict[int, list[Figures]]:
    dbs: dict[int, Database] = {}
    stores: dict[int, JobStore] = {}
    prefilled: dict[int, list[str]] = {}
    try:
        for size in sizes:
            db = kind(opts.pg_dsn, size) if kind is PostgresDatabase else kind(size)
            dbs[size] = db
            stores[size] = open_store(db.url)  # creates the schema
            started = time.perf_counter()
            jobs, deliveries, prefilled[size] = filler(size, now_ms(), rng)
            made = time.perf_counter()
            db.insert(jobs, deliveries)
            inserted = time.perf_counter()
            db.settle()
            print(f"{db.name}: {size:,} jobs ({len(deliveries):,} deliveries) made in "
                  f"{made - started:.1f} s, inserted in {inserted - made:.1f} s, settled in "
                  f"{time.perf_counter() - inserted:.1f} s", flush=True)
        output = an_output(rng)
        warm = argparse.Namespace(**{**vars(opts), "jobs": 200, "reads": 4 * READ_BLOCK})
        await one_round(stores, dbs, prefilled, sizes, output, warm, rng)  # connections, caches
        runs: dict[int, list[Figures]] = {size: [] for size in sizes}
        for r in range(opts.rounds):
            order = sizes if r % 2 == 0 else sizes[::-1]
            figures = await one_round(stores, dbs, prefilled, order, output, opts, rng)
            for size in sizes:
                runs[size].append(figures[size])
                if opts.verbose:
                    print(f"  round {r + 1} {dbs[size].name} {size:,}: " + " ".join(
                        f"{x:.3f}" for x in figures[size]), flush=True)
        if opts.explain or misses(runs, sizes):
            big = max(sizes)
            print(f"\n{dbs[big].name} query plans at {big:,} jobs:")
            await explain_all(stores[big], dbs[big], rng)
        return runs
    finally:
        for store in stores.values():
            await store.close()
        for db in dbs.values():
            db.drop()


def paired_ratios(runs: dict[int, list[Figures]], sizes: list[int]) -> tuple[float, float]:
    """Median over rounds of (big/small claim+finish rate, big/small status p50)."""
    small, big = runs[min(sizes)], runs[max(sizes)]
    rate = statistics.median(b[0] / s[0] for s, b in zip(small, big, strict=True))
    p50 = statistics.median(b[2] / s[2] for s, b in zip(small, big, strict=True))
    return rate, p50


def misses(runs: dict[int, list[Figures]], sizes: list[int]) -> bool:
    rate, p50 = paired_ratios(runs, sizes)
    return rate < TARGET or p50 > 1 / TARGET


def postgres_reachable(dsn: str) -> str | None:
    """None when reachable, else why not."""
    try:
        import psycopg

        with psycopg.connect(dsn, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:  # any failure means: bench SQLite only
        return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0]}"
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs=2, default=[1_000, 200_000],
                        help="jobs prefilled: the small and the large table")
    parser.add_argument("--jobs", type=int, default=2_000,
                        help="jobs created, claimed and finished per round")
    parser.add_argument("--reads", type=int, default=2_000, help="status reads per round")
    parser.add_argument("--concurrency", type=int, default=8,
                        help="store calls in flight (submitters, claimers)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds per store; the table shows their medians")
    parser.add_argument("--pg-dsn", default=os.environ.get("STORE_SCALE_PG_DSN", DEFAULT_PG),
                        help="a PostgreSQL server to create the temporary database on")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--explain", action="store_true",
                        help="print the query plans even when every target is met")
    parser.add_argument("--verbose", action="store_true", help="print every round's figures")
    opts = parser.parse_args()
    sizes = sorted(opts.sizes)
    began = time.perf_counter()
    rng = random.Random(20240613)
    kinds: list[type[Database]] = [SQLiteDatabase]
    if not opts.no_postgres:
        why = postgres_reachable(opts.pg_dsn)
        if why is None:
            kinds.append(PostgresDatabase)
        else:
            print(f"PostgreSQL unreachable at {opts.pg_dsn} ({why}); benching SQLite only")
    results = {kind.name: asyncio.run(bench_database(kind, sizes, opts, rng))
               for kind in kinds}

    print(f"\ncores: {os.cpu_count()}; {opts.jobs:,} jobs claimed+finished and {opts.reads:,}"
          f" status reads per round, {opts.concurrency} in flight, claim limit {CLAIM_LIMIT};"
          f" medians of {opts.rounds} rounds")
    print(f"{'store':<12}{'jobs in table':>14}{'claim+finish/s':>16}{'create/s':>10}"
          f"{'status p50 ms':>15}{'status p95 ms':>15}{'sweep ms':>10}")
    for name, runs in results.items():
        for size in sizes:
            rate, create, p50, p95, sweep = (statistics.median(column)
                                             for column in zip(*runs[size], strict=True))
            print(f"{name:<12}{size:>14,}{rate:>16.0f}{create:>10.0f}{p50:>15.3f}{p95:>15.3f}"
                  f"{sweep:>10.2f}")
    print(f"\n{max(sizes):,} vs {min(sizes):,} jobs (median of the rounds' paired ratios):")
    for name, runs in results.items():
        rate, p50 = paired_ratios(runs, sizes)
        print(f"{name:<12}claim+finish rate {rate:5.2f}x  (target >= {TARGET:.2f}x)  "
              f"{'PASS' if rate >= TARGET else 'MISS'}")
        print(f"{name:<12}status p50        {p50:5.2f}x  (target <= {1 / TARGET:.2f}x)  "
              f"{'PASS' if p50 <= 1 / TARGET else 'MISS'}")
    print(f"\ntook {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
