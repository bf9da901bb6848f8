"""What the SMTP core tells the application.

:meth:`SmtpSession.next_event` returns one of these.  Some only inform (the core
has already queued the reply); the rest wait for the application's answer
through :meth:`SmtpSession.send` because answering needs outside knowledge:

========================  =========================================  ===========
event                     meaning                                    app replies
========================  =========================================  ===========
:class:`Ehlo`/`Helo`      client greeted (reply already queued)      no
:class:`StartTls`         220 queued: flush, then start TLS          no
:class:`Auth`             credentials to verify                      yes
:class:`MailFrom`         a sender to accept or refuse               yes
:class:`RcptTo`           a recipient to accept or refuse            yes
:class:`Message`          complete content with its envelope         yes
:class:`MessageRefused`   the core refused the content itself        no
:class:`Rset`             transaction aborted                        no
:class:`Quit`             221 queued: flush, then close              no
:class:`Closed`           the session is over: flush, then close     no
:class:`NeedData`         feed more octets                           no
========================  =========================================  ===========
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from mailwarden.mail.address import Address
from mailwarden.proto.sasl import SaslCredentials
from mailwarden.proto.smtp.commands import (
    Ehlo,
    Helo,
    MailFrom,
    MailParams,
    Quit,
    RcptParams,
    RcptTo,
    Rset,
    StartTls,
)
from mailwarden.proto.smtp.data import BodyFault
from mailwarden.proto.smtp.replies import Reply

__all__ = [
    "Auth",
    "CloseReason",
    "Closed",
    "Ehlo",
    "Envelope",
    "Event",
    "Helo",
    "MailFrom",
    "Message",
    "MessageRefused",
    "NeedData",
    "Quit",
    "RcptTo",
    "Recipient",
    "Rset",
    "StartTls",
]


@dataclass(frozen=True, slots=True)
class Auth:
    """The client finished a SASL exchange; verify its credentials.

    Reply ``235`` (the session becomes authenticated as ``credentials.authcid``),
    ``535 5.7.8`` or ``454 4.7.0``.  ``repr`` never shows the password.
    """

    credentials: SaslCredentials


@dataclass(frozen=True, slots=True)
class Recipient:
    """One accepted recipient with its DSN parameters."""

    address: Address
    params: RcptParams = field(default_factory=RcptParams)


@dataclass(frozen=True, slots=True)
class Envelope:
    """Everything the session knows about a message besides its content.

    Attributes:
        helo: the name from EHLO/HELO.
        esmtp: the client used EHLO.
        tls: the session was encrypted when the message arrived.
        authenticated: the login name, or None.
        sender: the reverse path (None for ``<>``).
        params: the MAIL FROM parameters (SIZE, BODY, SMTPUTF8, RET, ENVID).
        recipients: the accepted recipients, in order.
        chunked: the content came with BDAT rather than DATA.
    """

    helo: str
    esmtp: bool
    tls: bool
    authenticated: str | None
    sender: Address | None
    params: MailParams
    recipients: tuple[Recipient, ...]
    chunked: bool = False


@dataclass(frozen=True, slots=True)
class Message:
    """A complete message: store it, then reply (``250`` only after commit)."""

    envelope: Envelope
    data: bytes = b""

    def __repr__(self) -> str:  # never put a body into a log line
        return f"Message(envelope={self.envelope!r}, data=<{len(self.data)} octets>)"


@dataclass(frozen=True, slots=True)
class MessageRefused:
    """The core refused a message's content (reply already queued).

    A :attr:`BodyFault.BARE_LINE_END` refusal is an abuse signal (SMTP
    smuggling probes look like this) and worth a warning in the log.
    """

    fault: BodyFault
    reply: Reply
    size: int


class CloseReason(enum.Enum):
    """Why the session ended."""

    QUIT = "quit"
    """The client sent QUIT."""
    PEER_EOF = "peer closed"
    """The client closed its side (mid-message content is dropped)."""
    TOO_MANY_ERRORS = "too many errors"
    """The error limit was reached; 421 queued."""
    ABORTED = "aborted"
    """The application called :meth:`SmtpSession.abort` (timeout, shutdown)."""


@dataclass(frozen=True, slots=True)
class Closed:
    """The session is over: send what is queued, then close the connection."""

    reason: CloseReason


@dataclass(frozen=True, slots=True)
class NeedData:
    """No complete input: call :meth:`SmtpSession.receive_data` and ask again."""


Event = (
    Ehlo
    | Helo
    | StartTls
    | Auth
    | MailFrom
    | RcptTo
    | Message
    | MessageRefused
    | Rset
    | Quit
    | Closed
)
