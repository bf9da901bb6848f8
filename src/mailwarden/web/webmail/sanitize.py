"""Making hostile message HTML safe to show: nh3 plus a few rewrites of our own.

Theory of operation
-------------------
Message HTML is shown in three layers of defence, each enough on its own
against script:

1. :func:`clean_html` runs the markup through nh3 (the Rust ``ammonia``
   sanitiser) with an allow-list of tags, attributes, URL schemes and CSS
   properties.  Script, style sheets, forms, frames, SVG, MathML, event
   handlers and ``javascript:`` URLs do not survive.
2. The clean HTML is served as its own document with a Content-Security-Policy
   that forbids every script and every fetch except our own ``cid:`` images
   (and remote images once the reader allows them), and a CSP ``sandbox``.
3. The reading page embeds that document in an ``<iframe sandbox>`` without
   ``allow-scripts``.

Our rewrites, done in nh3's attribute filter:

* ``cid:`` image sources become URLs of the message's own parts, so inline
  images work without any remote fetch (RFC 2392).
* Remote images (``http:``/``https:``) are dropped unless the reader allowed
  them for this message; the count of blocked ones is reported so the page
  can offer "show images".  CSS can fetch too, so style values that mention
  ``url(``, ``image-set(``, ``expression(`` or escapes are dropped whole.
* Relative and scheme-relative URLs (``/logout``, ``//evil``) are dropped: in
  a message they could only aim at our own origin or smuggle a host.
* Links keep ``http``/``https``/``mailto`` and open in a new browsing context
  without a referrer.
"""

from __future__ import annotations

import html
import re
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass

import nh3

__all__ = ["CleanResult", "clean_html", "text_to_html"]

_TAGS = set(nh3.ALLOWED_TAGS) | {"font", "tfoot", "u"}
_TAGS -= {"map", "area"}
_ATTRIBUTES: dict[str, set[str]] = {
    "*": {"style", "title", "dir", "lang", "align", "valign", "width", "height", "bgcolor"},
    "a": {"href", "name"},
    "img": {"src", "alt", "width", "height", "border"},
    "font": {"color", "face", "size"},
    "table": {"border", "cellpadding", "cellspacing", "summary"},
    "td": {"colspan", "rowspan", "nowrap"},
    "th": {"colspan", "rowspan", "nowrap", "scope"},
    "col": {"span"},
    "colgroup": {"span"},
    "ol": {"start", "type"},
    "li": {"value"},
    "blockquote": {"cite"},
    "q": {"cite"},
    "time": {"datetime"},
}
# No property here can carry a URL (background, list-style, border-image,
# content, cursor, mask... can) or lift content out of its box (position).
_STYLE_PROPERTIES = {
    "color", "background-color", "font", "font-family", "font-size", "font-style",
    "font-weight", "font-variant", "text-align", "text-decoration", "text-indent",
    "text-transform", "line-height", "letter-spacing", "word-spacing", "white-space",
    "vertical-align", "direction", "margin", "margin-top", "margin-right", "margin-bottom",
    "margin-left", "padding", "padding-top", "padding-right", "padding-bottom",
    "padding-left", "border", "border-top", "border-right", "border-bottom", "border-left",
    "border-color", "border-style", "border-width", "border-radius", "border-collapse",
    "border-spacing", "width", "min-width", "max-width", "height", "min-height",
    "max-height", "display", "table-layout", "word-break", "overflow-wrap",
}  # fmt: skip
_URL_SCHEMES = {"http", "https", "mailto", "cid"}
_STYLE_FETCH_RE = re.compile(
    r"url\s*\(|image-set|image\s*\(|expression|\\|@import|-moz-binding", re.I
)
_LINK_SCHEMES = ("http://", "https://", "mailto:")
_REMOTE_SCHEMES = ("http://", "https://")


@dataclass(frozen=True, slots=True)
class CleanResult:
    """Sanitised HTML and what was held back.

    Attributes:
        html: markup safe to serve under the message-body CSP.
        blocked_images: remote images dropped because they were not allowed.
    """

    html: str
    blocked_images: int


def clean_html(
    markup: str, *, cid_url: Callable[[str], str | None], allow_remote: bool
) -> CleanResult:
    """Sanitise message HTML.

    Args:
        markup: the decoded HTML of a message part (any text; never raises).
        cid_url: maps a Content-ID (no angle brackets) to the URL serving
            that part of the same message, or None if the message has no
            such part.
        allow_remote: keep ``http``/``https`` image sources.

    Returns:
        The clean markup and the number of remote images blocked.
    """
    blocked = 0

    def attribute_filter(tag: str, attr: str, value: str) -> str | None:
        nonlocal blocked
        try:
            if attr == "style":
                return None if _STYLE_FETCH_RE.search(value) else value
            if attr == "src":
                lowered = value.strip().lower()
                if lowered.startswith("cid:"):
                    cid = urllib.parse.unquote(value.strip()[4:]).strip("<>")
                    return cid_url(cid)
                if lowered.startswith(_REMOTE_SCHEMES):
                    if allow_remote:
                        return value
                    blocked += 1
                    return None
                return None
            if attr in ("href", "cite"):
                lowered = value.strip().lower()
                return value if lowered.startswith(_LINK_SCHEMES) else None
            return value
        except Exception:  # noqa: BLE001 - a filter that fails must drop, never raise
            return None

    cleaned = nh3.clean(
        markup,
        tags=_TAGS,
        clean_content_tags={"script", "style", "title", "head", "template", "noscript"},
        attributes=_ATTRIBUTES,
        attribute_filter=attribute_filter,
        url_schemes=_URL_SCHEMES,
        filter_style_properties=_STYLE_PROPERTIES,
        link_rel="noopener noreferrer nofollow",
        set_tag_attribute_values={"a": {"target": "_blank"}},
        strip_comments=True,
    )
    return CleanResult(cleaned, blocked)


_URL_RE = re.compile(r"\bhttps?://[^\s<>\"']+[^\s<>\"'.,;:!?)\]]")


def text_to_html(text: str) -> str:
    """Escape plain text for an HTML page, turning web addresses into links.

    Quoted lines (``>``) are kept as they are; the page's CSS keeps line breaks.
    """
    out: list[str] = []
    pos = 0
    for match in _URL_RE.finditer(text):
        out.append(html.escape(text[pos : match.start()]))
        url = match.group(0)
        escaped = html.escape(url)
        out.append(
            f'<a href="{escaped}" target="_blank" rel="noopener noreferrer nofollow">{escaped}</a>'
        )
        pos = match.end()
    out.append(html.escape(text[pos:]))
    return "".join(out)
