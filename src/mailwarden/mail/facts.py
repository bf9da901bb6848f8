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
_NEEDS_LITERAL_RE = re.compile(rb"[\r\n\x80-\xff]")
_PLAIN_RE = re.compile(rb'[^\x00\r\n"\\\x80-\xff]*')


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
    if _PLAIN_RE.fullmatch(data):
        return b'"' + data + b'"'
    if b"\x00" in data:
        data = data.replace(b"\x00", b"")
    if _NEEDS_LITERAL_RE.search(data):
        return b"{%d}\r\n%b" % (len(data), data)
    return b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


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


_TEXT_PLAIN = ContentType("text", "plain", ())
_MESSAGE_RFC822 = ContentType("message", "rfc822", ())
_US_ASCII = ("charset", "us-ascii")


def _join(prefix: str, number: str) -> str:
    return f"{prefix}.{number}" if prefix else number


@dataclass(slots=True)
class _Entity:
    """A MIME entity while the tree is built; section "" for a message's multipart body."""

    section: str
    header_start: int
    body_start: int
    end: int
    header: mime.HeaderBlock
    ctype: ContentType
    children: list[_Entity] = field(default_factory=list)
    message: _Message | None = None


@dataclass(slots=True)
class _Message:
    """A message (top level or encapsulated): its header and its body entity."""

    header: mime.HeaderBlock
    body: _Entity


def _content_type(header: mime.HeaderBlock, default: ContentType) -> ContentType:
    value = header.first("content-type")
    # RFC 2045 §5.2: an invalid Content-Type means text/plain; charset=us-ascii.
    ctype = default if value is None else mime.parse_content_type(value) or _TEXT_PLAIN
    if ctype.maintype.lower() == "text" and ctype.param("charset") is None:
        # Dovecot adds the RFC 2045 §5.2 default charset to every text part.
        ctype = ContentType(ctype.maintype, ctype.subtype, (*ctype.params, _US_ASCII))
    return ctype


