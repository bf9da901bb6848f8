"""The facts about a message that readers need, computed once at delivery.

Theory of operation
-------------------
A message is parsed exactly once, when it is delivered or appended:
:func:`compute_facts` walks the raw bytes and returns a :class:`MessageFacts`
that the store keeps as JSON beside the blob.  IMAP FETCH (ENVELOPE, BODY,
BODYSTRUCTURE, ``BODY[section]``), SEARCH, SORT, THREAD and the webmail then
read these facts and slice the blob; nothing reparses a message.

* **Structure.**  :mod:`mailwarden.mail.mime` scans headers and multipart
  delimiters over the raw bytes, so every :class:`Part` carries exact offsets:
  ``raw[part.header_start:part.body_start]`` is ``BODY[x.MIME]`` and
  ``raw[part.body_start:part.end]`` is ``BODY[x]`` (RFC 3501 §6.4.5).
* **Wire forms.**  ENVELOPE, BODY and BODYSTRUCTURE are rendered here in IMAP
  syntax (RFC 3501 §7.4.2), ready to write; strings keep the sender's octets
  (encoded words undecoded, as Dovecot does) and become literals when they
  hold 8-bit octets or line breaks, so the wire form is always valid IMAP.
* **Decoded fields.**  Subject, names, addresses, dates, message ids, the
  preview and the searchable text are decoded for humans and for SEARCH/SORT.
* **Totality.**  Any bytes give facts; nothing raises.  Nesting deeper than
  :data:`MAX_DEPTH` and parts past :data:`MAX_PARTS` are opaque (security
  limits on work and on the size of BODYSTRUCTURE).

Sizes and line counts are of the stored octets: a message stored with bare LF
line endings reports bare-LF sizes, consistent with slicing the blob.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from mailwarden.mail import mime
from mailwarden.mail.mime import ContentType

__all__ = [
    "MAX_DEPTH",
    "MAX_PARTS",
    "MessageFacts",
    "Part",
    "compute_facts",
    "imap_string",
    "part_for",
]

MAX_DEPTH = 20
"""Nesting (multipart or message/rfc822) deeper than this is an opaque part."""

MAX_PARTS = 2000
"""At most this many MIME entities per message; later ones merge into the last."""

PREVIEW_CHARS = 200

_NIL = b"NIL"
_QUOTE_SAFE_RE = re.compile(rb"[\x00-\x7f]*")
_NEEDS_LITERAL_RE = re.compile(rb"[\r\n\x80-\xff]")


def imap_string(value: bytes | str | None) -> bytes:
    """Render an IMAP ``nstring`` (RFC 3501 §4.3, §9 ``nstring``).

    None is ``NIL``; text with CR, LF or 8-bit octets is a literal
    (``{n}\\r\\n`` followed by the octets); anything else is a quoted string
    with ``"`` and ``\\`` escaped.  NUL octets, which no IMAP string may carry,
    are dropped.  ``str`` values are encoded as UTF-8.

    Args:
        value: the string to render.

    Returns:
        The wire bytes.
    """
    if value is None:
        return _NIL
    data = value.encode("utf-8", "replace") if isinstance(value, str) else value
    if b"\x00" in data:
        data = data.replace(b"\x00", b"")
    if _NEEDS_LITERAL_RE.search(data):
        return b"{%d}\r\n%b" % (len(data), data)
    if b"\\" in data or b'"' in data:
        data = data.replace(b"\\", b"\\\\").replace(b'"', b'\\"')
    return b'"' + data + b'"'


def _raw(latin: str | None) -> bytes:
    """A latin-1 header string as an IMAP nstring of its original octets."""
    return _NIL if latin is None else imap_string(latin.encode("latin-1"))


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
# The parse tree


_TEXT_PLAIN = ContentType("text", "plain", (("charset", "us-ascii"),))
_MESSAGE_RFC822 = ContentType("message", "rfc822", ())
_OPAQUE = ContentType("application", "octet-stream", ())
_IDENTITY_ENCODINGS = frozenset({"7bit", "8bit", "binary", ""})


@dataclass(slots=True)
class _Entity:
    """A MIME entity while the tree is built; section "" for a message's multipart body."""

    section: str
    header_start: int
    body_start: int
    end: int
    fields: dict[str, str]
    ctype: ContentType
    children: list[_Entity] = field(default_factory=list)
    message: _Message | None = None


