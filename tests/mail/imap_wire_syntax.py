"""A small reader of IMAP wire syntax, to check that what we render parses.

Shared by the tests of :mod:`mailwarden.mail.facts` and
:mod:`mailwarden.mail.imapwire`.  It reads one value (list, quoted string,
literal, NIL, number or atom) and asserts the RFC 3501 §9 rules our renderer
promises: quoted strings hold no CR, LF, NUL or 8-bit octets, literals no NUL.
"""

from __future__ import annotations

import re

__all__ = ["parse_wire"]

_ATOM_RE = re.compile(rb"[^ ()\r\n\"{}]+")


def _read(data: bytes, i: int) -> tuple[object, int]:
    """Read one IMAP value (list, quoted, literal, NIL/number/atom) at ``data[i]``."""
    c = data[i : i + 1]
    if c == b"(":
        items: list[object] = []
        i += 1
        while data[i : i + 1] != b")":
            if items:
                assert data[i : i + 1] == b" " or data[i - 1 : i] == b")", data[i:]
                if data[i : i + 1] == b" ":
                    i += 1
            value, i = _read(data, i)
            items.append(value)
        return items, i + 1
    if c == b'"':
        out = bytearray()
        i += 1
        while data[i : i + 1] != b'"':
            if data[i : i + 1] == b"\\":
                i += 1
                assert data[i : i + 1] in (b'"', b"\\")
            assert data[i] not in b"\r\n\x00" and data[i] < 0x80
            out += data[i : i + 1]
            i += 1
        return bytes(out), i + 1
    if c == b"{":
        close = data.index(b"}", i)
        n = int(data[i + 1 : close])
        assert data[close + 1 : close + 3] == b"\r\n"
        start = close + 3
        assert b"\x00" not in data[start : start + n]
        return data[start : start + n], start + n
    m = _ATOM_RE.match(data, i)
    assert m is not None, data[i:]
    return (None if m.group() == b"NIL" else m.group()), m.end()


def parse_wire(data: bytes) -> object:
    """Read one whole IMAP value; None for NIL, bytes for strings and atoms, lists."""
    value, end = _read(data, 0)
    assert end == len(data), (data[end:], data)
    return value
