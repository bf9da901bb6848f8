"""Low-level readers for RFC 5322 headers and RFC 2045/2046 MIME, over raw bytes.

Theory of operation
-------------------
:mod:`mailwarden.mail.facts` needs exact byte offsets of every MIME part (IMAP
serves ``BODY[1.2]`` and ``BODY[1.2.MIME]`` by slicing the stored blob), and the
standard library's :mod:`email` parser does not keep offsets.  So this module
scans the raw bytes itself, and borrows :mod:`email` only for the work where it
is good and where offsets do not matter: RFC 2047 encoded words
(:func:`email.header.decode_header`) and dates (:func:`email.utils.parsedate_tz`).

Header text is handled as ``latin-1`` strings, which map bytes one to one, so
that the wire forms (ENVELOPE, BODYSTRUCTURE) can give back the exact octets a
sender wrote, 8-bit included; :func:`utf8` turns such a string into proper text
for the decoded, human-facing fields.

Every function here is total: it accepts any input and never raises.  Broken
input gets the most useful reading we can give, in the spirit of RFC 2045 §5.2
("default to text/plain") and of what Dovecot does with the same bytes.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import email.header
import email.utils
import html
import re
import urllib.parse
from dataclasses import dataclass

__all__ = [
    "AddressItem",
    "ContentType",
    "HeaderBlock",
    "decode_body",
    "decode_words",
    "html_to_text",
    "merge_rfc2231",
    "parse_address_list",
    "parse_content_type",
    "parse_date",
    "parse_disposition",
    "parse_header",
    "parse_msg_ids",
    "parse_params",
    "rfc2231_value",
    "split_multipart",
    "to_text",
    "utf8",
]

_WSP = " \t\r\n"


def utf8(latin: str) -> str:
    """Re-read a latin-1 header string as UTF-8 (RFC 6532), replacing bad octets.

    Args:
        latin: text whose code points are the raw octets of a header.

    Returns:
        The text as UTF-8, with U+FFFD for invalid sequences; NULs removed.
    """
    if latin.isascii():
        return latin.replace("\x00", "")
    return latin.encode("latin-1").decode("utf-8", "replace").replace("\x00", "")


# ---------------------------------------------------------------------------
# Header blocks


@dataclass(frozen=True, slots=True)
class HeaderBlock:
    """One parsed header block (RFC 5322 §2.2).

    Attributes:
        fields: first occurrence of each field, name lower-cased, value
            unfolded (CR and LF removed, RFC 5322 §2.2.3) and trimmed, as
            latin-1 text.
        body_start: offset just past the blank line that ends the header, or
            the end of the scanned range if there is no blank line.
    """

    fields: dict[str, str]
    body_start: int


def parse_header(raw: bytes, start: int, end: int) -> HeaderBlock:
    """Parse the header block that begins at ``raw[start]`` and ends before ``end``.

    The block ends at the first empty line, whatever its line ending (CRLF or
    bare LF).  Lines that are neither a field nor a continuation are skipped.

    Args:
        raw: the whole message.
        start: offset of the first header line.
        end: offset the header may not pass (the end of the enclosing entity).

    Returns:
        The fields and the offset of the body.
    """
    if start >= end:
        return HeaderBlock({}, end)
    if raw[start] == 0x0A:
        return HeaderBlock({}, start + 1)
    if raw.startswith(b"\r\n", start, end):
        return HeaderBlock({}, start + 2)
    crlf = raw.find(b"\n\r\n", start, end)
    lf = raw.find(b"\n\n", start, end)
    if crlf < 0 and lf < 0:
        content_end = body_start = end
    elif lf < 0 or 0 <= crlf < lf:
        content_end, body_start = crlf + 1, crlf + 3
    else:
        content_end, body_start = lf + 1, lf + 2
    block = raw[start:content_end].decode("latin-1")
    fields: dict[str, str] = {}
    name: str | None = None
    value: list[str] = []
    for line in block.split("\n"):
        if line[:1] in (" ", "\t"):
            if name is not None:
                value.append(line)
            continue
        if name is not None and name not in fields:
            fields[name] = "".join(value).replace("\r", "").strip(_WSP)
        colon = line.find(":")
        if colon <= 0:
            name = None
            continue
        # RFC 5322 §4.5.3 (obsolete syntax) allows white space before the colon.
        name = line[:colon].rstrip(" \t").lower()
        value = [line[colon + 1 :]]
    if name is not None and name not in fields:
        fields[name] = "".join(value).replace("\r", "").strip(_WSP)
    return HeaderBlock(fields, body_start)


# ---------------------------------------------------------------------------
# Multipart bodies


def split_multipart(
    raw: bytes, start: int, end: int, boundary: bytes, max_parts: int
) -> list[tuple[int, int]]:
    """Find the body parts of a multipart entity (RFC 2046 §5.1.1).

    A delimiter is ``--boundary`` at the start of a line, optionally followed by
    ``--`` (the close delimiter) and then only white space up to the line end.
    The line break before a delimiter belongs to the delimiter, so a part ends
    before it.  A missing close delimiter ends the last part at ``end``.  Once
    ``max_parts`` parts are found, the last one runs to the end of the range
    (this is a security limit on the size of BODYSTRUCTURE).

    Args:
        raw: the whole message.
        start: offset of the multipart body (the preamble starts here).
        end: offset just past the multipart body.
        boundary: the boundary parameter, as bytes.
        max_parts: the most parts to report.

    Returns:
        ``(part_start, part_end)`` for each part, where a part starts with its
        MIME header; empty if no delimiter was found.
    """
    delim = b"--" + boundary
    parts: list[tuple[int, int]] = []
    part_start = -1
    pos = start
    while True:
        i = raw.find(delim, pos, end)
        if i < 0:
            break
        if i != start and raw[i - 1] != 0x0A:
            pos = i + 1
            continue
        j = i + len(delim)
        closing = raw.startswith(b"--", j, end)
        k = j + 2 if closing else j
        nl = raw.find(b"\n", k, end)
        line_end = end if nl < 0 else nl + 1
        if raw[k:line_end].strip(b" \t\r\n"):
            pos = i + 1
            continue
        if part_start >= 0:
            part_end = i
            if part_end > start and raw[part_end - 1] == 0x0A:
                part_end -= 1
                if raw[part_end - 1] == 0x0D:
                    part_end -= 1
            parts.append((part_start, max(part_end, part_start)))
            if len(parts) >= max_parts:
                parts[-1] = (part_start, end)
                return parts
        if closing:
            return parts
        part_start = pos = line_end
    if part_start >= 0:
        parts.append((part_start, end))
    return parts


# ---------------------------------------------------------------------------
# Content-Type and Content-Disposition (RFC 2045 §5.1, RFC 2183, RFC 2231)


@dataclass(frozen=True, slots=True)
class ContentType:
    """A parsed Content-Type: type and subtype as written, params merged (latin-1)."""

    maintype: str
    subtype: str
    params: tuple[tuple[str, str], ...]

    @property
    def lower(self) -> str:
        """``type/subtype`` in lower case."""
        return f"{self.maintype}/{self.subtype}".lower()


_TOKEN_RE = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~\x80-\xff]+")


def _strip_comments(text: str) -> str:
    if "(" not in text:
        return text
    out: list[str] = []
    depth = 0
    quoted = False
    escaped = False
    for ch in text:
        if escaped:
            escaped = False
            if depth == 0:
                out.append(ch)
            continue
        if ch == "\\":
            escaped = True
            if depth == 0:
                out.append(ch)
            continue
        if quoted:
            quoted = ch != '"'
            out.append(ch)
        elif ch == '"' and depth == 0:
            quoted = True
            out.append(ch)
        elif ch == "(":
            depth += 1
        elif ch == ")" and depth:
            depth -= 1
        elif depth == 0:
            out.append(ch)
    return "".join(out)


def parse_params(text: str) -> list[tuple[str, str]]:
    """Parse ``; name=value; name="quoted value"`` into raw (name, value) pairs.

    Names are lower-cased; quoted values are unescaped; pairs without a name or
    an ``=`` are dropped.  No RFC 2231 processing (see :func:`merge_rfc2231`).
    """
    out: list[tuple[str, str]] = []
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " \t\r\n;":
            i += 1
        eq = i
        while eq < n and text[eq] not in "=;":
            eq += 1
        name = text[i:eq].strip(_WSP).lower()
        if eq >= n or text[eq] == ";":
            i = eq + 1
            continue
        i = eq + 1
        while i < n and text[i] in " \t\r\n":
            i += 1
        if i < n and text[i] == '"':
            i += 1
            chars: list[str] = []
            while i < n and text[i] != '"':
                if text[i] == "\\" and i + 1 < n:
                    i += 1
                chars.append(text[i])
                i += 1
            i += 1
            value = "".join(chars)
            while i < n and text[i] != ";":
                i += 1
        else:
            semi = text.find(";", i)
            if semi < 0:
                semi = n
            value = text[i:semi].strip(_WSP)
            i = semi
        if name:
            out.append((name, value))
    return out


def merge_rfc2231(params: list[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """Join RFC 2231 continuations (``name*0``, ``name*1*``, ...) into one param.

    As Dovecot does for BODYSTRUCTURE, the joined value keeps its encoding: a
    value whose first segment is extended (``name*0*``) comes out as
    ``name*`` = ``charset'lang'percent-encoded``, so the wire form stays 7-bit;
    :func:`rfc2231_value` decodes it.  Continuation segments that are not
    extended are percent-encoded when joined to an extended value.
    """
    if not any("*" in name for name, _ in params):
        return tuple(params)
    out: list[tuple[str, str]] = []
    groups: dict[str, list[tuple[int, bool, str]]] = {}
    order: list[str] = []
    for name, value in params:
        base, star, rest = name.partition("*")
        if star and rest:
            num, _, ext = rest.partition("*")
            if num.isdigit() and len(num) < 6:
                if base not in groups:
                    groups[base] = []
                    order.append(base)
                    out.append((base, ""))  # placeholder keeps the position
                groups[base].append((int(num), bool(ext) or rest.endswith("*"), value))
                continue
        out.append((name, value))
    for base in order:
        segs = sorted(groups[base], key=lambda s: s[0])
        extended = segs[0][1]
        if extended:
            joined = "".join(v if ext else urllib.parse.quote(v, safe="") for _, ext, v in segs)
            key = base + "*"
        else:
            joined = "".join(v for _, _, v in segs)
            key = base
        idx = out.index((base, ""))
        out[idx] = (key, joined)
    return tuple(out)


def rfc2231_value(value: str) -> str:
    """Decode an RFC 2231 extended value ``charset'lang'percent-encoded``."""
    parts = value.split("'", 2)
    if len(parts) != 3:
        return utf8(urllib.parse.unquote(value, encoding="latin-1"))
    charset, _, encoded = parts
    data = urllib.parse.unquote_to_bytes(encoded.encode("latin-1"))
    return to_text(data, charset or "us-ascii")


def parse_content_type(value: str | None) -> ContentType | None:
    """Parse a Content-Type value; None when absent or not ``type/subtype``."""
    if value is None:
        return None
    main, _, rest = value.partition(";")
    main = _strip_comments(main).strip(_WSP)
    maintype, slash, subtype = main.partition("/")
    maintype, subtype = maintype.strip(_WSP), subtype.strip(_WSP)
    if not slash or not _TOKEN_RE.fullmatch(maintype) or not _TOKEN_RE.fullmatch(subtype):
        return None
    return ContentType(maintype, subtype, merge_rfc2231(parse_params(rest)))


def parse_disposition(value: str | None) -> tuple[str, tuple[tuple[str, str], ...]] | None:
    """Parse a Content-Disposition value into (type as written, merged params)."""
    if value is None:
        return None
    main, _, rest = value.partition(";")
    main = _strip_comments(main).strip(_WSP)
    if not main or not _TOKEN_RE.fullmatch(main):
        return None
    return main, merge_rfc2231(parse_params(rest))


# ---------------------------------------------------------------------------
# Encoded words, dates, message ids


def decode_words(latin: str) -> str:
    """Decode RFC 2047 encoded words in a header value; raw 8-bit read as UTF-8."""
    text = utf8(latin)
    if "=?" not in text:
        return text
    try:
        return str(email.header.make_header(email.header.decode_header(text))).replace("\x00", "")
    except (LookupError, UnicodeError, ValueError, AssertionError, binascii.Error):
        return text


def parse_date(value: str | None) -> int | None:
    """Parse a Date: value (RFC 5322 §3.3) into epoch seconds, None if unusable."""
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_tz(value)
        if parsed is None:
            return None
        return int(email.utils.mktime_tz(parsed))
    except (TypeError, ValueError, OverflowError, IndexError):
        return None


_MSG_ID_RE = re.compile(r"<[^<>\s]*>")


def parse_msg_ids(value: str | None) -> tuple[str, ...]:
    """The ``<...>`` message ids in a header value, in order (RFC 5322 §3.6.4)."""
    if not value:
        return ()
    return tuple(utf8(m) for m in _MSG_ID_RE.findall(value))


# ---------------------------------------------------------------------------
# Address lists (RFC 5322 §3.4), lenient


@dataclass(frozen=True, slots=True)
class AddressItem:
    """One IMAP ENVELOPE address, strings as latin-1 raw text.

    A group start has ``host`` None and ``mailbox`` the group name; a group
    end has every field None (RFC 3501 §7.4.2).
    """

    name: str | None
    adl: str | None
    mailbox: str | None
    host: str | None


_SPECIALS = "<>@,;:."
_ATOM_STOP = frozenset(_SPECIALS + '()"[ \t\r\n')

# A token: (kind, text, preceded by white space); kind is one of "atom",
# "quoted", "comment", "dlit" (domain literal) and "special".
_Token = tuple[str, str, bool]


def _tokenize(text: str) -> list[_Token]:
    """Split an address header into RFC 5322 §3.2 lexical tokens."""
    tokens: list[_Token] = []
    i, n = 0, len(text)
    space = False
    while i < n:
        ch = text[i]
        if ch in _WSP:
            i += 1
            space = True
            continue
        if ch in _SPECIALS:
            tokens.append(("special", ch, space))
            i += 1
        elif ch == '"':
            i += 1
            chars: list[str] = []
            while i < n and text[i] != '"':
                if text[i] == "\\" and i + 1 < n:
                    i += 1
                chars.append(text[i])
                i += 1
            i += 1
            tokens.append(("quoted", "".join(chars), space))
        elif ch == "(":
            depth = 1
            i += 1
            chars = []
            while i < n:
                c = text[i]
                if c == "\\" and i + 1 < n:
                    i += 1
                    c = text[i]
                elif c == "(":
                    depth += 1
                elif c == ")":
                    depth -= 1
                    if not depth:
                        break
                chars.append(c)
                i += 1
            i += 1
            tokens.append(("comment", "".join(chars), space))
        elif ch == "[":
            close = text.find("]", i)
            close = n - 1 if close < 0 else close
            tokens.append(("dlit", text[i : close + 1], space))
            i = close + 1
        else:
            j = i
            while j < n and text[j] not in _ATOM_STOP:
                j += 1
            if j == i:  # a stray ")" or "]"
                j += 1
            tokens.append(("atom", text[i:j], space))
            i = j
        space = False
    return tokens


def _is(token: _Token, special: str) -> bool:
    return token[0] == "special" and token[1] == special


def _phrase(tokens: list[_Token]) -> str | None:
    """A display name: words joined as written, one space where there was any."""
    out: list[str] = []
    after_comment = False
    for kind, text, space in tokens:
        if kind == "comment":
            after_comment = True
            continue
        if out and (space or after_comment):
            out.append(" ")
        out.append(text)
        after_comment = False
    return "".join(out) if out else None


def _quote_local(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _addr_spec(tokens: list[_Token]) -> tuple[str, str | None]:
    """Split addr-spec tokens at the last "@" into (local part, domain or None)."""
    at = -1
    for idx, token in enumerate(tokens):
        if _is(token, "@"):
            at = idx
    local_tokens = tokens if at < 0 else tokens[:at]
    local = "".join(
        _quote_local(t) if k == "quoted" else t for k, t, _ in local_tokens if k != "comment"
    )
    if at < 0:
        return local, None
    domain = "".join(t for k, t, _ in tokens[at + 1 :] if k not in ("comment", "quoted"))
    return local, domain


def _mailbox(tokens: list[_Token]) -> AddressItem | None:
    """One mailbox: ``[phrase] <[route:]addr-spec>`` or ``addr-spec (comment)``."""
    lt = next((i for i, t in enumerate(tokens) if _is(t, "<")), -1)
    if lt >= 0:
        name = _phrase(tokens[:lt])
        gt = next((i for i in range(lt + 1, len(tokens)) if _is(tokens[i], ">")), len(tokens))
        inner = tokens[lt + 1 : gt]
        adl: str | None = None
        if inner and _is(inner[0], "@"):
            colon = next((i for i, t in enumerate(inner) if _is(t, ":")), -1)
            if colon >= 0:
                adl = "".join(t for k, t, _ in inner[:colon] if k != "comment") or None
                inner = inner[colon + 1 :]
        local, domain = _addr_spec(inner)
        return AddressItem(name, adl, local, domain)
    words = [t for t in tokens if t[0] != "comment"]
    if not words:
        return None
    comments = [t.strip(_WSP) for k, t, _ in tokens if k == "comment" and t.strip(_WSP)]
    local, domain = _addr_spec(words)
    return AddressItem(comments[-1] if comments else None, None, local, domain)


def parse_address_list(value: str | None) -> list[AddressItem]:
    """Parse an address-list header into ENVELOPE addresses, groups included.

    Lenient: missing brackets, stray specials and unterminated quotes produce a
    best reading.  A mailbox without ``@`` gets host None.

    Args:
        value: the unfolded header value (latin-1 text), or None.

    Returns:
        Addresses in order, with group start/end markers (see :class:`AddressItem`).
    """
    if not value:
        return []
    tokens = _tokenize(value)
    out: list[AddressItem] = []
    i, n = 0, len(tokens)
    in_group = False
    while i < n:
        j = i
        while j < n and not (tokens[j][0] == "special" and tokens[j][1] in ",;<:"):
            j += 1
        stop = tokens[j][1] if j < n else ""
        if stop == ":" and not in_group:
            out.append(AddressItem(None, None, _phrase(tokens[i:j]) or "", None))
            in_group = True
            i = j + 1
            continue
        if stop in ("<", ":"):
            if stop == "<":
                while j < n and not _is(tokens[j], ">"):
                    j += 1
            while j < n and not (tokens[j][0] == "special" and tokens[j][1] in ",;"):
                j += 1
            stop = tokens[j][1] if j < n else ""
        item = _mailbox(tokens[i:j])
        if item is not None:
            out.append(item)
        if stop == ";" and in_group:
            out.append(AddressItem(None, None, None, None))
            in_group = False
        i = j + 1
    if in_group:
        out.append(AddressItem(None, None, None, None))
    return out


# ---------------------------------------------------------------------------
# Body text


def to_text(data: bytes, charset: str | None) -> str:
    """Decode ``data`` in ``charset``; unknown charsets and bad bytes fall back to UTF-8."""
    name = (charset or "us-ascii").strip().lower()
    if name in ("us-ascii", "ascii", "utf-8", "utf8", ""):
        name = "utf-8"
    try:
        codecs.lookup(name)
        text = data.decode(name, "replace")
    except (LookupError, ValueError, TypeError):
        text = data.decode("utf-8", "replace")
    return text.replace("\x00", "")


def decode_body(data: bytes, encoding: str) -> bytes:
    """Undo a Content-Transfer-Encoding (RFC 2045 §6); unknown ones pass through."""
    if encoding == "base64":
        cleaned = re.sub(rb"[^A-Za-z0-9+/]", b"", data)
        cleaned = cleaned[: len(cleaned) - len(cleaned) % 4]
        try:
            return base64.b64decode(cleaned)
        except (binascii.Error, ValueError):
            return b""
    if encoding == "quoted-printable":
        try:
            return binascii.a2b_qp(data)
        except (binascii.Error, ValueError):
            return data
    return data


_HTML_DROP_RE = re.compile(
    r"<(script|style|head|title)\b.*?</\1\s*>|<!--.*?-->|<!\[CDATA\[.*?\]\]>",
    re.IGNORECASE | re.DOTALL,
)
_HTML_BLOCK_RE = re.compile(r"<\s*/?\s*(br|p|div|tr|li|h[1-6]|table|blockquote)\b[^>]*>", re.I)
_HTML_TAG_RE = re.compile(r"<[^>]*>")


def html_to_text(markup: str) -> str:
    """Strip HTML to its text: scripts, styles and comments dropped, entities decoded."""
    text = _HTML_DROP_RE.sub(" ", markup)
    text = _HTML_BLOCK_RE.sub("\n", text)
    text = _HTML_TAG_RE.sub("", text)
    return html.unescape(text)