@dataclass(slots=True)
class _Message:
    start: int
    header_end: int
    end: int
    fields: dict[str, str]
    body: _Entity


class _Walker:
    """Builds the entity tree of one message, within the security limits."""

    __slots__ = ("count", "raw")

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.count = 0

    def message(self, start: int, end: int, prefix: str, depth: int) -> _Message:
        header = mime.parse_header(self.raw, start, end)
        body = self.entity(
            start, header.body_start, end, header.fields, prefix, depth, _TEXT_PLAIN, True
        )
        return _Message(start, header.body_start, end, header.fields, body)

    def entity(
        self,
        header_start: int,
        body_start: int,
        end: int,
        fields: dict[str, str],
        section: str,
        depth: int,
        default: ContentType,
        message_body: bool,
    ) -> _Entity:
        """One entity; ``section`` is the message prefix when ``message_body``."""
        self.count += 1
        ctype = mime.parse_content_type(fields.get("content-type")) or default
        maintype = ctype.maintype.lower()
        if maintype == "multipart":
            boundary = _param(ctype.params, "boundary")
            ranges: list[tuple[int, int]] = []
            if boundary and depth < MAX_DEPTH and self.count < MAX_PARTS:
                ranges = mime.split_multipart(
                    self.raw,
                    body_start,
                    end,
                    boundary.encode("latin-1"),
                    max(1, MAX_PARTS - self.count),
                )
            if ranges:
                own = "" if message_body else section
                node = _Entity(own, header_start, body_start, end, fields, ctype)
                digest = ctype.subtype.lower() == "digest"
                child_default = _MESSAGE_RFC822 if digest else _TEXT_PLAIN
                for number, (part_start, part_end) in enumerate(ranges, 1):
                    child_header = mime.parse_header(self.raw, part_start, part_end)
                    node.children.append(
                        self.entity(
                            part_start,
                            child_header.body_start,
                            part_end,
                            child_header.fields,
                            f"{section}.{number}" if section else str(number),
                            depth + 1,
                            child_default,
                            False,
                        )
                    )
                return node
            # A multipart without a boundary or without any delimiter cannot be
            # split; like Dovecot, serve it as one opaque part.
            ctype = _OPAQUE
            maintype = "application"
        own = (f"{section}.1" if section else "1") if message_body else section
        node = _Entity(own, header_start, body_start, end, fields, ctype)
        if (
            maintype == "message"
            and ctype.subtype.lower() == "rfc822"
            and _encoding(fields) in _IDENTITY_ENCODINGS
            and depth < MAX_DEPTH
            and self.count < MAX_PARTS
        ):
            node.message = self.message(body_start, end, own, depth + 1)
        return node


def _param(params: tuple[tuple[str, str], ...], name: str) -> str | None:
    for key, value in params:
        if key == name:
            return value
    return None


def _encoding(fields: dict[str, str]) -> str:
    return fields.get("content-transfer-encoding", "7bit").strip().lower() or "7bit"


# ---------------------------------------------------------------------------
# Wire forms (RFC 3501 §7.4.2)


def _addresses(latin: str | None) -> bytes:
    items = mime.parse_address_list(latin)
    if not items:
        return _NIL
    out = [b"("]
    for item in items:
        out.append(
            b"(%b %b %b %b)"
            % (_raw(item.name), _raw(item.adl), _raw(item.mailbox), _raw(item.host))
        )
    out.append(b")")
    return b"".join(out)


def _envelope(fields: dict[str, str]) -> bytes:
    """ENVELOPE: date subject from sender reply-to to cc bcc in-reply-to message-id."""
    sender_from = _addresses(fields.get("from"))
    # RFC 3501 §7.4.2: absent or empty Sender and Reply-To take the From value.
    sender = _addresses(fields.get("sender"))
    reply_to = _addresses(fields.get("reply-to"))
    return b"(%b %b %b %b %b %b %b %b %b %b)" % (
        _raw(fields.get("date") or None),
        _raw(fields.get("subject")),
        sender_from,
        sender_from if sender == _NIL else sender,
        sender_from if reply_to == _NIL else reply_to,
        _addresses(fields.get("to")),
        _addresses(fields.get("cc")),
        _addresses(fields.get("bcc")),
        _raw(fields.get("in-reply-to") or None),
        _raw(fields.get("message-id") or None),
    )


