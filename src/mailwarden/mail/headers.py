"""RFC 5322 header blocks over raw bytes, and the simple fields read from them.

Theory of operation
-------------------
:func:`parse_header` scans one header block of a message or of a MIME part and
returns a :class:`HeaderBlock`: every field's values by lower-cased name, plus
the offset where the body starts, so that callers can slice the stored blob
(IMAP ``BODY[x.MIME]``, ``BODY[x]``).  The standard library's :mod:`email`
parser does not keep offsets, hence this scanner.

Values are unfolded and kept as ``latin-1`` text, octet for octet (see
:mod:`mailwarden.mail.charsets` for turning them into proper text).  Which
occurrence of a repeated field counts differs by reader, so the block keeps
them all and offers :meth:`HeaderBlock.first`, :meth:`HeaderBlock.last` and
:meth:`HeaderBlock.joined`, each named after the Dovecot behaviour it mirrors.

:func:`parse_date` and :func:`parse_msg_ids` read the Date and the message-id
fields (RFC 5322 §3.3, §3.6.4).  Every function here is total: any input gives
a result and nothing raises.
"""

from __future__ import annotations

import email.utils
import re
from dataclasses import dataclass

from mailwarden.mail.charsets import utf8

__all__ = ["HeaderBlock", "parse_date", "parse_header", "parse_msg_ids"]

_WSP = " \t\r\n"


@dataclass(frozen=True, slots=True)
class HeaderBlock:
    """One parsed header block (RFC 5322 §2.2).

    Attributes:
        fields: every value of each field, in order, by lower-cased name;
            values unfolded (CR and LF removed, RFC 5322 §2.2.3) and trimmed,
            as latin-1 text.
        body_start: offset just past the blank line that ends the header, or
            the end of the scanned range if there is no blank line.
    """

    fields: dict[str, list[str]]
    body_start: int

    def first(self, name: str) -> str | None:
        """The first value of ``name`` (MIME fields: Dovecot reads the first)."""
        values = self.fields.get(name)
        return values[0] if values else None

    def last(self, name: str) -> str | None:
        """The last value of ``name`` (ENVELOPE strings: Dovecot reads the last)."""
        values = self.fields.get(name)
        return values[-1] if values else None

    def joined(self, name: str) -> str | None:
        """All values of an address field joined by commas (Dovecot lists them all)."""
        values = self.fields.get(name)
        if not values:
            return None
        return values[0] if len(values) == 1 else ",".join(values)


def _add(fields: dict[str, list[str]], name: str, parts: list[str]) -> None:
    value = "".join(parts).replace("\r", "").strip(_WSP)
    if name in fields:
        fields[name].append(value)
    else:
        fields[name] = [value]


def parse_header(raw: bytes, start: int, end: int) -> HeaderBlock:
    """Parse the header block that begins at ``raw[start]`` and ends before ``end``.

    The block ends at the first empty line, whatever its line ending (CRLF or
    bare LF).  Lines that are neither a field nor a continuation are skipped.

    Args:
        raw: the whole message.
        start: offset of the first header line.
        end: offset the header may not pass (the next delimiter or the end).

    Returns:
        The fields and the offset of the body.
    """
    if start >= end:
        return HeaderBlock({}, max(start, end))
    if raw[start] == 0x0A:
        return HeaderBlock({}, start + 1)
    if raw.startswith(b"\r\n", start, end):
        return HeaderBlock({}, start + 2)
    crlf = raw.find(b"\n\r\n", start, end)
    lf = raw.find(b"\n\n", start, end if crlf < 0 else crlf + 1)
    if crlf < 0 and lf < 0:
        content_end = body_start = end
    elif lf < 0 or 0 <= crlf < lf:
        content_end, body_start = crlf + 1, crlf + 3
    else:
        content_end, body_start = lf + 1, lf + 2
    block = raw[start:content_end].decode("latin-1")
    fields: dict[str, list[str]] = {}
    name = ""
    value: list[str] = []
    for line in block.split("\n"):
        if line[:1] in (" ", "\t"):
            if name:
                value.append(line)
            continue
        if name:
            _add(fields, name, value)
        colon = line.find(":")
        if colon <= 0:
            name = ""
            continue
        # RFC 5322 §4.5.3 (obsolete syntax) allows white space before the colon.
        name = line[:colon].rstrip(" \t").lower()
        value = [line[colon + 1 :]]
    if name:
        _add(fields, name, value)
    return HeaderBlock(fields, body_start)


# ---------------------------------------------------------------------------
# Dates and message ids


def parse_date(value: str | None) -> int | None:
    """Parse a Date: value (RFC 5322 §3.3) into epoch seconds, None if unusable."""
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_tz(value)
        if parsed is None:
            return None
        return int(email.utils.mktime_tz(parsed))
    except (TypeError, ValueError, OverflowError, IndexError):
        return None


_MSG_ID_RE = re.compile(r"<[^<>\s]*>")


def parse_msg_ids(value: str | None) -> tuple[str, ...]:
    """The ``<...>`` message ids in a header value, in order (RFC 5322 §3.6.4)."""
    if not value:
        return ()
    return tuple(utf8(m) for m in _MSG_ID_RE.findall(value) if len(m) > 2)