class _Walker:
    """Builds the entity tree of one message in a single pass, within the limits.

    Each entity is parsed knowing the stack of enclosing boundaries.  Before
    its header is read, the first delimiter of any of them is found
    (:func:`mime.find_delimiter`): the header may not pass it, and a leaf part
    ends there.  The entity hands that delimiter back to its parent, which
    carries on from it.  So each byte is scanned at most once per nesting
    level (``MAX_DEPTH`` bounds the work), and an outer delimiter closes inner
    parts that lack their own close delimiter, as in Dovecot.
    """

    __slots__ = ("count", "raw", "size")

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.size = len(raw)
        self.count = 0

    def bound(self, hit: mime.Delimiter | None) -> int:
        return self.size if hit is None else hit.content_end

    def message(
        self,
        start: int,
        hit: mime.Delimiter | None,
        stack: list[bytes],
        prefix: str,
        depth: int,
    ) -> tuple[_Message, mime.Delimiter | None]:
        """A message at ``start`` whose first enclosing delimiter is ``hit``."""
        header = mime.parse_header(self.raw, start, self.bound(hit))
        body, hit = self.entity(start, header, hit, stack, prefix, depth, _TEXT_PLAIN, True)
        return _Message(header, body), hit

    def entity(
        self,
        header_start: int,
        header: mime.HeaderBlock,
        hit: mime.Delimiter | None,
        stack: list[bytes],
        section: str,
        depth: int,
        default: ContentType,
        message_body: bool,
    ) -> tuple[_Entity, mime.Delimiter | None]:
        """One entity; ``section`` is the message's prefix when ``message_body``.

        Args:
            header_start: offset of the entity's header.
            header: the parsed header.
            hit: the first delimiter of ``stack`` after ``header_start``.
            stack: the enclosing boundaries.
            section: the entity's section number (or the message's prefix).
            depth: nesting depth.
            default: the Content-Type if the header has none.
            message_body: whether this is the body of a message.

        Returns:
            The entity and the delimiter of ``stack`` that ended it (None at
            the end of the message).
        """
        self.count += 1
        fields = header.fields
        if message_body and "mime-version" not in fields and "content-type" not in fields:
            # Without MIME-Version or Content-Type the other Content-* fields
            # of a message header do not count (RFC 2045 §4; so does Dovecot).
            header = mime.HeaderBlock({}, header.body_start)
        ctype = _content_type(header, default)
        maintype = ctype.maintype.lower()
        boundary = ctype.param("boundary") if maintype == "multipart" else None
        if boundary and hit is not None and len(boundary) > len(stack[hit.level]):
            delimiter = b"--" + boundary.encode("latin-1")
            if self.raw.startswith(delimiter, hit.start):
                # The line that cut the header short is our own first
                # delimiter (an enclosing boundary is a prefix of ours), so
                # the blank line before it ends the header after all.
                header = mime.parse_header(self.raw, header_start, hit.start)
        body_start = header.body_start
        if maintype == "multipart":
            # RFC 3501 §6.4.5: a message's multipart body has no number of
            # its own; a multipart inside a multipart does.
            own = "" if message_body else section
            node = _Entity(own, header_start, body_start, body_start, header, ctype)
            return node, self.multipart(node, hit, stack, own or section, depth)
        own = _join(section, "1") if message_body else section
        node = _Entity(own, header_start, body_start, self.bound(hit), header, ctype)
        if maintype == "message" and ctype.subtype.lower() == "rfc822":
            if depth < MAX_DEPTH and self.count < MAX_PARTS:
                # Dovecot parses the encapsulated message whatever its encoding.
                node.message, hit = self.message(body_start, hit, stack, own, depth + 1)
                node.end = node.message.body.end
            else:
                # Too deep: an empty envelope and body keep BODYSTRUCTURE valid.
                empty = mime.HeaderBlock({}, body_start)
                node.message = _Message(empty, self.empty_entity(_join(own, "1"), node.end))
        return node, hit

    def empty_entity(self, section: str, at: int) -> _Entity:
        self.count += 1
        ctype = ContentType("text", "plain", (_US_ASCII,))
        return _Entity(section, at, at, at, mime.HeaderBlock({}, at), ctype)

    def multipart(
        self,
        node: _Entity,
        hit: mime.Delimiter | None,
        stack: list[bytes],
        prefix: str,
        depth: int,
    ) -> mime.Delimiter | None:
        """Split a multipart body (RFC 2046 §5.1.1) into ``node.children``.

        Returns:
            The delimiter of ``stack`` that ended the multipart (its epilogue
            included).
        """
        raw = self.raw
        boundary = node.ctype.param("boundary")
        out: mime.Delimiter | None
        if boundary is None or depth >= MAX_DEPTH or self.count >= MAX_PARTS:
            node.end, out = self.bound(hit), hit
        else:
            inner = [*stack, boundary.encode("latin-1")]
            own_level = len(stack)
            # RFC 2046 §5.1.5: in a digest, parts are message/rfc822 by default.
            digest = node.ctype.subtype.lower() == "digest"
            default = _MESSAGE_RFC822 if digest else _TEXT_PLAIN
            delimiter = mime.find_delimiter(raw, node.body_start, inner)
            while True:
                if delimiter is None:
                    node.end, out = self.size, None
                    break
                if delimiter.level < own_level:  # an enclosing delimiter: done
                    node.end, out = delimiter.content_end, delimiter
                    break
                if delimiter.closing or self.count >= MAX_PARTS:
                    out = mime.find_delimiter(raw, delimiter.line_end, stack)
                    node.end = self.bound(out)
                    break
                start = delimiter.line_end
                following = mime.find_delimiter(raw, start, inner)
                child, delimiter = self.entity(
                    start,
                    mime.parse_header(raw, start, self.bound(following)),
                    following,
                    inner,
                    _join(prefix, str(len(node.children) + 1)),
                    depth + 1,
                    default,
                    False,
                )
                node.children.append(child)
        if not node.children:
            # Like Dovecot: a multipart that cannot be split has one empty part,
            # since IMAP's body-type-mpart needs at least one (RFC 3501 §9).
            node.children.append(self.empty_entity(_join(prefix, "1"), node.end))
        return out


def _encoding(header: mime.HeaderBlock) -> str:
    value = header.first("content-transfer-encoding")
    return (value or "").strip(_WSP).lower() or "7bit"


_WSP = " \t\r\n"


# ---------------------------------------------------------------------------
# Wire forms (RFC 3501 §7.4.2)


