"""IMAP commands as values: one frozen dataclass per command (RFC 3501 §6, extensions).

The parser (:mod:`.parser`) turns the octets of one complete command into one of
these; :func:`.render.render_command` turns one back into octets, so the two can
be checked against each other.  Every command carries the client's ``tag``.

Mailbox names are held decoded (Unicode, after modified UTF-7 or, with
UTF8=ACCEPT, UTF-8); ``INBOX`` in any case is held as ``"INBOX"`` (RFC 3501 §5.1).
Flags keep their case as sent; system flags are compared case-insensitively by
the evaluators.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

__all__ = [
    "ALL_COMMANDS",
    "Append",
    "Authenticate",
    "Capability",
    "Check",
    "Close",
    "Command",
    "Compress",
    "Copy",
    "Create",
    "Delete",
    "Enable",
    "Examine",
    "Expunge",
    "Fetch",
    "FetchAtt",
    "GetQuota",
    "GetQuotaRoot",
    "Id",
    "Idle",
    "List",
    "Login",
    "Logout",
    "Lsub",
    "Move",
    "Namespace",
    "Noop",
    "QresyncParams",
    "Rename",
    "Search",
    "SearchAnd",
    "SearchDate",
    "SearchFlag",
    "SearchHeader",
    "SearchKey",
    "SearchModseq",
    "SearchNot",
    "SearchNumber",
    "SearchOr",
    "SearchSet",
    "SearchText",
    "Section",
    "Select",
    "SeqRange",
    "SequenceSet",
    "SetQuota",
    "Sort",
    "SortCriterion",
    "StartTls",
    "Status",
    "Store",
    "Subscribe",
    "Thread",
    "Unselect",
    "Unsubscribe",
]


# --- sequence sets (RFC 3501 §9 sequence-set) ---------------------------------

SeqRange = tuple[int | None, int | None]
"""One ``a:b`` element; ``None`` stands for ``*``; ``a`` alone is ``(a, a)``."""


@dataclass(frozen=True, slots=True)
class SequenceSet:
    """A sequence set as sent (numbers are message numbers or UIDs).

    Attributes:
        ranges: the elements in the client's order, ``*`` as ``None``.
        saved: the set is ``$`` (SEARCHRES, RFC 5182), the last saved result.
    """

    ranges: tuple[SeqRange, ...]
    saved: bool = False

    def resolve(self, star: int) -> list[tuple[int, int]]:
        """Concrete, sorted, merged ``[lo, hi]`` ranges with ``*`` taken as ``star``.

        RFC 3501 §9: ``a:b`` equals ``b:a``; ``*`` is the largest number in use
        (``star``; 0 for an empty mailbox, so ``*`` then matches nothing).
        """
        out: list[tuple[int, int]] = []
        for lo_raw, hi_raw in self.ranges:
            if star == 0 and (lo_raw is None or hi_raw is None):
                continue  # "*" in an empty mailbox names nothing
            lo = star if lo_raw is None else lo_raw
            hi = star if hi_raw is None else hi_raw
            if lo > hi:
                lo, hi = hi, lo
            out.append((lo, hi))
        out.sort()
        merged: list[tuple[int, int]] = []
        for lo, hi in out:
            if merged and lo <= merged[-1][1] + 1:
                if hi > merged[-1][1]:
                    merged[-1] = (merged[-1][0], hi)
            else:
                merged.append((lo, hi))
        return merged

    def contains(self, n: int, star: int) -> bool:
        """Whether ``n`` is in the set when ``*`` is ``star``."""
        for lo_raw, hi_raw in self.ranges:
            lo = star if lo_raw is None else lo_raw
            hi = star if hi_raw is None else hi_raw
            if lo > hi:
                lo, hi = hi, lo
            if lo <= n <= hi:
                return True
        return False

    def iter_numbers(self, star: int) -> Iterator[int]:
        """Every number in the set, ascending, without repeats."""
        for lo, hi in self.resolve(star):
            yield from range(lo, hi + 1)


# --- FETCH (RFC 3501 §6.4.5, RFC 7162 §3.1.4, RFC 3516) ------------------------

SectionText = Literal["HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT", "MIME"]


@dataclass(frozen=True, slots=True)
class Section:
    """A BODY[...] section specifier.

    Attributes:
        part: the part path, ``()`` for the whole message (``BODY[1.2]`` is ``(1, 2)``).
        text: HEADER, HEADER.FIELDS, HEADER.FIELDS.NOT, TEXT, MIME or None.
        fields: header field names for HEADER.FIELDS(.NOT), as sent.
    """

    part: tuple[int, ...] = ()
    text: SectionText | None = None
    fields: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class FetchAtt:
    """One FETCH data item.

    Attributes:
        name: ENVELOPE, FLAGS, INTERNALDATE, RFC822, RFC822.HEADER, RFC822.SIZE,
            RFC822.TEXT, BODY, BODYSTRUCTURE, UID, MODSEQ, BINARY, BINARY.SIZE,
            or ``BODY[]``-style items as name ``BODY[]`` with ``section`` set.
        section: for ``BODY[...]``/``BINARY[...]`` items.
        partial: ``<start.length>`` (length None when the client sent ``<start>``
            in a response-style spelling; clients always send both).
        peek: ``BODY.PEEK``/``BINARY.PEEK`` (does not set ``\\Seen``).
    """

    name: str
    section: Section | None = None
    partial: tuple[int, int] | None = None
    peek: bool = False


@dataclass(frozen=True, slots=True)
class Capability:
    tag: str


@dataclass(frozen=True, slots=True)
class Noop:
    tag: str


@dataclass(frozen=True, slots=True)
class Logout:
    tag: str


@dataclass(frozen=True, slots=True)
class StartTls:
    tag: str


@dataclass(frozen=True, slots=True)
class Authenticate:
    """AUTHENTICATE (RFC 3501 §6.2.2) with an optional SASL-IR initial response (RFC 4959).

    Attributes:
        mechanism: upper-cased mechanism name.
        initial: the initial response as sent (base64, or ``=`` for empty),
            None when absent; decoding is the SASL exchange's job.
    """

    tag: str
    mechanism: str
    initial: bytes | None = None


@dataclass(frozen=True, slots=True)
class Login:
    """A login attempt: LOGIN (RFC 3501 §6.2.3) or a finished AUTHENTICATE PLAIN.

    The password is never part of ``repr()``.
    """

    tag: str
    username: str
    password: str
    authzid: str = ""
    mechanism: str = "LOGIN"

    def __repr__(self) -> str:
        return f"Login(tag={self.tag!r}, username={self.username!r}, mechanism={self.mechanism!r})"


@dataclass(frozen=True, slots=True)
class Enable:
    tag: str
    capabilities: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Id:
    """ID (RFC 2971); ``params`` None is ``ID NIL``."""

    tag: str
    params: tuple[tuple[str, str | None], ...] | None


@dataclass(frozen=True, slots=True)
class Compress:
    tag: str
    mechanism: str


@dataclass(frozen=True, slots=True)
class QresyncParams:
    """SELECT (QRESYNC (...)) parameters (RFC 7162 §3.2.5)."""

    uidvalidity: int
    modseq: int
    known_uids: SequenceSet | None = None
    seq_match: tuple[SequenceSet, SequenceSet] | None = None


@dataclass(frozen=True, slots=True)
class Select:
    tag: str
    mailbox: str
    condstore: bool = False
    qresync: QresyncParams | None = None


@dataclass(frozen=True, slots=True)
class Examine:
    tag: str
    mailbox: str
    condstore: bool = False
    qresync: QresyncParams | None = None


@dataclass(frozen=True, slots=True)
class Create:
    """CREATE with optional USE (special-use attributes, RFC 6154 §3)."""

    tag: str
    mailbox: str
    special_use: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Delete:
    tag: str
    mailbox: str


@dataclass(frozen=True, slots=True)
class Rename:
    tag: str
    old: str
    new: str


@dataclass(frozen=True, slots=True)
class Subscribe:
    tag: str
    mailbox: str


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    tag: str
    mailbox: str


@dataclass(frozen=True, slots=True)
class List:
    """LIST with LIST-EXTENDED (RFC 5258), LIST-STATUS (RFC 5819), SPECIAL-USE (RFC 6154).

    Attributes:
        reference: the reference name, decoded.
        patterns: one or more patterns, decoded (``%`` and ``*`` wildcards kept).
        select_opts: upper-cased selection options (SUBSCRIBED, REMOTE,
            RECURSIVEMATCH, SPECIAL-USE).
        return_opts: upper-cased return options (SUBSCRIBED, CHILDREN, SPECIAL-USE, STATUS).
        status_items: STATUS items asked for by RETURN (STATUS (...)).
        extended: the client used the extended syntax (then LIST answers with
            CHILDINFO extended data where applicable).
    """

    tag: str
    reference: str
    patterns: tuple[str, ...]
    select_opts: tuple[str, ...] = ()
    return_opts: tuple[str, ...] = ()
    status_items: tuple[str, ...] = ()
    extended: bool = False


@dataclass(frozen=True, slots=True)
class Lsub:
    tag: str
    reference: str
    pattern: str


@dataclass(frozen=True, slots=True)
class Namespace:
    tag: str


@dataclass(frozen=True, slots=True)
class Status:
    tag: str
    mailbox: str
    items: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Append:
    """APPEND (RFC 3501 §6.3.11); ``utf8`` when sent as ``UTF8 (~{n}...)`` (RFC 6855 §4)."""

    tag: str
    mailbox: str
    flags: tuple[str, ...]
    internal_date: datetime | None
    message: bytes
    utf8: bool = False

    def __repr__(self) -> str:
        return (
            f"Append(tag={self.tag!r}, mailbox={self.mailbox!r}, flags={self.flags!r}, "
            f"internal_date={self.internal_date!r}, message=<{len(self.message)} octets>)"
        )


@dataclass(frozen=True, slots=True)
class Idle:
    tag: str


@dataclass(frozen=True, slots=True)
class Check:
    tag: str


@dataclass(frozen=True, slots=True)
class Close:
    tag: str


@dataclass(frozen=True, slots=True)
class Unselect:
    tag: str


@dataclass(frozen=True, slots=True)
class Expunge:
    """EXPUNGE, or UID EXPUNGE (UIDPLUS, RFC 4315 §2.1) when ``uids`` is set."""

    tag: str
    uids: SequenceSet | None = None


# --- SEARCH keys (RFC 3501 §6.4.4, RFC 7162 §3.1.5) -----------------------------


@dataclass(frozen=True, slots=True)
class SearchFlag:
    """ANSWERED, DELETED, DRAFT, FLAGGED, SEEN, RECENT, KEYWORD k and their UN-/NEW/OLD.

    Attributes:
        flag: the flag (``\\Seen``...), ``\\Recent`` for RECENT/NEW/OLD.
        present: True when the flag must be set, False when it must be absent.
    """

    flag: str
    present: bool


@dataclass(frozen=True, slots=True)
class SearchText:
    """BCC, BODY, CC, FROM, SUBJECT, TEXT, TO (case-insensitive substring)."""

    field: str
    value: str


@dataclass(frozen=True, slots=True)
class SearchHeader:
    """HEADER field-name string (empty string: the field is present)."""

    field: str
    value: str


@dataclass(frozen=True, slots=True)
class SearchDate:
    """BEFORE/ON/SINCE (internal date) and SENTBEFORE/SENTON/SENTSINCE (Date: header)."""

    op: Literal["BEFORE", "ON", "SINCE"]
    sent: bool
    day: date


@dataclass(frozen=True, slots=True)
class SearchNumber:
    """LARGER n, SMALLER n (RFC822.SIZE)."""

    op: Literal["LARGER", "SMALLER"]
    value: int


@dataclass(frozen=True, slots=True)
class SearchSet:
    """A sequence set (message numbers) or ``UID`` set."""

    uid: bool
    set: SequenceSet


@dataclass(frozen=True, slots=True)
class SearchModseq:
    """MODSEQ [entry type] n: messages whose mod-sequence is at least n (RFC 7162 §3.1.5)."""

    modseq: int
    entry: str | None = None
    entry_type: str | None = None


@dataclass(frozen=True, slots=True)
class SearchNot:
    key: SearchKey


@dataclass(frozen=True, slots=True)
class SearchOr:
    left: SearchKey
    right: SearchKey


@dataclass(frozen=True, slots=True)
class SearchAnd:
    """All keys must match; ``()`` is never empty on the wire, ``ALL`` is ``SearchAnd(())``."""

    keys: tuple[SearchKey, ...]


SearchKey = (
    SearchFlag
    | SearchText
    | SearchHeader
    | SearchDate
    | SearchNumber
    | SearchSet
    | SearchModseq
    | SearchNot
    | SearchOr
    | SearchAnd
)


@dataclass(frozen=True, slots=True)
class Search:
    """SEARCH / UID SEARCH, with ESEARCH RETURN options (RFC 4731).

    Attributes:
        uid: UID SEARCH.
        criteria: the keys (a top-level SearchAnd).
        charset: the CHARSET named, upper-cased, or None.
        return_opts: None when RETURN was absent (classic ``* SEARCH``
            answer), else the upper-cased options (MIN MAX ALL COUNT SAVE),
            ``()`` meaning ``RETURN ()`` which is ALL.
    """

    tag: str
    uid: bool
    criteria: SearchAnd
    charset: str | None = None
    return_opts: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class Fetch:
    """FETCH / UID FETCH with CONDSTORE/QRESYNC modifiers.

    Attributes:
        items: the data items, with macros (ALL FAST FULL) expanded.
        changedsince: CHANGEDSINCE modifier (RFC 7162 §3.1.4.1).
        vanished: VANISHED modifier (RFC 7162 §3.2.6, UID FETCH only).
        macro: ALL/FAST/FULL when the client used one (for rendering).
    """

    tag: str
    uid: bool
    set: SequenceSet
    items: tuple[FetchAtt, ...]
    changedsince: int | None = None
    vanished: bool = False
    macro: str | None = None


@dataclass(frozen=True, slots=True)
class Store:
    """STORE / UID STORE (RFC 3501 §6.4.6) with UNCHANGEDSINCE (RFC 7162 §3.1.3).

    Attributes:
        mode: ``"+"`` add, ``"-"`` remove, ``""`` replace.
    """

    tag: str
    uid: bool
    set: SequenceSet
    mode: Literal["+", "-", ""]
    silent: bool
    flags: tuple[str, ...]
    unchangedsince: int | None = None


@dataclass(frozen=True, slots=True)
class Copy:
    tag: str
    uid: bool
    set: SequenceSet
    mailbox: str


@dataclass(frozen=True, slots=True)
class Move:
    tag: str
    uid: bool
    set: SequenceSet
    mailbox: str


@dataclass(frozen=True, slots=True)
class SortCriterion:
    key: str
    reverse: bool = False


@dataclass(frozen=True, slots=True)
class Sort:
    """SORT / UID SORT (RFC 5256 §3), optionally with ESORT RETURN."""

    tag: str
    uid: bool
    criteria: tuple[SortCriterion, ...]
    charset: str
    search: SearchAnd
    return_opts: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class Thread:
    """THREAD / UID THREAD (RFC 5256 §3)."""

    tag: str
    uid: bool
    algorithm: str
    charset: str
    search: SearchAnd


@dataclass(frozen=True, slots=True)
class GetQuota:
    tag: str
    root: str


@dataclass(frozen=True, slots=True)
class GetQuotaRoot:
    tag: str
    mailbox: str


@dataclass(frozen=True, slots=True)
class SetQuota:
    tag: str
    root: str
    limits: tuple[tuple[str, int], ...]


Command = (
    Capability
    | Noop
    | Logout
    | StartTls
    | Authenticate
    | Login
    | Enable
    | Id
    | Compress
    | Select
    | Examine
    | Create
    | Delete
    | Rename
    | Subscribe
    | Unsubscribe
    | List
    | Lsub
    | Namespace
    | Status
    | Append
    | Idle
    | Check
    | Close
    | Unselect
    | Expunge
    | Search
    | Fetch
    | Store
    | Copy
    | Move
    | Sort
    | Thread
    | GetQuota
    | GetQuotaRoot
    | SetQuota
)

ALL_COMMANDS: frozenset[str] = frozenset(
    {
        "CAPABILITY", "NOOP", "LOGOUT", "STARTTLS", "AUTHENTICATE", "LOGIN", "ENABLE",
        "ID", "COMPRESS", "SELECT", "EXAMINE", "CREATE", "DELETE", "RENAME", "SUBSCRIBE",
        "UNSUBSCRIBE", "LIST", "LSUB", "NAMESPACE", "STATUS", "APPEND", "IDLE", "CHECK",
        "CLOSE", "UNSELECT", "EXPUNGE", "SEARCH", "FETCH", "STORE", "COPY", "MOVE", "UID",
        "SORT", "THREAD", "GETQUOTA", "GETQUOTAROOT", "SETQUOTA",
    }
)  # fmt: skip
"""Every command name this server knows (the first word after the tag)."""
