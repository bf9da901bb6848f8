"""FETCH, SEARCH, SORT/THREAD and the mailbox view as pure functions over message facts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pytest

from mailwarden.mail.facts import compute_facts
from mailwarden.proto.imap import commands as c
from mailwarden.proto.imap.fetch import (
    FetchMessage,
    FetchPlan,
    UnknownCte,
    fast_fetch_lines,
    fetch_needs,
    fetch_parts,
    flags_bytes,
    render_fetch,
    section_bytes,
    sets_seen,
)
from mailwarden.proto.imap.mailbox import MailboxView
from mailwarden.proto.imap.parser import parse_command
from mailwarden.proto.imap.search import (
    SearchMessage,
    candidate_ranges,
    esearch_response,
    matches,
    ordered_set,
    prefilter,
    search_needs,
    text_keys,
)
from mailwarden.proto.imap.sortthread import (
    SortMessage,
    base_subject,
    render_threads,
    sort_numbers,
    thread,
)

MULTI = (
    b"From: =?utf-8?q?J=C3=B6rg?= <jorg@example.test>\r\n"
    b"To: a@example.test\r\nBcc: hidden@example.test\r\nSubject: Re: [list] Fwd: report\r\n"
    b"Date: Wed, 3 Jan 2024 10:00:00 +0000\r\nMessage-ID: <m@x>\r\n"
    b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
    b"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nBody text with Gr\xc3\xbc\xc3\x9fe\r\n"
    b"--b\r\nContent-Type: message/rfc822\r\n\r\n"
    b"Subject: inner\r\nFrom: x@y\r\n\r\ninner body\r\n"
    b"--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    b"aGVsbG8=\r\n--b--\r\n"
)


def fetch(text: bytes) -> c.Fetch:
    cmd = parse_command(b"a FETCH 1 " + text)
    assert isinstance(cmd, c.Fetch)
    return cmd


def test_sections() -> None:
    f = compute_facts(MULTI)
    sec = lambda s: fetch(b"BODY[" + s + b"]").items[0].section  # noqa: E731
    assert section_bytes(sec(b"1"), f, MULTI) == "Body text with Grüße".encode()
    mime = b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
    assert section_bytes(sec(b"1.MIME"), f, MULTI) == mime
    assert section_bytes(sec(b"2.HEADER"), f, MULTI) == b"Subject: inner\r\nFrom: x@y\r\n\r\n"
    assert section_bytes(sec(b"2.TEXT"), f, MULTI) == b"inner body"
    assert section_bytes(sec(b"HEADER.FIELDS (to SUBJECT)"), f, MULTI) == (
        b"To: a@example.test\r\nSubject: Re: [list] Fwd: report\r\n\r\n"
    )
    assert b"Bcc" not in (section_bytes(sec(b"HEADER.FIELDS.NOT (Bcc)"), f, MULTI) or b"")
    assert section_bytes(sec(b"9"), f, MULTI) is None
    assert section_bytes(sec(b"1.HEADER"), f, MULTI) is None  # not a message/rfc822 part


def test_render_fetch_items() -> None:
    f = compute_facts(MULTI)
    msg = FetchMessage(2, 7, frozenset({"\\Seen"}), 1704276000, len(MULTI), 5, f, MULTI)
    cmd = fetch(b"(UID FLAGS BODY[]<0.4> BINARY[3] BINARY.SIZE[3] RFC822.HEADER MODSEQ)")
    assert fetch_needs(cmd.items).raw
    assert sets_seen(cmd.items)
    line = render_fetch(msg, cmd.items)
    assert line.startswith(b"* 2 FETCH (UID 7 FLAGS (\\Seen) BODY[]<0> {4}\r\nFrom BINARY[3] ~{5}")
    assert b"BINARY.SIZE[3] 5" in line
    assert line.endswith(b"MODSEQ (5))\r\n")
    peek = fetch(b"(BODY.PEEK[1] INTERNALDATE)")
    assert not sets_seen(peek.items)
    assert b'INTERNALDATE " 3-Jan-2024 10:00:00 +0000"' in render_fetch(msg, peek.items, uid=True)
    rows = [(1, 7, frozenset[str](), 10, 3, 0)]
    fast = fast_fetch_lines(rows, fetch(b"FAST").items, uid=True, modseq=True)
    assert fast.startswith(b"* 1 FETCH (UID 7 FLAGS () INTERNALDATE")
    assert fast.endswith(b"RFC822.SIZE 10 MODSEQ (3))\r\n")


def search(text: bytes) -> c.SearchAnd:
    cmd = parse_command(b"a SEARCH " + text)
    assert isinstance(cmd, c.Search)
    return cmd.criteria


def test_search_keys() -> None:
    f = compute_facts(MULTI)
    header = MULTI[: f.header_end]
    flags = frozenset({"\\Flagged", "$Work"})
    msg = SearchMessage(1, 10, flags, 1704276000, len(MULTI), 9, f, header)

    def hit(text: bytes) -> bool:
        key = search(text)
        return matches(key, msg, 3, 12)

    assert hit(b"CHARSET UTF-8 FROM {5}\r\nJ\xc3\xb6rg")
    assert hit(b'CHARSET UTF-8 BODY "GR\xc3\x9c\xc3\x9fE"')
    assert hit(b"TEXT hidden@example")
    assert hit(b"BCC hidden")
    assert hit(b'HEADER Message-ID "<m@x>"')
    assert hit(b'HEADER X-Missing ""') is False
    assert hit(b"FLAGGED KEYWORD $Work UNSEEN NOT DELETED")
    assert hit(b"OR SEEN UID 10")
    assert hit(b"SENTON 3-Jan-2024 SINCE 1-Jan-2024 BEFORE 4-Jan-2024")
    assert hit(b"LARGER 10 SMALLER 100000 MODSEQ 9 1:*")
    assert hit(b"OLD")
    assert not hit(b"RECENT")
    assert not hit(b"2:3")
    needs = search_needs(search(b"OR SUBJECT a (HEADER x y)"))
    assert needs.facts
    assert needs.header
    assert esearch_response("t", True, ("MIN", "MAX", "COUNT", "ALL"), [2, 3, 4, 9]) == (
        b'ESEARCH (TAG "t") UID MIN 2 MAX 9 ALL 2:4,9 COUNT 4'
    )
    assert esearch_response("t", False, ("COUNT",), []) == b'ESEARCH (TAG "t") COUNT 0'


def _sm(n: int, subject: str, mid: str, refs: str = "", when: int = 0) -> SortMessage:
    raw = f"Subject: {subject}\r\nMessage-ID: {mid}\r\nFrom: u{n}@x\r\n"
    if refs:
        raw += f"References: {refs}\r\nIn-Reply-To: {refs.split()[-1]}\r\n"
    raw += f"Date: {date(2024, 1, 1 + n).strftime('%a, %d %b %Y')} 10:00:00 +0000\r\n\r\nx\r\n"
    return SortMessage(n, n, when or n, 100 - n, compute_facts(raw.encode()))


def test_base_subject() -> None:
    assert base_subject("Re: [list] Fwd: report (fwd)") == "report"
    assert base_subject("[fwd: Re: Hello]") == "hello"
    assert base_subject("  RE:   re: Hi  ") == "hi"
    assert base_subject("[tag]") == "[tag]"


def test_sort_and_thread() -> None:
    msgs = [
        _sm(1, "Hello", "<1@x>"),
        _sm(2, "Re: Hello", "<2@x>", "<1@x>"),
        _sm(3, "Other", "<3@x>"),
        _sm(4, "Re: Hello", "<4@x>", "<1@x> <2@x>"),
        _sm(5, "Re: Other", "<5@x>", "<missing@x>"),
    ]
    assert sort_numbers(msgs, [c.SortCriterion("SUBJECT"), c.SortCriterion("DATE", True)]) == [
        4, 2, 1, 5, 3,
    ]  # fmt: skip
    assert sort_numbers(msgs, [c.SortCriterion("SIZE")]) == [5, 4, 3, 2, 1]
    assert render_threads(thread(msgs, "REFERENCES")) == b"THREAD (1 2 4)(3 5)"
    assert render_threads(thread(msgs, "ORDEREDSUBJECT")) == b"THREAD (1 (2)(4))(3 5)"


@dataclass(frozen=True)
class E:
    uid: int
    flags: frozenset[str]
    modseq: int


def test_mailbox_view_rules() -> None:
    entries = [E(1, frozenset(), 1), E(3, frozenset(), 2), E(4, frozenset(), 3)]
    view = MailboxView(7, entries, 3, False)
    assert view.select(c.SequenceSet(((2, None),)), False) == [(2, 3), (3, 4)]
    assert view.select(c.SequenceSet(((5, 5),)), False) is None
    assert view.select(c.SequenceSet(((2, 3), (9, None))), True) == [(2, 3), (3, 4)]
    # during FETCH: flags yes, expunge no, new mail yes
    out = view.update(
        [E(4, frozenset({"\\Seen"}), 5), E(5, frozenset(), 6)], [3],
        allow_expunge=False, condstore=True, qresync=False,
    )  # fmt: skip
    assert out == b"* 3 FETCH (FLAGS (\\Seen) MODSEQ (5))\r\n* 4 EXISTS\r\n"
    assert view.exists == 4  # the ghost keeps its number
    out = view.update([], [], allow_expunge=True, condstore=False, qresync=False)
    assert out == b"* 2 EXPUNGE\r\n"
    assert view.uids == [1, 4, 5]
    assert view.expunge_now([1, 5], qresync=True) == b"* VANISHED 1,5\r\n"
    assert view.uids == [4]


def test_mailbox_view_recent() -> None:
    view = MailboxView(7, [E(1, frozenset(), 1), E(2, frozenset({"\\Seen"}), 2)], 2, False)
    assert view.add_recent([2, 9]) == b"* 1 RECENT\r\n"  # 9 is not in the view
    assert view.add_recent([2]) == b""  # the count did not change
    assert view.shown_flags(2, frozenset({"\\Seen"})) == {"\\Seen", "\\Recent"}
    assert view.shown_flags(1, frozenset()) == frozenset()
    out = view.update([E(2, frozenset(), 3)], [], allow_expunge=True, condstore=False,
                      qresync=False, with_uid=True)  # fmt: skip
    assert out == b"* 2 FETCH (UID 2 FLAGS (\\Recent))\r\n"
    assert view.expunge_now([2], qresync=False) == b"* 2 EXPUNGE\r\n"
    assert view.recent == set()


def test_search_prefilter_and_recent() -> None:
    f = compute_facts(MULTI)
    msg = SearchMessage(3, 7, frozenset({"\\Seen", "\\Recent"}), 1704276000, 100, 5)

    def pre(text: bytes) -> bool | None:
        cmd = parse_command(b"a SEARCH " + text)
        assert isinstance(cmd, c.Search)
        return prefilter(cmd.criteria, msg, 10, 20)

    assert pre(b"1:2 TEXT x") is False  # decided without loading anything
    assert pre(b"3 SEEN") is True
    assert pre(b"3 TEXT x") is None
    assert pre(b"OR 3 TEXT x") is True
    assert pre(b"OR 4 TEXT x") is None
    assert pre(b"OR 4 LARGER 500") is False
    assert pre(b"NOT TEXT x") is None
    assert pre(b"NOT 1:2") is True
    assert pre(b"RECENT NOT NEW") is True  # \Recent and \Seen: not NEW
    full = SearchMessage(3, 7, msg.flags, 1704276000, 100, 5, f, MULTI[: f.header_end])
    cmd = parse_command(b'a SEARCH CHARSET UTF-8 TEXT "J\xc3\xb6rg"')
    assert isinstance(cmd, c.Search)
    assert matches(cmd.criteria, full, 10, 20)  # only in an encoded word of From
    assert not matches(parse_command(b"a SEARCH OLD").criteria, full, 10, 20)  # type: ignore[union-attr]


def test_esort_keeps_the_order() -> None:
    assert ordered_set([5, 2, 3, 4, 1, 7]) == b"5,2:4,1,7"
    assert ordered_set([]) == b""
    line = esearch_response("t", True, ("MIN", "MAX", "ALL", "SAVE"), [9, 3, 4], ordered=True)
    assert line == b'ESEARCH (TAG "t") UID MIN 9 MAX 4 ALL 9,3:4'
    assert esearch_response("t", False, ("SAVE",), [1, 2]) == b'ESEARCH (TAG "t") ALL 1:2'


def test_binary_and_fetch_pieces() -> None:
    raw = MULTI.replace(b"base64", b"x-uuencode")
    f = compute_facts(raw)
    msg = FetchMessage(1, 7, frozenset(), 1704276000, len(raw), 5, f, raw)
    with pytest.raises(UnknownCte):
        render_fetch(msg, fetch(b"BINARY[3]").items)
    assert b"BINARY[1] ~{" in render_fetch(msg, fetch(b"BINARY[1]").items)
    big = FetchMessage(2, 8, frozenset(), 1704276000, 5000, 5, None, b"y" * 5000)
    out: list[bytes] = []
    fetch_parts(out, msg, fetch(b"(UID BODY.PEEK[HEADER.FIELDS (Subject)])").items)
    fetch_parts(out, big, fetch(b"BODY.PEEK[]").items, uid=True, flags=True, modseq=True)
    # small pieces are merged, the large body is its own piece
    assert len(out) == 3 and out[1] is big.raw
    assert out[0].endswith(b"* 2 FETCH (UID 8 BODY[] {5000}\r\n")
    assert out[2] == b" FLAGS () MODSEQ (5))\r\n"


def test_known_answers_stand_in_for_evaluation() -> None:
    cmd = parse_command(b"a SEARCH OR TEXT foo NOT BODY bar FROM x")
    assert isinstance(cmd, c.Search)
    keys = text_keys(cmd.criteria)
    assert sorted(k.value for k in keys) == ["bar", "foo"]
    by = {k.value: k for k in keys}
    known = {by["foo"]: {7}, by["bar"]: set[int]()}
    msg = SearchMessage(1, 7, frozenset(), 0, 10, 1)
    other = SearchMessage(2, 8, frozenset(), 0, 10, 1)
    assert prefilter(cmd.criteria, msg, 2, 8, known) is None  # FROM still needs the facts
    assert search_needs(cmd.criteria, known) == search_needs(
        parse_command(b"a SEARCH FROM x").criteria
    )  # type: ignore[union-attr]
    one = parse_command(b"a SEARCH TEXT foo")
    assert isinstance(one, c.Search)
    (foo,) = text_keys(one.criteria)
    assert prefilter(one.criteria, msg, 2, 8, {foo: {7}}) is True
    assert prefilter(one.criteria, other, 2, 8, {foo: {7}}) is False
    assert matches(one.criteria, other, 2, 8, {foo: {8}})


def test_candidate_ranges() -> None:
    uids = [2, 4, 6, 8, 10, 12]

    def ranges(text: bytes) -> list[tuple[int, int]]:
        cmd = parse_command(b"a SEARCH " + text)
        assert isinstance(cmd, c.Search)
        return candidate_ranges(cmd.criteria, uids)

    assert ranges(b"TEXT x") == [(1, 6)]
    assert ranges(b"2:3 TEXT x") == [(2, 3)]
    assert ranges(b"2:9 UID 5:9") == [(3, 4)]  # UIDs 6 and 8 are messages 3 and 4
    assert ranges(b"(1,5:*) (UID 1:4 SEEN)") == [(1, 1)]
    assert ranges(b"OR 1 2") == [(1, 6)]  # only what must hold narrows
    assert ranges(b"UID 13:20") == []
    assert ranges(b"7:9") == []
    assert candidate_ranges(c.SearchAnd(()), []) == []


@pytest.mark.parametrize(
    "items", [b"BODY.PEEK[]", b"(UID BODY[])", b"RFC822", b"(BODY.PEEK[] UID)", b"(UID RFC822)"]
)
@pytest.mark.parametrize("uid", [False, True])
@pytest.mark.parametrize("size", [10, 5000])
def test_body_only_shortcut_renders_like_the_plan(items: bytes, uid: bool, size: int) -> None:
    raw = b"x" * size
    msg = FetchMessage(3, 9, frozenset({"\\Seen"}), 0, size, 1, None, raw)
    plan = FetchPlan(fetch(items).items, uid=uid, modseq=False)
    if items == b"(BODY.PEEK[] UID)":
        assert not plan.body_only  # UID after the body: the general path keeps the order
        return
    assert plan.body_only
    for seen in (False, True):
        general: list[bytes] = [b"* 1 FETCH (UID 1)\r\n"]
        plan.parts(general, msg, flags=seen)
        short: list[bytes] = [b"* 1 FETCH (UID 1)\r\n"]
        plan.body(short, 3, 9, raw, flags_bytes(msg.flags) if seen else None)
        assert b"".join(short) == b"".join(general)
    assert not FetchPlan(fetch(b"BODY.PEEK[]").items, uid=False, modseq=True).body_only
