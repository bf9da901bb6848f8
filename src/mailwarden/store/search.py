"""Full-text search over stored messages: a trigram index kept beside the store.

Theory of operation
-------------------
IMAP ``SEARCH TEXT/BODY/SUBJECT...`` and webmail search ask for a
case-insensitive *substring* of a message's header or decoded body.  Scanning
every message for that costs a second per 10,000 messages; an SQLite FTS5
table with the ``trigram`` tokenizer answers it from an index in milliseconds
(any needle of three or more characters is a set of trigrams).

* **Off the hot path.**  Indexing a 10 KB message costs about 2 ms, more than
  storing it, so appends never wait for it: a thread of its own indexes
  messages after they commit, in batches, into a *separate* database file so
  it never holds the store's write lock.  Each message is indexed once (rows
  are per stored message, shared by its copies in every folder).
* **Always complete.**  A search asks the index for what it has covered and
  scans the few messages committed since (and needles under three
  characters, which trigrams cannot find) the slow way, so answers never lag
  behind the store.
* **Tenancy.**  The index knows only message ids; every answer is intersected
  with the entries of the one folder of the one account asked about.
* Rows of deleted messages stay in the index until :meth:`TextIndex.prune`;
  they can never be returned, since they have no entries.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from mailwarden.store.blobs import BlobStore, is_inline

__all__ = ["TextIndex", "header_text", "matches"]

log = logging.getLogger(__name__)

BATCH = 200
MIN_TRIGRAM = 3


def header_text(raw_header: bytes, subject: str, from_name: str) -> str:
    """What a header search sees: the raw header plus decoded subject and sender name."""
    text = raw_header.decode("utf-8", "replace").replace("\r\n", "\n")
    return f"{text}\n{subject}\n{from_name}"


def matches(needle: str, *texts: str) -> bool:
    """Case-insensitive substring test, the fallback the index stands in for."""
    folded = needle.casefold()
    return any(folded in text.casefold() for text in texts)


class TextIndex:
    """A trigram index of message headers and bodies, filled by a background thread."""

    def __init__(
        self,
        path: Path,
        db_path: Path,
        blobs: BlobStore,
        connect: Callable[..., sqlite3.Connection],
        interval: float = 0.5,
    ) -> None:
        self.path = path
        self._db_path = db_path
        self._blobs = blobs
        self._connect = connect
        self._interval = interval
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        self._stop = threading.Event()
        self._kick = threading.Event()
        self._batch_lock = threading.Lock()  # one indexer at a time
        conn = self._open()
        self.indexed_upto = int(
            conn.execute("SELECT value FROM meta WHERE key = 'upto'").fetchone()[0]
        )
        self._thread = threading.Thread(target=self._run, name="store-index", daemon=True)
        self._thread.start()

    def _open(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")  # rebuilt from the store if lost
            conn.execute("PRAGMA busy_timeout = 10000")
            conn.executescript(
                "CREATE VIRTUAL TABLE IF NOT EXISTS text USING fts5("
                "header, body, tokenize = 'trigram');"
                "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER);"
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('upto', 0);"
            )
            self._local.conn = conn
            with self._conns_lock:
                self._conns.append(conn)
        return conn

    def kick(self) -> None:
        """Index new messages soon (called after commits that added some)."""
        self._kick.set()

    def _run(self) -> None:
        # Linux gives each thread its own nice value: indexing takes only CPU
        # that serving mail leaves over, and catches up when the node is quiet.
        with contextlib.suppress(OSError, AttributeError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        store = self._connect(self._db_path, readonly=True)
        try:
            while not self._stop.is_set():
                try:
                    with self._batch_lock:
                        while self._index_batch(store) and not self._stop.is_set():
                            pass
                except sqlite3.Error as exc:
                    log.warning("search index: %s", exc)
                self._kick.wait(self._interval)
                self._kick.clear()
        finally:
            store.close()

    def catch_up(self) -> None:
        """Index every committed message now, on the calling thread."""
        store = self._connect(self._db_path, readonly=True)
        try:
            with self._batch_lock:
                while self._index_batch(store):
                    pass
        finally:
            store.close()

    def _index_batch(self, store: sqlite3.Connection) -> bool:
        """Index up to BATCH messages above the watermark; True if there may be more."""
        rows = store.execute(
            "SELECT m.id, m.blob, m.subject, m.from_name, json_extract(f.facts, '$.text'),"
            " json_extract(f.facts, '$.header_end'),"
            " substr(b.data, 1, json_extract(f.facts, '$.header_end'))"
            " FROM messages m JOIN message_facts f ON f.message_id = m.id"
            " LEFT JOIN message_blobs b ON b.message_id = m.id"
            " WHERE m.id > ? ORDER BY m.id LIMIT ?",
            (self.indexed_upto, BATCH),
        ).fetchall()
        if not rows:
            return False
        docs = []
        for message_id, blob, subject, from_name, text, header_end, head in rows:
            if head is None and not is_inline(blob):
                head = self._read_header(blob, int(header_end or 0))
            header = header_text(bytes(head or b""), subject, from_name)
            docs.append((message_id, header, str(text or "")))
        conn = self._open()
        conn.execute("BEGIN")
        conn.executemany("INSERT OR REPLACE INTO text (rowid, header, body) VALUES (?, ?, ?)", docs)
        upto = rows[-1][0]
        conn.execute("UPDATE meta SET value = ? WHERE key = 'upto'", (upto,))
        conn.execute("COMMIT")
        self.indexed_upto = upto
        return len(rows) == BATCH

    def _read_header(self, blob: str, header_end: int) -> bytes:
        try:
            with self._blobs.path(blob).open("rb") as f:
                return f.read(header_end)
        except OSError:
            return b""

    def candidates(self, needle: str, *, header: bool, body: bool) -> tuple[set[int], int]:
        """Message ids the index finds, and the id up to which its answer is complete.

        For needles too short for trigrams the set is empty and the watermark 0:
        the caller scans everything.
        """
        if len(needle) < MIN_TRIGRAM or not (header or body):
            return set(), 0
        upto = self.indexed_upto
        quoted = '"' + needle.replace('"', '""') + '"'
        columns = "{header body}" if header and body else ("header" if header else "body")
        rows = self._open().execute(
            "SELECT rowid FROM text WHERE text MATCH ?", (f"{columns} : {quoted}",)
        )
        return {int(r[0]) for r in rows}, upto

    def prune(self, live: Iterable[int]) -> None:
        """Drop index rows of messages that no longer exist."""
        keep = set(live)
        conn = self._open()
        stale = [r for (r,) in conn.execute("SELECT rowid FROM text") if r not in keep]
        for start in range(0, len(stale), 500):
            chunk = stale[start : start + 500]
            conn.execute(f"DELETE FROM text WHERE rowid IN ({','.join('?' * len(chunk))})", chunk)

    def close(self) -> None:
        """Stop the indexing thread and close connections."""
        self._stop.set()
        self._kick.set()
        self._thread.join()
        with self._conns_lock:
            for conn in self._conns:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            self._conns.clear()
