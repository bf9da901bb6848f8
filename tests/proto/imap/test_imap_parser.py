"""Parser tables: (input, expected) rows, broken inputs included (STYLE.md §12.1)."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from mailwarden.proto.imap import commands as c
from mailwarden.proto.imap.errors import BadCommand
from mailwarden.proto.imap.mutf7 import MUtf7Error, decode_mutf7, encode_mutf7
from mailwarden.proto.imap.parser import parse_command
from mailwarden.proto.imap.render import render_command
from mailwarden.proto.imap.responses import compact_set, imap_date_time, string

S = c.SequenceSet
ALL = c.SearchAnd(())

GOOD: list[tuple[bytes, c.Command]] = [
    (b"a CAPABILITY", c.Capability("a")),
    (b"a LOGIN alice secret", c.Login("a", "alice", "secret")),
    (b'a LOGIN "al\\"ice" {3}\r\nx y', c.Login("a", 'al"ice', "x y")),
    (b"a AUTHENTICATE plain =", c.Authenticate("a", "PLAIN", b"=")),
    (b"a SELECT inbox", c.Select("a", "INBOX")),
    (b"a SELECT INBOX/Sub", c.Select("a", "INBOX/Sub")),
    (b"a EXAMINE Archive (CONDSTORE)", c.Examine("a", "Archive", condstore=True)),
    (
        b"a SELECT INBOX (QRESYNC (67890007 90060115194045000 41:211,214:541 (1:3 4:6)))",
        c.Select(
            "a",
            "INBOX",
            qresync=c.QresyncParams(
                67890007,
                90060115194045000,
                S(((41, 211), (214, 541))),
                (S(((1, 3),)), S(((4, 6),))),
            ),
        ),
    ),
    (b"a CREATE &ZeVnLIqe-", c.Create("a", "日本語")),
    (b"a CREATE Sent (USE (\\Sent))", c.Create("a", "Sent", ("\\Sent",))),
    (b"a RENAME a b", c.Rename("a", "a", "b")),
    (b'a LIST "" *', c.List("a", "", ("*",))),
    (b'a LIST "" %/&AOk-', c.List("a", "", ("%/é",))),
    (
        b'a LIST (SPECIAL-USE) "" ("*" %) RETURN (CHILDREN STATUS (MESSAGES))',
        c.List("a", "", ("*", "%"), ("SPECIAL-USE",), ("CHILDREN", "STATUS"), ("MESSAGES",), True),
    ),
    (b'a LSUB "" %', c.Lsub("a", "", "%")),
    (
        b"a STATUS INBOX (MESSAGES UIDNEXT HIGHESTMODSEQ)",
        c.Status("a", "INBOX", ("MESSAGES", "UIDNEXT", "HIGHESTMODSEQ")),
    ),
    (
        b'a APPEND Drafts (\\Draft) " 7-Feb-1994 21:52:25 -0800" {2+}\r\nhi',
        c.Append(
            "a",
            "Drafts",
            ("\\Draft",),
            datetime(1994, 2, 7, 21, 52, 25, tzinfo=timezone(-timedelta(hours=8))),
            b"hi",
        ),
    ),
    (b"a APPEND INBOX UTF8 (~{2}\r\nhi)", c.Append("a", "INBOX", (), None, b"hi", True)),
    (b"a EXPUNGE", c.Expunge("a")),
    (b"a UID EXPUNGE 3:5", c.Expunge("a", S(((3, 5),)))),
    (
        b"a FETCH 2:* ALL",
        c.Fetch(
            "a",
            False,
            S(((2, None),)),
            tuple(c.FetchAtt(n) for n in ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE")),
            macro="ALL",
        ),
    ),
    (
        b"a UID FETCH 1,3 (BODY[1.2.HEADER.FIELDS.NOT (X-A x-b)]<5.10> BINARY.PEEK[2] "
        b"RFC822.HEADER)",
        c.Fetch(
            "a",
            True,
            S(((1, 1), (3, 3))),
            (
                c.FetchAtt(
                    "BODY[]", c.Section((1, 2), "HEADER.FIELDS.NOT", ("X-A", "x-b")), (5, 10)
                ),
                c.FetchAtt("BINARY", c.Section((2,)), peek=True),
                c.FetchAtt("RFC822.HEADER"),
            ),
        ),
    ),
    (
        b"a UID FETCH 1:* (FLAGS) (CHANGEDSINCE 7 VANISHED)",
        c.Fetch("a", True, S(((1, None),)), (c.FetchAtt("FLAGS"),), 7, True),
    ),
    (
        b"a STORE 1 -FLAGS.SILENT \\Seen $Junk",
        c.Store("a", False, S(((1, 1),)), "-", True, ("\\Seen", "$Junk")),
    ),
    (
        b"a UID STORE 1 (UNCHANGEDSINCE 5) FLAGS ()",
        c.Store("a", True, S(((1, 1),)), "", False, (), 5),
    ),
    (b"a UID MOVE 1:2 Trash", c.Move("a", True, S(((1, 2),)), "Trash")),
    (b"a COPY * Trash", c.Copy("a", False, S(((None, None),)), "Trash")),
    (
        b"a SEARCH CHARSET UTF-8 NOT (SEEN OR FROM b TO c) SINCE 1-Feb-2024 LARGER 10 UID 1:*",
        c.Search(
            "a",
            False,
            c.SearchAnd(
                (
                    c.SearchNot(
                        c.SearchAnd(
                            (
                                c.SearchFlag("\\Seen", True),
                                c.SearchOr(c.SearchText("FROM", "b"), c.SearchText("TO", "c")),
                            )
                        )
                    ),
                    c.SearchDate("SINCE", False, date(2024, 2, 1)),
                    c.SearchNumber("LARGER", 10),
                    c.SearchSet(True, S(((1, None),))),
                )
            ),
            "UTF-8",
        ),
    ),
    (
        b'a UID SEARCH RETURN (MIN COUNT) HEADER X-Spam "" MODSEQ "/flags/\\\\draft" all 620',
        c.Search(
            "a",
            True,
            c.SearchAnd(
                (c.SearchHeader("X-Spam", ""), c.SearchModseq(620, "/flags/\\draft", "all"))
            ),
            None,
            ("MIN", "COUNT"),
        ),
    ),
    (b"a SEARCH RETURN () ALL", c.Search("a", False, c.SearchAnd((ALL,)), None, ())),
    (
        b"a UID SORT (REVERSE ARRIVAL SUBJECT) UTF-8 UNDELETED",
        c.Sort(
            "a",
            True,
            (c.SortCriterion("ARRIVAL", True), c.SortCriterion("SUBJECT")),
            "UTF-8",
            c.SearchAnd((c.SearchFlag("\\Deleted", False),)),
        ),
    ),
    (
        b"a THREAD REFERENCES US-ASCII ALL",
        c.Thread("a", False, "REFERENCES", "US-ASCII", c.SearchAnd((ALL,))),
    ),
    (b"a GETQUOTAROOT INBOX", c.GetQuotaRoot("a", "INBOX")),
    (b'a SETQUOTA "" (STORAGE 512)', c.SetQuota("a", "", (("STORAGE", 512),))),
    (b"a ID NIL", c.Id("a", None)),
    (b"a ENABLE condstore", c.Enable("a", ("CONDSTORE",))),
    (b"a COMPRESS DEFLATE", c.Compress("a", "DEFLATE")),
]


@pytest.mark.parametrize(
    ("wire", "expected"), GOOD, ids=[w[:40].decode("latin-1") for w, _ in GOOD]
)
def test_parse(wire: bytes, expected: c.Command) -> None:
    assert parse_command(wire) == expected


@pytest.mark.parametrize(
    ("wire", "expected"), GOOD, ids=[w[:40].decode("latin-1") for w, _ in GOOD]
)
def test_render_round_trip(wire: bytes, expected: c.Command) -> None:
    assert parse_command(render_command(expected)) == expected


BAD = [
    (b"", "Expected a tag"),
    (b"a", "Missing argument"),
    (b"a FROB", "Unknown command FROB"),
    (b"a UID NOOP", "UID NOOP is not a command"),
    (b"a FETCH 0 FLAGS", "Invalid sequence number"),
    (b"a FETCH 1 (FLAGS", "Expected ')'"),
    (b"a FETCH 1 BODY[1.]", "Section part ends with '.'"),
    (b"a FETCH 1 BODY[MIME]", "Unknown section MIME"),
    (b"a FETCH 1 BINARY[HEADER]", "BINARY takes only a part number"),
    (b"a FETCH 1 FLAGS (VANISHED)", "VANISHED requires UID FETCH with CHANGEDSINCE"),
    (b"a STORE 1 +FLAGS \\Recent", "\\Recent cannot be stored"),
    (b"a SEARCH FOO", "Unknown search key FOO"),
    (b"a SEARCH " + b"NOT " * 100 + b"ALL", "Too deeply nested"),
    (b"a SEARCH SINCE 31-Feb-2024", "Invalid date"),
    (b'a LIST (RECURSIVEMATCH) "" *', "RECURSIVEMATCH needs another selection option"),
    (b"a LOGIN {5}\r\nab", "Literal shorter than announced"),
    (b"a SELECT &AGE-", "Bad mailbox name"),
    (b'a SEARCH CHARSET UTF-8 TEXT "\xff"', "Search string is not UTF-8"),
    (b"a APPEND INBOX hi", "Expected a literal"),
]


@pytest.mark.parametrize(("wire", "text"), BAD, ids=[w[:30].decode("latin-1") for w, _ in BAD])
def test_parse_errors(wire: bytes, text: str) -> None:
    with pytest.raises(BadCommand) as info:
        parse_command(wire)
    assert text in info.value.text


MUTF7 = [
    ("INBOX", b"INBOX"),
    ("&", b"&-"),
    ("Entwürfe", b"Entw&APw-rfe"),
    ("日本語", b"&ZeVnLIqe-"),
    ("~peter/mail/台北/日本語", b"~peter/mail/&U,BTFw-/&ZeVnLIqe-"),
    ("a😀b", b"a&2D3eAA-b"),
]


@pytest.mark.parametrize(("text", "wire"), MUTF7)
def test_mutf7(text: str, wire: bytes) -> None:
    assert encode_mutf7(text) == wire
    assert decode_mutf7(wire) == text


@pytest.mark.parametrize(
    "wire", [b"&", b"&AGE-", b"&ZeVnLIqe-&ZeVnLIqe-", b"\xc3\xa9", b"&Jjo!", b"&AG=-", b"&2D0-"]
)
def test_mutf7_rejects(wire: bytes) -> None:
    with pytest.raises(MUtf7Error):
        decode_mutf7(wire)


def test_values() -> None:
    assert compact_set([1, 2, 3, 5, 7, 8]) == b"1:3,5,7:8"
    assert compact_set([]) == b""
    assert string(b"a\r\nb") == b"{4}\r\na\r\nb"
    assert string('say "hi"') == b'"say \\"hi\\""'
    when = datetime(1996, 7, 17, 2, 44, 25, tzinfo=timezone(-timedelta(hours=7)))
    assert imap_date_time(when) == b'"17-Jul-1996 02:44:25 -0700"'


def test_sequence_set() -> None:
    s = S(((5, 3), (None, None), (10, 12)))
    assert s.resolve(11) == [(3, 5), (10, 12)]
    assert s.contains(4, 11)
    assert not s.contains(9, 11)
    assert list(S(((1, None),)).iter_numbers(0)) == []


def test_utf8_names_once_enabled() -> None:
    # RFC 6855 §3, RFC 9051 §5.1: names are UTF-8, "&" is just a character
    assert parse_command(b'a LIST "A&B/" "Entw\xc3\xbcrfe*"', utf8=True) == c.List(
        "a", "A&B/", ("Entwürfe*",)
    )
    assert parse_command(b"a SELECT A&B", utf8=True) == c.Select("a", "A&B")
    assert parse_command(b"a SELECT inbox", utf8=True) == c.Select("a", "INBOX")
    for wire in (b'a SELECT "\xff"', b'a LIST "\xff" *'):
        with pytest.raises(BadCommand):
            parse_command(wire, utf8=True)


def test_qresync_parameters() -> None:
    cmd = parse_command(b"a SELECT INBOX (QRESYNC (67890007 90060115194045000 41:211 (1,3 41,43)))")
    assert isinstance(cmd, c.Select) and cmd.qresync is not None
    assert cmd.qresync.known_uids == c.SequenceSet(((41, 211),))
    assert cmd.qresync.seq_match == (
        c.SequenceSet(((1, 1), (3, 3))),
        c.SequenceSet(((41, 41), (43, 43))),
    )
