"""Message facts: wire forms checked by hand against RFC 3501 §7.4.2, offsets by slicing."""

from __future__ import annotations

from mailwarden.mail.facts import MessageFacts, compute_facts, imap_string, part_for

SIMPLE = (
    b"From: Joe Q. Public <john.q.public@example.com>\r\n"
    b"To: Mary Smith <mary@x.test>, jdoe@one.test\r\n"
    b"Subject: =?utf-8?q?J=C3=B6rg?= test\r\n"
    b"Date: Tue, 1 Jul 2003 10:52:37 +0200\r\n"
    b"Message-ID: <1234@local.machine.example>\r\n"
    b"\r\n"
    b"Hi everyone.\r\n"
)


def test_simple_message() -> None:
    facts = compute_facts(SIMPLE)
    joe = b'(("Joe Q. Public" NIL "john.q.public" "example.com"))'
    assert facts.envelope == (
        b'("Tue, 1 Jul 2003 10:52:37 +0200" "=?utf-8?q?J=C3=B6rg?= test" '
        + joe
        + b" "
        + joe
        + b" "
        + joe
        + b' (("Mary Smith" NIL "mary" "x.test")(NIL NIL "jdoe" "one.test"))'
        b' NIL NIL NIL "<1234@local.machine.example>")'
    )
    assert facts.bodystructure == (
        b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 14 1 NIL NIL NIL NIL)'
    )
    assert facts.body == b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 14 1)'
    part = part_for(facts, "1")
    assert part is not None
    assert SIMPLE[part.body_start : part.end] == b"Hi everyone.\r\n"
    assert facts.subject == "Jörg test"
    assert facts.from_addr == "john.q.public@example.com"
    assert facts.to == ("mary@x.test", "jdoe@one.test")
    assert facts.date == 1057049557
    assert MessageFacts.from_json(facts.to_json()) == facts


def test_imap_string() -> None:
    assert imap_string(None) == b"NIL"
    assert imap_string('a "b" \\') == b'"a \\"b\\" \\\\"'
    assert imap_string("é") == b"{2}\r\n\xc3\xa9"
    assert imap_string(b"a\r\nb") == b"{4}\r\na\r\nb"
