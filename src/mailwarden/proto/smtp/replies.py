"""SMTP replies: the value type, its wire form, and every reply the core sends.

A reply is a three-digit code (RFC 5321 §4.2), an optional enhanced status code
(RFC 3463, announced with ENHANCEDSTATUSCODES, RFC 2034) and one or more text
lines.  Constants are named after their code (``R250_OK``, ``R503_BAD_SEQUENCE``)
so that transcripts and code grep alike.  Reply texts never carry exception
text or internals: they are fixed strings chosen here or by the application.

:class:`SmtpError` is the protocol error of the SMTP core: it *is* the wire
outcome (a reply, and whether the connection closes after it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "R214_HELP",
    "R220_READY_TLS",
    "R221_BYE",
    "R235_AUTH_OK",
    "R250_DATA_OK",
    "R250_MAIL_OK",
    "R250_OK",
    "R250_RCPT_OK",
    "R252_CANNOT_VRFY",
    "R354_START_DATA",
    "R421_SHUTTING_DOWN",
    "R421_TIMEOUT",
    "R421_TOO_MANY_ERRORS",
    "R451_LOCAL_ERROR",
    "R452_QUOTA",
    "R452_TOO_MANY_RECIPIENTS",
    "R454_AUTH_UNAVAILABLE",
    "R500_LINE_TOO_LONG",
    "R500_UNRECOGNISED",
    "R501_BAD_ADDRESS_RCPT",
    "R501_BAD_ADDRESS_SENDER",
    "R501_BAD_BASE64",
    "R501_NO_ARGUMENTS",
    "R501_SYNTAX",
    "R501_SYNTAX_PARAMS",
    "R501_UNRECOGNISED_PARAM_VALUE",
    "R502_NOT_IMPLEMENTED",
    "R503_AUTH_ALREADY",
    "R503_AUTH_IN_TRANSACTION",
    "R503_BAD_SEQUENCE",
    "R503_BDAT_AFTER_FAIL",
    "R503_BINARYMIME_DATA",
    "R503_NEED_EHLO",
    "R503_NEED_MAIL",
    "R503_NEED_RCPT",
    "R503_NESTED_MAIL",
    "R503_TLS_ACTIVE",
    "R504_UNSUPPORTED_MECHANISM",
    "R530_AUTH_REQUIRED",
    "R530_TLS_REQUIRED",
    "R535_AUTH_FAILED",
    "R538_ENCRYPTION_REQUIRED",
    "R550_BAD_LINE_ENDINGS",
    "R550_NO_SUCH_USER",
    "R550_RELAY_DENIED",
    "R552_QUOTA",
    "R552_TOO_BIG",
    "R553_NONASCII_ADDRESS",
    "R553_SENDER_NOT_OWNED",
    "R554_NO_VALID_RECIPIENTS",
    "R554_TOO_MANY_HOPS",
    "R555_UNSUPPORTED_PARAM",
    "Reply",
    "SmtpError",
    "parse_reply",
]

_ENHANCED_RE = re.compile(r"[245]\.\d{1,3}\.\d{1,3}")


@dataclass(frozen=True, slots=True)
class Reply:
    """One SMTP reply.

    Attributes:
        code: the three-digit reply code (RFC 5321 §4.2).
        enhanced: the RFC 3463 status code such as ``"5.5.1"``, or ``""``
            for replies that carry none (greeting, EHLO, 334 challenges).
        lines: the text lines; a multi-line reply has several (RFC 5321 §4.2.1).
    """

    code: int
    enhanced: str
    lines: tuple[str, ...]

    @classmethod
    def of(cls, code: int, enhanced: str, *lines: str) -> Reply:
        """Build a reply from its parts: ``Reply.of(250, "2.0.0", "OK")``."""
        return cls(code, enhanced, lines or ("",))

    def __post_init__(self) -> None:
        if not 200 <= self.code <= 599:
            raise ValueError(f"reply code {self.code} out of range")
        if self.enhanced and (
            not _ENHANCED_RE.fullmatch(self.enhanced) or self.enhanced[0] != str(self.code)[0]
        ):
            raise ValueError(f"bad enhanced status code {self.enhanced!r} for {self.code}")
        if not self.lines:
            raise ValueError("a reply has at least one line")
        for line in self.lines:
            if "\r" in line or "\n" in line:
                raise ValueError("reply text must not contain CR or LF")

    @property
    def is_positive(self) -> bool:
        """2xx or 3xx: the command was accepted (or data may follow)."""
        return self.code < 400

    @property
    def is_error(self) -> bool:
        """4xx or 5xx."""
        return self.code >= 400

    def render(self) -> bytes:
        """The reply on the wire: ``code[-| ]enhanced text CRLF`` per line (RFC 5321 §4.2.1).

        Text is sent as UTF-8; it is ASCII except where the application chooses
        otherwise for an SMTPUTF8 client (RFC 6531 §3.7.4.2).
        """
        out = []
        last = len(self.lines) - 1
        for i, text in enumerate(self.lines):
            sep = " " if i == last else "-"
            parts = [p for p in (self.enhanced, text) if p]
            body = " ".join(parts)
            out.append(f"{self.code}{sep}{body}\r\n")
        return "".join(out).encode("utf-8")

    def with_text(self, *lines: str) -> Reply:
        """The same code and status with other text."""
        return Reply(self.code, self.enhanced, lines or ("",))

    def __str__(self) -> str:
        return self.render().decode("utf-8", "replace").rstrip("\r\n")


_REPLY_LINE_RE = re.compile(r"([2-5]\d\d)([ -])(?:([245]\.\d{1,3}\.\d{1,3})(?: |$))?(.*)")


def parse_reply(data: bytes) -> Reply:
    """Parse one complete (possibly multi-line) reply, as a client would.

    Args:
        data: the reply's octets, every line ending in CRLF.

    Returns:
        The reply.  Each line's enhanced code is taken from the first line.

    Raises:
        ValueError: the octets are not exactly one well-formed reply.
    """
    text = data.decode("utf-8")
    if not text.endswith("\r\n"):
        raise ValueError("reply does not end with CRLF")
    raw_lines = text[:-2].split("\r\n")
    code = None
    enhanced = ""
    lines: list[str] = []
    for i, raw in enumerate(raw_lines):
        m = _REPLY_LINE_RE.fullmatch(raw)
        if m is None:
            raise ValueError(f"malformed reply line {raw!r}")
        this_code = int(m.group(1))
        if code is None:
            code = this_code
            enhanced = m.group(3) or ""
        elif this_code != code:
            raise ValueError("reply code changes between lines")
        last = m.group(2) == " "
        if last != (i == len(raw_lines) - 1):
            raise ValueError("continuation marker out of place")
        this_enhanced = m.group(3) or ""
        if this_enhanced != enhanced:
            raise ValueError("enhanced code changes between lines")
        lines.append(m.group(4))
    assert code is not None
    return Reply(code, enhanced, tuple(lines))


class SmtpError(Exception):
    """A protocol error of the SMTP core; the reply is what the peer gets.

    Attributes:
        reply: the reply to send.
        close: close the connection after sending it.
    """

    def __init__(self, reply: Reply, close: bool = False) -> None:
        super().__init__(str(reply))
        self.reply = reply
        self.close = close


# --- positive completions --------------------------------------------------
R214_HELP = Reply.of(214, "2.0.0", "See RFC 5321")
R220_READY_TLS = Reply.of(220, "2.0.0", "Ready to start TLS")
R221_BYE = Reply.of(221, "2.0.0", "Bye")
R235_AUTH_OK = Reply.of(235, "2.7.0", "Authentication successful")
R250_OK = Reply.of(250, "2.0.0", "OK")
R250_MAIL_OK = Reply.of(250, "2.1.0", "Sender OK")
R250_RCPT_OK = Reply.of(250, "2.1.5", "Recipient OK")
R250_DATA_OK = Reply.of(250, "2.0.0", "Message accepted")
# RFC 5321 §3.5.3: 252 when the server will not verify but will accept mail.
R252_CANNOT_VRFY = Reply.of(252, "2.5.0", "Cannot VRFY user, but will accept message")
R354_START_DATA = Reply.of(354, "", "End data with <CR><LF>.<CR><LF>")

# --- transient failures ------------------------------------------------------
R421_SHUTTING_DOWN = Reply.of(421, "4.3.2", "Service shutting down, try again later")
R421_TIMEOUT = Reply.of(421, "4.4.2", "Timeout, closing connection")
R421_TOO_MANY_ERRORS = Reply.of(421, "4.7.0", "Too many errors, closing connection")
R451_LOCAL_ERROR = Reply.of(451, "4.3.0", "Local error in processing, try again later")
# RFC 3463 §3.3: X.2.2 mailbox full; 452 at RCPT is the transient form.
R452_QUOTA = Reply.of(452, "4.2.2", "Mailbox full")
# RFC 5321 §4.5.3.1.10: too many recipients is 452, the client retries the rest.
R452_TOO_MANY_RECIPIENTS = Reply.of(452, "4.5.3", "Too many recipients")
R454_AUTH_UNAVAILABLE = Reply.of(454, "4.7.0", "Temporary authentication failure")

# --- permanent failures ------------------------------------------------------
R500_UNRECOGNISED = Reply.of(500, "5.5.1", "Command unrecognized")
R500_LINE_TOO_LONG = Reply.of(500, "5.5.2", "Line too long")
R501_SYNTAX = Reply.of(501, "5.5.2", "Syntax error")
R501_SYNTAX_PARAMS = Reply.of(501, "5.5.4", "Syntax error in parameters")
R501_NO_ARGUMENTS = Reply.of(501, "5.5.4", "No parameters allowed")
R501_UNRECOGNISED_PARAM_VALUE = Reply.of(501, "5.5.4", "Invalid parameter value")
R501_BAD_ADDRESS_SENDER = Reply.of(501, "5.1.7", "Bad sender address syntax")
R501_BAD_ADDRESS_RCPT = Reply.of(501, "5.1.3", "Bad recipient address syntax")
R501_BAD_BASE64 = Reply.of(501, "5.5.2", "Cannot decode response")
R502_NOT_IMPLEMENTED = Reply.of(502, "5.5.1", "Command not implemented")
R503_BAD_SEQUENCE = Reply.of(503, "5.5.1", "Bad sequence of commands")
R503_NEED_EHLO = Reply.of(503, "5.5.1", "Send EHLO or HELO first")
R503_NEED_MAIL = Reply.of(503, "5.5.1", "Send MAIL first")
R503_NEED_RCPT = Reply.of(503, "5.5.1", "Send RCPT first")
R503_NESTED_MAIL = Reply.of(503, "5.5.1", "Sender already specified")
R503_AUTH_ALREADY = Reply.of(503, "5.5.1", "Already authenticated")
R503_AUTH_IN_TRANSACTION = Reply.of(503, "5.5.1", "AUTH not allowed during a transaction")
R503_TLS_ACTIVE = Reply.of(503, "5.5.1", "TLS already active")
R503_BDAT_AFTER_FAIL = Reply.of(503, "5.5.1", "No transaction in progress, chunk discarded")
# RFC 3030 §3: BINARYMIME content is only transferable with BDAT.
R503_BINARYMIME_DATA = Reply.of(503, "5.5.1", "BODY=BINARYMIME requires BDAT")
R504_UNSUPPORTED_MECHANISM = Reply.of(504, "5.5.4", "Unrecognized authentication type")
# RFC 4954 §6 and RFC 3207 §4.
R530_AUTH_REQUIRED = Reply.of(530, "5.7.0", "Authentication required")
R530_TLS_REQUIRED = Reply.of(530, "5.7.0", "Must issue a STARTTLS command first")
R535_AUTH_FAILED = Reply.of(535, "5.7.8", "Authentication credentials invalid")
R538_ENCRYPTION_REQUIRED = Reply.of(
    538, "5.7.11", "Encryption required for requested authentication mechanism"
)
# RFC 5321 §2.3.8: bare CR and LF must not appear in message data.  The
# message is refused whole: accepting it (even "fixed") is what SMTP smuggling
# exploits when the next hop reads the line ends differently.
R550_BAD_LINE_ENDINGS = Reply.of(
    550, "5.6.0", "Message refused: bare CR or LF in data; lines must end with CRLF"
)
R550_NO_SUCH_USER = Reply.of(550, "5.1.1", "No such user here")
R550_RELAY_DENIED = Reply.of(550, "5.7.1", "Relaying denied")
R552_TOO_BIG = Reply.of(552, "5.3.4", "Message size exceeds fixed maximum message size")
R552_QUOTA = Reply.of(552, "5.2.2", "Mailbox full")
# RFC 6531 §3.4 and RFC 5248: X.6.7 non-ASCII address without SMTPUTF8.
R553_NONASCII_ADDRESS = Reply.of(553, "5.6.7", "Non-ASCII addresses require the SMTPUTF8 parameter")
R553_SENDER_NOT_OWNED = Reply.of(553, "5.7.1", "Sender address not owned by you")
# RFC 2920 §3.1: DATA after every RCPT failed.
R554_NO_VALID_RECIPIENTS = Reply.of(554, "5.5.1", "No valid recipients")
# RFC 5321 §6.3 and RFC 3463 X.4.6: too many Received: fields, a mail loop.
R554_TOO_MANY_HOPS = Reply.of(554, "5.4.6", "Too many hops, mail loop detected")
# RFC 5321 §4.1.1.11: parameters not recognised.
R555_UNSUPPORTED_PARAM = Reply.of(555, "5.5.4", "Unsupported parameter")
