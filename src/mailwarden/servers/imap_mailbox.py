"""The IMAP server's selected-mailbox commands: SELECT, FETCH, STORE, COPY, MOVE,
EXPUNGE, and the refresh that carries other sessions' changes.

Split from :mod:`mailwarden.servers.imap` to keep files short (SEARCH, SORT
and THREAD are in :mod:`mailwarden.servers.imap_search`).  The rules live in
the pure modules of :mod:`mailwarden.proto.imap` (:mod:`~.mailbox` for
sequence numbers, pending expunges and ``\\Recent``, :mod:`~.fetch`); this
module loads from the store what they need, in chunks kept loading ahead
(:mod:`mailwarden.servers.imap_prefetch`), and writes the answers through
the session.  FETCH hands message octets to the shell as separate pieces,
so they reach the socket without being copied into one buffer.

SELECT/EXAMINE answer by the session's protocol: RFC 3501 §6.3.1 (with
``RECENT`` and ``UNSEEN``) or, once IMAP4rev2 is enabled, RFC 9051 §6.3.2 (a
``LIST`` of the mailbox instead).  Which messages are ``\\Recent`` comes from
the node's :class:`~mailwarden.servers.imap_recent.RecentTracker`.  ``$``
(SEARCHRES) is kept here as UIDs and resolved by :meth:`SelectedFolder.select`.
"""

from __future__ import annotations

import asyncio
import bisect
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from mailwarden.mail.facts import MessageFacts
from mailwarden.proto.imap import commands as c
from mailwarden.proto.imap.fetch import (
    FetchMessage,
    FetchNeeds,
    FetchPlan,
    UnknownCte,
    fast_fetch_lines,
    fetch_needs,
    flags_bytes,
    is_fast,
    sets_seen,
)
from mailwarden.proto.imap.listing import ListFolder, select_list_line
from mailwarden.proto.imap.mailbox import MailboxView, Snapshot, snapshot
from mailwarden.proto.imap.responses import (
    RawLines,
    Tagged,
    Untagged,
    UntaggedStatus,
    compact_set,
)
from mailwarden.proto.imap.session import ImapSession
from mailwarden.servers import imap_search
from mailwarden.servers.imap_prefetch import chunked, load_ahead
from mailwarden.servers.imap_recent import RecentTracker
from mailwarden.store.base import (
    AccountId,
    FlagMode,
    Folder,
    FolderExists,
    FolderId,
    InvalidFolderName,
    MailStore,
    MessageEntry,
    NotFound,
    QuotaExceeded,
    StoreError,
    StoreUnavailable,
)

__all__ = ["FolderSnapshot", "SelectedFolder", "SnapshotCache", "folder_list", "reply_for"]

_CHUNK = 256  # messages loaded per store round trip
_FLUSH_AT = 1 << 20  # write out FETCH answers every megabyte
_SYSTEM_FLAGS = b"(\\Answered \\Flagged \\Deleted \\Seen \\Draft)"
_RECENT = frozenset({"\\Recent"})


def reply_for(exc: StoreError) -> tuple[str, str, str | None]:
    """The ``NO`` answer for a store error (RFC 5530 response codes)."""
    match exc:
        case NotFound():
            return "NO", "No such mailbox", "NONEXISTENT"
        case FolderExists():
            return "NO", "Mailbox already exists", "ALREADYEXISTS"
        case InvalidFolderName():
            return "NO", "Invalid mailbox name or operation", "CANNOT"
        case QuotaExceeded():
            return "NO", "Quota exceeded", "OVERQUOTA"
        case StoreUnavailable():
            return "NO", "Storage unavailable; try again later", "UNAVAILABLE"
        case _:
            return "NO", "Operation failed", "SERVERBUG"


Flush = Callable[[], Awaitable[None]]


async def folder_list(store: MailStore, account: AccountId) -> list[ListFolder]:
    """The account's folders as LIST sees them."""
    folders = await store.list_folders(account)
    return [
        ListFolder(f.name, str(f.special_use) if f.special_use else None, f.subscribed)
        for f in folders
    ]


