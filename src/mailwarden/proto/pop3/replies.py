"""How the POP3 server writes its answers: status lines, response codes, multi-line bodies.

RFC 1939 §3: a response is a status indicator (``+OK`` or ``-ERR``) and text on
one line of at most 512 octets including CRLF; a multi-line response ends with
a line holding a single ``.``, and every line of the body that begins with
``.`` gets one more ``.`` in front (byte-stuffing).  RFC 2449 §8 puts an
extended response code in brackets right after ``-ERR``; RFC 3206 defines
``[SYS/TEMP]``, ``[SYS/PERM]`` and ``[AUTH]``; RFC 2449 §8.1 ``[IN-USE]`` and
``[LOGIN-DELAY]``.

Message bodies go out with every line ending in CRLF, whatever the store
holds: a bare LF could make a client that splits on LF see a lone ``.`` that
we never meant as the terminator (the POP3 cousin of SMTP smuggling).
"""

from __future__ import annotations

import enum
import re

__all__ = [
    "MAX_RESPONSE_LINE",
    "Pop3Error",
    "RespCode",
    "dot_stuff",
    "err",
    "normalize_newlines",
    "ok",
    "stuff_crlf",
    "top_of",
]

# RFC 2449 §4: response lines are at most 512 octets including CRLF.
MAX_RESPONSE_LINE = 512

_DOT_LINE = re.compile(rb"\n\.")


class RespCode(enum.Enum):
    """Extended response codes (RFC 2449 §8, RFC 3206)."""

    IN_USE = "IN-USE"
    """RFC 2449 §8.1.1: the maildrop is locked by another session."""
    LOGIN_DELAY = "LOGIN-DELAY"
    """RFC 2449 §8.1.2: the user logged in too recently."""
    SYS_TEMP = "SYS/TEMP"
    """RFC 3206 §4: a temporary system problem; trying again later may work."""
    SYS_PERM = "SYS/PERM"
    """RFC 3206 §4: a permanent system problem; trying again will not help."""
    AUTH = "AUTH"
    """RFC 3206 §5: the credentials were wrong (not a system problem)."""


def _status(indicator: bytes, text: str, code: RespCode | None) -> bytes:
    body = f"[{code.value}] {text}" if code is not None else text
    raw = body.encode("utf-8", "replace").replace(b"\r", b" ").replace(b"\n", b" ")
    line = indicator + (b" " + raw if raw else b"")
    return line[: MAX_RESPONSE_LINE - 2] + b"\r\n"


def ok(text: str = "") -> bytes:
    """Return a ``+OK`` status line with ``text`` (CR/LF in the text become spaces)."""
    return _status(b"+OK", text, None)


def err(text: str, code: RespCode | None = None) -> bytes:
    """Return an ``-ERR`` status line, with an extended response code if given."""
    return _status(b"-ERR", text, code)


class Pop3Error(Exception):
    """A protocol error that *is* its wire reply (an ``-ERR`` line).

    Attributes:
        reply: the complete ``-ERR ...\\r\\n`` line for the peer.
        bad: the error counts against the session's bad-command limit (syntax,
            unknown command, wrong state); "no such message" does not.
    """

    def __init__(self, text: str, code: RespCode | None = None, *, bad: bool = True) -> None:
        super().__init__(text)
        self.reply = err(text, code)
        self.bad = bad


def normalize_newlines(data: bytes) -> bytes:
    """Return ``data`` with every line ending (CRLF or bare LF) written as CRLF."""
    # Stored mail is nearly always CRLF already; counting is cheaper than
    # rewriting (this runs for every RETR).
    if b"\n" not in data or data.count(b"\n") == data.count(b"\r\n"):
        return data
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def dot_stuff(data: bytes) -> bytes:
    """Frame ``data`` as the body of a multi-line response (RFC 1939 §3).

    Line endings become CRLF, lines starting with ``.`` get another ``.``, a
    final CRLF is added if missing, and the terminating ``.`` line is appended.

    Args:
        data: the octets of a message (or of the lines of a listing).

    Returns:
        The body ready to follow a ``+OK`` line.
    """
    return stuff_crlf(normalize_newlines(data))


def stuff_crlf(data: bytes) -> bytes:
    """Like :func:`dot_stuff` for data whose line endings are already all CRLF."""
    if data.startswith(b"."):
        data = b"." + data
    # Every LF ends a CRLF here, so "\n." is exactly a line starting with ".".
    # (re.sub is about twice as fast as bytes.replace for this pattern.)
    if b"\n." in data:
        data = _DOT_LINE.sub(b"\n..", data)
    if data and not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"


def top_of(message: bytes, lines: int) -> bytes:
    """Return the header and the first ``lines`` body lines of a message (RFC 1939 §7 TOP).

    Args:
        message: the whole message, any line endings.
        lines: how many body lines to keep (0: the header and the blank line).

    Returns:
        The cut message with CRLF line endings; the whole message if it has
        fewer lines, or no body.
    """
    data = normalize_newlines(message)
    if data.startswith(b"\r\n"):
        body_start = 2  # no header at all: the blank line comes first
    else:
        sep = data.find(b"\r\n\r\n")
        if sep < 0:
            return data
        body_start = sep + 4
    end = body_start
    for _ in range(lines):
        nl = data.find(b"\r\n", end)
        if nl < 0:
            return data
        end = nl + 2
    return data[:end]