def _addresses(items: list[mime.AddressItem]) -> bytes:
    if not items:
        return _NIL
    out = [b"("]
    for item in items:
        if item.group == "start":
            out.append(b"(NIL NIL %b NIL)" % _raw(item.mailbox))
        elif item.group == "end":
            out.append(b"(NIL NIL NIL NIL)")
        else:
            out.append(
                b"(%b %b %b %b)"
                % (
                    _raw(item.name),
                    _raw(item.adl),
                    _raw(item.mailbox) if item.mailbox is not None else b'"MISSING_MAILBOX"',
                    _raw(item.host) if item.host is not None else b'"MISSING_DOMAIN"',
                )
            )
    out.append(b")")
    return b"".join(out)


_ADDRESS_FIELDS = ("from", "sender", "reply-to", "to", "cc", "bcc")


def _envelope(header: mime.HeaderBlock) -> tuple[bytes, dict[str, list[mime.AddressItem]]]:
    """ENVELOPE: date subject from sender reply-to to cc bcc in-reply-to message-id.

    Strings come from the last occurrence of a field and addresses from all
    of them, as Dovecot does with the (invalid) duplicates.

    Returns:
        The wire form, and the parsed address fields by name.
    """
    parsed = {name: mime.parse_address_list(header.joined(name)) for name in _ADDRESS_FIELDS}
    from_ = _addresses(parsed["from"])
    # RFC 3501 §7.4.2: absent or empty Sender and Reply-To take From's value.
    sender = _addresses(parsed["sender"]) if parsed["sender"] else from_
    reply_to = _addresses(parsed["reply-to"]) if parsed["reply-to"] else from_
    wire = b"(%b %b %b %b %b %b %b %b %b %b)" % (
        _raw(header.last("date")),
        _raw(header.last("subject")),
        from_,
        sender,
        reply_to,
        _addresses(parsed["to"]),
        _addresses(parsed["cc"]),
        _addresses(parsed["bcc"]),
        _raw(header.last("in-reply-to")),
        _raw(header.last("message-id")),
    )
    return wire, parsed


def _params(params: tuple[tuple[str, str], ...]) -> bytes:
    if not params:
        return _NIL
    return b"(" + b" ".join(b"%b %b" % (_raw(k), _raw(v)) for k, v in params) + b")"


def _extension(header: mime.HeaderBlock) -> bytes:
    """body-fld-dsp SP body-fld-lang SP body-fld-loc."""
    disposition = mime.parse_disposition(header.first("content-disposition"))
    if disposition is None:
        dsp = _NIL
    else:
        dsp = b"(%b %b)" % (_raw(disposition[0]), _params(disposition[1]))
    value = header.first("content-language")
    langs = [x.strip(_WSP) for x in value.split(",")] if value else []
    langs = [x for x in langs if x]
    # Dovecot always writes the list form, even for one language.
    lang = b"(" + b" ".join(_raw(x) for x in langs) + b")" if langs else _NIL
    return b"%b %b %b" % (dsp, lang, _raw(header.first("content-location")))


