"""Low-level readers for RFC 5322 headers and RFC 2045/2046 MIME, over raw bytes.

Theory of operation
-------------------
:mod:`mailwarden.mail.facts` needs exact byte offsets of every MIME part (IMAP
serves ``BODY[1.2]`` and ``BODY[1.2.MIME]`` by slicing the stored blob), and the
standard library's :mod:`email` parser does not keep offsets.  So this module
scans the raw bytes itself, and borrows :mod:`email` only where offsets do not
matter: RFC 2047 encoded words (:func:`email.header.decode_header`) and dates
(:func:`email.utils.parsedate_tz`).

Header text is handled as ``latin-1`` strings, which map octets one to one, so
that the wire forms (ENVELOPE, BODYSTRUCTURE) can give back the exact octets a
sender wrote, 8-bit included; :func:`utf8` turns such a string into proper
text for the decoded, human-facing fields.

Every function here is total: any input gives a result and nothing raises.
Where the RFCs leave broken input open, we read it as Dovecot does (checked
against Dovecot 2.3 by a differential run), so that clients see what they are
used to: delimiters match by prefix, a missing domain is ``MISSING_DOMAIN``,
MIME fields are read from their first occurrence.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import email.header
import email.utils
import functools
import html
import re
import urllib.parse
from dataclasses import dataclass

__all__ = [
    "AddressItem",
    "ContentType",
    "Delimiter",
    "HeaderBlock",
    "decode_body",
    "decode_words",
    "find_delimiter",
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
        fields: every value of each field, in order, by lower-cased name;
            values unfolded (CR and LF removed, RFC 5322 §2.2.3) and trimmed,
            as latin-1 text.
        body_start: offset just past the blank line that ends the header, or
            the end of the scanned range if there is no blank line.
    """

    fields: dict[str, list[str]]
    body_start: int

    def first(self, name: str) -> str | None:
        """The first value of ``name`` (MIME fields: Dovecot reads the first)."""
        values = self.fields.get(name)
        return values[0] if values else None

    def last(self, name: str) -> str | None:
        """The last value of ``name`` (ENVELOPE strings: Dovecot reads the last)."""
        values = self.fields.get(name)
        return values[-1] if values else None

    def joined(self, name: str) -> str | None:
        """All values of an address field joined by commas (Dovecot lists them all)."""
        values = self.fields.get(name)
        if not values:
            return None
        return values[0] if len(values) == 1 else ",".join(values)


def _add(fields: dict[str, list[str]], name: str, parts: list[str]) -> None:
    value = "".join(parts).replace("\r", "").strip(_WSP)
    if name in fields:
        fields[name].append(value)
    else:
        fields[name] = [value]


def parse_header(raw: bytes, start: int, end: int) -> HeaderBlock:
    """Parse the header block that begins at ``raw[start]`` and ends before ``end``.

    The block ends at the first empty line, whatever its line ending (CRLF or
    bare LF).  Lines that are neither a field nor a continuation are skipped.

    Args:
        raw: the whole message.
        start: offset of the first header line.
        end: offset the header may not pass (the next delimiter or the end).

    Returns:
        The fields and the offset of the body.
    """
    if start >= end:
        return HeaderBlock({}, max(start, end))
    if raw[start] == 0x0A:
        return HeaderBlock({}, start + 1)
    if raw.startswith(b"\r\n", start, end):
        return HeaderBlock({}, start + 2)
    crlf = raw.find(b"\n\r\n", start, end)
    lf = raw.find(b"\n\n", start, end if crlf < 0 else crlf + 1)
    if crlf < 0 and lf < 0:
        content_end = body_start = end
    elif lf < 0 or 0 <= crlf < lf:
        content_end, body_start = crlf + 1, crlf + 3
    else:
        content_end, body_start = lf + 1, lf + 2
    block = raw[start:content_end].decode("latin-1")
    fields: dict[str, list[str]] = {}
    name = ""
    value: list[str] = []
    for line in block.split("\n"):
        if line[:1] in (" ", "\t"):
            if name:
                value.append(line)
            continue
        if name:
            _add(fields, name, value)
        colon = line.find(":")
        if colon <= 0:
            name = ""
            continue
        # RFC 5322 §4.5.3 (obsolete syntax) allows white space before the colon.
        name = line[:colon].rstrip(" \t").lower()
        value = [line[colon + 1 :]]
    if name:
        _add(fields, name, value)
    return HeaderBlock(fields, body_start)


