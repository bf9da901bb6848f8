"""Content-Type and Content-Disposition values and their parameters.

Theory of operation
-------------------
Both fields (RFC 2045 §5.1, RFC 2183) are a token or ``type/subtype`` followed
by ``; name=value`` parameters.  Reading them takes three steps:

1. :func:`parse_params` splits the parameter list into raw (name, value)
   pairs: quoted values unescaped, RFC 5322 comments dropped, names kept as
   written, since Dovecot writes them so in BODYSTRUCTURE.
2. :func:`merge_rfc2231` joins RFC 2231 continuations (``name*0``,
   ``name*1*``...) into one parameter.  An extended value keeps its
   ``charset'lang'%xx`` encoding, as Dovecot does, so the wire form stays
   7-bit.
3. :func:`rfc2231_value` decodes such an extended value for humans (a
   filename shown in the webmail), with :func:`~mailwarden.mail.charsets.to_text`.

:func:`parse_content_type` and :func:`parse_disposition` put the steps
together.  Values are ``latin-1`` text as elsewhere in the MIME readers.
Every function here is total: broken input gives None or a best reading, and
nothing raises.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass

from mailwarden.mail.charsets import to_text

__all__ = [
    "ContentType",
    "merge_rfc2231",
    "param",
    "parse_content_type",
    "parse_disposition",
    "parse_params",
    "rfc2231_value",
]

_WSP = " \t\r\n"


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
