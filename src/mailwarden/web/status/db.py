"""The status service's own SQLite database and its numbered migrations.

The status page must outlive the mail cluster it reports on, so it keeps its
own small database (never the mail store).  Migrations are plain SQL files
named ``NNNN_description.sql`` in ``migrations/``; ``StatusDB.migrate`` applies
the ones not yet recorded in ``schema_migrations``, each in its own
transaction, in number order.

One connection serves the process, guarded by a lock: the service runs
queries from the CLI, from request handlers (through ``asyncio.to_thread``) and
from the scheduler, and SQLite wants one writer at a time anyway.  WAL mode
lets a second process (say ``mailwarden status incident update`` while the
page is being served) read and write alongside.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

_MIGRATION_RE = re.compile(r"(\d{4})_[a-z0-9_]+\.sql")

Params = Sequence[Any] | dict[str, Any]


def migration_files() -> list[tuple[int, str, str]]:
    """Return ``(number, name, sql)`` for every packaged migration, in order."""
    found = []
    for entry in resources.files(__package__).joinpath("migrations").iterdir():
        match = _MIGRATION_RE.fullmatch(entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


class StatusDB:
    """A locked SQLite connection with transactions and migrations.

    Args:
        path: database file, or ``":memory:"`` for tests.
    """

    def __init__(self, path: str | Path) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        self._depth = 0
        with self._lock:
            self._conn.execute("PRAGMA foreign_keys = ON")
            self._conn.execute("PRAGMA busy_timeout = 5000")
            if str(path) != ":memory:":
                self._conn.execute("PRAGMA journal_mode = WAL")

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()

    def migrate(self) -> list[str]:
        """Apply pending migrations; return the names of those applied."""
        applied: list[str] = []
        with self._lock:
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version INTEGER PRIMARY KEY, name TEXT NOT NULL)"
            )
            done = {r[0] for r in self._conn.execute("SELECT version FROM schema_migrations")}
            for number, name, sql in migration_files():
                if number in done:
                    continue
                # executescript commits first; wrap the script so it is atomic.
                self._conn.executescript(
                    f"BEGIN IMMEDIATE;\n{sql}\n"
                    f"INSERT INTO schema_migrations (version, name) VALUES ({number}, '{name}');\n"
                    "COMMIT;"
                )
                applied.append(name)
        return applied

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Hold the lock and run the block in one transaction (nested blocks join it)."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self._conn
                finally:
                    self._depth -= 1
                return
            self._conn.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            else:
                self._conn.execute("COMMIT")
            finally:
                self._depth = 0

    def all(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        """Run a query and return every row."""
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def one(self, sql: str, params: Params = ()) -> sqlite3.Row | None:
        """Run a query and return its first row, or None."""
        with self._lock:
            row: sqlite3.Row | None = self._conn.execute(sql, params).fetchone()
            return row

    def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement in its own (or the enclosing) transaction; return lastrowid."""
        with self.transaction() as conn:
            return conn.execute(sql, params).lastrowid or 0