# ---------------------------------------------------------------------------
# Multipart delimiters


@dataclass(frozen=True, slots=True)
class Delimiter:
    """A multipart delimiter line found by :func:`find_delimiter`.

    Attributes:
        level: index of the matching boundary in the list searched.
        start: offset of the delimiter line (its ``--``).
        content_end: offset of the line break before the delimiter, which
            belongs to the delimiter (RFC 2046 §5.1.1): content ends here.
        line_end: offset just past the delimiter line.
        closing: whether this is a close delimiter (``--boundary--``).
    """

    level: int
    start: int
    content_end: int
    line_end: int
    closing: bool


_MAX_MISSES = 32


@functools.lru_cache(maxsize=64)
def _delimiter_re(boundaries: tuple[bytes, ...]) -> re.Pattern[bytes]:
    """A pattern for a line break followed by ``--`` and any of ``boundaries``."""
    alternatives = b"|".join(re.escape(b) for b in sorted(boundaries, key=len, reverse=True))
    return re.compile(b"\n--(?:" + alternatives + b")")


def find_delimiter(raw: bytes, pos: int, boundaries: list[bytes]) -> Delimiter | None:
    """Find the first delimiter line at or after the line start ``pos``.

    A line is a delimiter of a boundary when it begins with ``--boundary``:
    RFC 2046 §5.1.1 says the rest of the line need not match ("it is
    sufficient that the boundary appear in its entirety following the CRLF"),
    and Dovecot agrees.  All enclosing boundaries are searched at once, so an
    outer delimiter ends inner parts whose close delimiter is missing; when
    several boundaries match one line the longest wins, which keeps nested
    boundaries apart even when one is a prefix of the other.

    Only lines that begin with ``--`` are examined, found with ``bytes.find``,
    so the scan is linear and base64 bodies (which hold no ``-``) pass at C
    speed.

    Args:
        raw: the whole message.
        pos: where to start; the start of a line, or a line break.
        boundaries: the active boundaries, outermost first.

    Returns:
        The delimiter, or None if no line matches.
    """
    if not boundaries:
        return None
    end = len(raw)
    cand = pos if raw.startswith(b"--", pos, end) else -1
    search = pos
    misses = 0
    while True:
        if cand < 0:
            if misses > _MAX_MISSES:
                # Many lines start with "--" but match nothing (hostile or
                # odd input): let one regular expression skip them in C.
                m = _delimiter_re(tuple(boundaries)).search(raw, search, end)
                if m is None:
                    return None
                cand = search = m.start() + 1
            else:
                found = raw.find(b"\n--", search, end)
                if found < 0:
                    return None
                cand = search = found + 1
        best, best_len = -1, -1
        for level, boundary in enumerate(boundaries):
            if len(boundary) > best_len and raw.startswith(boundary, cand + 2):
                best, best_len = level, len(boundary)
        if best < 0:
            misses += 1
        else:
            after = cand + 2 + best_len
            newline = raw.find(b"\n", after)
            content_end = cand
            if content_end > pos and raw[content_end - 1] == 0x0A:
                content_end -= 1
                if content_end > pos and raw[content_end - 1] == 0x0D:
                    content_end -= 1
            return Delimiter(
                level=best,
                start=cand,
                content_end=content_end,
                line_end=len(raw) if newline < 0 else newline + 1,
                closing=raw.startswith(b"--", after),
            )
        cand = -1


# ---------------------------------------------------------------------------
# Content-Type and Content-Disposition (RFC 2045 §5.1, RFC 2183, RFC 2231)


@dataclass(frozen=True, slots=True)
class ContentType:
    """A parsed Content-Type: type, subtype and parameters as written (latin-1).

    Parameter names keep their case (Dovecot writes them so in BODYSTRUCTURE);
    RFC 2231 continuations are joined.
    """

    maintype: str
    subtype: str
    params: tuple[tuple[str, str], ...]

    @property
    def lower(self) -> str:
        """``type/subtype`` in lower case."""
        return f"{self.maintype}/{self.subtype}".lower()

    def param(self, name: str) -> str | None:
        """The value of parameter ``name`` (lower case), if present."""
        return param(self.params, name)


def param(params: tuple[tuple[str, str], ...], name: str) -> str | None:
    """The value of parameter ``name`` (given in lower case), if present."""
    for key, value in params:
        if key.lower() == name:
            return value
    return None


_TOKEN_RE = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~\x80-\xff]+")