_Loaded = tuple[dict[int, MessageFacts], dict[int, bytes]]
_CacheValue = tuple[int, int, "FolderSnapshot"]


@dataclass(frozen=True, slots=True)
class FolderSnapshot:
    """One version of a folder as sessions start from it (shared, never changed).

    Attributes:
        view: UIDs, flags and modseqs (see :func:`~mailwarden.proto.imap.mailbox.snapshot`).
        entries: the store's entries by UID.
        first_unseen: number of the first message without ``\\Seen``, or None
            (SELECT's ``UNSEEN`` code, worked out once per version).
    """

    view: Snapshot
    entries: dict[int, MessageEntry]
    first_unseen: int | None


class SnapshotCache:
    """Folder snapshots shared by the sessions that select the same folder.

    A snapshot is valid for one (UIDVALIDITY, HIGHESTMODSEQ): any change makes
    a new one.  Sessions copy their own view on their first change, so ten
    thousand clients idling on one large INBOX hold one copy of it, not ten
    thousand, and SELECT costs them no pass over the folder.  Bounded (least
    recently used out).
    """

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._items: OrderedDict[tuple[AccountId, FolderId], _CacheValue] = OrderedDict()

    async def load(self, store: MailStore, account: AccountId, folder: Folder) -> FolderSnapshot:
        """The snapshot of ``folder`` as of its current HIGHESTMODSEQ."""
        key = (account, folder.id)
        hit = self._items.get(key)
        if hit is not None and hit[:2] == (folder.uidvalidity, folder.highestmodseq):
            self._items.move_to_end(key)
            return hit[2]
        entries = await store.list_entries(account, folder.id)
        snap = snapshot(entries)
        uids, flags, _ = snap
        first_unseen = next((i + 1 for i, u in enumerate(uids) if "\\Seen" not in flags[u]), None)
        value = (
            folder.uidvalidity,
            folder.highestmodseq,
            FolderSnapshot(snap, {e.uid: e for e in entries}, first_unseen),
        )
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)
        return value[2]


