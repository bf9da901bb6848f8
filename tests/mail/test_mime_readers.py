"""Tables for the low-level MIME readers: headers, parameters, delimiters, text.

The readers are exercised as a whole through :mod:`mailwarden.mail.facts`
(``test_facts.py``); these rows pin each one down on its own, broken input
included, since each is total and must give a reading rather than raise.
"""

from __future__ import annotations

import pytest

from mailwarden.mail.bodytext import decode_body, html_to_text
from mailwarden.mail.charsets import decode_words, to_text, utf8
from mailwarden.mail.headers import HeaderBlock, parse_date, parse_header, parse_msg_ids
from mailwarden.mail.multipart import Delimiter, find_delimiter
from mailwarden.mail.params import (
    ContentType,
    merge_rfc2231,
    parse_content_type,
    parse_disposition,
    rfc2231_value,
)

# ---------------------------------------------------------------------------
# headers


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"\r\nbody", HeaderBlock({}, 2)),
        (b"\nbody", HeaderBlock({}, 1)),
        (b"A: 1", HeaderBlock({"a": ["1"]}, 4)),
        # Folded lines unfold; white space before the colon (RFC 5322 §4.5.3)
        # is allowed; a line that is no field is skipped.
        (
            b"A: 1\nB : 2\n\tmore\nnot a field\n\nbody",
            HeaderBlock({"a": ["1"], "b": ["2\tmore"]}, 30),
        ),
        (
            b"Subject: a\r\n b\r\nX: 1\r\nX: 2\r\n\r\nbody",
            HeaderBlock({"subject": ["a b"], "x": ["1", "2"]}, 30),
        ),
    ],
)
def test_parse_header(raw: bytes, expected: HeaderBlock) -> None:
    assert parse_header(raw, 0, len(raw)) == expected


def test_header_block_occurrences() -> None:
    block = HeaderBlock({"to": ["a@b", "c@d"]}, 0)
    assert (block.first("to"), block.last("to"), block.joined("to")) == ("a@b", "c@d", "a@b,c@d")
    assert (block.first("cc"), block.last("cc"), block.joined("cc")) == (None, None, None)


def test_dates_and_message_ids() -> None:
    assert parse_date("Wed, 2 Jul 2003 12:00:00 +0000") == 1057147200
    assert parse_date("nonsense") is None
    assert parse_date(None) is None
    assert parse_msg_ids("<a@b> junk <> <c@d>") == ("<a@b>", "<c@d>")
    assert parse_msg_ids(None) == ()


# ---------------------------------------------------------------------------
# params


def test_parse_content_type() -> None:
    assert parse_content_type('text/plain; charset="utf-8" (c); format=flowed') == ContentType(
        "text", "plain", (("charset", "utf-8"), ("format", "flowed"))
    )
    assert parse_content_type("text") is None
    assert parse_content_type(None) is None


def test_rfc2231_continuations_keep_their_encoding() -> None:
    value = "attachment; filename*0*=utf-8''%C3%A9; filename*1=t.pdf"
    assert parse_disposition(value) == ("attachment", (("filename*", "utf-8''%C3%A9t.pdf"),))
    assert rfc2231_value("utf-8''%C3%A9t.pdf") == "ét.pdf"
    assert merge_rfc2231([("name*1", "b"), ("name*0", "a")]) == (("name", "ab"),)


# ---------------------------------------------------------------------------
# multipart


def test_longest_boundary_wins() -> None:
    raw = b"pre\r\n--ab\r\nx\r\n--a--\r\n"
    first = find_delimiter(raw, 0, [b"a", b"ab"])
    assert first == Delimiter(level=1, start=5, content_end=3, line_end=11, closing=False)
    last = find_delimiter(raw, first.line_end, [b"a", b"ab"])
    assert last is not None and (last.level, last.closing) == (0, True)
    assert find_delimiter(raw, 0, []) is None


# ---------------------------------------------------------------------------
# charsets and bodytext


def test_charsets() -> None:
    assert utf8("J\xc3\xb6rg\x00") == "Jörg"
    assert utf8("\xff") == "\ufffd"
    assert decode_words("=?utf-8?q?J=C3=B6rg?= M") == "Jörg M"
    assert decode_words("=?bogus?q?x?=") == "=?bogus?q?x?="
    assert to_text(b"caf\xe9", "iso-8859-1") == "café"
    assert to_text(b"caf\xe9", "no-such") == "caf\ufffd"
    assert to_text(b"YWJj", "base64") == "YWJj"  # a bytes-to-bytes codec is no charset


def test_bodytext() -> None:
    assert decode_body(b"YWJ\r\njZA", "base64") == b"abcd"  # padding restored
    assert decode_body(b"!!!", "base64") == b""
    assert decode_body(b"a=3Db=\r\nc", "quoted-printable") == b"a=bc"
    assert decode_body(b"x", "8bit") == b"x"
    assert html_to_text("<style>x</style><p>a&amp;b</p><!-- c --><br>d") == " \na&b\n \nd"
