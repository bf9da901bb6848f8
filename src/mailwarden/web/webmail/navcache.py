"""The folder list and its counts, cached per account and kept fresh by change notifications.

Theory of operation
-------------------
Every page shows the account's folders with their unread counts, and every
handler resolves a folder id among the account's folders.  Asking the store
each time costs one read for the folder list and one per folder for the
counts; the INBOX count alone scans the whole folder (about 9 ms at 10,000
messages).  So :class:`FolderCache` keeps, per account, the folder list and
each folder's :class:`~mailwarden.store.base.FolderStatus`, and subscribes to
the store's change notifications for that account:

* a change to messages of one folder (append, flags, expunge) makes that
  folder's counts stale; only that folder is counted again, on the next
  request that needs it;
* a change to the folders themselves (created, renamed, deleted), a lost
  notification (the subscription overflowed) or an entry older than
  :data:`MAX_AGE` makes the whole entry stale.

Notifications are read (drained) at the start of every lookup, so a request
never sees counts older than the changes announced before it started.  The
store publishes a commit's changes before it wakes the writer, so a handler
that just changed something sees its own change.  Recounts are shared: while
one request counts a folder, others needing it wait for that count instead
of starting their own.

Tenancy: entries are keyed by account id and filled only with that
account's store calls, as before.  Memory is bounded by :data:`MAX_ACCOUNTS`
(least recently used accounts are dropped, with their subscriptions).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from mailwarden.store.base import (
    AccountId,
    ChangeKind,
    Folder,
    FolderId,
    FolderStatus,
    NotFound,
    Store,
    Subscription,
)

__all__ = ["MAX_ACCOUNTS", "MAX_AGE", "FolderCache"]

MAX_ACCOUNTS = 10_000
"""Accounts kept at most (each holds one change subscription)."""

MAX_AGE = 30.0
"""Seconds after which an entry is read again even without notifications (a
safety net for writers that do not announce, such as another process on the
same SQLite file)."""


@dataclass
class _Entry:
    """One account's cached folders and counts."""

    loop: asyncio.AbstractEventLoop
    subscription: Subscription
    loaded: float
    folders: list[Folder] | None = None
    status: dict[FolderId, FolderStatus] = field(default_factory=dict)
    pending: dict[FolderId, asyncio.Future[FolderStatus | None]] = field(default_factory=dict)


class FolderCache:
    """Folder lists and counts per account, refreshed from change notifications."""

    def __init__(
        self,
        store: Store,
        clock: Callable[[], float] = time.monotonic,
        max_accounts: int = MAX_ACCOUNTS,
    ) -> None:
        self._store = store
        self._clock = clock
        self._max = max_accounts
        self._entries: OrderedDict[AccountId, _Entry] = OrderedDict()

    def _entry(self, account: AccountId) -> _Entry:
        loop = asyncio.get_running_loop()
        now = self._clock()
        entry = self._entries.get(account)
        if entry is not None and (entry.loop is not loop or now - entry.loaded > MAX_AGE):
            self.forget(account)
            entry = None
        if entry is None:
            entry = _Entry(loop, self._store.changes.subscribe(account), now)
            self._entries[account] = entry
            while len(self._entries) > self._max:
                self.forget(next(iter(self._entries)))
        else:
            self._entries.move_to_end(account)
            self._apply(entry)
        return entry

    def _apply(self, entry: _Entry) -> None:
        """Drop what the notifications received since the last lookup made stale."""
        changes = entry.subscription.drain()
        if entry.subscription.overflowed:
            entry.subscription.overflowed = False
            entry.folders = None
            entry.status.clear()
            return
        for change in changes:
            if change.kind is ChangeKind.FOLDERS or change.folder is None:
                entry.folders = None
                entry.status.clear()
            else:
                entry.status.pop(change.folder, None)

    def forget(self, account: AccountId) -> None:
        """Drop an account's entry (and its subscription)."""
        entry = self._entries.pop(account, None)
        if entry is not None:
            entry.subscription.close()

    def close(self) -> None:
        """Drop every entry."""
        for account in list(self._entries):
            self.forget(account)

    async def folders(self, account: AccountId) -> list[Folder]:
        """The account's folders, as :meth:`Store.list_folders` returns them."""
        entry = self._entry(account)
        if entry.folders is None:
            folders = await self._store.list_folders(account)
            # Keep the list only if nothing changed while it was being read.
            if not entry.subscription.drain() and self._entries.get(account) is entry:
                entry.folders = folders
            else:
                entry.folders = None
                entry.status.clear()
            return folders
        return entry.folders

    async def statuses(self, account: AccountId) -> list[FolderStatus]:
        """Every folder's counts (folders deleted meanwhile are left out)."""
        folders = await self.folders(account)
        entry = self._entry(account)
        missing = [f for f in folders if f.id not in entry.status]
        if missing:
            await asyncio.gather(*(self._count(entry, account, f) for f in missing))
        out = []
        for folder in folders:
            status = entry.status.get(folder.id)
            if status is None:  # stale again already, or deleted: this request's own read
                status = await self._read(account, folder)
            if status is not None:
                out.append(status)
        return out

    async def _read(self, account: AccountId, folder: Folder) -> FolderStatus | None:
        try:
            return await self._store.folder_status(account, folder.name)
        except NotFound:
            return None

    async def _count(self, entry: _Entry, account: AccountId, folder: Folder) -> None:
        waiting = entry.pending.get(folder.id)
        if waiting is not None:
            await asyncio.shield(waiting)
            return
        future: asyncio.Future[FolderStatus | None] = entry.loop.create_future()
        entry.pending[folder.id] = future
        try:
            status = await self._read(account, folder)
            self._store_status(entry, folder.id, status)
            future.set_result(status)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved here; waiters get it through shield
            raise
        finally:
            entry.pending.pop(folder.id, None)

    def _store_status(self, entry: _Entry, folder: FolderId, status: FolderStatus | None) -> None:
        """Keep a fresh count unless a change to that folder arrived while it was read."""
        changes = entry.subscription.drain()
        if entry.subscription.overflowed or any(
            c.kind is ChangeKind.FOLDERS or c.folder is None for c in changes
        ):
            entry.subscription.overflowed = False
            entry.folders = None
            entry.status.clear()
            return
        for change in changes:
            entry.status.pop(change.folder, None)  # type: ignore[arg-type]
        if status is not None and not any(c.folder == folder for c in changes):
            entry.status[folder] = status
