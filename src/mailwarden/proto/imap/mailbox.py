"""A session's view of its selected mailbox: sequence numbers and pending updates.

Theory of operation (RFC 3501 §2.3.1.2, §5.2, §7.4.1; RFC 7162 §3.2.10).
Sequence numbers are per session: message *n* is the *n*-th UID this session
has been told about.  Other sessions' changes reach a session as store entries
(what changed since the last modseq seen) and expunged UIDs; :meth:`update`
turns them into untagged responses:

* new messages -> ``* n EXISTS`` (allowed at any time), then ``* n RECENT``
  when the server says some of them are ``\\Recent`` for this session
  (:meth:`add_recent`; RFC 3501 §7.3.2);
* flag changes -> ``* n FETCH (FLAGS ...)`` (with UID under QRESYNC or
  IMAP4rev2, RFC 9051 §7.5.2, and MODSEQ under CONDSTORE);
* expunges -> ``* n EXPUNGE`` (or ``* VANISHED uids`` under QRESYNC), but only
  when the current command allows it: never during FETCH, STORE or SEARCH
  (non-UID), nor when no command is in progress (RFC 3501 §7.4.1), because
  the client would lose track of numbers.  Until then expunged messages stay
  in the view, as ghosts, so numbers keep their meaning; a FETCH of a ghost
  answers from what is left or with nothing (RFC 2180 §4.1).

No I/O: the server feeds what the store says.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from typing import Protocol

from mailwarden.proto.imap import commands as c
from mailwarden.proto.imap.fetch import flags_bytes
from mailwarden.proto.imap.responses import compact_set

__all__ = ["EntryLike", "MailboxView", "Snapshot", "snapshot"]

_RECENT = frozenset({"\\Recent"})

Snapshot = tuple[list[int], dict[int, frozenset[str]], dict[int, int]]
"""UIDs ascending, flags by UID, modseq by UID."""


def snapshot(entries: Iterable[EntryLike]) -> Snapshot:
    """Build a shareable snapshot of a folder's entries."""
    uids: list[int] = []
    flags: dict[int, frozenset[str]] = {}
    modseqs: dict[int, int] = {}
    for e in entries:
        uids.append(e.uid)
        flags[e.uid] = e.flags
        modseqs[e.uid] = e.modseq
    uids.sort()
    return uids, flags, modseqs


class EntryLike(Protocol):
    """What the view reads of a store entry."""

    @property
    def uid(self) -> int: ...

    @property
    def flags(self) -> frozenset[str]: ...

    @property
    def modseq(self) -> int: ...


