"""Trace headers written when a message enters the system (RFC 5321 §4.4).

Every message we accept gets a ``Received:`` header naming the client, us, the
protocol (RFC 3848 / RFC 6531 ``with`` types) and the time; a message put into
a local mailbox also gets ``Return-Path:`` with the envelope sender, because
final delivery is where the reverse path is recorded (§4.4).

Client-chosen text (the EHLO name) is reduced to a safe alphabet so that it
cannot break the header's structure or smuggle a header of its own.

The same headers detect mail loops: :func:`count_received` counts the
``Received:`` fields a message arrives with (RFC 5321 §6.3).
"""

from __future__ import annotations

import email.utils
import re
from datetime import UTC, datetime

from mailwarden.mail.address import Address

__all__ = ["MAX_HOPS", "count_received", "received_header", "return_path_header", "with_protocol"]

MAX_HOPS = 100
"""More ``Received:`` fields than this means a mail loop (RFC 5321 §6.3: "at least 100")."""

_UNSAFE = re.compile(r"[^A-Za-z0-9.\-_:\[\]]")
_RECEIVED = re.compile(rb"^received[ \t]*:", re.IGNORECASE | re.MULTILINE)


def count_received(message: bytes) -> int:
    """How many ``Received:`` fields the message's header section holds.

    Only field names at the start of a line count (a folded continuation
    starts with white space), and only before the first empty line.
    """
    end = message.find(b"\r\n\r\n")
    head = message if end < 0 else message[: end + 2]
    return len(_RECEIVED.findall(head))


def with_protocol(*, esmtp: bool, tls: bool, authenticated: bool, smtputf8: bool) -> str:
    """The ``with`` keyword of Received (RFC 3848 §2, RFC 6531 §3.7.3)."""
    if not esmtp:
        return "SMTP"
    name = "UTF8SMTP" if smtputf8 else "ESMTP"
    if tls:
        name += "S"
    if authenticated:
        name += "A"
    return name


def received_header(
    *,
    helo: str,
    peer_ip: str,
    hostname: str,
    protocol: str,
    queue_id: str,
    when: datetime | None = None,
    recipient: Address | None = None,
) -> bytes:
    """A folded ``Received:`` header line, CRLF-terminated.

    Args:
        helo: the name the client gave in EHLO/HELO (sanitised here).
        peer_ip: the client's address as seen by us.
        hostname: our name.
        protocol: from :func:`with_protocol`.
        queue_id: our id of the message (logged too, so the two can be matched).
        when: the time of receipt (now, in UTC, if None).
        recipient: named in ``for`` when the message has exactly one.
    """
    stamp = email.utils.format_datetime(when or datetime.now(UTC))
    name = _UNSAFE.sub("?", helo)[:255] or "unknown"
    ip = _UNSAFE.sub("?", peer_ip)
    lines = [
        f"Received: from {name} ([{ip}])",
        f"\tby {_UNSAFE.sub('?', hostname)} with {protocol} id {queue_id}",
    ]
    if recipient is not None:
        lines[-1] += f"\r\n\tfor <{recipient}>"
    lines[-1] += f"; {stamp}"
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def return_path_header(sender: Address | None) -> bytes:
    """``Return-Path: <sender>`` (``<>`` for bounces), CRLF-terminated."""
    return f"Return-Path: <{sender if sender is not None else ''}>\r\n".encode()
