"""IMAP wire forms of a message: strings, ENVELOPE, BODY and BODYSTRUCTURE.

Theory of operation
-------------------
:mod:`mailwarden.mail.facts` renders these once, at delivery, and the store
keeps them ready to write: FETCH copies them to the wire as they are.  So the
rendering must always be valid IMAP (RFC 3501 §9), whatever a sender wrote:

* :func:`imap_string` writes an ``nstring``: ``NIL``, a quoted string, or a
  literal when the value holds CR, LF or 8-bit octets.  Header strings keep
  the sender's octets (encoded words undecoded, as Dovecot does).
* :func:`envelope` writes ENVELOPE (RFC 3501 §7.4.2) from a header block;
  strings come from the last occurrence of a field and addresses from all of
  them, read by :mod:`mailwarden.mail.addresslist`.  A missing mailbox or
  host is Dovecot's ``MISSING_MAILBOX`` / ``MISSING_DOMAIN``.
* :func:`body_structure` writes BODY and BODYSTRUCTURE together, in one walk
  of the entity tree of :mod:`mailwarden.mail.mimetree`, with the extension
  data (disposition, language, location, MD5) Dovecot writes.
"""

from __future__ import annotations

import re

from mailwarden.mail.addresslist import AddressItem, parse_address_list
from mailwarden.mail.headers import HeaderBlock
from mailwarden.mail.mimetree import Entity
from mailwarden.mail.params import parse_disposition

__all__ = ["body_structure", "envelope", "imap_string"]

_WSP = " \t\r\n"
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


def _addresses(items: list[AddressItem]) -> bytes:
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


def envelope(header: HeaderBlock) -> tuple[bytes, dict[str, list[AddressItem]]]:
    """ENVELOPE: date subject from sender reply-to to cc bcc in-reply-to message-id.

    Strings come from the last occurrence of a field and addresses from all
    of them, as Dovecot does with the (invalid) duplicates.

    Args:
        header: the header block of a message (top level or encapsulated).

    Returns:
        The wire form, and the parsed address fields by name ("from",
        "sender", "reply-to", "to", "cc", "bcc"), so that callers need not
        parse them again.  Never raises.
    """
    parsed = {name: parse_address_list(header.joined(name)) for name in _ADDRESS_FIELDS}
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


def _extension(header: HeaderBlock) -> bytes:
    """body-fld-dsp SP body-fld-lang SP body-fld-loc."""
    disposition = parse_disposition(header.first("content-disposition"))
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


def body_structure(raw: bytes, node: Entity) -> tuple[bytes, bytes]:
    """(BODY, BODYSTRUCTURE) of one entity, built in one walk of the tree.

    BODY is BODYSTRUCTURE without extension data (RFC 3501 §7.4.2).

    Args:
        raw: the whole message, for line counts.
        node: the entity, usually a message's body from
            :func:`mailwarden.mail.mimetree.parse_message`.

    Returns:
        The two wire forms.  Never raises.
    """
    ctype = node.ctype
    header = node.header
    if node.children:
        pairs = [body_structure(raw, child) for child in node.children]
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
        inner_body, inner_full = body_structure(raw, node.message.body)
        inner_envelope = envelope(node.message.header)[0]
        lines = raw.count(b"\n", node.body_start, node.end)
        body = b"%b %b %b %d)" % (basic, inner_envelope, inner_body, lines)
        full = b"%b %b %b %d" % (basic, inner_envelope, inner_full, lines)
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
