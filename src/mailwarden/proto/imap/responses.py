"""Server responses and the rendering of IMAP data values (RFC 3501 §7, §9).

The application answers each command event with :class:`Untagged` data and
exactly one :class:`Tagged` completion; the session renders them.  Rendering
helpers here pick the wire form of a value: an atom when allowed, a quoted
string when short and clean, else a literal (RFC 3501 §4.3), so any octets
round-trip.  FETCH responses for many messages are rendered by the caller into
one :class:`RawLines` so that a 100,000-message FETCH costs one buffer append.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, assert_never

from mailwarden.proto.imap.mutf7 import encode_mutf7

__all__ = [
    "Continuation",
    "RawLines",
    "Response",
    "Tagged",
    "Untagged",
    "UntaggedStatus",
    "compact_set",
    "flag_list",
    "imap_date_time",
    "literal",
    "mailbox_name",
    "nstring",
    "quoted",
    "render",
    "string",
]

_ATOM_SAFE = re.compile(rb'[^(){ \x00-\x1f\x7f-\xff%*"\\\]]+\Z')
_QUOTE_SAFE = re.compile(rb"[^\x00\r\n\x80-\xff]*\Z")
_QUOTE_SAFE_UTF8 = re.compile(rb"[^\x00\r\n]*\Z")
_MAX_QUOTED = 1024  # longer strings go as literals; clients handle both


@dataclass(frozen=True, slots=True)
class Tagged:
    """The completion of a command: ``tag OK|NO|BAD [code] text`` (RFC 3501 §7.1)."""

    tag: str
    status: Literal["OK", "NO", "BAD"]
    text: str
    code: str | None = None


@dataclass(frozen=True, slots=True)
class UntaggedStatus:
    """``* OK|NO|BAD|BYE|PREAUTH [code] text`` (RFC 3501 §7.1)."""

    status: Literal["OK", "NO", "BAD", "BYE", "PREAUTH"]
    text: str
    code: str | None = None


@dataclass(frozen=True, slots=True)
class Untagged:
    """``* <data>``: the octets after ``* `` without the CRLF (may embed literals)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class RawLines:
    """Complete untagged data lines, each ending in CRLF, rendered by the caller.

    ``data`` may also be a tuple of pieces that together make the lines: the
    session hands them to the shell as they are, so the octets of messages
    reach the socket (a vectored write) without being copied into one buffer.
    """

    data: bytes | tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class Continuation:
    """``+ text`` (RFC 3501 §7.5); ``data`` (base64 for SASL) replaces text when set."""

    text: str = ""
    data: bytes | None = None


Response = Tagged | UntaggedStatus | Untagged | RawLines | Continuation


def _text(text: str) -> bytes:
    # RFC 3501 §9: text = 1*TEXT-CHAR (no CR/LF); never let a peer-supplied
    # string break the line
    return text.replace("\r", " ").replace("\n", " ").encode("utf-8", "replace") or b"."


def render(resp: Response) -> bytes:
    """The wire octets of one response, CRLF included."""
    match resp:
        case Tagged():
            head = resp.tag.encode("ascii") + b" " + resp.status.encode("ascii") + b" "
            code_part = b"[" + resp.code.encode("utf-8") + b"] " if resp.code else b""
            return head + code_part + _text(resp.text) + b"\r\n"
        case UntaggedStatus():
            code_part = b"[" + resp.code.encode("utf-8") + b"] " if resp.code else b""
            return (
                b"* " + resp.status.encode("ascii") + b" " + code_part + _text(resp.text) + b"\r\n"
            )
        case Untagged():
            return b"* " + resp.data + b"\r\n"
        case RawLines():
            return resp.data if isinstance(resp.data, bytes) else b"".join(resp.data)
        case Continuation():
            if resp.data is not None:
                return b"+ " + resp.data + b"\r\n"
            return b"+ " + _text(resp.text) + b"\r\n" if resp.text else b"+ \r\n"
        case _:  # pragma: no cover - exhaustive
            assert_never(resp)


# --- values -----------------------------------------------------------------


def literal(data: bytes) -> bytes:
    """``{n}`` CRLF data (RFC 3501 §4.3)."""
    return b"{%d}\r\n" % len(data) + data


def quoted(data: bytes) -> bytes:
    """A quoted string; the caller guarantees no CR, LF or NUL."""
    return b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def string(data: bytes | str, *, utf8: bool = False) -> bytes:
    """A string as quoted when possible, else as a literal.

    Args:
        data: octets (or text, sent as UTF-8).
        utf8: the client enabled UTF8=ACCEPT, so 8-bit octets may be quoted.
    """
    if isinstance(data, str):
        data = data.encode("utf-8")
    safe = _QUOTE_SAFE_UTF8 if utf8 else _QUOTE_SAFE
    if len(data) <= _MAX_QUOTED and safe.match(data):
        return quoted(data)
    return literal(data)


def nstring(data: bytes | str | None, *, utf8: bool = False) -> bytes:
    """NIL or a string."""
    return b"NIL" if data is None else string(data, utf8=utf8)


def astring(data: bytes) -> bytes:
    """An atom when the octets allow it, else a string."""
    if data and data.upper() != b"NIL" and _ATOM_SAFE.match(data):
        return data
    return string(data)


def mailbox_name(name: str, *, utf8: bool = False) -> bytes:
    """A mailbox name on the wire: modified UTF-7 (RFC 3501 §5.1.3) or UTF-8 (RFC 6855 §3)."""
    if utf8:
        return string(name.encode("utf-8"), utf8=True)
    return string(encode_mutf7(name))


def flag_list(flags: Iterable[str]) -> bytes:
    """``(\\Seen $Junk)``."""
    return b"(" + " ".join(flags).encode("utf-8") + b")"


def imap_date_time(when: datetime) -> bytes:
    """``"17-Jul-1996 02:44:25 -0700"`` (RFC 3501 §9 date-time)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    off = when.utcoffset()
    minutes = int(off.total_seconds() // 60) if off is not None else 0
    sign = "-" if minutes < 0 else "+"
    minutes = abs(minutes)
    month = "JanFebMarAprMayJunJulAugSepOctNovDec"[(when.month - 1) * 3 : when.month * 3]
    return (
        f'"{when.day:2d}-{month}-{when.year:04d} {when.hour:02d}:{when.minute:02d}:'
        f'{when.second:02d} {sign}{minutes // 60:02d}{minutes % 60:02d}"'
    ).encode("ascii")


def compact_set(numbers: Iterable[int]) -> bytes:
    """The shortest sequence set for ascending numbers: ``1:3,7,9:10``.

    Args:
        numbers: ascending, without repeats (the caller sorts).

    Returns:
        The set octets, ``b""`` when there are no numbers.
    """
    parts: list[str] = []
    start = prev = -2
    for n in numbers:
        if n == prev + 1:
            prev = n
            continue
        if start >= 0:
            parts.append(str(start) if start == prev else f"{start}:{prev}")
        start = prev = n
    if start >= 0:
        parts.append(str(start) if start == prev else f"{start}:{prev}")
    return ",".join(parts).encode("ascii")
