"""LIST, LSUB and STATUS answers from a folder list (RFC 3501 §6.3.8-§6.3.10, RFC 5258, RFC 6154).

Pure functions: the server passes the account's folders (name, special use,
subscribed) and gets back the untagged lines.  Names use ``/`` as the
hierarchy delimiter; ``%`` matches within one level, ``*`` across levels
(RFC 3501 §6.3.8); INBOX matches case-insensitively.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from mailwarden.proto.imap.responses import mailbox_name

__all__ = [
    "ListFolder",
    "list_lines",
    "lsub_lines",
    "pattern_regex",
    "select_list_line",
    "status_line",
]

SEP = "/"


@dataclass(frozen=True, slots=True)
class ListFolder:
    """What LIST needs to know about one folder."""

    name: str
    special_use: str | None
    subscribed: bool


def pattern_regex(reference: str, pattern: str) -> re.Pattern[str]:
    """The regex for ``reference`` + ``pattern`` (RFC 3501 §6.3.8)."""
    if pattern.startswith(SEP) or not reference:
        full = pattern
    elif reference.endswith(SEP):
        full = reference + pattern
    else:
        full = reference + SEP + pattern if pattern else reference
    out = []
    for ch in full:
        if ch == "*":
            out.append(".*")
        elif ch == "%":
            out.append("[^/]*")
        else:
            out.append(re.escape(ch))
    rx = "".join(out)
    if full[:5].upper() == "INBOX":
        rx = "(?i:INBOX)" + "".join(out[5:])
    return re.compile(rx, re.DOTALL)


def _children(folders: Sequence[ListFolder]) -> set[str]:
    parents: set[str] = set()
    for f in folders:
        parts = f.name.split(SEP)
        for i in range(1, len(parts)):
            parents.add(SEP.join(parts[:i]))
    return parents


def list_lines(
    folders: Sequence[ListFolder],
    reference: str,
    patterns: Sequence[str],
    *,
    select_opts: Sequence[str] = (),
    return_opts: Sequence[str] = (),
    utf8: bool = False,
) -> list[tuple[str, bytes]]:
    """The ``* LIST`` lines (CRLF excluded) with the folder each names.

    RFC 5258: SUBSCRIBED selects subscribed folders (and adds ``\\Subscribed``),
    RECURSIVEMATCH adds parents of matching subscribed folders with CHILDINFO,
    SPECIAL-USE (RFC 6154 §3) selects folders with a special use.  Children
    attributes are always given (CHILDREN, RFC 3348).
    """
    if patterns == [""] or tuple(patterns) == ("",):
        # RFC 3501 §6.3.8: an empty pattern asks for the delimiter and root
        return [("", b'LIST (\\Noselect) "/" ""')]
    regexes = [pattern_regex(reference, p) for p in patterns]
    parents = _children(folders)
    by_name = {f.name: f for f in folders}
    want_sub = "SUBSCRIBED" in select_opts
    show_sub = want_sub or "SUBSCRIBED" in return_opts
    recursive = "RECURSIVEMATCH" in select_opts
    special_only = "SPECIAL-USE" in select_opts
    out: list[tuple[str, bytes]] = []
    sub_parents: set[str] = set()
    if want_sub and recursive:
        for f in folders:
            if f.subscribed:
                parts = f.name.split(SEP)
                sub_parents.update(SEP.join(parts[:i]) for i in range(1, len(parts)))
    for f in folders:
        if not any(rx.fullmatch(f.name) for rx in regexes):
            continue
        childinfo = False
        if want_sub and not f.subscribed:
            if f.name not in sub_parents:
                continue
            childinfo = True
        if special_only and f.special_use is None:
            continue
        line = _list_line(f, parents, show_sub, utf8)
        if childinfo:
            line += b' ("CHILDINFO" ("SUBSCRIBED"))'
        out.append((f.name, line))
    del by_name
    return out


def _list_line(f: ListFolder, parents: set[str], show_sub: bool, utf8: bool) -> bytes:
    attrs = ["\\HasChildren" if f.name in parents else "\\HasNoChildren"]
    if show_sub and f.subscribed:
        attrs.append("\\Subscribed")
    if f.special_use:
        attrs.append(f.special_use)
    return b"LIST (" + " ".join(attrs).encode("ascii") + b') "/" ' + mailbox_name(f.name, utf8=utf8)


def select_list_line(folders: Sequence[ListFolder], name: str, *, utf8: bool = False) -> bytes:
    """The ``LIST`` line of one folder, as IMAP4rev2 SELECT/EXAMINE send it.

    RFC 9051 §6.3.2: "The server MUST return a LIST response with the mailbox
    name.  The list of mailbox attributes MUST be accurate."

    Args:
        folders: the account's folders (children are worked out from them).
        name: the selected folder's name, as the store spells it.
    """
    f = next((f for f in folders if f.name == name), ListFolder(name, None, False))
    return _list_line(f, _children(folders), False, utf8)


def lsub_lines(
    folders: Sequence[ListFolder], reference: str, pattern: str, *, utf8: bool = False
) -> list[bytes]:
    """``* LSUB`` lines (RFC 3501 §6.3.9)."""
    rx = pattern_regex(reference, pattern)
    parents = _children(folders)
    return [
        b"LSUB ("
        + (b"\\HasChildren" if f.name in parents else b"\\HasNoChildren")
        + b') "/" '
        + mailbox_name(f.name, utf8=utf8)
        for f in folders
        if f.subscribed and rx.fullmatch(f.name)
    ]


def status_line(name: str, values: Sequence[tuple[str, int]], *, utf8: bool = False) -> bytes:
    """``STATUS name (MESSAGES 3 UIDNEXT 9)`` (RFC 3501 §7.2.4)."""
    items = " ".join(f"{k} {v}" for k, v in values).encode("ascii")
    return b"STATUS " + mailbox_name(name, utf8=utf8) + b" (" + items + b")"
