"""Turning operator text into safe HTML, and the Jinja2 environment.

Update bodies are Markdown (CommonMark via markdown-it-py, with tables and
strikethrough), rendered to HTML and then passed through nh3 with a short
allow-list, so an operator's paste (or a compromised editor account) cannot
put script on the public page.  Links get ``rel="noopener noreferrer nofollow"``.
Raw HTML in Markdown is escaped, not rendered.
"""

from __future__ import annotations

from datetime import datetime

import nh3
from jinja2 import Environment, PackageLoader, select_autoescape
from markdown_it import MarkdownIt
from markupsafe import Markup

from mailwarden.web.status.model import duration_words, format_latency, format_posted

_md = MarkdownIt("commonmark", {"html": False, "linkify": False, "breaks": True}).enable(
    ["table", "strikethrough"]
)

ALLOWED_TAGS = {
    "p", "br", "strong", "em", "del", "code", "pre", "blockquote", "ul", "ol", "li",
    "a", "h3", "h4", "table", "thead", "tbody", "tr", "th", "td", "hr",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}}


def render_markdown(text: str) -> Markup:
    """Markdown to sanitised HTML, ready for a template."""
    html = _md.render(text)
    clean = nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )
    return Markup(clean)  # noqa: S704 - sanitised by nh3 just above


def make_environment() -> Environment:
    """The template environment with the status page's filters."""
    env = Environment(
        loader=PackageLoader("mailwarden.web.status", "templates"),
        autoescape=select_autoescape(["html", "xml"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["markdown"] = render_markdown
    env.filters["posted"] = format_posted
    env.filters["duration"] = duration_words
    env.filters["latency"] = format_latency
    env.filters["iso"] = lambda moment: moment.isoformat() if isinstance(moment, datetime) else ""
    return env
