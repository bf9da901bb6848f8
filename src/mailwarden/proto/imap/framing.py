"""Command framing: bytes -> complete commands, literals counted, limits enforced.

Theory of operation.  An IMAP command is one line, unless a line ends with a
literal marker ``{n}`` (synchronizing: the client waits for our ``+``) or
``{n+}`` (non-synchronizing, LITERAL+ RFC 7888: the octets follow at once), in
which case exactly ``n`` octets follow and then the command continues on the
next line (RFC 3501 §4.3, §7.5).  The framer reassembles the command exactly
as it came over the wire, so the parser sees literals inline and can trust
their lengths.

Limits (security limits, from config):

* each line is at most ``max_line`` octets (:class:`~mailwarden.proto.lines.LineBuffer`);
  a longer line ends the connection (``BYE [TOOBIG]``) because we could not
  tell where the command it belonged to ended;
* a literal in APPEND is at most ``max_literal`` octets (APPENDLIMIT); in any
  other command at most ``max_line`` octets;
* the whole command is at most ``max_literal + max_line`` (APPEND) or
  ``4 * max_line`` (anything else) octets.

A synchronizing literal over its limit is refused *before the client sends it*
with ``NO [TOOBIG]`` instead of the continuation (RFC 7888 §4, RFC 9051 §7.1);
the client then abandons the command.  A non-synchronizing one is already on
its way: we answer ``BAD [TOOBIG]`` and read and discard its octets and the
rest of the command without buffering them (RFC 7888 §4 lets the server
choose between that and closing; discarding keeps the session).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mailwarden.proto.imap.lexer import parse_tag
from mailwarden.proto.lines import Line, LineBuffer, LineTooLong

__all__ = ["CommandTooLong", "Framed", "Framer", "LiteralTooBig", "SendContinuation"]

_LITERAL_MARK = re.compile(rb"~?\{([0-9]+)(\+?)\}\Z")
_COMMAND_NAME = re.compile(rb"[^ ]+ (?:UID )?([A-Za-z]+)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Framed:
    """One complete command: its octets without the final CRLF."""

    data: bytes


@dataclass(frozen=True, slots=True)
class SendContinuation:
    """A synchronizing literal was announced and fits: send ``+`` now."""

    size: int


@dataclass(frozen=True, slots=True)
class LiteralTooBig:
    """A literal over the limit; answer tagged ``NO``/``BAD`` ``[TOOBIG]``.

    Attributes:
        tag: the command's tag, or None when the first line had none.
        synchronizing: the client is waiting for us (answer NO, nothing follows);
            otherwise its octets are being discarded (answer BAD).
        limit: the limit that applied.
    """

    tag: str | None
    synchronizing: bool
    limit: int


@dataclass(frozen=True, slots=True)
class CommandTooLong:
    """A line over ``max_line`` octets: the connection cannot continue in sync."""

    limit: int


FrameEvent = Framed | SendContinuation | LiteralTooBig | CommandTooLong


class Framer:
    """Incremental assembler of commands from the client's octet stream."""

    def __init__(self, max_line: int, max_literal: int) -> None:
        self.max_line = max_line
        self.max_literal = max_literal
        self.lines = LineBuffer(max_line)
        self._parts = bytearray()  # the command so far
        self._literal_left = 0  # octets of the current literal still to copy
        self._skip_left = 0  # octets of a refused literal still to discard
        self._discarding = False  # dropping the rest of a refused command
        self._limit = 4 * max_line
        self._literal_limit = max_line

    def feed(self, data: bytes) -> None:
        """Append received octets."""
        self.lines.feed(data)

    @property
    def mid_command(self) -> bool:
        """Part of a command has been received."""
        return bool(self._parts) or self._literal_left > 0 or self._discarding

    def next_line(self) -> Line | LineTooLong | None:
        """A raw line (IDLE's DONE, SASL responses), bypassing command framing."""
        return self.lines.next_line()

    def next(self) -> FrameEvent | None:
        """The next framing event, or None when more octets are needed."""
        while True:
            if self._skip_left:
                got = self.lines.take(min(self._skip_left, self.lines.buffered))
                self._skip_left -= len(got)
                if self._skip_left:
                    return None
            if self._literal_left:
                got = self.lines.take(min(self._literal_left, self.lines.buffered))
                self._parts += got
                self._literal_left -= len(got)
                if self._literal_left:
                    return None
            line = self.lines.next_line()
            if line is None:
                return None
            if isinstance(line, LineTooLong):
                self._reset()
                return CommandTooLong(line.limit)
            mark = _LITERAL_MARK.search(line.data)
            if self._discarding:
                if mark is not None and mark.group(2):
                    self._skip_left = int(mark.group(1))
                    continue
                self._reset()
                continue
            if not self._parts:
                self._start_command(line.data)
            if mark is None:
                self._parts += line.data
                data = bytes(self._parts)
                self._reset()
                return Framed(data)
            size = int(mark.group(1))
            sync = not mark.group(2)
            total = len(self._parts) + len(line.data) + 2 + size
            if size > self._literal_limit or total > self._limit:
                tag = parse_tag(bytes(self._parts) or line.data)
                limit = self._literal_limit
                self._reset()
                if not sync:
                    self._skip_left = size
                    self._discarding = True
                return LiteralTooBig(tag, sync, limit)
            self._parts += line.data
            self._parts += b"\r\n"
            self._literal_left = size
            if sync:
                return SendContinuation(size)

    def _start_command(self, first_line: bytes) -> None:
        m = _COMMAND_NAME.match(first_line)
        if m is not None and m.group(1).upper() == b"APPEND":
            self._literal_limit = self.max_literal
            self._limit = self.max_literal + self.max_line
        else:
            self._literal_limit = self.max_line
            self._limit = 4 * self.max_line

    def _reset(self) -> None:
        self._parts = bytearray()
        self._literal_left = 0
        self._discarding = False
