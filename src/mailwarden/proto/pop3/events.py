"""What the POP3 core asks of the application, and what the application answers.

The core answers everything it can decide alone (syntax, sequencing, STAT,
LIST, UIDL, DELE, RSET, NOOP, CAPA).  It stops and returns an *event* only for
what needs outside knowledge; the application then calls
:meth:`~mailwarden.proto.pop3.session.Pop3Session.send` with the matching
*answer* before asking for the next event:

=====================  ==================================================
event                  answer
=====================  ==================================================
:class:`Authenticate`  :class:`AuthAccepted` or :class:`AuthRejected`
:class:`Retrieve`      :class:`MessageContent` or :class:`MessageUnavailable`
:class:`Update`        :class:`UpdateDone` or :class:`UpdateFailed`
:class:`StartTls`      none: do the handshake, then call ``tls_started()``
:class:`Closed`        none: flush ``data_to_send()`` and close
=====================  ==================================================
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from mailwarden.proto.pop3.replies import RespCode

__all__ = [
    "Answer",
    "AuthAccepted",
    "AuthRejected",
    "Authenticate",
    "CloseReason",
    "Closed",
    "Event",
    "MaildropEntry",
    "MessageContent",
    "MessageUnavailable",
    "NeedData",
    "Retrieve",
    "StartTls",
    "Update",
    "UpdateDone",
    "UpdateFailed",
]


# RFC 1939 §7: a unique-id is 1 to 70 characters in the range 0x21 to 0x7E.
_UIDL = re.compile(r"[\x21-\x7e]{1,70}")


@dataclass(frozen=True, slots=True)
class MaildropEntry:
    """One message of the maildrop as the application lists it at login.

    Attributes:
        uidl: the unique-id listing (RFC 1939 §7: 1 to 70 characters in
            0x21..0x7E), stable across sessions.
        size: the exact size in octets as RETR will send it (CRLF line
            endings, before byte-stuffing).
    """

    uidl: str
    size: int

    def __post_init__(self) -> None:
        if not _UIDL.fullmatch(self.uidl):
            raise ValueError("a UIDL is 1 to 70 printable ASCII characters (RFC 1939 §7)")
        if self.size < 0:
            raise ValueError("a message size is not negative")


# --- events -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NeedData:
    """Nothing to do until more bytes arrive (``receive_data``)."""


@dataclass(frozen=True, slots=True)
class Authenticate:
    """The client presented credentials (USER/PASS or AUTH); check them and open the maildrop.

    Attributes:
        username: the login name (authcid), as sent.
        password: the password, as sent.  Never log it.
        mechanism: ``"USER"`` for USER/PASS, else the SASL mechanism name.
    """

    username: str
    password: str = field(repr=False)
    mechanism: str


@dataclass(frozen=True, slots=True)
class Retrieve:
    """RETR or TOP: the application supplies the message's octets.

    Attributes:
        number: the message number (1-based, as in the session's listing).
        entry: the listing entry of that message.
        lines: for TOP, the number of body lines wanted (the core cuts the
            message itself; this is a hint to read less); None for RETR.
    """

    number: int
    entry: MaildropEntry
    lines: int | None = None


@dataclass(frozen=True, slots=True)
class Update:
    """QUIT in the TRANSACTION state (RFC 1939 §6): remove the deleted messages.

    Emitted even when nothing was deleted, so the application always learns
    that the session ended cleanly.

    Attributes:
        deleted: the message numbers marked deleted, ascending.
        entries: their listing entries, in the same order.
    """

    deleted: tuple[int, ...]
    entries: tuple[MaildropEntry, ...]


@dataclass(frozen=True, slots=True)
class StartTls:
    """STLS was accepted (RFC 2595 §4): send ``data_to_send()``, then do the TLS handshake."""


class CloseReason(enum.Enum):
    """Why the session ended."""

    QUIT = "quit"
    """The client sent QUIT (in AUTHORIZATION, or after UPDATE)."""
    EOF = "eof"
    """The client closed the connection without QUIT: no UPDATE happened."""
    TOO_MANY_ERRORS = "too-many-errors"
    """The bad-command limit was reached."""
    AUTH_FAILURES = "auth-failures"
    """Too many failed logins in one session."""
    TIMEOUT = "timeout"
    """The server's idle timer fired (``close_idle``)."""
    SHUTDOWN = "shutdown"
    """The server is shutting down (``shutdown``)."""


@dataclass(frozen=True, slots=True)
class Closed:
    """The session is over: flush ``data_to_send()`` and close the connection."""

    reason: CloseReason


Event = Authenticate | Retrieve | Update | StartTls | Closed


# --- answers ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuthAccepted:
    """The credentials are good and the maildrop is locked for this session.

    Attributes:
        maildrop: the messages, in the order that defines their numbers.
    """

    maildrop: Sequence[MaildropEntry]


@dataclass(frozen=True, slots=True)
class AuthRejected:
    """The login failed.

    Attributes:
        code: ``AUTH`` for bad credentials, ``IN_USE`` for a locked maildrop,
            ``SYS_TEMP`` for "try again later", ``SYS_PERM`` for a disabled account.
        text: the human text; None for the core's default text for ``code``.
    """

    code: RespCode = RespCode.AUTH
    text: str | None = None


@dataclass(frozen=True, slots=True)
class MessageContent:
    """The whole message for a :class:`Retrieve` (the core cuts it for TOP)."""

    data: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class MessageUnavailable:
    """The message could not be read (e.g. expunged by IMAP meanwhile)."""

    code: RespCode | None = None
    text: str = "Message is no longer available"


@dataclass(frozen=True, slots=True)
class UpdateDone:
    """Every deleted message was removed."""


@dataclass(frozen=True, slots=True)
class UpdateFailed:
    """Removing the deleted messages failed.

    RFC 1939 §6 answers QUIT then with ``-ERR some deleted messages not removed``.
    """

    code: RespCode | None = RespCode.SYS_TEMP


Answer = (
    AuthAccepted | AuthRejected | MessageContent | MessageUnavailable | UpdateDone | UpdateFailed
)
