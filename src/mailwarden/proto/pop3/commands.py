"""POP3 command lines: keywords, arguments and their syntax (RFC 1939 §3, RFC 2449, 2595, 5034).

RFC 1939 §3: a command is a case-insensitive keyword of three or four
characters, possibly followed by arguments separated by single spaces, ended
by CRLF.  We accept runs of spaces between arguments (a harmless leniency) but
nothing else: a keyword we do not know is an unknown command, a wrong number
of arguments is a syntax error, and both count as bad commands.

``PASS`` is the exception: RFC 1939 §7 lets a password contain spaces, so its
argument is the rest of the line after the single space that follows the
keyword, taken as is.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from mailwarden.proto.pop3.replies import Pop3Error

__all__ = [
    "Command",
    "Verb",
    "check_syntax",
    "parse_command",
    "parse_count",
    "parse_msg_number",
]


class Verb(enum.Enum):
    """The commands this server knows."""

    USER = "USER"  # RFC 1939 §7
    PASS = "PASS"  # noqa: S105 - RFC 1939 §7, a keyword, not a secret
    AUTH = "AUTH"  # RFC 5034
    STLS = "STLS"  # RFC 2595 §4
    CAPA = "CAPA"  # RFC 2449 §5
    QUIT = "QUIT"  # RFC 1939 §5, §6
    STAT = "STAT"  # RFC 1939 §5
    LIST = "LIST"  # RFC 1939 §5
    RETR = "RETR"  # RFC 1939 §5
    DELE = "DELE"  # RFC 1939 §5
    NOOP = "NOOP"  # RFC 1939 §5
    RSET = "RSET"  # RFC 1939 §5
    TOP = "TOP"  # RFC 1939 §7
    UIDL = "UIDL"  # RFC 1939 §7


_VERBS: dict[bytes, Verb] = {v.value.encode(): v for v in Verb}

# (fewest, most) arguments, and the usage shown in the syntax error.
_SYNTAX: dict[Verb, tuple[int, int, str]] = {
    Verb.USER: (1, 1, "USER name"),
    Verb.PASS: (1, 1, "PASS password"),
    Verb.AUTH: (0, 2, "AUTH [mechanism [initial-response]]"),
    Verb.STLS: (0, 0, "STLS"),
    Verb.CAPA: (0, 0, "CAPA"),
    Verb.QUIT: (0, 0, "QUIT"),
    Verb.STAT: (0, 0, "STAT"),
    Verb.LIST: (0, 1, "LIST [msg]"),
    Verb.RETR: (1, 1, "RETR msg"),
    Verb.DELE: (1, 1, "DELE msg"),
    Verb.NOOP: (0, 0, "NOOP"),
    Verb.RSET: (0, 0, "RSET"),
    Verb.TOP: (2, 2, "TOP msg lines"),
    Verb.UIDL: (0, 1, "UIDL [msg]"),
}

# Message numbers and line counts longer than this cannot name anything real.
_MAX_DIGITS = 10


@dataclass(frozen=True, slots=True)
class Command:
    """One parsed command line.

    Attributes:
        verb: the command.
        args: the space-separated arguments (for PASS: the one password argument).
    """

    verb: Verb
    args: tuple[bytes, ...] = field(default=())

    @property
    def sensitive(self) -> bool:
        """Whether the line carries a secret and must never be logged."""
        return self.verb in (Verb.PASS, Verb.AUTH)


def parse_command(line: bytes) -> Command:
    """Split a command line (without CRLF) into keyword and arguments.

    Args:
        line: the octets the client sent.

    Returns:
        The command; its argument count is not checked yet (see :func:`check_syntax`).

    Raises:
        Pop3Error: "Unknown command" for an empty line or an unknown keyword.
    """
    keyword, _, rest = line.partition(b" ")
    verb = _VERBS.get(keyword.upper())
    if verb is None:
        raise Pop3Error("Unknown command")
    if verb is Verb.PASS:
        # RFC 1939 §7: the password may contain spaces; keep the rest as is.
        return Command(verb, (rest,) if rest else ())
    return Command(verb, tuple(rest.split()))


def check_syntax(command: Command) -> None:
    """Check the number of arguments.

    Raises:
        Pop3Error: a syntax error that quotes the command's usage.
    """
    fewest, most, usage = _SYNTAX[command.verb]
    if not fewest <= len(command.args) <= most:
        raise Pop3Error(f"Syntax error; usage: {usage}")


def parse_msg_number(arg: bytes, count: int) -> int:
    """Parse a message-number argument.

    Args:
        arg: the argument as sent.
        count: how many messages the maildrop holds.

    Returns:
        The number, between 1 and ``count``.

    Raises:
        Pop3Error: "Invalid message number" (a bad command) if ``arg`` is not
            decimal digits; "No such message" (not a bad command) if it is out
            of range.
    """
    if not arg.isdigit():
        raise Pop3Error("Invalid message number")
    if len(arg) > _MAX_DIGITS or not 1 <= int(arg) <= count:
        raise Pop3Error("No such message", bad=False)
    return int(arg)


def parse_count(arg: bytes) -> int:
    """Parse TOP's non-negative line count (RFC 1939 §7).

    Raises:
        Pop3Error: "Invalid line count" if ``arg`` is not decimal digits or is absurdly long.
    """
    if not arg.isdigit() or len(arg) > _MAX_DIGITS:
        raise Pop3Error("Invalid line count")
    return int(arg)