def _params(params: tuple[tuple[str, str], ...]) -> bytes:
    if not params:
        return _NIL
    return b"(" + b" ".join(b"%b %b" % (_raw(k), _raw(v)) for k, v in params) + b")"


def _extension(fields: dict[str, str]) -> bytes:
    """body-fld-dsp SP body-fld-lang SP body-fld-loc."""
    disposition = mime.parse_disposition(fields.get("content-disposition"))
    dsp = (
        _NIL
        if disposition is None
        else b"(%b %b)" % (_raw(disposition[0]), _params(disposition[1]))
    )
    langs = [x.strip(" \t") for x in fields.get("content-language", "").split(",")]
    langs = [x for x in langs if x]
    if not langs:
        lang = _NIL
    elif len(langs) == 1:
        lang = _raw(langs[0])
    else:
        lang = b"(" + b" ".join(_raw(x) for x in langs) + b")"
    return b"%b %b %b" % (dsp, lang, _raw(fields.get("content-location") or None))


def _structure(raw: bytes, node: _Entity, extended: bool) -> bytes:
    ctype = node.ctype
    if node.children:
        inner = b"".join(_structure(raw, child, extended) for child in node.children)
        if not extended:
            return b"(%b %b)" % (inner, _raw(ctype.subtype))
        return b"(%b %b %b %b)" % (
            inner,
            _raw(ctype.subtype),
            _params(ctype.params),
            _extension(node.fields),
        )
    fields = node.fields
    size = node.end - node.body_start
    out = [
        b"(%b %b %b %b %b %b %d"
        % (
            _raw(ctype.maintype),
            _raw(ctype.subtype),
            _params(ctype.params),
            _raw(fields.get("content-id") or None),
            _raw(fields.get("content-description") or None),
            _raw(fields.get("content-transfer-encoding") or "7bit"),
            size,
        )
    ]
    if node.message is not None:
        out.append(
            b" %b %b %d"
            % (
                _envelope(node.message.fields),
                _structure(raw, node.message.body, extended),
                _lines(raw, node.body_start, node.end),
            )
        )
    elif ctype.maintype.lower() == "text":
        out.append(b" %d" % _lines(raw, node.body_start, node.end))
    if extended:
        out.append(b" %b %b" % (_raw(fields.get("content-md5") or None), _extension(fields)))
    out.append(b")")
    return b"".join(out)


def _lines(raw: bytes, start: int, end: int) -> int:
    """body-fld-lines: the number of lines, a final unterminated line included."""
    if end <= start:
        return 0
    count = raw.count(b"\n", start, end)
    return count if raw[end - 1] == 0x0A else count + 1


# ---------------------------------------------------------------------------
# Parts, text and preview


def _flatten(node: _Entity, parent: str, out: list[tuple[_Entity, Part]]) -> None:
    if node.section:
        out.append((node, _part(node, parent)))
    for child in node.children:
        _flatten(child, node.ctype.lower, out)
    if node.message is not None:
        _flatten(node.message.body, node.ctype.lower, out)


def _part(node: _Entity, parent: str) -> Part:
    fields = node.fields
    ctype = node.ctype
    params = tuple((mime.utf8(k), mime.utf8(v)) for k, v in ctype.params)
    disposition = mime.parse_disposition(fields.get("content-disposition"))
    dsp_type = disposition[0].lower() if disposition else None
    filename = _filename(disposition[1] if disposition else (), ctype.params)
    cid = fields.get("content-id")
    content_id = mime.utf8(cid.strip(_WSP_STR).removeprefix("<").removesuffix(">")) if cid else None
    kind = ctype.lower
    charset = _param(ctype.params, "charset")
    if dsp_type == "attachment":
        attachment = True
    elif dsp_type == "inline":
        attachment = False
    elif kind == "message/rfc822":
        attachment = True
    else:
        # Inline images of an HTML body carry a name and a Content-ID.
        attachment = filename is not None and not (content_id and parent == "multipart/related")
    if node.children:
        attachment = False
    return Part(
        section=node.section,
        content_type=kind,
        params=params,
        header_start=node.header_start,
        body_start=node.body_start,
        end=node.end,
        encoding=_encoding(fields),
        charset=mime.utf8(charset).lower() if charset else None,
        disposition=dsp_type,
        filename=filename,
        content_id=content_id or None,
        is_attachment=attachment,
        inner_header_end=node.message.header_end if node.message is not None else None,
    )


