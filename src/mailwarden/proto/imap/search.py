"""SEARCH evaluation over per-message data (RFC 3501 §6.4.4, RFC 7162 §3.1.5, RFC 4731).

Theory of operation.  :func:`search_needs` says what a query needs loaded
(the facts computed at delivery for SUBJECT/FROM/TO/CC/BODY/SENT*, the raw
header for BCC/HEADER/TEXT); the server loads that for each candidate and
calls :func:`matches`.  String keys compare case-insensitively as substrings
of decoded text (RFC 3501 §6.4.4: "a substring of the field"), after RFC 2047
decoding so that non-ASCII searches (CHARSET UTF-8) find encoded headers.
Dates compare calendar days in UTC.  ``\\Recent`` is one of the message's
flags when the server says it is recent for this session (RECENT, NEW, OLD).
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import UTC, date, datetime

from mailwarden.mail.facts import MessageFacts
from mailwarden.mail.mime import HeaderBlock, decode_words, parse_header
from mailwarden.proto.imap import commands as c
from mailwarden.proto.imap.responses import compact_set

__all__ = [
    "Known",
    "SearchMessage",
    "SearchNeeds",
    "candidate_ranges",
    "esearch_response",
    "matches",
    "ordered_set",
    "prefilter",
    "search_needs",
    "text_keys",
]

_HEADER_TEXT = frozenset({"BCC"})
_FACT_TEXT = frozenset({"FROM", "TO", "CC", "SUBJECT", "BODY"})


@dataclass(frozen=True, slots=True)
class SearchNeeds:
    facts: bool
    header: bool


@dataclass(slots=True)
class SearchMessage:
    """One message as SEARCH sees it.

    Attributes:
        header: the raw header block when :func:`search_needs` asked for it.
    """

    seq: int
    uid: int
    flags: frozenset[str]
    internal_date: int
    size: int
    modseq: int
    facts: MessageFacts | None = None
    header: bytes | None = None
    _parsed: HeaderBlock | None = None

    def header_values(self, name: str) -> list[str]:
        if self.header is None:
            return []
        if self._parsed is None:
            self._parsed = parse_header(self.header, 0, len(self.header))
        return [decode_words(v) for v in self._parsed.fields.get(name.lower(), [])]


def text_keys(key: c.SearchKey) -> list[c.SearchText]:
    """The TEXT and BODY keys in ``key``: what a text index can answer."""
    out: list[c.SearchText] = []
    stack: list[c.SearchKey] = [key]
    while stack:
        k = stack.pop()
        match k:
            case c.SearchText(field="TEXT" | "BODY"):
                out.append(k)
            case c.SearchNot(key=inner):
                stack.append(inner)
            case c.SearchOr(left=a, right=b):
                stack += [a, b]
            case c.SearchAnd(keys=keys):
                stack += keys
            case _:
                pass
    return out


def search_needs(key: c.SearchKey, known: Known | None = None) -> SearchNeeds:
    """What must be loaded to evaluate ``key`` (keys in ``known`` need nothing)."""
    facts = header = False
    stack: list[c.SearchKey] = [key]
    while stack:
        k = stack.pop()
        if known and k in known:
            continue
        match k:
            case c.SearchText(field=f):
                if f in _HEADER_TEXT:
                    header = True
                elif f == "TEXT":
                    header = facts = True
                else:
                    facts = True
            case c.SearchHeader():
                header = True
            case c.SearchDate(sent=True):
                facts = True
            case c.SearchNot(key=inner):
                stack.append(inner)
            case c.SearchOr(left=a, right=b):
                stack += [a, b]
            case c.SearchAnd(keys=keys):
                stack += keys
            case _:
                pass
    return SearchNeeds(facts, header)


def _day(epoch: int) -> date:
    return datetime.fromtimestamp(epoch, UTC).date()


def _has_flag(flags: frozenset[str], flag: str) -> bool:
    if flag.startswith("\\"):
        low = flag.lower()
        return any(f.lower() == low for f in flags)
    return flag in flags or any(f.lower() == flag.lower() for f in flags)


def _contains(haystack: str, needle: str) -> bool:
    return needle.casefold() in haystack.casefold()


def _text(msg: SearchMessage, field: str, value: str) -> bool:
    f = msg.facts
    if field == "BCC":
        return any(_contains(v, value) for v in msg.header_values("bcc"))
    if f is None:
        raise ValueError(f"SEARCH {field} needs the message facts")
    match field:
        case "SUBJECT":
            return _contains(f.subject, value)
        case "FROM":
            return _contains(f.from_name + " <" + f.from_addr + ">", value) or any(
                _contains(v, value) for v in msg.header_values("from")
            )
        case "TO":
            return any(_contains(a, value) for a in f.to) or any(
                _contains(v, value) for v in msg.header_values("to")
            )
        case "CC":
            return any(_contains(a, value) for a in f.cc) or any(
                _contains(v, value) for v in msg.header_values("cc")
            )
        case "BODY":
            return _contains(f.text, value)
        case _:  # TEXT: header and body (RFC 3501 §6.4.4)
            if _contains(f.text, value):
                return True
            if msg.header is None:
                return False
            if _contains(msg.header.decode("utf-8", "replace"), value):
                return True
            if b"=?" not in msg.header:
                return False  # no encoded words: the decoded fields say nothing new
            parsed = msg._parsed or parse_header(msg.header, 0, len(msg.header))
            msg._parsed = parsed
            return any(
                _contains(decode_words(v), value) for vs in parsed.fields.values() for v in vs
            )


Known = Mapping[c.SearchKey, AbstractSet[int]]
"""Answers the server worked out elsewhere (a text index): key -> matching UIDs."""


def matches(
    key: c.SearchKey, msg: SearchMessage, max_seq: int, max_uid: int, known: Known | None = None
) -> bool:
    """Whether ``msg`` satisfies ``key``.

    Args:
        key: the search key.
        msg: the message, with what :func:`search_needs` asked for loaded.
        max_seq: the number of messages (``*`` in a sequence set).
        max_uid: the highest UID (``*`` in a UID set).
        known: keys already answered for a set of UIDs (see :data:`Known`);
            such a key is answered by membership instead of evaluation.
    """
    if known and key in known:
        return msg.uid in known[key]
    match key:
        case c.SearchAnd(keys=keys):
            return all(matches(k, msg, max_seq, max_uid, known) for k in keys)
        case c.SearchFlag(flag=flag, present=present):
            return _has_flag(msg.flags, flag) == present
        case c.SearchText(field=field, value=value):
            return _text(msg, field, value)
        case c.SearchHeader(field=field, value=value):
            values = msg.header_values(field)
            # RFC 3501 §6.4.4: an empty string matches every message with the field
            return any(_contains(v, value) for v in values) if value else bool(values)
        case c.SearchDate(op=op, sent=sent, day=day):
            if sent:
                if msg.facts is None:
                    raise ValueError("SENT* needs the message facts")
                epoch = msg.facts.date if msg.facts.date is not None else msg.internal_date
            else:
                epoch = msg.internal_date
            d = _day(epoch)
            return d < day if op == "BEFORE" else d == day if op == "ON" else d >= day
        case c.SearchNumber(op=op, value=value):
            return msg.size > value if op == "LARGER" else msg.size < value
        case c.SearchSet(uid=uid, set=seqs):
            if uid:
                return seqs.contains(msg.uid, max_uid)
            return seqs.contains(msg.seq, max_seq)
        case c.SearchModseq(modseq=modseq):
            return msg.modseq >= modseq
        case c.SearchNot(key=inner):
            return not matches(inner, msg, max_seq, max_uid, known)
        case c.SearchOr(left=a, right=b):
            return matches(a, msg, max_seq, max_uid, known) or matches(
                b, msg, max_seq, max_uid, known
            )
    raise AssertionError(f"unknown search key {key!r}")  # pragma: no cover


def prefilter(
    key: c.SearchKey, msg: SearchMessage, max_seq: int, max_uid: int, known: Known | None = None
) -> bool | None:
    """What ``key`` says about ``msg`` from its folder entry alone, before loading more.

    Three-valued: True or False when the answer does not depend on the facts
    or the header (numbers, flags, sizes, internal dates, modseq, and keys in
    ``known``), None when it does.  The server loads facts and octets only
    for messages that come out None, so ``SEARCH 1:10000 TEXT x`` in a
    100,000-message folder reads 10,000 at most (none when a text index
    answered TEXT).
    """
    if known and key in known:
        return msg.uid in known[key]
    match key:
        case c.SearchAnd(keys=keys):
            result: bool | None = True
            for k in keys:
                r = prefilter(k, msg, max_seq, max_uid, known)
                if r is False:
                    return False
                if r is None:
                    result = None
            return result
        case c.SearchOr(left=a, right=b):
            ra = prefilter(a, msg, max_seq, max_uid, known)
            if ra is True:
                return True
            rb = prefilter(b, msg, max_seq, max_uid, known)
            if rb is True:
                return True
            return False if ra is False and rb is False else None
        case c.SearchNot(key=inner):
            r = prefilter(inner, msg, max_seq, max_uid, known)
            return None if r is None else not r
        case c.SearchText() | c.SearchHeader() | c.SearchDate(sent=True):
            return None
        case _:
            return matches(key, msg, max_seq, max_uid)


def candidate_ranges(key: c.SearchKey, uids: Sequence[int]) -> list[tuple[int, int]]:
    """The message numbers that can match ``key``, as ascending ``(first, last)`` ranges.

    Only sequence and UID sets that must hold (the conjuncts of the top-level
    AND, nested ANDs included) narrow the range; everything else is left to
    :func:`prefilter` and :func:`matches`.  So ``SEARCH 1:10000 TEXT x`` in a
    100,000-message folder looks at 10,000 messages, not at all of them.

    Args:
        key: the search key.
        uids: the session's UIDs in message-number order.
    """
    n = len(uids)
    ranges = [(1, n)] if n else []
    stack: list[c.SearchKey] = [key]
    while stack and ranges:
        k = stack.pop()
        if isinstance(k, c.SearchAnd):
            stack.extend(k.keys)
        elif isinstance(k, c.SearchSet) and not k.set.saved:
            allowed: list[tuple[int, int]] = []
            if k.uid:
                for lo, hi in k.set.resolve(uids[-1]):
                    first, last = bisect.bisect_left(uids, lo) + 1, bisect.bisect_right(uids, hi)
                    if first <= last:
                        allowed.append((first, last))
            else:
                allowed = [(lo, min(hi, n)) for lo, hi in k.set.resolve(n) if lo <= n]
            ranges = _intersect(ranges, allowed)
    return ranges


def _intersect(a: list[tuple[int, int]], b: list[tuple[int, int]]) -> list[tuple[int, int]]:
    # both ascending and disjoint
    out: list[tuple[int, int]] = []
    i = j = 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if lo <= hi:
            out.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def esearch_response(
    tag: str,
    uid: bool,
    options: tuple[str, ...],
    numbers: Sequence[int],
    modseq: int | None = None,
    *,
    ordered: bool = False,
) -> bytes:
    """``* ESEARCH (TAG "a") UID MIN 1 ...`` (RFC 4731 §3.1); ``()`` means ALL.

    Args:
        numbers: the matches, ascending (or in sort order when ``ordered``).
        modseq: the highest mod-sequence among the matches, when the search
            used MODSEQ (RFC 7162 §3.1.5).
        ordered: SORT RETURN (ESORT, RFC 5267 §3.2): MIN and MAX are the first
            and last in sort order, ALL keeps the sort order.
    """
    opts = tuple(o for o in options if o != "SAVE") or ("ALL",)
    out = b'ESEARCH (TAG "' + tag.encode("ascii") + b'")'
    if uid:
        out += b" UID"
    if numbers:
        if "MIN" in opts:
            out += b" MIN %d" % numbers[0]
        if "MAX" in opts:
            out += b" MAX %d" % numbers[-1]
        if "ALL" in opts:
            out += b" ALL " + (ordered_set(numbers) if ordered else compact_set(numbers))
    if "COUNT" in opts:
        out += b" COUNT %d" % len(numbers)
    if modseq is not None and numbers:
        out += b" MODSEQ %d" % modseq
    return out


def ordered_set(numbers: Sequence[int]) -> bytes:
    """A sequence set that keeps the given order: ``5,2:4,1`` (ESORT ALL, RFC 5267 §3.2).

    Only runs that ascend by one are shortened to ranges, so a client reading
    the set element by element gets the numbers in the order given.
    """
    parts: list[str] = []
    i, n = 0, len(numbers)
    while i < n:
        j = i
        while j + 1 < n and numbers[j + 1] == numbers[j] + 1:
            j += 1
        parts.append(str(numbers[i]) if i == j else f"{numbers[i]}:{numbers[j]}")
        i = j + 1
    return ",".join(parts).encode("ascii")