def _strip_comments(text: str) -> str:
    """Drop RFC 5322 comments (nested parentheses) outside quoted strings."""
    if "(" not in text:
        return text
    out: list[str] = []
    depth = 0
    quoted = escaped = False
    for ch in text:
        if escaped:
            escaped = False
            if not depth:
                out.append(ch)
        elif ch == "\\":
            escaped = True
            if not depth:
                out.append(ch)
        elif quoted:
            quoted = ch != '"'
            out.append(ch)
        elif ch == "(":
            depth += 1
        elif ch == ")" and depth:
            depth -= 1
        elif not depth:
            quoted = ch == '"'
            out.append(ch)
    return "".join(out)


def parse_params(text: str) -> list[tuple[str, str]]:
    """Parse ``; name=value; name="quoted value"`` into raw (name, value) pairs.

    Names keep their case; quoted values are unescaped; comments outside
    quotes are dropped; pairs without a name or an ``=`` are dropped.  No RFC
    2231 processing (see :func:`merge_rfc2231`).
    """
    text = _strip_comments(text)
    out: list[tuple[str, str]] = []
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " \t\r\n;":
            i += 1
        eq = i
        while eq < n and text[eq] not in "=;":
            eq += 1
        name = text[i:eq].strip(_WSP)
        if eq >= n or text[eq] == ";":
            i = eq + 1
            continue
        i = eq + 1
        while i < n and text[i] in _WSP:
            i += 1
        if i < n and text[i] == '"':
            i += 1
            chars: list[str] = []
            while i < n and text[i] != '"':
                if text[i] == "\\" and i + 1 < n:
                    i += 1
                chars.append(text[i])
                i += 1
            value = "".join(chars)
            semi = text.find(";", i)
            i = n if semi < 0 else semi
        else:
            semi = text.find(";", i)
            semi = n if semi < 0 else semi
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
    :func:`rfc2231_value` decodes it.  Plain segments joined to an extended
    value are percent-encoded.
    """
    if not any("*" in name for name, _ in params):
        return tuple(params)
    out: list[tuple[str, str] | str] = []
    groups: dict[str, list[tuple[int, bool, str]]] = {}
    for name, value in params:
        base, star, rest = name.partition("*")
        number = rest.partition("*")[0]
        # name*N is a plain segment, name*N* an extended one (RFC 2231 §3, §4.1).
        if star and number.isdigit() and len(number) < 6:
            key = base.lower()
            if key not in groups:
                groups[key] = []
                out.append(key)  # the joined value goes where its first segment was
            groups[key].append((int(number), rest.endswith("*"), value))
            continue
        out.append((name, value))
    bases = {name.partition("*")[0].lower(): name.partition("*")[0] for name, _ in params}
    merged: list[tuple[str, str]] = []
    for item in out:
        if not isinstance(item, str):
            merged.append(item)
            continue
        segments = sorted(groups[item], key=lambda seg: seg[0])
        if segments[0][1]:
            joined = "".join(
                v if extended else urllib.parse.quote(v, safe="") for _, extended, v in segments
            )
            merged.append((bases[item] + "*", joined))
        else:
            merged.append((bases[item], "".join(v for _, _, v in segments)))
    return tuple(merged)


def rfc2231_value(value: str) -> str:
    """Decode an RFC 2231 extended value ``charset'lang'percent-encoded``."""
    parts = value.split("'", 2)
    if len(parts) != 3:
        return to_text(urllib.parse.unquote_to_bytes(value.encode("latin-1")), "utf-8")
    charset, _, encoded = parts
    return to_text(urllib.parse.unquote_to_bytes(encoded.encode("latin-1")), charset)


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
    if not _TOKEN_RE.fullmatch(main):
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
        decoded = str(email.header.make_header(email.header.decode_header(text)))
    except (LookupError, UnicodeError, ValueError, AssertionError, binascii.Error):
        return text
    return decoded.replace("\x00", "")


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
    return tuple(utf8(m) for m in _MSG_ID_RE.findall(value) if len(m) > 2)


# ---------------------------------------------------------------------------
# Address lists (RFC 5322 §3.4), lenient


@dataclass(frozen=True, slots=True)
class AddressItem:
    """One IMAP ENVELOPE address (RFC 3501 §7.4.2), strings as latin-1 raw text.

    ``mailbox`` or ``host`` is None when the address lacks it (rendered as
    Dovecot's ``MISSING_MAILBOX`` / ``MISSING_DOMAIN``).  A group start has
    ``group`` "start" and its name in ``mailbox``; a group end has ``group``
    "end".
    """

    name: str | None
    adl: str | None
    mailbox: str | None
    host: str | None
    group: str = ""


_SPECIALS = "<>@,;:."
_ATOM_STOP = frozenset(_SPECIALS + '()"[ \t\r\n')

# A token: (kind, text, preceded by white space); kind is one of "atom",
# "quoted", "comment", "dlit" (domain literal) and "special".
_Token = tuple[str, str, bool]


_LEX_RE = re.compile(
    r"""(?P<ws>[ \t\r\n]+)
    |(?P<quoted>"(?P<qtext>(?:[^"\\]|\\.)*)"?)
    |(?P<dlit>\[[^\]]*\]?)
    |(?P<special>[<>@,;:.])
    |(?P<atom>[^<>@,;:.()"\[ \t\r\n]+)
    |(?P<comment>\()
    |(?P<stray>.)""",
    re.VERBOSE | re.DOTALL,
)
_UNESCAPE_RE = re.compile(r"\\(.)", re.DOTALL)


def _comment_end(text: str, i: int) -> int:
    """Offset just past the (nested) comment that opens at ``text[i]``."""
    depth = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "\\":
            i += 1
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if not depth:
                return i + 1
        i += 1
    return n


def _tokenize(text: str) -> list[_Token]:
    """Split an address header into RFC 5322 §3.2 lexical tokens."""
    tokens: list[_Token] = []
    i, n = 0, len(text)
    space = False
    match = _LEX_RE.match
    while i < n:
        m = match(text, i)
        assert m is not None  # the last alternative matches any character
        kind = m.lastgroup or "stray"
        if kind == "ws":
            space = True
            i = m.end()
            continue
        if kind == "comment":
            end = _comment_end(text, i)
            body = text[i + 1 : end - 1 if text[end - 1 : end] == ")" else end]
            tokens.append(("comment", _UNESCAPE_RE.sub(r"\1", body), space))
            i = end
        elif kind == "quoted":
            body = m.group("qtext")
            if "\\" in body:
                body = _UNESCAPE_RE.sub(r"\1", body)
            tokens.append(("quoted", body, space))
            i = m.end()
        else:
            tokens.append(("atom" if kind == "stray" else kind, m.group(), space))
            i = m.end()
        space = False
    return tokens


def _is(token: _Token, special: str) -> bool:
    return token[0] == "special" and token[1] == special


def _phrase(tokens: list[_Token]) -> str | None:
    """A display name: words joined as written, one space where there was any."""
    out: list[str] = []
    gap = False
    for kind, text, space in tokens:
        if kind == "comment":
            gap = True
            continue
        if out and (space or gap):
            out.append(" ")
        out.append(text)
        gap = False
    return "".join(out) or None


def _addr_spec(tokens: list[_Token]) -> tuple[str | None, str | None]:
    """Split addr-spec tokens at the last "@" into (local part, domain)."""
    at = -1
    for idx, token in enumerate(tokens):
        if _is(token, "@"):
            at = idx
    local_tokens = tokens if at < 0 else tokens[:at]
    # Dovecot gives a quoted local part without its quotes.
    local = "".join(t for k, t, _ in local_tokens if k != "comment")
    if at < 0:
        return local or None, None
    domain = "".join(t for k, t, _ in tokens[at + 1 :] if k not in ("comment", "quoted"))
    return local or None, domain or None


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
    comment = comments[-1] if comments else None
    if not any(_is(t, "@") for t in words):
        # No "@": a lone (dot-)atom is a mailbox without a domain; anything
        # else ("Joe Public", a quoted string) is a name without an address.
        if all(k == "atom" or (k == "special" and t == ".") for k, t, _ in words) and not any(
            space for _, _, space in words[1:]
        ):
            return AddressItem(comment, None, "".join(t for _, t, _ in words), None)
        return AddressItem(_phrase(words), None, None, None)
    local, domain = _addr_spec(words)
    return AddressItem(comment, None, local, domain)


# The everyday shapes -- ``a@b``, ``Name <a@b>``, ``"Name" <a@b>`` -- read by
# one regular expression; anything else takes the tokenizer.
_FAST_ADDRESS_RE = re.compile(
    r"""[ \t]*(?:
        "(?P<quoted>[^"\\]*)"[ \t]*<(?P<qlocal>[^<>@\s",]+)@(?P<qhost>[^<>@\s",]+)>
       |(?P<phrase>[^<>@",]*?)[ \t]*<(?P<plocal>[^<>@\s",]+)@(?P<phost>[^<>@\s",]+)>
       |(?P<local>[^<>@\s",]+)@(?P<host>[^<>@\s",]+)
    )[ \t]*(?:,|$)""",
    re.VERBOSE,
)
_FAST_EXCLUDED = frozenset("\\()[]:;")


def _fast_address_list(value: str) -> list[AddressItem] | None:
    if not _FAST_EXCLUDED.isdisjoint(value):
        return None
    out: list[AddressItem] = []
    pos, n = 0, len(value)
    match = _FAST_ADDRESS_RE.match
    while pos < n:
        m = match(value, pos)
        if m is None or m.end() == pos:
            return None
        if m["qlocal"] is not None:
            out.append(AddressItem(m["quoted"] or None, None, m["qlocal"], m["qhost"]))
        elif m["plocal"] is not None:
            name = " ".join(m["phrase"].split())
            out.append(AddressItem(name or None, None, m["plocal"], m["phost"]))
        else:
            out.append(AddressItem(None, None, m["local"], m["host"]))
        pos = m.end()
    return out


def parse_address_list(value: str | None) -> list[AddressItem]:
    """Parse an address-list header into ENVELOPE addresses, groups included.

    Lenient: missing brackets, stray specials, empty list members and
    unterminated quotes or groups produce a best reading.

    Args:
        value: the unfolded header value (latin-1 text), or None.

    Returns:
        Addresses in order, with group start/end markers (see :class:`AddressItem`).
    """
    if not value:
        return []
    fast = _fast_address_list(value)
    return fast if fast is not None else _slow_address_list(value)


def _slow_address_list(value: str) -> list[AddressItem]:
    """The general address-list reader, over RFC 5322 tokens."""
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
            out.append(AddressItem(None, None, _phrase(tokens[i:j]) or "", None, "start"))
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
            out.append(AddressItem(None, None, None, None, "end"))
            in_group = False
        i = j + 1
    if in_group:
        out.append(AddressItem(None, None, None, None, "end"))
    return out


# ---------------------------------------------------------------------------
# Body text


def to_text(data: bytes, charset: str | None) -> str:
    """Decode ``data`` in ``charset``; unknown charsets and bad bytes fall back to UTF-8."""
    name = (charset or "").strip().lower()
    if name in ("us-ascii", "ascii", "utf-8", "utf8", ""):
        name = "utf-8"
    try:
        if codecs.lookup(name).name in ("base64", "hex", "quopri", "uu", "zlib", "bz2", "rot-13"):
            name = "utf-8"  # bytes-to-bytes codecs are not charsets
        text = data.decode(name, "replace")
    except (LookupError, ValueError, TypeError):
        text = data.decode("utf-8", "replace")
    return text.replace("\x00", "")


_NOT_BASE64_RE = re.compile(rb"[^A-Za-z0-9+/]+")


def decode_body(data: bytes, encoding: str) -> bytes:
    """Undo a Content-Transfer-Encoding (RFC 2045 §6); unknown ones pass through.

    Broken base64 decodes as far as it goes; nothing raises.
    """
    if encoding == "base64":
        cleaned = _NOT_BASE64_RE.sub(b"", data)
        # Padding was dropped with the line breaks; restore it (a lone
        # trailing sextet carries no whole octet and goes).
        if len(cleaned) % 4 == 1:
            cleaned = cleaned[:-1]
        cleaned += b"=" * (-len(cleaned) % 4)
        try:
            return base64.b64decode(cleaned)
        except (binascii.Error, ValueError):
            return b""
    if encoding == "quoted-printable":
        return binascii.a2b_qp(data)
    return data


_HTML_DROP_RE = re.compile(
    r"<(script|style|head|title)\b.*?</\1\s*>|<!--.*?-->|<!\[CDATA\[.*?\]\]>",
    re.IGNORECASE | re.DOTALL,
)
_HTML_BLOCK_RE = re.compile(r"<\s*/?\s*(?:br|p|div|tr|li|h[1-6]|table|blockquote)\b[^>]*>", re.I)
_HTML_TAG_RE = re.compile(r"<[^>]*>")


def html_to_text(markup: str) -> str:
    """Strip HTML to its text: scripts, styles and comments dropped, entities decoded."""
    text = _HTML_DROP_RE.sub(" ", markup)
    text = _HTML_BLOCK_RE.sub("\n", text)
    text = _HTML_TAG_RE.sub("", text)
    return html.unescape(text)
