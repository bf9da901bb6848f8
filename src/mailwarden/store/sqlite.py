"""The SQLite implementation of :class:`mailwarden.store.base.Store` (the default).

Writes go through :class:`~.sqlite_db.Database` (one writer thread, group
commit); the SQL itself lives in :mod:`.sqlite_admin` and :mod:`.sqlite_mail`.
Appends parse the message and fsync its blob on a worker thread *before*
entering the write queue, so the writer thread only runs short transactions.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from mailwarden.mail.address import Address
from mailwarden.mail.facts import MessageFacts, compute_facts
from mailwarden.store import sqlite_admin as admin
from mailwarden.store import sqlite_mail as mail
from mailwarden.store.base import (
    DEFAULT_FOLDERS,
    Account,
    AccountId,
    AccountStatus,
    Alias,
    AppendResult,
    ChangeHub,
    ChangeKind,
    CopyResult,
    Domain,
    FlagMode,
    FlagUpdate,
    Folder,
    FolderId,
    FolderStatus,
    MessageEntry,
    MessageSummary,
    NotFound,
    OutboundCopy,
    QueuedMessage,
    QuotaExceeded,
    QuotaUsage,
    Resolution,
    SpecialUse,
    StoreUnavailable,
)
from mailwarden.store.blobs import BlobStore, inline_name
from mailwarden.store.search import TextIndex
from mailwarden.store.sqlite_db import Database, Effects, connect

__all__ = ["SqliteStore"]

log = logging.getLogger(__name__)
T = TypeVar("T")

# Blob files younger than this are never taken for orphans (a write in flight).
ORPHAN_AGE = 3600.0
# Messages up to this size are stored inside the database: their durability
# then rides on the transaction's one WAL fsync (shared by a whole group
# commit) instead of a file fsync and a directory fsync of their own, which
# more than doubles the append rate of small mail.  Larger ones stay in files
# so the database and its WAL do not churn through big attachments.
INLINE_MAX = 256 * 1024
# Messages up to this size are parsed on the event loop (see _prepare_async).
INLINE_PARSE_MAX = 32 * 1024


@dataclass(frozen=True, slots=True)
class _Prepared:
    """A parsed message ready for its transaction: inline data or a durable blob file."""

    blob: str
    sha256: str
    facts: MessageFacts
    facts_json: str
    data: bytes | None


class SqliteStore:
    """Mail store on one SQLite file (WAL) plus a directory of blob files."""

    def __init__(
        self,
        db: Database,
        blobs: BlobStore,
        changes: ChangeHub,
        inline_max: int,
        index: TextIndex,
    ) -> None:
        self._db = db
        self._blobs = blobs
        self.changes = changes
        self.inline_max = inline_max
        self._index = index

    @classmethod
    async def open(
        cls,
        path: Path,
        blob_dir: Path,
        *,
        readers: int = 4,
        changes: ChangeHub | None = None,
        inline_max: int = INLINE_MAX,
    ) -> SqliteStore:
        """Open (creating and migrating as needed) a store."""
        path.parent.mkdir(parents=True, exist_ok=True)
        hub = changes or ChangeHub()
        blobs = BlobStore(blob_dir)

        def on_commit(effects: Effects) -> None:
            if effects.delete_blobs:
                blobs.delete(effects.delete_blobs)
            if effects.changes:
                hub.publish(effects.changes)

        index_box: list[TextIndex] = []

        def on_commit_and_index(effects: Effects) -> None:
            on_commit(effects)
            if index_box and any(c.kind is ChangeKind.APPEND for c in effects.changes):
                index_box[0].kick()

        db = await asyncio.to_thread(Database, path, readers, on_commit_and_index)
        index = await asyncio.to_thread(
            TextIndex, path.with_name(path.stem + "-search.sqlite"), path, blobs, connect
        )
        index_box.append(index)
        store = cls(db, blobs, hub, inline_max, index)
        await store._remove_orphans()
        return store

    async def close(self) -> None:
        """Finish pending writes and close the database."""
        await self._db.close()
        await asyncio.to_thread(self._index.close)

    async def _remove_orphans(self) -> None:
        """Delete blob files that no message row references (crash leftovers)."""
        candidates = await asyncio.to_thread(self._blobs.files_older_than, ORPHAN_AGE)
        if not candidates:
            return

        def referenced(conn: sqlite3.Connection) -> set[str]:
            return {str(r[0]) for r in conn.execute("SELECT blob FROM messages")}

        known = await self._db.read(referenced)
        orphans = [path for path in candidates if path.name not in known]
        if orphans:
            log.info("store: removing %d orphaned blob file(s)", len(orphans))
            await asyncio.to_thread(self._blobs.remove_files, orphans)

    # --- admin ------------------------------------------------------------

    async def add_domain(self, name: str, alias_of: str | None = None) -> Domain:
        return await self._db.write(lambda c, fx: admin.add_domain(c, fx, name, alias_of))

    async def list_domains(self) -> list[Domain]:
        return await self._db.read(admin.list_domains)

    async def get_domain(self, name: str) -> Domain:
        return await self._db.read(lambda c: admin.get_domain(c, name))

    async def remove_domain(self, name: str, *, force: bool = False) -> None:
        await self._db.write(lambda c, fx: admin.remove_domain(c, fx, name, force))

    async def add_account(
        self,
        address: Address,
        password_hash: str,
        *,
        display_name: str = "",
        quota_bytes: int = 0,
        quota_messages: int = 0,
    ) -> Account:
        def op(conn: sqlite3.Connection, fx: Effects) -> Account:
            first = mail.next_uidvalidity(conn, len(DEFAULT_FOLDERS))
            return admin.add_account(
                conn,
                fx,
                address,
                password_hash,
                display_name,
                quota_bytes,
                quota_messages,
                first,
            )

        return await self._db.write(op)

    async def find_account(self, address: str) -> Account | None:
        return await self._db.read(lambda c: admin.find_account(c, address))

    async def get_account(self, account: AccountId) -> Account:
        return await self._db.read(lambda c: admin.get_account(c, account))

    async def list_accounts(self, domain: str | None = None) -> list[Account]:
        return await self._db.read(lambda c: admin.list_accounts(c, domain))

    async def _update_account(self, account: AccountId, sql: str, *args: object) -> Account:
        def op(conn: sqlite3.Connection, _fx: Effects) -> Account:
            admin.get_account(conn, account)
            conn.execute(sql, (*args, account))
            return admin.get_account(conn, account)

        return await self._db.write(op)

    async def set_password_hash(self, account: AccountId, password_hash: str) -> Account:
        return await self._update_account(
            account,
            "UPDATE accounts SET password_hash = ?, credential_version = credential_version + 1"
            " WHERE id = ?",
            password_hash,
        )

    async def set_quota(
        self, account: AccountId, *, quota_bytes: int, quota_messages: int
    ) -> Account:
        return await self._update_account(
            account,
            "UPDATE accounts SET quota_bytes = ?, quota_messages = ? WHERE id = ?",
            quota_bytes,
            quota_messages,
        )

    async def set_status(self, account: AccountId, status: AccountStatus) -> Account:
        return await self._update_account(
            account, "UPDATE accounts SET status = ? WHERE id = ?", status.value
        )

    async def set_display_name(self, account: AccountId, display_name: str) -> Account:
        return await self._update_account(
            account, "UPDATE accounts SET display_name = ? WHERE id = ?", display_name
        )

    async def remove_account(self, account: AccountId) -> None:
        await self._db.write(lambda c, fx: admin.delete_account(c, fx, account))

    async def add_alias(self, source: str, targets: Sequence[str]) -> Alias:
        return await self._db.write(lambda c, fx: admin.add_alias(c, fx, source, targets))

    async def list_aliases(self, domain: str | None = None) -> list[Alias]:
        return await self._db.read(lambda c: admin.list_aliases(c, domain))

    async def remove_alias(self, source: str) -> None:
        await self._db.write(lambda c, fx: admin.remove_alias(c, fx, source))

    async def resolve_recipient(self, address: Address) -> Resolution:
        return await self._db.read(lambda c: admin.resolve_recipient(c, address))

    async def addresses_of(self, account: AccountId) -> list[str]:
        return await self._db.read(lambda c: admin.addresses_of(c, account))

    async def enqueue_outbound(
        self,
        account: AccountId | None,
        mail_from: str,
        recipients: Sequence[str],
        raw: bytes,
        dsn: str = "{}",
    ) -> QueuedMessage:
        copy = OutboundCopy(account, mail_from, tuple(recipients), raw, dsn)
        _, queued = await self.deliver_and_queue([], b"", copy)
        assert queued is not None
        return queued

    async def list_queue(self) -> list[QueuedMessage]:
        return await self._db.read(admin.list_queue)

    async def get_queued(self, queue_id: int) -> tuple[QueuedMessage, bytes]:
        def op(conn: sqlite3.Connection) -> tuple[QueuedMessage, bytes]:
            row = conn.execute(
                f"SELECT {admin.QUEUE_COLUMNS} FROM outbound_queue WHERE id = ?",
                (queue_id,),
            ).fetchone()
            if row is None:
                raise NotFound(f"no queued message {queue_id}")
            blob, data = conn.execute(
                "SELECT m.blob, b.data FROM outbound_queue q JOIN messages m ON m.id = q.message_id"
                " LEFT JOIN message_blobs b ON b.message_id = m.id WHERE q.id = ?",
                (queue_id,),
            ).fetchone()
            return admin.queued_from_row(row), self._load(str(blob), data)

        return await self._db.read(op)

    async def remove_queued(self, queue_id: int) -> None:
        def op(conn: sqlite3.Connection, fx: Effects) -> None:
            row = conn.execute(
                "DELETE FROM outbound_queue WHERE id = ? RETURNING message_id", (queue_id,)
            ).fetchone()
            if row is None:
                raise NotFound(f"no queued message {queue_id}")
            admin.release_messages(conn, fx, {int(row[0]): 1})

        await self._db.write(op)

    # --- mail --------------------------------------------------------------

    async def list_folders(self, account: AccountId) -> list[Folder]:
        return await self._db.read(lambda c: mail.list_folders(c, account))

    async def get_folder(self, account: AccountId, name: str) -> Folder:
        return await self._db.read(lambda c: mail.get_folder(c, account, name))

    async def create_folder(
        self, account: AccountId, name: str, special_use: SpecialUse | None = None
    ) -> Folder:
        return await self._db.write(
            lambda c, fx: mail.create_folder(c, fx, account, name, special_use)
        )

    async def delete_folder(self, account: AccountId, name: str) -> None:
        await self._db.write(lambda c, fx: mail.delete_folder(c, fx, account, name))

    async def rename_folder(self, account: AccountId, old: str, new: str) -> Folder:
        return await self._db.write(lambda c, fx: mail.rename_folder(c, fx, account, old, new))

    async def set_subscribed(self, account: AccountId, name: str, subscribed: bool) -> None:
        await self._db.write(lambda c, fx: mail.set_subscribed(c, fx, account, name, subscribed))

    async def folder_status(self, account: AccountId, name: str) -> FolderStatus:
        return await self._db.read(lambda c: mail.folder_status(c, account, name))

    async def quota(self, account: AccountId) -> QuotaUsage:
        return await self._db.read(lambda c: mail.quota(c, account))

    def _prepare(self, raw: bytes) -> _Prepared:
        """Parse a message and, if it is large, write its blob file durably.

        Runs on a worker thread.  Small messages are kept for the transaction
        to store inline (see ``inline_max``).
        """
        facts = compute_facts(raw)
        sha = hashlib.sha256(raw).hexdigest()
        facts_json = facts.to_json()
        if len(raw) <= self.inline_max:
            return _Prepared(inline_name(), sha, facts, facts_json, raw)
        try:
            blob = self._blobs.write(raw)
        except OSError as exc:
            log.error("store: cannot write a blob: %s", exc)
            raise StoreUnavailable("the store cannot save messages right now") from None
        return _Prepared(blob, sha, facts, facts_json, None)

    async def _prepare_async(self, raw: bytes) -> _Prepared:
        """:meth:`_prepare`, on the event loop for small messages.

        Parsing a small message costs about as much as handing it to a thread
        and back (the GIL serialises the work either way), so only messages
        that need a file write (never done on the loop) or a long parse go to
        a worker thread.
        """
        if len(raw) <= min(INLINE_PARSE_MAX, self.inline_max):  # no file write either
            return self._prepare(raw)
        return await asyncio.to_thread(self._prepare, raw)

    def _insert(self, conn: sqlite3.Connection, prepared: _Prepared, refs: int) -> int:
        return mail.insert_message(
            conn,
            prepared.blob,
            prepared.sha256,
            prepared.facts,
            refs,
            prepared.data,
            prepared.facts_json,
        )

    async def _write_with_blob(
        self, op: Callable[[sqlite3.Connection, Effects], T], blobs: Sequence[str]
    ) -> T:
        try:
            return await self._db.write(op)
        except BaseException:
            await asyncio.to_thread(self._blobs.delete, blobs)
            raise

    async def append(
        self,
        account: AccountId,
        folder: str,
        raw: bytes,
        *,
        flags: Iterable[str] = (),
        internal_date: int | None = None,
    ) -> AppendResult:
        flag_list = list(flags)
        date = int(time.time()) if internal_date is None else internal_date

        # Cheap checks first (one read), so a refused append costs no parse.
        def check(conn: sqlite3.Connection) -> bool:
            mail.get_folder(conn, account, folder)
            return mail.quota(conn, account).allows(len(raw))

        if not await self._db.read(check):
            raise QuotaExceeded("the mailbox is over its quota")
        prepared = await self._prepare_async(raw)

        def op(conn: sqlite3.Connection, fx: Effects) -> AppendResult:
            target = mail.get_folder(conn, account, folder)
            message_id = self._insert(conn, prepared, refs=1)
            return mail.add_entry(conn, fx, account, target, message_id, len(raw), flag_list, date)

        return await self._write_with_blob(op, [prepared.blob])

    async def deliver(
        self, accounts: Sequence[AccountId], raw: bytes, *, folder: str = "INBOX"
    ) -> dict[AccountId, AppendResult]:
        results, _ = await self.deliver_and_queue(accounts, raw, None, folder=folder)
        return results

    async def deliver_and_queue(
        self,
        accounts: Sequence[AccountId],
        raw: bytes,
        outbound: OutboundCopy | None,
        *,
        folder: str = "INBOX",
    ) -> tuple[dict[AccountId, AppendResult], QueuedMessage | None]:
        targets = list(dict.fromkeys(accounts))
        local = await self._prepare_async(raw) if targets else None
        remote = await self._prepare_async(outbound.raw) if outbound else None
        blobs = [p.blob for p in (local, remote) if p is not None]
        if not blobs:
            return {}, None
        now = int(time.time())

        def op(
            conn: sqlite3.Connection, fx: Effects
        ) -> tuple[dict[AccountId, AppendResult], QueuedMessage | None]:
            results: dict[AccountId, AppendResult] = {}
            if local is not None:
                message_id = self._insert(conn, local, refs=0)
                for account in targets:
                    try:
                        target = mail.get_folder(conn, account, folder)
                        results[account] = mail.add_entry(
                            conn, fx, account, target, message_id, len(raw), (), now
                        )
                    except (QuotaExceeded, NotFound):
                        continue
                if results:
                    conn.execute(
                        "UPDATE messages SET refs = ? WHERE id = ?", (len(results), message_id)
                    )
                else:
                    conn.execute("DELETE FROM messages WHERE id = ?", (message_id,))
                    fx.delete_blobs.append(local.blob)
            queued = None
            if remote is not None and outbound is not None:
                queued = mail.enqueue_outbound(
                    conn,
                    outbound,
                    remote.blob,
                    remote.sha256,
                    remote.facts,
                    now,
                    remote.data,
                    remote.facts_json,
                )
            return results, queued

        return await self._write_with_blob(op, blobs)

    async def list_entries(self, account: AccountId, folder_id: FolderId) -> list[MessageEntry]:
        return await self._db.read(lambda c: mail.list_entries(c, account, folder_id))

    async def changes_since(
        self, account: AccountId, folder_id: FolderId, modseq: int
    ) -> tuple[list[MessageEntry], list[int]]:
        return await self._db.read(lambda c: mail.changes_since(c, account, folder_id, modseq))

    async def get_facts(
        self, account: AccountId, folder_id: FolderId, uids: Sequence[int]
    ) -> dict[int, MessageFacts]:
        return await self._db.read(lambda c: mail.facts_rows(c, account, folder_id, uids))

    async def read_message(self, account: AccountId, folder_id: FolderId, uid: int) -> bytes:
        found = await self.read_messages(account, folder_id, [uid])
        if uid not in found:
            raise NotFound(f"no message with UID {uid}")
        return found[uid]

    async def read_messages(
        self, account: AccountId, folder_id: FolderId, uids: Sequence[int]
    ) -> dict[int, bytes]:
        def op(conn: sqlite3.Connection) -> dict[int, bytes]:
            located = mail.blobs_of(conn, account, folder_id, uids)
            return {uid: self._load(blob, data) for uid, (blob, data) in located.items()}

        return await self._db.read(op)

    def _load(self, blob: str, data: bytes | None) -> bytes:
        if data is not None:
            return data
        try:
            return self._blobs.read(blob)
        except FileNotFoundError:
            log.error("store: blob %s of a committed message is missing", blob)
            raise StoreUnavailable("the message cannot be read right now") from None

    async def search_text(
        self,
        account: AccountId,
        folder_id: FolderId,
        needle: str,
        *,
        header: bool = True,
        body: bool = True,
        uids: Sequence[int] | None = None,
    ) -> set[int]:
        def op(conn: sqlite3.Connection) -> set[int]:
            return mail.search_text(
                conn, self._index, self._blobs, account, folder_id, needle, header, body, uids
            )

        return await self._db.read(op)

    async def sync_search_index(self) -> None:
        """Bring the search index up to date now (it otherwise follows within a second)."""
        await asyncio.to_thread(self._index.catch_up)

    async def get_summaries(
        self, account: AccountId, folder_id: FolderId, uids: Sequence[int]
    ) -> list[MessageSummary]:
        return await self._db.read(lambda c: mail.get_summaries(c, account, folder_id, uids))

    async def thread_summaries(
        self, account: AccountId, folder_id: FolderId, thread_key: str
    ) -> list[MessageSummary]:
        return await self._db.read(
            lambda c: mail.thread_summaries(c, account, folder_id, thread_key)
        )

    async def get_entries(
        self, account: AccountId, folder_id: FolderId, uids: Sequence[int]
    ) -> list[MessageEntry]:
        return await self._db.read(lambda c: mail.get_entries(c, account, folder_id, uids))

    async def store_flags(
        self,
        account: AccountId,
        folder_id: FolderId,
        uids: Sequence[int],
        flags: Iterable[str],
        mode: FlagMode,
        *,
        unchanged_since: int | None = None,
    ) -> FlagUpdate:
        flag_list = list(flags)
        return await self._db.write(
            lambda c, fx: mail.store_flags(
                c, fx, account, folder_id, uids, flag_list, mode, unchanged_since
            )
        )

    async def copy(
        self, account: AccountId, folder_id: FolderId, uids: Sequence[int], dest: str
    ) -> CopyResult:
        return await self._db.write(
            lambda c, fx: mail.copy(c, fx, account, folder_id, uids, dest, remove=False)
        )

    async def move(
        self, account: AccountId, folder_id: FolderId, uids: Sequence[int], dest: str
    ) -> CopyResult:
        return await self._db.write(
            lambda c, fx: mail.copy(c, fx, account, folder_id, uids, dest, remove=True)
        )

    async def expunge(
        self, account: AccountId, folder_id: FolderId, uids: Sequence[int] | None = None
    ) -> list[int]:
        return await self._db.write(lambda c, fx: mail.expunge(c, fx, account, folder_id, uids))

    async def list_summaries(
        self,
        account: AccountId,
        folder_id: FolderId,
        *,
        sort: str = "date",
        descending: bool = True,
        offset: int = 0,
        limit: int = 50,
    ) -> tuple[int, list[MessageSummary]]:
        return await self._db.read(
            lambda c: mail.list_summaries(c, account, folder_id, sort, descending, offset, limit)
        )
