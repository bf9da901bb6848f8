"""Lexical layer of the command parser: the terminals of RFC 3501 §9.

See :mod:`.parser` for the theory of operation.  This is a security boundary:
numbers are range-checked, nesting is bounded, literals are taken by length.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone

from mailwarden.proto.imap import commands as c
from mailwarden.proto.imap.errors import BadCommand
from mailwarden.proto.imap.mutf7 import MUtf7Error, decode_mutf7

__all__ = ["Lexer", "parse_tag"]

# RFC 3501 §9: atom-specials = "(" / ")" / "{" / SP / CTL / list-wildcards /
# quoted-specials / resp-specials; CHAR is 7-bit, so 8-bit octets are out too.
_ATOM = re.compile(rb'[^(){ \x00-\x1f\x7f-\xff%*"\\\]]+')
_ASTRING_ATOM = re.compile(rb'[^(){ \x00-\x1f\x7f-\xff%*"\\]+')  # ASTRING-CHAR adds "]"
_TAG = re.compile(rb'[^(){ \x00-\x1f\x7f-\xff%*"\\+]+')  # tag: ASTRING-CHAR except "+"
_LIST_MAILBOX = re.compile(rb'[^(){ \x00-\x1f\x7f-\xff"\\]+')  # list-char adds % and *
_NUMBER = re.compile(rb"[0-9]+")
_LITERAL = re.compile(rb"~?\{([0-9]{1,10})(\+?)\}\r\n")
_QUOTED = re.compile(rb'"((?:[^"\\\r\n]|\\["\\])*)"')
_SEQSET = re.compile(rb"(?:[0-9]+|\*)(?::(?:[0-9]+|\*))?(?:,(?:[0-9]+|\*)(?::(?:[0-9]+|\*))?)*")
_DATE_TEXT = re.compile(rb"([0-9]{1,2})-([A-Za-z]{3})-([0-9]{4})")
_DATE_TIME = re.compile(
    rb'"([ 0-9][0-9])-([A-Za-z]{3})-([0-9]{4}) '
    rb'([0-9]{2}):([0-9]{2}):([0-9]{2}) ([+-])([0-9]{2})([0-9]{2})"'
)
_MONTHS = {
    m: i + 1
    for i, m in enumerate(
        ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
    )
}
_MAX_NUMBER = 2**32 - 1  # RFC 3501 §9: number is 32-bit unsigned
_MAX_MODSEQ = 2**63 - 1  # RFC 7162 §7: mod-sequence-value is 63-bit
_DIGITS = frozenset(range(0x30, 0x3A))
_MAX_DEPTH = 64  # nesting limit for search keys and lists (a security limit)


def parse_tag(line: bytes) -> str | None:
    """The tag at the start of a command line, or None when there is none."""
    m = _TAG.match(line)
    if m is None or line[m.end() : m.end() + 1] not in (b" ", b""):
        return None
    return m.group().decode("ascii")


class Lexer:
    """A cursor over one command's octets with one method per terminal rule."""

    __slots__ = ("buf", "depth", "pos", "tag", "utf8")

    def __init__(self, data: bytes, *, utf8: bool = False) -> None:
        self.buf = data
        self.pos = 0
        self.tag: str | None = None
        self.utf8 = utf8
        self.depth = 0

    # --- errors and primitives ------------------------------------------------

    def fail(self, text: str) -> BadCommand:
        """An error for the current command (raise the result)."""
        return BadCommand(text, tag=self.tag)

    def peek(self) -> int:
        return self.buf[self.pos] if self.pos < len(self.buf) else -1

    def at_end(self) -> bool:
        return self.pos >= len(self.buf)

    def end(self) -> None:
        if not self.at_end():
            raise self.fail("Unexpected extra arguments")

    def sp(self) -> None:
        if self.peek() != 0x20:
            raise self.fail("Missing argument" if self.at_end() else "Expected a space")
        self.pos += 1

    def try_sp(self) -> bool:
        if self.peek() == 0x20:
            self.pos += 1
            return True
        return False

    def expect(self, lit: bytes) -> None:
        if self.buf[self.pos : self.pos + len(lit)].upper() != lit:
            raise self.fail(f"Expected {lit.decode('ascii')!r}")
        self.pos += len(lit)

    def take(self, lit: bytes) -> bool:
        if self.buf[self.pos : self.pos + len(lit)].upper() == lit:
            self.pos += len(lit)
            return True
        return False

    def regex(self, rx: re.Pattern[bytes], what: str) -> bytes:
        m = rx.match(self.buf, self.pos)
        if m is None:
            raise self.fail(f"Expected {what}")
        self.pos = m.end()
        return m.group()

    def atom(self) -> str:
        return self.regex(_ATOM, "an atom").decode("ascii")

    def keyword(self) -> str:
        """An atom, upper-cased (command names, item names)."""
        return self.atom().upper()

    def number(self, *, nz: bool = False, limit: int = _MAX_NUMBER) -> int:
        n = int(self.regex(_NUMBER, "a number"))
        if n > limit or (nz and n == 0):
            raise self.fail("Number out of range")
        return n

    def literal(self) -> bytes:
        # RFC 3501 §4.3, RFC 7888 (non-synchronizing "+"), RFC 3516 literal8 "~"
        m = _LITERAL.match(self.buf, self.pos)
        if m is None:
            raise self.fail("Expected a literal")
        n = int(m.group(1))
        start = m.end()
        if start + n > len(self.buf):
            raise self.fail("Literal shorter than announced")
        self.pos = start + n
        return self.buf[start : start + n]

    def quoted(self) -> bytes:
        m = _QUOTED.match(self.buf, self.pos)
        if m is None:
            raise self.fail("Bad quoted string")
        self.pos = m.end()
        body = m.group(1)
        if b"\\" in body:
            body = re.sub(rb"\\(.)", rb"\1", body)
        return body

    def string(self) -> bytes:
        ch = self.peek()
        if ch == 0x22:
            return self.quoted()
        if ch in (0x7B, 0x7E):
            return self.literal()
        raise self.fail("Expected a string")

    def astring(self) -> bytes:
        ch = self.peek()
        if ch in (0x22, 0x7B, 0x7E):
            return self.string()
        return self.regex(_ASTRING_ATOM, "an astring")

    def nstring(self) -> bytes | None:
        if self.take(b"NIL"):
            return None
        return self.string()

    def text_astring(self) -> str:
        raw = self.astring()
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise self.fail("String is not valid UTF-8") from None

    def mailbox(self) -> str:
        """RFC 3501 §9 mailbox = "INBOX" / astring; §5.1: INBOX is case-insensitive."""
        quoted = self.peek() in (0x22, 0x7B, 0x7E)
        raw = self.astring()
        return self._decode_mailbox(raw, quoted)

    def _decode_mailbox(self, raw: bytes, quoted: bool) -> str:
        if self.utf8:
            # RFC 6855 §3, RFC 9051 §5.1: once UTF8=ACCEPT or IMAP4rev2 is
            # enabled, names are UTF-8 and "&" is just a character
            try:
                name = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise self.fail("Mailbox name is not valid UTF-8") from None
        else:
            try:
                name = decode_mutf7(raw)
            except MUtf7Error as exc:
                raise self.fail(f"Bad mailbox name: {exc}") from None
        if name.upper() == "INBOX":
            return "INBOX"
        if name[:6].upper() == "INBOX/":
            return "INBOX" + name[5:]
        return name

    def list_mailbox(self) -> str:
        ch = self.peek()
        if ch in (0x22, 0x7B, 0x7E):
            return self._decode_mailbox(self.string(), True)
        return self._decode_mailbox(self.regex(_LIST_MAILBOX, "a mailbox pattern"), False)

    def seqset(self) -> c.SequenceSet:
        if self.peek() == 0x24:  # "$" RFC 5182 SEARCHRES
            self.pos += 1
            return c.SequenceSet((), saved=True)
        raw = self.regex(_SEQSET, "a sequence set")
        ranges: list[c.SeqRange] = []
        for part in raw.split(b","):
            a, _, b = part.partition(b":")
            lo = self._seqnum(a)
            hi = self._seqnum(b) if b else lo
            ranges.append((lo, hi))
        return c.SequenceSet(tuple(ranges))

    def _seqnum(self, raw: bytes) -> int | None:
        if raw == b"*":
            return None
        n = int(raw)
        if n == 0 or n > _MAX_NUMBER:
            raise self.fail("Invalid sequence number (must be 1..4294967295)")
        return n

    def paren_open(self) -> None:
        self.expect(b"(")
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise self.fail("Too deeply nested")

    def paren_close(self) -> None:
        self.expect(b")")
        self.depth -= 1

    def flag(self) -> str:
        # RFC 3501 §9: flag = "\Answered" / ... / flag-keyword / flag-extension
        if self.peek() == 0x5C:
            self.pos += 1
            name = self.atom()
            return "\\" + name
        return self.atom()

    def flag_list(self) -> tuple[str, ...]:
        self.paren_open()
        flags: list[str] = []
        if self.peek() != 0x29:
            flags.append(self.flag())
            while self.try_sp():
                flags.append(self.flag())
        self.paren_close()
        return tuple(flags)

    def date(self) -> date:
        quoted = self.peek() == 0x22
        if quoted:
            self.pos += 1
        m = _DATE_TEXT.match(self.buf, self.pos)
        if m is None:
            raise self.fail("Expected a date like 1-Feb-1994")
        self.pos = m.end()
        if quoted:
            self.expect(b'"')
        month = _MONTHS.get(m.group(2).upper().decode("ascii"))
        try:
            if month is None:
                raise ValueError
            return date(int(m.group(3)), month, int(m.group(1)))
        except ValueError:
            raise self.fail("Invalid date") from None

    def date_time(self) -> datetime:
        m = _DATE_TIME.match(self.buf, self.pos)
        if m is None:
            raise self.fail('Expected a date-time like "17-Jul-1996 02:44:25 -0700"')
        self.pos = m.end()
        g = m.groups()
        month = _MONTHS.get(g[1].upper().decode("ascii"))
        try:
            if month is None:
                raise ValueError
            offset = timedelta(hours=int(g[7]), minutes=int(g[8]))
            tz = timezone(-offset if g[6] == b"-" else offset)
            return datetime(int(g[2]), month, int(g[0]), int(g[3]), int(g[4]), int(g[5]), tzinfo=tz)
        except ValueError:
            raise self.fail("Invalid date-time") from None
