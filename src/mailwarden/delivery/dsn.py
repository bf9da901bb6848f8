"""Delivery status notifications: what happened to a message after we said 250.

Theory of operation
-------------------
Once a message has been accepted, SMTP has no way left to tell the sender
about one recipient: the only channel is a new message to the envelope sender,
a delivery status notification (DSN).  This module builds them; it is pure
(bytes and values in, bytes out) and :mod:`mailwarden.delivery.inbound`
decides when to send one and where it goes.

**When** (RFC 3461 §4.1, :func:`notify_requested`): the NOTIFY parameter of
each recipient says which events the sender wants to hear about.  ``NEVER``
means none; a list names ``SUCCESS`` (``delivered``, ``relayed``,
``expanded``), ``FAILURE`` (``failed``) and ``DELAY`` (``delayed``); without
NOTIFY we report failures and delays (the ``FAILURE,DELAY`` default of §4.1).
A message from the null sender ``<>`` never gets a DSN (RFC 5321 §4.5.5,
RFC 3461 §6.1): that is how bounce loops are avoided, and the caller checks it.

**What** (RFC 3464, :func:`build_dsn`): a ``multipart/report;
report-type=delivery-status`` (RFC 6522) of three parts:

1. a short text for people;
2. ``message/delivery-status``: the per-message fields (``Original-Envelope-Id``
   from ENVID, ``Reporting-MTA``, ``Received-From-MTA``, ``Arrival-Date``)
   then one block per recipient (``Original-Recipient`` from ORCPT,
   ``Final-Recipient``, ``Action``, ``Status``, ``Last-Attempt-Date``);
3. the message itself (RET=FULL, ``message/rfc822``) or only its header
   section (RET=HDRS, ``text/rfc822-headers``).  Without RET a failure report
   returns the whole message up to ``max_returned`` octets and the headers
   beyond; a report with no failure in it returns only the headers (RFC 3461
   §4.3).  A BINARYMIME message is returned as headers only, so the report
   itself never needs a binary transport.

ENVID and ORCPT arrive as xtext (RFC 3461 §4) and are decoded for the report
(RFC 3464 §2.2.1, §2.3.1); a decoded value with control characters is kept
encoded, so a sender cannot write header lines into our report.

For mail that was sent with SMTPUTF8 the report uses the internationalised
types of RFC 6533 (``message/global-delivery-status``, ``message/global``,
``message/global-headers``) and ``utf-8`` address types for non-ASCII
addresses; :class:`Dsn` tells the caller whether the report itself needs
SMTPUTF8 or 8BITMIME to travel.
"""

from __future__ import annotations

import email.utils
import enum
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from mailwarden.mail.address import Address
from mailwarden.proto.smtp import Body, Envelope, Notify, RcptParams, Recipient, Ret

__all__ = [
    "MAX_RETURNED",
    "Action",
    "Dsn",
    "RecipientReport",
    "build_dsn",
    "decode_xtext",
    "notify_requested",
    "orcpt_for",
]

MAX_RETURNED = 1024 * 1024
"""Largest message returned whole in a failure report; larger ones return headers."""

