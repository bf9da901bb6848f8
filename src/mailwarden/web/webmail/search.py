"""Searching a folder (or all folders) by sender, recipient, subject, body and date.

Each text criterion asks the store's full-text index
(:meth:`~mailwarden.store.base.MailStore.search_text`: header or decoded body,
case-insensitive substrings) for the UIDs that contain it; the intersection's
summaries are then checked exactly against the fields the user named (the
header index also finds a sender's name in, say, a Received: line, so the
summary test keeps "from" meaning the sender).  A search by dates alone walks
the folder's summaries, at most :data:`SCAN_LIMIT` of them.  At most
:data:`RESULT_LIMIT` hits are returned; the result says when it was cut.
"""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass

from mailwarden.store.base import AccountId, Folder, MessageSummary, Store

__all__ = ["RESULT_LIMIT", "SCAN_LIMIT", "Criteria", "Hit", "parse_day", "search"]

SCAN_LIMIT = 50_000
RESULT_LIMIT = 200


def parse_day(value: str | None) -> int | None:
    """``YYYY-MM-DD`` as epoch seconds at 00:00 UTC; None for empty or malformed."""
    if not value:
        return None
    try:
        day = dt.date.fromisoformat(value.strip())
    except ValueError:
        return None
    return calendar.timegm(day.timetuple())


@dataclass(frozen=True, slots=True)
class Criteria:
    """What to look for; every given field must match (case-insensitive substrings).

    Attributes:
        text: anywhere: sender, recipients, subject or body.
        from_: sender name or address.
        to: a To address.
        subject: the subject.
        body: the decoded text of the message.
        since: sent on or after this time (epoch seconds).
        before: sent before this time.
    """

    text: str = ""
    from_: str = ""
    to: str = ""
    subject: str = ""
    body: str = ""
    since: int | None = None
    before: int | None = None

    def empty(self) -> bool:
        """Nothing to search for."""
        return not (self.text or self.from_ or self.to or self.subject or self.body) and (
            self.since is None and self.before is None
        )


@dataclass(frozen=True, slots=True)
class Hit:
    """A message that matched, with its folder."""

    folder: Folder
    summary: MessageSummary


def _cheap(c: Criteria, s: MessageSummary) -> bool | None:
    """True/False when the summary decides, None when the body must be read."""
    when = s.date if s.date is not None else s.entry.internal_date
    if c.since is not None and when < c.since:
        return False
    if c.before is not None and when >= c.before:
        return False
    sender = f"{s.from_name} {s.from_addr}".lower()
    to = " ".join(s.to).lower()
    subject = s.subject.lower()
    if c.from_ and c.from_ not in sender:
        return False
    if c.to and c.to not in to:
        return False
    if c.subject and c.subject not in subject:
        return False
    if c.body:
        return None
    if c.text and not (c.text in sender or c.text in to or c.text in subject):
        return None
    return True


def _lower(c: Criteria) -> Criteria:
    return Criteria(
        c.text.lower().strip(),
        c.from_.lower().strip(),
        c.to.lower().strip(),
        c.subject.lower().strip(),
        c.body.lower().strip(),
        c.since,
        c.before,
    )


async def _folder_hits(
    store: Store, account: AccountId, folder: Folder, c: Criteria
) -> list[MessageSummary]:
    """Matches in one folder, newest first, using the store's text index."""
    uid_sets: list[set[int]] = []
    body_hits: set[int] = set()
    for needle in (c.from_, c.to, c.subject):
        if needle:  # these live in the header; the summary check below is exact
            uid_sets.append(await store.search_text(account, folder.id, needle, body=False))
    if c.body:
        uid_sets.append(await store.search_text(account, folder.id, c.body, header=False))
    if c.text:
        in_header = await store.search_text(account, folder.id, c.text, body=False)
        body_hits = await store.search_text(account, folder.id, c.text, header=False)
        uid_sets.append(in_header | body_hits)
    if uid_sets:
        uids = set.intersection(*uid_sets)
        summaries = await store.get_summaries(account, folder.id, sorted(uids))
    else:  # dates only: walk the folder's summaries
        _total, summaries = await store.list_summaries(
            account, folder.id, sort="date", descending=True, limit=SCAN_LIMIT
        )
    found = []
    for summary in summaries:
        verdict = _cheap(c, summary)
        if verdict is None:
            # The body decides: for c.body the index already said yes; for
            # c.text the summary fields did not have it, so the body must.
            verdict = not c.text or summary.entry.uid in body_hits
        if verdict:
            found.append(summary)
    found.sort(key=lambda s: (s.date or s.entry.internal_date, s.entry.uid), reverse=True)
    return found


async def search(
    store: Store, account: AccountId, folders: list[Folder], criteria: Criteria
) -> tuple[list[Hit], bool]:
    """Find messages matching ``criteria`` in ``folders``, newest first per folder.

    Returns:
        (hits, complete): ``complete`` is false when the result limit cut it.
    """
    c = _lower(criteria)
    hits: list[Hit] = []
    for folder in folders:
        hits += [Hit(folder, s) for s in await _folder_hits(store, account, folder, c)]
        if len(hits) > RESULT_LIMIT:
            return hits[:RESULT_LIMIT], False
    return hits, True
