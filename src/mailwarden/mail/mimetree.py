"""The MIME entity tree of one message, with exact offsets, built in one pass.

Theory of operation
-------------------
:func:`parse_message` walks the raw bytes of a message once and returns its
tree: a :class:`Message` (a header and a body entity) whose :class:`Entity`
nodes are multipart containers, leaf parts and encapsulated message/rfc822
messages.  Every entity carries its IMAP section number (RFC 3501 §6.4.5) and
the offsets of its header, body and end, so that readers serve
``BODY[x.MIME]`` and ``BODY[x]`` by slicing the stored blob.
:mod:`mailwarden.mail.facts` turns the tree into the stored parts and
:mod:`mailwarden.mail.imapwire` into BODY and BODYSTRUCTURE.

The walk uses the readers of :mod:`mailwarden.mail.mime`: header blocks, the
Content-Type, and multipart delimiters found for all enclosing boundaries at
once, so that an outer delimiter closes inner parts that lack their own, as
in Dovecot.  Defaults follow the RFCs: text/plain; charset=us-ascii when the
Content-Type is absent or invalid (RFC 2045 §5.2), message/rfc822 inside a
digest (RFC 2046 §5.1.5).

The walk is total and bounded: nesting deeper than :data:`MAX_DEPTH` and
entities past :data:`MAX_PARTS` are opaque (security limits on work and on
the size of BODYSTRUCTURE), and any bytes give a tree.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mailwarden.mail.headers import HeaderBlock, parse_header
from mailwarden.mail.multipart import Delimiter, find_delimiter
from mailwarden.mail.params import ContentType, parse_content_type

__all__ = ["MAX_DEPTH", "MAX_PARTS", "Entity", "Message", "parse_message"]

MAX_DEPTH = 20
"""Nesting (multipart or message/rfc822) deeper than this is an opaque part."""

MAX_PARTS = 2000
"""At most this many MIME entities per message; later ones merge into the last."""

_TEXT_PLAIN = ContentType("text", "plain", ())
_MESSAGE_RFC822 = ContentType("message", "rfc822", ())
_US_ASCII = ("charset", "us-ascii")


def _join(prefix: str, number: str) -> str:
    return f"{prefix}.{number}" if prefix else number


@dataclass(slots=True)
class Entity:
    """One MIME entity of the tree (RFC 2045 §2.4).

    Mutable while the tree is built: a multipart's ``end`` and ``children``
    are known only after its body has been split.

    Attributes:
        section: IMAP section number (RFC 3501 §6.4.5), or "" for the
            multipart body of a message, which has no number of its own.
        header_start: offset of the entity's header.
        body_start: offset of its body, after the blank line.
        end: offset just past its body, before the line break that precedes
            the next delimiter.
        header: the parsed header; empty for a message body without
            MIME-Version or Content-Type (RFC 2045 §4).
        ctype: the Content-Type, defaults applied.
        children: the parts of a multipart, in order; empty otherwise.
        message: for message/rfc822, the encapsulated message; else None.
    """

    section: str
    header_start: int
    body_start: int
    end: int
    header: HeaderBlock
    ctype: ContentType
    children: list[Entity] = field(default_factory=list)
    message: Message | None = None


@dataclass(slots=True)
class Message:
    """A message, top level or encapsulated.

    Attributes:
        header: the message header; ``header.body_start`` is where its body
            begins.
        body: the body entity: part "1" (or "x.1") of a single-part message,
            or the multipart whose children are numbered.
    """

    header: HeaderBlock
    body: Entity


def _content_type(header: HeaderBlock, default: ContentType) -> ContentType:
    value = header.first("content-type")
    # RFC 2045 §5.2: an invalid Content-Type means text/plain; charset=us-ascii.
    ctype = default if value is None else parse_content_type(value) or _TEXT_PLAIN
    if ctype.maintype.lower() == "text" and ctype.param("charset") is None:
        # Dovecot adds the RFC 2045 §5.2 default charset to every text part.
        ctype = ContentType(ctype.maintype, ctype.subtype, (*ctype.params, _US_ASCII))
    return ctype


class _Walker:
    """Builds the entity tree of one message in a single pass, within the limits.

    Each entity is parsed knowing the stack of enclosing boundaries.  Before
    its header is read, the first delimiter of any of them is found
    (:func:`find_delimiter`): the header may not pass it, and a leaf part
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

    def bound(self, hit: Delimiter | None) -> int:
        return self.size if hit is None else hit.content_end

    def message(
        self,
        start: int,
        hit: Delimiter | None,
        stack: list[bytes],
        prefix: str,
        depth: int,
    ) -> tuple[Message, Delimiter | None]:
        """A message at ``start`` whose first enclosing delimiter is ``hit``."""
        header = parse_header(self.raw, start, self.bound(hit))
        body, hit = self.entity(start, header, hit, stack, prefix, depth, _TEXT_PLAIN, True)
        return Message(header, body), hit

    def entity(
        self,
        header_start: int,
        header: HeaderBlock,
        hit: Delimiter | None,
        stack: list[bytes],
        section: str,
        depth: int,
        default: ContentType,
        message_body: bool,
    ) -> tuple[Entity, Delimiter | None]:
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
            header = HeaderBlock({}, header.body_start)
        ctype = _content_type(header, default)
        maintype = ctype.maintype.lower()
        boundary = ctype.param("boundary") if maintype == "multipart" else None
        if boundary and hit is not None and len(boundary) > len(stack[hit.level]):
            delimiter = b"--" + boundary.encode("latin-1")
            if self.raw.startswith(delimiter, hit.start):
                # The line that cut the header short is our own first
                # delimiter (an enclosing boundary is a prefix of ours), so
                # the blank line before it ends the header after all.
                header = parse_header(self.raw, header_start, hit.start)
        body_start = header.body_start
        if maintype == "multipart":
            # RFC 3501 §6.4.5: a message's multipart body has no number of
            # its own; a multipart inside a multipart does.
            own = "" if message_body else section
            node = Entity(own, header_start, body_start, body_start, header, ctype)
            return node, self.multipart(node, hit, stack, own or section, depth)
        own = _join(section, "1") if message_body else section
        node = Entity(own, header_start, body_start, self.bound(hit), header, ctype)
        if maintype == "message" and ctype.subtype.lower() == "rfc822":
            if depth < MAX_DEPTH and self.count < MAX_PARTS:
                # Dovecot parses the encapsulated message whatever its encoding.
                node.message, hit = self.message(body_start, hit, stack, own, depth + 1)
                node.end = node.message.body.end
            else:
                # Too deep: an empty envelope and body keep BODYSTRUCTURE valid.
                empty = HeaderBlock({}, body_start)
                node.message = Message(empty, self.empty_entity(_join(own, "1"), node.end))
        return node, hit

    def empty_entity(self, section: str, at: int) -> Entity:
        self.count += 1
        ctype = ContentType("text", "plain", (_US_ASCII,))
        return Entity(section, at, at, at, HeaderBlock({}, at), ctype)

    def multipart(
        self,
        node: Entity,
        hit: Delimiter | None,
        stack: list[bytes],
        prefix: str,
        depth: int,
    ) -> Delimiter | None:
        """Split a multipart body (RFC 2046 §5.1.1) into ``node.children``.

        Returns:
            The delimiter of ``stack`` that ended the multipart (its epilogue
            included).
        """
        raw = self.raw
        boundary = node.ctype.param("boundary")
        out: Delimiter | None
        if boundary is None or depth >= MAX_DEPTH or self.count >= MAX_PARTS:
            node.end, out = self.bound(hit), hit
        else:
            inner = [*stack, boundary.encode("latin-1")]
            own_level = len(stack)
            # RFC 2046 §5.1.5: in a digest, parts are message/rfc822 by default.
            digest = node.ctype.subtype.lower() == "digest"
            default = _MESSAGE_RFC822 if digest else _TEXT_PLAIN
            delimiter = find_delimiter(raw, node.body_start, inner)
            while True:
                if delimiter is None:
                    node.end, out = self.size, None
                    break
                if delimiter.level < own_level:  # an enclosing delimiter: done
                    node.end, out = delimiter.content_end, delimiter
                    break
                if delimiter.closing or self.count >= MAX_PARTS:
                    out = find_delimiter(raw, delimiter.line_end, stack)
                    node.end = self.bound(out)
                    break
                start = delimiter.line_end
                following = find_delimiter(raw, start, inner)
                child, delimiter = self.entity(
                    start,
                    parse_header(raw, start, self.bound(following)),
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


def parse_message(raw: bytes) -> Message:
    """Build the entity tree of ``raw``, a whole message.

    Args:
        raw: the message exactly as stored.

    Returns:
        The top-level message.  Never raises: malformed input gets a
        best-effort tree within :data:`MAX_DEPTH` and :data:`MAX_PARTS`.
    """
    message, _ = _Walker(raw).message(0, None, [], "", 0)
    return message
