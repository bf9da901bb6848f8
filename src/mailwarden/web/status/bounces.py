"""Hard bounces that arrive later, as delivery status notifications (RFC 3464).

A relay that refuses a recipient at once gives a 5xx reply, and ``notify``
quarantines the address on the spot.  More often the relay accepts the notice
and only later learns that the recipient's server refuses it; it then mails a
delivery status notification to the envelope sender.  To catch those, point
the relay's ``return_path`` at a mailbox and describe that mailbox in
``[status.bounces]``; every ``interval`` the scheduler fetches it over POP3
and, for each DSN, quarantines every subscriber whose per-recipient block says
``Action: failed`` with a permanent ``Status: 5.x.x``.

Only those count: ``delayed`` notices and 4.x.x statuses mean the relay is
still trying, and a mail that is not a DSN (an auto-reply, spam) proves
nothing.  Every fetched message is deleted, so the mailbox does not grow; what
was found is logged and each quarantine is written to the audit log.

The parser is pure (bytes in, ``HardBounce`` list out) and keeps to the DSN
format: ``multipart/report; report-type=delivery-status`` whose second part
is ``message/delivery-status``: one block of per-message fields, then one
block per recipient (RFC 3464 §2.1–2.3).
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import re
import ssl
from dataclasses import dataclass
from email.message import Message
from typing import Protocol

from mailwarden.web.status.probes import Pop3Client
from mailwarden.web.status.settings import BounceSettings

MAX_MESSAGES = 200
"""Messages fetched per run, so one run stays short; the rest wait for the next."""

MAX_MESSAGE_OCTETS = 1024 * 1024
"""Larger messages are deleted unread: no DSN is that big."""

_STATUS = re.compile(r"\s*([245])\.\d{1,3}\.\d{1,3}")


@dataclass(frozen=True, slots=True)
class HardBounce:
    """One recipient a DSN says is permanently undeliverable."""

    address: str
    status: str
    """The RFC 3463 status code, e.g. ``5.1.1``."""
    diagnostic: str
    """The remote server's words (``Diagnostic-Code``), if given."""


def _field_value(block: Message, name: str) -> str:
    value = block.get(name)
    return " ".join(str(value).split()) if value is not None else ""


def _address(value: str) -> str:
    """``rfc822; someone@example.net`` → ``someone@example.net`` (RFC 3464 §2.3.2)."""
    _, _, address = value.partition(";")
    return (address or value).strip().strip("<>").lower()


def parse_dsn(raw: bytes) -> list[HardBounce] | None:
    """The hard bounces a message reports.

    Returns:
        None when the message is not a delivery status notification; otherwise
        the recipients it reports as failed permanently (possibly none).
    """
    message = email.message_from_bytes(raw, policy=email.policy.compat32)
    if message.get_content_type() != "multipart/report":
        return None
    report_type = message.get_param("report-type")
    if not isinstance(report_type, str) or report_type.lower() != "delivery-status":
        return None
    status_part = next(
        (
            part
            for part in message.walk()
            if part.get_content_type()
            in ("message/delivery-status", "message/global-delivery-status")
        ),
        None,
    )
    if status_part is None:
        return None
    blocks = status_part.get_payload()
    if not isinstance(blocks, list):
        return None
    found = []
    # The first block holds per-message fields; the rest are one per recipient.
    for block in blocks[1:]:
        if not isinstance(block, Message):
            continue
        action = _field_value(block, "Action").lower()
        status = _STATUS.match(_field_value(block, "Status"))
        recipient = _field_value(block, "Final-Recipient") or _field_value(
            block, "Original-Recipient"
        )
        if action != "failed" or status is None or status.group(1) != "5" or not recipient:
            continue
        found.append(
            HardBounce(
                _address(recipient),
                _field_value(block, "Status").split()[0],
                _field_value(block, "Diagnostic-Code")[:200],
            )
        )
    return found


class BounceFetcher(Protocol):
    """Takes the messages waiting in the bounce mailbox (and removes them)."""

    def fetch(self) -> list[bytes]:
        """Blocking: return the messages, deleted from the mailbox."""


class Pop3BounceFetcher:
    """``BounceFetcher`` over POP3 (STLS verified when ``starttls``)."""

    def __init__(self, settings: BounceSettings) -> None:
        self._settings = settings

    def fetch(self) -> list[bytes]:
        """Fetch and delete up to ``MAX_MESSAGES`` messages.

        Raises:
            OSError, poplib.error_proto: the mailbox could not be read (nothing
                is deleted then: POP3 deletes only at QUIT).
        """
        s = self._settings
        pop = Pop3Client(s.host, s.port, timeout=s.timeout)
        try:
            if s.starttls:
                pop.stls(ssl.create_default_context(cafile=s.ca_file or None))
            pop.user(s.account)
            pop.pass_(s.password)
            _, listing, _ = pop.list()
            messages = []
            for line in listing[:MAX_MESSAGES]:
                number, size = (int(x) for x in line.split()[:2])
                if size <= MAX_MESSAGE_OCTETS:
                    _, lines, _ = pop.retr(number)
                    messages.append(b"\r\n".join(lines) + b"\r\n")
                pop.dele(number)
            pop.quit()
        except BaseException:
            with contextlib.suppress(Exception):
                pop.close()
            raise
        return messages
