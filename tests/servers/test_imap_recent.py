"""The node's \\Recent boundaries and the SEARCHRES helpers, as plain functions."""

from __future__ import annotations

from mailwarden.servers.imap_recent import RecentTracker
from mailwarden.servers.imap_search import to_save
from mailwarden.store.base import AccountId, FolderId

A, F = AccountId(1), FolderId(10)


def test_first_sight_takes_nothing_then_one_claim_each() -> None:
    t = RecentTracker()
    assert t.claim(A, F, 5, 3, 30) == 3  # unseen folder: what it holds counts as told
    assert t.boundary(A, F, 5, 9, 90).uid == 3  # looking (EXAMINE, STATUS) takes nothing
    assert t.claim(A, F, 5, 6, 60) == 3  # UIDs 4..6 are recent for this caller
    assert t.claim(A, F, 5, 6, 60) == 6  # and for nobody after
    assert t.boundary(A, F, 5, 6, 60).modseq == 60
    assert t.claim(A, F, 6, 2, 20) == 2  # a new UIDVALIDITY starts over


def test_bounded() -> None:
    t = RecentTracker(size=2)
    for folder in (1, 2, 3):
        t.claim(A, FolderId(folder), 1, 0, 0)
    t.claim(A, FolderId(3), 1, 5, 5)
    assert t.claim(A, FolderId(1), 1, 7, 7) == 7  # forgotten: seen afresh


def test_to_save() -> None:
    assert to_save(("SAVE",), [4, 2, 9]) == [2, 4, 9]
    assert to_save(("SAVE", "MIN"), [4, 2, 9]) == [4]  # first in result order
    assert to_save(("SAVE", "MIN", "MAX"), [4, 2, 9]) == [4, 9]
    assert to_save(("SAVE", "MAX", "COUNT"), [4, 2, 9]) == [2, 4, 9]
    assert to_save(("SAVE", "MIN"), []) == []
