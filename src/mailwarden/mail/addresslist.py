"""RFC 5322 address lists (From, To, Cc...), read leniently into ENVELOPE addresses.

Theory of operation
-------------------
Not to be confused with :mod:`mailwarden.mail.address`, the validated
envelope address that SMTP and the store use.  This module reads what senders
actually put in address *header fields*, groups included (RFC 5322 §3.4), and
gives :class:`AddressItem` values shaped like the IMAP ENVELOPE address
structure (RFC 3501 §7.4.2): display name, source route, mailbox, host, plus
group start and end markers.  Strings stay ``latin-1`` raw text, encoded words
undecoded, so the wire form keeps the sender's octets;
:mod:`mailwarden.mail.charsets` decodes them for humans.

:func:`parse_address_list` first tries one regular expression that reads the
everyday shapes (``a@b``, ``Name <a@b>``, ``"Name" <a@b>``); anything else
goes through a small RFC 5322 §3.2 tokenizer (atoms, quoted strings, nested
comments, domain literals, specials) and a reader over its tokens.  Both give
the same result where the fast path applies (a Hypothesis test checks it).

The reader is total and lenient, and where the RFC leaves broken input open it
does what Dovecot does: missing brackets, stray specials, empty members and
unterminated quotes or groups give a best reading; a missing mailbox or domain
is None (rendered ``MISSING_MAILBOX`` / ``MISSING_DOMAIN``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["AddressItem", "parse_address_list"]

_WSP = " \t\r\n"


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
