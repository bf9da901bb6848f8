"""The IMAP session's states, configuration and events (see :mod:`.session`)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from mailwarden.proto.imap import commands as c

__all__ = [
    "ConnectionClosed",
    "Event",
    "IdleDone",
    "NeedData",
    "SessionConfig",
    "StartTlsRequested",
    "State",
]


class State(Enum):
    """Connection states of RFC 3501 §3."""

    NOT_AUTHENTICATED = "not authenticated"
    """Before a successful LOGIN/AUTHENTICATE (§3.1)."""
    AUTHENTICATED = "authenticated"
    """Logged in, no mailbox selected (§3.2)."""
    SELECTED = "selected"
    """A mailbox is selected (§3.3)."""
    LOGOUT = "logout"
    """BYE sent; the connection is to be closed (§3.4)."""


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """The session's limits and switches (from the IMAP config slice).

    Attributes:
        max_line: longest command line in octets (a security limit).
        max_literal: largest APPEND literal, advertised as APPENDLIMIT (RFC 7889).
        max_bad_commands: BAD answers before ``BYE``.
        tls_available: STARTTLS can be offered on this connection.
        allow_plaintext_login: LOGIN/AUTHENTICATE allowed without TLS (loopback).
        imap4rev2: advertise IMAP4rev2 (RFC 9051) beside IMAP4rev1; a client
            turns its rules on with ``ENABLE IMAP4rev2``.
        server_id: what ID (RFC 2971) reports about us.
    """

    max_line: int = 65536
    max_literal: int = 64 * 1024 * 1024
    max_bad_commands: int = 20
    tls_available: bool = True
    allow_plaintext_login: bool = False
    imap4rev2: bool = True
    server_id: tuple[tuple[str, str], ...] = (("name", "Mailwarden"),)


@dataclass(frozen=True, slots=True)
class NeedData:
    """Feed more octets (or the application still owes a tagged answer)."""


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The session is over (LOGOUT, BYE, or the peer closed): flush, then close."""

    reason: str = ""


@dataclass(frozen=True, slots=True)
class StartTlsRequested:
    """``OK`` to STARTTLS is queued: flush it, run the TLS handshake, then call
    :meth:`ImapSession.tls_established`."""


@dataclass(frozen=True, slots=True)
class IdleDone:
    """The client ended IDLE (RFC 2177).

    Attributes:
        tag: the IDLE command's tag.
        answered: the session already answered (``BAD``: the line was not DONE);
            otherwise the application sends its updates and the tagged ``OK``.
    """

    tag: str
    answered: bool = False


Event = c.Command | NeedData | ConnectionClosed | StartTlsRequested | IdleDone
