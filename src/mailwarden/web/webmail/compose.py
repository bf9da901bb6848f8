"""Writing mail: recipients, replies and forwards, and the outgoing MIME message.

The outgoing message is built with the standard library's :mod:`email`
package (``EmailMessage`` with the ``SMTP`` policy: CRLF line ends, RFC 2047
encoded words for non-ASCII names, RFC 2231 for non-ASCII file names;
``SMTPUTF8`` when an address itself is not ASCII, RFC 6532).  Every message
gets ``Date`` and ``Message-ID`` (RFC 5322 §3.6); replies get ``In-Reply-To``
and ``References`` (§3.6.4) so that every reader threads them.

``Bcc`` never appears in what is sent (§3.6.3 first way); the copy kept in
Sent carries it, so the writer can see who got a blind copy.
"""

from __future__ import annotations

import email.utils
import re
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage

from mailwarden.mail.address import Address, AddressError
from mailwarden.web.webmail.i18n import _
from mailwarden.web.webmail.reading import AddressView, MessageView
from mailwarden.web.webmail.sessions import new_token

__all__ = [
    "MAX_RECIPIENTS",
    "Draft",
    "Outgoing",
    "RecipientError",
    "Upload",
    "build_message",
    "forward_draft",
    "parse_recipients",
    "reply_draft",
]

MAX_RECIPIENTS = 100
"""Recipients (To, Cc and Bcc together) one message may have."""


class RecipientError(ValueError):
    """A recipient field does not hold valid addresses; the text is for the user."""


@dataclass(frozen=True, slots=True)
class Upload:
    """A file attached to an outgoing message."""

    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True, slots=True)
class Outgoing:
    """Everything needed to build one outgoing message."""

    from_addr: str
    from_name: str
    to: tuple[str, ...]
    cc: tuple[str, ...] = ()
    bcc: tuple[str, ...] = ()
    subject: str = ""
    body: str = ""
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    attachments: tuple[Upload, ...] = ()
    attached_messages: tuple[tuple[str, bytes], ...] = ()  # (file name, raw message)

    @property
    def recipients(self) -> tuple[str, ...]:
        """Envelope recipients: To, Cc and Bcc without repeats, in order."""
        seen: dict[str, str] = {}
        for addr in (*self.to, *self.cc, *self.bcc):
            seen.setdefault(addr.lower(), addr)
        return tuple(seen.values())


@dataclass(frozen=True, slots=True)
class Draft:
    """What the compose form starts with."""

    to: str = ""
    cc: str = ""
    bcc: str = ""
    subject: str = ""
    body: str = ""
    in_reply_to: str = ""
    references: str = ""
    carry: tuple[tuple[str, str], ...] = field(default=())  # (token, file name)


_SPLIT_RE = re.compile(r"[;\n]")


def parse_recipients(text: str) -> tuple[str, ...]:
    """Parse a recipient field (``a@b, "Name" <c@d>; e@f``) into bare addresses.

    Raises:
        RecipientError: an entry is not a valid address, or there are too many.
    """
    if len(text) > 20_000:
        raise RecipientError(_("Too many recipients."))
    out: list[str] = []
    flat = _SPLIT_RE.sub(",", text.replace("\r", ""))
    for name, addr in email.utils.getaddresses([flat]):
        if not addr.strip():
            if name.strip():
                raise RecipientError(_("Not a valid address: %s") % name.strip()[:100])
            continue
        try:
            parsed = Address.parse(addr)
        except AddressError:
            raise RecipientError(_("Not a valid address: %s") % addr.strip()[:100]) from None
        out.append(str(parsed))
    if len(out) > MAX_RECIPIENTS:
        raise RecipientError(_("Too many recipients (at most %d).") % MAX_RECIPIENTS)
    return tuple(out)


def _format(name: str, addr: str) -> str:
    return email.utils.formataddr((name, addr)) if name else addr


