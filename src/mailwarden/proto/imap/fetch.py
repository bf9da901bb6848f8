"""FETCH evaluation: per-message data -> ``* n FETCH (...)`` octets (RFC 3501 §6.4.5, §7.4.2).

Theory of operation.  Nothing here reads storage: the server loads what
:func:`fetch_needs` says the items need (the folder entry always; the facts
computed at delivery for ENVELOPE/BODY/BODYSTRUCTURE and section offsets; the
raw octets for body sections) and calls :func:`render_fetch` per message.
Body sections are slices of the raw blob at the offsets in
:class:`~mailwarden.mail.facts.MessageFacts` (no MIME parsing here), except
HEADER.FIELDS(.NOT), which filters header lines, and BINARY (RFC 3516), which
undoes the transfer encoding.

The frequent ``UID FETCH 1:* (UID FLAGS)``-style request of a resyncing
client has a fast path (:func:`fast_fetch_lines`) that renders many messages
with one format string each.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from mailwarden.mail.facts import MessageFacts, part_for
from mailwarden.mail.mime import decode_body
from mailwarden.proto.imap import commands as c
from mailwarden.proto.imap.responses import imap_date_time

__all__ = [
    "FetchMessage",
    "FetchNeeds",
    "FetchPlan",
    "UnknownCte",
    "fast_fetch_lines",
    "fetch_needs",
    "fetch_parts",
    "flags_bytes",
    "is_fast",
    "render_fetch",
    "section_bytes",
    "sets_seen",
]

_WHOLE = c.Section()
_SMALL = 1024  # pieces shorter than this are merged rather than kept apart
_ENTRY_ITEMS = frozenset({"FLAGS", "UID", "INTERNALDATE", "RFC822.SIZE", "MODSEQ"})
_FACT_ITEMS = frozenset({"ENVELOPE", "BODY", "BODYSTRUCTURE"})
_FIELD_LINE = re.compile(rb"([^:\s]+)[ \t]*:")


@dataclass(frozen=True, slots=True)
class FetchNeeds:
    """What to load for a FETCH: facts and/or the raw message."""

    facts: bool
    raw: bool


@dataclass(slots=True)
class FetchMessage:
    """One message as FETCH sees it (not frozen: one is built per message in a hot loop).

    Attributes:
        seq: message sequence number in the session's view.
        uid: the UID.
        flags: current flags (after an implicit ``\\Seen``).
        internal_date: epoch seconds.
        size: RFC822.SIZE.
        modseq: the entry's mod-sequence (RFC 7162).
        facts: loaded when :func:`fetch_needs` asked for them.
        raw: loaded when :func:`fetch_needs` asked for it.
    """

    seq: int
    uid: int
    flags: frozenset[str]
    internal_date: int
    size: int
    modseq: int
    facts: MessageFacts | None = None
    raw: bytes | None = None


def fetch_needs(items: Iterable[c.FetchAtt]) -> FetchNeeds:
    """What the items need beyond the folder entry."""
    facts = raw = False
    for item in items:
        if item.name in _FACT_ITEMS:
            facts = True
        elif item.name not in _ENTRY_ITEMS:
            raw = True
            if item.name in ("RFC822.HEADER", "RFC822.TEXT") or (
                item.section is not None and (item.section != _WHOLE or item.name != "BODY[]")
            ):
                facts = True
    return FetchNeeds(facts, raw)


def sets_seen(items: Iterable[c.FetchAtt]) -> bool:
    """RFC 3501 §6.4.5: BODY[...] (not PEEK), RFC822 and RFC822.TEXT set ``\\Seen``."""
    return any(
        (i.name in ("BODY[]", "BINARY") and not i.peek) or i.name in ("RFC822", "RFC822.TEXT")
        for i in items
    )


_flag_cache: dict[frozenset[str], bytes] = {}


def flags_bytes(flags: frozenset[str]) -> bytes:
    """``(\\Seen foo)``, cached per distinct flag set (there are few)."""
    out = _flag_cache.get(flags)
    if out is None:
        out = ("(" + " ".join(sorted(flags)) + ")").encode("utf-8")
        if len(_flag_cache) < 4096:
            _flag_cache[flags] = out
    return out


def _header_fields(header: bytes, names: Sequence[str], keep: bool) -> bytes:
    """RFC 3501 §6.4.5 HEADER.FIELDS(.NOT): the matching lines, then a blank line."""
    wanted = {n.lower().encode("ascii", "replace") for n in names}
    out: list[bytes] = []
    include = False
    for line in header.splitlines(keepends=True):
        if line in (b"\r\n", b"\n"):
            break
        if line[:1] in (b" ", b"\t"):
            if include:
                out.append(line)
            continue
        m = _FIELD_LINE.match(line)
        include = m is not None and ((m.group(1).lower() in wanted) == keep)
        if include:
            out.append(line)
    out.append(b"\r\n")
    return b"".join(out)


def section_bytes(section: c.Section, facts: MessageFacts, raw: bytes) -> bytes | None:
    """The octets of ``BODY[section]``; None when the part does not exist.

    RFC 3501 §6.4.5: part numbers address MIME parts; HEADER/TEXT/HEADER.FIELDS
    of a part apply to a message/rfc822 part's encapsulated message; MIME is a
    part's own MIME header.
    """
    if not section.part:
        header_start, header_end, end = 0, facts.header_end, len(raw)
    else:
        part = part_for(facts, ".".join(map(str, section.part)))
        if part is None:
            return None
        if section.text is None:
            return raw[part.body_start : part.end]
        if section.text == "MIME":
            return raw[part.header_start : part.body_start]
        if part.inner_header_end is None:
            return None  # HEADER/TEXT only exist for message/rfc822 parts
        header_start, header_end, end = part.body_start, part.inner_header_end, part.end
    match section.text:
        case None:
            return raw
        case "HEADER":
            return raw[header_start:header_end]
        case "TEXT":
            return raw[header_end:end]
        case "HEADER.FIELDS":
            return _header_fields(raw[header_start:header_end], section.fields, True)
        case "HEADER.FIELDS.NOT":
            return _header_fields(raw[header_start:header_end], section.fields, False)
        case _:
            return None


class UnknownCte(Exception):
    """BINARY of a part whose transfer encoding we cannot undo (RFC 3516 §4.2).

    The server answers the FETCH with ``NO [UNKNOWN-CTE]``.
    """


_KNOWN_CTE = frozenset({"7bit", "8bit", "binary", "base64", "quoted-printable", ""})


def _binary(section: c.Section, facts: MessageFacts, raw: bytes) -> bytes | None:
    # RFC 3516 §4.2: the part's content with its transfer encoding undone
    if not section.part:
        return raw
    part = part_for(facts, ".".join(map(str, section.part)))
    if part is None:
        return None
    if part.encoding not in _KNOWN_CTE:
        raise UnknownCte(part.encoding)
    return decode_body(raw[part.body_start : part.end], part.encoding)


def _section_name(item: c.FetchAtt) -> bytes:
    assert item.section is not None
    s = item.section
    parts = [".".join(map(str, s.part))] if s.part else []
    if s.text is not None:
        parts.append(s.text + (" (" + " ".join(s.fields) + ")" if s.fields else ""))
    return b"[" + ".".join(parts).encode("ascii", "replace") + b"]"


def _partial(data: bytes, item: c.FetchAtt) -> tuple[bytes, bytes]:
    if item.partial is None:
        return data, b""
    start, length = item.partial
    # RFC 3501 §6.4.5: the response names the origin octet: BODY[]<0>
    return data[start : start + length], b"<%d>" % start


def _internal_date(epoch: int) -> bytes:
    return imap_date_time(datetime.fromtimestamp(epoch, UTC))


def render_fetch(
    msg: FetchMessage,
    items: Sequence[c.FetchAtt],
    *,
    uid: bool = False,
    modseq: bool = False,
    flags: bool = False,
) -> bytes:
    """One ``* n FETCH (...)`` line (CRLF included).

    Args:
        msg: the message, with facts/raw loaded as :func:`fetch_needs` said.
        items: the requested data items.
        uid: add UID even if not asked (UID FETCH, RFC 3501 §6.4.8).
        modseq: add MODSEQ even if not asked (CONDSTORE, RFC 7162 §3.1.4.1).
        flags: add FLAGS even if not asked (the fetch set ``\\Seen``).
    """
    out: list[bytes] = []
    FetchPlan(items, uid=uid, modseq=modseq).parts(out, msg, flags=flags)
    return b"".join(out)


def fetch_parts(
    out: list[bytes],
    msg: FetchMessage,
    items: Sequence[c.FetchAtt],
    *,
    uid: bool = False,
    modseq: bool = False,
    flags: bool = False,
) -> None:
    """Append the pieces of one ``* n FETCH (...)`` line to ``out``.

    Like :func:`render_fetch`, but large message octets are appended as they
    are rather than copied into a line (see :class:`FetchPlan`, which a
    caller rendering many messages builds once).  Unlike
    :func:`render_fetch`, ``uid``/``modseq``/``flags`` add their item
    unconditionally.
    """
    FetchPlan(items, uid=uid, modseq=modseq).parts(out, msg, flags=flags)


_Render = Callable[["FetchMessage"], "bytes | tuple[bytes, bytes]"]


class FetchPlan:
    """The data items of one FETCH command, worked out once for all its messages.

    Each item becomes a small function of the message, so the per-message
    work is calling them and joining short byte strings.  Message octets
    (literals of at least ``_SMALL`` octets) are appended as pieces of their
    own, not copied into a line: a caller hands the pieces to a vectored
    write, and full-body FETCH is then hardly more than the store's read.
    """

    __slots__ = ("_add_flags", "_add_modseq", "_add_uid", "_body_head", "_body_uid", "_render")

    def __init__(self, items: Sequence[c.FetchAtt], *, uid: bool, modseq: bool) -> None:
        """Plan a FETCH.

        Args:
            items: the requested data items.
            uid: UID is to come first even if not asked (UID FETCH).
            modseq: MODSEQ is to come last even if not asked (CONDSTORE).
        """
        names = {i.name for i in items}
        self._add_uid = uid and "UID" not in names
        self._add_modseq = modseq and "MODSEQ" not in names
        self._add_flags = "FLAGS" not in names
        self._render = [_renderer(i) for i in items]
        # The commonest download, "(UID) BODY.PEEK[]" / RFC822: one format per message
        self._body_head: bytes | None = None
        self._body_uid = False
        whole = items[-1] if items else None
        uid_first = len(items) == 2 and items[0].name == "UID"
        if (
            whole is not None
            and _is_whole(whole)
            and (len(items) == 1 or uid_first)
            and not self._add_modseq
        ):
            self._body_uid = self._add_uid or uid_first
            name = b"RFC822" if whole.name == "RFC822" else b"BODY[]"
            start = b"* %d FETCH (UID %d " if self._body_uid else b"* %d FETCH ("
            self._body_head = start + name + b" {%d}\r\n"

    @property
    def body_only(self) -> bool:
        """The items are a whole message (and maybe UID): :meth:`body` renders them."""
        return self._body_head is not None

    def body(self, out: list[bytes], seq: int, uid: int, raw: bytes, flags: bytes | None) -> None:
        """Append a body-only response (see :attr:`body_only`): a shortcut of :meth:`parts`.

        Args:
            flags: the rendered flag list to add (the fetch set ``\\Seen``), or None.
        """
        head = self._body_head
        assert head is not None
        line = head % (seq, uid, len(raw)) if self._body_uid else head % (seq, len(raw))
        if out and len(out[-1]) < _SMALL:
            line = out.pop() + line
        tail = b" FLAGS " + flags + b")\r\n" if flags is not None else b")\r\n"
        if len(raw) < _SMALL:
            out.append(line + raw + tail)
        else:
            out.append(line)
            out.append(raw)
            out.append(tail)

    def parts(self, out: list[bytes], msg: FetchMessage, *, flags: bool = False) -> None:
        """Append the pieces of ``msg``'s FETCH response to ``out``.

        Args:
            out: pieces so far; a short last piece is merged with this line.
            msg: the message, with what :func:`fetch_needs` asked for loaded.
            flags: add FLAGS (the fetch set ``\\Seen``) unless already asked for.
        """
        head = b"* %d FETCH (" % msg.seq
        if out and len(out[-1]) < _SMALL:
            head = out.pop() + head  # one piece instead of two small ones
        sep = b""
        if self._add_uid:
            head += b"UID %d" % msg.uid
            sep = b" "
        for render in self._render:
            data = render(msg)
            if isinstance(data, bytes):
                head += sep + data
            elif len(data[1]) < _SMALL:
                head += sep + data[0] + data[1]
            else:
                out.append(head + sep + data[0])
                out.append(data[1])
                head = b""
            sep = b" "
        if flags and self._add_flags:
            head += b" FLAGS " + flags_bytes(msg.flags)
        if self._add_modseq:
            head += b" MODSEQ (%d)" % msg.modseq
        out.append(head + b")\r\n")


def _is_whole(item: c.FetchAtt) -> bool:
    name = item.name
    return name == "RFC822" or (
        name == "BODY[]" and item.section == _WHOLE and item.partial is None
    )


def _renderer(item: c.FetchAtt) -> _Render:
    name = item.name
    if _is_whole(item):
        prefix = b"RFC822 " if name == "RFC822" else b"BODY[] "

        def whole(msg: FetchMessage) -> tuple[bytes, bytes]:
            raw = msg.raw
            if raw is None:
                raise ValueError(f"FETCH {name} needs the raw message")
            return prefix + b"{%d}\r\n" % len(raw), raw

        return whole
    if name == "UID":
        return lambda msg: b"UID %d" % msg.uid
    if name == "FLAGS":
        return lambda msg: b"FLAGS " + flags_bytes(msg.flags)
    return lambda msg: _item(msg, item)


def _lit(prefix: bytes, data: bytes) -> tuple[bytes, bytes]:
    # RFC 3501 §4.3 literal, as (everything up to the octets, the octets)
    return prefix + b"{%d}\r\n" % len(data), data


def _item(msg: FetchMessage, item: c.FetchAtt) -> bytes | tuple[bytes, bytes]:
    name = item.name
    if name == "UID":
        return b"UID %d" % msg.uid
    if name == "FLAGS":
        return b"FLAGS " + flags_bytes(msg.flags)
    if name == "RFC822.SIZE":
        return b"RFC822.SIZE %d" % msg.size
    if name == "INTERNALDATE":
        return b"INTERNALDATE " + _internal_date(msg.internal_date)
    if name == "MODSEQ":
        return b"MODSEQ (%d)" % msg.modseq
    if name == "RFC822" or (name == "BODY[]" and item.section == _WHOLE and item.partial is None):
        if msg.raw is None:
            raise ValueError(f"FETCH {name} needs the raw message")
        return _lit(b"RFC822 " if name == "RFC822" else b"BODY[] ", msg.raw)
    facts = msg.facts
    if facts is None:
        raise ValueError(f"FETCH {name} needs the message facts")
    if name == "ENVELOPE":
        return b"ENVELOPE " + facts.envelope
    if name == "BODY":
        return b"BODY " + facts.body
    if name == "BODYSTRUCTURE":
        return b"BODYSTRUCTURE " + facts.bodystructure
    raw = msg.raw
    if raw is None:
        raise ValueError(f"FETCH {name} needs the raw message")
    if name == "RFC822.HEADER":
        return _lit(b"RFC822.HEADER ", raw[: facts.header_end])
    if name == "RFC822.TEXT":
        return _lit(b"RFC822.TEXT ", raw[facts.header_end :])
    assert item.section is not None
    if name == "BINARY.SIZE":
        data = _binary(item.section, facts, raw)
        return b"BINARY.SIZE" + _section_name(item) + b" %d" % (len(data or b""))
    if name == "BINARY":
        data = _binary(item.section, facts, raw)
        head = b"BINARY" + _section_name(item)
        if data is None:
            return head + b" NIL"
        data, origin = _partial(data, item)
        # RFC 3516 §4.2: literal8, so NUL octets may be sent as they are
        return _lit(head + origin + b" ~", data)
    data = section_bytes(item.section, facts, raw)
    head = b"BODY" + _section_name(item)
    if data is None:
        # a part that does not exist reads as empty (as Dovecot does)
        data = b""
    data, origin = _partial(data, item)
    return _lit(head + origin + b" ", data)


_FAST = frozenset({"UID", "FLAGS", "RFC822.SIZE", "MODSEQ", "INTERNALDATE"})


def is_fast(items: Iterable[c.FetchAtt]) -> bool:
    """Whether :func:`fast_fetch_lines` can render these items."""
    return all(i.name in _FAST for i in items)


def fast_fetch_lines(
    rows: Iterable[tuple[int, int, frozenset[str], int, int, int]],
    items: Sequence[c.FetchAtt],
    *,
    uid: bool,
    modseq: bool,
) -> bytes:
    """Many FETCH lines for entry-only items in one pass.

    Args:
        rows: ``(seq, uid, flags, size, modseq, internal_date)`` per message.
        items: entry-only items (see :func:`is_fast`).
        uid: add UID first when not asked for.
        modseq: add MODSEQ when not asked for.
    """
    names = [i.name for i in items]
    if uid and "UID" not in names:
        names.insert(0, "UID")
    if modseq and "MODSEQ" not in names:
        names.append("MODSEQ")
    out: list[bytes] = []
    append = out.append
    for seq, u, fl, size, ms, idate in rows:
        parts = []
        for n in names:
            if n == "UID":
                parts.append(b"UID %d" % u)
            elif n == "FLAGS":
                parts.append(b"FLAGS " + flags_bytes(fl))
            elif n == "RFC822.SIZE":
                parts.append(b"RFC822.SIZE %d" % size)
            elif n == "MODSEQ":
                parts.append(b"MODSEQ (%d)" % ms)
            else:
                parts.append(b"INTERNALDATE " + _internal_date(idate))
        append(b"* %d FETCH (%b)\r\n" % (seq, b" ".join(parts)))
    return b"".join(out)
