"""Sans-I/O POP3 server core (RFC 1939, 2449, 2595, 3206, 5034).

The shell in :mod:`mailwarden.servers.pop3` feeds a :class:`Pop3Session` the
client's bytes, answers its events and writes what it queues; see
:mod:`mailwarden.proto.pop3.session` for the theory of operation.
"""

from mailwarden.proto.pop3.events import (
    Answer,
    AuthAccepted,
    Authenticate,
    AuthRejected,
    Closed,
    CloseReason,
    Event,
    MaildropEntry,
    MessageContent,
    MessageUnavailable,
    NeedData,
    Retrieve,
    StartTls,
    Update,
    UpdateDone,
    UpdateFailed,
)
from mailwarden.proto.pop3.replies import Pop3Error, RespCode, dot_stuff, top_of
from mailwarden.proto.pop3.session import NEED_DATA, Pop3Session, Pop3Settings, State, TraceLine

__all__ = [
    "NEED_DATA",
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
    "Pop3Error",
    "Pop3Session",
    "Pop3Settings",
    "RespCode",
    "Retrieve",
    "StartTls",
    "State",
    "TraceLine",
    "Update",
    "UpdateDone",
    "UpdateFailed",
    "dot_stuff",
    "top_of",
]
