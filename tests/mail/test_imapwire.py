"""IMAP wire forms (RFC 3501 §7.4.2): nstrings, ENVELOPE, BODY and BODYSTRUCTURE."""

from __future__ import annotations

from imap_wire_syntax import parse_wire

from mailwarden.mail.headers import parse_header
from mailwarden.mail.imapwire import body_structure, envelope, imap_string
from mailwarden.mail.mimetree import parse_message


def test_imap_string() -> None:
    assert imap_string(None) == b"NIL"
    assert imap_string("plain") == b'"plain"'
    assert imap_string('a "b" \\') == b'"a \\"b\\" \\\\"'
    assert imap_string("é") == b"{2}\r\n\xc3\xa9"
    assert imap_string(b"a\r\nb") == b"{4}\r\na\r\nb"
    assert imap_string(b"a\x00b") == b'"ab"'


def test_envelope_groups_routes_and_missing_parts() -> None:
    raw = (
        b'From: Team: a@b.test, "Q" <@r:q@c.test>;\r\n'
        b"To: @bad, nobody\r\n"
        b"Subject: =?utf-8?q?x?= \xc3\xa9\r\n\r\n"
    )
    wire, parsed = envelope(parse_header(raw, 0, len(raw)))
    team = b'((NIL NIL "Team" NIL)(NIL NIL "a" "b.test")("Q" "@r" "q" "c.test")(NIL NIL NIL NIL))'
    assert wire == (
        # 8-bit Subject: a literal of the sender's octets, encoded word kept.
        b"(NIL {16}\r\n=?utf-8?q?x?= \xc3\xa9 "
        # RFC 3501 §7.4.2: absent Sender and Reply-To take From's value.
        + b" ".join([team, team, team])
        + b' ((NIL NIL "MISSING_MAILBOX" "bad")(NIL NIL "nobody" "MISSING_DOMAIN"))'
        + b" NIL NIL NIL NIL)"
    )
    parse_wire(wire)
    assert sorted(parsed) == ["bcc", "cc", "from", "reply-to", "sender", "to"]
    assert [item.group for item in parsed["from"]] == ["start", "", "", "end"]


def test_body_structure_of_a_single_part() -> None:
    raw = (
        b"Content-Type: TEXT/Plain; Charset=UTF-8\r\n"
        b"Content-Disposition: inline; filename=a.txt\r\n"
        b"Content-Language: en, fr\r\n\r\n"
        b"hello\r\nworld"
    )
    body, full = body_structure(raw, parse_message(raw).body)
    # Type and parameter names keep the sender's case, as in Dovecot.
    assert body == b'("TEXT" "Plain" ("Charset" "UTF-8") NIL NIL "7bit" 12 1)'
    assert full == (
        b'("TEXT" "Plain" ("Charset" "UTF-8") NIL NIL "7bit" 12 1'
        b' NIL ("inline" ("filename" "a.txt")) ("en" "fr") NIL)'
    )


def test_body_structure_of_an_encapsulated_message() -> None:
    raw = b"Content-Type: message/rfc822\r\n\r\nSubject: in\r\n\r\nbody\r\n"
    body, full = body_structure(raw, parse_message(raw).body)
    envelope_in = b'(NIL "in" NIL NIL NIL NIL NIL NIL NIL NIL)'
    assert body == (
        b'("message" "rfc822" NIL NIL NIL "7bit" 21 '
        + envelope_in
        + b' ("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 6 1) 3)'
    )
    assert full == (
        b'("message" "rfc822" NIL NIL NIL "7bit" 21 '
        + envelope_in
        + b' ("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 6 1 NIL NIL NIL NIL)'
        + b" 3 NIL NIL NIL NIL)"
    )
    parse_wire(full)