_CRLF = "\r\n"
_UNSAFE = re.compile(r"[^A-Za-z0-9.\-_:\[\]]")
_XTEXT_HEX = re.compile(r"\+([0-9A-Fa-f]{2})")
_UTF8_HEX = re.compile(r"\\x\{([0-9A-Fa-f]{1,6})\}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class Action(enum.Enum):
    """The ``Action`` of one recipient's block (RFC 3464 §2.3.3)."""

    FAILED = "failed"
    """Not delivered and never will be."""
    DELAYED = "delayed"
    """Not delivered yet; still trying."""
    DELIVERED = "delivered"
    """Put into the recipient's mailbox."""
    RELAYED = "relayed"
    """Passed to a system that will not send DSNs itself."""
    EXPANDED = "expanded"
    """Delivered to an alias that sent it on to several addresses."""


# RFC 3461 §4.1: the NOTIFY keyword that asks for each kind of report.
_CONDITION = {
    Action.FAILED: Notify.FAILURE,
    Action.DELAYED: Notify.DELAY,
    Action.DELIVERED: Notify.SUCCESS,
    Action.RELAYED: Notify.SUCCESS,
    Action.EXPANDED: Notify.SUCCESS,
}


def notify_requested(params: RcptParams, action: Action) -> bool:
    """Whether the sender asked to hear about ``action`` for this recipient.

    RFC 3461 §4.1: NOTIFY=NEVER asks for nothing; an explicit list asks for
    exactly what it names; no NOTIFY means FAILURE,DELAY.
    """
    if params.notify is None:
        return action in (Action.FAILED, Action.DELAYED)
    return _CONDITION[action] in params.notify


@dataclass(frozen=True, slots=True)
class RecipientReport:
    """What happened to one envelope recipient.

    Attributes:
        recipient: the recipient as accepted at RCPT, with its DSN parameters.
        action: what happened.
        status: the RFC 3463 status code, e.g. ``5.2.2``.
        reason: a few words for people (``mailbox full``).
    """

    recipient: Recipient
    action: Action
    status: str
    reason: str


@dataclass(frozen=True, slots=True)
class Dsn:
    """A built report and what its transport needs.

    Attributes:
        raw: the whole message, CRLF line ends.
        smtputf8: it carries UTF-8 addresses or headers (needs SMTPUTF8).
        eight_bit: it has octets above 127 (needs at least 8BITMIME).
    """

    raw: bytes
    smtputf8: bool
    eight_bit: bool


def decode_xtext(text: str) -> str:
    """Decode RFC 3461 §4 xtext (``+XX``), and RFC 6533 ``\\x{...}`` escapes.

    Returns the text unchanged when decoding would produce control characters
    (a report must not carry line breaks the sender chose).
    """
    decoded = _XTEXT_HEX.sub(lambda m: chr(int(m.group(1), 16)), text)
    try:
        decoded = _UTF8_HEX.sub(lambda m: chr(int(m.group(1), 16)), decoded)
    except (ValueError, OverflowError):  # a code point beyond U+10FFFF
        return text
    return text if _CONTROL.search(decoded) else decoded


def orcpt_for(address: Address) -> str:
    """The ORCPT value naming ``address``, as a relaying MTA adds it (RFC 3461 §4.2).

    ``rfc822;`` with xtext for ASCII addresses; ``utf-8;`` with the
    ``\\x{HEX}`` escapes of RFC 6533 §3 otherwise.
    """
    text = str(address)
    if text.isascii():
        return "rfc822;" + "".join(
            c if "!" <= c <= "~" and c not in "+=" else f"+{ord(c):02X}" for c in text
        )
    return "utf-8;" + "".join(
        c if "!" <= c <= "~" and c not in "+=\\" else f"\\x{{{ord(c):X}}}" for c in text
    )


def _address_field(address: Address) -> str:
    """``rfc822; a@b`` or, for a non-ASCII address, ``utf-8; ...`` (RFC 6533 §3)."""
    text = str(address)
    return f"{'rfc822' if text.isascii() else 'utf-8'};{text}"


def _original_recipient(orcpt: str) -> str:
    addr_type, _, xtext = orcpt.partition(";")
    return f"{addr_type};{decode_xtext(xtext)}"


def _safe(text: str) -> str:
    return _UNSAFE.sub("?", text) or "unknown"


def _header_section(message: bytes) -> bytes:
    """The header fields of ``message``, each line CRLF-terminated, no blank line."""
    end = message.find(b"\r\n\r\n")
    return message if end < 0 else message[: end + 2]


def _human_text(hostname: str, reports: Sequence[RecipientReport], returned: str) -> str:
    failed = [r for r in reports if r.action is Action.FAILED]
    delayed = [r for r in reports if r.action is Action.DELAYED]
    done = [r for r in reports if r.action not in (Action.FAILED, Action.DELAYED)]
    lines = [f"This is the mail system at {hostname}.", ""]
    for group, intro in (
        (failed, "Your message could not be delivered to these recipients:"),
        (delayed, "Delivery of your message to these recipients is delayed:"),
        (done, "Your message was delivered to these recipients:"),
    ):
        if group:
            lines.append(intro)
            lines += [f"  <{r.recipient.address}>: {r.reason} ({r.status})" for r in group]
            lines.append("")
    lines.append(returned)
    return _CRLF.join(lines) + _CRLF


def _subject(reports: Sequence[RecipientReport]) -> str:
    actions = {r.action for r in reports}
    if actions == {Action.FAILED}:
        return "Undelivered Mail Returned to Sender"
    if actions == {Action.DELAYED}:
        return "Delayed Mail (still being retried)"
    if not actions & {Action.FAILED, Action.DELAYED}:
        return "Successful Mail Delivery Report"
    return "Delivery Status Notification"


def build_dsn(
    *,
    reporting_mta: str,
    envelope: Envelope,
    reports: Sequence[RecipientReport],
    original: bytes,
    arrival: datetime,
    now: datetime | None = None,
    message_id: str | None = None,
    max_returned: int = MAX_RETURNED,
) -> Dsn:
    """Build the report on ``reports`` for a message, addressed to its sender.

    Args:
        reporting_mta: our host name (``Reporting-MTA: dns; ...``).
        envelope: the transaction the message came in (sender, MAIL and RCPT
            parameters).
        reports: one per recipient to report on (at least one).
        original: the message as we accepted it (with our ``Received:``).
        arrival: when we accepted it.
        now: the time of the report (now, in UTC, if None).
        message_id: the report's Message-ID without brackets (a new one if None).
        max_returned: largest message returned whole.

    Returns:
        The report.

    Raises:
        ValueError: no reports, or the sender is the null path (no report is
            ever sent to ``<>``).
    """
    if not reports:
        raise ValueError("a DSN reports on at least one recipient")
    if envelope.sender is None:
        raise ValueError("no DSN is ever sent to the null sender")
    now = now or datetime.now(UTC)
    utf8 = envelope.params.smtputf8
    host = _safe(reporting_mta)
    msgid = message_id or f"{secrets.token_hex(12)}@{host}"
    boundary = f"=_dsn_{secrets.token_hex(12)}"
    while f"--{boundary}".encode() in original:  # cannot happen by chance; be sure
        boundary = f"=_dsn_{secrets.token_hex(12)}"

    # RFC 3461 §4.3: RET matters only when something failed; HDRS otherwise.
    ret = envelope.params.ret
    any_failed = any(r.action is Action.FAILED for r in reports)
    full = (
        any_failed
        and ret is not Ret.HDRS
        and envelope.params.body is not Body.BINARYMIME
        and len(original) <= max_returned
    )
    if full:
        returned_type = "message/global" if utf8 else "message/rfc822"
        returned = original
        note = "Your message is attached."
    else:
        returned_type = "message/global-headers" if utf8 else "text/rfc822-headers"
        returned = _header_section(original)
        note = "The headers of your message are attached."
        if any_failed and ret is Ret.FULL:
            note = "Your message was too large to return; its headers are attached."
    if not returned.endswith(b"\r\n"):
        returned += b"\r\n"  # the CRLF before a boundary belongs to it (RFC 2046 §5.1.1)

    # RFC 3464 §2.2: per-message fields, then a blank line before each recipient.
    status_lines = []
    if envelope.params.envid is not None:
        status_lines.append(f"Original-Envelope-Id: {decode_xtext(envelope.params.envid)}")
    status_lines += [
        f"Reporting-MTA: dns;{host}",
        f"Received-From-MTA: dns;{_safe(envelope.helo)}",
        f"Arrival-Date: {email.utils.format_datetime(arrival)}",
    ]
    for report in reports:
        rc = report.recipient
        status_lines.append("")
        if rc.params.orcpt is not None:
            status_lines.append(f"Original-Recipient: {_original_recipient(rc.params.orcpt)}")
        status_lines += [
            f"Final-Recipient: {_address_field(rc.address)}",
            f"Action: {report.action.value}",
            f"Status: {report.status}",
        ]
        if report.action in (Action.FAILED, Action.DELAYED):
            status_lines.append(f"Last-Attempt-Date: {email.utils.format_datetime(now)}")
    status = _CRLF.join(status_lines) + _CRLF
    status_type = "message/global-delivery-status" if utf8 else "message/delivery-status"
    text = _human_text(host, reports, note)
    sender = str(envelope.sender)

    def cte(part: str) -> str:
        return "7bit" if part.isascii() else "8bit"

    head = [
        f"From: Mail Delivery System <MAILER-DAEMON@{host}>",
        f"To: <{sender}>",
        f"Subject: {_subject(reports)}",
        f"Date: {email.utils.format_datetime(now)}",
        f"Message-ID: <{msgid}>",
        "Auto-Submitted: auto-replied",  # RFC 3834 §5
        "MIME-Version: 1.0",
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"',
        "",
        "This is a MIME-encapsulated delivery status notification (RFC 3464).",
        "",
        f"--{boundary}",
        "Content-Description: Notification",
        "Content-Type: text/plain; charset=utf-8",
        f"Content-Transfer-Encoding: {cte(text)}",
        "",
    ]
    parts = [
        _CRLF.join(head).encode("utf-8") + _CRLF.encode(),
        text.encode("utf-8"),
        _CRLF.join(
            [
                f"--{boundary}",
                "Content-Description: Delivery report",
                f"Content-Type: {status_type}",
                f"Content-Transfer-Encoding: {cte(status)}",
                "",
                "",
            ]
        ).encode(),
        status.encode("utf-8"),
        _CRLF.join(
            [
                f"--{boundary}",
                "Content-Description: Undelivered message"
                if any_failed
                else "Content-Description: Message headers",
                f"Content-Type: {returned_type}",
                f"Content-Transfer-Encoding: {'7bit' if returned.isascii() else '8bit'}",
                "",
                "",
            ]
        ).encode(),
        returned,
        f"{_CRLF}--{boundary}--{_CRLF}".encode(),
    ]
    raw = b"".join(parts)
    return Dsn(raw=raw, smtputf8=utf8 or not sender.isascii(), eight_bit=not raw.isascii())
