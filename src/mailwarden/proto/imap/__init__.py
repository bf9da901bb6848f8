"""Sans-I/O IMAP server core (RFC 3501, RFC 9051 and the extensions clients use).

Modules: :mod:`.framing` (lines and literals), :mod:`.lexer`, :mod:`.parser`
and :mod:`.parse_selected` (octets -> :mod:`.commands`), :mod:`.render`
(commands -> octets), :mod:`.responses` (server responses and value
rendering), :mod:`.mutf7` (mailbox names), :mod:`.session` (the state machine,
with :mod:`.events`), and the pure evaluators used by the server:
:mod:`.fetch`, :mod:`.search`, :mod:`.sortthread` and :mod:`.mailbox`.
"""

from mailwarden.proto.imap import commands
from mailwarden.proto.imap.errors import BadCommand, ImapError
from mailwarden.proto.imap.events import (
    ConnectionClosed,
    Event,
    IdleDone,
    NeedData,
    SessionConfig,
    StartTlsRequested,
    State,
)
from mailwarden.proto.imap.mutf7 import MUtf7Error, decode_mutf7, encode_mutf7
from mailwarden.proto.imap.parser import parse_command
from mailwarden.proto.imap.render import render_command
from mailwarden.proto.imap.responses import (
    Continuation,
    RawLines,
    Response,
    Tagged,
    Untagged,
    UntaggedStatus,
)
from mailwarden.proto.imap.session import ImapSession

__all__ = [
    "BadCommand",
    "ConnectionClosed",
    "Continuation",
    "Event",
    "IdleDone",
    "ImapError",
    "ImapSession",
    "MUtf7Error",
    "NeedData",
    "RawLines",
    "Response",
    "SessionConfig",
    "StartTlsRequested",
    "State",
    "Tagged",
    "Untagged",
    "UntaggedStatus",
    "commands",
    "decode_mutf7",
    "encode_mutf7",
    "parse_command",
    "render_command",
]
