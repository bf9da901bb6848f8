"""Which messages are ``\\Recent`` (RFC 3501 §2.3.2), kept per folder by the node.

Theory of operation.  RFC 3501 gives ``\\Recent`` to a message for exactly one
session: the first read-write session to be told about it (by SELECT or by a
later ``EXISTS``).  Sessions that open the folder read-only (EXAMINE) see the
flag on the same messages without taking it away (§6.3.2), and so does STATUS
(§6.3.10).  IMAP4rev2 dropped the flag (RFC 9051 Appendix E), so sessions that
enabled it take no part.

Because UIDs only grow, "not yet told to anybody" is one number per folder:
the highest UID that some read-write session has already been told about (the
*boundary*).  A message is recent for a session iff its UID was above the
boundary when that session learned of it; claiming moves the boundary up.
Each boundary also remembers the folder's mod-sequence at that moment, so
counting the recent messages for STATUS reads only what changed since then
(:meth:`~mailwarden.store.base.MailStore.changes_since`), never the folder.

Limits, by design of this first version: the boundaries live in the memory
of one node (one process).  A folder the node has not seen since it started
gets the boundary of its current last UID the first time it is seen, so mail
that arrived while the node was down, before any session looked, is not
flagged (the conservative side: never twice).  Two nodes (or workers) serving
the same account each keep their own boundary, so a message can be recent for
one session per node.  Both go away once the store keeps the boundary with
the folder and claims it atomically (asked of the store: see the IMAP notes).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from mailwarden.store.base import AccountId, FolderId

__all__ = ["Boundary", "RecentTracker"]


@dataclass(slots=True)
class Boundary:
    """The last UID given out as recent in one folder, and the folder's modseq then.

    Attributes:
        uidvalidity: the folder's UIDVALIDITY the numbers belong to.
        uid: every UID up to this one has been told to a read-write session.
        modseq: the folder's HIGHESTMODSEQ when ``uid`` was set (entries
            added later have a higher modseq).
    """

    uidvalidity: int
    uid: int
    modseq: int


class RecentTracker:
    """The node's recent boundaries, one per folder (bounded, least recently used out)."""

    def __init__(self, size: int = 100_000) -> None:
        self.size = size
        self._items: OrderedDict[tuple[AccountId, FolderId], Boundary] = OrderedDict()

    def boundary(
        self, account: AccountId, folder: FolderId, uidvalidity: int, max_uid: int, modseq: int
    ) -> Boundary:
        """The folder's boundary; a folder seen for the first time starts at ``max_uid``.

        Args:
            account: the folder's account.
            folder: the folder.
            uidvalidity: its current UIDVALIDITY (a new one starts over).
            max_uid: its highest UID now (the start for an unseen folder).
            modseq: its HIGHESTMODSEQ now.
        """
        key = (account, folder)
        found = self._items.get(key)
        if found is None or found.uidvalidity != uidvalidity:
            found = Boundary(uidvalidity, max_uid, modseq)
            self._items[key] = found
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        else:
            self._items.move_to_end(key)
        return found

    def claim(
        self, account: AccountId, folder: FolderId, uidvalidity: int, max_uid: int, modseq: int
    ) -> int:
        """A read-write session learned of every UID up to ``max_uid``: take the new ones.

        Returns:
            The previous boundary: the UIDs above it (up to ``max_uid``) are
            recent for the calling session and for no later one.
        """
        b = self.boundary(account, folder, uidvalidity, max_uid, modseq)
        before = b.uid
        if max_uid > b.uid:
            b.uid = max_uid
            b.modseq = max(b.modseq, modseq)
        return before
