"""Atom (RFC 4287) and RSS 2.0 feeds of incidents and maintenance.

One entry per incident or maintenance window, newest activity first; the
entry content is the timeline as HTML (the same sanitised Markdown the page
shows), so feed readers show what the page shows.  Entry ids are tag URIs
(RFC 4151) that never change when the page moves.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET  # we build XML here, we never parse it
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from urllib.parse import urlsplit

from mailwarden.web.status.incidents import Incident
from mailwarden.web.status.maintenance import Maintenance
from mailwarden.web.status.model import format_posted, to_db
from mailwarden.web.status.rendering import render_markdown

ATOM_NS = "http://www.w3.org/2005/Atom"


@dataclass(frozen=True, slots=True)
class FeedEntry:
    """An entry common to both formats."""

    tag: str
    title: str
    link: str
    published: datetime
    updated: datetime
    html: str


def _incident_entry(incident: Incident, base: str, host: str) -> FeedEntry:
    parts = []
    for update in incident.updates:
        parts.append(
            f"<p><strong>{update.status.value.title()}</strong> - "
            f"{render_markdown(update.body)}<small>{format_posted(update.display_at)}</small></p>"
        )
    if incident.duration_words:
        parts.append(f"<p>Total duration: {incident.duration_words}</p>")
    return FeedEntry(
        tag=f"tag:{host},{incident.created_at:%Y-%m-%d}:incident:{incident.id}",
        title=incident.title,
        link=f"{base}/incidents/{incident.id}",
        published=incident.started_at,
        updated=max([incident.updated_at, *(u.display_at for u in incident.updates)]),
        html="\n".join(parts),
    )


def _maintenance_entry(window: Maintenance, base: str, host: str) -> FeedEntry:
    html = (
        f"<p><strong>{window.status.value.replace('_', ' ').title()}</strong> - "
        f"scheduled {format_posted(window.planned_start)} to {format_posted(window.planned_end)}"
        f"</p>{render_markdown(window.body)}"
    )
    return FeedEntry(
        tag=f"tag:{host},{window.created_at:%Y-%m-%d}:maintenance:{window.id}",
        title=f"Maintenance: {window.title}",
        link=f"{base}/maintenance/{window.id}",
        published=window.created_at,
        updated=window.updated_at,
        html=html,
    )


def entries(
    incidents: list[Incident], windows: list[Maintenance], base_url: str
) -> list[FeedEntry]:
    """Feed entries, most recently updated first."""
    base = base_url.rstrip("/")
    host = urlsplit(base).hostname or "localhost"
    found = [_incident_entry(i, base, host) for i in incidents]
    found += [_maintenance_entry(w, base, host) for w in windows]
    found.sort(key=lambda e: e.updated, reverse=True)
    return found


def atom(title: str, base_url: str, items: list[FeedEntry], now: datetime) -> bytes:
    """An Atom feed document."""
    ET.register_namespace("", ATOM_NS)

    def sub(parent: ET.Element, name: str, text: str | None = None, **attrs: str) -> ET.Element:
        element = ET.SubElement(parent, f"{{{ATOM_NS}}}{name}", attrs)
        if text is not None:
            element.text = text
        return element

    base = base_url.rstrip("/")
    feed = ET.Element(f"{{{ATOM_NS}}}feed")
    sub(feed, "id", f"{base}/history.atom")
    sub(feed, "title", f"{title} - Incident History")
    sub(feed, "updated", to_db(items[0].updated if items else now))
    sub(feed, "link", rel="self", href=f"{base}/history.atom", type="application/atom+xml")
    sub(feed, "link", rel="alternate", href=f"{base}/history", type="text/html")
    author = sub(feed, "author")
    sub(author, "name", title)
    for item in items:
        entry = sub(feed, "entry")
        sub(entry, "id", item.tag)
        sub(entry, "title", item.title)
        sub(entry, "link", rel="alternate", href=item.link, type="text/html")
        sub(entry, "published", to_db(item.published))
        sub(entry, "updated", to_db(item.updated))
        sub(entry, "content", item.html, type="html")
    body: bytes = ET.tostring(feed, encoding="unicode").encode()
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + body


def rss(title: str, base_url: str, items: list[FeedEntry], now: datetime) -> bytes:
    """An RSS 2.0 feed document."""
    base = base_url.rstrip("/")
    root = ET.Element("rss", version="2.0")
    channel = ET.SubElement(root, "channel")
    ET.SubElement(channel, "title").text = f"{title} - Incident History"
    ET.SubElement(channel, "link").text = f"{base}/history"
    ET.SubElement(channel, "description").text = f"Incidents and maintenance of {title}"
    ET.SubElement(channel, "lastBuildDate").text = format_datetime(
        items[0].updated if items else now, usegmt=True
    )
    for item in items:
        node = ET.SubElement(channel, "item")
        ET.SubElement(node, "title").text = item.title
        ET.SubElement(node, "link").text = item.link
        ET.SubElement(node, "guid", isPermaLink="false").text = item.tag
        ET.SubElement(node, "pubDate").text = format_datetime(item.published, usegmt=True)
        ET.SubElement(node, "description").text = item.html
    body: bytes = ET.tostring(root, encoding="unicode").encode()
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + body
