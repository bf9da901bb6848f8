"""Multipart delimiters (RFC 2046 §5.1.1), found over raw bytes.

Theory of operation
-------------------
The MIME tree (:mod:`mailwarden.mail.mimetree`) splits a multipart body at
its delimiter lines and needs their exact offsets, so that every part can be
served by slicing the stored blob.  :func:`find_delimiter` finds the next
delimiter line of *any* enclosing boundary in one scan, which is what lets an
outer delimiter close inner parts whose close delimiter is missing, and keeps
the whole walk linear in the size of the message.

Matching follows RFC 2046 and Dovecot: a line is a delimiter when it *begins*
with ``--boundary``; the longest matching boundary wins.  The scan jumps from
one ``--`` line start to the next with :meth:`bytes.find`, and falls back to a
single regular expression once many candidate lines have failed to match
(hostile input), so no input makes it quadratic.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

__all__ = ["Delimiter", "find_delimiter"]


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
