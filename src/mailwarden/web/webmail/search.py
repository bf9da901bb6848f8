"""Searching a folder (or all folders) by sender, recipient, subject, body and date.

The store has no search index yet, so a search walks the folder's summaries
newest first, a page at a time (the cheap fields: sender, recipients,
subject, date), and loads the stored facts (their ``text``, the decoded body
of every text part) only for messages still in the running after the cheap
test.  Work is bounded: at most :data:`SCAN_LIMIT` messages are examined and
:data:`RESULT_LIMIT` returned; the result says when it stopped early.  A
store-side full-text index (FTS5 / tsvector) would replace :func:`search`
with one query behind the same signature.
"""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass

from mailwarden.store.base import AccountId, Folder, MessageSummary, Store

__all__ = ["RESULT_LIMIT", "SCAN_LIMIT", "Criteria", "Hit", "parse_day", "search"]

SCAN_LIMIT = 50_000
RESULT_LIMIT = 200
_PAGE = 1000
_FACTS_BATCH = 200


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


async def search(
    store: Store, account: AccountId, folders: list[Folder], criteria: Criteria
) -> tuple[list[Hit], bool]:
    """Find messages matching ``criteria`` in ``folders``, newest first per folder.

    Returns:
        (hits, complete): ``complete`` is false when a limit stopped the search.
    """
    c = _lower(criteria)
    hits: list[Hit] = []
    scanned = 0
    for folder in folders:
        offset = 0
        while True:
            total, page = await store.list_summaries(
                account, folder.id, sort="date", descending=True, offset=offset, limit=_PAGE
            )
            pending: list[MessageSummary] = []
            for summary in page:
                verdict = _cheap(c, summary)
                if verdict is True:
                    hits.append(Hit(folder, summary))
                elif verdict is None:
                    pending.append(summary)
            for start in range(0, len(pending), _FACTS_BATCH):
                batch = pending[start : start + _FACTS_BATCH]
                facts = await store.get_facts(account, folder.id, [s.entry.uid for s in batch])
                for summary in batch:
                    found = facts.get(summary.entry.uid)
                    if found is None:
                        continue
                    text = found.text.lower()
                    if c.body and c.body not in text:
                        continue
                    if c.text and c.text not in text:
                        continue
                    hits.append(Hit(folder, summary))
            scanned += len(page)
            offset += len(page)
            if len(hits) >= RESULT_LIMIT or scanned >= SCAN_LIMIT:
                return hits[:RESULT_LIMIT], False
            if not page or offset >= total:
                break
    return hits, True