_WSP_STR = " \t\r\n"


def _filename(
    dsp_params: tuple[tuple[str, str], ...], ct_params: tuple[tuple[str, str], ...]
) -> str | None:
    for params, name in ((dsp_params, "filename"), (ct_params, "name")):
        extended = _param(params, name + "*")
        if extended is not None:
            return mime.rfc2231_value(extended)
        plain = _param(params, name)
        if plain is not None:
            return mime.decode_words(plain)
    return None


_SPACE_RE = re.compile(r"\s+")


def _texts(raw: bytes, parts: list[tuple[_Entity, Part]]) -> tuple[str, str]:
    """(search text, preview) from the text/* parts."""
    chunks: list[str] = []
    plain: str | None = None
    html: str | None = None
    for node, part in parts:
        if not part.content_type.startswith("text/") or node.children:
            continue
        data = mime.decode_body(raw[part.body_start : part.end], part.encoding)
        text = mime.to_text(data, part.charset)
        if part.content_type == "text/html":
            text = mime.html_to_text(text)
            if html is None and not part.is_attachment:
                html = text
        elif plain is None and not part.is_attachment and part.content_type == "text/plain":
            plain = text
        chunks.append(text)
    source = plain if plain is not None else html or ""
    preview = _SPACE_RE.sub(" ", source[: PREVIEW_CHARS * 4]).strip()[:PREVIEW_CHARS]
    return "\n".join(chunks), preview


# ---------------------------------------------------------------------------


def compute_facts(raw: bytes) -> MessageFacts:
    """Parse ``raw`` once and return everything readers need about it.

    Args:
        raw: the message exactly as stored.

    Returns:
        The facts.  Never raises: malformed input gets a best-effort reading.
    """
    walker = _Walker(raw)
    message = walker.message(0, len(raw), "", 0)
    fields = message.fields
    flat: list[tuple[_Entity, Part]] = []
    _flatten(message.body, "", flat)
    text, preview = _texts(raw, flat)

    from_items = [a for a in mime.parse_address_list(fields.get("from")) if a.host is not None]
    first = from_items[0] if from_items else None
    in_reply_to = mime.parse_msg_ids(fields.get("in-reply-to"))
    message_ids = mime.parse_msg_ids(fields.get("message-id"))
    return MessageFacts(
        size=len(raw),
        header_end=message.header_end,
        envelope=_envelope(fields),
        body=_structure(raw, message.body, extended=False),
        bodystructure=_structure(raw, message.body, extended=True),
        parts=tuple(part for _, part in flat),
        subject=mime.decode_words(fields.get("subject", "")),
        from_name=mime.decode_words(first.name) if first and first.name else "",
        from_addr=_address(first) if first else "",
        to=_address_list(fields.get("to")),
        cc=_address_list(fields.get("cc")),
        date=mime.parse_date(fields.get("date")),
        message_id=message_ids[0] if message_ids else None,
        in_reply_to=in_reply_to[0] if in_reply_to else None,
        references=mime.parse_msg_ids(fields.get("references")),
        preview=preview,
        has_attachments=any(part.is_attachment for _, part in flat),
        text=text,
    )


def _address(item: mime.AddressItem) -> str:
    local = item.mailbox or ""
    return mime.utf8(f"{local}@{item.host}" if item.host else local).lower()


def _address_list(latin: str | None) -> tuple[str, ...]:
    return tuple(
        _address(a) for a in mime.parse_address_list(latin) if a.host is not None and a.mailbox
    )
