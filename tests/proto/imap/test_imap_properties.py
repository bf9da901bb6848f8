"""Hypothesis: render/parse round trips, and arbitrary input never breaks the core.

The core's contract (STYLE.md §4, h11's words): nothing but the protocol's own
error may leave the parser, and the session turns every input into responses
without raising at all.
"""

from __future__ import annotations

import contextlib
from datetime import date

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailwarden.proto.imap import commands as c
from mailwarden.proto.imap.errors import ImapError
from mailwarden.proto.imap.events import ConnectionClosed, NeedData, SessionConfig
from mailwarden.proto.imap.mutf7 import decode_mutf7, encode_mutf7
from mailwarden.proto.imap.parser import parse_command
from mailwarden.proto.imap.render import render_command
from mailwarden.proto.imap.responses import Tagged
from mailwarden.proto.imap.search import ordered_set
from mailwarden.proto.imap.session import ImapSession

tags = st.from_regex(r"[A-Za-z0-9.]{1,8}", fullmatch=True)
names = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x00"), min_size=1
).filter(lambda n: n.upper() != "INBOX" and not n.upper().startswith("INBOX/"))
numbers = st.integers(1, 2**32 - 1)
seqsets = st.builds(
    c.SequenceSet,
    st.lists(
        st.tuples(st.one_of(st.none(), numbers), st.one_of(st.none(), numbers)), min_size=1
    ).map(tuple),
)
flags = st.lists(
    st.one_of(
        st.sampled_from(["\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft"]),
        st.from_regex(r"[A-Za-z$][A-Za-z0-9_$-]{0,10}", fullmatch=True),
    ),
    max_size=4,
).map(tuple)
text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
search_leaf = st.one_of(
    st.builds(c.SearchFlag, st.sampled_from(["\\Seen", "\\Deleted", "\\Recent"]), st.booleans()),
    st.builds(c.SearchText, st.sampled_from(["BODY", "TEXT", "FROM", "SUBJECT", "CC"]), text),
    st.builds(c.SearchHeader, st.from_regex(r"[A-Za-z-]{1,10}", fullmatch=True), text),
    st.builds(
        c.SearchDate,
        st.sampled_from(["BEFORE", "ON", "SINCE"]),
        st.booleans(),
        st.dates(date(1900, 1, 1), date(9999, 1, 1)),
    ),
    st.builds(c.SearchNumber, st.sampled_from(["LARGER", "SMALLER"]), numbers),
    st.builds(c.SearchSet, st.booleans(), seqsets),
    st.builds(c.SearchModseq, st.integers(0, 2**63 - 1)),
)
search_keys = st.recursive(
    search_leaf,
    lambda inner: st.one_of(
        st.builds(c.SearchNot, inner),
        st.builds(c.SearchOr, inner, inner),
        st.builds(c.SearchAnd, st.lists(inner, min_size=1, max_size=3).map(tuple)),
    ),
    max_leaves=8,
)
sections = st.builds(
    c.Section,
    st.lists(st.integers(1, 50), max_size=3).map(tuple),
    st.sampled_from([None, "HEADER", "TEXT"]),
)
fetch_atts = st.one_of(
    st.builds(c.FetchAtt, st.sampled_from(["FLAGS", "UID", "ENVELOPE", "RFC822.SIZE", "MODSEQ"])),
    st.builds(
        c.FetchAtt,
        st.just("BODY[]"),
        sections,
        st.one_of(st.none(), st.tuples(st.integers(0, 10**6), numbers)),
        st.booleans(),
    ),
)
commands = st.one_of(
    st.builds(c.Login, tags, text.filter(bool), text.filter(bool)),
    st.builds(c.Select, tags, names, st.booleans()),
    st.builds(c.Create, tags, names),
    st.builds(c.Rename, tags, names, names),
    st.builds(c.Status, tags, names, st.just(("MESSAGES", "UIDNEXT"))),
    st.builds(
        c.Fetch,
        tags,
        st.booleans(),
        seqsets,
        st.lists(fetch_atts, min_size=1, max_size=5).map(tuple),
    ),
    st.builds(
        c.Store, tags, st.booleans(), seqsets, st.sampled_from(["+", "-", ""]), st.booleans(), flags
    ),
    st.builds(c.Copy, tags, st.booleans(), seqsets, names),
    st.builds(c.Move, tags, st.booleans(), seqsets, names),
    st.builds(
        c.Search,
        tags,
        st.booleans(),
        st.builds(c.SearchAnd, st.lists(search_keys, min_size=1, max_size=3).map(tuple)),
    ),
    st.builds(c.Append, tags, names, flags, st.none(), st.binary(max_size=50)),
)


@given(names)
def test_mutf7_round_trip(name: str) -> None:
    assert decode_mutf7(encode_mutf7(name)) == name


@given(commands)
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_command_round_trip(cmd: c.Command) -> None:
    assert parse_command(render_command(cmd)) == cmd


@given(st.binary(max_size=200))
def test_parser_raises_only_its_own_error(data: bytes) -> None:
    with contextlib.suppress(ImapError):
        parse_command(data)


prefixes = st.sampled_from(
    [b"a FETCH ", b"a UID SEARCH ", b"a STORE 1 ", b"a LIST ", b"a SELECT ", b"a APPEND x ", b"a "]
)


@given(prefixes, st.binary(max_size=120))
def test_parser_on_command_prefixes(prefix: bytes, data: bytes) -> None:
    with contextlib.suppress(ImapError):
        parse_command(prefix + data)


def _drive(session: ImapSession) -> None:
    for _ in range(10_000):
        ev = session.next_event()
        if isinstance(ev, NeedData | ConnectionClosed):
            return
        tag = getattr(ev, "tag", None)
        if isinstance(tag, str):
            session.send(Tagged(tag, "OK", "done"))
    raise AssertionError("session did not settle")


chunks = st.lists(
    st.one_of(
        st.binary(max_size=40),
        st.sampled_from(
            [b"a LOGIN x y\r\n", b"{5}\r\n", b"{3+}\r\n", b"\r\n", b"b SELECT INBOX\r\n",
             b"c IDLE\r\n", b"DONE\r\n", b"d AUTHENTICATE PLAIN\r\n", b"*\r\n",
             b"e COMPRESS DEFLATE\r\n", b"f FETCH 1:* (FLAGS)\r\n", b"g ENABLE IMAP4rev2\r\n",
             b"h ENABLE QRESYNC\r\n", b"i SELECT INBOX (QRESYNC (1 2 1:3 (1 3)))\r\n",
             b"j SEARCH RETURN (SAVE) $\r\n", b'k CREATE "A&B"\r\n']
        ),
    ),
    max_size=20,
)  # fmt: skip


@given(chunks, st.booleans())
@settings(max_examples=300)
def test_session_never_raises(parts: list[bytes], cleartext: bool) -> None:
    session = ImapSession(
        SessionConfig(max_line=100, max_literal=50, allow_plaintext_login=cleartext)
    )
    session.greeting()
    for part in parts:
        session.receive_data(part)
        _drive(session)
        session.data_to_send()
    session.receive_data(b"")
    _drive(session)


@given(st.lists(st.integers(1, 50), unique=True))
def test_ordered_set_keeps_order(numbers: list[int]) -> None:
    # ESORT ALL (RFC 5267): reading the set element by element gives the order back
    out: list[int] = []
    for part in ordered_set(numbers).split(b","):
        if part:
            lo, _, hi = part.partition(b":")
            out.extend(range(int(lo), int(hi or lo) + 1))
    assert out == numbers
