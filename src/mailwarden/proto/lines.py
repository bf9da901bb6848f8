"""Bounded CRLF line framing shared by the SMTP, IMAP and POP3 cores.

A :class:`LineBuffer` collects bytes from the peer and hands out complete lines.
It never holds more than ``max_line`` octets of an unfinished line: past that the
line is reported as too long (and its remainder is skipped up to the next LF), so
a peer can never make us buffer without limit.  This is a security limit.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Line", "LineBuffer", "LineTooLong"]


@dataclass(frozen=True, slots=True)
class Line:
    """One line as received, without its terminator.

    Attributes:
        data: the octets before the terminator.
        bare_lf: the line ended with LF alone instead of CRLF.
    """

    data: bytes
    bare_lf: bool = False


@dataclass(frozen=True, slots=True)
class LineTooLong:
    """A line longer than the limit; its content was discarded up to its LF."""

    limit: int


class LineBuffer:
    """Incremental splitter of a byte stream into bounded lines."""

    def __init__(self, max_line: int) -> None:
        self.max_line = max_line
        self._buf = bytearray()
        self._skipping = False  # inside an over-long line, dropping to its LF

    def feed(self, data: bytes) -> None:
        """Append received octets."""
        self._buf += data

    def next_line(self) -> Line | LineTooLong | None:
        """Return the next complete line, a too-long marker, or None for "need data"."""
        while True:
            lf = self._buf.find(b"\n")
            if self._skipping:
                if lf < 0:
                    self._buf.clear()
                    return None
                del self._buf[: lf + 1]
                self._skipping = False
                return LineTooLong(self.max_line)
            if lf < 0:
                if len(self._buf) > self.max_line:
                    self._buf.clear()
                    self._skipping = True
                    continue
                return None
            end = lf - 1 if lf > 0 and self._buf[lf - 1] == 0x0D else lf
            if end > self.max_line:
                del self._buf[: lf + 1]
                return LineTooLong(self.max_line)
            line = Line(bytes(self._buf[:end]), bare_lf=end == lf)
            del self._buf[: lf + 1]
            return line

    def take(self, n: int) -> bytes:
        """Remove and return up to ``n`` buffered octets (for literals and BDAT chunks)."""
        chunk = bytes(self._buf[:n])
        del self._buf[:n]
        return chunk

    def take_all(self) -> bytes:
        """Remove and return everything buffered (STARTTLS discards pipelined input)."""
        data = bytes(self._buf)
        self._buf.clear()
        return data

    @property
    def buffered(self) -> int:
        """Number of octets held."""
        return len(self._buf)
