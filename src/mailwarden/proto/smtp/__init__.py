"""The SMTP protocol core: sans-I/O server sessions for inbound mail and submission.

See :mod:`mailwarden.proto.smtp.session` for the theory of operation and for
why this is our own core rather than aiosmtpd.
"""

from mailwarden.proto.smtp.commands import (
    Body,
    MailFrom,
    MailParams,
    Notify,
    RcptParams,
    RcptTo,
    Ret,
    parse_command,
    postmaster_address,
)
from mailwarden.proto.smtp.data import BodyFault
from mailwarden.proto.smtp.events import (
    Auth,
    Closed,
    CloseReason,
    Ehlo,
    Envelope,
    Event,
    Helo,
    Message,
    MessageRefused,
    NeedData,
    Quit,
    Recipient,
    Rset,
    StartTls,
)
from mailwarden.proto.smtp.replies import Reply, SmtpError, parse_reply
from mailwarden.proto.smtp.session import Mode, SessionConfig, SmtpSession, State

__all__ = [
    "Auth",
    "Body",
    "BodyFault",
    "CloseReason",
    "Closed",
    "Ehlo",
    "Envelope",
    "Event",
    "Helo",
    "MailFrom",
    "MailParams",
    "Message",
    "MessageRefused",
    "Mode",
    "NeedData",
    "Notify",
    "Quit",
    "RcptParams",
    "RcptTo",
    "Recipient",
    "Reply",
    "Ret",
    "Rset",
    "SessionConfig",
    "SmtpError",
    "SmtpSession",
    "StartTls",
    "State",
    "parse_command",
    "parse_reply",
    "postmaster_address",
]
