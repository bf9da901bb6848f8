"""Octets to text: header strings, charset-tagged bodies and RFC 2047 encoded words.

Theory of operation
-------------------
The MIME readers (:mod:`mailwarden.mail.mime` and the modules it gathers) keep
header text as ``latin-1`` strings, which map octets one to one, so that the
IMAP wire forms can give back the exact octets a sender wrote.  This module
turns such raw text into proper text for the decoded, human-facing fields:

* :func:`utf8` re-reads a latin-1 header string as UTF-8 (RFC 6532);
* :func:`decode_words` also decodes RFC 2047 encoded words, borrowing
  :func:`email.header.decode_header`, which needs no offsets;
* :func:`to_text` decodes octets in a declared charset (a part body, an
  RFC 2231 parameter value), falling back to UTF-8.

All three are lenient: bad octets become U+FFFD, unknown charsets fall back to
UTF-8, and NUL characters (which no IMAP string may carry) are removed.
"""

from __future__ import annotations

import binascii
import codecs
import email.errors
import email.header

__all__ = ["decode_words", "to_text", "utf8"]


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


def decode_words(latin: str) -> str:
    """Decode RFC 2047 encoded words in a header value; raw 8-bit read as UTF-8."""
    text = utf8(latin)
    if "=?" not in text:
        return text
    try:
        decoded = str(email.header.make_header(email.header.decode_header(text)))
    except (
        LookupError,
        UnicodeError,
        ValueError,
        AssertionError,
        binascii.Error,
        email.errors.MessageError,  # e.g. CharsetError for an 8-bit charset name
    ):
        return text
    return decoded.replace("\x00", "")


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