def build_message(out: Outgoing, *, hostname: str, now: float) -> tuple[bytes, bytes, str]:
    """Build the message to send and the copy to keep in Sent.

    Args:
        out: the message's fields.
        hostname: our host name, the right side of the Message-ID.
        now: the time to put in ``Date`` (epoch seconds).

    Returns:
        (octets to send, octets for Sent with ``Bcc``, the Message-ID).
    """
    addresses = (out.from_addr, *out.to, *out.cc, *out.bcc)
    pol = policy.SMTP if all(a.isascii() for a in addresses) else policy.SMTPUTF8
    msg = EmailMessage(policy=pol)
    message_id = f"<{new_token(18)}@{hostname}>"
    msg["Date"] = email.utils.formatdate(now, localtime=False)
    msg["From"] = _format(out.from_name, out.from_addr)
    if out.to:
        msg["To"] = ", ".join(out.to)
    if out.cc:
        msg["Cc"] = ", ".join(out.cc)
    msg["Subject"] = out.subject
    msg["Message-ID"] = message_id
    if out.in_reply_to:
        msg["In-Reply-To"] = out.in_reply_to
    if out.references:
        msg["References"] = " ".join(out.references)
    msg["User-Agent"] = "Mailwarden webmail"
    body = out.body.replace("\r\n", "\n")
    if not body.endswith("\n"):
        body += "\n"
    msg.set_content(body, cte="7bit" if body.isascii() else "quoted-printable")
    for upload in out.attachments:
        maintype, _sep, subtype = upload.content_type.partition("/")
        if not subtype or maintype in ("multipart", "message"):
            maintype, subtype = "application", "octet-stream"
        msg.add_attachment(
            upload.data, maintype=maintype, subtype=subtype, filename=upload.filename
        )
    for filename, raw in out.attached_messages:
        inner = email.message_from_bytes(raw, policy=policy.default)
        msg.add_attachment(inner, filename=filename)
    to_send = msg.as_bytes()
    if out.bcc:
        msg["Bcc"] = ", ".join(out.bcc)
    return to_send, msg.as_bytes(), message_id


_PREFIX_RE = re.compile(r"^\s*((re|aw|sv|fwd?|wg)\s*:\s*)+", re.I)


def _prefixed(prefix: str, subject: str) -> str:
    return f"{prefix} {_PREFIX_RE.sub('', subject)}".strip()


def _quote(text: str) -> str:
    lines = text.replace("\r\n", "\n").rstrip("\n").split("\n")
    return "\n".join(
        ">" + ("" if line.startswith(">") or not line else " ") + line for line in lines
    )


def _when(date: int | None) -> str:
    return email.utils.formatdate(date, localtime=False) if date else _("an unknown date")


def reply_draft(
    view: MessageView, text: str, *, reply_all: bool, mine: set[str], signature: str = ""
) -> Draft:
    """The compose form for a reply (or reply to all) to a message.

    Args:
        view: the message replied to.
        text: its plain text (quoted below the reply).
        reply_all: also address every other recipient (as Cc).
        mine: the writer's own addresses (lower case), left out of reply-all.
        signature: appended before the quote.
    """
    target = view.reply_to or view.from_
    to = [str(a) for a in target]
    cc: list[str] = []
    if reply_all:
        taken = {a.addr.lower() for a in target} | mine
        for a in (*view.to, *view.cc):
            if a.addr.lower() not in taken:
                taken.add(a.addr.lower())
                cc.append(str(a))
    sender = view.from_[0] if view.from_ else AddressView("", "")
    who = sender.name or sender.addr
    intro = _("On %(date)s, %(who)s wrote:") % {"date": _when(view.date), "who": who}
    refs = list(view.references)
    if view.message_id and view.message_id not in refs:
        refs.append(view.message_id)
    return Draft(
        to=", ".join(to),
        cc=", ".join(cc),
        subject=_prefixed("Re:", view.subject),
        body=f"\n\n{_signature(signature)}{intro}\n{_quote(text)}\n",
        in_reply_to=view.message_id or "",
        references=" ".join(refs[-20:]),
    )


def forward_draft(
    view: MessageView,
    text: str,
    *,
    carry: tuple[tuple[str, str], ...] = (),
    signature: str = "",
) -> Draft:
    """The compose form to forward a message inline (its attachments carried along)."""
    lines = [
        _("---------- Forwarded message ----------"),
        _("From: %s") % ", ".join(str(a) for a in view.from_),
        _("Date: %s") % _when(view.date),
        _("Subject: %s") % view.subject,
        _("To: %s") % ", ".join(str(a) for a in view.to),
    ]
    if view.cc:
        lines.append(_("Cc: %s") % ", ".join(str(a) for a in view.cc))
    header = "\n".join(lines)
    return Draft(
        subject=_prefixed("Fwd:", view.subject),
        body=f"\n\n{_signature(signature)}{header}\n\n{text}",
        carry=carry,
    )


def _signature(signature: str) -> str:
    return f"-- \n{signature.strip()}\n\n" if signature.strip() else ""
