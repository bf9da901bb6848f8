"""The IMAP core's own error: an exception that *is* its wire outcome.

Any exception leaving the parser other than :class:`ImapError` is a bug
(STYLE.md §4); the session turns an :class:`ImapError` into its response.
"""

from __future__ import annotations

__all__ = ["BadCommand", "ImapError"]


class ImapError(Exception):
    """A protocol-level failure carrying what to tell the peer.

    Attributes:
        tag: the command's tag, or None when it could not be read (then the
            answer is untagged).
        status: ``"BAD"``, ``"NO"`` or ``"BYE"``.
        code: response code without brackets (``"TOOBIG"``...), or None.
        text: human-readable text for the peer (never internal detail).
    """

    def __init__(
        self, text: str, *, tag: str | None = None, status: str = "BAD", code: str | None = None
    ) -> None:
        super().__init__(text)
        self.tag = tag
        self.status = status
        self.code = code
        self.text = text


class BadCommand(ImapError):
    """A command that is syntactically wrong (RFC 3501 §7.1.3: tagged BAD)."""
