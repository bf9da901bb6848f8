"""Message content readers: dot-stuffed DATA and counted BDAT chunks.

DATA (RFC 5321 §4.1.1.4, §4.5.2)
---------------------------------
The content ends at the first ``<CRLF>.<CRLF>``, and at nothing else.  That
one rule is the whole defence against SMTP smuggling: a sender's MTA and ours
must agree on where a message ends, and the only ending every conforming MTA
agrees on is CRLF dot CRLF.  ``\\n.\\n``, ``\\r.\\r``, ``\\n.\\r\\n`` and
``\\r\\n.\\n`` are content here, never an ending.

The reader treats the start of the content as if a CRLF preceded it (the CRLF
that ended the DATA command), and searches the stream for the five octets
``\\r\\n.\\r\\n``; the search resumes four octets before the end of what it
has seen, so chunk boundaries never hide an ending.  When the ending arrives
the content is checked whole:

* RFC 5321 §2.3.8: a CR not followed by LF or an LF not preceded by CR makes
  the message :attr:`BodyFault.BARE_LINE_END`: it is refused with a 5xx
  rather than "repaired", because repairing is exactly the disagreement
  smuggling needs (Postfix's ``smtpd_forbid_bare_newline`` does the same).
* RFC 5321 §4.5.3.1.6: a line longer than the text line limit (CRLF
  included) is :attr:`BodyFault.LINE_TOO_LONG`.
* RFC 5321 §4.5.2: one leading dot is removed from every line (dot-unstuffing);
  the CRLF before the final dot belongs to the message.

Memory is bounded: past the size limit (plus a little room for stuffed dots)
the reader stops keeping octets and only keeps looking for the ending, then
reports :attr:`BodyFault.TOO_BIG`.  This is a security limit.

BDAT (RFC 3030)
---------------
Chunks are exactly counted, never stuffed and never searched for an ending.
:class:`ChunkReader` takes the announced number of octets and keeps them while
the message stays within the size limit.  Line ends are checked on the whole
message at ``BDAT LAST`` (a CR may end one chunk and its LF start the next),
except for ``BODY=BINARYMIME``, which is binary by definition.
"""

from __future__ import annotations

import enum

__all__ = ["BodyFault", "ChunkReader", "DotReader", "check_body"]

_END = b"\r\n.\r\n"


class BodyFault(enum.Enum):
    """Why received content cannot be accepted."""

    TOO_BIG = "too big"
    """More octets than the size limit (RFC 1870)."""
    BARE_LINE_END = "bare CR or LF"
    """A CR or LF not part of a CRLF (RFC 5321 §2.3.8)."""
    LINE_TOO_LONG = "line too long"
    """A text line over the limit (RFC 5321 §4.5.3.1.6)."""


def check_body(content: bytes, max_line: int | None) -> BodyFault | None:
    """Check line ends (and line lengths, if ``max_line``) of complete content.

    Args:
        content: the whole message.
        max_line: the longest line allowed, CRLF included, or None for no limit.

    Returns:
        The first fault found, or None if the content is clean.
    """
    crlf = content.count(b"\r\n")
    if content.count(b"\r") != crlf or content.count(b"\n") != crlf:
        return BodyFault.BARE_LINE_END
    # Every LF now ends a CRLF, so a line of n octets plus CRLF is n + 2 long.
    if max_line is not None and content and max(map(len, content.split(b"\n"))) > max_line - 1:
        return BodyFault.LINE_TOO_LONG
    return None


class DotReader:
    """Collects one DATA section up to ``<CRLF>.<CRLF>``.

    Feed it octets with :meth:`feed` until it returns the leftover input that
    follows the ending; then :attr:`content` holds the unstuffed message or
    :attr:`fault` says why there is none.
    """

    def __init__(self, max_size: int, max_line: int) -> None:
        """Start reading.

        Args:
            max_size: the largest message, in octets after unstuffing.
            max_line: the longest text line, CRLF included.
        """
        self.max_size = max_size
        self.max_line = max_line
        # Room for stuffed dots before we stop keeping octets; the exact size
        # check is made after unstuffing.
        self._hold_limit = max_size + max_size // 32 + 1024
        self._buf = bytearray(b"\r\n")  # the CRLF that ended the DATA command
        self._too_big = False
        self.received = 0
        self.content: bytes | None = None
        self.fault: BodyFault | None = None

    def feed(self, data: bytes) -> bytes | None:
        """Take received octets.

        Args:
            data: the next octets of the stream.

        Returns:
            None while the ending has not arrived; once it has, the octets
            that followed it (possibly empty), which belong to the next
            command.  After that the reader must not be fed again.
        """
        buf = self._buf
        start = max(0, len(buf) - 4)
        buf += data
        self.received += len(data)
        end = buf.find(_END, start)
        if end < 0:
            if len(buf) > self._hold_limit:
                self._too_big = True
                del buf[:-4]  # keep only what an ending could start in
            return None
        leftover = bytes(buf[end + 5 :])
        if self._too_big:
            self.fault = BodyFault.TOO_BIG
        else:
            raw = bytes(buf[2 : end + 2])
            self.fault = check_body(raw, self.max_line)
            if self.fault is None:
                # RFC 5321 §4.5.2: drop the first dot of every line.  Every line
                # starts after a CRLF (the prefix covers the first one).
                content = bytes(buf[: end + 2]).replace(b"\r\n.", b"\r\n")[2:]
                if len(content) > self.max_size:
                    self.fault = BodyFault.TOO_BIG
                else:
                    self.content = content
        buf.clear()
        return leftover


class ChunkReader:
    """Collects the chunks of one BDAT transaction (RFC 3030)."""

    def __init__(self, max_size: int) -> None:
        """Start a message of at most ``max_size`` octets."""
        self.max_size = max_size
        self._parts: list[bytes] = []
        self.size = 0
        self.remaining = 0
        self.too_big = False

    def start_chunk(self, size: int) -> None:
        """Expect ``size`` more octets (one ``BDAT size`` command)."""
        self.remaining = size
        if self.size + size > self.max_size:
            # Keep counting, stop keeping: the chunk is read and thrown away.
            self.too_big = True
            self._parts.clear()

    def feed(self, data: bytes) -> bytes:
        """Take octets of the current chunk; return what is beyond it."""
        take = data[: self.remaining]
        self.remaining -= len(take)
        self.size += len(take)
        if not self.too_big:
            self._parts.append(take)
        return data[len(take) :]

    def content(self) -> bytes:
        """The message so far (empty once it was too big)."""
        return b"".join(self._parts)