def _structure(raw: bytes, node: _Entity) -> tuple[bytes, bytes]:
    """(BODY, BODYSTRUCTURE) of one entity, built in one walk of the tree."""
    ctype = node.ctype
    header = node.header
    if node.children:
        pairs = [_structure(raw, child) for child in node.children]
        subtype = _raw(ctype.subtype)
        body = b"(%b %b)" % (b"".join(p[0] for p in pairs), subtype)
        full = b"(%b %b %b %b)" % (
            b"".join(p[1] for p in pairs),
            subtype,
            _params(ctype.params),
            _extension(header),
        )
        return body, full
    encoding = header.first("content-transfer-encoding")
    basic = b"(%b %b %b %b %b %b %d" % (
        # RFC 3501 §9 media-message: Dovecot writes "message" "rfc822" in
        # lower case when it describes the encapsulated message.
        b'"message"' if node.message is not None else _raw(ctype.maintype),
        b'"rfc822"' if node.message is not None else _raw(ctype.subtype),
        _params(ctype.params),
        _raw(header.first("content-id")),
        _raw(header.first("content-description")),
        _raw(encoding.strip(_WSP) if encoding else "7bit"),
        node.end - node.body_start,
    )
    if node.message is not None:
        inner_body, inner_full = _structure(raw, node.message.body)
        envelope = _envelope(node.message.header)[0]
        lines = raw.count(b"\n", node.body_start, node.end)
        body = b"%b %b %b %d)" % (basic, envelope, inner_body, lines)
        full = b"%b %b %b %d" % (basic, envelope, inner_full, lines)
    elif ctype.maintype.lower() == "text":
        # body-fld-lines: Dovecot counts line feeds, so an unterminated last
        # line (the line break before a delimiter is not the part's) is not counted.
        full = b"%b %d" % (basic, raw.count(b"\n", node.body_start, node.end))
        body = full + b")"
    else:
        full = basic
        body = basic + b")"
    full = b"%b %b %b)" % (full, _raw(header.first("content-md5")), _extension(header))
    return body, full


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
    header = node.header
    ctype = node.ctype
    disposition = mime.parse_disposition(header.first("content-disposition"))
    dsp_type = mime.utf8(disposition[0]).lower() if disposition else None
    filename = _filename(disposition[1] if disposition else (), ctype.params)
    cid = header.first("content-id")
    content_id = mime.utf8(cid.strip(_WSP).removeprefix("<").removesuffix(">")) if cid else None
    kind = mime.utf8(ctype.lower)
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
        params=tuple((mime.utf8(k).lower(), mime.utf8(v)) for k, v in ctype.params),
        header_start=node.header_start,
        body_start=node.body_start,
        end=node.end,
        encoding=mime.utf8(_encoding(header)),
        charset=mime.utf8(charset).lower() if charset else None,
        disposition=dsp_type or None,
        filename=filename,
        content_id=content_id or None,
        is_attachment=attachment,
        inner_header_end=node.message.header.body_start if node.message is not None else None,
    )


def _filename(
    dsp_params: tuple[tuple[str, str], ...], ct_params: tuple[tuple[str, str], ...]
) -> str | None:
    """RFC 2183 filename, else the Content-Type name; RFC 2231 and 2047 decoded."""
    for params, name in ((dsp_params, "filename"), (ct_params, "name")):
        extended = mime.param(params, name + "*")
        if extended is not None:
            return mime.rfc2231_value(extended)
        plain = mime.param(params, name)
        if plain is not None:
            return mime.decode_words(plain)
    return None


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
    preview = " ".join(source[: PREVIEW_CHARS * 4].split())[:PREVIEW_CHARS]
    return "\n".join(chunks), preview


# ---------------------------------------------------------------------------


def compute_facts(raw: bytes) -> MessageFacts:
    """Parse ``raw`` once and return everything readers need about it.

    Args:
        raw: the message exactly as stored.

    Returns:
        The facts.  Never raises: malformed input gets a best-effort reading.
    """
    message, _ = _Walker(raw).message(0, None, [], "", 0)
    header = message.header
    flat: list[tuple[_Entity, Part]] = []
    _flatten(message.body, "", flat)
    text, preview = _texts(raw, flat)
    envelope, addresses = _envelope(header)
    body, bodystructure = _structure(raw, message.body)
    senders = [a for a in addresses["from"] if not a.group and a.mailbox is not None]
    first = senders[0] if senders else None
    in_reply_to = mime.parse_msg_ids(header.last("in-reply-to"))
    message_ids = mime.parse_msg_ids(header.last("message-id"))
    return MessageFacts(
        size=len(raw),
        header_end=header.body_start,
        envelope=envelope,
        body=body,
        bodystructure=bodystructure,
        parts=tuple(part for _, part in flat),
        subject=mime.decode_words(header.last("subject") or ""),
        from_name=mime.decode_words(first.name) if first and first.name else "",
        from_addr=_address(first) if first else "",
        to=_address_list(addresses["to"]),
        cc=_address_list(addresses["cc"]),
        date=mime.parse_date(header.last("date")),
        message_id=message_ids[0] if message_ids else None,
        in_reply_to=in_reply_to[0] if in_reply_to else None,
        references=mime.parse_msg_ids(header.last("references")),
        preview=preview,
        has_attachments=any(part.is_attachment for _, part in flat),
        text=text,
    )


def _address(item: mime.AddressItem) -> str:
    local = item.mailbox or ""
    return mime.utf8(f"{local}@{item.host}" if item.host else local).lower()


def _address_list(items: list[mime.AddressItem]) -> tuple[str, ...]:
    return tuple(_address(a) for a in items if not a.group and a.mailbox is not None)
