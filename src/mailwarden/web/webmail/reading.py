"""What the reading view shows of a message, taken from its stored facts and octets.

Nothing here parses MIME structure again: :class:`~mailwarden.mail.facts.MessageFacts`
already holds every part with its offsets, decoded filename and Content-ID.
This module picks the parts a reader sees (the plain and HTML bodies, the
attachments, the inline images), decodes their bodies, and reads the few
header fields the facts do not keep in human form (display names of every
recipient, Reply-To).
"""

from __future__ import annotations

import mimetypes
from dataclasses import dataclass

from mailwarden.mail import mime
from mailwarden.mail.facts import MessageFacts, Part

__all__ = [
    "AddressView",
    "AttachmentView",
    "MessageView",
    "attachment_name",
    "cid_part",
    "decoded_part",
    "part_text",
    "view_of",
]

MAX_BODY_CHARS = 2_000_000
"""Bodies longer than this are cut for display (a security limit on page size)."""


@dataclass(frozen=True, slots=True)
class AddressView:
    """One mailbox of an address header, decoded for display."""

    name: str
    addr: str

    def __str__(self) -> str:
        if self.name and self.name != self.addr:
            quoted = self.name.replace("\\", "\\\\").replace('"', '\\"')
            return f'"{quoted}" <{self.addr}>'
        return self.addr


@dataclass(frozen=True, slots=True)
class AttachmentView:
    """An attachment as listed under a message."""

    section: str
    filename: str
    content_type: str
    size: int


@dataclass(frozen=True, slots=True)
class MessageView:
    """What the reading page needs."""

    subject: str
    from_: tuple[AddressView, ...]
    to: tuple[AddressView, ...]
    cc: tuple[AddressView, ...]
    reply_to: tuple[AddressView, ...]
    date: int | None
    message_id: str | None
    references: tuple[str, ...]
    text_section: str | None
    html_section: str | None
    attachments: tuple[AttachmentView, ...]


def _addresses(latin: str | None) -> tuple[AddressView, ...]:
    out: list[AddressView] = []
    for item in mime.parse_address_list(latin):
        if item.group or item.mailbox is None:
            continue
        addr = mime.utf8(item.mailbox) + ("@" + mime.utf8(item.host) if item.host else "")
        name = mime.decode_words(item.name) if item.name else ""
        out.append(AddressView(name.strip(), addr))
    return tuple(out)


def _inside_attached_message(facts: MessageFacts, part: Part) -> bool:
    for other in facts.parts:
        if (
            other.content_type == "message/rfc822"
            and other.section != part.section
            and part.section.startswith(other.section + ".")
        ):
            return True
    return False


def attachment_name(part: Part) -> str:
    """The file name to offer for a part: its own, or one made from its type."""
    if part.filename:
        # Path separators and control characters never reach a file system.
        name = "".join(ch for ch in part.filename if ch >= " " and ch not in '/\\"\x7f')
        name = name.strip(". ")
        if name:
            return name[:200]
    if part.content_type == "message/rfc822":
        return f"message-{part.section}.eml"
    ext = mimetypes.guess_extension(part.content_type) or ".bin"
    return f"part-{part.section}{ext}"


def view_of(raw: bytes, facts: MessageFacts) -> MessageView:
    """Build the reading view of a stored message (never raises on odd mail)."""
    header = mime.parse_header(raw, 0, facts.header_end or len(raw))
    text_section = html_section = None
    attachments: list[AttachmentView] = []
    for part in facts.parts:
        if part.content_type.startswith("multipart/"):
            continue
        nested = _inside_attached_message(facts, part)
        if part.is_attachment and not nested:
            encoded = part.end - part.body_start
            size = encoded * 3 // 4 if part.encoding == "base64" else encoded
            attachments.append(
                AttachmentView(part.section, attachment_name(part), part.content_type, size)
            )
            continue
        if nested or part.is_attachment:
            continue
        if part.content_type == "text/plain" and text_section is None:
            text_section = part.section
        elif part.content_type == "text/html" and html_section is None:
            html_section = part.section
    return MessageView(
        subject=facts.subject,
        from_=_addresses(header.joined("from")),
        to=_addresses(header.joined("to")),
        cc=_addresses(header.joined("cc")),
        reply_to=_addresses(header.joined("reply-to")),
        date=facts.date,
        message_id=facts.message_id,
        references=facts.references,
        text_section=text_section,
        html_section=html_section,
        attachments=tuple(attachments),
    )


def _find(facts: MessageFacts, section: str) -> Part | None:
    for part in facts.parts:
        if part.section == section:
            return part
    return None


def decoded_part(raw: bytes, facts: MessageFacts, section: str) -> tuple[Part, bytes] | None:
    """The part with that section and its body with transfer encoding undone."""
    part = _find(facts, section)
    if part is None or part.content_type.startswith("multipart/"):
        return None
    body = raw[part.body_start : part.end]
    if part.content_type == "message/rfc822":
        return part, body
    return part, mime.decode_body(body, part.encoding)


def part_text(raw: bytes, facts: MessageFacts, section: str) -> str:
    """A text part decoded to a string (charset applied, length bounded)."""
    found = decoded_part(raw, facts, section)
    if found is None:
        return ""
    part, data = found
    return mime.to_text(data, part.charset)[:MAX_BODY_CHARS]


def cid_part(facts: MessageFacts, content_id: str) -> Part | None:
    """The image part with that Content-ID (RFC 2392), or None."""
    for part in facts.parts:
        if part.content_id == content_id and part.content_type.startswith("image/"):
            return part
    return None