class MailboxView:
    """The selected mailbox as one session knows it."""

    def __init__(
        self, uidvalidity: int, entries: Iterable[EntryLike], highestmodseq: int, readonly: bool
    ) -> None:
        self._init(uidvalidity, snapshot(entries), highestmodseq, readonly, owned=True)

    @classmethod
    def shared(
        cls, uidvalidity: int, snapshot: Snapshot, highestmodseq: int, readonly: bool
    ) -> MailboxView:
        """A view over a snapshot shared with other sessions, copied on first change.

        Sessions that only read or idle (most of them) then cost no memory per
        message; the snapshot must not be changed by anyone afterwards.
        """
        view = cls.__new__(cls)
        view._init(uidvalidity, snapshot, highestmodseq, readonly, owned=False)
        return view

    def _init(
        self, uidvalidity: int, snap: Snapshot, highestmodseq: int, readonly: bool, owned: bool
    ) -> None:
        self.uidvalidity = uidvalidity
        self.readonly = readonly
        self.uids, self.flags, self.modseqs = snap
        self._owned = owned
        self.highestmodseq = highestmodseq
        self.pending_expunge: set[int] = set()
        self.recent: set[int] = set()  # \Recent for this session (RFC 3501 §2.3.2)

    def _own(self) -> None:
        if not self._owned:
            self.uids = list(self.uids)
            self.flags = dict(self.flags)
            self.modseqs = dict(self.modseqs)
            self._owned = True

    # --- numbers ------------------------------------------------------------

    @property
    def exists(self) -> int:
        return len(self.uids)

    @property
    def max_uid(self) -> int:
        return self.uids[-1] if self.uids else 0

    def seq_of(self, uid: int) -> int | None:
        i = bisect.bisect_left(self.uids, uid)
        return i + 1 if i < len(self.uids) and self.uids[i] == uid else None

    def select(self, seqs: c.SequenceSet, uid: bool) -> list[tuple[int, int]] | None:
        """The ``(seq, uid)`` pairs a set names, ascending.

        Returns:
            The pairs; for message numbers, None when a number is past the end
            (RFC 3501 §9: a client must not name a message that does not
            exist); for UIDs, only the UIDs that exist (RFC 3501 §6.4.8).
        """
        out: list[tuple[int, int]] = []
        uids = self.uids
        if uid:
            for lo, hi in seqs.resolve(self.max_uid):
                i = bisect.bisect_left(uids, lo)
                j = bisect.bisect_right(uids, hi)
                out.extend(zip(range(i + 1, j + 1), uids[i:j], strict=True))
            return out
        n = len(uids)
        for lo, hi in seqs.resolve(n):
            if hi > n or lo < 1:
                return None
            out.extend(zip(range(lo, hi + 1), uids[lo - 1 : hi], strict=True))
        return out

    def shown_flags(self, uid: int, flags: frozenset[str]) -> frozenset[str]:
        """The flags as this session shows them: ``\\Recent`` added when it is."""
        if self.recent and uid in self.recent:
            return flags | _RECENT
        return flags

    def add_recent(self, uids: Iterable[int]) -> bytes:
        """Mark messages ``\\Recent`` for this session; ``* n RECENT`` if the count changed."""
        before = len(self.recent)
        self.recent.update(u for u in uids if u in self.flags)
        if len(self.recent) == before:
            return b""
        return b"* %d RECENT\r\n" % len(self.recent)

    # --- changes ------------------------------------------------------------

    def set_flags(self, uid: int, flags: frozenset[str], modseq: int) -> None:
        """Record a change this session made itself (it answers for it)."""
        if uid in self.flags:
            self._own()
            self.flags[uid] = flags
            self.modseqs[uid] = modseq

    def update(
        self,
        changed: Sequence[EntryLike],
        expunged: Iterable[int],
        *,
        allow_expunge: bool,
        condstore: bool,
        qresync: bool,
        modseq: int | None = None,
        with_uid: bool = False,
    ) -> bytes:
        """Apply what the store says changed; return the untagged responses.

        Args:
            changed: entries changed since the last update (new ones included).
            expunged: UIDs expunged since the last update.
            allow_expunge: the current command may announce expunges.
            condstore: add MODSEQ to FETCH responses (RFC 7162 §3.1.4).
            qresync: announce expunges as VANISHED, add UID to FETCH (RFC 7162 §3.2.10).
            modseq: the new high-water mark, if known.
            with_uid: add UID to FETCH anyway (IMAP4rev2, RFC 9051 §7.5.2).
        """
        out: list[bytes] = []
        gone = set(expunged)
        gone.intersection_update(self.flags)
        if changed or gone:
            self._own()
        self.pending_expunge |= gone
        # flag changes of known messages (not of ghosts)
        for e in changed:
            uid = e.uid
            if uid in self.pending_expunge:
                continue
            old = self.flags.get(uid)
            if old is None:
                continue
            if e.modseq > self.modseqs.get(uid, 0):
                self.modseqs[uid] = e.modseq
            if old != e.flags:
                self.flags[uid] = e.flags
                out.append(self.flag_line(uid, e.flags, condstore or qresync, qresync or with_uid))
        if allow_expunge and self.pending_expunge:
            out.append(self._expunge_lines(qresync))
        # new messages, after the expunges so EXISTS counts what is left
        fresh = sorted(
            (e for e in changed if e.uid > self.max_uid and e.uid not in gone),
            key=lambda e: e.uid,
        )
        if fresh:
            for e in fresh:
                if e.uid > self.max_uid:
                    self.uids.append(e.uid)
                    self.flags[e.uid] = e.flags
                    self.modseqs[e.uid] = e.modseq
            out.append(b"* %d EXISTS\r\n" % len(self.uids))
        if modseq is not None and modseq > self.highestmodseq:
            self.highestmodseq = modseq
        return b"".join(out)

    def expunge_now(self, uids: Iterable[int], qresync: bool) -> bytes:
        """Remove UIDs this session expunged itself; the EXPUNGE responses."""
        self.pending_expunge |= set(uids).intersection(self.flags)
        return self._expunge_lines(qresync) if self.pending_expunge else b""

    def flag_line(
        self, uid: int, flags: frozenset[str], with_modseq: bool, with_uid: bool
    ) -> bytes:
        seq = self.seq_of(uid)
        items = []
        if with_uid:
            items.append(b"UID %d" % uid)
        items.append(b"FLAGS " + flags_bytes(self.shown_flags(uid, flags)))
        if with_modseq:
            items.append(b"MODSEQ (%d)" % self.modseqs.get(uid, 0))
        return b"* %d FETCH (%s)\r\n" % (seq or 0, b" ".join(items))

    def _expunge_lines(self, qresync: bool) -> bytes:
        self._own()
        gone = sorted(self.pending_expunge)
        self.pending_expunge.clear()
        out: list[bytes] = []
        if qresync:
            # RFC 7162 §3.2.10: VANISHED replaces EXPUNGE once QRESYNC is enabled
            out.append(b"* VANISHED " + compact_set(gone) + b"\r\n")
            keep = set(gone)
            self.uids = [u for u in self.uids if u not in keep]
        else:
            # highest first, so each number is still right when it is sent
            for uid in reversed(gone):
                seq = self.seq_of(uid)
                if seq is not None:
                    out.append(b"* %d EXPUNGE\r\n" % seq)
                    del self.uids[seq - 1]
        for uid in gone:
            self.flags.pop(uid, None)
            self.modseqs.pop(uid, None)
            self.recent.discard(uid)
        return b"".join(out)
