"""From a part's stored octets to readable text: transfer decoding and HTML stripping.

Theory of operation
-------------------
A text part is stored as sent.  To index it for SEARCH, to build the preview
and to show it in the webmail, a reader undoes its Content-Transfer-Encoding
with :func:`decode_body` (RFC 2045 §6), decodes the charset with
:func:`~mailwarden.mail.charsets.to_text`, and, for HTML, keeps only the text
with :func:`html_to_text`.

Both functions are total: broken base64 decodes as far as it goes, unknown
encodings pass through, and nothing raises.  :func:`html_to_text` gives plain
text (for SEARCH, previews, a quoted reply); it is no sanitiser, and the
webmail shows message HTML only through nh3.
"""

from __future__ import annotations

import base64
import binascii
import html
import re

__all__ = ["decode_body", "html_to_text"]


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
