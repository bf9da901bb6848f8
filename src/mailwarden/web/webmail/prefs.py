"""Per-account webmail preferences: signature, identities' names, list options.

The mail store has no place for user preferences yet, so webmail keeps them in
a small SQLite file of its own (``webmail.db`` in the data directory), one JSON
document per account, cached in memory after the first read.  The
:class:`PrefsStore` protocol is the seam: when the store grows account
metadata (IMAP METADATA, RFC 5464, would be the natural home), a class with the
same two methods replaces this one.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from mailwarden.store.base import AccountId

__all__ = ["PAGE_SIZES", "Prefs", "PrefsStore", "SqlitePrefs"]

PAGE_SIZES = (25, 50, 100)
MAX_SIGNATURE = 2000


@dataclass(frozen=True, slots=True)
class Prefs:
    """One account's preferences.

    Attributes:
        signature: appended to new messages, after a "-- " line.
        identity: the From address used by default ("" for the account's own).
        names: display name per identity address (lower case).
        page_size: messages per list page (one of :data:`PAGE_SIZES`).
        threads: group the list by conversation.
        prefer_html: show the HTML part of a message when there is one.
        trusted_senders: senders whose remote images load without asking.
    """

    signature: str = ""
    identity: str = ""
    names: dict[str, str] = field(default_factory=dict)
    page_size: int = 50
    threads: bool = False
    prefer_html: bool = True
    trusted_senders: tuple[str, ...] = ()

    def to_json(self) -> str:
        """Serialise for storage."""
        doc = asdict(self)
        doc["trusted_senders"] = list(self.trusted_senders)
        return json.dumps(doc, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> Prefs:
        """Read stored preferences; unknown or malformed fields take their defaults."""
        try:
            doc: Any = json.loads(text)
        except ValueError:
            return cls()
        if not isinstance(doc, dict):
            return cls()
        base = cls()
        names = doc.get("names")
        page_size = doc.get("page_size")
        trusted = doc.get("trusted_senders")
        return replace(
            base,
            signature=str(doc.get("signature", ""))[:MAX_SIGNATURE],
            identity=str(doc.get("identity", "")),
            names={str(k): str(v) for k, v in names.items()} if isinstance(names, dict) else {},
            page_size=page_size if page_size in PAGE_SIZES else base.page_size,
            threads=bool(doc.get("threads", False)),
            prefer_html=bool(doc.get("prefer_html", True)),
            trusted_senders=tuple(str(t) for t in trusted) if isinstance(trusted, list) else (),
        )


class PrefsStore(Protocol):
    """Where preferences live."""

    async def get(self, account: AccountId) -> Prefs:
        """The account's preferences (defaults if none were saved)."""
        ...

    async def put(self, account: AccountId, prefs: Prefs) -> None:
        """Save the account's preferences (durable when it returns)."""
        ...


class SqlitePrefs:
    """Preferences in one SQLite file, cached in memory."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._cache: dict[AccountId, Prefs] = {}
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS prefs (account INTEGER PRIMARY KEY, doc TEXT NOT NULL)"
            )
            self._conn = conn
        return self._conn

    async def get(self, account: AccountId) -> Prefs:
        """The account's preferences (defaults if none were saved)."""
        cached = self._cache.get(account)
        if cached is not None:
            return cached

        def read() -> str | None:
            with self._lock:
                row = (
                    self._connection()
                    .execute("SELECT doc FROM prefs WHERE account = ?", (account,))
                    .fetchone()
                )
            return None if row is None else str(row[0])

        doc = await asyncio.to_thread(read)
        prefs = Prefs() if doc is None else Prefs.from_json(doc)
        self._cache[account] = prefs
        return prefs

    async def put(self, account: AccountId, prefs: Prefs) -> None:
        """Save the account's preferences (durable when it returns)."""
        doc = prefs.to_json()

        def write() -> None:
            with self._lock:
                self._connection().execute(
                    "INSERT INTO prefs (account, doc) VALUES (?, ?)"
                    " ON CONFLICT(account) DO UPDATE SET doc = excluded.doc",
                    (account, doc),
                )

        await asyncio.to_thread(write)
        self._cache[account] = prefs

    def close(self) -> None:
        """Close the database file."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