class SelectedFolder:
    """The selected mailbox of one session: view, entries and store handle."""

    def __init__(
        self,
        store: MailStore,
        account: AccountId,
        folder_id: FolderId,
        view: MailboxView,
        entries: dict[int, MessageEntry],
        recent: RecentTracker | None = None,
    ) -> None:
        self.store = store
        self.account = account
        self.folder_id = folder_id
        self.view = view
        self.entries = entries  # shared with other sessions: never changed here
        self.own: dict[int, MessageEntry] = {}  # this session's newer entries
        self.dirty = False
        self.recent = recent  # None: this session shows no \Recent (EXAMINE keeps it)
        self.saved: list[int] = []  # SEARCHRES "$" as UIDs, ascending (RFC 5182 §2.1)

    def entry(self, uid: int) -> MessageEntry | None:
        found = self.own.get(uid)
        return found if found is not None else self.entries.get(uid)

    @classmethod
    async def open(
        cls,
        store: MailStore,
        account: AccountId,
        cmd: c.Select | c.Examine,
        session: ImapSession,
        cache: SnapshotCache,
        recent: RecentTracker | None = None,
    ) -> SelectedFolder:
        """Load a folder and send the SELECT/EXAMINE untagged data.

        RFC 3501 §6.3.1 for IMAP4rev1 sessions (with ``* n RECENT`` and the
        first unseen message); RFC 9051 §6.3.2 once IMAP4rev2 is enabled (no
        RECENT or UNSEEN, a LIST response for the mailbox instead).

        Args:
            recent: the node's recent boundaries; None shows no ``\\Recent``.

        Raises:
            NotFound: no such folder.
        """
        folder = await store.get_folder(account, cmd.mailbox)
        snap = await cache.load(store, account, folder)
        readonly = isinstance(cmd, c.Examine)
        view = MailboxView.shared(folder.uidvalidity, snap.view, folder.highestmodseq, readonly)
        rev2 = session.rev2
        sel = cls(store, account, folder.id, view, snap.entries, None if rev2 else recent)
        view.recent = set(sel._recent_from(0, folder.highestmodseq))
        flags = [
            b"* FLAGS " + _SYSTEM_FLAGS + b"\r\n",
            b"* OK [PERMANENTFLAGS "
            + (b"()" if readonly else _SYSTEM_FLAGS[:-1] + b" \\*)")
            + b"] Flags permitted\r\n",
        ]
        out = [b"* %d EXISTS\r\n" % view.exists]
        if rev2:
            out += flags
            folders = await folder_list(store, account)
            out.append(b"* " + select_list_line(folders, folder.name, utf8=True) + b"\r\n")
        else:
            out = flags + out
            out.append(b"* %d RECENT\r\n" % len(view.recent))
            if snap.first_unseen is not None:
                out.append(b"* OK [UNSEEN %d] First unseen\r\n" % snap.first_unseen)
        out.append(b"* OK [UIDVALIDITY %d] UIDs valid\r\n" % folder.uidvalidity)
        out.append(b"* OK [UIDNEXT %d] Predicted next UID\r\n" % folder.uidnext)
        # RFC 7162 §3.1.2.1: HIGHESTMODSEQ in every successful SELECT/EXAMINE
        out.append(b"* OK [HIGHESTMODSEQ %d] Highest\r\n" % folder.highestmodseq)
        session.send(RawLines(b"".join(out)))
        q = cmd.qresync
        if q is not None and q.uidvalidity == folder.uidvalidity:
            session.send(RawLines(await sel._qresync(q)))
        return sel

    def _recent_from(self, old_max: int, modseq: int) -> list[int]:
        """The UIDs above ``old_max`` that are recent for this session (claimed if read-write).

        RFC 3501 §2.3.2: a message is recent for the first read-write session
        told about it; EXAMINE sees the flag without taking it (§6.3.2).
        """
        tracker, view = self.recent, self.view
        if tracker is None:
            return []
        args = (self.account, self.folder_id, view.uidvalidity, view.max_uid, modseq)
        above = tracker.boundary(*args).uid if view.readonly else tracker.claim(*args)
        start = max(above, old_max)
        return view.uids[bisect.bisect_right(view.uids, start) :]

    async def _qresync(self, q: c.QresyncParams) -> bytes:
        """RFC 7162 §3.2.5.2: what vanished and what changed since the client's modseq."""
        changed, expunged = await self.store.changes_since(self.account, self.folder_id, q.modseq)
        view = self.view
        known = q.known_uids
        top = view.max_uid
        # The message sequence match data: pairs (number, UID) the client
        # believes in.  Up to the first pair that no longer holds, the client
        # knows of every expunge, so VANISHED (EARLIER) starts above that UID.
        known_upto = 0
        if q.seq_match is not None:
            seqs, uids = q.seq_match
            for n, u in zip(seqs.iter_numbers(0), uids.iter_numbers(0), strict=False):
                if n > view.exists or view.uids[n - 1] != u:
                    break
                known_upto = u
        vanished = sorted(
            u for u in expunged if u > known_upto and (known is None or known.contains(u, top or u))
        )
        out = []
        if vanished:
            out.append(b"* VANISHED (EARLIER) " + compact_set(vanished) + b"\r\n")
        for e in sorted(changed, key=lambda e: e.uid):
            seq = view.seq_of(e.uid)
            if seq is not None and (known is None or known.contains(e.uid, top)):
                flags = view.shown_flags(e.uid, view.flags[e.uid])
                out.append(
                    b"* %d FETCH (UID %d FLAGS %s MODSEQ (%d))\r\n"
                    % (seq, e.uid, flags_bytes(flags), view.modseqs[e.uid])
                )
        return b"".join(out)

    async def refresh(self, session: ImapSession, *, allow_expunge: bool) -> bytes:
        """Untagged updates for what other sessions changed (see :class:`MailboxView`)."""
        view = self.view
        if not self.dirty:
            if allow_expunge and view.pending_expunge:
                return view.update(
                    [],
                    [],
                    allow_expunge=True,
                    condstore=session.condstore,
                    qresync=session.qresync,
                    with_uid=session.rev2,
                )
            return b""
        self.dirty = False
        changed, expunged = await self.store.changes_since(
            self.account, self.folder_id, view.highestmodseq
        )
        for e in changed:
            if e.uid in view.flags or e.uid > view.max_uid:
                self.own[e.uid] = e
        top = max((e.modseq for e in changed), default=view.highestmodseq)
        old_max = view.max_uid
        out = view.update(
            changed,
            expunged,
            allow_expunge=allow_expunge,
            condstore=session.condstore,
            qresync=session.qresync,
            modseq=top,
            with_uid=session.rev2,
        )
        for uid in expunged:
            if uid not in view.flags:
                self.own.pop(uid, None)
        if view.max_uid > old_max:
            # RFC 3501 §7.3.2: RECENT follows the EXISTS that announced them
            out += view.add_recent(self._recent_from(old_max, top))
        return out

    # --- commands ----------------------------------------------------------------

    async def run(self, cmd: c.Command, session: ImapSession, flush: Flush) -> None:
        """Answer one selected-state command (tagged completion included)."""
        match cmd:
            case c.Fetch():
                await self.fetch(cmd, session, flush)
            case c.Store():
                await self.store_flags(cmd, session)
            case c.Search():
                await imap_search.search(self, cmd, session)
            case c.Sort():
                await imap_search.sort(self, cmd, session)
            case c.Thread():
                await imap_search.thread_command(self, cmd, session)
            case c.Copy() | c.Move():
                await self.copy(cmd, session)
            case c.Expunge():
                await self.expunge(cmd, session)
            case _:
                session.send(Tagged(cmd.tag, "BAD", "Unexpected command"))

    def select(self, seqs: c.SequenceSet, uid: bool) -> list[tuple[int, int]] | None:
        """The ``(seq, uid)`` pairs a set names (see :meth:`MailboxView.select`).

        ``$`` (SEARCHRES, RFC 5182 §2.1) names the saved messages that are
        still there, by UID whatever the command.
        """
        view = self.view
        if not seqs.saved:
            return view.select(seqs, uid)
        pairs = []
        for u in self.saved:
            seq = view.seq_of(u)
            if seq is not None and u not in view.pending_expunge:
                pairs.append((seq, u))
        return pairs

    def saved_uids(self) -> set[int]:
        """``$``: the saved messages still there, by UID."""
        view = self.view
        return {u for u in self.saved if u in view.flags and u not in view.pending_expunge}

    def _pairs(
        self, cmd: c.Fetch | c.Store | c.Copy | c.Move, session: ImapSession
    ) -> list[tuple[int, int]] | None:
        pairs = self.select(cmd.set, cmd.uid)
        if pairs is None:
            session.send(Tagged(cmd.tag, "BAD", "Message sequence number out of range"))
        return pairs

    async def fetch(self, cmd: c.Fetch, session: ImapSession, flush: Flush) -> None:
        view = self.view
        pairs = self._pairs(cmd, session)
        if pairs is None:
            return
        if cmd.changedsince is not None:
            since = cmd.changedsince
            pairs = [(s, u) for s, u in pairs if view.modseqs.get(u, 0) > since]
            if cmd.vanished:
                # RFC 7162 §3.2.6: VANISHED (EARLIER) for expunged UIDs in the set
                _, gone = await self.store.changes_since(self.account, self.folder_id, since)
                hit = sorted(u for u in gone if cmd.set.contains(u, view.max_uid or u))
                if hit:
                    session.send(Untagged(b"VANISHED (EARLIER) " + compact_set(hit)))
        items = cmd.items
        seen_now: set[int] = set()
        if sets_seen(items) and not view.readonly:
            unseen = [u for _, u in pairs if u in view.flags and "\\Seen" not in view.flags[u]]
            if unseen:
                upd = await self.store.store_flags(
                    self.account, self.folder_id, unseen, ["\\Seen"], FlagMode.ADD
                )
                for e in upd.updated:
                    view.set_flags(e.uid, e.flags, e.modseq)
                    self.own[e.uid] = e
                    seen_now.add(e.uid)
        modseq = cmd.changedsince is not None
        recent = view.recent
        if is_fast(items):
            rows = []
            for seq, uid in pairs:
                ent = self.entry(uid)
                if ent is None:
                    continue
                flags = view.flags.get(uid, ent.flags)
                if recent and uid in recent:
                    flags = flags | _RECENT
                ms = view.modseqs.get(uid, ent.modseq)
                rows.append((seq, uid, flags, ent.size, ms, ent.internal_date))
                if len(rows) >= 8192:
                    session.send(
                        RawLines(fast_fetch_lines(rows, items, uid=cmd.uid, modseq=modseq))
                    )
                    rows.clear()
                    await flush()
            session.send(RawLines(fast_fetch_lines(rows, items, uid=cmd.uid, modseq=modseq)))
            session.send(Tagged(cmd.tag, "OK", "FETCH completed"))
            return
        needs = fetch_needs(items)
        pending = 0

        def load(chunk: Sequence[tuple[int, int]]) -> Awaitable[_Loaded]:
            return self._load(chunk, needs.facts, needs.raw)

        async with load_ahead(chunked(pairs, _CHUNK), load) as loaded_chunks:
            async for chunk, loaded in loaded_chunks:
                try:
                    parts = self._render_chunk(chunk, loaded, cmd, seen_now, modseq, needs)
                except UnknownCte:
                    # RFC 3516 §4.2: a transfer encoding we cannot undo for BINARY
                    text = "Unknown Content-Transfer-Encoding"
                    session.send(Tagged(cmd.tag, "NO", text, "UNKNOWN-CTE"))
                    return
                session.send(RawLines(tuple(parts)))
                pending += sum(map(len, parts))
                if pending >= _FLUSH_AT:
                    await flush()
                    pending = 0
        session.send(Tagged(cmd.tag, "OK", "FETCH completed"))

    async def _load(self, chunk: Sequence[tuple[int, int]], facts: bool, raw: bool) -> _Loaded:
        """Facts and/or raw octets of a chunk of messages (two store calls at once)."""
        uids = [u for _, u in chunk]
        if facts and raw:
            got_facts, got_raws = await asyncio.gather(
                self.store.get_facts(self.account, self.folder_id, uids), self._read_many(uids)
            )
            return got_facts, got_raws
        if facts:
            return await self.store.get_facts(self.account, self.folder_id, uids), {}
        return {}, await self._read_many(uids)

    def _render_chunk(
        self,
        chunk: Sequence[tuple[int, int]],
        loaded: _Loaded,
        cmd: c.Fetch,
        seen_now: set[int],
        modseq: bool,
        needs: FetchNeeds,
    ) -> list[bytes]:
        view = self.view
        facts, raws = loaded
        plan = FetchPlan(cmd.items, uid=cmd.uid, modseq=modseq)
        want_facts, want_raw = needs.facts, needs.raw
        entries, own, vflags, vmodseqs = self.entries, self.own, view.flags, view.modseqs
        recent = view.recent
        out: list[bytes] = []
        if plan.body_only:
            for seq, uid in chunk:
                raw = raws.get(uid)
                if raw is None or uid not in vflags:
                    continue  # expunged meanwhile
                added = None
                if uid in seen_now:
                    added = flags_bytes(view.shown_flags(uid, vflags[uid]))
                plan.body(out, seq, uid, raw, added)
            return out
        for seq, uid in chunk:
            ent = own.get(uid) or entries.get(uid)
            raw = raws.get(uid)
            fact = facts.get(uid)
            if ent is None or (want_facts and fact is None) or (want_raw and raw is None):
                continue  # expunged meanwhile (RFC 2180 §4.1.2: nothing to say)
            flags = vflags.get(uid, ent.flags)
            if recent and uid in recent:
                flags = flags | _RECENT
            msg = FetchMessage(
                seq, uid, flags, ent.internal_date, ent.size,
                vmodseqs.get(uid, ent.modseq), fact, raw,
            )  # fmt: skip
            plan.parts(out, msg, flags=uid in seen_now)
        return out

    async def _read_many(self, uids: Sequence[int]) -> dict[int, bytes]:
        """Raw octets of the UIDs that still exist, in one store call."""
        return await self.store.read_messages(self.account, self.folder_id, uids)

    async def store_flags(self, cmd: c.Store, session: ImapSession) -> None:
        view = self.view
        if view.readonly:
            session.send(Tagged(cmd.tag, "NO", "Mailbox is read-only", "READ-ONLY"))
            return
        pairs = self._pairs(cmd, session)
        if pairs is None:
            return
        uids = [u for _, u in pairs if u in view.flags and u not in view.pending_expunge]
        mode = {"+": FlagMode.ADD, "-": FlagMode.REMOVE, "": FlagMode.REPLACE}[cmd.mode]
        failed: tuple[int, ...] = ()
        if uids:
            upd = await self.store.store_flags(
                self.account, self.folder_id, uids, cmd.flags, mode,
                unchanged_since=cmd.unchangedsince,
            )  # fmt: skip
            for e in upd.updated:
                view.set_flags(e.uid, e.flags, e.modseq)
                self.own[e.uid] = e
            failed = upd.failed
            touched = sorted(upd.updated + upd.unchanged, key=lambda e: e.uid)
            if not cmd.silent:
                lines = [
                    view.flag_line(e.uid, view.flags[e.uid], session.condstore, cmd.uid)
                    for e in touched
                    if e.uid in view.flags
                ]
                session.send(RawLines(b"".join(lines)))
        if failed:
            # RFC 7162 §3.1.3: MODIFIED names what UNCHANGEDSINCE protected
            nums = failed if cmd.uid else [view.seq_of(u) or 0 for u in failed]
            code = "MODIFIED " + compact_set(sorted(nums)).decode("ascii")
            session.send(Tagged(cmd.tag, "OK", "Conditional STORE failed", code))
            return
        session.send(Tagged(cmd.tag, "OK", "STORE completed"))

    async def copy(self, cmd: c.Copy | c.Move, session: ImapSession) -> None:
        view = self.view
        move = isinstance(cmd, c.Move)
        name = "MOVE" if move else "COPY"
        if move and view.readonly:
            session.send(Tagged(cmd.tag, "NO", "Mailbox is read-only", "READ-ONLY"))
            return
        pairs = self._pairs(cmd, session)
        if pairs is None:
            return
        uids = [u for _, u in pairs if u in view.flags]
        if not uids:
            session.send(Tagged(cmd.tag, "OK", f"{name} completed (nothing to do)"))
            return
        op = self.store.move if move else self.store.copy
        try:
            res = await op(self.account, self.folder_id, uids, cmd.mailbox)
        except NotFound:
            # RFC 3501 §6.4.7: TRYCREATE when the target does not exist
            session.send(Tagged(cmd.tag, "NO", "No such mailbox", "TRYCREATE"))
            return
        code = None
        if res.source_uids:
            src = compact_set(res.source_uids).decode()
            dst = compact_set(res.dest_uids).decode()
            code = f"COPYUID {res.uidvalidity} {src} {dst}"
        if move:
            # RFC 6851 §4.3: COPYUID in an untagged OK before the expunges
            if code is not None:
                session.send(UntaggedStatus("OK", "Moved", code))
            session.send(RawLines(view.expunge_now(res.source_uids, session.qresync)))
            for uid in res.source_uids:
                self.own.pop(uid, None)
            session.send(Tagged(cmd.tag, "OK", "MOVE completed"))
            return
        session.send(Tagged(cmd.tag, "OK", "COPY completed", code))

    async def expunge(self, cmd: c.Expunge, session: ImapSession) -> None:
        view = self.view
        if view.readonly:
            session.send(Tagged(cmd.tag, "NO", "Mailbox is read-only", "READ-ONLY"))
            return
        only: list[int] | None = None
        if cmd.uids is not None:
            only = [u for _, u in self.select(cmd.uids, True) or []]
            if not only:
                session.send(Tagged(cmd.tag, "OK", "EXPUNGE completed"))
                return
        gone = await self.store.expunge(self.account, self.folder_id, only)
        session.send(RawLines(view.expunge_now(gone, session.qresync)))
        for uid in gone:
            self.own.pop(uid, None)
        session.send(Tagged(cmd.tag, "OK", "EXPUNGE completed"))
