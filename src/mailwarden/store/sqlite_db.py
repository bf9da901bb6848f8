"""SQLite plumbing for the store: one writer thread with group commit, pooled readers.

Theory of operation
-------------------
SQLite allows one writer at a time, so every write goes through one thread that
owns the only write connection.  Callers hand it a function ``op(conn,
effects)``; the thread takes every op that is waiting, runs them inside one
``BEGIN IMMEDIATE`` transaction with a savepoint around each (a failing op rolls
back alone), commits once with ``synchronous=FULL``, and only then resolves each
caller's future.  Under load many appends share one fsync ("group commit"),
which is where the append rate comes from; with one caller it is a plain
transaction.

Reads run on a small pool of threads, each with its own read-only connection;
WAL mode lets them read committed data while the writer works.

Effects are what an op wants done *after* its commit: change notifications to
publish and blob files to delete.  They are dropped if the op or the commit
fails, so no listener hears of a change that did not happen.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from mailwarden.store.base import Change, StoreUnavailable

__all__ = ["Database", "Effects"]

log = logging.getLogger(__name__)
T = TypeVar("T")

# Ops taken into one transaction at most; bounds the latency of the first.
MAX_BATCH = 256
# Seconds between WAL checkpoints, run by their own thread.
CHECKPOINT_EVERY = 1.0


@dataclass
class Effects:
    """What an op asks to happen after its transaction commits."""

    changes: list[Change] = field(default_factory=list)
    delete_blobs: list[str] = field(default_factory=list)


@dataclass
class _Job:
    op: Callable[[sqlite3.Connection, Effects], Any]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]


def connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    """Open a connection with the pragmas every Mailwarden connection uses."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 10000")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA synchronous = FULL")
    if readonly:
        conn.execute("PRAGMA query_only = ON")
    return conn


def migrate(conn: sqlite3.Connection) -> int:
    """Apply every numbered migration not applied yet, in order; return the highest number.

    Applied numbers are recorded one by one (not only as a high-water mark), so
    a migration merged later with a lower number than one already applied
    still runs.
    """
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations"
        " (number INTEGER PRIMARY KEY, name TEXT NOT NULL, applied REAL NOT NULL)"
    )
    applied = {int(r[0]) for r in conn.execute("SELECT number FROM schema_migrations")}
    legacy = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if legacy and not applied:
        # Databases from before this table: everything up to user_version ran.
        applied = set(range(1, legacy + 1))
        conn.executemany(
            "INSERT INTO schema_migrations (number, name, applied) VALUES (?, '', 0)",
            [(n,) for n in applied],
        )
    scripts = sorted(
        (
            p
            for p in resources.files("mailwarden.store.migrations.sqlite").iterdir()
            if p.name.endswith(".sql")
        ),
        key=lambda p: p.name,
    )
    for script in scripts:
        number = int(script.name.split("_", 1)[0])
        if number in applied:
            continue
        log.info("applying store migration %s", script.name)
        conn.executescript(
            "BEGIN IMMEDIATE;\n"
            + script.read_text(encoding="utf-8")
            + f"\nINSERT INTO schema_migrations (number, name, applied)"
            f" VALUES ({number}, '{script.name}', strftime('%s', 'now'));\n"
            + f"PRAGMA user_version = {max(applied | {number})};\nCOMMIT;"
        )
        applied.add(number)
    return max(applied, default=0)


