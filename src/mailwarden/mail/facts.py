"""The facts about a message that readers need, computed once at delivery.

Theory of operation
-------------------
A message is parsed exactly once, when it is delivered or appended:
:func:`compute_facts` walks the raw bytes and returns a :class:`MessageFacts`
that the store keeps as JSON beside the blob.  IMAP FETCH (ENVELOPE, BODY,
BODYSTRUCTURE, ``BODY[section]``), SEARCH, SORT, THREAD and the webmail then
read these facts and slice the blob; nothing reparses a message.

* **Structure.**  :mod:`mailwarden.mail.mimetree` builds the entity tree over
  the raw bytes (with the readers of :mod:`mailwarden.mail.mime`), so every
  :class:`Part` carries exact offsets:
  ``raw[part.header_start:part.body_start]`` is ``BODY[x.MIME]`` and
  ``raw[part.body_start:part.end]`` is ``BODY[x]`` (RFC 3501 §6.4.5).
* **Wire forms.**  ENVELOPE, BODY and BODYSTRUCTURE are rendered by
  :mod:`mailwarden.mail.imapwire` in IMAP syntax (RFC 3501 §7.4.2), ready to
  write; strings keep the sender's octets (encoded words undecoded, as
  Dovecot does) and become literals when they hold 8-bit octets or line
  breaks, so the wire form is always valid IMAP.
* **Decoded fields.**  Subject, names, addresses, dates, message ids, the
  preview and the searchable text are decoded here, for humans and for
  SEARCH/SORT.
* **Totality.**  Any bytes give facts; nothing raises.  Nesting deeper than
  :data:`MAX_DEPTH` and parts past :data:`MAX_PARTS` are opaque (security
  limits on work and on the size of BODYSTRUCTURE).

Sizes and line counts are of the stored octets: a message stored with bare LF
line endings reports bare-LF sizes, consistent with slicing the blob.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from mailwarden.mail.addresslist import AddressItem
from mailwarden.mail.bodytext import decode_body, html_to_text
from mailwarden.mail.charsets import decode_words, to_text, utf8
from mailwarden.mail.headers import HeaderBlock, parse_date, parse_msg_ids
from mailwarden.mail.imapwire import body_structure, envelope, imap_string
from mailwarden.mail.mimetree import MAX_DEPTH, MAX_PARTS, Entity, parse_message
from mailwarden.mail.params import param, parse_disposition, rfc2231_value

__all__ = [
    "MAX_DEPTH",
    "MAX_PARTS",
    "MessageFacts",
    "Part",
    "compute_facts",
    "imap_string",
    "part_for",
]

PREVIEW_CHARS = 200

_WSP = " \t\r\n"


@dataclass(frozen=True, slots=True)
class Part:
    """One MIME entity of a message, with its IMAP section number and offsets.

    Attributes:
        section: IMAP part specifier (RFC 3501 §6.4.5): "1", "1.2", "2.1.3".
            A non-multipart message has one part "1", its body.
        content_type: lower-case ``type/subtype``.
        params: Content-Type parameters, names lower-cased, RFC 2231
            continuations joined (an extended value stays ``name*`` =
            ``charset'lang'%xx``).
        header_start: offset of the part's MIME header (``BODY[x.MIME]``);
            0 for part "1" of a single-part message.
        body_start: offset of the part body, after the blank line.
        end: offset just past the body, before the line break that precedes
            the next delimiter.
        encoding: Content-Transfer-Encoding, lower case, "7bit" by default.
        charset: the charset parameter, lower case, if any.
        disposition: Content-Disposition type, lower case, if any.
        filename: decoded filename (RFC 2231, RFC 2047) from the disposition or
            the Content-Type ``name``, if any.
        content_id: Content-ID without angle brackets, if any.
        is_attachment: whether a reader should list this part as an attachment.
        inner_header_end: for a parsed message/rfc822 part, the offset where
            the encapsulated message's body starts (its header is
            ``raw[body_start:inner_header_end]``); None otherwise.
    """

    section: str
    content_type: str
    params: tuple[tuple[str, str], ...]
    header_start: int
    body_start: int
    end: int
    encoding: str
    charset: str | None
    disposition: str | None
    filename: str | None
    content_id: str | None
    is_attachment: bool
    inner_header_end: int | None


@dataclass(frozen=True, slots=True)
class MessageFacts:
    """What readers need to know about one message, computed once.

    Attributes:
        size: octets in the raw message.
        header_end: offset of the top-level body (``size`` if there is none).
        envelope: RFC 3501 ENVELOPE, IMAP wire syntax.
        body: BODY (no extension data), IMAP wire syntax.
        bodystructure: BODYSTRUCTURE with extension data, IMAP wire syntax.
        parts: every MIME entity that has a section number, depth first.
        subject: decoded Subject, "" if none.
        from_name: decoded display name of the first From mailbox, or "".
        from_addr: address of the first From mailbox, lower case, or "".
        to: To addresses, lower case.
        cc: Cc addresses, lower case.
        date: Date header as epoch seconds (UTC), None if absent or unusable.
        message_id: the Message-ID with angle brackets, if any.
        in_reply_to: the first msg-id of In-Reply-To, if any.
        references: the msg-ids of References, in order.
        preview: about 200 characters of the first text part, white space
            collapsed.
        has_attachments: whether any part is an attachment.
        text: decoded text of all text/* parts (HTML stripped) for SEARCH.
    """

    size: int
    header_end: int
    envelope: bytes
    body: bytes
    bodystructure: bytes
    parts: tuple[Part, ...]
    subject: str
    from_name: str
    from_addr: str
    to: tuple[str, ...]
    cc: tuple[str, ...]
    date: int | None
    message_id: str | None
    in_reply_to: str | None
    references: tuple[str, ...]
    preview: str
    has_attachments: bool
    text: str

    def to_json(self) -> str:
        """Serialise for the store; :meth:`from_json` gives an equal object."""
        doc = {
            "v": 1,
            "size": self.size,
            "header_end": self.header_end,
            # Wire forms may hold 8-bit octets; latin-1 carries them losslessly.
            "envelope": self.envelope.decode("latin-1"),
            "body": self.body.decode("latin-1"),
            "bodystructure": self.bodystructure.decode("latin-1"),
            "parts": [
                [
                    p.section,
                    p.content_type,
                    [list(kv) for kv in p.params],
                    p.header_start,
                    p.body_start,
                    p.end,
                    p.encoding,
                    p.charset,
                    p.disposition,
                    p.filename,
                    p.content_id,
                    p.is_attachment,
                    p.inner_header_end,
                ]
                for p in self.parts
            ],
            "subject": self.subject,
            "from_name": self.from_name,
            "from_addr": self.from_addr,
            "to": list(self.to),
            "cc": list(self.cc),
            "date": self.date,
            "message_id": self.message_id,
            "in_reply_to": self.in_reply_to,
            "references": list(self.references),
            "preview": self.preview,
            "has_attachments": self.has_attachments,
            "text": self.text,
        }
        return json.dumps(doc, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> MessageFacts:
        """Rebuild facts stored by :meth:`to_json`.

        Raises:
            ValueError: ``text`` is not JSON written by :meth:`to_json`.
        """
        try:
            doc = json.loads(text)
            parts = tuple(
                Part(
                    section=p[0],
                    content_type=p[1],
                    params=tuple((k, v) for k, v in p[2]),
                    header_start=p[3],
                    body_start=p[4],
                    end=p[5],
                    encoding=p[6],
                    charset=p[7],
                    disposition=p[8],
                    filename=p[9],
                    content_id=p[10],
                    is_attachment=p[11],
                    inner_header_end=p[12],
                )
                for p in doc["parts"]
            )
            return cls(
                size=doc["size"],
                header_end=doc["header_end"],
                envelope=doc["envelope"].encode("latin-1"),
                body=doc["body"].encode("latin-1"),
                bodystructure=doc["bodystructure"].encode("latin-1"),
                parts=parts,
                subject=doc["subject"],
                from_name=doc["from_name"],
                from_addr=doc["from_addr"],
                to=tuple(doc["to"]),
                cc=tuple(doc["cc"]),
                date=doc["date"],
                message_id=doc["message_id"],
                in_reply_to=doc["in_reply_to"],
                references=tuple(doc["references"]),
                preview=doc["preview"],
                has_attachments=doc["has_attachments"],
                text=doc["text"],
            )
        except (KeyError, IndexError, TypeError, AttributeError, UnicodeError) as exc:
            raise ValueError(f"not stored message facts: {exc}") from None


def part_for(facts: MessageFacts, section: str) -> Part | None:
    """The part with IMAP section number ``section`` ("1", "2.1"), or None."""
    for part in facts.parts:
        if part.section == section:
            return part
    return None


# ---------------------------------------------------------------------------
# Parts, text and preview


def _flatten(node: Entity, parent: str, out: list[tuple[Entity, Part]]) -> None:
    if node.section:
        out.append((node, _part(node, parent)))
    for child in node.children:
        _flatten(child, node.ctype.lower, out)
    if node.message is not None:
        _flatten(node.message.body, node.ctype.lower, out)


def _part(node: Entity, parent: str) -> Part:
    header = node.header
    ctype = node.ctype
    disposition = parse_disposition(header.first("content-disposition"))
    dsp_type = utf8(disposition[0]).lower() if disposition else None
    filename = _filename(disposition[1] if disposition else (), ctype.params)
    cid = header.first("content-id")
    content_id = utf8(cid.strip(_WSP).removeprefix("<").removesuffix(">")) if cid else None
    kind = utf8(ctype.lower)
    charset = ctype.param("charset")
    if node.children:
        attachment = False
    elif dsp_type == "attachment":
        attachment = True
    elif dsp_type == "inline":
        attachment = False
    elif kind == "message/rfc822":
        attachment = True
    else:
        # Inline images of an HTML body carry a name and a Content-ID.
        attachment = filename is not None and not (content_id and parent == "multipart/related")
    return Part(
        section=node.section,
        content_type=kind,
        params=tuple((utf8(k).lower(), utf8(v)) for k, v in ctype.params),
        header_start=node.header_start,
        body_start=node.body_start,
        end=node.end,
        encoding=utf8(_encoding(header)),
        charset=utf8(charset).lower() if charset else None,
        disposition=dsp_type or None,
        filename=filename,
        content_id=content_id or None,
        is_attachment=attachment,
        inner_header_end=node.message.header.body_start if node.message is not None else None,
    )


def _encoding(header: HeaderBlock) -> str:
    value = header.first("content-transfer-encoding")
    return (value or "").strip(_WSP).lower() or "7bit"


def _filename(
    dsp_params: tuple[tuple[str, str], ...], ct_params: tuple[tuple[str, str], ...]
) -> str | None:
    """RFC 2183 filename, else the Content-Type name; RFC 2231 and 2047 decoded."""
    for params, name in ((dsp_params, "filename"), (ct_params, "name")):
        extended = param(params, name + "*")
        if extended is not None:
            return rfc2231_value(extended)
        plain = param(params, name)
        if plain is not None:
            return decode_words(plain)
    return None


def _texts(raw: bytes, parts: list[tuple[Entity, Part]]) -> tuple[str, str]:
    """(search text, preview) from the text/* parts."""
    chunks: list[str] = []
    plain: str | None = None
    html: str | None = None
    for node, part in parts:
        if not part.content_type.startswith("text/") or node.children:
            continue
        data = decode_body(raw[part.body_start : part.end], part.encoding)
        text = to_text(data, part.charset)
        if part.content_type == "text/html":
            text = html_to_text(text)
            if html is None and not part.is_attachment:
                html = text
        elif plain is None and not part.is_attachment and part.content_type == "text/plain":
            plain = text
        chunks.append(text)
    source = plain if plain is not None else html or ""
    preview = " ".join(source[: PREVIEW_CHARS * 4].split())[:PREVIEW_CHARS]
    return "\n".join(chunks), preview


# ---------------------------------------------------------------------------
# Putting it together


def compute_facts(raw: bytes) -> MessageFacts:
    """Parse ``raw`` once and return everything readers need about it.

    Args:
        raw: the message exactly as stored.

    Returns:
        The facts.  Never raises: malformed input gets a best-effort reading.
    """
    message = parse_message(raw)
    header = message.header
    flat: list[tuple[Entity, Part]] = []
    _flatten(message.body, "", flat)
    text, preview = _texts(raw, flat)
    envelope_wire, addresses = envelope(header)
    body, bodystructure = body_structure(raw, message.body)
    senders = [a for a in addresses["from"] if not a.group and a.mailbox is not None]
    first = senders[0] if senders else None
    in_reply_to = parse_msg_ids(header.last("in-reply-to"))
    message_ids = parse_msg_ids(header.last("message-id"))
    return MessageFacts(
        size=len(raw),
        header_end=header.body_start,
        envelope=envelope_wire,
        body=body,
        bodystructure=bodystructure,
        parts=tuple(part for _, part in flat),
        subject=decode_words(header.last("subject") or ""),
        from_name=decode_words(first.name) if first and first.name else "",
        from_addr=_address(first) if first else "",
        to=_address_list(addresses["to"]),
        cc=_address_list(addresses["cc"]),
        date=parse_date(header.last("date")),
        message_id=message_ids[0] if message_ids else None,
        in_reply_to=in_reply_to[0] if in_reply_to else None,
        references=parse_msg_ids(header.last("references")),
        preview=preview,
        has_attachments=any(part.is_attachment for _, part in flat),
        text=text,
    )


def _address(item: AddressItem) -> str:
    local = item.mailbox or ""
    return utf8(f"{local}@{item.host}" if item.host else local).lower()


def _address_list(items: list[AddressItem]) -> tuple[str, ...]:
    return tuple(_address(a) for a in items if not a.group and a.mailbox is not None)