class Database:
    """The writer thread and the reader pool over one SQLite file."""

    def __init__(
        self,
        path: Path,
        readers: int,
        on_commit: Callable[[Effects], None],
    ) -> None:
        self.path = path
        self._on_commit = on_commit
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._writer_conn = connect(path)
        self.schema_version = migrate(self._writer_conn)
        self._local = threading.local()
        self._readers = ThreadPoolExecutor(readers, thread_name_prefix="store-read")
        self._reader_conns: list[sqlite3.Connection] = []
        self._reader_lock = threading.Lock()
        self._open_readers(readers)
        # The writer never checkpoints (that would stall every commit behind a
        # copy of the WAL into the database); a thread of its own does it.
        self._writer_conn.execute("PRAGMA wal_autocheckpoint = 0")
        self._stop_checkpoints = threading.Event()
        self._checkpointer = threading.Thread(
            target=self._checkpoint_loop, name="store-checkpoint", daemon=True
        )
        self._checkpointer.start()
        self._writer = threading.Thread(target=self._write_loop, name="store-write", daemon=True)
        self._writer.start()
        self._closed = False

    async def write(self, op: Callable[[sqlite3.Connection, Effects], T]) -> T:
        """Run ``op`` in the writer's next transaction; return after the commit."""
        if self._closed:
            raise StoreUnavailable("the store is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put(_Job(op, loop, future))
        return await future

    async def read(self, op: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``op`` on a read connection in the reader pool."""
        if self._closed:
            raise StoreUnavailable("the store is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, self._run_read, op)

    def _open_readers(self, count: int) -> None:
        """Open every reader thread's connection now, so no request pays for it."""
        gathered = threading.Barrier(count)

        def warm() -> None:
            self._reader_conn()
            with contextlib.suppress(threading.BrokenBarrierError):
                gathered.wait(timeout=5)  # one job per thread: each opens its own

        for job in [self._readers.submit(warm) for _ in range(count)]:
            job.result()

    def _reader_conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path, readonly=True)
            self._local.conn = conn
            with self._reader_lock:
                self._reader_conns.append(conn)
        return conn

    def _run_read(self, op: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._reader_conn()
        try:
            conn.execute("BEGIN")
            return op(conn)
        finally:
            conn.execute("COMMIT")

    def _checkpoint_loop(self) -> None:
        conn = connect(self.path)
        try:
            while not self._stop_checkpoints.wait(CHECKPOINT_EVERY):
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error as exc:
                    log.warning("store: checkpoint failed: %s", exc)
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as exc:
            log.warning("store: final checkpoint failed: %s", exc)
        finally:
            conn.close()

    def _write_loop(self) -> None:
        conn = self._writer_conn
        while True:
            first = self._jobs.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < MAX_BATCH:
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    self._jobs.put(None)  # finish this batch, then stop
                    break
                batch.append(job)
            self._run_batch(conn, batch)

    def _run_batch(self, conn: sqlite3.Connection, batch: list[_Job]) -> None:
        outcomes: list[tuple[bool, Any, Effects]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            log.error("store: cannot begin a transaction: %s", exc)
            _resolve_all(
                [(job, False, StoreUnavailable("the store is unavailable")) for job in batch]
            )
            return
        for job in batch:
            effects = Effects()
            try:
                conn.execute("SAVEPOINT op")
                result = job.op(conn, effects)
                conn.execute("RELEASE op")
                outcomes.append((True, result, effects))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK TO op")
                    conn.execute("RELEASE op")
                if isinstance(exc, sqlite3.Error):
                    log.error("store: write failed: %s", exc)
                    exc = StoreUnavailable("the store could not save the change")
                outcomes.append((False, exc, effects))
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            log.error("store: commit failed: %s", exc)
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            failure = StoreUnavailable("the store could not save the change")
            _resolve_all([(job, False, failure) for job in batch])
            return
        settled: list[tuple[_Job, bool, Any]] = []
        for job, (ok, value, effects) in zip(batch, outcomes, strict=True):
            if ok:
                try:
                    self._on_commit(effects)
                except Exception:
                    log.exception("store: after-commit work failed")
            settled.append((job, ok, value))
        _resolve_all(settled)

    async def close(self) -> None:
        """Finish queued writes and close every connection."""
        if self._closed:
            return
        self._closed = True
        self._jobs.put(None)
        await asyncio.to_thread(self._writer.join)
        self._stop_checkpoints.set()
        await asyncio.to_thread(self._checkpointer.join)
        self._readers.shutdown(wait=True)
        for conn in self._reader_conns:
            conn.close()
        self._writer_conn.close()


def _resolve_all(settled: list[tuple[_Job, bool, Any]]) -> None:
    """Hand each job its outcome, with one wake-up per event loop for the whole batch."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Job, bool, Any]]] = {}
    for item in settled:
        by_loop.setdefault(item[0].loop, []).append(item)
    for loop, items in by_loop.items():
        if not loop.is_closed():
            loop.call_soon_threadsafe(_settle, items)


def _settle(items: list[tuple[_Job, bool, Any]]) -> None:
    for job, ok, value in items:
        if job.future.done():
            continue
        if ok:
            job.future.set_result(value)
        else:
            job.future.set_exception(value)
